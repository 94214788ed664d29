//! The protocol-neutral HTTP flow driver: one request/response exchange through the addons
//! (`requestheaders` → body → `request` → server → `responseheaders` → body → `response`, or
//! `error`) and to its server. The client side is a [`Downstream`], so any protocol that can
//! hand over a request and take a response back feeds flows the same way.

use std::sync::Arc;

use abi_stable::std_types::{RArc, ROption};
use bytes::{Bytes, BytesMut};
use interpose_plugin_abi::{
    flow::WebSocketData, now, Address, Client, Connection, ErrorKind, Headers, HostPort, HttpFlow,
    Request, Response, Server, ServerConnectionHookData, Stream,
};

use super::{
    budget::UNCOUNTED,
    exchange::{conn_name, write_server, Outgoing, Pending, ResponseFuture, Route, ServerBody},
    failure::{error_response, Failure, SHUTDOWN_MESSAGE},
    http1::{chunked_with_trailers, codec, BodyDecoder, Frame, Framing, HeadOptions, ReadError},
    intercept::tls_event,
    messages::{host_value, response_from_head, wire_version},
    upstream::{ClientPool, PoolKey, ServerConn},
    upstream_h2::{h2_request, response_from_h2, H2Body, H2Session, OutBody},
    websocket::{is_websocket, Extensions},
    Shared,
};
use crate::{
    addons::{wait_paused, AddonManager, Dispatch, HttpEvent, ServerEvent, TlsEvent},
    flow::{body_from_bytes, bytes_from_body, share_bytes},
    options::CoreOptions,
};

/// A piece of a body, whatever the protocol.
pub enum BodyFrame {
    /// Body bytes.
    Data(Bytes),
    /// Trailer fields (after the last data).
    Trailers(Headers),
}

/// The client side of a flow: where the request body comes from and where the response goes.
pub trait Downstream {
    /// The request body's length, when the client announced it up front.
    fn request_length(&self) -> Option<u64>;
    /// The next piece of the request body; `None` at its end.
    async fn request_frame(&mut self) -> Result<Option<BodyFrame>, Failure>;
    /// The whole request body of `len` bytes (announced by `request_length`), in one buffer.
    async fn request_body(&mut self, len: u64) -> Result<Bytes, Failure>;
    /// Completes when the client goes away (watched while the server thinks).
    async fn closed(&mut self);
    /// Forwards an informational (1xx) response.
    async fn informational(&mut self, response: &Response) -> Result<(), Failure>;
    /// Sends a whole response.
    async fn respond(&mut self, response: Response) -> Result<(), Failure>;
    /// Sends a response head; its body follows with `response_data`, `length` bytes if known.
    async fn start_response(
        &mut self,
        response: &Response,
        length: Option<u64>,
    ) -> Result<(), Failure>;
    /// Sends a piece of a started response's body.
    async fn response_data(&mut self, data: Bytes) -> Result<(), Failure>;
    /// Ends a started response, with trailers if any.
    async fn end_response(&mut self, trailers: Option<&Headers>) -> Result<(), Failure>;
    /// Sends a `101 Switching Protocols` head; the connection then carries another protocol.
    async fn switch_protocols(&mut self, response: &Response) -> Result<(), Failure>;
}

/// How a flow left the client connection.
pub enum Outcome {
    /// The exchange completed; the connection can carry another request.
    Done,
    /// The connection must close (killed, failed mid-message, or an unread body).
    Close,
    /// The server switched protocols: splice the client with this server connection.
    Upgrade(Box<ServerConn>),
    /// The server switched to WebSocket: relay the conversation of this flow, message by
    /// message, with this server connection.
    WebSocket(Box<ServerConn>, Box<HttpFlow>, Extensions),
}

/// Where a body goes: to the client (response) or to the server (request).
enum Sink<'s> {
    Client,
    Server(&'s mut Outgoing),
}

/// A flow in progress. Dropped before it finished (the client left, or shutdown), it still
/// gives addons its `error` event.
pub struct FlowDriver<'a, D: Downstream> {
    shared: &'a Shared,
    /// The options in force when the flow started, kept to its end: its request and its
    /// response see the same limits whatever changes meanwhile.
    options: Arc<CoreOptions>,
    flow: HttpFlow,
    down: &'a mut D,
    /// Whether `response` or `error` has fired.
    finished: bool,
    /// Whether the client's request body was read to its end.
    request_read: bool,
    /// Whether a response head went to the client.
    response_started: bool,
    /// Idle server connections of this flow's client connection (`upstream_pool=client`).
    pool: &'a mut ClientPool,
    /// Bytes this flow holds of the body budget.
    reserved: u64,
}

impl<'a, D: Downstream> FlowDriver<'a, D> {
    /// A flow for `request`, received on `client`.
    pub fn new(
        shared: &'a Shared,
        client: RArc<Client>,
        request: Request,
        down: &'a mut D,
        pool: &'a mut ClientPool,
    ) -> Self {
        let flow = HttpFlow::new(shared.ids.next_id(), client, request);
        FlowDriver::for_flow(shared, flow, down, pool)
    }

    /// A driver for an existing `flow` (client replay: the same flow, its request sent
    /// again).
    pub fn for_flow(
        shared: &'a Shared,
        flow: HttpFlow,
        down: &'a mut D,
        pool: &'a mut ClientPool,
    ) -> Self {
        FlowDriver {
            shared,
            options: shared.options_snapshot(),
            flow,
            down,
            finished: false,
            request_read: false,
            response_started: false,
            pool,
            reserved: 0,
        }
    }

