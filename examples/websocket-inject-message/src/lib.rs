//! Injects WebSocket messages (twin of mitmproxy's
//! `examples/addons/websocket-inject-message.py`): a message containing `secret` is dropped
//! and `ssssssh` goes back to whoever sent it; and from the start of each conversation the
//! proxy sends the client a message every second, `hello from mitmproxy! ` turned one
//! character further left each time, until the conversation ends.
//!
//! The original runs an asyncio task per conversation; here a thread per conversation sleeps
//! between messages (it never holds up the proxy's workers) and stops when the proxy says the
//! conversation is gone.

use std::{thread, time::Duration};

use interpose_plugin_abi::prelude::*;

/// The addon.
pub struct InjectMessage;

/// How often the greeting goes out.
pub const INTERVAL: Duration = Duration::from_secs(1);

#[addon]
impl Addon for InjectMessage {
    fn websocket_message(&self, ctx: &Context, flow: &mut HttpFlow) {
        let id = flow.id;
        let Some(message) = flow.websocket_mut().and_then(|ws| ws.last_message_mut()) else {
            return;
        };
        if message.text().is_some_and(|t| t.contains("secret")) {
            message.drop();
            // Back to the sender: to the client when the client sent it.
            let to_client = message.from_client();
            if let Err(e) = ctx.inject_websocket(id, to_client, b"ssssssh", true) {
                warn!(ctx, "{e}");
            }
        }
    }

    fn websocket_start(&self, ctx: &Context, flow: &mut HttpFlow) {
        let (ctx, id) = (ctx.clone(), flow.id);
        thread::spawn(move || {
            let mut text = "hello from mitmproxy! ".to_string();
            loop {
                thread::sleep(INTERVAL);
                // The conversation ended (the original checks `timestamp_end`).
                if ctx
                    .inject_websocket(id, true, text.as_bytes(), true)
                    .is_err()
                {
                    break;
                }
                text = rotate_left(&text);
            }
        });
    }
}

/// `text` with its first character moved to the end.
pub fn rotate_left(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => chars.chain(std::iter::once(first)).collect(),
        None => String::new(),
    }
}

export_plugin!(addons = [InjectMessage]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    #[test]
    fn answers_a_secret_with_a_hush() {
        let tctx = TestContext::new();
        let mut flow = testing::websocket_flow(&[(true, "my secret")]);
        InjectMessage.websocket_message(tctx.ctx(), &mut flow);
        assert!(flow.websocket().unwrap().messages()[0].dropped());
        assert_eq!(
            tctx.injected(),
            [(flow.id, true, b"ssssssh".to_vec(), true)]
        );

        let mut flow = testing::websocket_flow(&[(false, "nothing to hide")]);
        InjectMessage.websocket_message(tctx.ctx(), &mut flow);
        assert!(!flow.websocket().unwrap().messages()[0].dropped());
        assert_eq!(tctx.injected().len(), 1);
    }

    #[test]
    fn rotates() {
        assert_eq!(
            rotate_left("hello from mitmproxy! "),
            "ello from mitmproxy! h"
        );
        assert_eq!(rotate_left(""), "");
    }
}
