//! CONNECT in regular mode: the `http_connect` event, the server connection, and the
//! next-layer decision for what the client sends through the tunnel: HTTP/1 flows, or bytes
//! spliced through untouched (ignored hosts, TLS until interception lands, anything else).

use std::{sync::Arc, time::Duration};

use abi_stable::std_types::{RArc, ROption};
use bytes::Bytes;
use interpose_plugin_abi::{
    flow::split_authority, Body, Client, ClientHelloData, HttpFlow, HttpVersion, Request, Stream,
};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{
    client::write_whole_response,
    failure::error_response,
    flow::connect_server,
    http1::{codec, Http1Io, RequestHead},
    messages::FixedTarget,
    mode::is_valid_host,
    upstream::{ClientPool, PoolKey, ServerConn},
    Shared,
};
use crate::{
    addons::HttpEvent,
    tls::{ClientHello, HelloParse},
};

/// How long the proxy waits for the client's first bytes in a tunnel before deciding it
/// speaks a server-first protocol.
const FIRST_BYTES_WAIT: Duration = Duration::from_secs(1);

/// A ClientHello larger than this is passed through instead of parsed further.
const MAX_CLIENT_HELLO: usize = 64 * 1024;

/// What follows a CONNECT request.
pub enum ConnectOutcome {
    /// The proxy (or an addon) answered without opening a tunnel; the connection goes on.
    Answered,
    /// The connection must close.
    Close,
    /// Splice the client with this server connection.
    Tunnel(Box<ServerConn>),
    /// The client speaks HTTP/1 through the tunnel: serve its requests, sent to this server.
    Http(Arc<FixedTarget>),
    /// The client starts TLS: intercept it (the ClientHello is still in the buffer).
    Intercept {
        /// The TCP connection to the target.
        server: Box<ServerConn>,
        /// The CONNECT target.
        host: String,
        /// Its port.
        port: u16,
        /// The client's ClientHello.
        hello: ClientHello,
    },
}

/// What a tunnel carries, judged from the client's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// An HTTP/1 request line.
    Http1,
    /// A TLS handshake record.
    Tls,
    /// Anything else: raw TCP.
    Tcp,
}

/// The layer the first bytes of a tunnel belong to.
pub fn next_layer(first: &[u8]) -> Layer {
    if first.first() == Some(&0x16) {
        return Layer::Tls;
    }
    let method_len = first.iter().take_while(|b| b.is_ascii_uppercase()).count();
    if (3..=10).contains(&method_len) && first.get(method_len) == Some(&b' ') {
        Layer::Http1
    } else {
        Layer::Tcp
    }
}

/// Handles a CONNECT request read from `conn`.
pub async fn handle_connect<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    client: &RArc<Client>,
    conn: &mut Http1Io<S>,
    pool: &mut ClientPool,
    head: RequestHead,
    timestamp_start: f64,
) -> ConnectOutcome {
    let keep_alive = !codec::wants_close(head.version, &head.headers);
    let Some((host, port)) =
        split_authority(&head.target, 0).filter(|(host, port)| *port != 0 && is_valid_host(host))
    else {
        let message = format!(
            "CONNECT needs a host:port target, got {:?}",
            head.target.as_str()
        );
        send_answer(
            conn,
            head.version,
            error_response(http::StatusCode::BAD_REQUEST, &message),
            false,
        )
        .await;
        return ConnectOutcome::Close;
    };
    let (host, port) = (host.to_string(), port);
    let request = Request {
        method: "CONNECT".into(),
        scheme: "http".into(),
        authority: head.target.as_str().into(),
        host: host.as_str().into(),
        port,
        path: "".into(),
        http_version: head.version,
        headers: head.headers,
        content: Body::empty(),
        trailers: ROption::RNone,
        stream: Stream::default(),
        timestamp_start,
        timestamp_end: ROption::RSome(timestamp_start),
    };
    let mut flow = HttpFlow::new(shared.ids.next_id(), client.clone(), request);
    if let Err(panic) = shared
        .addons
        .http_async(HttpEvent::HttpConnect, &mut flow)
        .await
    {
        let answer = error_response(http::StatusCode::BAD_GATEWAY, &panic.to_string());
        send_answer(conn, head.version, answer, false).await;
        return ConnectOutcome::Close;
    }
    if flow.killed() {
        return ConnectOutcome::Close;
    }
    if let ROption::RSome(response) = std::mem::replace(&mut flow.response, ROption::RNone) {
        if !(200..300).contains(&response.status_code) {
            let ok = send_answer(conn, head.version, response, keep_alive).await;
            return if ok && keep_alive {
                ConnectOutcome::Answered
            } else {
                ConnectOutcome::Close
            };
        }
    }

    let mut key = PoolKey::for_request(&flow.request);
    key.via = shared.upstream_proxy().map(|p| p.authority.as_str().into());
    let server = match connect_server(shared, &flow.client_conn, &key, true).await {
        Ok(server) => server,
        Err(failure) => {
            tracing::info!("CONNECT {}: {}", head.target, failure.message);
            let answer = error_response(http::StatusCode::BAD_GATEWAY, &failure.message);
            let ok = send_answer(conn, head.version, answer, keep_alive).await;
            return if ok && keep_alive {
                ConnectOutcome::Answered
            } else {
                ConnectOutcome::Close
            };
        }
    };
    let established = Bytes::from_static(b"HTTP/1.1 200 Connection established\r\n\r\n");
    if conn.write_parts(&mut [established]).await.is_err() {
        return ConnectOutcome::Close;
    }
    if shared.options().is_ignored(&host, port) {
        return ConnectOutcome::Tunnel(Box::new(server));
    }
    if conn.buf.is_empty() {
        match tokio::time::timeout(FIRST_BYTES_WAIT, conn.fill()).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => return ConnectOutcome::Close,
            Err(_) => return ConnectOutcome::Tunnel(Box::new(server)),
        }
    }
    match next_layer(&conn.buf) {
        Layer::Http1 => {
            shared.park(pool, server);
            ConnectOutcome::Http(Arc::new(FixedTarget {
                scheme: "http",
                host,
                port,
                host_header: None,
            }))
        }
        Layer::Tls => match read_client_hello(conn).await {
            Some(hello) if passes_through(shared, &flow.client_conn, &server, &hello) => {
                ConnectOutcome::Tunnel(Box::new(server))
            }
            Some(hello) => ConnectOutcome::Intercept {
                server: Box::new(server),
                host,
                port,
                hello,
            },
            // Not a ClientHello after all, or it never completed: pass it through.
            None => ConnectOutcome::Tunnel(Box::new(server)),
        },
        Layer::Tcp => ConnectOutcome::Tunnel(Box::new(server)),
    }
}