    /// Takes `bytes` of the body budget for this flow; `false` if that would go over it.
    fn reserve(&mut self, bytes: u64) -> bool {
        let ok = self
            .shared
            .budget
            .try_reserve(bytes, self.options.body_buffer_budget);
        if ok {
            self.reserved += bytes;
        }
        ok
    }

    /// Counts a growing buffered body against the budget; `false` once it would go over.
    fn account(&mut self, body: &mut Accumulator) -> bool {
        if body.total <= UNCOUNTED {
            return true;
        }
        let more = body.total - body.counted;
        if !self.reserve(more) {
            tracing::debug!(
                "{} {}: body buffers are at the budget ({} bytes in use); streaming this one",
                self.flow.request.method,
                self.flow.request.url(),
                self.shared.budget.used()
            );
            return false;
        }
        body.counted = body.total;
        true
    }

    /// The pool key of the flow's server connection. Inside intercepted TLS the server gets
    /// the name the client asked for (its SNI), as in mitmproxy.
    fn pool_key(&self) -> PoolKey {
        let mut key = PoolKey::for_request(&self.flow.request);
        key.via = self
            .shared
            .upstream_proxy()
            .map(|p| p.authority.as_str().into());
        if key.sni.is_some() {
            if let ROption::RSome(sni) = &self.flow.client_conn.sni {
                key.sni = Some(sni.as_str().into());
            }
            // Protocol upgrades (WebSocket) need HTTP/1.1.
            if !codec::is_upgrade(&self.flow.request.headers) {
                key.alpn = self.shared.server_alpn_key(&self.flow.client_conn);
            }
        }
        key
    }

    /// A way to the server for `key`: from the pool `upstream_pool` says, else a new
    /// connection (an HTTP/2 session if the server chose `h2`, kept in the pool at once for
    /// the flows that follow); and whether it was reused.
    async fn route(&mut self, key: &PoolKey) -> Result<(Route, bool), Failure> {
        if let Some(route) = self.shared.checkout(self.pool, key) {
            return Ok((route, true));
        }
        let conn = self.open_server(key).await?;
        let route = Route::open(conn).await?;
        if let Route::Http2(session) = &route {
            self.shared.keep_session(self.pool, session.clone());
        }
        Ok((route, false))
    }

    /// Runs the flow to its end.
    pub async fn run(mut self) -> Outcome {
        match self.exchange().await {
            Ok(outcome) => outcome,
            Err(failure) => self.fail(failure).await,
        }
    }

    async fn exchange(&mut self) -> Result<Outcome, Failure> {
        self.event(HttpEvent::RequestHeaders).await?;
        if expects_continue(&self.flow.request.headers) {
            // The proxy answers `100 Continue` itself when it reads the body (mitmproxy).
            self.flow.request.headers.remove("expect");
        }
        let mut server = None;
        match self.read_request_body().await? {
            Buffered::Complete => self.event(HttpEvent::Request).await?,
            Buffered::Stream(prefix) => {
                if self.flow.response.is_none() {
                    server = Some(self.stream_request(prefix).await?);
                } else {
                    self.drain_request().await?;
                    self.event(HttpEvent::Request).await?;
                }
            }
        }
        if self.flow.response.is_some() {
            // An addon answered: no server exchange (a streamed request's server connection
            // is dropped), but addons still see the response's events.
            drop(server);
            self.event(HttpEvent::ResponseHeaders).await?;
            return self.deliver().await;
        }
        let (response, mut body) = match server {
            Some(pending) => self.await_response(pending, false).await?,
            None => self.send_buffered().await?,
        };
        self.flow.response = ROption::RSome(response);
        self.event(HttpEvent::ResponseHeaders).await?;

        let status = self.response().status_code;
        if status == 101 {
            let ServerBody::Http1 { conn, .. } = body else {
                return Err(Failure::server("the server switched protocols over HTTP/2"));
            };
            // Set before `response`, so that addons know a WebSocket conversation follows.
            let extensions = self.websocket_extensions();
            if extensions.is_some() {
                self.flow.websocket = ROption::RSome(WebSocketData::default());
            }
            self.event(HttpEvent::Response).await?;
            self.finished = true;
            let response = self.response().clone();
            self.response_started = true;
            self.down.switch_protocols(&response).await?;
            if let (Some(extensions), ROption::RSome(_)) = (extensions, &self.flow.websocket) {
                // The relay takes the flow; the driver keeps a copy of its request only.
                let placeholder = HttpFlow::new(
                    self.flow.id,
                    self.flow.client_conn.clone(),
                    self.flow.request.clone(),
                );
                let flow = std::mem::replace(&mut self.flow, placeholder);
                return Ok(Outcome::WebSocket(
                    Box::new(conn),
                    Box::new(flow),
                    extensions,
                ));
            }
            return Ok(Outcome::Upgrade(Box::new(conn)));
        }

        let length = body.length();
        let (stream_at, size_limit) = (
            self.options.stream_large_bodies,
            self.options.body_size_limit,
        );
        let mut stream = self.response().stream.is_on()
            || matches!((length, stream_at), (Some(n), Some(t)) if n > t);
        if !stream {
            if let Some(n) = length.filter(|n| *n > UNCOUNTED) {
                // Over the memory budget: stream it instead (body_size_limit still applies).
                stream = !self.reserve(n) && size_limit.is_none_or(|l| n <= l);
            }
        }
        if !stream {
            if let (Some(n), Some(limit)) = (length, size_limit) {
                if n > limit {
                    return Err(too_large("response", limit));
                }
            }
        }
        let mut prefix = Vec::new();
        if !stream {
            match self.buffer_response(&mut body, length).await? {
                Buffered::Complete => {
                    self.release(body);
                    return self.deliver().await;
                }
                Buffered::Stream(buffered) => {
                    prefix = buffered;
                    stream = true;
                }
            }
        }
        debug_assert!(stream);
        self.stream_response(body, prefix).await
    }

