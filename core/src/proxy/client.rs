//! One client connection: the `client_*` events, the next-layer decision (HTTP/1, or a tunnel
//! after CONNECT), and the HTTP/1 request loop that hands each request to the flow driver.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use abi_stable::std_types::{RArc, ROption, RStr};
use bytes::{Bytes, BytesMut};
use interpose_plugin_abi::{now, Client, Connection, Headers, HttpVersion, Response};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    sync::watch,
};

use super::{
    connect::{handle_connect, next_layer, read_client_hello, splice, ConnectOutcome, Layer},
    exchange::Route,
    failure::{error_response, Failure},
    flow::{BodyFrame, Downstream, FlowDriver, Outcome},
    http1::{
        chunked_with_trailers, codec, BodyDecoder, Frame, Framing, HeadOptions, Http1Io, ReadError,
    },
    intercept::{serve_reverse_tls, serve_tls, Interception},
    messages::{request_from_head, wire_version, Destination},
    tracker::TrackerGuard,
    upstream::ClientPool,
    websocket, Shared,
};
use crate::addons::ClientEvent;

/// How long a connection closed with an unread request body keeps draining it.
const LINGER: Duration = Duration::from_secs(2);
/// While the server thinks, pipelined bytes are read ahead up to this much.
const READ_AHEAD_MAX: usize = 64 * 1024;

/// Stop signals for client connections: `stop` lets the current request finish, `kill` ends
/// the connection at once (its flow gets an `error` event of kind shutdown).
#[derive(Clone)]
pub struct StopSignals {
    /// Finish the current request, then close.
    pub stop: watch::Receiver<bool>,
    /// Close now.
    pub kill: watch::Receiver<bool>,
}

/// Serves a client connection until it closes or the proxy shuts down.
pub async fn serve_client(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    signals: StopSignals,
    guard: TrackerGuard,
) {
    let mut client = Client {
        conn: Connection::new(shared.ids.next_id()),
        mitmcert: ROption::RNone,
        proxy_mode: RStr::from_str(shared.mode_spec),
    };
    client.peername = peer.into();
    if let Ok(local) = stream.local_addr() {
        client.sockname = local.into();
    }
    client.timestamp_start = ROption::RSome(now());
    tracing::debug!("[{peer}] client connect");
    let _ = shared.addons.client(ClientEvent::Connected, &mut client);
    if let ROption::RSome(reason) = &client.error {
        tracing::info!("[{peer}] client refused by an addon: {reason}");
        client.timestamp_end = ROption::RSome(now());
        let _ = shared.addons.client(ClientEvent::Disconnected, &mut client);
        return;
    }

    let client = RArc::new(client);
    {
        let mut kill = signals.kill.clone();
        let mut conn = Http1Io::new(stream, BytesMut::with_capacity(8 * 1024));
        let serve = async {
            // A reverse proxy's client may speak TLS: look at its first bytes.
            if let Destination::Fixed(target) = &shared.destination {
                let first = tokio::time::timeout(shared.options().client_idle_timeout, conn.fill());
                if !matches!(first.await, Ok(Ok(n)) if n > 0) {
                    return;
                }
                if next_layer(&conn.buf) == Layer::Tls {
                    if let Some(hello) = read_client_hello(&mut conn).await {
                        let target = Arc::clone(target);
                        serve_reverse_tls(&shared, &client, conn, hello, target, signals).await;
                    }
                    return;
                }
            }
            let handoff = serve_http1(
                &shared,
                &client,
                conn,
                shared.destination.clone(),
                signals.clone(),
                None,
            )
            .await;
            if let Handoff::Intercept(interception) = handoff {
                serve_tls(&shared, &client, *interception, signals).await;
            }
        };
        tokio::select! {
            () = serve => {}
            _ = kill.wait_for(|killed| *killed) => {}
        }
        // A flow still in flight is dropped here: its `error` comes before
        // `client_disconnected`.
    }
    tracing::debug!("[{peer}] client disconnect");
    if shared.addons.has_client(ClientEvent::Disconnected) {
        let mut client = (*client).clone();
        client.timestamp_end = ROption::RSome(now());
        let _ = shared.addons.client(ClientEvent::Disconnected, &mut client);
    }
    drop(guard);
}

/// How serving a connection's HTTP/1 requests ended.
pub enum Handoff<S> {
    /// The connection is done with.
    Done,
    /// A CONNECT tunnel starts TLS: the caller intercepts it.
    Intercept(Box<Interception<S>>),
}

