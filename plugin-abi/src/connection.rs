//! Client and server connections, with mitmproxy's fields (`mitmproxy/connection.py`).
//!
//! The TLS fields are part of the layout from the start so that TLS interception can fill them
//! without changing the ABI; on a plain connection they stay empty.
//!
//! ```
//! use interpose_plugin_abi::{prelude::*, testing};
//!
//! /// Refuses clients that do not connect from the local machine.
//! fn client_connected(_ctx: &Context, client: &mut Client) {
//!     if !client.peername.ip().is_some_and(|ip| ip.is_loopback()) {
//!         client.kill("only local clients");
//!     }
//! }
//!
//! let mut client = testing::client(); // 127.0.0.1:22
//! client_connected(testing::TestContext::new().ctx(), &mut client);
//! assert_eq!(client.error(), None);
//! ```

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    ops::{Deref, DerefMut},
};

use abi_stable::{
    std_types::{ROption, RStr, RString, RVec},
    StableAbi,
};

use crate::flow::Uuid;

/// An IP socket address in a fixed-size, ABI-stable form (or none at all).
///
/// ```
/// use interpose_plugin_abi::{connection::SocketAddress, testing};
/// use std::net::SocketAddr;
///
/// let client = testing::client();
/// assert_eq!(client.peername.get(), Some("127.0.0.1:22".parse::<SocketAddr>().unwrap()));
/// assert_eq!(client.peername.ip().map(|ip| ip.is_loopback()), Some(true));
/// assert_eq!(client.peername.port(), 22);
/// assert_eq!(client.peername.to_string(), "127.0.0.1:22");
///
/// assert_eq!(SocketAddress::NONE.get(), None);
/// assert_eq!(SocketAddress::NONE.to_string(), "-");
/// ```
#[repr(C)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketAddress {
    /// 4 for IPv4, 6 for IPv6, 0 when unknown.
    family: u8,
    /// IPv4 uses the first four bytes.
    ip: [u8; 16],
    port: u16,
}

impl SocketAddress {
    /// No address (a connection that is not established yet).
    ///
    /// See the example on [`SocketAddress`].
    pub const NONE: SocketAddress = SocketAddress {
        family: 0,
        ip: [0; 16],
        port: 0,
    };

    /// The address as a standard library value, if there is one.
    ///
    /// See the example on [`SocketAddress`].
    pub fn get(&self) -> Option<SocketAddr> {
        let ip = match self.family {
            4 => IpAddr::V4(Ipv4Addr::new(
                self.ip[0], self.ip[1], self.ip[2], self.ip[3],
            )),
            6 => IpAddr::V6(Ipv6Addr::from(self.ip)),
            _ => return None,
        };
        Some(SocketAddr::new(ip, self.port))
    }

    /// The IP address, if there is one.
    ///
    /// See the example on [`SocketAddress`].
    pub fn ip(&self) -> Option<IpAddr> {
        self.get().map(|a| a.ip())
    }

    /// The port (0 when there is no address).
    ///
    /// See the example on [`SocketAddress`].
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl From<SocketAddr> for SocketAddress {
    fn from(addr: SocketAddr) -> Self {
        let mut ip = [0; 16];
        let family = match addr.ip() {
            IpAddr::V4(v4) => {
                ip[..4].copy_from_slice(&v4.octets());
                4
            }
            IpAddr::V6(v6) => {
                ip = v6.octets();
                6
            }
        };
        SocketAddress {
            family,
            ip,
            port: addr.port(),
        }
    }
}

impl fmt::Display for SocketAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.get() {
            Some(addr) => addr.fmt(f),
            None => f.write_str("-"),
        }
    }
}