    /// The extensions of a `101` answer that starts a WebSocket conversation the relay
    /// follows (with `websocket` on); `None` for another protocol, or one the relay cannot
    /// follow (its bytes are passed through).
    fn websocket_extensions(&mut self) -> Option<Extensions> {
        if !self.options.websocket {
            return None;
        }
        let ROption::RSome(response) = &self.flow.response else {
            return None;
        };
        let response = &response.headers;
        match is_websocket(&self.flow.request.headers, response) {
            Ok(true) => Extensions::negotiated(response).ok(),
            Ok(false) => None,
            Err(extension) => {
                tracing::info!(
                    "{}: WebSocket extension {extension:?} is not supported; passing the \
                     connection through without its messages",
                    self.flow.request.url()
                );
                None
            }
        }
    }

    /// The flow's response (set by the server or an addon).
    fn response(&mut self) -> &mut Response {
        match &mut self.flow.response {
            ROption::RSome(response) => response,
            ROption::RNone => unreachable!("the response is set before it is used"),
        }
    }

    /// Runs an HTTP event; a panicking addon (under `addon_errors=fail`) or a kill ends the
    /// flow, and so does the client leaving while an addon holds the flow paused.
    async fn event(&mut self, event: HttpEvent) -> Result<(), Failure> {
        run_event(
            &self.shared.addons,
            event,
            &mut self.flow,
            self.down.closed(),
        )
        .await
    }

    /// Reads the request body into the flow, unless it is to be streamed: then returns what
    /// was read so far.
    async fn read_request_body(&mut self) -> Result<Buffered, Failure> {
        let (stream_at, size_limit) = (
            self.options.stream_large_bodies,
            self.options.body_size_limit,
        );
        let length = self.down.request_length();
        if self.flow.request.stream.is_on()
            || matches!((length, stream_at), (Some(n), Some(t)) if n > t)
        {
            return Ok(Buffered::Stream(Vec::new()));
        }
        if let (Some(n), Some(limit)) = (length, size_limit) {
            if n > limit {
                return Err(too_large("request", limit));
            }
        }
        if let Some(n) = length {
            if n > UNCOUNTED && !self.reserve(n) {
                // Over the memory budget: stream it instead.
                return Ok(Buffered::Stream(Vec::new()));
            }
            let body = self.down.request_body(n).await?;
            let request = &mut self.flow.request;
            request.content = body_from_bytes(body);
            request.timestamp_end = ROption::RSome(now());
            self.request_read = true;
            return Ok(Buffered::Complete);
        }
        let mut body = Accumulator::new(&self.options, "request");
        while let Some(frame) = self.down.request_frame().await? {
            match frame {
                BodyFrame::Data(data) => {
                    if body.push(data)? || !self.account(&mut body) {
                        return Ok(Buffered::Stream(body.pieces));
                    }
                }
                BodyFrame::Trailers(trailers) => {
                    self.flow.request.trailers = ROption::RSome(trailers);
                }
            }
        }
        let request = &mut self.flow.request;
        request.content = body_from_bytes(body.finish());
        request.timestamp_end = ROption::RSome(now());
        self.request_read = true;
        Ok(Buffered::Complete)
    }

    /// Reads and drops the rest of a request body nobody will forward.
    async fn drain_request(&mut self) -> Result<(), Failure> {
        while let Some(frame) = self.down.request_frame().await? {
            if let BodyFrame::Trailers(trailers) = frame {
                self.flow.request.trailers = ROption::RSome(trailers);
            }
        }
        self.request_read = true;
        self.flow.request.timestamp_end = ROption::RSome(now());
        Ok(())
    }

    /// Reads the response body into the flow, unless it turns out to need streaming.
    async fn buffer_response(
        &mut self,
        server: &mut ServerBody,
        length: Option<u64>,
    ) -> Result<Buffered, Failure> {
        let server_name = conn_name(&self.flow.request);
        let body = if let Some(n) = length {
            let (body, trailers) = server.read_all(n, &server_name).await?;
            if let Some(trailers) = trailers {
                self.response().trailers = ROption::RSome(trailers);
            }
            body
        } else {
            let mut body = Accumulator::new(&self.options, "response");
            loop {
                match server.next_frame(&server_name).await? {
                    Frame::Data(data) => {
                        if body.push(data)? || !self.account(&mut body) {
                            return Ok(Buffered::Stream(body.pieces));
                        }
                    }
                    Frame::Trailers(trailers) => {
                        self.response().trailers = ROption::RSome(trailers);
                    }
                    Frame::End => break,
                }
            }
            body.finish()
        };
        let response = self.response();
        response.content = body_from_bytes(body);
        response.timestamp_end = ROption::RSome(now());
        Ok(Buffered::Complete)
    }

