//! Tunnels: CONNECT (byte for byte until TLS interception lands, and for `--ignore-hosts`
//! targets), and WebSocket through reverse mode, inside a CONNECT tunnel, and by an
//! absolute-form upgrade to the regular proxy.

use std::{net::SocketAddr, time::Duration};

use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::{
    tungstenite::{protocol::Role, Message},
    WebSocketStream,
};

use crate::harness::{
    closed_port, curl_through, plugin, raw_request, rt, ws_echo_server, Proxy, TlsServer,
};

/// How long one WebSocket conversation may take.
const WS_TIMEOUT: Duration = Duration::from_secs(10);

/// What curl got from `https://localhost:PORT/path` through `proxy`, trusting the test
/// server's CA: the CONNECT status (`%{http_connect}`) and the body, or curl's complaint.
fn curl_https(proxy: &Proxy, server: &TlsServer, path: &str) -> Result<(String, String), String> {
    curl_https_with(proxy, server, path, &[])
}

/// [`curl_https`] with more curl arguments.
fn curl_https_with(
    proxy: &Proxy,
    server: &TlsServer,
    path: &str,
    extra: &[&str],
) -> Result<(String, String), String> {
    let url = format!("https://localhost:{}{path}", server.addr.port());
    curl_through(proxy.addr, &url, &server.ca_pem, extra)
}

/// Asserts that curl reaches the TLS server through `proxy` and verifies the server's own
/// certificate (so the tunnel carried the TLS bytes untouched).
fn assert_tunnelled(proxy: &Proxy, server: &TlsServer) {
    let (connect, body) = curl_https(proxy, server, "/hello")
        .unwrap_or_else(|e| panic!("{e}\nproxy log:\n{}", proxy.dump()));
    assert_eq!(connect, "200", "the proxy answered the CONNECT with 200");
    assert_eq!(body, "tls-ok /hello");
}

#[test]
fn connect_to_an_ignored_host_is_tunnelled_byte_for_byte() {
    let server = TlsServer::start();
    let proxy = Proxy::builder()
        .args(["--ignore-hosts", "^localhost:"])
        .start();
    assert_tunnelled(&proxy, &server);
}

#[test]
fn an_addon_answering_http_connect_keeps_the_tunnel_closed() {
    let server = TlsServer::start();
    let proxy = Proxy::builder()
        .plugin(&plugin("engine-probe"))
        .plugin(&plugin("event-log"))
        .env("PROBE_CONNECT_AUTH", "1")
        .args(["--ignore-hosts", "^localhost:"])
        .start();
    let port = server.addr.port();
    let request = format!("CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n");
    let answer = raw_request(proxy.addr, request.as_bytes()).unwrap();
    assert!(
        answer.start_line().starts_with("HTTP/1.1 407"),
        "{}",
        answer.start_line()
    );
    assert_eq!(
        answer.field("Proxy-Authenticate").as_deref(),
        Some("Basic realm=\"probe\"")
    );
    assert_eq!(answer.text(), "proxy authentication required");
    proxy.wait_for_log("event http_connect");
    assert!(
        proxy.lines_with("event server_connect").is_empty(),
        "no tunnel was opened"
    );

    // With credentials (curl sends them with the CONNECT), the addon lets it through.
    let (connect, body) = curl_https_with(&proxy, &server, "/auth", &["--proxy-user", "u:p"])
        .unwrap_or_else(|e| panic!("{e}\nproxy log:\n{}", proxy.dump()));
    assert_eq!((connect.as_str(), body.as_str()), ("200", "tls-ok /auth"));
}

#[test]
fn connect_to_a_refusing_target_gets_502_and_the_proxy_goes_on() {
    let closed = closed_port();
    let proxy = Proxy::builder()
        .args(["--ignore-hosts", "^localhost:"])
        .start();
    let request = format!("CONNECT {closed} HTTP/1.1\r\nHost: {closed}\r\n\r\n");
    let answer = raw_request(proxy.addr, request.as_bytes())
        .unwrap_or_else(|e| panic!("{e}\nproxy log:\n{}", proxy.dump()));
    assert!(
        answer.start_line().starts_with("HTTP/1.1 502"),
        "{:?}",
        answer.head()
    );
    let server = TlsServer::start();
    assert_tunnelled(&proxy, &server);
}