impl fmt::Debug for SocketAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A host name or IP address and a port, as a client asked for it.
///
/// ```
/// use interpose_plugin_abi::connection::Address;
///
/// let mut address = Address::new("example.com", 443);
/// assert_eq!((address.host(), address.port), ("example.com", 443));
/// address.set_host("::1");
/// assert_eq!(address.to_string(), "[::1]:443");
/// ```
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// Host name or IP address, without brackets.
    #[doc(hidden)]
    pub host: RString,
    /// TCP or UDP port.
    pub port: u16,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        HostPort(&self.host, self.port).fmt(f)
    }
}

/// Displays a host and port as `host:port`, with an IPv6 address in brackets (`[::1]:80`),
/// as they go in a `Host` header or a log line.
///
/// ```
/// use interpose_plugin_abi::connection::HostPort;
///
/// assert_eq!(HostPort("example.com", 8080).to_string(), "example.com:8080");
/// assert_eq!(HostPort("2001:db8::1", 443).to_string(), "[2001:db8::1]:443");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostPort<'a>(pub &'a str, pub u16);

impl fmt::Display for HostPort<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let HostPort(host, port) = *self;
        if host.contains(':') {
            write!(f, "[{host}]:{port}")
        } else {
            write!(f, "{host}:{port}")
        }
    }
}

/// The transport a connection uses.
///
/// ```
/// use interpose_plugin_abi::{connection::TransportProtocol, testing};
///
/// let client = testing::client();
/// assert_eq!(client.transport_protocol, TransportProtocol::Tcp);
/// ```
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportProtocol {
    /// TCP.
    Tcp,
    /// UDP (QUIC, DNS).
    Udp,
}

/// What clients and servers have in common (mitmproxy's `Connection`).
///
/// ```
/// use interpose_plugin_abi::{connection::Connection, flow::Uuid};
///
/// let conn = Connection::new(Uuid([9; 16]));
/// // A plain connection: no TLS details at all.
/// assert!(!conn.tls);
/// assert_eq!(conn.sni(), None);
/// assert_eq!(conn.alpn(), None);
/// assert_eq!(conn.alpn_offers().len(), 0);
/// assert_eq!(conn.cipher(), None);
/// assert_eq!(conn.cipher_list().len(), 0);
/// assert_eq!(conn.tls_version(), None);
/// assert_eq!(conn.certificate_list().len(), 0);
/// assert_eq!(conn.timestamp_tls_setup(), None);
/// // Not opened (nor closed) yet.
/// assert_eq!((conn.timestamp_start(), conn.timestamp_end()), (None, None));
/// ```
#[repr(C)]
#[derive(StableAbi, Clone)]
pub struct Connection {
    /// Unique id of this connection.
    pub id: Uuid,
    /// The remote address.
    pub peername: SocketAddress,
    /// The local address.
    pub sockname: SocketAddress,
    /// TCP or UDP.
    pub transport_protocol: TransportProtocol,
    /// Set by an addon in `client_connected` / `server_connect` to refuse the connection; set
    /// by the host when the connection failed.
    #[doc(hidden)]
    pub error: ROption<RString>,
    /// Whether TLS is (or will be) used on this connection.
    pub tls: bool,
    /// The peer's certificate chain, DER-encoded, leaf first.
    #[doc(hidden)]
    pub certificate_list: RVec<RVec<u8>>,
    /// The negotiated ALPN protocol.
    #[doc(hidden)]
    pub alpn: ROption<RVec<u8>>,
    /// The ALPN protocols offered.
    #[doc(hidden)]
    pub alpn_offers: RVec<RVec<u8>>,
    /// The negotiated cipher suite.
    #[doc(hidden)]
    pub cipher: ROption<RString>,
    /// The cipher suites offered.
    #[doc(hidden)]
    pub cipher_list: RVec<RString>,
    /// The negotiated TLS version (`TLSv1.2`, `TLSv1.3`, ...).
    #[doc(hidden)]
    pub tls_version: ROption<RString>,
    /// The Server Name Indication sent by the client.
    #[doc(hidden)]
    pub sni: ROption<RString>,
    /// When the connection was opened (seconds since the epoch).
    #[doc(hidden)]
    pub timestamp_start: ROption<f64>,
    /// When the connection was closed.
    #[doc(hidden)]
    pub timestamp_end: ROption<f64>,
    /// When the TLS handshake finished.
    #[doc(hidden)]
    pub timestamp_tls_setup: ROption<f64>,
}

