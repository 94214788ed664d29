//! Testing addons without a proxy (mitmproxy's `taddons.context`): a [`TestContext`] that
//! records what addons log, and ready-made flows.
//!
//! ```
//! use interpose_plugin_abi::{prelude::*, testing::{self, TestContext}};
//!
//! struct Hello;
//!
//! #[addon]
//! impl Addon for Hello {
//!     fn request(&self, ctx: &Context, flow: &mut HttpFlow) {
//!         info!(ctx, "hello {}", flow.request.host());
//!     }
//! }
//!
//! let tctx = TestContext::new();
//! let mut flow = testing::flow();
//! Hello.request(tctx.ctx(), &mut flow);
//! assert_eq!(tctx.messages(), ["hello example.com"]);
//! ```

use std::{
    ffi::c_void,
    sync::{
        atomic::{AtomicBool, AtomicU8, Ordering},
        Arc, Mutex,
    },
};

use abi_stable::{
    prefix_type::WithMetadata,
    std_types::{RArc, RErr, ROk, ROption, RResult, RSlice, RStr, RString, RVec},
};

use crate::{
    addon::Addon,
    capture::CaptureFormat,
    commands::{self, CommandDecl, CommandHandler, ParamKind},
    connection::{Address, Client, Connection, Server, SocketAddress},
    context::{Context, Level},
    ffi::FlowCallback,
    ffi::{FilterPtr, HostRef, HostVTable},
    flow::{HttpFlow, Request, Response, Uuid},
    options::{self, ConfigureData, OptionDecl, OptionKind, OptionValue},
    pause::{self, Resolution},
    tls::{ClientHelloData, TlsData},
};

struct Recorder {
    lines: Mutex<Vec<(Level, String)>>,
    options: Mutex<Vec<(String, String)>>,
    declared: Mutex<Vec<Declared>>,
    commands: Mutex<Vec<TestCommand>>,
    shutdown: AtomicBool,
    injected: Mutex<Vec<Injected>>,
    replayed: Mutex<Vec<HttpFlow>>,
}

/// A WebSocket message an addon injected on a `TestContext`: flow id, to the client, payload,
/// text.
type Injected = (Uuid, bool, Vec<u8>, bool);

/// A command an addon registered on a `TestContext`: name, parameter types, function.
type TestCommand = (String, Vec<ParamKind>, Arc<CommandHandler>);

/// An option an addon declared on a `TestContext`, with its value.
struct Declared {
    name: String,
    kind: OptionKind,
    optional: bool,
    choices: Vec<String>,
    value: OptionValue,
}

impl Declared {
    fn parse(&self, text: &str) -> Result<OptionValue, String> {
        let choices: Vec<&str> = self.choices.iter().map(String::as_str).collect();
        options::parse_value(self.kind, self.optional, &choices, text)
            .map_err(|why| format!("{}: {why}", self.name))
    }
}

/// The recorder behind a context made by `TestContext::new`.
fn recorder(ctx: &Context) -> &Recorder {
    // SAFETY: every context using this host table was made by `TestContext::new`, whose
    // `host_data` points to a leaked `Recorder`, valid for the rest of the process.
    unsafe { &*(ctx.host_data() as *const Recorder) }
}

extern "C" fn record_log(ctx: &Context, level: Level, message: RStr<'_>) {
    if let Ok(mut lines) = recorder(ctx).lines.lock() {
        lines.push((level, message.to_string()));
    }
}

extern "C" fn test_option(ctx: &Context, name: RStr<'_>) -> ROption<RString> {
    if let Ok(declared) = recorder(ctx).declared.lock() {
        if let Some(option) = declared.iter().find(|o| o.name == name.as_str()) {
            return match &option.value {
                OptionValue::None => ROption::RNone,
                value => ROption::RSome(value.text().into()),
            };
        }
    }
    let options = recorder(ctx).options.lock();
    let value = options
        .ok()
        .and_then(|options| options.iter().find(|(n, _)| n == name.as_str()).cloned());
    value.map(|(_, v)| RString::from(v)).into()
}

/// What the test host answers for the services only the proxy has.
const HOST_ONLY: &str = "flow filters and capture formats live in the proxy: TestContext \
                         has none (test them end to end)";

