//! WebSocket connections relayed message by message (mitmproxy's WebSocket layer): framing,
//! the `websocket_*` events, permessage-deflate on the way in, and injected messages.

mod frame;
pub(crate) mod inject;
mod relay;

pub use relay::{is_websocket, relay, Extensions};
