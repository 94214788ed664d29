//! Client and server connections, with mitmproxy's fields (`mitmproxy/connection.py`).
//!
//! The TLS fields are part of the layout from the start so that TLS interception can fill them
//! without changing the ABI; on a plain connection they stay empty.

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
    pub const NONE: SocketAddress = SocketAddress {
        family: 0,
        ip: [0; 16],
        port: 0,
    };

    /// The address as a standard library value, if there is one.
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
    pub fn ip(&self) -> Option<IpAddr> {
        self.get().map(|a| a.ip())
    }

    /// The port (0 when there is no address).
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
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    /// Host name or IP address, without brackets.
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
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportProtocol {
    /// TCP.
    Tcp,
    /// UDP (QUIC, DNS).
    Udp,
}

/// What clients and servers have in common (mitmproxy's `Connection`).
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
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
    pub error: ROption<RString>,
    /// Whether TLS is (or will be) used on this connection.
    pub tls: bool,
    /// The peer's certificate chain, DER-encoded, leaf first.
    pub certificate_list: RVec<RVec<u8>>,
    /// The negotiated ALPN protocol.
    pub alpn: ROption<RVec<u8>>,
    /// The ALPN protocols offered.
    pub alpn_offers: RVec<RVec<u8>>,
    /// The negotiated cipher suite.
    pub cipher: ROption<RString>,
    /// The cipher suites offered.
    pub cipher_list: RVec<RString>,
    /// The negotiated TLS version (`TLSv1.2`, `TLSv1.3`, ...).
    pub tls_version: ROption<RString>,
    /// The Server Name Indication sent by the client.
    pub sni: ROption<RString>,
    /// When the connection was opened (seconds since the epoch).
    pub timestamp_start: ROption<f64>,
    /// When the connection was closed.
    pub timestamp_end: ROption<f64>,
    /// When the TLS handshake finished.
    pub timestamp_tls_setup: ROption<f64>,
}

impl Connection {
    /// A plain (non-TLS) TCP connection with a fresh id and no addresses or timestamps yet.
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
    pub fn kill(&mut self, message: &str) {
        self.error = ROption::RSome(message.into());
    }
}

/// A connection from a client to the proxy (mitmproxy's `Client`).
///
/// Dereferences to [`Connection`] for the common fields (`client.peername`, `client.sni`).
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct Client {
    /// The common connection fields.
    pub conn: Connection,
    /// The certificate the proxy presented to this client, DER-encoded.
    pub mitmcert: ROption<RVec<u8>>,
    /// The proxy mode that accepted the connection (`regular`, `reverse:http://...`).
    pub proxy_mode: RStr<'static>,
}

/// A connection from the proxy to a server (mitmproxy's `Server`).
///
/// Dereferences to [`Connection`] for the common fields (`server.peername`, `server.tls`).
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct Server {
    /// The common connection fields.
    pub conn: Connection,
    /// The address the proxy connects to, as given (host name or IP).
    pub address: ROption<Address>,
    /// When the TCP handshake finished.
    pub timestamp_tcp_setup: ROption<f64>,
    /// The upstream proxy this connection goes through, if any.
    pub via: ROption<Address>,
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
