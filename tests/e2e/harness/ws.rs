//! A WebSocket echo server over plain TCP.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use super::rt;

/// Starts a WebSocket server on a free loopback port that sends every text and binary
/// message back and answers a close with a close. Returns where it listens.
pub fn ws_echo_server() -> SocketAddr {
    let listener = rt()
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind WebSocket server");
    let addr = listener.local_addr().unwrap();
    rt().spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    let echo = match message {
                        Message::Text(_) | Message::Binary(_) => message,
                        // tungstenite answers pings and closes by itself.
                        _ => continue,
                    };
                    if ws.send(echo).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}
