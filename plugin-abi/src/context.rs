//! The handle every event receives: what the host provides to an addon (its log, option
//! values, flow filters and capture formats).
//!
//! Each addon gets its own [`Context`], valid for as long as the host runs, so that host
//! services know which addon is calling.
//!
//! ```
//! use interpose_plugin_abi::{prelude::*, testing::{self, TestContext}};
//!
//! fn request(ctx: &Context, flow: &mut HttpFlow) {
//!     if ctx.option("block_hosts").is_some_and(|hosts| hosts.contains(flow.request.host())) {
//!         warn!(ctx, "blocked {}", flow.request.host());
//!         flow.kill();
//!     }
//! }
//!
//! let tctx = TestContext::new();
//! tctx.set_option("block_hosts", "example.com,example.net");
//! let mut flow = testing::flow();
//! request(tctx.ctx(), &mut flow);
//! assert!(flow.killed());
//! assert_eq!(tctx.messages(), ["blocked example.com"]);
//! ```

use std::{
    ffi::c_void,
    fmt,
    sync::atomic::{AtomicU8, Ordering},
};

use abi_stable::{
    std_types::{RStr, RString},
    StableAbi,
};

use crate::{
    capture::{self, CaptureFormat, Filter},
    ffi::HostRef,
    flow::HttpFlow,
    pause::Paused,
};

/// Severity of a log line, most severe first.
///
/// ```
/// use interpose_plugin_abi::Level;
///
/// assert!(Level::Error < Level::Debug); // most severe first
/// assert_eq!(Level::Warn.as_str(), "warn");
/// assert_eq!(Level::from_u8(Level::Info as u8), Some(Level::Info));
/// assert_eq!(Level::from_u8(9), None);
/// ```
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Something failed.
    Error = 1,
    /// Something looks wrong but processing goes on.
    Warn = 2,
    /// Normal output (shown by default).
    Info = 3,
    /// Detail for debugging (shown with `-v`).
    Debug = 4,
}

impl Level {
    /// Lower-case name: `error`, `warn`, `info`, `debug`.
    ///
    /// See the example on [`Level`].
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    /// The level with the given numeric value, if any.
    ///
    /// See the example on [`Level`].
    pub fn from_u8(value: u8) -> Option<Level> {
        Some(match value {
            1 => Level::Error,
            2 => Level::Warn,
            3 => Level::Info,
            4 => Level::Debug,
            _ => return None,
        })
    }
}

/// The host, as seen by one addon. Every event receives one.
///
/// A context is valid for as long as the proxy runs: clone it to keep it beyond the event
/// (`ctx.clone()` gives an owned, `Send + Sync + 'static` handle) and log, read options or
/// resume flows from your own threads.
///
/// ```
/// use interpose_plugin_abi::{prelude::*, testing::TestContext};
///
/// struct Greeter;
///
/// #[addon]
/// impl Addon for Greeter {
///     fn load(&self, ctx: &Context) {
///         let name = ctx.option("greeting_name").unwrap_or_else(|| "world".into());
///         if ctx.log_enabled(Level::Debug) {
///             ctx.log(Level::Debug, "about to greet");
///         }
///         ctx.log_fmt(Level::Info, format_args!("hello {name}"));
///     }
/// }
///
/// let tctx = TestContext::new();
/// tctx.set_option("greeting_name", "proxy");
/// Greeter.load(tctx.ctx());
/// assert_eq!(tctx.messages(), ["about to greet", "hello proxy"]);
/// ```
#[repr(C)]
#[derive(StableAbi, Clone)]
pub struct Context {
    host: HostRef,
    /// The host's own per-addon data; only the host's functions interpret it.
    host_data: *const c_void,
    /// The most verbose level the host currently prints (see [`Level`] values).
    max_level: &'static AtomicU8,
}

// SAFETY: `host_data` is only passed back to the host's functions, which the host implements
// to be callable from any thread; the other fields are `Sync` themselves.
unsafe impl Sync for Context {}
// SAFETY: as for `Sync`; a context is never mutated after creation.
unsafe impl Send for Context {}

