//! HTTP/2 to servers: a server connection whose TLS handshake chose `h2` becomes a session
//! (hyper's HTTP/2 client) that many flows share, one stream each; and the conversions between
//! flows and HTTP/2 messages on that side.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use abi_stable::std_types::{RArc, ROption};
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use hyper::{
    body::{Body as HttpBody, Frame as HttpFrame, Incoming, SizeHint},
    client::conn::http2::SendRequest,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use interpose_plugin_abi::{Body, Headers, HttpVersion, Request, Response, Server, Stream};
use tokio::sync::mpsc;

use super::{
    failure::Failure,
    http1::Frame,
    http2::{append_fields, header_map},
    messages::host_value,
    upstream::{PoolKey, ServerConn},
};

/// One HTTP/2 connection to a server, shared by the flows sent over it (a handle: clones
/// share the connection, which closes once every handle is dropped and its streams ended).
#[derive(Clone)]
pub struct H2Session {
    send: SendRequest<OutBody>,
    /// The connection as addons see it.
    server: RArc<Server>,
    key: Arc<PoolKey>,
}

impl H2Session {
    /// Starts HTTP/2 on `conn`, whose TLS handshake chose `h2`. The connection's task owns
    /// `conn` from now on: when the server closes it (GOAWAY, an error) the session stops
    /// being open and `server_disconnected` fires.
    pub async fn start(mut conn: ServerConn) -> Result<H2Session, Failure> {
        let stream = conn.take_stream();
        let server = RArc::clone(&conn.server);
        let key = Arc::new(conn.key().clone());
        let (send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Failure::server(format!("HTTP/2 with server {key} failed: {e}")))?;
        let name = key.to_string();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("HTTP/2 connection to {name} ended: {e}");
            }
            drop(conn);
        });
        Ok(H2Session { send, server, key })
    }

    /// Whether the connection can still take new streams.
    pub fn is_open(&self) -> bool {
        !self.send.is_closed()
    }

    /// Whether `other` is a handle to the same connection.
    pub fn same(&self, other: &H2Session) -> bool {
        Arc::ptr_eq(&self.key, &other.key)
    }

    /// The key the session is filed under.
    pub fn key(&self) -> &PoolKey {
        &self.key
    }

    /// The server connection as addons see it.
    pub fn server(&self) -> &RArc<Server> {
        &self.server
    }

    /// Sends `request` on a new stream; the future yields the response head.
    pub fn send(
        &mut self,
        request: http::Request<OutBody>,
    ) -> impl Future<Output = Result<hyper::Response<Incoming>, SendError>> + Send + 'static {
        let sent = self.send.try_send_request(request);
        async move {
            sent.await.map_err(|e| SendError {
                unsent: e.message().is_some(),
                error: e.into_error(),
            })
        }
    }
}

/// Why a request got no response over HTTP/2.
#[derive(Debug)]
pub struct SendError {
    /// The request never left (the connection had closed): it may go on another one.
    pub unsent: bool,
    /// What hyper said.
    pub error: hyper::Error,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        describe(&self.error, f)
    }
}

/// A request body going to a server: all of it at once (with trailers), or fed by the flow
/// through a channel (bounded: backpressure to the flow).
pub struct OutBody {
    data: Option<Bytes>,
    rx: Option<mpsc::Receiver<HttpFrame<Bytes>>>,
    trailers: Option<HeaderMap>,
    length: Option<u64>,
}

impl OutBody {
    /// A whole body, then `trailers` if any.
    pub fn full(data: Bytes, trailers: Option<&Headers>) -> OutBody {
        OutBody {
            length: Some(data.len() as u64),
            data: (!data.is_empty()).then_some(data),
            rx: None,
            trailers: trailers.map(|t| header_map(t, false)),
        }
    }

    /// A body the returned sender feeds (data, then trailers); it ends when the sender is
    /// dropped. `length`, if known, is announced as `content-length`.
    pub fn channel(length: Option<u64>) -> (mpsc::Sender<HttpFrame<Bytes>>, OutBody) {
        let (tx, rx) = mpsc::channel(4);
        let body = OutBody {
            data: None,
            rx: Some(rx),
            trailers: None,
            length,
        };
        (tx, body)
    }
}

