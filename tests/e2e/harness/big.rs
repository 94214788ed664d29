//! Bodies too big to hold: generated on the fly with a checkable pattern (byte `i` is
//! `i % 251`), counted and checked as they stream, on both sides of the proxy.

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, OnceLock},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::{
    body::{Body, Frame, Incoming, SizeHint},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use super::rt;

/// The pattern's period: a prime, so that it never lines up with buffer sizes.
const PERIOD: usize = 251;
/// The most a generated body hands out at once.
const FRAME: usize = 64 * 1024;
/// How long one streamed exchange may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(180);

/// The pattern from offset 0, long enough that any frame can be cut from it at any phase.
fn pattern() -> &'static Bytes {
    static PATTERN: OnceLock<Bytes> = OnceLock::new();
    PATTERN.get_or_init(|| {
        let len = (FRAME / PERIOD + 2) * PERIOD;
        Bytes::from((0..len).map(|i| (i % PERIOD) as u8).collect::<Vec<u8>>())
    })
}

/// A body of `size` pattern bytes, made as it is sent. With a known length it goes out with
/// `Content-Length`, otherwise chunked.
pub struct PatternBody {
    sent: u64,
    size: u64,
    known_length: bool,
}

impl PatternBody {
    /// `size` bytes; `known_length` false hides the size so that HTTP/1.1 chunks the body.
    pub fn new(size: u64, known_length: bool) -> Self {
        PatternBody {
            sent: 0,
            size,
            known_length,
        }
    }
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let left = self.size - self.sent;
        if left == 0 {
            return Poll::Ready(None);
        }
        let n = left.min(FRAME as u64) as usize;
        let start = (self.sent % PERIOD as u64) as usize;
        self.sent += n as u64;
        Poll::Ready(Some(Ok(Frame::data(pattern().slice(start..start + n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent == self.size
    }

    fn size_hint(&self) -> SizeHint {
        if self.known_length {
            SizeHint::with_exact(self.size - self.sent)
        } else {
            SizeHint::default()
        }
    }
}

/// Counts pattern bytes as they arrive and notes the first one out of pattern.
#[derive(Debug, Clone, Default)]
pub struct PatternCheck {
    /// Bytes seen so far.
    pub count: u64,
    /// Offset of the first byte that broke the pattern.
    pub first_mismatch: Option<u64>,
}

impl PatternCheck {
    /// Takes the next bytes of the body.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let start = (self.count % PERIOD as u64) as usize;
            let expected = &pattern()[start..];
            let n = data.len().min(expected.len());
            if self.first_mismatch.is_none() && data[..n] != expected[..n] {
                let at = data.iter().zip(expected).position(|(a, b)| a != b);
                self.first_mismatch = at.map(|i| self.count + i as u64);
            }
            self.count += n as u64;
            data = &data[n..];
        }
    }
}

/// One upload as the [`BigUpstream`] received it.
#[derive(Debug, Clone, Default)]
pub struct Upload {
    /// Body bytes received so far.
    pub check: PatternCheck,
    /// Whether the body ended cleanly.
    pub complete: bool,
}

/// A server for big bodies: `GET /big?size=N` answers N pattern bytes made on the fly (with
/// `Content-Length`, or chunked when the query also has `chunked`); any `POST` body is
/// counted and checked as it streams and answered with `received N` (or `received N,
/// pattern broken at I`).
pub struct BigUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    uploads: Arc<Mutex<Vec<Upload>>>,
}

impl BigUpstream {
    /// Starts a server on a free loopback port.
    pub fn start() -> BigUpstream {
        let uploads = Arc::new(Mutex::new(Vec::new()));
        let listener = rt()
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind big upstream");
        let addr = listener.local_addr().unwrap();
        let record = Arc::clone(&uploads);
        rt().spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let record = Arc::clone(&record);
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer_big(Arc::clone(&record), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        BigUpstream { addr, uploads }
    }

    /// Every upload so far, complete or not, in arrival order.
    pub fn uploads(&self) -> Vec<Upload> {
        self.uploads.lock().unwrap().clone()
    }
}

async fn answer_big(
    uploads: Arc<Mutex<Vec<Upload>>>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<BoxBody<Bytes, Infallible>>, Infallible> {
    if request.method() == hyper::Method::POST {
        let index = {
            let mut uploads = uploads.lock().unwrap();
            uploads.push(Upload::default());
            uploads.len() - 1
        };
        let mut body = request.into_body();
        let mut check = PatternCheck::default();
        let complete = loop {
            match body.frame().await {
                None => break true,
                Some(Err(_)) => break false,
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        check.feed(data);
                        uploads.lock().unwrap()[index].check = check.clone();
                    }
                }
            }
        };
        uploads.lock().unwrap()[index].complete = complete;
        let text = match check.first_mismatch {
            None => format!("received {}", check.count),
            Some(at) => format!("received {}, pattern broken at {at}", check.count),
        };
        return Ok(hyper::Response::new(Full::new(Bytes::from(text)).boxed()));
    }
    let query = request.uri().query().unwrap_or_default();
    let size = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("size="))
        .and_then(|n| n.parse::<u64>().ok());
    let Some(size) = size.filter(|_| request.uri().path() == "/big") else {
        let mut response = hyper::Response::new(Full::new(Bytes::from("want /big?size=N")).boxed());
        *response.status_mut() = hyper::StatusCode::NOT_FOUND;
        return Ok(response);
    };
    let chunked = query.split('&').any(|kv| kv == "chunked");
    Ok(hyper::Response::new(
        PatternBody::new(size, !chunked).boxed(),
    ))
}