    /// Fires `response` and sends the flow's response to the client.
    async fn deliver(&mut self) -> Result<Outcome, Failure> {
        self.event(HttpEvent::Response).await?;
        self.finished = true;
        let response = match std::mem::replace(&mut self.flow.response, ROption::RNone) {
            ROption::RSome(response) => response,
            ROption::RNone => {
                return Err(Failure::proxy(
                    "an addon removed the response in its `response` event",
                ))
            }
        };
        self.response_started = true;
        match self.down.respond(response).await {
            Ok(()) if self.request_read => Ok(Outcome::Done),
            _ => Ok(Outcome::Close),
        }
    }

    /// Sends a buffered request (over HTTP/1: head and body in one write) and waits for the
    /// response head. A pooled connection the server had closed is retried once on a new one.
    async fn send_buffered(&mut self) -> Result<(Response, ServerBody), Failure> {
        let key = self.pool_key();
        let body = share_bytes(&self.flow.request.content);
        let trailers = self.flow.request.trailers.as_ref().into_option().cloned();
        // The HTTP/1 head does not depend on the connection: made once, whatever the retries.
        let mut http1: Option<(Bytes, [Bytes; 3])> = None;
        loop {
            let (route, reused) = self.route(&key).await?;
            self.flow.server_conn = ROption::RSome(route.server().clone());
            // A session that cannot take the stream is forgotten before trying again.
            let session = match &route {
                Route::Http2(session) if reused => Some(session.clone()),
                _ => None,
            };
            let pending = match route {
                Route::Http1(mut conn) => {
                    let (head, [a, b, c]) = match &http1 {
                        Some(parts) => parts.clone(),
                        None => http1
                            .insert(self.http1_request(&body, trailers.as_ref()))
                            .clone(),
                    };
                    let written = conn.io.write_parts(&mut [head, a, b, c]).await;
                    if let Err(e) = written {
                        if reused {
                            continue;
                        }
                        return Err(Failure::server(format!(
                            "server {} failed: {e}",
                            conn_name(&self.flow.request)
                        )));
                    }
                    Pending::Http1(conn)
                }
                Route::Http2(mut session) => {
                    let out = OutBody::full(body.clone(), trailers.as_ref());
                    let request = self.h2_out(out)?;
                    Pending::Http2(Box::pin(session.send(request)), session)
                }
            };
            match self.await_response(pending, true).await {
                Err(Retry::Stale | Retry::Gone(_)) if reused => {
                    if let Some(session) = &session {
                        self.shared.drop_session(self.pool, session);
                    }
                    continue;
                }
                Err(Retry::Stale) => {
                    return Err(Failure::server(format!(
                        "server {} failed: connection closed before a complete response",
                        conn_name(&self.flow.request)
                    )))
                }
                Err(Retry::Fail(failure) | Retry::Gone(failure)) => return Err(failure),
                Ok(done) => return Ok(done),
            }
        }
    }

    /// A buffered request's HTTP/1 head, and its body framed for it.
    fn http1_request(&mut self, body: &Bytes, trailers: Option<&Headers>) -> (Bytes, [Bytes; 3]) {
        match trailers {
            // Trailers need chunked framing.
            Some(trailers) => (
                self.request_head(Framing::Chunked).freeze(),
                chunked_with_trailers(body.clone(), Some(trailers)),
            ),
            None => (
                self.request_head(Framing::Length(body.len() as u64))
                    .freeze(),
                [body.clone(), Bytes::new(), Bytes::new()],
            ),
        }
    }

    /// Streams the request to a server as it arrives; fires `request` once the body went
    /// through, then sends the trailers. Returns the request awaiting its response.
    async fn stream_request(&mut self, prefix: Vec<Bytes>) -> Result<Pending, Failure> {
        self.shared.budget.note_large_body();
        // The proxy may stream on its own (stream_large_bodies, the memory budget): say so on
        // the flow, as mitmproxy does, so that addons and captures know the body is absent.
        if !self.flow.request.stream.is_on() {
            self.flow.request.stream = Stream::on();
        }
        let key = self.pool_key();
        let (route, _) = self.route(&key).await?;
        self.flow.server_conn = ROption::RSome(route.server().clone());
        let hook = self.flow.request.stream.has_hook();
        let length = self.down.request_length().filter(|_| !hook);
        let mut out = match route {
            Route::Http1(mut conn) => {
                let framing = length.map_or(Framing::Chunked, Framing::Length);
                let head = self.request_head(framing).freeze();
                write_server(&mut conn, &self.flow.request, &mut [head]).await?;
                Outgoing::Http1(conn, framing)
            }
            Route::Http2(mut session) => {
                let (tx, body) = OutBody::channel(length);
                let request = self.h2_out(body)?;
                let response: ResponseFuture = Box::pin(session.send(request));
                Outgoing::Http2 {
                    tx,
                    response,
                    session,
                }
            }
        };
        for data in prefix {
            self.pass_chunk(data, true, &mut Sink::Server(&mut out))
                .await?;
        }
        while let Some(frame) = self.down.request_frame().await? {
            match frame {
                BodyFrame::Data(data) => {
                    self.pass_chunk(data, true, &mut Sink::Server(&mut out))
                        .await?
                }
                BodyFrame::Trailers(trailers) => {
                    self.flow.request.trailers = ROption::RSome(trailers);
                }
            }
        }
        self.request_read = true;
        if hook {
            self.pass_chunk(Bytes::new(), true, &mut Sink::Server(&mut out))
                .await?;
        }
        self.flow.request.timestamp_end = ROption::RSome(now());
        self.event(HttpEvent::Request).await?;
        let request = &self.flow.request;
        out.finish(request.trailers.as_ref().into_option(), request)
            .await
    }

