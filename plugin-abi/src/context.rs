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
    std_types::{RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

use crate::{
    capture::{self, CaptureFormat, Filter},
    commands::{CommandArgs, CommandDecl, CommandHandler, CommandValue, Param, ParamKind},
    ffi::HostRef,
    flow::{HttpFlow, Uuid},
    options::{OptionDecl, OptionKind, OptionType, OptionValue},
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

    /// Declares an option of this addon (mitmproxy's `loader.add_option`), with its default
    /// value and one line of help; call it in `load`. The type of `default` is the option's
    /// type: `bool`, `i64`, [`Size`](crate::Size), `String`, `Vec<String>`, or an `Option` of
    /// those for an option that may be unset. The option then takes values from `--set`,
    /// `config.yaml` and the control endpoint's `set`, as the proxy's own options do. A name
    /// another addon (or the proxy) already has is refused: the proxy reports both and does not
    /// start. See [`crate::options`].
    pub fn add_option<T: OptionType>(&self, name: &str, default: T, help: &str) {
        self.declare_option(name, T::KIND, T::OPTIONAL, default.into_value(), help, &[]);
    }

    /// Declares a text option whose value must be one of `choices` (mitmproxy's
    /// `typing.Sequence` choices).
    ///
    /// ```
    /// use interpose_plugin_abi::testing::TestContext;
    ///
    /// let tctx = TestContext::new();
    /// let ctx = tctx.ctx();
    /// ctx.add_choice_option("level", "medium", &["low", "medium", "high"], "How strict");
    /// assert_eq!(ctx.get_option::<String>("level"), "medium");
    /// assert!(tctx.set_option_checked("level", "extreme").is_err());
    /// ```
    pub fn add_choice_option(&self, name: &str, default: &str, choices: &[&str], help: &str) {
        let choices: Vec<RStr<'_>> = choices.iter().map(|c| RStr::from_str(c)).collect();
        self.declare_option(
            name,
            OptionKind::Str,
            false,
            OptionValue::Str(default.into()),
            help,
            &choices,
        );
    }

    fn declare_option(
        &self,
        name: &str,
        kind: OptionKind,
        optional: bool,
        default: OptionValue,
        help: &str,
        choices: &[RStr<'_>],
    ) {
        let decl = OptionDecl {
            name: RStr::from_str(name),
            kind,
            optional,
            default,
            help: RStr::from_str(help),
            choices: RSlice::from_slice(choices),
        };
        if let RResult::RErr(why) = (self.host.add_option())(self, &decl) {
            self.log(Level::Error, &format!("option {name} refused: {why}"));
        }
    }

    /// The current value of the option called `name` (this addon's, another addon's, or one
    /// of the proxy's), typed. Reading takes no lock, and for bools, numbers and sizes
    /// allocates nothing: read options in events rather than caching them.
    ///
    /// # Panics
    ///
    /// When there is no such option or it is not of type `T` (a mistake in the addon; the
    /// panic is caught at the plugin boundary and logged). [`Context::try_get_option`] returns
    /// an error instead.
    pub fn get_option<T: OptionType>(&self, name: &str) -> T {
        match self.try_get_option(name) {
            Ok(value) => value,
            Err(why) => panic!("{why}"),
        }
    }

    /// Like [`Context::get_option`], with an error for an unknown option or another type.
    ///
    /// ```
    /// use interpose_plugin_abi::testing::TestContext;
    ///
    /// let tctx = TestContext::new();
    /// tctx.ctx().add_option("limit", 5i64, "A limit");
    /// assert_eq!(tctx.ctx().try_get_option::<i64>("limit"), Ok(5));
    /// assert!(tctx.ctx().try_get_option::<bool>("limit").is_err());
    /// assert!(tctx.ctx().try_get_option::<bool>("nope").is_err());
    /// ```
    pub fn try_get_option<T: OptionType>(&self, name: &str) -> Result<T, String> {
        let mut value = OptionValue::None;
        if !(self.host.get_option())(self, RStr::from_str(name), &mut value) {
            return Err(format!("there is no option called {name:?}"));
        }
        let kind = std::mem::discriminant(&value);
        T::from_value(value).ok_or_else(|| {
            format!(
                "option {name:?} is not of the type asked for ({:?}{}; it holds {kind:?})",
                T::KIND,
                if T::OPTIONAL { ", optional" } else { "" }
            )
        })
    }

    /// Registers a command of this addon (mitmproxy's `@command.command(name)`), with one line
    /// of help, its parameters (name and type, in order) and its function, which gets the
    /// arguments checked and typed and returns a value or an error message. Call it in `load`.
    /// See [`crate::commands`].
    pub fn add_command<F>(&self, name: &str, help: &str, params: &[(&str, ParamKind)], f: F)
    where
        F: Fn(&Context, CommandArgs<'_>) -> Result<CommandValue, String> + Send + Sync + 'static,
    {
        let params: Vec<Param<'_>> = params
            .iter()
            .map(|(name, kind)| Param {
                name: RStr::from_str(name),
                kind: *kind,
            })
            .collect();
        let decl = CommandDecl {
            name: RStr::from_str(name),
            help: RStr::from_str(help),
            params: RSlice::from_slice(&params),
            handler: CommandHandler::new(f),
        };
        if let RResult::RErr(why) = (self.host.add_command())(self, decl) {
            self.log(Level::Error, &format!("command {name} refused: {why}"));
        }
    }

    /// Calls a command (an addon's or the proxy's: `set`, `flow.resume`...) with its arguments
    /// as text, as `interpose ctl` would (mitmproxy's `ctx.master.commands.call_strings`);
    /// `Ok` is the result as text. See [`crate::commands`].
    pub fn call_command(&self, name: &str, args: &[&str]) -> Result<String, String> {
        let args: Vec<RStr<'_>> = args.iter().map(|a| RStr::from_str(a)).collect();
        (self.host.call_command())(self, RStr::from_str(name), RSlice::from_slice(&args))
            .into_result()
            .map(RString::into_string)
            .map_err(RString::into_string)
    }

    /// Runs `f` on the flow with id `id`, if the proxy holds it (a paused flow: what a
    /// command's flows argument names), and returns what `f` returns.
    ///
    /// ```
    /// use interpose_plugin_abi::{prelude::*, testing::{self, TestContext}};
    ///
    /// let tctx = TestContext::new();
    /// let flow = testing::flow();
    /// assert_eq!(tctx.ctx().with_flow(flow.id, |f| f.request.host().to_string()), None);
    /// ```
    pub fn with_flow<F: FnOnce(&mut HttpFlow) -> R, R>(&self, id: Uuid, f: F) -> Option<R> {
        let mut call = crate::pause::FlowCall::new(f);
        let found = (self.host.flow_with())(self, id, call.callback(), call.data());
        if found {
            call.into_result()
        } else {
            None
        }
    }

    /// Sends a message on the live WebSocket flow with id `flow`, to the client (`to_client`)
    /// or to the server, as text (`is_text`) or binary (mitmproxy's `inject.websocket`
    /// command). The message goes through `websocket_message` like any other, marked
    /// [`injected`](crate::flow::WebSocketMessage::injected). `Err` when the flow is not an
    /// open WebSocket (it closed, or never was one) or has too many messages queued.
    ///
    /// ```
    /// use interpose_plugin_abi::{prelude::*, testing::{self, TestContext}};
    ///
    /// /// Answers "ping" with "pong" from the proxy itself.
    /// fn websocket_message(ctx: &Context, flow: &mut HttpFlow) {
    ///     let id = flow.id;
    ///     let Some(message) = flow.websocket_mut().and_then(|ws| ws.last_message_mut()) else {
    ///         return;
    ///     };
    ///     if message.text() == Some("ping") {
    ///         message.drop();
    ///         let to_client = message.from_client();
    ///         ctx.inject_websocket(id, to_client, b"pong", true).unwrap();
    ///     }
    /// }
    ///
    /// let tctx = TestContext::new();
    /// let mut flow = testing::websocket_flow(&[(true, "ping")]);
    /// websocket_message(tctx.ctx(), &mut flow);
    /// assert_eq!(tctx.injected(), [(flow.id, true, b"pong".to_vec(), true)]);
    /// ```
    pub fn inject_websocket(
        &self,
        flow: Uuid,
        to_client: bool,
        content: &[u8],
        is_text: bool,
    ) -> Result<(), String> {
        (self.host.inject_websocket())(self, flow, to_client, RSlice::from_slice(content), is_text)
            .into_result()
            .map_err(RString::into_string)
    }

    /// Sends the request of `flow` to its server again, as a new exchange through the addons
    /// (mitmproxy's `replay.client` command): a copy is queued and replayed with
    /// `is_replay() == Some(ReplaySide::Request)`, its response and events as for any flow.
    /// Replays run one at a time unless `client_replay_concurrency` says otherwise. `Err`
    /// when the flow cannot be replayed: a live flow (use [`HttpFlow::copy`]), a paused one,
    /// a WebSocket flow, or one whose request body was streamed and not kept.
    ///
    /// ```
    /// use interpose_plugin_abi::{flow::ReplaySide, prelude::*, testing::{self, TestContext}};
    ///
    /// /// Sends every request a second time, to /changed (mitmproxy's
    /// /// duplicate-modify-replay example).
    /// fn request(ctx: &Context, flow: &mut HttpFlow) {
    ///     if flow.is_replay() == Some(ReplaySide::Request) {
    ///         return;
    ///     }
    ///     let mut copy = flow.copy();
    ///     copy.request.set_path("/changed");
    ///     ctx.replay_client(&copy).unwrap();
    /// }
    ///
    /// let tctx = TestContext::new();
    /// request(tctx.ctx(), &mut testing::flow());
    /// assert_eq!(tctx.replayed()[0].request.path(), "/changed");
    /// assert!(tctx.ctx().replay_client(&testing::flow()).is_err()); // a live flow
    /// ```
    pub fn replay_client(&self, flow: &HttpFlow) -> Result<(), String> {
        (self.host.replay_client())(self, flow)
            .into_result()
            .map_err(RString::into_string)
    }

    /// The HTTP flows of the flow file at `path` (mitmproxy's format; older versions are
    /// upgraded as mitmproxy upgrades them), as they were saved: not live, each with its
    /// request and, when it had one, its response (mitmproxy's `io.read_flows_from_paths`).
    /// Flows of other kinds (TCP, UDP, DNS) are left out.
    ///
    /// ```no_run
    /// use interpose_plugin_abi::prelude::*;
    ///
    /// fn load(ctx: &Context) {
    ///     match ctx.read_flows("saved.mitm") {
    ///         Ok(flows) => info!(ctx, "{} flows saved", flows.len()),
    ///         Err(why) => warn!(ctx, "{why}"),
    ///     }
    /// }
    /// # let _ = load;
    /// ```
    pub fn read_flows(&self, path: impl AsRef<std::path::Path>) -> Result<Vec<HttpFlow>, String> {
        let path = path.as_ref().to_string_lossy();
        let mut flows = RVec::new();
        (self.host.read_flows())(self, RStr::from_str(&path), &mut flows)
            .into_result()
            .map_err(RString::into_string)?;
        Ok(flows.into_vec())
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