impl HttpBody for OutBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<HttpFrame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(HttpFrame::data(data))));
        }
        if let Some(rx) = self.rx.as_mut() {
            match rx.poll_recv(cx) {
                Poll::Ready(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                Poll::Ready(None) => self.rx = None,
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(HttpFrame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.rx.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// `request` as an HTTP/2 request with `body`: the `Host` field becomes `:authority`,
/// connection-specific fields are left out, names are lower-case, and `content-length` is
/// the body's.
pub fn h2_request(request: &Request, body: OutBody) -> Result<http::Request<OutBody>, Failure> {
    let authority = match request.headers.get_bytes("host") {
        Some(host) => String::from_utf8_lossy(host).into_owned(),
        None => host_value(request),
    };
    let path = if request.path.is_empty() {
        "/"
    } else {
        request.path.as_str()
    };
    let uri = http::Uri::builder()
        .scheme(request.scheme.as_str())
        .authority(authority.as_str())
        .path_and_query(path)
        .build()
        .map_err(|e| Failure::proxy(format!("cannot send {authority}{path} over HTTP/2: {e}")))?;
    let method = http::Method::from_bytes(request.method.as_bytes())
        .map_err(|e| Failure::proxy(format!("cannot send method over HTTP/2: {e}")))?;
    let mut headers = header_map(&request.headers, false);
    headers.remove(http::header::HOST);
    let mut out = http::Request::new(body);
    *out.method_mut() = method;
    *out.uri_mut() = uri;
    *out.version_mut() = http::Version::HTTP_2;
    *out.headers_mut() = headers;
    Ok(out)
}

/// The flow's response from an HTTP/2 response head (no reason phrase in HTTP/2).
pub fn response_from_h2(parts: &http::response::Parts, timestamp_start: f64) -> Response {
    let mut headers = Headers::with_capacity(parts.headers.len(), 256);
    append_fields(&mut headers, &parts.headers);
    Response {
        http_version: HttpVersion::Http2,
        status_code: parts.status.as_u16(),
        reason: "".into(),
        headers,
        content: Body::empty(),
        trailers: ROption::RNone,
        stream: Stream::default(),
        timestamp_start,
        timestamp_end: ROption::RNone,
    }
}

/// A response body arriving on an HTTP/2 stream.
pub struct H2Body {
    body: Incoming,
    /// How long the body may go without a frame arriving.
    timeout: Duration,
    /// Keeps the connection open while the body arrives.
    _session: H2Session,
}

/// Why an HTTP/2 response body stopped short.
#[derive(Debug)]
pub enum H2BodyError {
    /// No frame within the body timeout.
    Timeout,
    /// The stream or connection failed (reset, GOAWAY, closed).
    Stream(hyper::Error),
}

impl std::fmt::Display for H2BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            H2BodyError::Timeout => f.write_str("timed out"),
            H2BodyError::Stream(e) => describe(e, f),
        }
    }
}

/// hyper's error with its cause (the HTTP/2 reason: a reset's code, GOAWAY).
fn describe(error: &hyper::Error, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    write!(f, "{error}")?;
    if let Some(source) = std::error::Error::source(error) {
        write!(f, ": {source}")?;
    }
    Ok(())
}

impl H2Body {
    /// The body of `response`, read on `session` with `timeout` between frames.
    pub fn new(body: Incoming, session: H2Session, timeout: Duration) -> H2Body {
        H2Body {
            body,
            timeout,
            _session: session,
        }
    }

    /// The body's length, when known up front (`content-length`, or an ended stream).
    pub fn length(&self) -> Option<u64> {
        if self.body.is_end_stream() {
            Some(0)
        } else {
            self.body.size_hint().exact()
        }
    }

    /// The next piece of the body.
    pub async fn next_frame(&mut self) -> Result<Frame, H2BodyError> {
        loop {
            let next = std::future::poll_fn(|cx| Pin::new(&mut self.body).poll_frame(cx));
            let frame = match tokio::time::timeout(self.timeout, next).await {
                Err(_elapsed) => return Err(H2BodyError::Timeout),
                Ok(None) => return Ok(Frame::End),
                Ok(Some(Err(e))) => return Err(H2BodyError::Stream(e)),
                Ok(Some(Ok(frame))) => frame,
            };
            match frame.into_data() {
                Ok(data) if data.is_empty() => continue,
                Ok(data) => return Ok(Frame::Data(data)),
                Err(frame) => {
                    if let Ok(map) = frame.into_trailers() {
                        let mut trailers = Headers::new();
                        append_fields(&mut trailers, &map);
                        return Ok(Frame::Trailers(trailers));
                    }
                }
            }
        }
    }

    /// The whole body, announced as `len` bytes, and its trailers if any.
    pub async fn read_all(&mut self, len: u64) -> Result<(Bytes, Option<Headers>), H2BodyError> {
        let mut body = BytesMut::with_capacity(len.min(1 << 24) as usize);
        let mut trailers = None;
        loop {
            match self.next_frame().await? {
                Frame::Data(data) if body.is_empty() && data.len() as u64 == len => {
                    // One frame carried it all: no copy.
                    let rest = self.finish().await?;
                    return Ok((data, rest));
                }
                Frame::Data(data) => body.extend_from_slice(&data),
                Frame::Trailers(fields) => trailers = Some(fields),
                Frame::End => return Ok((body.freeze(), trailers)),
            }
        }
    }

    /// Reads the rest of a body whose data is all in: its trailers, if any.
    async fn finish(&mut self) -> Result<Option<Headers>, H2BodyError> {
        let mut trailers = None;
        loop {
            match self.next_frame().await? {
                Frame::Trailers(fields) => trailers = Some(fields),
                Frame::End => return Ok(trailers),
                Frame::Data(_) => {}
            }
        }
    }
}
