//! The one list of events. Everything that names events one by one is generated from
//! [`for_each_event!`](crate::for_each_event): the [`Event`](crate::Event) enum, the
//! [`Addon`](crate::Addon) methods, the [`EventTable`](crate::ffi::EventTable) and its shims,
//! `export_plugin!(functions = [...])`, and the host's dispatch lists. Adding an event is
//! adding one entry here.

/// Calls `callback! { [args] entry* }` with every event, in event-table order.
///
/// `args` are the tokens given in brackets after the callback's name (passed through
/// unchanged, e.g. a `$` for callbacks that define macros). Each entry is a parenthesised
///
/// ```text
/// ( #[doc = "..."]* name, Variant, kind, HostVariant )
/// ```
///
/// - `name`: the event as mitmproxy names it; also the name of its `Addon` method and of its
///   `EventTable` field.
/// - `Variant`: its [`Event`](crate::Event) variant.
/// - `kind`: what the event receives besides the context, which fixes the method's
///   signature: `lifecycle` (nothing), `client_mut` (`&mut Client`), `client` (`&Client`),
///   `server_mut` (`&mut ServerConnectionHookData`), `server` (`&ServerConnectionHookData`),
///   `http` (`&mut HttpFlow`), `clienthello` (`&mut ClientHelloData`), `tls_mut`
///   (`&mut TlsData`), `tls` (`&TlsData`), `configure` (`&mut ConfigureData`).
/// - `HostVariant`: its variant in the host's enum for that kind (`ClientEvent::Connected`).
///
/// Append new events at the end: the order is the layout of the event table.
#[doc(hidden)]
#[macro_export]
macro_rules! for_each_event {
    ($callback:ident $([$($args:tt)*])?) => {
        $callback! {
            [$($($args)*)?]
            (
                /// The addon was loaded (mitmproxy's `load`).
                ///
                /// ```
                /// use interpose_plugin_abi::{prelude::*, testing::TestContext};
                ///
                /// struct Lifecycle;
                ///
                /// #[addon]
                /// impl Addon for Lifecycle {
                ///     fn load(&self, ctx: &Context) {
                ///         info!(ctx, "loaded");
                ///     }
                ///     fn running(&self, ctx: &Context) {
                ///         info!(ctx, "proxy is up");
                ///     }
                ///     fn done(&self, ctx: &Context) {
                ///         info!(ctx, "bye");
                ///     }
                /// }
                ///
                /// let tctx = TestContext::new();
                /// Lifecycle.load(tctx.ctx());
                /// Lifecycle.running(tctx.ctx());
                /// Lifecycle.done(tctx.ctx());
                /// assert_eq!(tctx.messages(), ["loaded", "proxy is up", "bye"]);
                /// ```
                load, Load, lifecycle, Load
            )
            (
                /// The proxy is up and running: every addon is loaded.
                ///
                /// See the example on [`load`](crate::Addon::load).
                running, Running, lifecycle, Running
            )
            (
                /// The proxy is shutting down; this is the last event the addon sees.
                ///
                /// See the example on [`load`](crate::Addon::load).
                done, Done, lifecycle, Done
            )
            (
                /// A client connected. Calling `client.kill(..)` refuses the connection.
                ///
                /// ```
                /// use interpose_plugin_abi::{prelude::*, testing};
                ///
                /// struct LocalOnly;
                ///
                /// #[addon]
                /// impl Addon for LocalOnly {
                ///     fn client_connected(&self, _ctx: &Context, client: &mut Client) {
                ///         if !client.peername.ip().is_some_and(|ip| ip.is_loopback()) {
                ///             client.kill("local clients only");
                ///         }
                ///     }
                /// }
                ///
                /// let mut client = testing::client(); // from 127.0.0.1
                /// LocalOnly.client_connected(testing::TestContext::new().ctx(), &mut client);
                /// assert_eq!(client.error(), None);
                /// ```
                client_connected, ClientConnected, client_mut, Connected
            )
            (
                /// A client connection closed.
                ///
                /// ```
                /// use interpose_plugin_abi::{prelude::*, testing};
                ///
                /// struct Goodbye;
                ///
                /// #[addon]
                /// impl Addon for Goodbye {
                ///     fn client_disconnected(&self, ctx: &Context, client: &Client) {
                ///         info!(ctx, "{} left", client.peername);
                ///     }
                /// }
                ///
                /// let tctx = testing::TestContext::new();
                /// Goodbye.client_disconnected(tctx.ctx(), &testing::client());
                /// assert_eq!(tctx.messages(), ["127.0.0.1:22 left"]);
                /// ```
                client_disconnected, ClientDisconnected, client, Disconnected
            )
            (
                /// The proxy is about to connect to a server. Calling `data.server.kill(..)`
                /// aborts the connection and fails the flow.
                ///
                /// ```
                /// use interpose_plugin_abi::{prelude::*, testing};
                ///
                /// struct NoExample;
                ///
                /// #[addon]
                /// impl Addon for NoExample {
                ///     fn server_connect(&self, _ctx: &Context, data: &mut ServerConnectionHookData<'_>) {
                ///         if data.server.address().is_some_and(|a| a.host() == "example.com") {
                ///             data.server.kill("example.com is off limits");
                ///         }
                ///     }
                /// }
                ///
                /// let (client, mut server) = (testing::client(), testing::server());
                /// let mut data = ServerConnectionHookData { client: &client, server: &mut server };
                /// NoExample.server_connect(testing::TestContext::new().ctx(), &mut data);
                /// assert_eq!(server.error(), Some("example.com is off limits"));
                /// ```
                server_connect, ServerConnect, server_mut, Connect
            )
            (
                /// The proxy connected to a server.
                ///
                /// ```
                /// use interpose_plugin_abi::{prelude::*, testing};
                ///
                /// struct Upstreams;
                ///
                /// #[addon]
                /// impl Addon for Upstreams {
                ///     fn server_connected(&self, ctx: &Context, data: &ServerConnectionHookData<'_>) {
                ///         info!(ctx, "connected to {:?}", data.server.address());
                ///     }
                ///     fn server_disconnected(&self, ctx: &Context, data: &ServerConnectionHookData<'_>) {
                ///         info!(ctx, "{:?} closed", data.server.address());
                ///     }
                ///     fn server_connect_error(&self, ctx: &Context, data: &ServerConnectionHookData<'_>) {
                ///         warn!(ctx, "cannot connect: {}", data.server.error().unwrap_or("?"));
                ///     }
                /// }
                ///
                /// let (client, mut server) = (testing::client(), testing::server());
                /// server.kill("connection refused"); // as the host reports a failure
                /// let data = ServerConnectionHookData { client: &client, server: &mut server };
                /// let tctx = testing::TestContext::new();
                /// Upstreams.server_connect_error(tctx.ctx(), &data);
                /// assert_eq!(tctx.messages(), ["cannot connect: connection refused"]);
                /// ```
                server_connected, ServerConnected, server, Connected
            )
            (
                /// A server connection closed.
                ///
                /// See the example on [`server_connected`](crate::Addon::server_connected).
                server_disconnected, ServerDisconnected, server, Disconnected
            )
            (
                /// Connecting to a server failed; `data.server.error` says why.
                ///
                /// See the example on [`server_connected`](crate::Addon::server_connected).
                server_connect_error, ServerConnectError, server, ConnectError
            )
            (
                /// The request head was read; the body is still empty. Setting
                /// `flow.response` answers without contacting the server; setting
                /// `flow.request.stream` streams the request body to the server.
                ///
                /// ```
                /// use interpose_plugin_abi::{prelude::*, testing};
                ///
                /// struct StreamUploads;
                ///
                /// #[addon]
                /// impl Addon for StreamUploads {
                ///     fn requestheaders(&self, _ctx: &Context, flow: &mut HttpFlow) {
                ///         if flow.request.method() == "PUT" {
                ///             flow.request.stream = Stream::on();
                ///         }
                ///     }
                /// }
                ///
                /// let mut flow = testing::flow();
                /// flow.request.set_method("PUT");
                /// StreamUploads.requestheaders(testing::TestContext::new().ctx(), &mut flow);
                /// assert!(flow.request.stream.is_on());
                /// ```
                requestheaders, RequestHeaders, http, RequestHeaders
            )
            (
                /// The whole request was read. Setting `flow.response` answers without
                /// contacting the server; changing `flow.request.host`/`port`/`scheme` sends
                /// it elsewhere. With request streaming on, this comes after the body went
                /// through, and `flow.request.content` is empty.
                ///
                /// ```
                /// use interpose_plugin_abi::{prelude::*, testing};
                ///
                /// struct Reply;
                ///
                /// #[addon]
                /// impl Addon for Reply {
                ///     fn request(&self, _ctx: &Context, flow: &mut HttpFlow) {
                ///         if flow.request.path() == "/path" {
                ///             flow.set_response(Response::make(200, "from the proxy", &[]));
                ///         }
                ///     }
                /// }
                ///
                /// let mut flow = testing::flow();
                /// Reply.request(testing::TestContext::new().ctx(), &mut flow);
                /// assert_eq!(flow.response().unwrap().content.text(), Some("from the proxy"));
                /// ```
                request, Request, http, Request
            )
            (
                /// The response head was read; the body is still empty. Setting
                /// `flow.response.stream` streams the response body to the client.
                ///
                /// ```
                /// use interpose_plugin_abi::{prelude::*, testing};
                ///
                /// struct StreamVideo;
                ///
                /// #[addon]
                /// impl Addon for StreamVideo {
                ///     fn responseheaders(&self, _ctx: &Context, flow: &mut HttpFlow) {
                ///         if let Some(response) = flow.response_mut() {
                ///             let video = response.headers.get("content-type").is_some_and(|t| t.starts_with("video/"));
                ///             response.stream = if video { Stream::on() } else { Stream::off() };
                ///         }
                ///     }
                /// }
                ///
                /// let mut flow = testing::flow_with_response(); // text/plain
                /// StreamVideo.responseheaders(testing::TestContext::new().ctx(), &mut flow);
                /// assert!(!flow.response().unwrap().stream.is_on());
                /// ```
                responseheaders, ResponseHeaders, http, ResponseHeaders
            )
            (
                /// The whole response was read; changes are sent to the client. With
                /// response streaming on, this comes after the body went through, and
                /// `content` is empty.
                ///
                /// ```
                /// use interpose_plugin_abi::{prelude::*, testing};
                ///
                /// struct Shout;
                ///
                /// #[addon]
                /// impl Addon for Shout {
                ///     fn response(&self, _ctx: &Context, flow: &mut HttpFlow) {
                ///         if let Some(response) = flow.response_mut() {
                ///             let text = response.text_lossy().to_uppercase();
                ///             response.set_text(&text);
                ///         }
                ///     }
                /// }
                ///
                /// let mut flow = testing::flow_with_response();
                /// Shout.response(testing::TestContext::new().ctx(), &mut flow);
                /// assert_eq!(flow.response().unwrap().content.text(), Some("MESSAGE"));
                /// ```
                response, Response, http, Response
            )
            (
                /// The flow failed (server unreachable, protocol error, killed);
                /// `flow.error` says why and where. Every flow gets either `response` or
                /// `error`, never both.
                ///
                /// ```
                /// use interpose_plugin_abi::{prelude::*, testing};
                ///
                /// struct Failures;
                ///
                /// #[addon]
                /// impl Addon for Failures {
                ///     fn error(&self, ctx: &Context, flow: &mut HttpFlow) {
                ///         if let Some(error) = flow.error() {
                ///             warn!(ctx, "{} failed ({}): {}", flow.request.url(), error.kind, error.msg());
                ///         }
                ///     }
                /// }
                ///
                /// let mut flow = testing::flow();
                /// flow.kill();
                /// let tctx = testing::TestContext::new();
                /// Failures.error(tctx.ctx(), &mut flow);
                /// assert_eq!(tctx.messages(), ["http://example.com/path failed (killed): Connection killed."]);
                /// ```
                error, Error, http, Error
            )
            (
                /// An HTTP `CONNECT` request was received (regular mode). Setting a
                /// non-2xx `flow.response` (e.g. 403 or 407) sends it to the client and the
                /// tunnel is not opened.
                ///
                /// ```
                /// use interpose_plugin_abi::{prelude::*, testing};
                ///
                /// struct NeedAuth;
                ///
                /// #[addon]
                /// impl Addon for NeedAuth {
                ///     fn http_connect(&self, _ctx: &Context, flow: &mut HttpFlow) {
                ///         if !flow.request.headers.contains("proxy-authorization") {
                ///             let challenge = [("proxy-authenticate", "Basic realm=\"proxy\"")];
                ///             flow.set_response(Response::make(407, "", &challenge));
                ///         }
                ///     }
                /// }
                ///
                /// let mut flow = testing::flow();
                /// NeedAuth.http_connect(testing::TestContext::new().ctx(), &mut flow);
                /// assert_eq!(flow.response().unwrap().status_code, 407);
                /// ```
                http_connect, HttpConnect, http, HttpConnect
            )
            (
                /// A client sent a TLS ClientHello (mitmproxy's `tls_clienthello`). Setting
                /// `data.ignore_connection` passes the connection through untouched;
                /// setting `data.establish_server_tls_first` handshakes with the server
                /// before the client.
                ///
                /// ```
                /// use interpose_plugin_abi::{prelude::*, testing};
                ///
                /// struct PassThrough;
                ///
                /// #[addon]
                /// impl Addon for PassThrough {
                ///     fn tls_clienthello(&self, _ctx: &Context, data: &mut ClientHelloData<'_>) {
                ///         data.ignore_connection = data.sni().is_some_and(|sni| sni.ends_with(".pinned.example"));
                ///     }
                /// }
                ///
                /// let (client, server) = (testing::client(), testing::server());
                /// let mut hello = testing::client_hello_for(&client, &server, "app.pinned.example");
                /// PassThrough.tls_clienthello(testing::TestContext::new().ctx(), &mut hello);
                /// assert!(hello.ignore_connection);
                /// ```
                tls_clienthello, TlsClientHello, clienthello, ClientHello
            )
            (
                /// The TLS handshake with the client is about to start. The proxy sets it up
                /// from its options (where mitmproxy's addons set `data.ssl_conn`); `data`
                /// is `&mut` for the handshake settings a later ABI may hand to addons.
                ///
                /// See the example on [`tls_established_client`](crate::Addon::tls_established_client).
                tls_start_client, TlsStartClient, tls_mut, StartClient
            )
            (
                /// The TLS handshake with the server is about to start. The proxy sets it up
                /// from its options (where mitmproxy's addons set `data.ssl_conn`); `data`
                /// is `&mut` for the handshake settings a later ABI may hand to addons.
                ///
                /// See the example on [`tls_established_client`](crate::Addon::tls_established_client).
                tls_start_server, TlsStartServer, tls_mut, StartServer
            )
            (
                /// The TLS handshake with the client succeeded; `data.conn()` has the
                /// negotiated `tls_version`, `cipher`, `alpn` and `sni`.
                ///
                /// ```
                /// use interpose_plugin_abi::{prelude::*, testing};
                ///
                /// struct TlsLog;
                ///
                /// #[addon]
                /// impl Addon for TlsLog {
                ///     fn tls_start_client(&self, ctx: &Context, _data: &mut TlsData<'_>) {
                ///         debug!(ctx, "handshake with the client");
                ///     }
                ///     fn tls_start_server(&self, ctx: &Context, _data: &mut TlsData<'_>) {
                ///         debug!(ctx, "handshake with the server");
                ///     }
                ///     fn tls_established_client(&self, ctx: &Context, data: &TlsData<'_>) {
                ///         info!(ctx, "client TLS: {}", data.conn().tls_version().unwrap_or("?"));
                ///     }
                ///     fn tls_established_server(&self, ctx: &Context, data: &TlsData<'_>) {
                ///         info!(ctx, "server sent {} certificates", data.conn().certificate_list().len());
                ///     }
                ///     fn tls_failed_client(&self, ctx: &Context, data: &TlsData<'_>) {
                ///         warn!(ctx, "client handshake failed: {}", data.error().unwrap_or("?"));
                ///     }
                ///     fn tls_failed_server(&self, ctx: &Context, data: &TlsData<'_>) {
                ///         warn!(ctx, "server handshake failed: {}", data.error().unwrap_or("?"));
                ///     }
                /// }
                ///
                /// let (client, server) = (testing::client(), testing::server());
                /// let data = testing::tls_data(&client, &server, true, None);
                /// let tctx = testing::TestContext::new();
                /// TlsLog.tls_established_client(tctx.ctx(), &data);
                /// assert_eq!(tctx.messages(), ["client TLS: ?"]);
                /// ```
                tls_established_client, TlsEstablishedClient, tls, EstablishedClient
            )
            (
                /// The TLS handshake with the server succeeded; `data.conn()` has the
                /// negotiated `tls_version`, `cipher`, `alpn` and the server's
                /// `certificate_list`.
                ///
                /// See the example on [`tls_established_client`](crate::Addon::tls_established_client).
                tls_established_server, TlsEstablishedServer, tls, EstablishedServer
            )
            (
                /// The TLS handshake with the client failed; `data.error` says why.
                ///
                /// See the example on [`tls_established_client`](crate::Addon::tls_established_client).
                tls_failed_client, TlsFailedClient, tls, FailedClient
            )
            (
                /// The TLS handshake with the server failed; `data.error` says why.
                ///
                /// See the example on [`tls_established_client`](crate::Addon::tls_established_client).
                tls_failed_server, TlsFailedServer, tls, FailedServer
            )
            (
                /// Options changed (mitmproxy's `configure(updated)`): once after `load`
                /// with every option, then whenever options change while the proxy runs.
                /// Read the new values with `ctx.get_option`; refuse them with
                /// `data.reject(why)` (the proxy does not start, or the change is undone).
                ///
                /// See the example on [`ConfigureData`](crate::ConfigureData).
                configure, Configure, configure, Configure
            )
            (
                /// A flow's connection was upgraded to WebSocket (mitmproxy's
                /// `websocket_start`): after the `101` response went to the client, before
                /// the first message. `flow.websocket()` is the open conversation.
                ///
                /// See the example on [`websocket_message`](crate::Addon::websocket_message).
                websocket_start, WebsocketStart, http, WebsocketStart
            )
            (
                /// A WebSocket message arrived from the client or the server, or was injected
                /// (mitmproxy's `websocket_message`). It is the last of
                /// `flow.websocket().messages()`; change its content or
                /// [`drop`](crate::flow::WebSocketMessage::drop) it before it is forwarded.
                ///
                /// ```
                /// use interpose_plugin_abi::{prelude::*, testing};
                ///
                /// struct Censor;
                ///
                /// #[addon]
                /// impl Addon for Censor {
                ///     fn websocket_message(&self, _ctx: &Context, flow: &mut HttpFlow) {
                ///         let Some(message) = flow.websocket_mut().and_then(|ws| ws.last_message_mut()) else {
                ///             return;
                ///         };
                ///         if message.content.as_slice().starts_with(b"secret") {
                ///             message.drop();
                ///         } else if message.text() == Some("hi") {
                ///             message.set_text("HI");
                ///         }
                ///     }
                /// }
                ///
                /// let tctx = testing::TestContext::new();
                /// let mut flow = testing::websocket_flow(&[(true, "hi")]);
                /// Censor.websocket_message(tctx.ctx(), &mut flow);
                /// assert_eq!(flow.websocket().unwrap().messages()[0].text(), Some("HI"));
                ///
                /// let mut flow = testing::websocket_flow(&[(false, "secret!")]);
                /// Censor.websocket_message(tctx.ctx(), &mut flow);
                /// assert!(flow.websocket().unwrap().messages()[0].dropped());
                /// ```
                websocket_message, WebsocketMessage, http, WebsocketMessage
            )
            (
                /// A WebSocket connection ended (mitmproxy's `websocket_end`): closed by
                /// either side (`close_code`, `close_reason`, `closed_by_client` tell how)
                /// or broken (code 1006). This is the last event of the flow.
                ///
                /// ```
                /// use interpose_plugin_abi::{prelude::*, testing};
                ///
                /// struct Report;
                ///
                /// #[addon]
                /// impl Addon for Report {
                ///     fn websocket_end(&self, ctx: &Context, flow: &mut HttpFlow) {
                ///         if let Some(ws) = flow.websocket() {
                ///             info!(ctx, "{} messages, closed with {:?}", ws.messages().len(), ws.close_code());
                ///         }
                ///     }
                /// }
                ///
                /// let mut flow = testing::websocket_flow(&[(true, "hello")]);
                /// let tctx = testing::TestContext::new();
                /// Report.websocket_end(tctx.ctx(), &mut flow);
                /// assert_eq!(tctx.messages(), ["1 messages, closed with None"]);
                /// ```
                websocket_end, WebsocketEnd, http, WebsocketEnd
            )
        }
    };
}