extern "C" fn test_filter_compile(_ctx: &Context, _expr: RStr<'_>) -> RResult<FilterPtr, RString> {
    RErr(HOST_ONLY.into())
}

extern "C" fn test_filter_matches(_filter: FilterPtr, _flow: &HttpFlow) -> bool {
    false
}

extern "C" fn test_filter_free(_filter: FilterPtr) {}

extern "C" fn test_encode_flow(
    _ctx: &Context,
    _flow: &HttpFlow,
    _format: CaptureFormat,
    _out: &mut RVec<u8>,
) -> RResult<(), RString> {
    RErr(HOST_ONLY.into())
}

extern "C" fn record_shutdown(ctx: &Context) {
    recorder(ctx).shutdown.store(true, Ordering::Relaxed);
}

extern "C" fn test_add_option(ctx: &Context, decl: &OptionDecl<'_>) -> RResult<(), RString> {
    let Ok(mut declared) = recorder(ctx).declared.lock() else {
        return RErr("the test context is poisoned".into());
    };
    if declared.iter().any(|o| o.name == decl.name.as_str()) {
        return RErr(format!("an option called {} exists", decl.name).into());
    }
    declared.push(Declared {
        name: decl.name.to_string(),
        kind: decl.kind,
        optional: decl.optional,
        choices: decl.choices.iter().map(|c| c.to_string()).collect(),
        value: decl.default.clone(),
    });
    ROk(())
}

extern "C" fn test_get_option(ctx: &Context, name: RStr<'_>, out: &mut OptionValue) -> bool {
    let Ok(declared) = recorder(ctx).declared.lock() else {
        return false;
    };
    match declared.iter().find(|o| o.name == name.as_str()) {
        Some(option) => {
            *out = option.value.clone();
            true
        }
        None => false,
    }
}

extern "C" fn test_add_command(ctx: &Context, decl: CommandDecl<'_>) -> RResult<(), RString> {
    let Ok(mut commands) = recorder(ctx).commands.lock() else {
        return RErr("the test context is poisoned".into());
    };
    if commands.iter().any(|(n, ..)| n == decl.name.as_str()) {
        return RErr(format!("a command called {} exists", decl.name).into());
    }
    let params = decl.params.iter().map(|p| p.kind).collect();
    commands.push((decl.name.to_string(), params, Arc::new(decl.handler)));
    ROk(())
}

extern "C" fn test_call_command(
    ctx: &Context,
    name: RStr<'_>,
    args: RSlice<'_, RStr<'_>>,
) -> RResult<RString, RString> {
    let found = recorder(ctx)
        .commands
        .lock()
        .ok()
        .and_then(|c| c.iter().find(|(n, ..)| n == name.as_str()).cloned());
    let Some((_, params, handler)) = found else {
        return RErr(format!("Unknown command: {name}").into());
    };
    let args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
    let values = match commands::parse_args(&params, &args) {
        Ok(values) => values,
        Err(why) => return RErr(why.into()),
    };
    match handler.call(ctx, &values) {
        Ok(value) => ROk(value.text().into()),
        Err(why) => RErr(why.into()),
    }
}

extern "C" fn test_flow_with(
    _ctx: &Context,
    _id: Uuid,
    _call: FlowCallback,
    _data: *mut c_void,
) -> bool {
    // A test context holds no flows.
    false
}

extern "C" fn record_inject_websocket(
    ctx: &Context,
    flow: Uuid,
    to_client: bool,
    content: RSlice<'_, u8>,
    is_text: bool,
) -> RResult<(), RString> {
    match recorder(ctx).injected.lock() {
        Ok(mut injected) => {
            injected.push((flow, to_client, content.to_vec(), is_text));
            ROk(())
        }
        Err(_) => RErr("the test context is poisoned".into()),
    }
}

extern "C" fn record_replay_client(ctx: &Context, flow: &HttpFlow) -> RResult<(), RString> {
    if let Some(why) = crate::flow::why_not_replayable(flow) {
        return RErr(why.into());
    }
    match recorder(ctx).replayed.lock() {
        Ok(mut replayed) => {
            replayed.push(flow.clone());
            ROk(())
        }
        Err(_) => RErr("the test context is poisoned".into()),
    }
}