/// Serves HTTP/1 requests on `conn` until the client closes, a flow ends the connection, or
/// the proxy stops.
pub async fn serve_http1<S: AsyncRead + AsyncWrite + Unpin + Send>(
    shared: &Shared,
    client: &RArc<Client>,
    mut conn: Http1Io<S>,
    mut destination: Destination,
    signals: StopSignals,
    preconnected: Option<Route>,
) -> Handoff<S> {
    let mut stop = signals.stop;
    let mut pool = ClientPool::default();
    if let Some(route) = preconnected {
        shared.park_route(&mut pool, route);
    }
    let mut first = true;
    loop {
        if *stop.borrow() {
            return Handoff::Done;
        }
        // Once per request: a change applies from the next one on.
        let (idle_timeout, header_timeout) = {
            let options = shared.options();
            conn.body_timeout = Some(options.body_read_timeout);
            (options.client_idle_timeout, options.header_read_timeout)
        };
        let head = tokio::select! {
            head = conn.read_request_head(idle_timeout, header_timeout) => head,
            _ = stop.wait_for(|stopped| *stopped), if conn.buf.is_empty() => return Handoff::Done,
        };
        let head = match head {
            Ok(Some(head)) => head,
            Ok(None) | Err(ReadError::Closed | ReadError::Io(_)) => return Handoff::Done,
            Err(ReadError::Timeout) => {
                let message = format!(
                    "the request head was not complete within {}s",
                    header_timeout.as_secs_f64()
                );
                let _ = write_refusal(&mut conn, http::StatusCode::REQUEST_TIMEOUT, &message).await;
                linger(&mut conn).await;
                return Handoff::Done;
            }
            Err(ReadError::Head(e)) => {
                let status =
                    http::StatusCode::from_u16(e.status()).unwrap_or(http::StatusCode::BAD_REQUEST);
                let _ = write_refusal(&mut conn, status, &e.to_string()).await;
                linger(&mut conn).await;
                return Handoff::Done;
            }
            Err(ReadError::Body(_)) => return Handoff::Done,
        };
        let timestamp_start = now();
        if first && looped_back(shared, client) {
            let message = "this request came from the proxy itself: forwarding it would loop";
            tracing::warn!("{} {}: {message}", head.method, head.target);
            let _ = write_refusal(&mut conn, http::StatusCode::LOOP_DETECTED, message).await;
            linger(&mut conn).await;
            return Handoff::Done;
        }
        first = false;
        if head.method.eq_ignore_ascii_case("CONNECT") {
            if !matches!(destination, Destination::FromRequest) {
                let _ = write_refusal(
                    &mut conn,
                    http::StatusCode::METHOD_NOT_ALLOWED,
                    "CONNECT is only accepted in regular mode",
                )
                .await;
                return Handoff::Done;
            }
            match handle_connect(shared, client, &mut conn, &mut pool, head, timestamp_start).await
            {
                ConnectOutcome::Answered => continue,
                ConnectOutcome::Close => return Handoff::Done,
                ConnectOutcome::Tunnel(mut server) => {
                    splice(&mut conn, &mut server).await;
                    return Handoff::Done;
                }
                ConnectOutcome::Intercept {
                    server,
                    host,
                    port,
                    hello,
                } => {
                    return Handoff::Intercept(Box::new(Interception {
                        conn,
                        server,
                        host,
                        port,
                        hello,
                    }))
                }
                ConnectOutcome::Http(target) => {
                    destination = Destination::Fixed(target);
                    continue;
                }
            }
        }
        let framing = match codec::request_framing(&head) {
            Ok(framing) => framing,
            Err(e) => {
                let _ =
                    write_refusal(&mut conn, http::StatusCode::BAD_REQUEST, &e.to_string()).await;
                linger(&mut conn).await;
                return Handoff::Done;
            }
        };
        let version = head.version;
        let keep_alive = !codec::wants_close(version, &head.headers);
        let head_request = head.method.eq_ignore_ascii_case("HEAD");
        let expect_continue = version == HttpVersion::Http11
            && head
                .headers
                .get_bytes("expect")
                .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"100-continue"));
        let request = match request_from_head(&destination, head, timestamp_start) {
            Ok(request) => request,
            Err(failure) => {
                let _ =
                    write_refusal(&mut conn, http::StatusCode::BAD_REQUEST, &failure.message).await;
                linger(&mut conn).await;
                return Handoff::Done;
            }
        };
        let mut down = Http1Downstream {
            conn: &mut conn,
            decoder: BodyDecoder::new(framing),
            request_done: matches!(framing, Framing::Empty | Framing::Length(0)),
            version,
            keep_alive,
            head_request,
            expect_continue,
            response_framing: Framing::Empty,
        };
        let outcome = FlowDriver::new(shared, client.clone(), request, &mut down, &mut pool)
            .run()
            .await;
        let request_done = down.request_done;
        let keep_alive = down.keep_alive && request_done;
        match outcome {
            Outcome::Done if keep_alive => continue,
            Outcome::Done | Outcome::Close => {
                if !request_done {
                    linger(&mut conn).await;
                }
                return Handoff::Done;
            }
            Outcome::Upgrade(mut server) => {
                splice(&mut conn, &mut server).await;
                return Handoff::Done;
            }
            Outcome::WebSocket(mut server, flow, extensions) => {
                let server_io = &mut server.io;
                websocket::relay(
                    shared,
                    flow,
                    extensions,
                    &mut conn.io,
                    &mut conn.buf,
                    &mut server_io.io,
                    &mut server_io.buf,
                )
                .await;
                return Handoff::Done;
            }
        }
    }
}