    /// Streams the response to the client as it arrives; fires `response` once the body
    /// went through, then sends the trailers.
    async fn stream_response(
        &mut self,
        mut body: ServerBody,
        prefix: Vec<Bytes>,
    ) -> Result<Outcome, Failure> {
        self.shared.budget.note_large_body();
        if !self.response().stream.is_on() {
            self.response().stream = Stream::on();
        }
        let length = body.length();
        let hook = self.response().stream.has_hook();
        let announced = if hook { None } else { length };
        let response = self.response().clone();
        self.response_started = true;
        self.down.start_response(&response, announced).await?;
        drop(response);
        for data in prefix {
            self.pass_chunk(data, false, &mut Sink::Client).await?;
        }
        let server_name = conn_name(&self.flow.request);
        loop {
            match body.next_frame(&server_name).await? {
                Frame::Data(data) => self.pass_chunk(data, false, &mut Sink::Client).await?,
                Frame::Trailers(trailers) => self.response().trailers = ROption::RSome(trailers),
                Frame::End => break,
            }
        }
        if hook {
            self.pass_chunk(Bytes::new(), false, &mut Sink::Client)
                .await?;
        }
        self.response().timestamp_end = ROption::RSome(now());
        self.release(body);
        self.event(HttpEvent::Response).await?;
        self.finished = true;
        let trailers = self.response().trailers.as_ref().into_option().cloned();
        self.down.end_response(trailers.as_ref()).await?;
        Ok(if self.request_read {
            Outcome::Done
        } else {
            Outcome::Close
        })
    }

    /// Sends one chunk of a streamed body through the flow's chunk hook to `sink`. An empty
    /// chunk with a hook is the end-of-body call.
    async fn pass_chunk(
        &mut self,
        data: Bytes,
        request_side: bool,
        sink: &mut Sink<'_>,
    ) -> Result<(), Failure> {
        let stream = if request_side {
            &mut self.flow.request.stream
        } else {
            &mut self.response().stream
        };
        let data = if stream.has_hook() {
            match stream.call_hook(body_from_bytes(data)) {
                Ok(body) => bytes_from_body(body),
                Err(message) => {
                    return Err(Failure::new(
                        ErrorKind::Addon,
                        format!("the stream hook panicked: {message}"),
                    ))
                }
            }
        } else {
            data
        };
        if data.is_empty() {
            return Ok(());
        }
        match sink {
            Sink::Client => self.down.response_data(data).await,
            Sink::Server(out) => out.write(data, &self.flow.request).await,
        }
    }

    /// The credentials `upstream_auth` adds on the wire (mitmproxy's UpstreamAuth): the next
    /// proxy's on a plain request to it (`to_proxy`), the server's in reverse mode.
    fn wire_auth(&self, to_proxy: bool) -> Option<(&'static str, String)> {
        let value = self.options.upstream_auth.as_deref()?;
        if to_proxy {
            Some(("Proxy-Authorization", value.to_string()))
        } else if matches!(self.shared.mode, super::Mode::Reverse(_)) {
            Some(("Authorization", value.to_string()))
        } else {
            None
        }
    }

