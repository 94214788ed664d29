//! Body streaming (mitmproxy's `flow.request.stream` / `flow.response.stream`): whether a body
//! is forwarded chunk by chunk instead of being read whole, and an optional hook that rewrites
//! each chunk.
//!
//! The hook is a closure of the plugin that set it. It crosses the boundary as an erased
//! pointer plus the plugin's own functions to call, clone and drop it, so the host never
//! touches the closure's memory and a panic inside it stops at the plugin's call shim.
//!
//! ```
//! use interpose_plugin_abi::{prelude::*, testing};
//!
//! /// Streams responses announced as larger than 1 MB.
//! fn responseheaders(_ctx: &Context, flow: &mut HttpFlow) {
//!     if let Some(response) = flow.response_mut() {
//!         let length = response.headers.get("content-length").and_then(|l| l.parse().ok());
//!         if length.is_some_and(|l: u64| l > 1_000_000) {
//!             response.stream = Stream::on();
//!         }
//!     }
//! }
//!
//! let mut flow = testing::flow_with_response(); // 7 bytes
//! responseheaders(testing::TestContext::new().ctx(), &mut flow);
//! assert!(!flow.response().unwrap().stream.is_on());
//! ```

use std::{
    ffi::c_void,
    fmt,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{Arc, Mutex, PoisonError},
};

use abi_stable::{
    std_types::{RErr, ROk, ROption, RResult, RString},
    StableAbi,
};

use crate::{body::Body, ffi::panic_message};

/// Whether and how a body is streamed.
///
/// Set it in `requestheaders` (on `flow.request.stream`) or `responseheaders` (on
/// `flow.response.stream`):
///
/// - off (the default): the proxy reads the whole body, and `request`/`response` see it in
///   `content`;
/// - [`Stream::on`]: the body goes through unchanged, chunk by chunk, without being kept;
/// - [`Stream::with_hook`]: each chunk goes through a function that may rewrite it.
///
/// With streaming on, the `request`/`response` event still fires, after the body went
/// through, and its `content` is empty.
///
/// ```
/// use interpose_plugin_abi::prelude::*;
///
/// struct Replace;
///
/// #[addon]
/// impl Addon for Replace {
///     fn responseheaders(&self, _ctx: &Context, flow: &mut HttpFlow) {
///         if let Some(response) = flow.response_mut() {
///             response.stream = Stream::with_hook(|chunk: Body| {
///                 // Called once per chunk, then once more with an empty body at the end.
///                 match chunk.text() {
///                     Some(text) => Body::from(text.replace("foo", "bar")),
///                     None => chunk,
///                 }
///             });
///         }
///     }
/// }
/// # fn main() {}
/// ```
///
/// A hook sees chunks as they arrive, so a word split across two chunks is not replaced; a
/// hook that needs whole words keeps the tail of one chunk and returns it with the next (or
/// with the final empty call).
#[repr(C)]
#[derive(StableAbi)]
pub struct Stream {
    on: bool,
    hook: ROption<StreamHook>,
}

/// A chunk hook, erased: the plugin's `Arc<Mutex<F>>` and the plugin's functions for it.
#[repr(C)]
#[derive(StableAbi)]
struct StreamHook {
    state: *const c_void,
    call: unsafe extern "C" fn(*const c_void, Body) -> RResult<Body, RString>,
    clone: unsafe extern "C" fn(*const c_void),
    drop: unsafe extern "C" fn(*const c_void),
}

// SAFETY: the state is an `Arc<Mutex<F>>` with `F: Send`, which is `Send + Sync`; it is only
// ever used through the functions stored beside it.
unsafe impl Send for StreamHook {}
// SAFETY: see `Send`; calls lock the mutex.
unsafe impl Sync for StreamHook {}

type Shared<F> = Mutex<F>;

unsafe extern "C" fn call_hook<F>(state: *const c_void, chunk: Body) -> RResult<Body, RString>
where
    F: FnMut(Body) -> Body + Send + 'static,
{
    // SAFETY: `with_hook::<F>` made `state` with `Arc::into_raw`, and it stays alive while a
    // `StreamHook` holds it.
    let hook = unsafe { &*(state as *const Shared<F>) };
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut f = hook.lock().unwrap_or_else(PoisonError::into_inner);
        f(chunk)
    }));
    match result {
        Ok(body) => ROk(body),
        Err(payload) => RErr(panic_message(payload.as_ref()).into()),
    }
}