impl Context {
    /// Builds a context (done by the host, or by [`crate::testing`] in tests; addons use
    /// `TestContext`, so this is hidden from the docs).
    ///
    /// # Safety
    ///
    /// Every function in `host` must accept this context (and its `host_data`) from any
    /// thread, for as long as the context is used.
    #[doc(hidden)]
    pub const unsafe fn new(
        host: HostRef,
        host_data: *const c_void,
        max_level: &'static AtomicU8,
    ) -> Self {
        Context {
            host,
            host_data,
            max_level,
        }
    }

    /// The host's per-addon data (for the host's implementation of its functions).
    #[doc(hidden)]
    pub fn host_data(&self) -> *const c_void {
        self.host_data
    }

    /// The current value of the option called `name`, as text (`--options` shows the same
    /// form): `None` when it is unset or there is no such option.
    ///
    /// See the example on [`Context`].
    pub fn option(&self, name: &str) -> Option<String> {
        (self.host.option())(self, RStr::from_str(name))
            .into_option()
            .map(RString::into_string)
    }

    /// Compiles a flow filter expression in mitmproxy's filter language; the error says what
    /// is wrong and where.
    ///
    /// ```no_run
    /// use interpose_plugin_abi::{prelude::*, testing};
    ///
    /// fn running(ctx: &Context) {
    ///     let filter = ctx.filter("~m POST & ~d api.example.com").expect("a valid expression");
    ///     let flow = testing::flow(); // a GET: does not match
    ///     assert!(!filter.matches(&flow));
    ///     assert!(ctx.filter("~q ~").is_err()); // the error says what is wrong
    /// }
    /// # let _ = running;
    /// ```
    pub fn filter(&self, expression: &str) -> Result<Filter, String> {
        Filter::compile(self.host, self, expression)
    }

    /// The filter in the option called `name`, compiled: `Ok(None)` when the option is unset
    /// or empty, `Err` (naming the option) when the expression is invalid.
    ///
    /// ```
    /// use interpose_plugin_abi::testing::TestContext;
    ///
    /// let tctx = TestContext::new();
    /// tctx.set_option("my_filter", "");
    /// assert!(tctx.ctx().filter_option("my_filter").unwrap().is_none()); // empty: no filter
    /// ```
    pub fn filter_option(&self, name: &str) -> Result<Option<Filter>, String> {
        match self.option(name).filter(|expr| !expr.trim().is_empty()) {
            Some(expr) => self
                .filter(&expr)
                .map(Some)
                .map_err(|e| format!("{name}: {e}")),
            None => Ok(None),
        }
    }

    /// Pauses `flow` (mitmproxy's `flow.intercept()`): when this event returns, the flow
    /// waits, off the worker, until the returned [`Paused`] resumes or kills it, from any
    /// thread. The addons after this one see the flow (in this event) once it is resumed.
    /// See [`crate::pause`].
    ///
    /// ```
    /// use interpose_plugin_abi::{prelude::*, testing::{self, TestContext}};
    ///
    /// let tctx = TestContext::new();
    /// let mut flow = testing::flow();
    /// let paused = tctx.ctx().intercept(&mut flow);
    /// std::thread::spawn(move || paused.resume()); // from any thread, whenever ready
    /// assert_eq!(tctx.wait_for_resume(&mut flow), Some(Resolution::Resume));
    /// ```
    pub fn intercept(&self, flow: &mut HttpFlow) -> Paused {
        Paused::new(self.host, (self.host.intercept())(self, flow))
    }

    /// Asks the proxy to shut down, as Ctrl-C does: it stops accepting connections, ends the
    /// flows in progress, and sends `done` (mitmproxy's `ctx.master.shutdown()`).
    ///
    /// ```
    /// use interpose_plugin_abi::{prelude::*, testing::{self, TestContext}};
    ///
    /// /// Stops the proxy after the first response (a one-shot capture).
    /// fn response(ctx: &Context, _flow: &mut HttpFlow) {
    ///     ctx.shutdown();
    /// }
    ///
    /// let tctx = TestContext::new();
    /// response(tctx.ctx(), &mut testing::flow_with_response());
    /// assert!(tctx.shutdown_requested());
    /// ```
    pub fn shutdown(&self) {
        (self.host.shutdown())(self);
    }

