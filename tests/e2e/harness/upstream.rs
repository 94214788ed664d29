//! Servers behind the proxy: a well-behaved one that records every request it receives, and
//! misbehaving ones (closed port, reset, garbage).

use std::{
    convert::Infallible,
    io::{Read, Write},
    net::{SocketAddr, TcpListener as StdListener},
    sync::{Arc, Mutex},
    thread,
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::rt;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header fields, lower-case names, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The proxy's address on the upstream connection (tells connections apart).
    pub peer: SocketAddr,
}

impl Seen {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        super::find_header(&self.headers, name)
    }
}

/// An HTTP/1.1 server answering `200 upstream saw <METHOD> <path>` (or echoing the body of a
/// request to `/echo`), recording each request.
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    /// Starts a server on a free port.
    pub fn start() -> Upstream {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let listener = rt()
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind upstream");
        let addr = listener.local_addr().unwrap();
        let record = Arc::clone(&seen);
        rt().spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    return;
                };
                let record = Arc::clone(&record);
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(Arc::clone(&record), peer, req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream { addr, seen }
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn answer(
    record: Arc<Mutex<Vec<Seen>>>,
    peer: SocketAddr,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    let reply = if path == "/echo" {
        body.clone()
    } else {
        Bytes::from(format!("upstream saw {} {path}", parts.method))
    };
    record.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path,
        headers: super::header_pairs(&parts.headers),
        body: body.to_vec(),
        peer,
    });
    let mut response = hyper::Response::new(Full::new(reply));
    response
        .headers_mut()
        .insert("x-upstream", "yes".parse().unwrap());
    Ok(response)
}

/// A local port nothing listens on (connecting is refused).
pub fn closed_port() -> SocketAddr {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// How a [`bad_upstream`] misbehaves once it has read a request.
#[derive(Clone, Copy, Debug)]
pub enum BadUpstream {
    /// Closes the connection without answering.
    Hangup,
    /// Answers with bytes that are not HTTP.
    Garbage,
    /// Answers correctly, but only after three seconds.
    Slow,
}

/// A server that reads each request and then misbehaves (one connection at a time).
pub fn bad_upstream(kind: BadUpstream) -> SocketAddr {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            match kind {
                BadUpstream::Hangup => {}
                BadUpstream::Garbage => {
                    let _ = stream.write_all(b"THIS IS NOT HTTP\r\n\r\n");
                }
                BadUpstream::Slow => {
                    thread::sleep(Duration::from_secs(3));
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow");
                }
            }
            drop(stream);
        }
    });
    addr
}