    /// The flow's request as an HTTP/2 request to the server, with `body`.
    fn h2_out(&self, body: OutBody) -> Result<http::Request<OutBody>, Failure> {
        let mut request = h2_request(&self.flow.request, body)?;
        if let Some((name, value)) = self.wire_auth(false) {
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                request.headers_mut().insert(name, value);
            }
        }
        Ok(request)
    }

    /// The request head as it goes to the server, announcing `framing`.
    fn request_head(&mut self, framing: Framing) -> BytesMut {
        // A plain request to the next proxy names its server (absolute form).
        let absolute = (self.shared.upstream_proxy().is_some()
            && self.flow.request.scheme.eq_ignore_ascii_case("http"))
        .then(|| self.flow.request.url());
        // upstream_auth goes on the wire only, never into the flow.
        let auth = self.wire_auth(absolute.is_some());
        let request = &mut self.flow.request;
        if !request.headers.contains("host") {
            let host = host_value(request);
            request.headers.insert("Host", host);
        }
        let mut head =
            BytesMut::with_capacity(64 + request.headers.byte_len() + request.headers.len() * 4);
        let opts = HeadOptions {
            framing,
            upgrade: codec::is_upgrade(&request.headers),
            connection: None,
            replace: auth.as_ref().map(|(name, value)| (*name, value.as_str())),
        };
        codec::write_request_head(
            &mut head,
            &request.method,
            absolute.as_deref().unwrap_or(&request.path),
            wire_version(request.http_version),
            &request.headers,
            opts,
        );
        head
    }

    /// Waits for the response head of a sent request: the flow's response, and where its
    /// body comes from. `watch_client`: also notice the client leaving meanwhile.
    async fn await_response(
        &mut self,
        pending: Pending,
        watch_client: bool,
    ) -> Result<(Response, ServerBody), Retry> {
        match pending {
            Pending::Http1(conn) => {
                let (conn, (head, framing)) = self.read_response_head(conn, watch_client).await?;
                let body = ServerBody::Http1 {
                    conn,
                    decoder: BodyDecoder::new(framing),
                    framing,
                };
                Ok((response_from_head(head, now()), body))
            }
            Pending::Http2(response, session) => {
                self.await_h2(response, session, watch_client).await
            }
        }
    }

    /// Waits for the head of a response coming over HTTP/2.
    async fn await_h2(
        &mut self,
        response: ResponseFuture,
        session: H2Session,
        watch_client: bool,
    ) -> Result<(Response, ServerBody), Retry> {
        let timeout = self.options.response_timeout;
        let wait = async {
            match timeout {
                Some(limit) => tokio::time::timeout(limit, response).await.ok(),
                None => Some(response.await),
            }
        };
        let answer = if watch_client {
            tokio::select! {
                answer = wait => answer,
                _ = self.down.closed() => return Err(Retry::Fail(Failure::client_gone())),
            }
        } else {
            wait.await
        };
        match answer {
            None => Err(Retry::Fail(self.no_answer())),
            Some(Err(e)) if e.unsent => Err(Retry::Stale),
            Some(Err(e)) => {
                let failure = Failure::server(format!(
                    "server {} failed: {e}",
                    conn_name(&self.flow.request)
                ));
                if session.is_open() {
                    Err(Retry::Fail(failure))
                } else {
                    Err(Retry::Gone(failure))
                }
            }
            Some(Ok(response)) => {
                let (parts, body) = response.into_parts();
                let timeout = self.options.body_read_timeout;
                let body = ServerBody::Http2(H2Body::new(body, session, timeout));
                Ok((response_from_h2(&parts, now()), body))
            }
        }
    }

    /// The failure of a server that did not answer within `response_timeout`.
    fn no_answer(&self) -> Failure {
        Failure::new(
            ErrorKind::Timeout,
            format!(
                "server {} did not answer within {}s",
                conn_name(&self.flow.request),
                self.options
                    .response_timeout
                    .map_or(0.0, |t| t.as_secs_f64())
            ),
        )
    }

    /// Reads the response head from `conn`, forwarding 1xx responses to the client.
    /// `watch_client`: also notice the client leaving meanwhile.
    async fn read_response_head(
        &mut self,
        mut conn: ServerConn,
        watch_client: bool,
    ) -> Result<(ServerConn, (codec::ResponseHead, Framing)), Retry> {
        let timeout = self.options.response_timeout;
        loop {
            let read = async {
                match timeout {
                    Some(limit) => tokio::time::timeout(limit, conn.io.read_response_head())
                        .await
                        .unwrap_or(Err(ReadError::Timeout)),
                    None => conn.io.read_response_head().await,
                }
            };
            let head = if watch_client {
                tokio::select! {
                    head = read => head,
                    _ = self.down.closed() => return Err(Retry::Fail(Failure::client_gone())),
                }
            } else {
                read.await
            };
            let head = match head {
                Ok(head) => head,
                Err(ReadError::Closed | ReadError::Io(_)) if conn.io.buf.is_empty() => {
                    return Err(Retry::Stale)
                }
                Err(ReadError::Timeout) => return Err(Retry::Fail(self.no_answer())),
                Err(ReadError::Head(e)) => {
                    return Err(Retry::Fail(Failure::server(format!(
                        "server {} sent an invalid HTTP response ({e})",
                        conn_name(&self.flow.request)
                    ))))
                }
                Err(e) => {
                    return Err(Retry::Fail(Failure::server(format!(
                        "server {} failed: {e}",
                        conn_name(&self.flow.request)
                    ))))
                }
            };
            if (100..200).contains(&head.status) && head.status != 101 {
                let informational = response_from_head(head, now());
                if let Err(failure) = self.down.informational(&informational).await {
                    return Err(Retry::Fail(failure));
                }
                continue;
            }
            let framing =
                codec::response_framing(&self.flow.request.method, &head).map_err(|e| {
                    Retry::Fail(Failure::server(format!(
                        "server {} sent an invalid response: {e}",
                        conn_name(&self.flow.request)
                    )))
                })?;
            return Ok((conn, (head, framing)));
        }
    }

    /// Opens a connection for `key` (see [`connect_server`]).
    async fn open_server(&mut self, key: &PoolKey) -> Result<ServerConn, Failure> {
        connect_server(self.shared, &self.flow.client_conn, key, false).await
    }

    /// Parks the HTTP/1 connection a finished response body came on, if it can go on.
    fn release(&mut self, body: ServerBody) {
        let Some(conn) = body.into_reusable() else {
            return;
        };
        let keep = !self
            .flow
            .response
            .as_ref()
            .into_option()
            .is_some_and(|r| codec::wants_close(r.http_version, &r.headers));
        if keep {
            self.shared.park(self.pool, conn);
        }
    }

    /// Ends the flow with `failure`: the `error` event, then the proxy's answer if the client
    /// can still get one.
    async fn fail(&mut self, failure: Failure) -> Outcome {
        tracing::debug!(
            "{} {}: {}",
            self.flow.request.method,
            self.flow.request.url(),
            failure.message
        );
        self.record_error(&failure);
        let status = failure.status(self.flow.response.is_none());
        match status {
            Some(status) if !self.response_started => {
                self.response_started = true;
                let answer = error_response(status, &failure.message);
                match self.down.respond(answer).await {
                    Ok(()) if self.request_read => Outcome::Done,
                    _ => Outcome::Close,
                }
            }
            _ => Outcome::Close,
        }
    }

    fn record_error(&mut self, failure: &Failure) {
        if !self.finished {
            if !self.flow.killed() {
                self.flow.error = ROption::RSome(failure.to_flow_error());
            }
            self.flow.live = false;
            self.finished = true;
            let _ = self
                .shared
                .addons
                .http_now(HttpEvent::Error, &mut self.flow);
        }
    }
}

