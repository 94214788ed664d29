//! WebSocket conversations relayed message by message: the Rust twins of mitmproxy's
//! `websocket-simple` and `websocket-inject-message` examples, the dump output, flow files
//! mitmproxy reads back, `inject.websocket` from outside, permessage-deflate, and the
//! `websocket` option turned off.

use std::{
    net::SocketAddr,
    process::Command,
    time::{Duration, Instant},
};

use bytes::{Buf, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_tungstenite::{
    tungstenite::{
        protocol::{frame::coding::CloseCode, CloseFrame},
        Message,
    },
    WebSocketStream,
};

use crate::{
    harness::{plugin, rt, temp_dir, ws_echo_server, Proxy},
    mitmproxy::mitmproxy_python,
};

const TIMEOUT: Duration = Duration::from_secs(20);

type Ws = WebSocketStream<TcpStream>;

/// Opens a WebSocket through the reverse proxy at `proxy`.
async fn open(proxy: SocketAddr) -> Ws {
    let stream = TcpStream::connect(proxy).await.expect("connect");
    let url = format!("ws://{proxy}/chat");
    let (ws, response) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("WebSocket handshake through the proxy");
    assert_eq!(response.status(), 101);
    ws
}

/// The next text or binary message (pings and pongs skipped).
async fn next_message(ws: &mut Ws) -> Message {
    loop {
        match ws.next().await {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(message)) => return message,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

/// Sends a close with 1000 "bye" and waits for the answer.
async fn close(ws: &mut Ws) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    ws.close(Some(frame)).await.expect("send close");
    while let Some(Ok(message)) = ws.next().await {
        if message.is_close() {
            break;
        }
    }
}

fn within<F: std::future::Future<Output = ()>>(proxy: &Proxy, run: F) {
    rt().block_on(async {
        tokio::time::timeout(TIMEOUT, run)
            .await
            .unwrap_or_else(|_| panic!("timed out; proxy log:\n{}", proxy.dump()));
    });
}

#[test]
fn websocket_simple_twin_changes_hello_and_drops_foobar() {
    let server = ws_echo_server();
    let proxy = Proxy::builder()
        .reverse(server)
        .plugin(&plugin("websocket-simple"))
        .start();
    within(&proxy, async {
        let mut ws = open(proxy.addr).await;
        // To the server as "HAPPY world"; its echo does not start with Hello.
        ws.send(Message::text("Hello world")).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Message::text("HAPPY world"));
        // Dropped on the way in: the server never echoes it, so the next echo is "after".
        ws.send(Message::text("FOOBAR!")).await.unwrap();
        ws.send(Message::binary(b"after".to_vec())).await.unwrap();
        assert_eq!(
            next_message(&mut ws).await,
            Message::binary(b"after".to_vec())
        );
        close(&mut ws).await;
    });
    proxy.wait_for_log("Client sent a message: b'Hello world'");
    proxy.wait_for_log("Server sent a message: b'HAPPY world'");
    proxy.wait_for_log("Client sent a message: b'FOOBAR!'");
    assert!(proxy
        .lines_with("Server sent a message: b'FOOBAR!'")
        .is_empty());
}

#[test]
fn websocket_inject_message_twin_hushes_secrets_and_greets_every_second() {
    let server = ws_echo_server();
    let proxy = Proxy::builder()
        .reverse(server)
        .plugin(&plugin("websocket-inject-message"))
        .start();
    within(&proxy, async {
        let mut ws = open(proxy.addr).await;
        let start = Instant::now();
        ws.send(Message::text("my secret")).await.unwrap();
        ws.send(Message::text("plain")).await.unwrap();
        let mut received = Vec::new();
        while received.len() < 4 {
            match next_message(&mut ws).await {
                Message::Text(text) => received.push(text.to_string()),
                other => panic!("unexpected {other:?}"),
            }
        }
        // The secret never reached the server (no echo of it); the proxy answered it.
        assert_eq!(received[..2], ["ssssssh", "plain"]);
        assert_eq!(
            received[2..],
            ["hello from mitmproxy! ", "ello from mitmproxy! h"]
        );
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1900), "{took:?}");
        close(&mut ws).await;
    });
}

#[test]
fn websocket_messages_show_in_the_dump_and_are_saved_for_mitmproxy() {
    let server = ws_echo_server();
    let dir = temp_dir("websocket-capture");
    let file = dir.join("ws.mitm");
    let mut proxy = Proxy::builder()
        .reverse(server)
        .args(["-w", file.to_str().unwrap()])
        .start();
    within(&proxy, async {
        let mut ws = open(proxy.addr).await;
        ws.send(Message::text("one")).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Message::text("one"));
        ws.send(Message::binary(vec![0u8, 255])).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Message::binary(vec![0u8, 255]));
        close(&mut ws).await;
    });
    proxy.wait_for_count("-> WebSocket text message -> ", 1);
    proxy.wait_for_count("<- WebSocket binary message <- ", 1);
    proxy.wait_for_log("WebSocket connection closed by client: 1000 bye");
    proxy.terminate();

    // mitmproxy reads the flow with its conversation.
    let script = r#"