/// What a streaming client saw of one exchange; the body is counted and checked, not kept.
#[derive(Debug, Clone)]
pub struct Streamed {
    /// Status code.
    pub status: u16,
    /// The body, counted and checked against the pattern.
    pub check: PatternCheck,
    /// The first 4 KiB of the body, for answers that are text.
    pub start: Vec<u8>,
    /// From sending the request to the first body byte.
    pub first_byte: Option<Duration>,
}

impl Streamed {
    /// The start of the body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.start).into_owned()
    }
}

/// `GET target` through `proxy` (reverse mode), streaming the response body.
pub fn download(proxy: SocketAddr, target: &str) -> Result<Streamed, String> {
    exchange(proxy, "GET", target, PatternBody::new(0, true))
}

/// `POST target` through `proxy` (reverse mode) with a body of `size` pattern bytes made as
/// it is sent, with `Content-Length` or chunked.
pub fn upload(
    proxy: SocketAddr,
    target: &str,
    size: u64,
    chunked: bool,
) -> Result<Streamed, String> {
    exchange(proxy, "POST", target, PatternBody::new(size, !chunked))
}

fn exchange(
    proxy: SocketAddr,
    method: &str,
    target: &str,
    body: PatternBody,
) -> Result<Streamed, String> {
    let request = hyper::Request::builder()
        .method(method)
        .uri(target)
        .header("host", "localhost")
        .body(body)
        .map_err(|e| e.to_string())?;
    rt().block_on(async {
        let run = async {
            let stream = TcpStream::connect(proxy)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            let sent = Instant::now();
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let (parts, mut body) = response.into_parts();
            let mut streamed = Streamed {
                status: parts.status.as_u16(),
                check: PatternCheck::default(),
                start: Vec::new(),
                first_byte: None,
            };
            while let Some(frame) = body.frame().await {
                let frame = frame
                    .map_err(|e| format!("body broke after {} bytes: {e}", streamed.check.count))?;
                let Some(data) = frame.data_ref() else {
                    continue;
                };
                if streamed.first_byte.is_none() && !data.is_empty() {
                    streamed.first_byte = Some(sent.elapsed());
                }
                let room = 4096usize.saturating_sub(streamed.start.len());
                streamed
                    .start
                    .extend_from_slice(&data[..room.min(data.len())]);
                streamed.check.feed(data);
            }
            Ok(streamed)
        };
        tokio::time::timeout(EXCHANGE_TIMEOUT, run)
            .await
            .map_err(|_| format!("timed out after {EXCHANGE_TIMEOUT:?}"))?
    })
}