extern "C" fn test_read_flows(
    _ctx: &Context,
    _path: RStr<'_>,
    _flows: &mut RVec<HttpFlow>,
) -> RResult<(), RString> {
    RErr(HOST_ONLY.into())
}

static TEST_HOST: WithMetadata<HostVTable> = WithMetadata::new(HostVTable {
    log: record_log,
    option: test_option,
    filter_compile: test_filter_compile,
    filter_matches: test_filter_matches,
    filter_free: test_filter_free,
    encode_flow: test_encode_flow,
    intercept: pause::host::intercept,
    paused_with: pause::host::with,
    paused_resolve: pause::host::resolve,
    paused_release: pause::host::release,
    shutdown: record_shutdown,
    add_option: test_add_option,
    get_option: test_get_option,
    add_command: test_add_command,
    call_command: test_call_command,
    flow_with: test_flow_with,
    inject_websocket: record_inject_websocket,
    replay_client: record_replay_client,
    read_flows: test_read_flows,
});
static ALL_LEVELS: AtomicU8 = AtomicU8::new(Level::Debug as u8);

/// A host stand-in for tests: hands out a [`Context`] and records every line logged through
/// it, at every level. Its context may be cloned and kept, as the proxy's can (each
/// `TestContext` leaks a few bytes for that).
///
/// ```
/// use interpose_plugin_abi::{prelude::*, testing::TestContext};
///
/// fn load(ctx: &Context) {
///     match ctx.option("upstream") {
///         Some(upstream) => info!(ctx, "using {upstream}"),
///         None => warn!(ctx, "no upstream set"),
///     }
/// }
///
/// let tctx = TestContext::new();
/// load(tctx.ctx());
/// tctx.set_option("upstream", "http://proxy:3128");
/// load(tctx.ctx());
/// assert_eq!(tctx.logs()[0], (Level::Warn, "no upstream set".to_string()));
/// assert_eq!(tctx.messages()[1], "using http://proxy:3128");
/// ```
pub struct TestContext {
    ctx: Context,
    recorder: &'static Recorder,
}

