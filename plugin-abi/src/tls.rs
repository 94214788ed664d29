//! What the TLS events receive (mitmproxy's `mitmproxy/tls.py`): [`ClientHelloData`] for
//! `tls_clienthello`, [`TlsData`] for `tls_start_*`, `tls_established_*` and `tls_failed_*`.
//!
//! Both borrow the host's own [`Client`] and [`Server`], so the host builds them on the stack
//! for the duration of one event.
//!
//! ```
//! use interpose_plugin_abi::{prelude::*, testing};
//!
//! /// Leaves the bank's traffic alone: the client talks TLS with the bank itself.
//! struct SkipBank;
//!
//! #[addon]
//! impl Addon for SkipBank {
//!     fn tls_clienthello(&self, _ctx: &Context, data: &mut ClientHelloData<'_>) {
//!         if data.sni().is_some_and(|sni| sni.ends_with(".bank.example")) {
//!             data.ignore_connection = true;
//!         }
//!     }
//!
//!     fn tls_failed_client(&self, ctx: &Context, data: &TlsData<'_>) {
//!         let why = data.error().unwrap_or("-");
//!         warn!(ctx, "client {} refused our certificate: {why}", data.client.peername);
//!     }
//! }
//!
//! let (client, server) = (testing::client(), testing::server());
//! let mut hello = testing::client_hello_for(&client, &server, "www.bank.example");
//! SkipBank.tls_clienthello(testing::TestContext::new().ctx(), &mut hello);
//! assert!(hello.ignore_connection);
//! ```

use std::fmt;

use abi_stable::{
    std_types::{ROption, RString, RVec},
    StableAbi,
};

use crate::connection::{Client, Connection, Server};

/// What `tls_clienthello` receives: the client's ClientHello, and the two decisions an addon
/// can take about the connection (mitmproxy's `ClientHelloData`, with the fields of its
/// `client_hello` inline).
///
/// The hello's fields are what the client sent; the host reads back only
/// [`ignore_connection`](ClientHelloData::ignore_connection) and
/// [`establish_server_tls_first`](ClientHelloData::establish_server_tls_first).
///
/// ```
/// use interpose_plugin_abi::{prelude::*, testing};
///
/// let (client, server) = (testing::client(), testing::server());
/// let mut hello = testing::client_hello_for(&client, &server, "api.example.com");
/// assert_eq!(hello.sni(), Some("api.example.com"));
/// let alpn: Vec<&[u8]> = hello.alpn_protocols().collect();
/// assert_eq!(alpn, [&b"h2"[..], &b"http/1.1"[..]]);
/// assert!(hello.cipher_suites().contains(&0x1301)); // TLS_AES_128_GCM_SHA256
///
/// // Handshake with the server first, to mirror its certificate and ALPN choice.
/// hello.establish_server_tls_first = true;
/// ```
#[repr(C)]
#[derive(StableAbi)]
pub struct ClientHelloData<'a> {
    /// The client that sent the hello.
    pub client: &'a Client,
    /// The server the client wants to reach (its `address` is the `CONNECT` target); not
    /// connected yet unless the proxy connected eagerly.
    pub server: &'a Server,
    /// The `host_name` of the hello's server_name extension, if it has one.
    #[doc(hidden)]
    pub sni: ROption<RString>,
    /// The ALPN protocols offered, in the client's order (`b"h2"`, `b"http/1.1"`).
    #[doc(hidden)]
    pub alpn_protocols: RVec<RVec<u8>>,
    /// The cipher suites offered, as IANA numbers, in the client's order.
    #[doc(hidden)]
    pub cipher_suites: RVec<u16>,
    /// Set to pass the connection through untouched: the encrypted bytes are forwarded to
    /// the server as they are, and nothing on it is intercepted.
    pub ignore_connection: bool,
    /// Set to handshake with the server before the client, so that the certificate shown to
    /// the client can copy the server's, and the ALPN chosen for the client can follow the
    /// server's.
    pub establish_server_tls_first: bool,
}

