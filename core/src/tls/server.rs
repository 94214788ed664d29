//! The client-facing rustls `ServerConfig`s: one shared configuration per ALPN list, whose
//! certificate resolver picks the leaf for the SNI of each handshake from the [`CertStore`];
//! a connection without SNI gets a configuration of its own naming the fallback host.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use rustls::{
    server::{ClientHello, NoServerSessionStorage, ResolvesServerCert},
    sign::CertifiedKey,
    ServerConfig,
};

use super::{CertStore, LeafError};

/// Builds and caches the configurations the proxy uses as a TLS server toward clients.
#[derive(Debug)]
pub struct ServerConfigs {
    store: Arc<CertStore>,
    by_alpn: RwLock<HashMap<Vec<Vec<u8>>, Arc<ServerConfig>>>,
}

impl ServerConfigs {
    /// Configurations presenting leaves from `store`.
    pub fn new(store: Arc<CertStore>) -> Self {
        ServerConfigs {
            store,
            by_alpn: RwLock::new(HashMap::new()),
        }
    }

    /// The configuration to accept a client's handshake with.
    ///
    /// - `sni`: the client's SNI ([`super::ClientHello::sni`]); the leaf names it.
    /// - `fallback_host`: the host the leaf names when there is no SNI (the CONNECT host, or
    ///   the address the client connected to).
    /// - `alpn`: the protocols the proxy accepts, in its order of preference; rustls picks the
    ///   first one the client offers, and fails the handshake (`no_application_protocol`) if
    ///   the client offers ALPN but none of these. To follow mitmproxy, pass the protocol the
    ///   server negotiated, or the client's HTTP offers when the server is not connected yet.
    ///
    /// The leaf is made (or found) here, so that a failure is an error of this call rather
    /// than a failed handshake; with SNI, the returned configuration is shared with every
    /// connection offering the same ALPN list.
    pub fn server_config(
        &self,
        sni: Option<&str>,
        fallback_host: &str,
        alpn: &[Vec<u8>],
    ) -> Result<Arc<ServerConfig>, LeafError> {
        match sni {
            Some(sni) => {
                self.store.certified_key(sni)?;
                Ok(self.shared(alpn))
            }
            None => {
                let key = self.store.certified_key(fallback_host)?;
                let mut config = builder().with_cert_resolver(Arc::new(FixedCert(key)));
                config.alpn_protocols = alpn.to_vec();
                // Resumption would need the cache to outlive this configuration.
                config.session_storage = Arc::new(NoServerSessionStorage {});
                Ok(Arc::new(config))
            }
        }
    }

    fn shared(&self, alpn: &[Vec<u8>]) -> Arc<ServerConfig> {
        if let Some(config) = self
            .by_alpn
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(alpn)
        {
            return Arc::clone(config);
        }
        let mut by_alpn = self.by_alpn.write().unwrap_or_else(|e| e.into_inner());
        let config = by_alpn.entry(alpn.to_vec()).or_insert_with(|| {
            let mut config = builder().with_cert_resolver(Arc::new(SniResolver {
                store: Arc::clone(&self.store),
            }));
            config.alpn_protocols = alpn.to_vec();
            Arc::new(config)
        });
        Arc::clone(config)
    }
}

fn builder() -> rustls::ConfigBuilder<ServerConfig, rustls::server::WantsServerCert> {
    ServerConfig::builder_with_provider(Arc::clone(super::provider()))
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .unwrap_or_else(|_| unreachable!("ring supports TLS 1.2 and 1.3"))
        .with_no_client_auth()
}

/// The leaf for the SNI of the handshake at hand.
#[derive(Debug)]
struct SniResolver {
    store: Arc<CertStore>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = client_hello.server_name()?;
        match self.store.certified_key(sni) {
            Ok(key) => Some(key),
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        }
    }
}

/// One leaf whatever the handshake says (a client without SNI).
#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}