    /// Appends `flow`, encoded in `format`, to `out`.
    ///
    /// ```no_run
    /// use interpose_plugin_abi::{prelude::*, CaptureFormat};
    /// use std::io::Write;
    ///
    /// fn response(ctx: &Context, flow: &mut HttpFlow) {
    ///     let mut entry = Vec::new();
    ///     ctx.encode_flow(flow, CaptureFormat::HarEntry, &mut entry).expect("encoded");
    ///     std::io::stdout().write_all(&entry).unwrap();
    /// }
    /// # let _ = response;
    /// ```
    pub fn encode_flow(
        &self,
        flow: &HttpFlow,
        format: CaptureFormat,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        capture::encode(self.host, self, flow, format, out)
    }

    /// Whether a line at `level` would be printed; check this before formatting.
    ///
    /// See the example on [`Context`].
    #[inline]
    pub fn log_enabled(&self, level: Level) -> bool {
        level as u8 <= self.max_level.load(Ordering::Relaxed)
    }

    /// Writes `message` to the host's log at `level`, attributed to this addon.
    ///
    /// See the example on [`Context`].
    pub fn log(&self, level: Level, message: &str) {
        if self.log_enabled(level) {
            (self.host.log())(self, level, RStr::from_str(message));
        }
    }

    /// Formats and logs, skipping the formatting when `level` is not printed (what the
    /// [`info!`](crate::info) family of macros call).
    ///
    /// See the example on [`Context`].
    pub fn log_fmt(&self, level: Level, args: fmt::Arguments<'_>) {
        if self.log_enabled(level) {
            match args.as_str() {
                Some(text) => self.log(level, text),
                None => self.log(level, &args.to_string()),
            }
        }
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field(
                "max_level",
                &Level::from_u8(self.max_level.load(Ordering::Relaxed)),
            )
            .finish_non_exhaustive()
    }
}

/// Logs at [`Level::Error`] through a [`Context`]: `error!(ctx, "failed: {e}")`.
///
/// See the example on [`info!`](crate::info).
#[macro_export]
macro_rules! error {
    ($ctx:expr, $($arg:tt)+) => {
        $crate::Context::log_fmt($ctx, $crate::Level::Error, ::core::format_args!($($arg)+))
    };
}

/// Logs at [`Level::Warn`] through a [`Context`]: `warn!(ctx, "odd header {name}")`.
///
/// See the example on [`info!`](crate::info).
#[macro_export]
macro_rules! warn {
    ($ctx:expr, $($arg:tt)+) => {
        $crate::Context::log_fmt($ctx, $crate::Level::Warn, ::core::format_args!($($arg)+))
    };
}

/// Logs at [`Level::Info`] through a [`Context`]: `info!(ctx, "We've seen {n} flows")`.
///
/// ```
/// use interpose_plugin_abi::{prelude::*, testing::{self, TestContext}};
///
/// fn request(ctx: &Context, flow: &mut HttpFlow) {
///     debug!(ctx, "{:?}", flow.request.headers);
///     info!(ctx, "{} {}", flow.request.method(), flow.request.url());
///     if flow.request.headers.contains("x-debug") {
///         warn!(ctx, "debug header from {}", flow.client_conn().peername);
///     }
///     if let Err(e) = flow.request.json() {
///         error!(ctx, "not JSON: {e}");
///     }
/// }
///
/// let tctx = TestContext::new();
/// request(tctx.ctx(), &mut testing::flow());
/// let levels: Vec<Level> = tctx.logs().into_iter().map(|(level, _)| level).collect();
/// assert_eq!(levels, [Level::Debug, Level::Info, Level::Error]);
/// ```
#[macro_export]
macro_rules! info {
    ($ctx:expr, $($arg:tt)+) => {
        $crate::Context::log_fmt($ctx, $crate::Level::Info, ::core::format_args!($($arg)+))
    };
}

/// Logs at [`Level::Debug`] through a [`Context`]: `debug!(ctx, "{:?}", flow.request)`.
///
/// See the example on [`info!`](crate::info).
#[macro_export]
macro_rules! debug {
    ($ctx:expr, $($arg:tt)+) => {
        $crate::Context::log_fmt($ctx, $crate::Level::Debug, ::core::format_args!($($arg)+))
    };
}