impl TestContext {
    /// A fresh context with an empty log.
    ///
    /// See the example on [`TestContext`].
    pub fn new() -> Self {
        let recorder: &'static Recorder = Box::leak(Box::new(Recorder {
            lines: Mutex::new(Vec::new()),
            options: Mutex::new(Vec::new()),
            declared: Mutex::new(Vec::new()),
            commands: Mutex::new(Vec::new()),
            shutdown: AtomicBool::new(false),
            injected: Mutex::new(Vec::new()),
            replayed: Mutex::new(Vec::new()),
        }));
        let host_data = recorder as *const Recorder as *const c_void;
        // SAFETY: the host functions accept this context from any thread, and `recorder` is
        // leaked, so it outlives every copy of the context.
        let ctx = unsafe {
            Context::new(
                HostRef(TEST_HOST.static_as_prefix()),
                host_data,
                &ALL_LEVELS,
            )
        };
        TestContext { ctx, recorder }
    }

    /// Sets a declared option to the value `text` stands for, as `--set name=text` would,
    /// without calling `configure`; `Err` when the text is not a value of the option.
    /// See the example on [`Context::add_choice_option`].
    pub fn set_option_checked(&self, name: &str, text: &str) -> Result<(), String> {
        let mut declared = self
            .recorder
            .declared
            .lock()
            .map_err(|_| "the test context is poisoned".to_string())?;
        let option = declared
            .iter_mut()
            .find(|o| o.name == name)
            .ok_or_else(|| format!("there is no option called {name:?}"))?;
        option.value = option.parse(text)?;
        Ok(())
    }

    /// Does what the proxy does when options change (mitmproxy's `tctx.configure(addon,
    /// name=value)`): sets each declared option to the value its text stands for, then calls
    /// `addon.configure` with their names. If the addon refuses (or a text is not a value of
    /// its option), the old values are back and the reason comes back. See the example on
    /// [`ConfigureData`].
    pub fn configure<A: Addon>(&self, addon: &A, values: &[(&str, &str)]) -> Result<(), String> {
        let old: Vec<(String, OptionValue)> = {
            let declared = self.recorder.declared.lock().map_err(|e| e.to_string())?;
            declared
                .iter()
                .map(|o| (o.name.clone(), o.value.clone()))
                .collect()
        };
        let restore = || {
            if let Ok(mut declared) = self.recorder.declared.lock() {
                for option in declared.iter_mut() {
                    if let Some((_, value)) = old.iter().find(|(n, _)| *n == option.name) {
                        option.value = value.clone();
                    }
                }
            }
        };
        for (name, text) in values {
            if let Err(why) = self.set_option_checked(name, text) {
                restore();
                return Err(why);
            }
        }
        let mut data = ConfigureData::new(values.iter().map(|(n, _)| *n));
        addon.configure(&self.ctx, &mut data);
        match data.rejection() {
            Some(why) => {
                restore();
                Err(why.to_string())
            }
            None => Ok(()),
        }
    }

    /// Sets the option `name` to `value` (as text) for [`Context::option`]; mitmproxy's
    /// `tctx.options.name = value`. A declared option gets the value the text stands for
    /// (see [`TestContext::set_option_checked`], whose error this ignores).
    ///
    /// See the example on [`TestContext`].
    pub fn set_option(&self, name: &str, value: &str) {
        if self.set_option_checked(name, value).is_ok() {
            return;
        }
        if let Ok(mut options) = self.recorder.options.lock() {
            options.retain(|(n, _)| n != name);
            options.push((name.to_string(), value.to_string()));
        }
    }

    /// The context to pass to addon events.
    ///
    /// See the example on [`TestContext`].
    pub fn ctx(&self) -> &Context {
        &self.ctx
    }

    /// Every line logged so far, with its level.
    ///
    /// See the example on [`TestContext`].
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.recorder
            .lines
            .lock()
            .map(|lines| lines.clone())
            .unwrap_or_default()
    }

    /// The text of every line logged so far.
    ///
    /// See the example on [`TestContext`].
    pub fn messages(&self) -> Vec<String> {
        self.logs().into_iter().map(|(_, text)| text).collect()
    }

    /// The WebSocket messages addons injected ([`Context::inject_websocket`]), oldest first:
    /// `(flow id, to_client, payload, is_text)`.
    ///
    /// See the example on [`Context::inject_websocket`].
    pub fn injected(&self) -> Vec<(Uuid, bool, Vec<u8>, bool)> {
        self.recorder
            .injected
            .lock()
            .map(|injected| injected.clone())
            .unwrap_or_default()
    }

    /// The flows addons queued for client replay ([`Context::replay_client`]), oldest first.
    ///
    /// See the example on [`Context::replay_client`].
    pub fn replayed(&self) -> Vec<HttpFlow> {
        self.recorder
            .replayed
            .lock()
            .map(|replayed| replayed.clone())
            .unwrap_or_default()
    }

    /// Whether an addon called [`Context::shutdown`].
    ///
    /// See the example on [`Context::shutdown`].
    pub fn shutdown_requested(&self) -> bool {
        self.recorder.shutdown.load(Ordering::Relaxed)
    }

    /// Does what the proxy does after an event in which an addon paused `flow` (with
    /// [`Context::intercept`]): waits, blocking this thread, until the addon resumes or kills
    /// it, and returns how it was let go (a kill also kills `flow`). `None` when the last
    /// event on this thread paused nothing.
    ///
    /// See the examples on [`Context::intercept`] and [`Paused`](crate::Paused).
    pub fn wait_for_resume(&self, flow: &mut HttpFlow) -> Option<Resolution> {
        let slot = pause::host::take_pending()?;
        // SAFETY: `flow` is borrowed mutably for the whole wait and not used meanwhile.
        let wait = unsafe { pause::host::Wait::attach(slot, flow) };
        let resolution = wait.wait_blocking();
        drop(wait);
        if resolution == Resolution::Kill {
            flow.kill();
        }
        Some(resolution)
    }
}

impl Default for TestContext {
    fn default() -> Self {
        TestContext::new()
    }
}

