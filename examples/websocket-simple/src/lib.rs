//! Logs every WebSocket message, turns a leading `Hello` into `HAPPY`, and drops messages
//! that contain `FOOBAR` (twin of mitmproxy's `examples/addons/websocket-simple.py`).
//!
//! The log line shows the payload as Python prints bytes (`b'...'`), as the original does.

use interpose_plugin_abi::prelude::*;

/// The addon.
pub struct WebSocketSimple;

#[addon]
impl Addon for WebSocketSimple {
    fn websocket_message(&self, ctx: &Context, flow: &mut HttpFlow) {
        // The message this event is about is the newest one.
        let Some(message) = flow.websocket_mut().and_then(|ws| ws.last_message_mut()) else {
            return;
        };
        let who = if message.from_client() {
            "Client"
        } else {
            "Server"
        };
        info!(
            ctx,
            "{who} sent a message: {}",
            bytes_repr(message.content.as_slice())
        );

        if let Some(rest) = message.content.as_slice().strip_prefix(b"Hello") {
            let mut changed = b"HAPPY".to_vec();
            changed.extend_from_slice(rest);
            message.set_content(changed);
        }
        if contains(message.content.as_slice(), b"FOOBAR") {
            message.drop();
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `bytes` as Python's `repr(bytes)` writes them: `b'...'` with escapes.
pub fn bytes_repr(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut out = format!("b{quote}");
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b if b as char == quote => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote);
    out
}

export_plugin!(addons = [WebSocketSimple]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    fn run(from_client: bool, text: &str) -> (HttpFlow, Vec<String>) {
        let tctx = TestContext::new();
        let mut flow = testing::websocket_flow(&[(from_client, text)]);
        WebSocketSimple.websocket_message(tctx.ctx(), &mut flow);
        (flow, tctx.messages())
    }

    #[test]
    fn happy_hello_and_logs() {
        let (flow, logs) = run(true, "Hello world");
        let message = &flow.websocket().unwrap().messages()[0];
        assert_eq!(message.text(), Some("HAPPY world"));
        assert!(!message.dropped());
        assert_eq!(logs, ["Client sent a message: b'Hello world'"]);
        let (_, logs) = run(false, "it's");
        assert_eq!(logs, ["Server sent a message: b\"it's\""]);
    }

    #[test]
    fn drops_foobar() {
        let (flow, _) = run(false, "xx FOOBAR yy");
        assert!(flow.websocket().unwrap().messages()[0].dropped());
    }

    #[test]
    fn repr_like_python() {
        assert_eq!(bytes_repr(b"a\n\x00\xff\\"), "b'a\\n\\x00\\xff\\\\'");
        assert_eq!(bytes_repr(b"'\""), "b'\\'\"'");
    }
}
