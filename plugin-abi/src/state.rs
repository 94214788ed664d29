//! Per-flow state: a value of the addon's own type kept with each flow, created on first use
//! and dropped with the flow (proxy-wasm's per-stream context), so addons need neither a map
//! keyed by flow id nor strings in `metadata`.
//!
//! ```
//! use interpose_plugin_abi::prelude::*;
//! use std::time::Instant;
//!
//! /// How long the server took, per flow.
//! #[derive(Default)]
//! struct Timing {
//!     sent: Option<Instant>,
//! }
//!
//! struct Timer;
//!
//! #[addon]
//! impl Addon for Timer {
//!     fn request(&self, ctx: &Context, flow: &mut HttpFlow) {
//!         flow.state::<Timing>(ctx).sent = Some(Instant::now());
//!     }
//!
//!     fn response(&self, ctx: &Context, flow: &mut HttpFlow) {
//!         if let Some(sent) = flow.state::<Timing>(ctx).sent {
//!             info!(ctx, "{} took {:?}", flow.request.url(), sent.elapsed());
//!         }
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! Each addon sees only its own values (they are keyed by the addon's context and the type).
//! They stay in memory: `metadata` is what travels with the flow into captures.

use std::{
    any::TypeId,
    ffi::c_void,
    hash::{Hash, Hasher},
};

use abi_stable::{std_types::RVec, StableAbi};

use crate::{context::Context, flow::HttpFlow};

/// One addon's value on one flow, erased.
#[repr(C)]
#[derive(StableAbi)]
struct StateEntry {
    /// The addon (its context's host data).
    owner: usize,
    /// The value's type.
    type_hash: u64,
    /// A `Box<T>` of the plugin that made it.
    value: *mut c_void,
    /// The plugin's function dropping that box.
    drop: unsafe extern "C" fn(*mut c_void),
}

/// The addons' values on one flow (see [`HttpFlow::state`]). A copy of the flow starts with
/// none: the values belong to the flow they were made on.
///
/// See the example on [`HttpFlow::state`].
#[repr(C)]
#[derive(StableAbi, Default)]
pub struct FlowState {
    entries: RVec<StateEntry>,
}

// SAFETY: every value was `T: Send + Sync` when stored (`HttpFlow::state` requires it).
unsafe impl Send for FlowState {}
// SAFETY: as for `Send`.
unsafe impl Sync for FlowState {}

impl Clone for FlowState {
    fn clone(&self) -> Self {
        FlowState::default()
    }
}

impl PartialEq for FlowState {
    /// Per-flow state never makes two flows different.
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for FlowState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} values", self.entries.len())
    }
}

impl Drop for FlowState {
    fn drop(&mut self) {
        for entry in self.entries.iter() {
            // SAFETY: `value` is the box `drop` was made for, dropped once (here).
            unsafe { (entry.drop)(entry.value) };
        }
    }
}

unsafe extern "C" fn drop_box<T>(value: *mut c_void) {
    // SAFETY: `value` came from `Box::<T>::into_raw` in `HttpFlow::state`.
    drop(unsafe { Box::from_raw(value as *mut T) });
}

fn type_hash<T: 'static>() -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    TypeId::of::<T>().hash(&mut hasher);
    hasher.finish()
}

impl FlowState {
    fn find<T: 'static>(&self, owner: usize) -> Option<*mut T> {
        let type_hash = type_hash::<T>();
        self.entries
            .iter()
            .find(|e| e.owner == owner && e.type_hash == type_hash)
            .map(|e| e.value as *mut T)
    }
}