/// A client connected from 127.0.0.1:22 in regular mode.
///
/// ```
/// use interpose_plugin_abi::{prelude::*, testing::{self, TestContext}};
///
/// fn client_connected(_ctx: &Context, client: &mut Client) {
///     if client.peername.port() < 1024 {
///         client.kill("privileged source port");
///     }
/// }
///
/// let mut client = testing::client();
/// client_connected(TestContext::new().ctx(), &mut client);
/// assert_eq!(client.error(), Some("privileged source port"));
/// ```
pub fn client() -> Client {
    let mut conn = Connection::new(Uuid([1; 16]));
    conn.peername = SocketAddress::from(std::net::SocketAddr::from(([127, 0, 0, 1], 22)));
    conn.sockname = SocketAddress::from(std::net::SocketAddr::from(([127, 0, 0, 1], 8080)));
    conn.timestamp_start = abi_stable::std_types::ROption::RSome(crate::now());
    Client {
        conn,
        mitmcert: abi_stable::std_types::ROption::RNone,
        proxy_mode: RStr::from_str("regular"),
    }
}

/// A server connection to `example.com:443` that is not connected yet, as `server_connect`
/// and `tls_clienthello` see one.
///
/// ```
/// use interpose_plugin_abi::testing;
///
/// let server = testing::server();
/// assert_eq!(server.address().unwrap().to_string(), "example.com:443");
/// assert!(server.peername.get().is_none()); // not connected yet
/// ```
pub fn server() -> Server {
    Server {
        conn: Connection::new(Uuid([3; 16])),
        address: ROption::RSome(Address {
            host: "example.com".into(),
            port: 443,
        }),
        timestamp_tcp_setup: ROption::RNone,
        via: ROption::RNone,
    }
}

/// The ClientHello of a browser asking `server` for `example.com` with ALPN `h2` and
/// `http/1.1`, with both decisions unset.
///
/// ```
/// use interpose_plugin_abi::testing;
///
/// let (client, server) = (testing::client(), testing::server());
/// let hello = testing::client_hello(&client, &server);
/// assert_eq!(hello.sni(), Some("example.com"));
/// assert!(!hello.ignore_connection && !hello.establish_server_tls_first);
/// let other = testing::client_hello_for(&client, &server, "example.org");
/// assert_eq!(other.sni(), Some("example.org"));
/// ```
pub fn client_hello<'a>(client: &'a Client, server: &'a Server) -> ClientHelloData<'a> {
    ClientHelloData {
        client,
        server,
        sni: ROption::RSome("example.com".into()),
        alpn_protocols: RVec::from(vec![RVec::from(&b"h2"[..]), RVec::from(&b"http/1.1"[..])]),
        cipher_suites: RVec::from(&[0x1301, 0x1302, 0x1303, 0xc02b][..]),
        ignore_connection: false,
        establish_server_tls_first: false,
    }
}

/// Like [`client_hello`], for the server name `sni`.
///
/// See the example on [`client_hello`].
pub fn client_hello_for<'a>(
    client: &'a Client,
    server: &'a Server,
    sni: &str,
) -> ClientHelloData<'a> {
    let mut hello = client_hello(client, server);
    hello.sni = ROption::RSome(sni.into());
    hello
}

/// A live flow with a `GET http://example.com/path` request and no response yet
/// (mitmproxy's `tflow()`).
///
/// ```
/// use interpose_plugin_abi::{prelude::*, testing::{self, TestContext}};
///
/// fn request(_ctx: &Context, flow: &mut HttpFlow) {
///     flow.request.set_host("example.org");
/// }
///
/// let mut flow = testing::flow();
/// request(TestContext::new().ctx(), &mut flow);
/// assert_eq!(flow.request.url(), "http://example.org/path");
/// assert!(flow.response().is_none());
/// ```
pub fn flow() -> HttpFlow {
    let request =
        Request::make("GET", "http://example.com/path", "").expect("a valid built-in URL");
    flow_for(request)
}

/// A live flow for `request`, from the [`client`] connection (mitmproxy's
/// `tflow(req=...)`).
///
/// ```
/// use interpose_plugin_abi::{prelude::*, testing};
///
/// let request = Request::make("POST", "https://example.org/api", "{}").unwrap();
/// let flow = testing::flow_for(request);
/// assert_eq!(flow.request.url(), "https://example.org/api");
/// assert!(flow.live() && flow.response().is_none());
/// ```
pub fn flow_for(request: Request) -> HttpFlow {
    HttpFlow::new(Uuid([2; 16]), RArc::new(client()), request)
}

