//! What the end-to-end tests drive: real plugin builds, the real `interpose` binary, upstream
//! servers (recording, raw, TLS, WebSocket, big bodies), and real HTTP clients.

mod big;
mod build;
mod client;
mod curl;
mod proxy;
mod tls;
mod upstream;
mod wire;
mod ws;

pub use big::{download, upload, BigUpstream};
pub use build::plugin;
pub use client::{raw_exchange, send, Connection};
pub use curl::{curl_direct, curl_through};
pub use proxy::{Finished, Proxy, ProxyBuilder};
pub use tls::TlsServer;
pub use upstream::{bad_upstream, closed_port, BadUpstream, Upstream};
pub use wire::{raw_request, RawMessage, RawUpstream};
pub use ws::ws_echo_server;

use std::sync::OnceLock;

use tokio::runtime::Runtime;

/// The runtime the tests' servers and clients run on.
pub fn rt() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("test runtime")
    })
}

/// Header fields as `(lower-case name, value)` text pairs, in order.
pub fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (n.as_str().to_string(), value)
        })
        .collect()
}

/// The first value of header `name` (any case) among `pairs`.
pub fn find_header<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A fresh empty folder under the system temp dir.
pub fn temp_dir(label: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "interpose-e2e-{}-{}-{label}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}