impl HttpFlow {
    /// This addon's value of type `T` on this flow, made with `T::default()` on first use
    /// and dropped with the flow. See [`crate::state`].
    ///
    /// ```
    /// use interpose_plugin_abi::testing::{self, TestContext};
    ///
    /// #[derive(Default)]
    /// struct Retries(u32);
    ///
    /// let (tctx, other_addon) = (TestContext::new(), TestContext::new());
    /// let mut flow = testing::flow();
    /// assert!(flow.state_ref::<Retries>(tctx.ctx()).is_none());
    /// flow.state::<Retries>(tctx.ctx()).0 += 1;
    /// flow.state::<Retries>(tctx.ctx()).0 += 1;
    /// assert_eq!(flow.state_ref::<Retries>(tctx.ctx()).map(|r| r.0), Some(2));
    /// assert!(flow.state_ref::<Retries>(other_addon.ctx()).is_none()); // each addon its own
    /// assert_eq!(flow.take_state::<Retries>(tctx.ctx()).map(|r| r.0), Some(2));
    /// assert!(flow.state_ref::<Retries>(tctx.ctx()).is_none());
    /// ```
    pub fn state<T: Default + Send + Sync + 'static>(&mut self, ctx: &Context) -> &mut T {
        let owner = ctx.host_data() as usize;
        let value = match self.addon_state.find::<T>(owner) {
            Some(value) => value,
            None => {
                let value = Box::into_raw(Box::<T>::default());
                self.addon_state.entries.push(StateEntry {
                    owner,
                    type_hash: type_hash::<T>(),
                    value: value as *mut c_void,
                    drop: drop_box::<T>,
                });
                value
            }
        };
        // SAFETY: the entry holds a live `Box<T>` owned by this flow; `&mut self` makes the
        // borrow exclusive.
        unsafe { &mut *value }
    }

    /// This addon's value of type `T` on this flow, if it made one.
    ///
    /// See the example on [`HttpFlow::state`].
    pub fn state_ref<T: Send + Sync + 'static>(&self, ctx: &Context) -> Option<&T> {
        let value = self.addon_state.find::<T>(ctx.host_data() as usize)?;
        // SAFETY: as in `state`, shared.
        Some(unsafe { &*value })
    }

    /// Removes this addon's value of type `T` from the flow and returns it.
    ///
    /// See the example on [`HttpFlow::state`].
    pub fn take_state<T: Send + Sync + 'static>(&mut self, ctx: &Context) -> Option<T> {
        let owner = ctx.host_data() as usize;
        let type_hash = type_hash::<T>();
        let index = self
            .addon_state
            .entries
            .iter()
            .position(|e| e.owner == owner && e.type_hash == type_hash)?;
        let entry = self.addon_state.entries.remove(index);
        // SAFETY: the entry's value is a `Box<T>` (same owner and type), now out of the list.
        Some(*unsafe { Box::from_raw(entry.value as *mut T) })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use crate::testing::{self, TestContext};

    #[derive(Default)]
    struct Counted(Option<Arc<AtomicUsize>>);

    impl Drop for Counted {
        fn drop(&mut self) {
            if let Some(drops) = &self.0 {
                drops.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    #[test]
    fn values_are_per_addon_and_type_and_dropped_with_the_flow() {
        let (a, b) = (TestContext::new(), TestContext::new());
        let mut flow = testing::flow();
        *flow.state::<u32>(a.ctx()) += 2;
        *flow.state::<u32>(a.ctx()) += 3;
        *flow.state::<u32>(b.ctx()) += 7;
        flow.state::<String>(a.ctx()).push_str("xy");
        assert_eq!(flow.state_ref::<u32>(a.ctx()), Some(&5));
        assert_eq!(flow.state_ref::<u32>(b.ctx()), Some(&7));
        assert_eq!(flow.state_ref::<u64>(a.ctx()), None);
        assert_eq!(flow.take_state::<String>(a.ctx()).as_deref(), Some("xy"));
        assert_eq!(flow.state_ref::<String>(a.ctx()), None);

        let drops = Arc::new(AtomicUsize::new(0));
        flow.state::<Counted>(a.ctx()).0 = Some(Arc::clone(&drops));
        let copy = flow.clone();
        assert_eq!(copy.state_ref::<u32>(a.ctx()), None, "copies start empty");
        drop(copy);
        assert_eq!(drops.load(Ordering::Relaxed), 0);
        drop(flow);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    }
}