impl Connection {
    /// A plain (non-TLS) TCP connection with a fresh id and no addresses or timestamps yet.
    ///
    /// See the example on [`Connection`].
    pub fn new(id: Uuid) -> Self {
        Connection {
            id,
            peername: SocketAddress::NONE,
            sockname: SocketAddress::NONE,
            transport_protocol: TransportProtocol::Tcp,
            error: ROption::RNone,
            tls: false,
            certificate_list: RVec::new(),
            alpn: ROption::RNone,
            alpn_offers: RVec::new(),
            cipher: ROption::RNone,
            cipher_list: RVec::new(),
            tls_version: ROption::RNone,
            sni: ROption::RNone,
            timestamp_start: ROption::RNone,
            timestamp_end: ROption::RNone,
            timestamp_tls_setup: ROption::RNone,
        }
    }

    /// Refuses or kills the connection with `message` (mitmproxy: setting `.error`).
    ///
    /// ```
    /// use interpose_plugin_abi::testing;
    ///
    /// let mut client = testing::client();
    /// assert_eq!(client.error(), None);
    /// client.kill("not on the allow list");
    /// assert_eq!(client.error(), Some("not on the allow list"));
    /// ```
    pub fn kill(&mut self, message: impl Into<String>) {
        self.error = ROption::RSome(RString::from(message.into()));
    }
}

/// A connection from a client to the proxy (mitmproxy's `Client`).
///
/// Dereferences to [`Connection`] for the common fields (`client.peername`, `client.sni`).
///
/// ```
/// use interpose_plugin_abi::testing;
///
/// let client = testing::client();
/// assert_eq!(client.peername.to_string(), "127.0.0.1:22");
/// assert_eq!(client.proxy_mode(), "regular");
/// assert_eq!(client.mitmcert(), None); // no TLS with this client
/// assert_eq!(client.sni(), None); // a `Connection` field, through `Deref`
/// assert!(client.timestamp_start().is_some());
/// ```
#[repr(C)]
#[derive(StableAbi, Clone)]
pub struct Client {
    /// The common connection fields.
    pub conn: Connection,
    /// The certificate the proxy presented to this client, DER-encoded.
    #[doc(hidden)]
    pub mitmcert: ROption<RVec<u8>>,
    /// The proxy mode that accepted the connection (`regular`, `reverse:http://...`).
    #[doc(hidden)]
    pub proxy_mode: RStr<'static>,
}

/// A connection from the proxy to a server (mitmproxy's `Server`).
///
/// Dereferences to [`Connection`] for the common fields (`server.peername`, `server.tls`).
///
/// ```
/// use interpose_plugin_abi::{connection::Address, testing};
///
/// let mut server = testing::server();
/// assert_eq!(server.address().map(|a| a.to_string()).as_deref(), Some("example.com:443"));
/// assert_eq!(server.via(), None);
/// assert_eq!(server.timestamp_tcp_setup(), None); // not connected yet
///
/// server.set_address(Address::new("127.0.0.1", 8443));
/// assert_eq!(server.address().unwrap().host(), "127.0.0.1");
/// ```
#[repr(C)]
#[derive(StableAbi, Clone)]
pub struct Server {
    /// The common connection fields.
    pub conn: Connection,
    /// The address the proxy connects to, as given (host name or IP).
    #[doc(hidden)]
    pub address: ROption<Address>,
    /// When the TCP handshake finished.
    #[doc(hidden)]
    pub timestamp_tcp_setup: ROption<f64>,
    /// The upstream proxy this connection goes through, if any.
    #[doc(hidden)]
    pub via: ROption<Address>,
}

