//! HTTP clients talking to the proxy: hyper's HTTP/1.1 client (one connection, any number of
//! requests), and raw bytes for malformed input.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream as StdStream},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::rt;

/// A response as the client received it.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Header fields, lower-case names.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        super::find_header(&self.headers, name)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One client connection to the proxy, kept alive across requests.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    /// Connects to the proxy at `addr`.
    pub fn open(addr: SocketAddr) -> Connection {
        rt().block_on(async {
            let stream = TcpStream::connect(addr).await.expect("connect to proxy");
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(connection);
            Connection { sender }
        })
    }

    /// Sends a request; `target` is written on the request line as is (a path for reverse
    /// mode, an absolute URL for regular mode). Errors are hyper's, as text.
    pub fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Reply, String> {
        let mut request = hyper::Request::builder().method(method).uri(target);
        let has_host = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host"));
        if !has_host {
            let host = target
                .split_once("://")
                .map(|(_, rest)| rest.split('/').next().unwrap_or(rest))
                .unwrap_or("localhost");
            request = request.header("host", host);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| e.to_string())?;
        rt().block_on(async {
            let send = async {
                self.sender.ready().await.map_err(|e| e.to_string())?;
                let response = self
                    .sender
                    .send_request(request)
                    .await
                    .map_err(|e| e.to_string())?;
                let (parts, body) = response.into_parts();
                let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
                Ok(Reply {
                    status: parts.status.as_u16(),
                    headers: super::header_pairs(&parts.headers),
                    body: body.to_vec(),
                })
            };
            tokio::time::timeout(Duration::from_secs(20), send)
                .await
                .map_err(|_| "timed out".to_string())?
        })
    }
}

/// Sends one request on a fresh connection.
pub fn send(proxy: SocketAddr, method: &str, target: &str, body: &[u8]) -> Result<Reply, String> {
    Connection::open(proxy).send(method, target, &[], body)
}

/// Writes `bytes` to the proxy and returns everything it answers until it closes (or 5 s).
pub fn raw_exchange(proxy: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = StdStream::connect(proxy).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(bytes).expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}