impl<D: Downstream> Drop for FlowDriver<'_, D> {
    fn drop(&mut self) {
        self.shared.budget.release(self.reserved);
        if !self.finished {
            let failure = if self.shared.is_shutting_down() {
                Failure::new(ErrorKind::Shutdown, SHUTDOWN_MESSAGE)
            } else {
                Failure::client_gone()
            };
            self.record_error(&failure);
        }
    }
}

/// Runs `event` through the addons, waiting off the worker while one holds the flow paused;
/// `client_gone` completing during a pause ends the flow (the client left). `Err` when an
/// addon failed it (`addon_errors=fail`), killed it, or the client left.
pub(super) async fn run_event(
    addons: &AddonManager,
    event: HttpEvent,
    flow: &mut HttpFlow,
    client_gone: impl std::future::Future<Output = ()>,
) -> Result<(), Failure> {
    tokio::pin!(client_gone);
    let mut from = 0;
    loop {
        match addons.http_from(event, flow, from) {
            Ok(Dispatch::Done) => break,
            Ok(Dispatch::Paused { slot, next }) => {
                tokio::select! {
                    _ = wait_paused(slot, flow) => {}
                    () = &mut client_gone => return Err(Failure::client_gone()),
                }
                if flow.killed() {
                    break;
                }
                from = next;
            }
            Err(panic) => return Err(Failure::new(ErrorKind::Addon, panic.to_string())),
        }
    }
    if flow.killed() {
        return Err(Failure::killed());
    }
    Ok(())
}

/// Opens a server connection for `key`, with the `server_connect` / `server_connected` /
/// `server_connect_error` events; `server_connect` may reroute it by changing
/// `server.address`.
pub async fn connect_server(
    shared: &Shared,
    client: &RArc<Client>,
    key: &PoolKey,
    tunnel: bool,
) -> Result<ServerConn, Failure> {
    let proxy = shared.upstream_proxy();
    let mut server = unconnected_server(shared, &key.host, key.port);
    server.via = proxy
        .map(|proxy| Address {
            host: proxy.host.as_str().into(),
            port: proxy.port,
        })
        .into();
    server.timestamp_start = ROption::RSome(now());
    server_event(shared, client, ServerEvent::Connect, &mut server)?;
    let (host, port) = match &server.address {
        ROption::RSome(address) => (address.host.to_string(), address.port),
        ROption::RNone => (key.host.to_string(), key.port),
    };
    if let ROption::RSome(reason) = &server.error {
        let message = format!(
            "connection to {} refused by an addon: {reason}",
            HostPort(&host, port)
        );
        return Err(connect_failed(shared, client, server, message));
    }
    // In upstream mode the TCP connection goes to the next proxy.
    let (dial_host, dial_port) = proxy.map_or((host.as_str(), port), |p| (p.host.as_str(), p.port));
    let stream = match shared.upstream.connect(dial_host, dial_port).await {
        Ok(stream) => stream,
        Err(e) => return Err(connect_failed(shared, client, server, e.to_string())),
    };
    if let (Ok(local), Ok(peer)) = (stream.local_addr(), stream.peer_addr()) {
        server.sockname = local.into();
        server.peername = peer.into();
    }
    server.timestamp_tcp_setup = ROption::RSome(now());
    tracing::debug!("server connect {}", HostPort(&host, port));
    server_event(shared, client, ServerEvent::Connected, &mut server)?;
    let https = key.scheme.eq_ignore_ascii_case("https");
    if https {
        server.tls = true;
        server.sni = key.sni.as_deref().map(Into::into).into();
    }
    let notice = Some((Arc::clone(&shared.addons), client.clone()));
    let server = RArc::new(server);
    let mut conn = shared
        .upstream
        .wrap(stream, key.clone(), RArc::clone(&server), notice);
    if proxy.is_some() && (https || tunnel) {
        // Through the next proxy to the server itself.
        let established = tokio::time::timeout(
            shared.options().connect_timeout,
            conn.connect_through_proxy(&host, port, shared.options().upstream_auth.as_deref()),
        )
        .await
        .unwrap_or_else(|_| Err("the upstream proxy did not answer CONNECT".to_string()));
        if let Err(problem) = established {
            return Err(Failure::server(format!(
                "cannot reach {} through the upstream proxy: {problem}",
                HostPort(&host, port)
            )));
        }
    }
    if https {
        let name = key.sni.as_deref().unwrap_or(&host);
        let offers = key.alpn_offers();
        let config = shared.tls.client_config(&offers, true);
        tls_event(shared, TlsEvent::StartServer, client, &server, None);
        let details = match conn.start_tls(config, name).await {
            Ok(details) => details,
            Err(e) => {
                let message = e.to_string();
                tls_event(
                    shared,
                    TlsEvent::FailedServer,
                    client,
                    &server,
                    Some(&message),
                );
                return Err(Failure::server(message));
            }
        };
        let mut with_tls = (*server).clone();
        record_tls(&mut with_tls.conn, &details);
        with_tls.alpn_offers = offers.into_iter().map(Into::into).collect();
        conn.server = RArc::new(with_tls);
        tls_event(
            shared,
            TlsEvent::EstablishedServer,
            client,
            &conn.server,
            None,
        );
    }
    Ok(conn)
}