/// One event method of the `Addon` trait, from its entry in [`for_each_event!`]: the no-op
/// default (`=>` followed by nothing) or a method forwarding to the free function named
/// after `=>` (for `export_plugin!(functions = [...])`).
#[doc(hidden)]
#[macro_export]
macro_rules! __event_method {
    (lifecycle $name:ident $(#[$doc:meta])* => $($f:ident)?) => {
        $(#[$doc])*
        fn $name(&self, ctx: &$crate::Context) {
            $crate::__event_method!(@body [$($f)?] ctx)
        }
    };
    (client_mut $name:ident $(#[$doc:meta])* => $($f:ident)?) => {
        $(#[$doc])*
        fn $name(&self, ctx: &$crate::Context, client: &mut $crate::Client) {
            $crate::__event_method!(@body [$($f)?] ctx client)
        }
    };
    (client $name:ident $(#[$doc:meta])* => $($f:ident)?) => {
        $(#[$doc])*
        fn $name(&self, ctx: &$crate::Context, client: &$crate::Client) {
            $crate::__event_method!(@body [$($f)?] ctx client)
        }
    };
    (server_mut $name:ident $(#[$doc:meta])* => $($f:ident)?) => {
        $(#[$doc])*
        fn $name(&self, ctx: &$crate::Context, data: &mut $crate::ServerConnectionHookData<'_>) {
            $crate::__event_method!(@body [$($f)?] ctx data)
        }
    };
    (server $name:ident $(#[$doc:meta])* => $($f:ident)?) => {
        $(#[$doc])*
        fn $name(&self, ctx: &$crate::Context, data: &$crate::ServerConnectionHookData<'_>) {
            $crate::__event_method!(@body [$($f)?] ctx data)
        }
    };
    (http $name:ident $(#[$doc:meta])* => $($f:ident)?) => {
        $(#[$doc])*
        fn $name(&self, ctx: &$crate::Context, flow: &mut $crate::HttpFlow) {
            $crate::__event_method!(@body [$($f)?] ctx flow)
        }
    };
    (clienthello $name:ident $(#[$doc:meta])* => $($f:ident)?) => {
        $(#[$doc])*
        fn $name(&self, ctx: &$crate::Context, data: &mut $crate::ClientHelloData<'_>) {
            $crate::__event_method!(@body [$($f)?] ctx data)
        }
    };
    (tls_mut $name:ident $(#[$doc:meta])* => $($f:ident)?) => {
        $(#[$doc])*
        fn $name(&self, ctx: &$crate::Context, data: &mut $crate::TlsData<'_>) {
            $crate::__event_method!(@body [$($f)?] ctx data)
        }
    };
    (configure $name:ident $(#[$doc:meta])* => $($f:ident)?) => {
        $(#[$doc])*
        fn $name(&self, ctx: &$crate::Context, data: &mut $crate::ConfigureData) {
            $crate::__event_method!(@body [$($f)?] ctx data)
        }
    };
    (tls $name:ident $(#[$doc:meta])* => $($f:ident)?) => {
        $(#[$doc])*
        fn $name(&self, ctx: &$crate::Context, data: &$crate::TlsData<'_>) {
            $crate::__event_method!(@body [$($f)?] ctx data)
        }
    };
    (@body [] $($arg:ident)*) => {{
        $(let _ = $arg;)*
    }};
    (@body [$f:ident] $($arg:ident)*) => {
        $f($($arg),*)
    };
}