unsafe extern "C" fn clone_hook<F>(state: *const c_void) {
    // SAFETY: `state` came from `Arc::into_raw` of this very type and is alive (the caller
    // holds a reference).
    unsafe { Arc::increment_strong_count(state as *const Shared<F>) }
}

unsafe extern "C" fn drop_hook<F>(state: *const c_void) {
    // Dropping the last reference drops the closure, whose `Drop` may panic: keep that on
    // this side of the boundary.
    let _ = catch_unwind(|| {
        // SAFETY: `state` came from `Arc::into_raw` of this type; each `StreamHook` owns one
        // reference and gives it back once, here.
        drop(unsafe { Arc::from_raw(state as *const Shared<F>) })
    });
}

impl Stream {
    /// Not streamed: the body is read whole (the default).
    ///
    /// ```
    /// use interpose_plugin_abi::{testing, Stream};
    ///
    /// let mut flow = testing::flow();
    /// assert_eq!(flow.request.stream, Stream::off()); // the default
    /// flow.request.stream = Stream::on();
    /// flow.request.stream = Stream::off(); // changed our mind: read the body whole
    /// assert!(!flow.request.stream.is_on());
    /// ```
    pub const fn off() -> Stream {
        Stream {
            on: false,
            hook: ROption::RNone,
        }
    }

    /// Streamed unchanged, chunk by chunk, without buffering (mitmproxy's `stream = True`).
    ///
    /// ```
    /// use interpose_plugin_abi::{testing, Stream};
    ///
    /// let mut flow = testing::flow_with_response();
    /// // In `responseheaders`: pass large downloads through without keeping them.
    /// let response = flow.response_mut().unwrap();
    /// response.stream = Stream::on();
    /// assert!(response.stream.is_on() && !response.stream.has_hook());
    /// ```
    pub const fn on() -> Stream {
        Stream {
            on: true,
            hook: ROption::RNone,
        }
    }

    /// Streamed through `f` (mitmproxy's `stream = callable`): the proxy calls it once per
    /// chunk and sends what it returns (nothing, for an empty body), then once more with an
    /// empty body at the end, whose return value is sent before the body ends.
    ///
    /// A panic in `f` is caught; the proxy then fails the flow.
    ///
    /// ```
    /// use interpose_plugin_abi::{Body, Stream};
    ///
    /// let mut total = 0;
    /// let mut stream = Stream::with_hook(move |chunk: Body| {
    ///     total += chunk.len(); // state kept from chunk to chunk
    ///     Body::from(format!("{total}"))
    /// });
    /// assert!(stream.is_on() && stream.has_hook());
    /// assert_eq!(&stream.call_hook(Body::from("abc")).unwrap()[..], b"3");
    /// assert_eq!(&stream.call_hook(Body::from("de")).unwrap()[..], b"5");
    /// ```
    pub fn with_hook<F>(f: F) -> Stream
    where
        F: FnMut(Body) -> Body + Send + 'static,
    {
        let state = Arc::into_raw(Arc::new(Mutex::new(f))) as *const c_void;
        Stream {
            on: true,
            hook: ROption::RSome(StreamHook {
                state,
                call: call_hook::<F>,
                clone: clone_hook::<F>,
                drop: drop_hook::<F>,
            }),
        }
    }

    /// Whether the body is streamed.
    ///
    /// See the examples on [`Stream::on`] and [`Stream::off`].
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Whether chunks go through a hook.
    ///
    /// See the example on [`Stream::with_hook`].
    pub fn has_hook(&self) -> bool {
        self.hook.is_some()
    }

