//! What the flow model records about a finished handshake (mitmproxy's `Connection` TLS
//! fields), with versions and cipher suites named as mitmproxy names them (OpenSSL's names).

use rustls::{pki_types::CertificateDer, CommonState, ProtocolVersion};
use tokio_rustls::{client, server};

/// The TLS fields of `client_conn` or `server_conn` after a handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsDetails {
    /// The SNI: what the client sent (client side), or what the proxy sent (server side).
    pub sni: Option<String>,
    /// The negotiated ALPN protocol.
    pub alpn: Option<Vec<u8>>,
    /// The protocol version, `TLSv1.2` or `TLSv1.3`.
    pub tls_version: Option<&'static str>,
    /// The cipher suite, as OpenSSL names it (`TLS_AES_256_GCM_SHA384`,
    /// `ECDHE-RSA-AES128-GCM-SHA256`).
    pub cipher: Option<String>,
    /// The peer's certificate chain, DER, leaf first: the server's, or the client's if it
    /// presented one.
    pub certificate_list: Vec<CertificateDer<'static>>,
}

impl TlsDetails {
    /// The client side of the proxy, after [`super::accept`].
    pub fn of_client<IO>(stream: &server::TlsStream<IO>) -> Self {
        let (_, conn) = stream.get_ref();
        Self::from_state(conn, conn.server_name().map(str::to_string))
    }

    /// The server side of the proxy, after [`super::connect`]; `sni` is the name the proxy
    /// sent, if it sent one.
    pub fn of_server<IO>(stream: &client::TlsStream<IO>, sni: Option<&str>) -> Self {
        let (_, conn) = stream.get_ref();
        Self::from_state(conn, sni.map(str::to_string))
    }

    /// From either side's connection state.
    pub fn from_state(state: &CommonState, sni: Option<String>) -> Self {
        TlsDetails {
            sni,
            alpn: state.alpn_protocol().map(<[u8]>::to_vec),
            tls_version: state.protocol_version().and_then(tls_version_name),
            cipher: state
                .negotiated_cipher_suite()
                .map(|suite| cipher_name(u16::from(suite.suite()))),
            certificate_list: state
                .peer_certificates()
                .map(<[_]>::to_vec)
                .unwrap_or_default(),
        }
    }
}

/// `TLSv1.3`, `TLSv1.2`, `TLSv1.1`, `TLSv1` or `SSLv3`, as mitmproxy writes them.
pub fn tls_version_name(version: ProtocolVersion) -> Option<&'static str> {
    Some(match version {
        ProtocolVersion::TLSv1_3 => "TLSv1.3",
        ProtocolVersion::TLSv1_2 => "TLSv1.2",
        ProtocolVersion::TLSv1_1 => "TLSv1.1",
        ProtocolVersion::TLSv1_0 => "TLSv1",
        ProtocolVersion::SSLv3 => "SSLv3",
        _ => return None,
    })
}

/// OpenSSL's name of a cipher suite (what mitmproxy records); suites OpenSSL does not name
/// get their IANA name, and unknown ones (including GREASE values) `0xNNNN`.
pub fn cipher_name(suite: u16) -> String {
    let openssl = match suite {
        0x1301 => "TLS_AES_128_GCM_SHA256",
        0x1302 => "TLS_AES_256_GCM_SHA384",
        0x1303 => "TLS_CHACHA20_POLY1305_SHA256",
        0x1304 => "TLS_AES_128_CCM_SHA256",
        0x1305 => "TLS_AES_128_CCM_8_SHA256",
        0xc02b => "ECDHE-ECDSA-AES128-GCM-SHA256",
        0xc02c => "ECDHE-ECDSA-AES256-GCM-SHA384",
        0xc02f => "ECDHE-RSA-AES128-GCM-SHA256",
        0xc030 => "ECDHE-RSA-AES256-GCM-SHA384",
        0xcca8 => "ECDHE-RSA-CHACHA20-POLY1305",
        0xcca9 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        0xccaa => "DHE-RSA-CHACHA20-POLY1305",
        0x009e => "DHE-RSA-AES128-GCM-SHA256",
        0x009f => "DHE-RSA-AES256-GCM-SHA384",
        0xc023 => "ECDHE-ECDSA-AES128-SHA256",
        0xc024 => "ECDHE-ECDSA-AES256-SHA384",
        0xc027 => "ECDHE-RSA-AES128-SHA256",
        0xc028 => "ECDHE-RSA-AES256-SHA384",
        0xc009 => "ECDHE-ECDSA-AES128-SHA",
        0xc00a => "ECDHE-ECDSA-AES256-SHA",
        0xc013 => "ECDHE-RSA-AES128-SHA",
        0xc014 => "ECDHE-RSA-AES256-SHA",
        0x0067 => "DHE-RSA-AES128-SHA256",
        0x006b => "DHE-RSA-AES256-SHA256",
        0x0033 => "DHE-RSA-AES128-SHA",
        0x0039 => "DHE-RSA-AES256-SHA",
        0x009c => "AES128-GCM-SHA256",
        0x009d => "AES256-GCM-SHA384",
        0x003c => "AES128-SHA256",
        0x003d => "AES256-SHA256",
        0x002f => "AES128-SHA",
        0x0035 => "AES256-SHA",
        0x000a => "DES-CBC3-SHA",
        0x00ff => "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
        _ => {
            return rustls::CipherSuite::from(suite)
                .as_str()
                .map_or_else(|| format!("0x{suite:04x}"), str::to_string)
        }
    };
    openssl.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_mitmproxy_writes_them() {
        assert_eq!(tls_version_name(ProtocolVersion::TLSv1_3), Some("TLSv1.3"));
        assert_eq!(tls_version_name(ProtocolVersion::TLSv1_0), Some("TLSv1"));
        assert_eq!(cipher_name(0x1302), "TLS_AES_256_GCM_SHA384");
        assert_eq!(cipher_name(0xc02f), "ECDHE-RSA-AES128-GCM-SHA256");
        assert_eq!(cipher_name(0x0a0a), "0x0a0a");
        assert_eq!(cipher_name(0xc0ad), "TLS_ECDHE_ECDSA_WITH_AES_256_CCM");
    }
}
