//! HTTP/2 from clients (inside intercepted TLS, when the client chose `h2`): hyper's HTTP/2
//! server hands each stream to the protocol-neutral flow driver through [`H2Downstream`].
//! Servers get whatever they chose (`upstream_h2` for HTTP/2 ones).

use std::{
    convert::Infallible,
    fmt,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use abi_stable::std_types::{RArc, ROption};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use hyper::body::{Body as HttpBody, Frame as HttpFrame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use interpose_plugin_abi::{now, Body, Client, Headers, HttpVersion, Request, Response, Stream};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{mpsc, oneshot},
};

use super::{
    exchange::Route,
    failure::Failure,
    flow::{BodyFrame, Downstream, FlowDriver},
    messages::FixedTarget,
    upstream::ClientPool,
    Shared,
};

/// Fields that belong to one HTTP/1 connection and have no place in HTTP/2 (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
];

/// Idle HTTP/1 server connections one HTTP/2 client connection keeps for its streams.
const H2_IDLE_MAX: usize = 128;

/// Serves the HTTP/2 streams of `io`, each as a flow to `target`.
/// `preconnected` is a way to the target already open (interception's eager connection),
/// kept for the first stream (or all of them, an HTTP/2 session).
pub async fn serve_h2<S>(
    shared: Arc<Shared>,
    client: RArc<Client>,
    io: S,
    target: Arc<FixedTarget>,
    preconnected: Option<Route>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut idle = ClientPool::with_capacity(H2_IDLE_MAX);
    if let Some(route) = preconnected {
        shared.park_route(&mut idle, route);
    }
    let pool = Arc::new(Mutex::new(idle));
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let (shared, client, target, pool) = (
            Arc::clone(&shared),
            client.clone(),
            Arc::clone(&target),
            Arc::clone(&pool),
        );
        async move {
            let (head_tx, head_rx) = oneshot::channel();
            tokio::spawn(run_stream(shared, client, target, pool, request, head_tx));
            head_rx.await.map_err(|_| StreamAborted)
        }
    });
    let served = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
    if let Err(e) = served {
        tracing::debug!("HTTP/2 client connection ended: {e}");
    }
}

/// A stream whose flow ended without a response (killed, or failed after the head): hyper
/// resets it.
#[derive(Debug)]
struct StreamAborted;

impl fmt::Display for StreamAborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("flow ended without a response")
    }
}

impl std::error::Error for StreamAborted {}

/// Runs one stream's flow.
async fn run_stream(
    shared: Arc<Shared>,
    client: RArc<Client>,
    target: Arc<FixedTarget>,
    pool: Arc<Mutex<ClientPool>>,
    request: hyper::Request<Incoming>,
    head_tx: oneshot::Sender<hyper::Response<ChannelBody>>,
) {
    let (parts, body) = request.into_parts();
    let head_request = parts.method == http::Method::HEAD;
    let request_length = if body.is_end_stream() {
        Some(0)
    } else {
        body.size_hint().exact()
    };
    let request = request_from_parts(&parts, &target);
    let mut down = H2Downstream {
        body,
        request_length,
        head_tx: Some(head_tx),
        data_tx: None,
        head_request,
    };
    // Streams of one connection share its idle server connections (taken for the flow,
    // given back after it).
    let mut local = pool.lock().unwrap_or_else(|e| e.into_inner()).take_one();
    let _ = FlowDriver::new(&shared, client, request, &mut down, &mut local)
        .run()
        .await;
    pool.lock().unwrap_or_else(|e| e.into_inner()).absorb(local);
}

/// The flow's request from an HTTP/2 request head.
fn request_from_parts(parts: &http::request::Parts, target: &FixedTarget) -> Request {
    let authority = parts.uri.authority().map_or("", |a| a.as_str());
    let mut headers = Headers::with_capacity(parts.headers.len() + 1, 256);
    if !authority.is_empty() && !parts.headers.contains_key(http::header::HOST) {
        // Servers get HTTP/1.1: the authority becomes `Host`, as mitmproxy does.
        headers.append("host", authority);
    }
    append_fields(&mut headers, &parts.headers);
    let timestamp = now();
    Request {
        method: parts.method.as_str().into(),
        scheme: target.scheme.into(),
        authority: authority.into(),
        host: target.host.as_str().into(),
        port: target.port,
        path: parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .into(),
        http_version: HttpVersion::Http2,
        headers,
        content: Body::empty(),
        trailers: ROption::RNone,
        stream: Stream::default(),
        timestamp_start: timestamp,
        timestamp_end: ROption::RNone,
    }
}

/// Appends every field of an HTTP/2 header map to `headers`, in order.
pub fn append_fields(headers: &mut Headers, map: &HeaderMap) {
    for (name, value) in map {
        headers.append(name.as_str(), value.as_bytes());
    }
}