/// Runs `tls_clienthello`: whether an addon asked to pass the connection through untouched.
fn passes_through(
    shared: &Shared,
    client: &Client,
    server: &ServerConn,
    hello: &ClientHello,
) -> bool {
    if !shared.addons.has_tls_clienthello() {
        return false;
    }
    let mut data = ClientHelloData {
        client,
        server: &server.server,
        sni: hello.sni.clone().map(Into::into).into(),
        alpn_protocols: hello
            .alpn_protocols
            .iter()
            .map(|p| p.clone().into())
            .collect(),
        cipher_suites: hello.cipher_suites.as_slice().into(),
        ignore_connection: false,
        establish_server_tls_first: false,
    };
    let _ = shared.addons.tls_clienthello(&mut data);
    data.ignore_connection
}

/// Reads until the buffer holds the client's whole ClientHello (without consuming it).
pub async fn read_client_hello<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Http1Io<S>,
) -> Option<ClientHello> {
    let read = async {
        loop {
            match ClientHello::parse(&conn.buf) {
                HelloParse::Complete(hello) => return Some(hello),
                HelloParse::NotClientHello(_) => return None,
                HelloParse::Incomplete if conn.buf.len() > MAX_CLIENT_HELLO => return None,
                HelloParse::Incomplete => {}
            }
            if !matches!(conn.fill().await, Ok(n) if n > 0) {
                return None;
            }
        }
    };
    tokio::time::timeout(FIRST_BYTES_WAIT, read)
        .await
        .ok()
        .flatten()
}

/// Writes a whole response to the client; `false` if the client is gone.
async fn send_answer<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Http1Io<S>,
    version: HttpVersion,
    response: interpose_plugin_abi::Response,
    keep_alive: bool,
) -> bool {
    write_whole_response(conn, version, response, !keep_alive)
        .await
        .is_ok()
}

/// Splices the client and the server byte for byte until either side closes, starting with
/// whatever each side sent ahead.
pub async fn splice<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Http1Io<S>,
    server: &mut ServerConn,
) {
    if !client.buf.is_empty() {
        let ahead = client.buf.split().freeze();
        if server.io.write_parts(&mut [ahead]).await.is_err() {
            return;
        }
    }
    if !server.io.buf.is_empty() {
        let ahead = server.io.buf.split().freeze();
        if client.write_parts(&mut [ahead]).await.is_err() {
            return;
        }
    }
    let _ = tokio::io::copy_bidirectional(&mut client.io, &mut server.io.io).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_layer_from_first_bytes() {
        assert_eq!(next_layer(b"GET / HTTP/1.1\r\n"), Layer::Http1);
        assert_eq!(next_layer(b"OPTIONS * HTTP/1.1\r\n"), Layer::Http1);
        assert_eq!(next_layer(&[0x16, 0x03, 0x01, 0x02]), Layer::Tls);
        assert_eq!(next_layer(b"SSH-2.0-OpenSSH\r\n"), Layer::Tcp);
        assert_eq!(next_layer(b"get / HTTP/1.1"), Layer::Tcp);
        assert_eq!(next_layer(b""), Layer::Tcp);
    }
}