/// Sends three text messages and one binary message, one at a time, and expects each back;
/// then closes.
async fn echo_four_messages<S>(ws: &mut WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let messages = [
        Message::text("first"),
        Message::text("second, a little longer"),
        Message::text("third: ünïcödé ✓"),
        Message::binary(vec![0u8, 1, 2, 127, 128, 253, 254, 255]),
    ];
    for message in messages {
        ws.send(message.clone()).await.expect("send a message");
        let echo = loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(echo)) => break echo,
                other => panic!("expected the echo of {message:?}, got {other:?}"),
            }
        };
        assert_eq!(echo, message);
    }
    ws.close(None).await.expect("send close");
    // The server's close (or the end of the stream) follows.
    while let Some(Ok(message)) = ws.next().await {
        if message.is_close() {
            break;
        }
    }
}

/// Reads a response head byte by byte, so that nothing after it is consumed.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 64 * 1024, "endless response head");
        let mut byte = [0u8; 1];
        let n = stream
            .read(&mut byte)
            .await
            .expect("read the response head");
        assert!(
            n == 1,
            "closed inside the response head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[test]
fn websocket_through_reverse_mode() {
    let ws_server = ws_echo_server();
    let proxy = Proxy::builder().reverse(ws_server).start();
    rt().block_on(async {
        let run = async {
            let stream = TcpStream::connect(proxy.addr).await.expect("connect");
            let url = format!("ws://{}/chat", proxy.addr);
            let (mut ws, response) = tokio_tungstenite::client_async(url, stream)
                .await
                .expect("WebSocket handshake through the proxy");
            assert_eq!(response.status(), 101);
            echo_four_messages(&mut ws).await;
        };
        tokio::time::timeout(WS_TIMEOUT, run)
            .await
            .unwrap_or_else(|_| panic!("timed out; proxy log:\n{}", proxy.dump()));
    });
}

#[test]
fn websocket_inside_a_connect_tunnel() {
    let ws_server = ws_echo_server();
    let proxy = Proxy::builder().start();
    rt().block_on(async {
        let run = async {
            let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
            let connect = format!("CONNECT {ws_server} HTTP/1.1\r\nHost: {ws_server}\r\n\r\n");
            stream.write_all(connect.as_bytes()).await.expect("write");
            let head = read_head(&mut stream).await;
            assert!(head.starts_with("HTTP/1.1 200"), "{head:?}");
            let url = format!("ws://{ws_server}/chat");
            let (mut ws, response) = tokio_tungstenite::client_async(url, stream)
                .await
                .expect("WebSocket handshake inside the tunnel");
            assert_eq!(response.status(), 101);
            echo_four_messages(&mut ws).await;
        };
        tokio::time::timeout(WS_TIMEOUT, run)
            .await
            .unwrap_or_else(|_| panic!("timed out; proxy log:\n{}", proxy.dump()));
    });
}

/// Writes an absolute-form WebSocket upgrade for `ws_server` to a regular proxy and checks
/// the `101` head; returns the stream positioned after it.
async fn absolute_form_upgrade(proxy: SocketAddr, ws_server: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(proxy).await.expect("connect");
    let request = format!(
        "GET http://{ws_server}/chat HTTP/1.1\r\n\
         Host: {ws_server}\r\n\
         Connection: Upgrade\r\n\
         Upgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head:?}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("\r\nupgrade: websocket\r\n"), "{head:?}");
    // RFC 6455's own example: this key's accept value.
    assert!(
        head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "the server's Sec-WebSocket-Accept came through: {head:?}"
    );
    stream
}

#[test]
fn websocket_upgrade_in_absolute_form_through_the_regular_proxy() {
    let ws_server = ws_echo_server();
    let proxy = Proxy::builder().start();
    rt().block_on(async {
        let run = async {
            let stream = absolute_form_upgrade(proxy.addr, ws_server).await;
            let mut ws = WebSocketStream::from_raw_socket(stream, Role::Client, None).await;
            echo_four_messages(&mut ws).await;
        };
        tokio::time::timeout(WS_TIMEOUT, run)
            .await
            .unwrap_or_else(|_| panic!("timed out; proxy log:\n{}", proxy.dump()));
    });
}