/// A server connection to `host:port` as addons see it before it opens: a fresh id, the
/// address, nothing else yet.
pub fn unconnected_server(shared: &Shared, host: &str, port: u16) -> Server {
    Server {
        conn: Connection::new(shared.ids.next_id()),
        address: ROption::RSome(Address {
            host: host.into(),
            port,
        }),
        timestamp_tcp_setup: ROption::RNone,
        via: ROption::RNone,
    }
}

/// Writes what a finished handshake negotiated into a connection's TLS fields.
pub fn record_tls(conn: &mut Connection, details: &crate::tls::TlsDetails) {
    conn.tls = true;
    conn.sni = details.sni.as_deref().map(Into::into).into();
    conn.alpn = details.alpn.clone().map(Into::into).into();
    conn.tls_version = details.tls_version.map(Into::into).into();
    conn.cipher = details.cipher.as_deref().map(Into::into).into();
    conn.certificate_list = details
        .certificate_list
        .iter()
        .map(|cert| cert.as_ref().to_vec().into())
        .collect();
    conn.timestamp_tls_setup = ROption::RSome(now());
}

fn connect_failed(
    shared: &Shared,
    client: &Client,
    mut server: Server,
    message: String,
) -> Failure {
    server.error = ROption::RSome(message.as_str().into());
    server.timestamp_end = ROption::RSome(now());
    if let Err(failure) = server_event(shared, client, ServerEvent::ConnectError, &mut server) {
        return failure;
    }
    Failure::server(message)
}

fn server_event(
    shared: &Shared,
    client: &Client,
    event: ServerEvent,
    server: &mut Server,
) -> Result<(), Failure> {
    if !shared.addons.has_server(event) {
        return Ok(());
    }
    let mut data = ServerConnectionHookData { client, server };
    shared
        .addons
        .server(event, &mut data)
        .map_err(|panic| Failure::new(ErrorKind::Addon, panic.to_string()))
}

/// What reading a body produced.
enum Buffered {
    /// The whole body is in the flow.
    Complete,
    /// The body must stream; these pieces were read already.
    Stream(Vec<Bytes>),
}

/// Why reading a response head failed.
enum Retry {
    /// A reused connection was closed before the response started: try a new one.
    Stale,
    /// The connection closed (an HTTP/2 GOAWAY or error) before answering: a reused one is
    /// tried again on a new one, a new one fails with this.
    Gone(Failure),
    /// The flow fails.
    Fail(Failure),
}

impl From<Failure> for Retry {
    fn from(failure: Failure) -> Self {
        Retry::Fail(failure)
    }
}

impl From<Retry> for Failure {
    fn from(retry: Retry) -> Self {
        match retry {
            Retry::Fail(failure) | Retry::Gone(failure) => failure,
            Retry::Stale => Failure::server("server closed the connection before answering"),
        }
    }
}

fn too_large(what: &str, limit: u64) -> Failure {
    Failure::new(
        ErrorKind::TooLarge,
        format!("{what} body exceeds body_size_limit ({limit} bytes)"),
    )
}

/// Whether the request asks for `100 Continue` before sending its body.
fn expects_continue(headers: &Headers) -> bool {
    headers
        .get_bytes("expect")
        .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"100-continue"))
}

/// Collects a body's pieces while watching `stream_large_bodies` and `body_size_limit`.
struct Accumulator {
    pieces: Vec<Bytes>,
    /// Bytes so far.
    total: u64,
    /// Bytes counted against the body budget.
    counted: u64,
    stream_at: Option<u64>,
    limit: Option<u64>,
    /// `request` or `response`, for the error message.
    what: &'static str,
}

impl Accumulator {
    fn new(options: &CoreOptions, what: &'static str) -> Self {
        Accumulator {
            pieces: Vec::new(),
            total: 0,
            counted: 0,
            stream_at: options.stream_large_bodies,
            limit: options.body_size_limit,
            what,
        }
    }

    /// Adds a piece; `Ok(true)` when the body has grown past `stream_large_bodies` and must
    /// stream from now on.
    fn push(&mut self, data: Bytes) -> Result<bool, Failure> {
        self.total += data.len() as u64;
        self.pieces.push(data);
        if self.stream_at.is_some_and(|t| self.total > t) {
            return Ok(true);
        }
        match self.limit {
            Some(limit) if self.total > limit => Err(too_large(self.what, limit)),
            _ => Ok(false),
        }
    }

    /// The whole body.
    fn finish(self) -> Bytes {
        concat(self.pieces)
    }
}

/// The pieces of a body as one buffer (no copy for a single piece).
fn concat(mut pieces: Vec<Bytes>) -> Bytes {
    match pieces.len() {
        0 => Bytes::new(),
        1 => pieces.pop().unwrap_or_default(),
        _ => {
            let total = pieces.iter().map(Bytes::len).sum();
            let mut body = BytesMut::with_capacity(total);
            for piece in pieces {
                body.extend_from_slice(&piece);
            }
            body.freeze()
        }
    }
}
