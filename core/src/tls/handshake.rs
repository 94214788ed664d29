//! The two handshakes of an intercepted connection, with errors that say which side failed
//! and why in words (an untrusted certificate, a name mismatch, an alert from the peer).

use std::{fmt, io, sync::Arc};

use rustls::{pki_types::ServerName, CertificateError, ClientConfig, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

/// Which side of the proxy a handshake was with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A client connecting to the proxy (its SNI, if known).
    Client(Option<String>),
    /// The server the proxy connects to (the host name or address).
    Server(String),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Client(Some(sni)) => write!(f, "the client (for {sni})"),
            Peer::Client(None) => write!(f, "the client"),
            Peer::Server(host) => write!(f, "the server {host}"),
        }
    }
}

/// A failed handshake.
#[derive(Debug)]
pub struct HandshakeError {
    /// Who the handshake was with.
    pub peer: Peer,
    /// What went wrong (an I/O error wrapping the [`rustls::Error`] when TLS failed).
    pub source: io::Error,
}

impl HandshakeError {
    /// A connection that cannot start TLS because it is not a plain TCP connection (already
    /// TLS, or closed).
    pub fn not_plain(host: &str) -> Self {
        HandshakeError {
            peer: Peer::Server(host.to_string()),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a plain TCP connection"),
        }
    }

    /// The TLS error, when the failure was one (not a closed or reset connection).
    pub fn tls_error(&self) -> Option<&rustls::Error> {
        self.source.get_ref()?.downcast_ref()
    }

    /// Whether the server's certificate was refused by verification (not trusted, wrong name,
    /// expired, ...).
    pub fn is_certificate_error(&self) -> bool {
        matches!(self.tls_error(), Some(rustls::Error::InvalidCertificate(_)))
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS handshake with {} failed: ", self.peer)?;
        let Some(error) = self.tls_error() else {
            return write!(f, "{}", self.source);
        };
        let host = match &self.peer {
            Peer::Server(host) => host.as_str(),
            Peer::Client(_) => "this host",
        };
        match error {
            rustls::Error::InvalidCertificate(e) => match e {
                CertificateError::UnknownIssuer => write!(
                    f,
                    "its certificate is not trusted (unknown issuer); ssl_insecure turns \
                     verification off"
                ),
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    write!(f, "its certificate is not valid for {host}")
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    write!(f, "its certificate has expired")
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    write!(f, "its certificate is not valid yet")
                }
                CertificateError::Revoked => write!(f, "its certificate is revoked"),
                CertificateError::BadSignature => {
                    write!(f, "its certificate has a bad signature")
                }
                other => write!(f, "invalid certificate ({other:?})"),
            },
            rustls::Error::AlertReceived(alert) => write!(f, "it sent the alert {alert:?}"),
            rustls::Error::NoApplicationProtocol => {
                write!(f, "no ALPN protocol in common")
            }
            rustls::Error::General(message) => write!(f, "{message}"),
            other => write!(f, "{other}"),
        }
    }
}

impl std::error::Error for HandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Completes the client's handshake with `config` (from [`super::TlsContext::server_config`])
/// over `io`, which must yield the ClientHello bytes the engine peeked. `sni` only names the
/// client in an error.
pub async fn accept<IO>(
    config: Arc<ServerConfig>,
    io: IO,
    sni: Option<&str>,
) -> Result<server::TlsStream<IO>, HandshakeError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    TlsAcceptor::from(config)
        .accept(io)
        .await
        .map_err(|source| HandshakeError {
            peer: Peer::Client(sni.map(str::to_string)),
            source,
        })
}

/// Connects to the server `host` (a DNS name or an IP address, IPv6 with or without
/// brackets) over `io` with `config` (from [`super::TlsContext::client_config`]). `host` is
/// what the certificate is verified against, and the SNI if the configuration sends one.
pub async fn connect<IO>(
    config: Arc<ClientConfig>,
    host: &str,
    io: IO,
) -> Result<client::TlsStream<IO>, HandshakeError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let peer = || Peer::Server(host.to_string());
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let name = ServerName::try_from(bare.to_string()).map_err(|e| HandshakeError {
        peer: peer(),
        source: io::Error::new(io::ErrorKind::InvalidInput, e),
    })?;
    TlsConnector::from(config)
        .connect(name, io)
        .await
        .map_err(|source| HandshakeError {
            peer: peer(),
            source,
        })
}
