//! Pausing a flow (mitmproxy's `flow.intercept()` / `flow.resume()`): an event takes its flow
//! off the hot path, and the addon resumes it later, from any thread, after changing it.
//!
//! ```
//! use interpose_plugin_abi::prelude::*;
//!
//! struct Later;
//!
//! #[addon]
//! impl Addon for Later {
//!     fn request(&self, ctx: &Context, flow: &mut HttpFlow) {
//!         let paused = ctx.intercept(flow);
//!         std::thread::spawn(move || {
//!             std::thread::sleep(std::time::Duration::from_millis(10));
//!             paused.with_flow(|flow| flow.request.headers.insert("x-checked", "yes"));
//!             paused.resume();
//!         });
//!     }
//! }
//! # fn main() {
//! # let tctx = interpose_plugin_abi::testing::TestContext::new();
//! # let mut flow = interpose_plugin_abi::testing::flow();
//! # Later.request(tctx.ctx(), &mut flow);
//! # assert_eq!(tctx.wait_for_resume(&mut flow), Some(interpose_plugin_abi::Resolution::Resume));
//! # assert_eq!(flow.request.headers.get("x-checked"), Some("yes"));
//! # }
//! ```
//!
//! While a flow is paused, the worker that ran the event goes on with other flows; the
//! addons after the one that paused it see the flow (in the same event) only once it is
//! resumed, so they see what the resumer changed. A client that leaves while its flow is
//! paused, a kill ([`Paused::kill`]) and shutdown end the flow with an `error` event of the
//! right kind. Dropping a [`Paused`] without resuming it resumes the flow.

use std::{
    cell::RefCell,
    ffi::c_void,
    fmt,
    future::Future,
    panic::{catch_unwind, resume_unwind, AssertUnwindSafe},
    pin::Pin,
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    task::{Context as TaskContext, Poll, Waker},
};

use abi_stable::StableAbi;

use crate::{
    context::Context,
    ffi::{FlowCallback, HostRef},
    flow::HttpFlow,
};

/// How a paused flow was let go.
///
/// ```
/// use interpose_plugin_abi::{prelude::*, testing::{self, TestContext}};
///
/// let tctx = TestContext::new();
/// let mut flow = testing::flow();
/// let paused = tctx.ctx().intercept(&mut flow);
/// std::thread::spawn(move || paused.kill());
/// assert_eq!(tctx.wait_for_resume(&mut flow), Some(Resolution::Kill));
/// assert!(flow.killed());
/// ```
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resolution {
    /// It goes on where it stopped.
    Resume,
    /// It is killed (an `error` event of kind `killed`; the client connection closes).
    Kill,
}

/// A paused flow, made by [`Context::intercept`](crate::Context::intercept): `Send` and
/// `'static`, so it can go to another thread or task, which changes the flow through
/// [`Paused::with_flow`] and lets it go with [`Paused::resume`] or [`Paused::kill`].
///
/// Dropping it without either resumes the flow.
///
/// ```
/// use interpose_plugin_abi::{prelude::*, testing::{self, TestContext}};
///
/// let tctx = TestContext::new();
/// let mut flow = testing::flow();
/// let paused = tctx.ctx().intercept(&mut flow);
/// let worker = std::thread::spawn(move || {
///     // e.g. after asking a policy service
///     let path = paused.with_flow(|flow| {
///         flow.request.headers.insert("x-approved", "yes");
///         flow.request.path().to_string()
///     });
///     paused.resume();
///     path
/// });
/// assert_eq!(tctx.wait_for_resume(&mut flow), Some(Resolution::Resume));
/// assert_eq!(worker.join().unwrap().as_deref(), Some("/path"));
/// assert_eq!(flow.request.headers.get("x-approved"), Some("yes"));
/// ```
pub struct Paused {
    host: HostRef,
    ptr: PausedPtr,
}

/// A pause the host made, erased (only the host's pause functions interpret it).
#[doc(hidden)]
pub type PausedPtr = *const c_void;

// SAFETY: the host's pause slots are shared, thread-safe objects (the host's contract for
// `intercept`); the pointer is only passed back to the host.
unsafe impl Send for Paused {}
// SAFETY: as for `Send`; every host function on a pause locks it.
unsafe impl Sync for Paused {}

