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
///   (`&mut TlsData`), `tls` (`&TlsData`).
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
                load, Load, lifecycle, Load
            )
            (
                /// The proxy is up and running: every addon is loaded.
                running, Running, lifecycle, Running
            )
            (
                /// The proxy is shutting down; this is the last event the addon sees.
                done, Done, lifecycle, Done
            )
            (
                /// A client connected. Calling `client.kill(..)` refuses the connection.
                client_connected, ClientConnected, client_mut, Connected
            )
            (
                /// A client connection closed.
                client_disconnected, ClientDisconnected, client, Disconnected
            )
            (
                /// The proxy is about to connect to a server. Calling `data.server.kill(..)`
                /// aborts the connection and fails the flow.
                server_connect, ServerConnect, server_mut, Connect
            )
            (
                /// The proxy connected to a server.
                server_connected, ServerConnected, server, Connected
            )
            (
                /// A server connection closed.
                server_disconnected, ServerDisconnected, server, Disconnected
            )
            (
                /// Connecting to a server failed; `data.server.error` says why.
                server_connect_error, ServerConnectError, server, ConnectError
            )
            (
                /// The request head was read; the body is still empty. Setting
                /// `flow.response` answers without contacting the server; setting
                /// `flow.request.stream` streams the request body to the server.
                requestheaders, RequestHeaders, http, RequestHeaders
            )
            (
                /// The whole request was read. Setting `flow.response` answers without
                /// contacting the server; changing `flow.request.host`/`port`/`scheme` sends
                /// it elsewhere. With request streaming on, this comes after the body went
                /// through, and `flow.request.content` is empty.
                request, Request, http, Request
            )
            (
                /// The response head was read; the body is still empty. Setting
                /// `flow.response.stream` streams the response body to the client.
                responseheaders, ResponseHeaders, http, ResponseHeaders
            )
            (
                /// The whole response was read; changes are sent to the client. With
                /// response streaming on, this comes after the body went through, and
                /// `content` is empty.
                response, Response, http, Response
            )
            (
                /// The flow failed (server unreachable, protocol error, killed);
                /// `flow.error` says why and where. Every flow gets either `response` or
                /// `error`, never both.
                error, Error, http, Error
            )
            (
                /// An HTTP `CONNECT` request was received (regular mode). Setting a
                /// non-2xx `flow.response` (e.g. 403 or 407) sends it to the client and the
                /// tunnel is not opened.
                http_connect, HttpConnect, http, HttpConnect
            )
            (
                /// A client sent a TLS ClientHello (mitmproxy's `tls_clienthello`). Setting
                /// `data.ignore_connection` passes the connection through untouched;
                /// setting `data.establish_server_tls_first` handshakes with the server
                /// before the client.
                tls_clienthello, TlsClientHello, clienthello, ClientHello
            )
            (
                /// The TLS handshake with the client is about to start. The proxy sets it up
                /// from its options (where mitmproxy's addons set `data.ssl_conn`); `data`
                /// is `&mut` for the handshake settings a later ABI may hand to addons.
                tls_start_client, TlsStartClient, tls_mut, StartClient
            )
            (
                /// The TLS handshake with the server is about to start. The proxy sets it up
                /// from its options (where mitmproxy's addons set `data.ssl_conn`); `data`
                /// is `&mut` for the handshake settings a later ABI may hand to addons.
                tls_start_server, TlsStartServer, tls_mut, StartServer
            )
            (
                /// The TLS handshake with the client succeeded; `data.conn()` has the
                /// negotiated `tls_version`, `cipher`, `alpn` and `sni`.
                tls_established_client, TlsEstablishedClient, tls, EstablishedClient
            )
            (
                /// The TLS handshake with the server succeeded; `data.conn()` has the
                /// negotiated `tls_version`, `cipher`, `alpn` and the server's
                /// `certificate_list`.
                tls_established_server, TlsEstablishedServer, tls, EstablishedServer
            )
            (
                /// The TLS handshake with the client failed; `data.error` says why.
                tls_failed_client, TlsFailedClient, tls, FailedClient
            )
            (
                /// The TLS handshake with the server failed; `data.error` says why.
                tls_failed_server, TlsFailedServer, tls, FailedServer
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