import sys
from mitmproxy import io
with open(sys.argv[1], "rb") as f:
    for flow in io.FlowReader(f).stream():
        ws = flow.websocket
        print(flow.response.status_code, ws.close_code, ws.close_reason, ws.closed_by_client)
        for m in ws.messages:
            print(m.from_client, m.type.name, m.content.hex(), m.dropped, m.injected)
"#;
    let output = Command::new(mitmproxy_python())
        .args(["-c", script, file.to_str().unwrap()])
        .output()
        .expect("python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "101 1000 bye True",
            "True TEXT 6f6e65 False False",
            "False TEXT 6f6e65 False False",
            "True BINARY 00ff False False",
            "False BINARY 00ff False False",
        ]
    );

    // Read back with -r, the messages go through the events again (mitmproxy's order).
    let replay = Proxy::builder()
        .args(["-n", "-r", file.to_str().unwrap()])
        .run();
    let text = format!("{}{}", replay.stdout, replay.stderr);
    assert_eq!(text.matches("WebSocket text message").count(), 2, "{text}");
    assert_eq!(
        text.matches("WebSocket binary message").count(),
        2,
        "{text}"
    );
    assert!(
        text.contains("WebSocket connection closed by client: 1000 bye"),
        "{text}"
    );
}

#[test]
fn inject_websocket_command_reaches_an_open_conversation() {
    let server = ws_echo_server();
    let dir = temp_dir("websocket-inject");
    let socket = dir.join("control.sock");
    let proxy = Proxy::builder()
        .reverse(server)
        .set("control", socket.to_str().unwrap())
        .start();
    within(&proxy, async {
        let mut ws = open(proxy.addr).await;
        ws.send(Message::text("ready")).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Message::text("ready"));
        let ctl = |args: &[&str]| {
            let mut all = vec!["ctl", "--control", socket.to_str().unwrap()];
            all.extend_from_slice(args);
            Proxy::builder().args(all).run()
        };
        let sent = tokio::task::block_in_place(|| {
            ctl(&["inject.websocket", "@all", "true", "from the outside"])
        });
        assert!(sent.status.success(), "{}{}", sent.stdout, sent.stderr);
        assert_eq!(sent.stdout.trim(), "1");
        assert_eq!(
            next_message(&mut ws).await,
            Message::text("from the outside")
        );
        // To the server, binary: the echo comes back.
        let sent = tokio::task::block_in_place(|| {
            ctl(&[
                "inject.websocket",
                "@all",
                "false",
                "to the server",
                "false",
            ])
        });
        assert!(sent.status.success(), "{}{}", sent.stdout, sent.stderr);
        assert_eq!(
            next_message(&mut ws).await,
            Message::binary(b"to the server".to_vec())
        );
        close(&mut ws).await;
        let gone = tokio::task::block_in_place(|| ctl(&["inject.websocket", "@all", "true", "x"]));
        assert_eq!(gone.status.code(), Some(1), "{}", gone.stdout);
    });
    proxy.wait_for_count("-> WebSocket text message -> ", 1);
}

#[test]
fn websocket_option_off_passes_the_bytes_through() {
    let server = ws_echo_server();
    let proxy = Proxy::builder()
        .reverse(server)
        .plugin(&plugin("websocket-simple"))
        .set("websocket", "false")
        .start();
    within(&proxy, async {
        let mut ws = open(proxy.addr).await;
        ws.send(Message::text("Hello world")).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Message::text("Hello world"));
        close(&mut ws).await;
    });
    assert!(
        proxy.lines_with("sent a message").is_empty(),
        "{}",
        proxy.dump()
    );
}

// ---- permessage-deflate, with peers written by hand (tungstenite here has no deflate) ----

