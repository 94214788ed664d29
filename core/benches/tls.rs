//! Cost of impersonating a host: signing a leaf, and full TLS 1.3 handshakes (client and
//! proxy side, over an in-memory pipe, no resumption) for a new host, a cached host, and with
//! a fixed certificate and no store at all (the baseline the store's lookups add to).
//!
//! - `leaf/sign`: one leaf signed by the CA (what a new host costs before the handshake).
//! - `handshake/new_host`: `server_config` for a host never seen (signs its leaf) + handshake.
//! - `handshake/cached_host`: `server_config` for a cached host + handshake.
//! - `handshake/plain`: a `ServerConfig` built once that always presents one leaf + handshake.
//! - `server_config/sni`, `server_config/no_sni`: the factory alone (shared configuration
//!   with a cache hit; a configuration built for a client without SNI).
//! - `client_hello/parse`: parsing a real client's first flight.
//!
//! Run: `cargo bench -p interpose --bench tls -- --warm-up-time 1 --measurement-time 3`
//!
//! On the 2-core development machine (both sides of each handshake on one thread, ECDSA
//! P-256 leaves): leaf/sign 18 µs; handshake new_host 289 µs, cached_host 268 µs, plain
//! 267 µs (the store adds about 1 µs to a handshake); server_config sni 71 ns, no_sni 431 ns;
//! client_hello/parse 0.23 µs.

use std::{
    hint::black_box,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use criterion::{criterion_group, criterion_main, Criterion};
use interpose::tls::{
    accept, connect, provider, CertificateAuthority, ClientHello, HelloParse, TlsContext,
    UpstreamConfigs, UpstreamRoots, UserCerts,
};
use rustls::{
    client::Resumption, server::ResolvesServerCert, sign::CertifiedKey, ClientConfig,
    RootCertStore, ServerConfig,
};

struct Setup {
    tls: TlsContext,
    client: Arc<ClientConfig>,
    runtime: tokio::runtime::Runtime,
    confdir: std::path::PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.confdir);
    }
}

fn setup() -> Setup {
    let confdir = std::env::temp_dir().join(format!("interpose-bench-tls-{}", std::process::id()));
    let ca = Arc::new(CertificateAuthority::load_or_create(&confdir).unwrap());
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert_der().clone()).unwrap();
    let mut client = ClientConfig::builder_with_provider(Arc::clone(provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Every handshake is a full one.
    client.resumption = Resumption::disabled();
    let upstream = UpstreamConfigs::with_roots(true, UpstreamRoots::default());
    Setup {
        tls: TlsContext::new(ca, UserCerts::none(), upstream).unwrap(),
        client: Arc::new(client),
        runtime: tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap(),
        confdir,
    }
}

/// Both sides of one handshake over an in-memory pipe.
async fn handshake(server: Arc<ServerConfig>, client: Arc<ClientConfig>, host: &str) {
    let (a, b) = tokio::io::duplex(16 * 1024);
    let (server, client) = tokio::join!(accept(server, a, None), connect(client, host, b));
    black_box((server.unwrap(), client.unwrap()));
}

fn benches(c: &mut Criterion) {
    let s = setup();
    let next = AtomicU64::new(0);
    let fresh_host = || format!("host-{}.example", next.fetch_add(1, Ordering::Relaxed));

    c.bench_function("leaf/sign", |b| {
        b.iter(|| black_box(s.tls.store().generate(&fresh_host()).unwrap()))
    });

    let mut group = c.benchmark_group("handshake");
    group.bench_function("new_host", |b| {
        b.iter(|| {
            let host = fresh_host();
            let config = s.tls.server_config(Some(&host), &host, &[]).unwrap();
            s.runtime
                .block_on(handshake(config, Arc::clone(&s.client), &host));
        })
    });
    group.bench_function("cached_host", |b| {
        b.iter(|| {
            let config = s
                .tls
                .server_config(Some("cached.example"), "", &[])
                .unwrap();
            s.runtime
                .block_on(handshake(config, Arc::clone(&s.client), "cached.example"));
        })
    });
    let key = s.tls.store().certified_key("plain.example").unwrap();
    let plain = Arc::new(
        ServerConfig::builder_with_provider(Arc::clone(provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(key))),
    );
    group.bench_function("plain", |b| {
        b.iter(|| {
            s.runtime.block_on(handshake(
                Arc::clone(&plain),
                Arc::clone(&s.client),
                "plain.example",
            ));
        })
    });
    group.finish();

    let mut group = c.benchmark_group("server_config");
    let alpn = [b"h2".to_vec(), b"http/1.1".to_vec()];
    group.bench_function("sni", |b| {
        b.iter(|| {
            black_box(
                s.tls
                    .server_config(Some("cached.example"), "", &alpn)
                    .unwrap(),
            )
        })
    });
    group.bench_function("no_sni", |b| {
        b.iter(|| black_box(s.tls.server_config(None, "127.0.0.1", &alpn).unwrap()))
    });
    group.finish();

    let flight = first_flight(&s);
    c.bench_function("client_hello/parse", |b| {
        b.iter(|| match ClientHello::parse(black_box(&flight)) {
            HelloParse::Complete(hello) => black_box(hello),
            other => panic!("{other:?}"),
        })
    });
}

/// The same leaf for every handshake: no store, no lookup.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

fn first_flight(s: &Setup) -> Vec<u8> {
    let name = rustls::pki_types::ServerName::try_from("example.com").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::clone(&s.client), name).unwrap();
    let mut flight = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut flight).unwrap();
    }
    flight
}

criterion_group!(tls, benches);
criterion_main!(tls);