impl Paused {
    /// Wraps a pause the host returned from `intercept`.
    pub(crate) fn new(host: HostRef, ptr: PausedPtr) -> Paused {
        Paused { host, ptr }
    }

    /// Runs `f` on the paused flow and returns what it returns; `None` when the flow is gone
    /// (its client left, the proxy is shutting down, or it was resumed already).
    ///
    /// Called on another thread right after the event paused the flow, it waits (briefly)
    /// until the event has returned. Called inside the event that paused the flow, it
    /// returns `None`: use the event's `flow` there.
    ///
    /// See the example on [`Paused`].
    pub fn with_flow<F: FnOnce(&mut HttpFlow) -> R, R>(&self, f: F) -> Option<R> {
        let mut call = FlowCall::new(f);
        (self.host.paused_with())(self.ptr, call.callback(), call.data());
        call.into_result()
    }

    /// Lets the flow go on where it stopped (mitmproxy's `flow.resume()`).
    ///
    /// See the example on [`Paused`].
    pub fn resume(self) {
        (self.host.paused_resolve())(self.ptr, Resolution::Resume);
    }

    /// Kills the flow: it ends with an `error` of kind `killed` and its client connection
    /// closes (mitmproxy's `flow.kill()` on an intercepted flow).
    ///
    /// See the example on [`Resolution`].
    pub fn kill(self) {
        (self.host.paused_resolve())(self.ptr, Resolution::Kill);
    }

    /// Lets go of the handle without resuming the flow: it stays paused until a command
    /// resumes or kills it (`interpose ctl flow.resume @all`), its client leaves, or the
    /// proxy shuts down (the built-in `intercept` option works this way).
    ///
    /// ```
    /// use interpose_plugin_abi::{prelude::*, testing::{self, TestContext}};
    ///
    /// let tctx = TestContext::new();
    /// let mut flow = testing::flow();
    /// tctx.ctx().intercept(&mut flow).leave();
    /// assert!(flow.intercepted());
    /// ```
    pub fn leave(self) {
        (self.host.paused_release())(self.ptr);
        std::mem::forget(self);
    }
}

/// A closure run on a flow by a host function, through a `FlowCallback` and a data pointer;
/// a panic in it is carried back and resumed on the caller's side of the boundary.
pub(crate) struct FlowCall<F, R> {
    f: Option<F>,
    result: Option<std::thread::Result<R>>,
}

impl<F: FnOnce(&mut HttpFlow) -> R, R> FlowCall<F, R> {
    pub(crate) fn new(f: F) -> Self {
        FlowCall {
            f: Some(f),
            result: None,
        }
    }

    extern "C" fn trampoline(data: *mut c_void, flow: &mut HttpFlow) {
        // SAFETY: `data` is the `FlowCall` of `data()`, alive and unaliased for this call.
        let call = unsafe { &mut *(data as *mut FlowCall<F, R>) };
        if let Some(f) = call.f.take() {
            call.result = Some(catch_unwind(AssertUnwindSafe(|| f(flow))));
        }
    }

    pub(crate) fn callback(&self) -> FlowCallback {
        FlowCallback(Self::trampoline)
    }

    pub(crate) fn data(&mut self) -> *mut c_void {
        self as *mut Self as *mut c_void
    }

    /// What the closure returned, if it ran; a panic in it continues here.
    pub(crate) fn into_result(self) -> Option<R> {
        match self.result? {
            Ok(value) => Some(value),
            Err(payload) => resume_unwind(payload),
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        // Resolving twice is harmless: the first resolution wins.
        (self.host.paused_resolve())(self.ptr, Resolution::Resume);
        (self.host.paused_release())(self.ptr);
    }
}

impl fmt::Debug for Paused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Paused").finish_non_exhaustive()
    }
}

/// The host's side of pausing: what the host's pause functions do. Hosts (the proxy and
/// `TestContext`) share this implementation; addons never use it.
#[doc(hidden)]
pub mod host {
    use super::*;

    /// Where a paused flow is, as seen by its [`Paused`] handle.
    enum Phase {
        /// Paused in an event that has not returned yet.
        Pending,
        /// The host waits for the resolution; the flow is at this address meanwhile.
        Attached(*mut HttpFlow),
        /// The host no longer waits: resumed, killed, or the flow is gone.
        Detached,
    }