/// Appends a frame: RSV1 when `compressed`, masked when `mask`.
fn put_frame(out: &mut Vec<u8>, opcode: u8, compressed: bool, payload: &[u8], mask: bool) {
    out.push(0x80 | if compressed { 0x40 } else { 0 } | opcode);
    let bit = if mask { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(bit | n as u8),
        n => {
            out.push(bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    if mask {
        let key = [0x12, 0x34, 0x56, 0x78];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
}

/// Reads one frame: (RSV1, opcode, unmasked payload).
async fn read_frame<S: AsyncRead + Unpin>(io: &mut S, buf: &mut BytesMut) -> (bool, u8, Vec<u8>) {
    loop {
        if buf.len() >= 2 {
            let masked = buf[1] & 0x80 != 0;
            let (len, at) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                126 => (usize::MAX, 0),
                n => (n as usize, 2),
            };
            let need = at + if masked { 4 } else { 0 } + len;
            if len != usize::MAX && buf.len() >= need {
                let (b0, key) = (
                    buf[0],
                    masked.then(|| [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]),
                );
                buf.advance(at + if masked { 4 } else { 0 });
                let mut payload = buf.split_to(len).to_vec();
                if let Some(key) = key {
                    for (i, b) in payload.iter_mut().enumerate() {
                        *b ^= key[i % 4];
                    }
                }
                return (b0 & 0x40 != 0, b0 & 0x0f, payload);
            }
        }
        let n = io.read_buf(buf).await.expect("read a frame");
        assert!(n > 0, "closed before a whole frame");
    }
}

async fn read_head<S: AsyncRead + Unpin>(io: &mut S, buf: &mut BytesMut) -> String {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = buf.split_to(end + 4);
            return String::from_utf8_lossy(&head).into_owned();
        }
        let n = io.read_buf(buf).await.expect("read a head");
        assert!(n > 0, "closed inside a head");
    }
}

fn deflate(text: &[u8]) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let mut compressor = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(text.len() + 64);
    compressor
        .compress_vec(text, &mut out, FlushCompress::Sync)
        .unwrap();
    out.truncate(out.len() - 4);
    out
}

async fn write_all<S: AsyncWrite + Unpin>(io: &mut S, bytes: &[u8]) {
    io.write_all(bytes).await.expect("write");
}

#[test]
fn permessage_deflate_messages_are_inflated_and_forwarded_plain() {
    let listener = rt().block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let server_addr = listener.local_addr().unwrap();
    let text = b"compressible text, compressible text, compressible text".repeat(4);
    let server_text = text.clone();
    // The server negotiates permessage-deflate, sends one compressed message and expects
    // the client's compressed message to reach it uncompressed.
    let server = rt().spawn(async move {
        let (mut io, _) = listener.accept().await.unwrap();
        let mut buf = BytesMut::new();
        let head = read_head(&mut io, &mut buf).await;
        assert!(
            head.to_ascii_lowercase().contains("permessage-deflate"),
            "{head}"
        );
        write_all(
            &mut io,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
              Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n",
        )
        .await;
        let mut frame = Vec::new();
        put_frame(&mut frame, 1, true, &deflate(&server_text), false);
        write_all(&mut io, &frame).await;
        let (compressed, opcode, payload) = read_frame(&mut io, &mut buf).await;
        (compressed, opcode, payload)
    });
    let proxy = Proxy::builder().reverse(server_addr).start();
    within(&proxy, async {
        let mut io = TcpStream::connect(proxy.addr).await.unwrap();
        write_all(
            &mut io,
            b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
        )
        .await;
        let mut buf = BytesMut::new();
        let head = read_head(&mut io, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let (compressed, opcode, payload) = read_frame(&mut io, &mut buf).await;
        assert_eq!((compressed, opcode), (false, 1));
        assert_eq!(payload, text);
        let mut frame = Vec::new();
        put_frame(&mut frame, 2, true, &deflate(b"from the client"), true);
        write_all(&mut io, &frame).await;
        let (compressed, opcode, payload) = server.await.unwrap();
        assert_eq!((compressed, opcode), (false, 2));
        assert_eq!(payload, b"from the client");
    });
}

#[test]
fn a_server_that_goes_away_ends_the_conversation_with_1006() {
    let listener = rt().block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let server_addr = listener.local_addr().unwrap();
    // The first connection: the handshake, one echo, then dropped without a close. Later
    // ones echo until closed.
    rt().spawn(async move {
        for first in std::iter::once(true).chain(std::iter::repeat(false)) {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
            while let Some(Ok(message)) = ws.next().await {
                if message.is_close() {
                    break;
                }
                ws.send(message).await.unwrap();
                if first {
                    break;
                }
            }
        }
    });
    let proxy = Proxy::builder().reverse(server_addr).start();
    within(&proxy, async {
        let mut ws = open(proxy.addr).await;
        ws.send(Message::text("once")).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Message::text("once"));
        // The proxy closes the client's side too.
        match ws.next().await {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {}
            Some(Ok(other)) => panic!("unexpected {other:?}"),
        }
    });
    proxy.wait_for_log("WebSocket Error: ABNORMAL_CLOSURE");
    // The proxy goes on serving.
    within(&proxy, async {
        let mut ws = open(proxy.addr).await;
        ws.send(Message::text("still")).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Message::text("still"));
        close(&mut ws).await;
    });
}