impl ClientHelloData<'_> {
    /// The server name the client asked for (the hello's SNI), if any.
    ///
    /// See the example on [`ClientHelloData`].
    pub fn sni(&self) -> Option<&str> {
        self.sni.as_ref().map(RString::as_str).into_option()
    }

    /// The ALPN protocols offered, in the client's order.
    ///
    /// See the example on [`ClientHelloData`].
    pub fn alpn_protocols(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.alpn_protocols.iter().map(RVec::as_slice)
    }

    /// The cipher suites offered, as IANA numbers, in the client's order.
    ///
    /// See the example on [`ClientHelloData`].
    pub fn cipher_suites(&self) -> &[u16] {
        &self.cipher_suites
    }
}

/// What `tls_start_client`, `tls_start_server`, `tls_established_client`,
/// `tls_established_server`, `tls_failed_client` and `tls_failed_server` receive
/// (mitmproxy's `TlsData`): the two connections, and which of them the handshake is on.
///
/// ```
/// use interpose_plugin_abi::{prelude::*, testing};
///
/// /// Logs which TLS version each client negotiated.
/// fn tls_established_client(ctx: &Context, data: &TlsData<'_>) {
///     let version = data.conn().tls_version().unwrap_or("unknown");
///     info!(ctx, "{} speaks {version}", data.client.peername);
/// }
///
/// let (client, server) = (testing::client(), testing::server());
/// let data = testing::tls_data(&client, &server, true, None);
/// assert!(data.error().is_none());
/// let tctx = testing::TestContext::new();
/// tls_established_client(tctx.ctx(), &data);
/// assert_eq!(tctx.messages(), ["127.0.0.1:22 speaks unknown"]);
/// ```
#[repr(C)]
#[derive(StableAbi)]
pub struct TlsData<'a> {
    /// The client connection.
    pub client: &'a Client,
    /// The server connection.
    pub server: &'a Server,
    /// Whether the handshake is with the client (`tls_*_client`) rather than with the server
    /// (`tls_*_server`); [`TlsData::conn`] is that connection.
    pub is_client: bool,
    /// Why the handshake failed; set in `tls_failed_*` only.
    #[doc(hidden)]
    pub error: ROption<RString>,
}

impl TlsData<'_> {
    /// The connection the handshake is on (mitmproxy's `data.conn`): the client's or the
    /// server's.
    ///
    /// See the example on [`TlsData`].
    pub fn conn(&self) -> &Connection {
        if self.is_client {
            &self.client.conn
        } else {
            &self.server.conn
        }
    }

    /// Why the handshake failed (`tls_failed_*`), if it did.
    ///
    /// See the example on [`TlsData`].
    pub fn error(&self) -> Option<&str> {
        self.error.as_ref().map(RString::as_str).into_option()
    }
}

impl fmt::Debug for ClientHelloData<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alpn: Vec<_> = self.alpn_protocols().map(String::from_utf8_lossy).collect();
        f.debug_struct("ClientHelloData")
            .field("client", self.client)
            .field("server", self.server)
            .field("sni", &self.sni())
            .field("alpn_protocols", &alpn)
            .field("cipher_suites", &self.cipher_suites())
            .field("ignore_connection", &self.ignore_connection)
            .field(
                "establish_server_tls_first",
                &self.establish_server_tls_first,
            )
            .finish()
    }
}

impl fmt::Debug for TlsData<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsData")
            .field("client", self.client)
            .field("server", self.server)
            .field("is_client", &self.is_client)
            .field("error", &self.error())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn client_hello_accessors_use_std_types() {
        let (client, server) = (testing::client(), testing::server());
        let mut data = testing::client_hello(&client, &server);
        assert_eq!(data.sni(), Some("example.com"));
        assert_eq!(
            data.alpn_protocols().collect::<Vec<_>>(),
            [&b"h2"[..], b"http/1.1"]
        );
        data.sni = ROption::RNone;
        assert_eq!(data.sni(), None);
    }

    #[test]
    fn tls_data_conn_is_the_handshake_side() {
        let (client, mut server) = (testing::client(), testing::server());
        server.conn.sni = ROption::RSome("upstream".into());
        let mut data = TlsData {
            client: &client,
            server: &server,
            is_client: true,
            error: ROption::RNone,
        };
        assert_eq!(data.conn().id, client.id);
        assert_eq!(data.error(), None);
        data.is_client = false;
        data.error = ROption::RSome("bad certificate".into());
        assert_eq!(
            data.conn().sni.as_ref().map(RString::as_str),
            ROption::RSome("upstream")
        );
        assert_eq!(data.error(), Some("bad certificate"));
    }
}