/// `headers` for HTTP/2: lower-case names, no connection-specific fields (nor
/// `content-length` unless `keep_length`).
pub fn header_map(headers: &Headers, keep_length: bool) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers.iter() {
        let lower = name.to_ascii_lowercase();
        if CONNECTION_SPECIFIC.contains(&lower.as_str())
            || (!keep_length && lower == "content-length")
        {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(lower.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// The HTTP/2 client side of one flow (one stream).
struct H2Downstream {
    body: Incoming,
    request_length: Option<u64>,
    head_tx: Option<oneshot::Sender<hyper::Response<ChannelBody>>>,
    data_tx: Option<mpsc::Sender<HttpFrame<Bytes>>>,
    head_request: bool,
}

impl H2Downstream {
    fn bodiless(&self, status: u16) -> bool {
        self.head_request || (100..200).contains(&status) || status == 204 || status == 304
    }
}

impl Downstream for H2Downstream {
    fn request_length(&self) -> Option<u64> {
        self.request_length
    }

    async fn request_frame(&mut self) -> Result<Option<BodyFrame>, Failure> {
        loop {
            let frame =
                match std::future::poll_fn(|cx| Pin::new(&mut self.body).poll_frame(cx)).await {
                    None => return Ok(None),
                    Some(Err(_)) => return Err(Failure::client_gone()),
                    Some(Ok(frame)) => frame,
                };
            match frame.into_data() {
                Ok(data) if data.is_empty() => continue,
                Ok(data) => return Ok(Some(BodyFrame::Data(data))),
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        let mut fields = Headers::new();
                        append_fields(&mut fields, &trailers);
                        return Ok(Some(BodyFrame::Trailers(fields)));
                    }
                }
            }
        }
    }

    async fn request_body(&mut self, len: u64) -> Result<Bytes, Failure> {
        let mut body = bytes::BytesMut::with_capacity(len.min(1 << 24) as usize);
        while let Some(frame) = self.request_frame().await? {
            if let BodyFrame::Data(data) = frame {
                body.extend_from_slice(&data);
            }
        }
        Ok(body.freeze())
    }

    async fn closed(&mut self) {
        // hyper ends the stream's flow itself when the client resets it.
        std::future::pending().await
    }

    async fn informational(&mut self, _response: &Response) -> Result<(), Failure> {
        Ok(())
    }

    async fn respond(&mut self, response: Response) -> Result<(), Failure> {
        let bodiless = self.bodiless(response.status_code);
        let body = crate::flow::bytes_from_body(response.content.clone());
        let length = if bodiless {
            None
        } else {
            Some(body.len() as u64)
        };
        self.start_response(&response, length).await?;
        if !bodiless && !body.is_empty() {
            self.response_data(body).await?;
        }
        self.end_response(response.trailers.as_ref().into_option())
            .await
    }

    async fn start_response(
        &mut self,
        response: &Response,
        length: Option<u64>,
    ) -> Result<(), Failure> {
        let bodiless = self.bodiless(response.status_code);
        let (data_tx, rx) = mpsc::channel(4);
        let mut head = hyper::Response::new(ChannelBody {
            rx,
            length: if bodiless { Some(0) } else { length },
        });
        *head.status_mut() = http::StatusCode::from_u16(response.status_code)
            .map_err(|_| Failure::proxy(format!("invalid status {}", response.status_code)))?;
        *head.headers_mut() = header_map(&response.headers, length.is_some() || bodiless);
        let head_tx = self.head_tx.take().ok_or_else(Failure::client_gone)?;
        head_tx.send(head).map_err(|_| Failure::client_gone())?;
        self.data_tx = Some(data_tx);
        Ok(())
    }

    async fn response_data(&mut self, data: Bytes) -> Result<(), Failure> {
        let tx = self.data_tx.as_ref().ok_or_else(Failure::client_gone)?;
        tx.send(HttpFrame::data(data))
            .await
            .map_err(|_| Failure::client_gone())
    }

    async fn end_response(&mut self, trailers: Option<&Headers>) -> Result<(), Failure> {
        if let (Some(tx), Some(trailers)) = (self.data_tx.as_ref(), trailers) {
            let map = header_map(trailers, false);
            let _ = tx.send(HttpFrame::trailers(map)).await;
        }
        self.data_tx = None;
        Ok(())
    }

    async fn switch_protocols(&mut self, _response: &Response) -> Result<(), Failure> {
        Err(Failure::proxy(
            "protocol upgrades are not supported over HTTP/2",
        ))
    }
}

/// A response body fed by the flow, chunk by chunk (bounded: backpressure to the flow).
struct ChannelBody {
    rx: mpsc::Receiver<HttpFrame<Bytes>>,
    length: Option<u64>,
}

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<HttpFrame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|frame| frame.map(Ok))
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
