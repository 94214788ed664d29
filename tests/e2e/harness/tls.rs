//! An HTTPS/1.1 server with its own test CA, made at test time, so that a client can verify
//! the server's certificate through the proxy.

use std::{convert::Infallible, net::SocketAddr, path::PathBuf, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
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

/// An HTTPS server on a free loopback port answering `tls-ok <path>` to every request, with a
/// certificate for `localhost` and `127.0.0.1` issued by a fresh test CA.
pub struct TlsServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The test CA's certificate as a PEM file (curl's `--cacert`).
    pub ca_pem: PathBuf,
}

impl TlsServer {
    /// Makes a CA and a leaf certificate and starts serving.
    pub fn start() -> TlsServer {
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
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![leaf_cert.der().clone(), ca_cert.der().clone()], key)
            .expect("server certificate");
        let acceptor = TlsAcceptor::from(Arc::new(config));

        let listener = rt()
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind TLS server");
        let addr = listener.local_addr().unwrap();
        rt().spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| {
                        let text = format!("tls-ok {}", req.uri().path());
                        async move {
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(text))))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TlsServer { addr, ca_pem }
    }
}
