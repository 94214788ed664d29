//! The upstream rustls `ClientConfig`s: one per (ALPN list, SNI on/off), cached. Servers are
//! verified against the operating system's trust store (loaded on the first verification, so
//! a machine without one fails only when a server is verified), plus any extra roots;
//! `ssl_insecure` accepts any certificate but still checks the handshake signatures.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, OnceLock, RwLock},
};

use rustls::{
    client::{
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        WebPkiServerVerifier,
    },
    pki_types::{CertificateDer, ServerName, UnixTime},
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// Configurations by the ALPN list they offer.
type ByAlpn = RwLock<HashMap<Vec<Vec<u8>>, Arc<ClientConfig>>>;

/// Where trusted roots come from.
#[derive(Debug, Clone, Default)]
pub struct UpstreamRoots {
    /// The operating system's trust store (on Linux the bundle under `/etc/ssl`, or
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR`).
    pub system: bool,
    /// Further trusted roots, DER.
    pub extra: Vec<CertificateDer<'static>>,
}

/// No root to verify a server against: the trust store is missing or empty.
#[derive(Debug, Clone)]
pub struct NoTrustRoots {
    /// What was tried and what failed.
    pub problem: String,
}

impl fmt::Display for NoTrustRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no trusted root certificates to verify servers with ({}); install the system's \
             CA certificates (ca-certificates), set SSL_CERT_FILE, or turn verification off \
             with ssl_insecure",
            self.problem
        )
    }
}

impl std::error::Error for NoTrustRoots {}

/// Builds and caches the configurations the proxy uses as a TLS client toward servers.
#[derive(Debug)]
pub struct UpstreamConfigs {
    verifier: Arc<dyn ServerCertVerifier>,
    roots: Option<Arc<LazyRoots>>,
    /// Index 0: SNI off, 1: SNI on.
    cache: [ByAlpn; 2],
}

impl UpstreamConfigs {
    /// Verifying against the system's roots, or not at all when `ssl_insecure`.
    pub fn new(ssl_insecure: bool) -> Self {
        Self::with_roots(
            ssl_insecure,
            UpstreamRoots {
                system: true,
                extra: Vec::new(),
            },
        )
    }

    /// Verifying against `roots`, or not at all when `ssl_insecure`.
    pub fn with_roots(ssl_insecure: bool, roots: UpstreamRoots) -> Self {
        let (verifier, roots): (Arc<dyn ServerCertVerifier>, _) = if ssl_insecure {
            (Arc::new(AcceptAnyCertificate), None)
        } else {
            let roots = Arc::new(LazyRoots {
                roots,
                verifier: OnceLock::new(),
            });
            (Arc::clone(&roots) as _, Some(roots))
        };
        UpstreamConfigs {
            verifier,
            roots,
            cache: Default::default(),
        }
    }

    /// Whether certificates are verified (`ssl_insecure` is off).
    pub fn verifies(&self) -> bool {
        self.roots.is_some()
    }

    /// Loads the trust roots now rather than on the first verification, and says how many
    /// there are (0 with `ssl_insecure`). The result is kept: a failure here is the failure
    /// every verification reports.
    pub fn load_roots(&self) -> Result<usize, NoTrustRoots> {
        match &self.roots {
            Some(roots) => roots.verifier().map(|(_, count)| *count),
            None => Ok(0),
        }
    }

    /// The configuration to connect to a server with, offering `alpn` (in order; empty for
    /// no ALPN extension) and sending SNI if `sni` (rustls never sends it for IP addresses).
    pub fn client_config(&self, alpn: &[Vec<u8>], sni: bool) -> Arc<ClientConfig> {
        let cache = &self.cache[usize::from(sni)];
        if let Some(config) = cache.read().unwrap_or_else(|e| e.into_inner()).get(alpn) {
            return Arc::clone(config);
        }
        let mut cache = cache.write().unwrap_or_else(|e| e.into_inner());
        let config = cache.entry(alpn.to_vec()).or_insert_with(|| {
            let mut config = ClientConfig::builder_with_provider(Arc::clone(super::provider()))
                .with_protocol_versions(rustls::ALL_VERSIONS)
                .unwrap_or_else(|_| unreachable!("ring supports TLS 1.2 and 1.3"))
                .dangerous()
                .with_custom_certificate_verifier(Arc::clone(&self.verifier))
                .with_no_client_auth();
            config.alpn_protocols = alpn.to_vec();
            config.enable_sni = sni;
            Arc::new(config)
        });
        Arc::clone(config)
    }
}

/// WebPKI verification against roots loaded on first use.
#[derive(Debug)]
struct LazyRoots {
    roots: UpstreamRoots,
    verifier: OnceLock<Result<(Arc<WebPkiServerVerifier>, usize), NoTrustRoots>>,
}

impl LazyRoots {
    fn verifier(&self) -> Result<&(Arc<WebPkiServerVerifier>, usize), NoTrustRoots> {
        self.verifier
            .get_or_init(|| self.load())
            .as_ref()
            .map_err(Clone::clone)
    }

    fn load(&self) -> Result<(Arc<WebPkiServerVerifier>, usize), NoTrustRoots> {
        let mut store = RootCertStore::empty();
        let mut problems = Vec::new();
        if self.roots.system {
            let native = rustls_native_certs::load_native_certs();
            let (_, ignored) = store.add_parsable_certificates(native.certs);
            problems.extend(native.errors.iter().map(ToString::to_string));
            if ignored > 0 {
                problems.push(format!("{ignored} unreadable system certificates"));
            }
            if store.is_empty() && problems.is_empty() {
                problems.push("the system trust store is empty".into());
            }
        } else if self.roots.extra.is_empty() {
            problems.push("no roots configured".into());
        }
        let (_, ignored) = store.add_parsable_certificates(self.roots.extra.iter().cloned());
        if ignored > 0 {
            problems.push(format!("{ignored} unreadable extra roots"));
        }
        let count = store.len();
        let verifier = WebPkiServerVerifier::builder_with_provider(
            Arc::new(store),
            Arc::clone(super::provider()),
        )
        .build()
        .map_err(|e| {
            problems.push(e.to_string());
            NoTrustRoots {
                problem: problems.join("; "),
            }
        })?;
        if !problems.is_empty() {
            tracing::debug!("trust store: {count} roots, {}", problems.join("; "));
        }
        Ok((verifier, count))
    }
}

impl ServerCertVerifier for LazyRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (verifier, _) = self
            .verifier()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        AcceptAnyCertificate.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        AcceptAnyCertificate.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        AcceptAnyCertificate.supported_verify_schemes()
    }
}

/// `ssl_insecure`: any certificate for any name, from any issuer, expired or not; the
/// server must still prove it holds the certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate;

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &super::provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &super::provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        super::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