    struct State {
        phase: Phase,
        resolution: Option<Resolution>,
        waker: Option<Waker>,
    }

    /// One pause, shared by the host and the addon's [`Paused`].
    pub struct Slot {
        state: Mutex<State>,
        changed: Condvar,
        /// The flow that was paused, to recognise a second `intercept` in the same event.
        flow: usize,
    }

    // SAFETY: the flow pointer in `Phase::Attached` is only dereferenced under the lock,
    // while the host guarantees the flow stays where it is and untouched (see `Wait`).
    unsafe impl Send for Slot {}
    // SAFETY: as for `Send`.
    unsafe impl Sync for Slot {}

    thread_local! {
        /// The pause an addon asked for in the event running on this thread, until the host
        /// takes it.
        static PENDING: RefCell<Option<Arc<Slot>>> = const { RefCell::new(None) };
    }

    impl Slot {
        fn lock(&self) -> MutexGuard<'_, State> {
            self.state.lock().unwrap_or_else(PoisonError::into_inner)
        }

        fn pending_here(self: &Arc<Self>) -> bool {
            PENDING.with(|p| p.borrow().as_ref().is_some_and(|s| Arc::ptr_eq(s, self)))
        }
    }

    /// `intercept`: pauses `flow` in the event running on this thread (or returns the pause
    /// already made for it in this event).
    pub extern "C" fn intercept(_ctx: &Context, flow: &mut HttpFlow) -> PausedPtr {
        let key = flow as *mut HttpFlow as usize;
        let slot = PENDING.with(|p| {
            let mut pending = p.borrow_mut();
            match pending.as_ref() {
                Some(slot) if slot.flow == key => Arc::clone(slot),
                _ => {
                    let phase = if flow.intercepted {
                        // Paused already (this is `with_flow` of an earlier pause): nothing
                        // will wait for a second one.
                        Phase::Detached
                    } else {
                        Phase::Pending
                    };
                    let slot = Arc::new(Slot {
                        state: Mutex::new(State {
                            phase,
                            resolution: None,
                            waker: None,
                        }),
                        changed: Condvar::new(),
                        flow: key,
                    });
                    if matches!(slot.lock().phase, Phase::Pending) {
                        *pending = Some(Arc::clone(&slot));
                        flow.intercepted = true;
                    }
                    slot
                }
            }
        });
        Arc::into_raw(slot) as PausedPtr
    }

    /// Runs `f` with the slot behind a pointer `intercept` returned, without taking the
    /// addon's reference.
    ///
    /// # Safety
    ///
    /// `ptr` comes from `intercept` and has not been released.
    unsafe fn with_slot<R>(ptr: PausedPtr, f: impl FnOnce(&Arc<Slot>) -> R) -> R {
        // SAFETY: the caller's contract; `ManuallyDrop` leaves the addon's count alone.
        let slot = std::mem::ManuallyDrop::new(unsafe { Arc::from_raw(ptr as *const Slot) });
        f(&slot)
    }

    /// `paused_with`: runs `call(data, flow)` on the paused flow, under the slot's lock.
    // The pointer is one this host made; the table's function types cannot be `unsafe`.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    pub extern "C" fn with(ptr: PausedPtr, call: FlowCallback, data: *mut c_void) {
        // SAFETY: addons pass back the pointer of their live `Paused`.
        unsafe { with_slot(ptr, |slot| with_flow(slot, call, data)) }
    }

    fn with_flow(slot: &Arc<Slot>, call: FlowCallback, data: *mut c_void) {
        if slot.pending_here() {
            // Inside the very event that paused it: waiting would never end.
            return;
        }
        let mut state = slot.lock();
        while matches!(state.phase, Phase::Pending) {
            state = slot
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.resolution.is_some() {
            return;
        }
        if let Phase::Attached(flow) = state.phase {
            // SAFETY: while attached, the host leaves the flow in place and untouched until
            // it detaches, which takes this lock.
            (call.0)(data, unsafe { &mut *flow });
        }
    }

    /// `paused_resolve`: lets the flow go; the first resolution wins.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    pub extern "C" fn resolve(ptr: PausedPtr, resolution: Resolution) {
        // SAFETY: as in `with`.
        unsafe { with_slot(ptr, |slot| resolve_slot(slot, resolution)) }
    }

    fn resolve_slot(slot: &Slot, resolution: Resolution) {
        let waker = {
            let mut state = slot.lock();
            if state.resolution.is_some() || matches!(state.phase, Phase::Detached) {
                return;
            }
            state.resolution = Some(resolution);
            state.waker.take()
        };
        slot.changed.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// `paused_release`: drops the addon's reference.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    pub extern "C" fn release(ptr: PausedPtr) {
        // SAFETY: `ptr` is an `Arc::into_raw` of `intercept`, released once (in `Drop`).
        drop(unsafe { Arc::from_raw(ptr as *const Slot) });
    }

    impl Slot {
        /// Runs `f` on the paused flow, if the host is waiting for it and it was not let go
        /// yet (for the host's own commands); `None` otherwise.
        pub fn with_attached<R>(&self, f: impl FnOnce(&mut HttpFlow) -> R) -> Option<R> {
            let state = self.lock();
            if state.resolution.is_some() {
                return None;
            }
            match state.phase {
                // SAFETY: as in `with_flow`: attached, under the lock.
                Phase::Attached(flow) => Some(f(unsafe { &mut *flow })),
                _ => None,
            }
        }

        /// Lets the flow go (for the host's own commands); the first resolution wins.
        pub fn resolve(&self, resolution: Resolution) {
            resolve_slot(self, resolution);
        }
    }

    /// The pause an addon asked for in the event that just ran on this thread, if any.
    pub fn take_pending() -> Option<Arc<Slot>> {
        PENDING.with(|p| p.borrow_mut().take())
    }

    /// The host waiting for a paused flow: while it lives, the flow must stay where it is and
    /// nothing else may touch it. Dropping it (resolved or not: the client left, shutdown)
    /// detaches the flow and clears its `intercepted` flag.
    pub struct Wait {
        slot: Arc<Slot>,
        flow: *mut HttpFlow,
    }

    // SAFETY: the flow pointer is only used under the slot's lock or after detaching; the
    // flow itself is `Send`.
    unsafe impl Send for Wait {}
    // SAFETY: `&Wait` only reaches the slot (thread-safe); the flow pointer is used in `Drop`.
    unsafe impl Sync for Wait {}

    impl Wait {
        /// Starts waiting for `slot` to be resolved, making `flow` reachable from the
        /// addon's handle.
        ///
        /// # Safety
        ///
        /// Until the `Wait` is dropped, `flow` must not move, be dropped or be used except
        /// through the handle.
        pub unsafe fn attach(slot: Arc<Slot>, flow: *mut HttpFlow) -> Wait {
            {
                let mut state = slot.lock();
                if matches!(state.phase, Phase::Pending) {
                    state.phase = Phase::Attached(flow);
                }
            }
            slot.changed.notify_all();
            Wait { slot, flow }
        }

        /// How the flow was let go, once it is.
        pub fn resolved(&self) -> Resolved<'_> {
            Resolved(self)
        }

        /// Blocks this thread until the flow is let go (for hosts without a runtime).
        pub fn wait_blocking(&self) -> Resolution {
            let mut state = self.slot.lock();
            loop {
                if let Some(resolution) = state.resolution {
                    return resolution;
                }
                state = self
                    .slot
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
    }

    impl Drop for Wait {
        fn drop(&mut self) {
            {
                let mut state = self.slot.lock();
                state.phase = Phase::Detached;
                state.waker = None;
            }
            self.slot.changed.notify_all();
            // SAFETY: detached under the lock: no handle reaches the flow any more, and the
            // caller of `attach` keeps it alive until now.
            unsafe { (*self.flow).intercepted = false };
        }
    }

    /// Completes with the resolution of a paused flow.
    pub struct Resolved<'a>(&'a Wait);

    impl Future for Resolved<'_> {
        type Output = Resolution;

        fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Resolution> {
            let mut state = self.0.slot.lock();
            match state.resolution {
                Some(resolution) => Poll::Ready(resolution),
                None => {
                    state.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }
    }

    /// Lets a pause taken where nothing can wait for it go at once (the flow's last event,
    /// say): the handle's `with_flow` then returns `None`.
    pub fn let_go(slot: Arc<Slot>, flow: &mut HttpFlow) {
        slot.lock().phase = Phase::Detached;
        slot.changed.notify_all();
        flow.intercepted = false;
    }
}
