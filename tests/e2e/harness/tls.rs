//! HTTPS servers (HTTP/1.1 only, or HTTP/2 only) with their own test CA, made at test time,
//! so that a client can verify the server's certificate through the proxy.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    server::conn::{http1, http2},
    service::service_fn,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio::net::TcpListener;
use tokio_rustls::{
    rustls::{
        self,
        pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
    },
    TlsAcceptor,
};

use super::rt;

/// An HTTPS server on a free loopback port answering `tls-ok <path>` to every request (and
/// ` body=<length>` when the request had a body; `/slow...` after 200 ms; `/big/<n>` with
/// `n` bytes; `/reset...` not at all; `/show-authorization...` with ` auth=<Authorization>`
/// added), with a certificate for `localhost` and `127.0.0.1` issued by a fresh test CA.
/// It counts the TCP connections it accepted and notes each request's HTTP version.
pub struct TlsServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The test CA's certificate as a PEM file (curl's `--cacert`).
    pub ca_pem: PathBuf,
    connections: Arc<AtomicUsize>,
    versions: Arc<Mutex<Vec<http::Version>>>,
}

impl TlsServer {
    /// `https://localhost:PORT{path}` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// A proxy whose confdir is `confdir` and which trusts this server's CA for upstream
    /// verification (through `SSL_CERT_FILE`, as the system's store would).
    pub fn trusting_proxy(&self, confdir: &std::path::Path) -> super::ProxyBuilder {
        super::Proxy::builder()
            .confdir(confdir)
            .env("SSL_CERT_FILE", &self.ca_pem.display().to_string())
    }

    /// An HTTP/1.1 server (no ALPN).
    pub fn start() -> TlsServer {
        TlsServer::serve(false)
    }

    /// An HTTP/2-only server: ALPN `h2` and nothing else.
    pub fn start_h2() -> TlsServer {
        TlsServer::serve(true)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The HTTP version of each request so far, in order.
    pub fn versions(&self) -> Vec<http::Version> {
        self.versions.lock().unwrap().clone()
    }

    /// Makes a CA and a leaf certificate and starts serving.
    fn serve(h2: bool) -> TlsServer {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Interpose e2e test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign the CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate().expect("leaf key");
        let mut leaf_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("leaf params");
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let leaf_cert = leaf_params
            .signed_by(&leaf_key, &issuer)
            .expect("sign the leaf");

        let dir = super::temp_dir("tls");
        let ca_pem = dir.join("test-ca.pem");
        std::fs::write(&ca_pem, ca_cert.pem()).expect("write the CA PEM");

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![leaf_cert.der().clone(), ca_cert.der().clone()], key)
            .expect("server certificate");
        if h2 {
            config.alpn_protocols = vec![b"h2".to_vec()];
        }
        let acceptor = TlsAcceptor::from(Arc::new(config));

        let listener = rt()
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind TLS server");
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let versions = Arc::new(Mutex::new(Vec::new()));
        let (accepted, seen) = (Arc::clone(&connections), Arc::clone(&versions));
        rt().spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        seen.lock().unwrap().push(req.version());
                        answer(req)
                    });
                    let io = TokioIo::new(stream);
                    if h2 {
                        let _ = http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await;
                    } else {
                        let _ = http1::Builder::new().serve_connection(io, service).await;
                    }
                });
            }
        });
        TlsServer {
            addr,
            ca_pem,
            connections,
            versions,
        }
    }
}

/// A request the test server refuses to answer (`/reset...`: an HTTP/2 server resets the
/// stream, an HTTP/1 one closes the connection).
#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}

impl std::error::Error for Refused {}

/// The test servers' answer to `req`.
async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Refused> {
    let path = req.uri().path().to_string();
    if path.starts_with("/reset") {
        return Err(Refused);
    }
    if path.starts_with("/slow") {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if let Some(n) = path.strip_prefix("/big/") {
        let n: usize = n.parse().unwrap_or(0);
        return Ok(hyper::Response::new(Full::new(Bytes::from(vec![b'x'; n]))));
    }
    let auth = path.starts_with("/show-authorization").then(|| {
        let value = req.headers().get(http::header::AUTHORIZATION);
        format!(
            " auth={}",
            value.and_then(|v| v.to_str().ok()).unwrap_or("none")
        )
    });
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut text = format!("tls-ok {path}{}", auth.unwrap_or_default());
    if !body.is_empty() {
        text.push_str(&format!(" body={}", body.len()));
    }
    Ok(hyper::Response::new(Full::new(Bytes::from(text))))
}