/// Whether `client` is one of the proxy's own server connections coming back in.
fn looped_back(shared: &Shared, client: &Client) -> bool {
    let (Some(peer), Some(local)) = (client.peername.get(), client.sockname.get()) else {
        return false;
    };
    // Only a connection from this machine can be one of ours.
    (peer.ip().is_loopback() || peer.ip() == local.ip()) && shared.upstream.is_own_connection(peer)
}

/// Closes a connection whose request body was not read (refused, or a flow that failed early)
/// gently: after the answer, the proxy stops sending and reads and drops what the client is
/// still sending for a moment, so that closing does not reset the connection before the
/// client has read the answer (nothing is buffered).
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut Http1Io<S>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = conn.io.shutdown().await;
    conn.buf.clear();
    let drain = async {
        let mut scratch = [0u8; 16 * 1024];
        while let Ok(n) = conn.io.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Answers with an error response of the proxy's own and marks the connection for closing.
async fn write_refusal<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Http1Io<S>,
    status: http::StatusCode,
    message: &str,
) -> std::io::Result<()> {
    let response = error_response(status, message);
    write_whole_response(conn, HttpVersion::Http11, response, true).await
}

/// Writes a whole response (the proxy's own or an addon's), framed by its length, to a client
/// that spoke `version`; `close` announces that the connection closes after it.
pub async fn write_whole_response<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Http1Io<S>,
    version: HttpVersion,
    response: Response,
    close: bool,
) -> std::io::Result<()> {
    let body = crate::flow::bytes_from_body(response.content.clone());
    let mut head = BytesMut::new();
    codec::write_response_head(
        &mut head,
        wire_version(version),
        response.status_code,
        &response.reason,
        &response.headers,
        HeadOptions {
            connection: close.then_some("close"),
            ..HeadOptions::new(Framing::Length(body.len() as u64))
        },
    );
    conn.write_parts(&mut [head.freeze(), body]).await
}

