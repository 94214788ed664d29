//! TLS interception: the certificate authority in `confdir`, the leaf certificates it signs
//! (generated per host, or the user's own from `certs`), the rustls configurations for both
//! sides of an intercepted connection, the handshakes, and a non-consuming ClientHello parser
//! for deciding what to do with a connection before reading it.
//!
//! The engine's use, at its next-layer decision (after CONNECT, or on the first bytes of a
//! connection):
//!
//! 1. [`ClientHello::parse`] on the peeked bytes: [`HelloParse::Incomplete`] means read more,
//!    [`HelloParse::NotClientHello`] means not TLS; a complete hello gives the SNI and ALPN
//!    offers for the passthrough decision (`ignore_hosts`) and the `tls_clienthello` event.
//! 2. Upstream: [`TlsContext::client_config`] with the ALPN protocols to offer, then
//!    [`connect`] over the TCP stream; [`TlsDetails::of_server`] fills `server_conn`.
//! 3. Client side: [`TlsContext::server_config`] with the SNI (or the CONNECT host when the
//!    client sent none) and the ALPN protocols the proxy accepts, then [`accept`] over a
//!    stream that still yields the peeked bytes; [`TlsDetails::of_client`] fills
//!    `client_conn`.
//!
//! Only the ring crypto provider is used (no aws-lc-rs, no OpenSSL).

mod ca;
mod certs;
mod details;
mod handshake;
mod hello;
mod server;
mod upstream;
mod user_certs;

#[cfg(test)]
mod tests;

use std::{
    fmt,
    sync::{Arc, OnceLock},
};

use rustls::{crypto::CryptoProvider, ClientConfig, ServerConfig};

pub use ca::{CaError, CertificateAuthority, CA_CERT_DER_FILE, CA_CERT_PEM_FILE, CA_FILE, CA_NAME};
pub use certs::{CertStore, LeafError, LEAF_CACHE_CAPACITY};
pub use details::{cipher_name, tls_version_name, TlsDetails};
pub use handshake::{accept, connect, HandshakeError, Peer};
pub use hello::{ClientHello, HelloParse};
pub use server::ServerConfigs;
pub use upstream::{NoTrustRoots, UpstreamConfigs, UpstreamRoots};
pub use user_certs::{CertSpec, UserCertError, UserCerts};

use crate::options::CoreOptions;

/// The crypto provider of every configuration built here: ring, shared.
pub fn provider() -> &'static Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// Everything TLS interception needs, built once at startup from the options: the CA (created
/// in `confdir` on first run), the user certificates, the leaf store and the configuration
/// factories of both sides. Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct TlsContext {
    store: Arc<CertStore>,
    server_configs: ServerConfigs,
    upstream_configs: UpstreamConfigs,
}

impl TlsContext {
    /// Loads (or creates) the CA in `options.confdir`, loads `options.certs`, and verifies
    /// upstream servers against the system's roots unless `options.ssl_insecure`.
    pub fn load(options: &CoreOptions) -> Result<Self, TlsSetupError> {
        let ca = CertificateAuthority::load_or_create(&options.confdir)?;
        let user = UserCerts::load(&options.certs)?;
        let upstream = UpstreamConfigs::new(options.ssl_insecure);
        Ok(Self::new(Arc::new(ca), user, upstream)?)
    }

    /// A context over an already loaded CA and user certificates (tests, benchmarks).
    pub fn new(
        ca: Arc<CertificateAuthority>,
        user: UserCerts,
        upstream: UpstreamConfigs,
    ) -> Result<Self, LeafError> {
        let store = Arc::new(CertStore::new(ca, user)?);
        Ok(TlsContext {
            server_configs: ServerConfigs::new(Arc::clone(&store)),
            store,
            upstream_configs: upstream,
        })
    }

    /// The client-facing configuration: see [`ServerConfigs::server_config`].
    pub fn server_config(
        &self,
        sni: Option<&str>,
        fallback_host: &str,
        alpn: &[Vec<u8>],
    ) -> Result<Arc<ServerConfig>, LeafError> {
        self.server_configs.server_config(sni, fallback_host, alpn)
    }

    /// The upstream configuration: see [`UpstreamConfigs::client_config`].
    pub fn client_config(&self, alpn: &[Vec<u8>], sni: bool) -> Arc<ClientConfig> {
        self.upstream_configs.client_config(alpn, sni)
    }

    /// The leaf store (the certificate a client is shown, `client_conn.mitmcert`).
    pub fn store(&self) -> &Arc<CertStore> {
        &self.store
    }

    /// The certificate authority.
    pub fn ca(&self) -> &CertificateAuthority {
        self.store.ca()
    }

    /// The upstream configuration factory (to load the trust roots ahead of the first
    /// connection, for example).
    pub fn upstream(&self) -> &UpstreamConfigs {
        &self.upstream_configs
    }
}

/// Why TLS interception could not be set up at startup.
#[derive(Debug)]
pub enum TlsSetupError {
    /// The CA could not be loaded or created.
    Ca(CaError),
    /// A `certs` entry could not be loaded.
    UserCert(UserCertError),
    /// The leaf key pair could not be made.
    Leaf(LeafError),
}

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsSetupError::Ca(e) => e.fmt(f),
            TlsSetupError::UserCert(e) => e.fmt(f),
            TlsSetupError::Leaf(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TlsSetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsSetupError::Ca(e) => Some(e),
            TlsSetupError::UserCert(e) => Some(e),
            TlsSetupError::Leaf(e) => Some(e),
        }
    }
}

impl From<CaError> for TlsSetupError {
    fn from(e: CaError) -> Self {
        TlsSetupError::Ca(e)
    }
}

impl From<UserCertError> for TlsSetupError {
    fn from(e: UserCertError) -> Self {
        TlsSetupError::UserCert(e)
    }
}

impl From<LeafError> for TlsSetupError {
    fn from(e: LeafError) -> Self {
        TlsSetupError::Leaf(e)
    }
}