/// What the TLS handshake events get: the handshake with `client` (`is_client`) or
/// `server`, and why it failed (for `tls_failed_*`).
///
/// ```
/// use interpose_plugin_abi::testing;
///
/// let (client, server) = (testing::client(), testing::server());
/// let data = testing::tls_data(&client, &server, false, Some("certificate expired"));
/// assert_eq!(data.error(), Some("certificate expired"));
/// assert_eq!(data.conn().id, server.id);
/// ```
pub fn tls_data<'a>(
    client: &'a Client,
    server: &'a Server,
    is_client: bool,
    error: Option<&str>,
) -> TlsData<'a> {
    TlsData {
        client,
        server,
        is_client,
        error: error.map(RString::from).into(),
    }
}

/// Like [`flow`], with a `200 OK` response whose body is `message`.
///
/// ```
/// use interpose_plugin_abi::{prelude::*, testing::{self, TestContext}};
///
/// fn response(_ctx: &Context, flow: &mut HttpFlow) {
///     if let Some(response) = flow.response_mut() {
///         response.headers.insert("x-frame-options", "DENY");
///     }
/// }
///
/// let mut flow = testing::flow_with_response();
/// response(TestContext::new().ctx(), &mut flow);
/// let headers = &flow.response().unwrap().headers;
/// assert_eq!(headers.get("x-frame-options"), Some("DENY"));
/// ```
pub fn flow_with_response() -> HttpFlow {
    let mut flow = flow();
    flow.set_response(Response::make(
        200,
        "message",
        &[("content-type", "text/plain")],
    ));
    flow
}

/// A live WebSocket flow (mitmproxy's `twebsocketflow`): a `GET ws://example.com/path`
/// upgraded by a `101` response, with `messages` as `(from_client, text)`, oldest first, and
/// the conversation still open.
///
/// ```
/// use interpose_plugin_abi::testing;
///
/// let flow = testing::websocket_flow(&[(true, "hello"), (false, "world")]);
/// assert_eq!(flow.response().unwrap().status_code, 101);
/// let ws = flow.websocket().unwrap();
/// assert_eq!(ws.messages().len(), 2);
/// assert!(ws.messages()[0].from_client() && !ws.messages()[1].from_client());
/// assert_eq!(ws.close_code(), None);
/// ```
pub fn websocket_flow(messages: &[(bool, &str)]) -> HttpFlow {
    let mut request =
        Request::make("GET", "http://example.com/path", "").expect("a valid built-in URL");
    request.headers.insert("connection", "upgrade");
    request.headers.insert("upgrade", "websocket");
    request.headers.insert("sec-websocket-version", "13");
    let mut flow = flow_for(request);
    flow.set_response(Response::make(
        101,
        "",
        &[("connection", "upgrade"), ("upgrade", "websocket")],
    ));
    let mut ws = crate::flow::WebSocketData::default();
    for (from_client, text) in messages {
        ws.push_message(crate::flow::WebSocketMessage::new(
            crate::flow::WebSocketMessageType::Text,
            *from_client,
            text.as_bytes().to_vec(),
        ));
    }
    flow.websocket = ROption::RSome(ws);
    flow
}

/// `flow` as the proxy replays it after [`Context::replay_client`]: live again, without
/// response or error, marked `is_replay() == Some(ReplaySide::Request)`.
///
/// ```
/// use interpose_plugin_abi::{flow::ReplaySide, testing};
///
/// let replay = testing::replay_of(&testing::flow_with_response().copy());
/// assert_eq!(replay.is_replay(), Some(ReplaySide::Request));
/// assert!(replay.live() && replay.response().is_none());
/// ```
pub fn replay_of(flow: &HttpFlow) -> HttpFlow {
    let mut replay = flow.clone();
    replay.is_replay = ROption::RSome(crate::flow::ReplaySide::Request);
    replay.response = ROption::RNone;
    replay.error = ROption::RNone;
    replay.live = true;
    replay
}