/// The HTTP/1 client side of one flow.
struct Http1Downstream<'c, S> {
    conn: &'c mut Http1Io<S>,
    decoder: BodyDecoder,
    /// Whether the request body was read to its end.
    request_done: bool,
    /// The version the client spoke.
    version: HttpVersion,
    /// Whether the connection stays open after this exchange.
    keep_alive: bool,
    /// Whether the request was `HEAD` (its response has no body).
    head_request: bool,
    /// Whether `100 Continue` is still owed before the body is read.
    expect_continue: bool,
    /// How the started response's body is framed.
    response_framing: Framing,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Http1Downstream<'_, S> {
    async fn send_continue(&mut self) -> Result<(), Failure> {
        if std::mem::take(&mut self.expect_continue) {
            self.conn
                .write_parts(&mut [Bytes::from_static(b"HTTP/1.1 100 Continue\r\n\r\n")])
                .await
                .map_err(|_| Failure::client_gone())?;
        }
        Ok(())
    }

    fn client_failure(&self, error: ReadError) -> Failure {
        match error {
            ReadError::Io(_) | ReadError::Closed => Failure::client_gone(),
            ReadError::Timeout => {
                Failure::client_timeout("the client stopped sending the request body")
            }
            other => Failure::client(format!("invalid request body: {other}")),
        }
    }

    /// Whether a response of this status to this request has no body.
    fn bodiless(&self, status: u16) -> bool {
        self.head_request || (100..200).contains(&status) || status == 204 || status == 304
    }

    fn connection_value(&self) -> Option<&'static str> {
        if !self.keep_alive {
            Some("close")
        } else if self.version == HttpVersion::Http10 {
            Some("keep-alive")
        } else {
            None
        }
    }

    fn head(&self, response: &Response, framing: Framing, upgrade: bool) -> Bytes {
        let mut head =
            BytesMut::with_capacity(64 + response.headers.byte_len() + response.headers.len() * 4);
        codec::write_response_head(
            &mut head,
            wire_version(self.version),
            response.status_code,
            &response.reason,
            &response.headers,
            HeadOptions {
                framing,
                upgrade,
                replace: None,
                connection: if upgrade {
                    None
                } else {
                    self.connection_value()
                },
            },
        );
        head.freeze()
    }

    async fn write(&mut self, parts: &mut [Bytes]) -> Result<(), Failure> {
        self.conn
            .write_parts(parts)
            .await
            .map_err(|_| Failure::client_gone())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Downstream for Http1Downstream<'_, S> {
    fn request_length(&self) -> Option<u64> {
        if self.request_done {
            Some(0)
        } else {
            self.decoder.remaining()
        }
    }

    async fn request_frame(&mut self) -> Result<Option<BodyFrame>, Failure> {
        if self.request_done || self.decoder.is_finished() {
            return Ok(None);
        }
        self.send_continue().await?;
        match self.conn.read_frame(&mut self.decoder).await {
            Ok(Frame::Data(data)) => Ok(Some(BodyFrame::Data(data))),
            Ok(Frame::Trailers(trailers)) => Ok(Some(BodyFrame::Trailers(trailers))),
            Ok(Frame::End) => {
                self.request_done = true;
                Ok(None)
            }
            Err(e) => Err(self.client_failure(e)),
        }
    }

    async fn request_body(&mut self, len: u64) -> Result<Bytes, Failure> {
        if self.request_done || len == 0 {
            self.request_done = true;
            return Ok(Bytes::new());
        }
        self.send_continue().await?;
        let len = usize::try_from(len).map_err(|_| Failure::client("request body too large"))?;
        match self.conn.read_exact(len).await {
            Ok(body) => {
                self.request_done = true;
                Ok(body)
            }
            Err(e) => Err(self.client_failure(e)),
        }
    }

    async fn closed(&mut self) {
        if !self.request_done {
            // The body is still unread: nothing to watch without consuming it.
            return std::future::pending().await;
        }
        loop {
            if self.conn.eof {
                return;
            }
            if self.conn.buf.len() > READ_AHEAD_MAX {
                return std::future::pending().await;
            }
            match self.conn.fill().await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    async fn informational(&mut self, response: &Response) -> Result<(), Failure> {
        if self.version != HttpVersion::Http11 {
            return Ok(());
        }
        let head = self.head(response, Framing::Empty, false);
        self.write(&mut [head]).await
    }

    async fn respond(&mut self, response: Response) -> Result<(), Failure> {
        if self.bodiless(response.status_code) {
            let head = self.head(&response, Framing::Empty, false);
            return self.write(&mut [head]).await;
        }
        let body = crate::flow::bytes_from_body(response.content.clone());
        if let (ROption::RSome(trailers), HttpVersion::Http11) = (&response.trailers, self.version)
        {
            // Trailers need chunked framing.
            let head = self.head(&response, Framing::Chunked, false);
            let [size, body, end] = chunked_with_trailers(body, Some(trailers));
            return self.write(&mut [head, size, body, end]).await;
        }
        let head = self.head(&response, Framing::Length(body.len() as u64), false);
        drop(response);
        self.write(&mut [head, body]).await
    }

    async fn start_response(
        &mut self,
        response: &Response,
        length: Option<u64>,
    ) -> Result<(), Failure> {
        self.response_framing = if self.bodiless(response.status_code) {
            Framing::Empty
        } else if let Some(n) = length {
            Framing::Length(n)
        } else if self.version == HttpVersion::Http11 {
            Framing::Chunked
        } else {
            self.keep_alive = false;
            Framing::UntilClose
        };
        let head = self.head(response, self.response_framing, false);
        self.write(&mut [head]).await
    }

    async fn response_data(&mut self, data: Bytes) -> Result<(), Failure> {
        match self.response_framing {
            Framing::Empty => Ok(()),
            Framing::Chunked => {
                let mut size = BytesMut::new();
                codec::write_chunk_size(&mut size, data.len());
                self.write(&mut [size.freeze(), data, Bytes::from_static(b"\r\n")])
                    .await
            }
            _ => self.write(&mut [data]).await,
        }
    }

    async fn end_response(&mut self, trailers: Option<&Headers>) -> Result<(), Failure> {
        if self.response_framing == Framing::Chunked {
            let mut end = BytesMut::new();
            codec::write_last_chunk(&mut end, trailers);
            self.write(&mut [end.freeze()]).await?;
        }
        Ok(())
    }

    async fn switch_protocols(&mut self, response: &Response) -> Result<(), Failure> {
        self.keep_alive = false;
        let head = self.head(response, Framing::Empty, true);
        self.write(&mut [head]).await
    }
}
