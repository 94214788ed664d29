//! The server side of one flow, whatever the protocol: its route (an HTTP/1 connection of its
//! own, or a stream on a shared HTTP/2 session), the request body going out on it, and the
//! response body coming back. The flow driver sees one shape; HTTP/1 stays its own codec.

use std::{future::Future, pin::Pin};

use abi_stable::std_types::RArc;
use bytes::{Bytes, BytesMut};
use hyper::body::{Frame as HttpFrame, Incoming};
use interpose_plugin_abi::{Headers, HostPort, Request, Server};
use tokio::sync::mpsc;

use super::{
    failure::Failure,
    http1::{codec, BodyDecoder, Frame, Framing, ReadError},
    http2::header_map,
    upstream::ServerConn,
    upstream_h2::{H2Body, H2BodyError, H2Session, SendError},
};
use interpose_plugin_abi::ErrorKind;

/// How a flow reaches its server.
// Unboxed: HTTP/1 is the hot path, and boxing its connection would allocate once per flow.
#[allow(clippy::large_enum_variant)]
pub enum Route {
    /// An HTTP/1 connection, the flow's alone until it parks it again.
    Http1(ServerConn),
    /// An HTTP/2 session; the flow gets a stream on it.
    Http2(H2Session),
}

impl Route {
    /// The route over a newly opened connection: an HTTP/2 session if the server chose `h2`
    /// in its TLS handshake, else the connection itself.
    pub async fn open(conn: ServerConn) -> Result<Route, Failure> {
        if conn.chose_h2() {
            Ok(Route::Http2(H2Session::start(conn).await?))
        } else {
            Ok(Route::Http1(conn))
        }
    }

    /// The server connection as addons see it.
    pub fn server(&self) -> &RArc<Server> {
        match self {
            Route::Http1(conn) => &conn.server,
            Route::Http2(session) => session.server(),
        }
    }
}

/// The response head of a request sent over HTTP/2, still to come.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<hyper::Response<Incoming>, SendError>> + Send>>;

/// A request whose head went out and whose body is on its way.
// Unboxed: HTTP/1 is the hot path, and boxing its connection would allocate once per flow.
#[allow(clippy::large_enum_variant)]
pub enum Outgoing {
    /// On an HTTP/1 connection, with the framing its head announced.
    Http1(ServerConn, Framing),
    /// On an HTTP/2 stream, its body fed through `tx`.
    Http2 {
        /// Feeds the stream's body.
        tx: mpsc::Sender<HttpFrame<Bytes>>,
        /// The response head.
        response: ResponseFuture,
        /// The session the stream is on.
        session: H2Session,
    },
}

impl Outgoing {
    /// Sends a piece of the request body.
    pub async fn write(&mut self, data: Bytes, request: &Request) -> Result<(), Failure> {
        match self {
            Outgoing::Http1(conn, Framing::Chunked) => {
                let mut size = BytesMut::new();
                codec::write_chunk_size(&mut size, data.len());
                write_server(
                    conn,
                    request,
                    &mut [size.freeze(), data, Bytes::from_static(b"\r\n")],
                )
                .await
            }
            Outgoing::Http1(conn, _) => write_server(conn, request, &mut [data]).await,
            Outgoing::Http2 { tx, .. } => tx
                .send(HttpFrame::data(data))
                .await
                .map_err(|_| stream_closed(request)),
        }
    }

    /// Ends the request body, with `trailers` if any: the request now awaits its response.
    pub async fn finish(
        self,
        trailers: Option<&Headers>,
        request: &Request,
    ) -> Result<Pending, Failure> {
        match self {
            Outgoing::Http1(mut conn, framing) => {
                if framing == Framing::Chunked {
                    let mut end = BytesMut::new();
                    codec::write_last_chunk(&mut end, trailers);
                    write_server(&mut conn, request, &mut [end.freeze()]).await?;
                }
                Ok(Pending::Http1(conn))
            }
            Outgoing::Http2 {
                tx,
                response,
                session,
            } => {
                if let Some(trailers) = trailers {
                    tx.send(HttpFrame::trailers(header_map(trailers, false)))
                        .await
                        .map_err(|_| stream_closed(request))?;
                }
                // Dropping the sender ends the stream.
                drop(tx);
                Ok(Pending::Http2(response, session))
            }
        }
    }
}