    /// Passes one chunk through the hook (used by the host): without a hook the chunk comes
    /// back unchanged; `Err` carries the message of a panic in the hook.
    ///
    /// ```
    /// use interpose_plugin_abi::{Body, Stream};
    ///
    /// let mut stream = Stream::with_hook(|chunk: Body| Body::from(chunk.to_ascii_uppercase()));
    /// assert_eq!(&stream.call_hook(Body::from("abc")).unwrap()[..], b"ABC");
    ///
    /// let mut panicky = Stream::with_hook(|_: Body| -> Body { panic!("bad chunk") });
    /// assert_eq!(panicky.call_hook(Body::empty()).unwrap_err(), "bad chunk");
    /// ```
    pub fn call_hook(&mut self, chunk: Body) -> Result<Body, String> {
        match &self.hook {
            ROption::RSome(hook) => {
                // SAFETY: `call` is the function made for this state by `with_hook`.
                match unsafe { (hook.call)(hook.state, chunk) } {
                    ROk(body) => Ok(body),
                    RErr(message) => Err(message.into_string()),
                }
            }
            ROption::RNone => Ok(chunk),
        }
    }
}

impl Default for Stream {
    fn default() -> Self {
        Stream::off()
    }
}

impl Clone for Stream {
    /// The copy shares the hook (and its state) with the original.
    fn clone(&self) -> Self {
        let hook = match &self.hook {
            ROption::RSome(hook) => {
                // SAFETY: `clone` is the function made for this state by `with_hook`, and
                // `self` holds a reference to the state.
                unsafe { (hook.clone)(hook.state) };
                ROption::RSome(StreamHook {
                    state: hook.state,
                    call: hook.call,
                    clone: hook.clone,
                    drop: hook.drop,
                })
            }
            ROption::RNone => ROption::RNone,
        };
        Stream { on: self.on, hook }
    }
}

impl Drop for StreamHook {
    fn drop(&mut self) {
        // SAFETY: `drop` is the function made for this state, and this hook owns one
        // reference to it, given back exactly once.
        unsafe { (self.drop)(self.state) }
    }
}

impl PartialEq for Stream {
    /// Equal when both are on or off and both have a hook or none (hooks are not comparable).
    fn eq(&self, other: &Self) -> bool {
        self.on == other.on && self.has_hook() == other.has_hook()
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("on", &self.on)
            .field("hook", &self.has_hook())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn off_on_and_debug() {
        assert!(!Stream::default().is_on());
        assert!(Stream::on().is_on() && !Stream::on().has_hook());
        assert_eq!(
            format!("{:?}", Stream::on()),
            "Stream { on: true, hook: false }"
        );
        let hooked = Stream::with_hook(|b| b);
        assert_eq!(format!("{hooked:?}"), "Stream { on: true, hook: true }");
        assert_eq!(hooked, hooked.clone());
        assert_ne!(hooked, Stream::on());
        let mut plain = Stream::on();
        assert_eq!(&plain.call_hook(Body::from("x")).unwrap()[..], b"x");
    }

    #[test]
    fn hook_sees_every_chunk_and_the_end() {
        let mut seen = Vec::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut stream = Stream::with_hook(move |chunk: Body| {
            tx.send(chunk.to_vec()).unwrap();
            if chunk.is_empty() {
                Body::from("!")
            } else {
                Body::from(chunk.text().unwrap().to_uppercase())
            }
        });
        for chunk in ["ab", "cd", ""] {
            seen.push(stream.call_hook(Body::from(chunk)).unwrap().to_vec());
        }
        assert_eq!(seen, [b"AB".to_vec(), b"CD".to_vec(), b"!".to_vec()]);
        assert_eq!(rx.try_iter().count(), 3);
    }

    #[test]
    fn clones_share_the_hook_and_it_is_dropped_once() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        struct Counted;
        impl Drop for Counted {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::SeqCst);
            }
        }
        let counted = Counted;
        let mut calls = 0;
        let mut a = Stream::with_hook(move |_| {
            let _keep = &counted;
            calls += 1;
            Body::from(calls.to_string())
        });
        let mut b = a.clone();
        assert_eq!(a.call_hook(Body::empty()).unwrap().text(), Some("1"));
        assert_eq!(b.call_hook(Body::empty()).unwrap().text(), Some("2"));
        drop(a);
        assert_eq!(DROPS.load(Ordering::SeqCst), 0);
        drop(b);
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_panicking_hook_is_an_error() {
        let mut stream = Stream::with_hook(|_| panic!("hook broke"));
        assert_eq!(stream.call_hook(Body::from("x")).unwrap_err(), "hook broke");
        // Still callable (the lock is not left poisoned for good).
        assert!(stream.call_hook(Body::from("x")).is_err());
    }
}
