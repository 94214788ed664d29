//! Streamed bodies (mitmproxy's `flow.request.stream` / `flow.response.stream`).

use abi_stable::StableAbi;

use crate::body::Body;

/// Whether a body streams through chunk by chunk instead of being buffered.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq)]
pub struct Stream {
    on: bool,
}

impl Stream {
    /// Streams the body through unchanged.
    pub fn on() -> Stream {
        Stream { on: true }
    }

    /// Whether streaming is on.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Whether a chunk hook is set.
    pub fn has_hook(&self) -> bool {
        false
    }

    /// Passes `chunk` through the hook.
    pub fn call_hook(&mut self, chunk: Body) -> Result<Body, String> {
        Ok(chunk)
    }
}