/// `Option<&str>` from the ABI's optional text.
fn opt_str(value: &ROption<RString>) -> Option<&str> {
    value.as_ref().map(RString::as_str).into_option()
}

impl Address {
    /// An address of `host` (name or IP address, without brackets) and `port`.
    ///
    /// See the example on [`Address`].
    pub fn new(host: impl Into<String>, port: u16) -> Address {
        Address {
            host: RString::from(host.into()),
            port,
        }
    }

    /// The host name or IP address, without brackets.
    ///
    /// See the example on [`Address`].
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Changes the host name or IP address.
    ///
    /// See the example on [`Address`].
    pub fn set_host(&mut self, host: impl Into<String>) {
        self.host = RString::from(host.into());
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl Connection {
    /// Why the connection was refused or failed, if it was.
    ///
    /// See the example on [`Connection::kill`].
    pub fn error(&self) -> Option<&str> {
        opt_str(&self.error)
    }

    /// The peer's certificate chain, DER-encoded, leaf first (empty without TLS).
    ///
    /// See the example on [`Connection`].
    pub fn certificate_list(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.certificate_list.iter().map(RVec::as_slice)
    }

    /// The negotiated ALPN protocol (`b"h2"`), if any.
    ///
    /// See the example on [`Connection`].
    pub fn alpn(&self) -> Option<&[u8]> {
        self.alpn.as_ref().map(RVec::as_slice).into_option()
    }

    /// The ALPN protocols offered.
    ///
    /// See the example on [`Connection`].
    pub fn alpn_offers(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.alpn_offers.iter().map(RVec::as_slice)
    }

    /// The negotiated cipher suite (`TLS_AES_128_GCM_SHA256`), if any.
    ///
    /// See the example on [`Connection`].
    pub fn cipher(&self) -> Option<&str> {
        opt_str(&self.cipher)
    }

    /// The cipher suites offered.
    ///
    /// See the example on [`Connection`].
    pub fn cipher_list(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.cipher_list.iter().map(RString::as_str)
    }

    /// The negotiated TLS version (`TLSv1.2`, `TLSv1.3`), if any.
    ///
    /// See the example on [`Connection`].
    pub fn tls_version(&self) -> Option<&str> {
        opt_str(&self.tls_version)
    }

    /// The Server Name Indication the client sent, if any.
    ///
    /// See the example on [`Connection`] (and on [`Client`]).
    pub fn sni(&self) -> Option<&str> {
        opt_str(&self.sni)
    }

    /// When the connection was opened (seconds since the epoch).
    ///
    /// See the example on [`Connection`] (and on [`Client`]).
    pub fn timestamp_start(&self) -> Option<f64> {
        self.timestamp_start.into_option()
    }

    /// When the connection was closed.
    ///
    /// See the example on [`Connection`].
    pub fn timestamp_end(&self) -> Option<f64> {
        self.timestamp_end.into_option()
    }

    /// When the TLS handshake finished.
    ///
    /// See the example on [`Connection`].
    pub fn timestamp_tls_setup(&self) -> Option<f64> {
        self.timestamp_tls_setup.into_option()
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("peername", &self.peername)
            .field("sockname", &self.sockname)
            .field("transport_protocol", &self.transport_protocol)
            .field("error", &self.error())
            .field("tls", &self.tls)
            .field("certificates", &self.certificate_list.len())
            .field("alpn", &self.alpn().map(String::from_utf8_lossy))
            .field("cipher", &self.cipher())
            .field("tls_version", &self.tls_version())
            .field("sni", &self.sni())
            .field("timestamp_start", &self.timestamp_start())
            .field("timestamp_end", &self.timestamp_end())
            .field("timestamp_tls_setup", &self.timestamp_tls_setup())
            .finish()
    }
}

impl Client {
    /// The certificate the proxy presented to this client, DER-encoded, if it did.
    ///
    /// See the example on [`Client`].
    pub fn mitmcert(&self) -> Option<&[u8]> {
        self.mitmcert.as_ref().map(RVec::as_slice).into_option()
    }

    /// The proxy mode that accepted the connection (`regular`, `reverse:http://...`).
    ///
    /// See the example on [`Client`].
    pub fn proxy_mode(&self) -> &str {
        self.proxy_mode.as_str()
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("conn", &self.conn)
            .field("mitmcert", &self.mitmcert().map(<[u8]>::len))
            .field("proxy_mode", &self.proxy_mode())
            .finish()
    }
}

impl Server {
    /// The address the proxy connects to, as given (host name or IP), once known.
    ///
    /// See the example on [`Server`].
    pub fn address(&self) -> Option<&Address> {
        self.address.as_ref().into_option()
    }

    /// Changes the address to connect to; in `server_connect` this sends the connection
    /// elsewhere.
    ///
    /// See the example on [`Server`] (and on [`ServerConnectionHookData`]).
    pub fn set_address(&mut self, address: Address) {
        self.address = ROption::RSome(address);
    }

    /// When the TCP handshake finished.
    ///
    /// See the example on [`Server`].
    pub fn timestamp_tcp_setup(&self) -> Option<f64> {
        self.timestamp_tcp_setup.into_option()
    }

    /// The upstream proxy this connection goes through, if any.
    ///
    /// See the example on [`Server`].
    pub fn via(&self) -> Option<&Address> {
        self.via.as_ref().into_option()
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("conn", &self.conn)
            .field("address", &self.address())
            .field("timestamp_tcp_setup", &self.timestamp_tcp_setup())
            .field("via", &self.via())
            .finish()
    }
}

macro_rules! deref_to_connection {
    ($($ty:ty),*) => {$(
        impl Deref for $ty {
            type Target = Connection;

            fn deref(&self) -> &Connection {
                &self.conn
            }
        }

        impl DerefMut for $ty {
            fn deref_mut(&mut self) -> &mut Connection {
                &mut self.conn
            }
        }
    )*};
}

deref_to_connection!(Client, Server);

/// What the `server_connect`, `server_connected`, `server_connect_error` and
/// `server_disconnected` events receive (mitmproxy's `ServerConnectionHookData`).
///
/// ```
/// use interpose_plugin_abi::{connection::Address, prelude::*, testing};
///
/// /// Sends every connection to example.com to a local test server.
/// fn server_connect(_ctx: &Context, data: &mut ServerConnectionHookData<'_>) {
///     if data.server.address().is_some_and(|a| a.host() == "example.com") {
///         data.server.set_address(Address::new("127.0.0.1", 8443));
///     }
/// }
///
/// let (client, mut server) = (testing::client(), testing::server());
/// let mut data = ServerConnectionHookData { client: &client, server: &mut server };
/// server_connect(testing::TestContext::new().ctx(), &mut data);
/// assert_eq!(server.address().unwrap().to_string(), "127.0.0.1:8443");
/// ```
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct ServerConnectionHookData<'a> {
    /// The client whose flow caused the connection.
    pub client: &'a Client,
    /// The server connection; in `server_connect`, setting `server.error` aborts it.
    pub server: &'a mut Server,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_address_round_trips() {
        for text in ["127.0.0.1:8080", "[::1]:443"] {
            let addr: SocketAddr = text.parse().unwrap();
            let abi = SocketAddress::from(addr);
            assert_eq!(abi.get(), Some(addr));
            assert_eq!(abi.to_string(), text);
        }
        assert_eq!(SocketAddress::NONE.get(), None);
    }

    #[test]
    fn address_brackets_ipv6() {
        let a = Address {
            host: "::1".into(),
            port: 80,
        };
        assert_eq!(a.to_string(), "[::1]:80");
    }
}