/// A request sent whole, its response awaited.
// Unboxed: HTTP/1 is the hot path, and boxing its connection would allocate once per flow.
#[allow(clippy::large_enum_variant)]
pub enum Pending {
    /// On an HTTP/1 connection.
    Http1(ServerConn),
    /// On an HTTP/2 stream of this session.
    Http2(ResponseFuture, H2Session),
}

/// Where a response body comes from.
// Unboxed: HTTP/1 is the hot path, and boxing its connection would allocate once per flow.
#[allow(clippy::large_enum_variant)]
pub enum ServerBody {
    /// An HTTP/1 connection, decoding the body's framing.
    Http1 {
        /// The connection.
        conn: ServerConn,
        /// Decodes the body.
        decoder: BodyDecoder,
        /// The response's framing.
        framing: Framing,
    },
    /// An HTTP/2 stream.
    Http2(H2Body),
}

impl ServerBody {
    /// The body's length, when known up front.
    pub fn length(&self) -> Option<u64> {
        match self {
            ServerBody::Http1 { framing, .. } => match framing {
                Framing::Length(n) => Some(*n),
                Framing::Empty => Some(0),
                _ => None,
            },
            ServerBody::Http2(body) => body.length(),
        }
    }

    /// The next piece of the body; `server` names it in errors.
    pub async fn next_frame(&mut self, server: &str) -> Result<Frame, Failure> {
        match self {
            ServerBody::Http1 { conn, decoder, .. } => conn
                .io
                .read_frame(decoder)
                .await
                .map_err(|e| server_body_failure(server, &e)),
            ServerBody::Http2(body) => body
                .next_frame()
                .await
                .map_err(|e| h2_body_failure(server, &e)),
        }
    }

    /// The whole body, announced as `len` bytes, and its trailers if any.
    pub async fn read_all(
        &mut self,
        len: u64,
        server: &str,
    ) -> Result<(Bytes, Option<Headers>), Failure> {
        match self {
            ServerBody::Http1 { conn, decoder, .. } => {
                let body = if len == 0 {
                    Bytes::new()
                } else {
                    conn.io
                        .read_exact(len as usize)
                        .await
                        .map_err(|e| server_body_failure(server, &e))?
                };
                // The decoder is not used past this point: the body was read by length.
                *decoder = BodyDecoder::new(Framing::Empty);
                Ok((body, None))
            }
            ServerBody::Http2(body) => body
                .read_all(len)
                .await
                .map_err(|e| h2_body_failure(server, &e)),
        }
    }

    /// The HTTP/1 connection, if it can carry another exchange now that the body was read.
    pub fn into_reusable(self) -> Option<ServerConn> {
        match self {
            ServerBody::Http1 { conn, framing, .. } if framing != Framing::UntilClose => Some(conn),
            _ => None,
        }
    }
}

/// Writes to the server, mapping errors to a server failure.
pub async fn write_server(
    conn: &mut ServerConn,
    request: &Request,
    parts: &mut [Bytes],
) -> Result<(), Failure> {
    conn.io
        .write_parts(parts)
        .await
        .map_err(|e| Failure::server(format!("server {} failed: {e}", conn_name(request))))
}

/// `host:port` of the request's server, for messages.
pub fn conn_name(request: &Request) -> String {
    HostPort(&request.host, request.port).to_string()
}

fn stream_closed(request: &Request) -> Failure {
    Failure::server(format!(
        "server {} closed the HTTP/2 stream while the request body was sent",
        conn_name(request)
    ))
}

/// The failure of a response body read from an HTTP/1 server.
pub fn server_body_failure(server: &str, error: &ReadError) -> Failure {
    if let ReadError::Timeout = error {
        return body_timeout(server);
    }
    Failure::server(format!(
        "server {server} failed while sending the response body: {error}"
    ))
}

fn h2_body_failure(server: &str, error: &H2BodyError) -> Failure {
    if let H2BodyError::Timeout = error {
        return body_timeout(server);
    }
    Failure::server(format!(
        "server {server} failed while sending the response body: {error}"
    ))
}

fn body_timeout(server: &str) -> Failure {
    Failure::new(
        ErrorKind::Timeout,
        format!("server {server} stopped sending the response body"),
    )
}
