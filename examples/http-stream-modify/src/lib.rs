//! Streams every response body and replaces `foo` with `bar` on the way, chunk by chunk
//! (twin of mitmproxy's `examples/addons/http-stream-modify.py`: `responseheaders` sets
//! `response.stream` to a function called per chunk, then once with an empty chunk).
//!
//! One difference, on purpose: mitmproxy's function replaces within each chunk only, so a
//! `foo` split across two chunks goes through unchanged (its docstring warns about exactly
//! that). This one keeps the last bytes of each chunk back until the next one, so a split
//! `foo` is replaced too; the final call, with the empty chunk, sends what was kept back.

use interpose_plugin_abi::prelude::*;

const FROM: &[u8] = b"foo";
const TO: &[u8] = b"bar";

/// Rewrites streamed response bodies.
pub struct StreamModify;

#[addon]
impl Addon for StreamModify {
    fn responseheaders(&self, _ctx: &Context, flow: &mut HttpFlow) {
        if let Some(response) = flow.response_mut() {
            let mut held = Vec::new();
            response.stream = Stream::with_hook(move |chunk: Body| replace_chunk(&mut held, chunk));
        }
    }
}

/// Replaces `FROM` in `held` + `chunk`, sends all but the bytes that could start a match
/// continuing in the next chunk, and keeps those in `held`. An empty chunk is the end of
/// the body: everything held is sent.
fn replace_chunk(held: &mut Vec<u8>, chunk: Body) -> Body {
    let end = chunk.is_empty();
    held.extend_from_slice(&chunk);
    let mut out = Vec::with_capacity(held.len());
    let mut i = 0;
    while i < held.len() {
        if held[i..].starts_with(FROM) {
            out.extend_from_slice(TO);
            i += FROM.len();
        } else {
            out.push(held[i]);
            i += 1;
        }
    }
    held.clear();
    if !end {
        let keep = (FROM.len() - 1).min(out.len());
        held.extend_from_slice(&out[out.len() - keep..]);
        out.truncate(out.len() - keep);
    }
    Body::from(out)
}

export_plugin!(addons = [StreamModify]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    /// Streams `chunks` through the hook the addon sets, as the proxy does.
    fn stream(chunks: &[&'static str]) -> String {
        let tctx = TestContext::new();
        let mut flow = testing::flow_with_response();
        StreamModify.responseheaders(tctx.ctx(), &mut flow);
        let response = flow.response_mut().unwrap();
        assert!(response.stream.is_on() && response.stream.has_hook());
        let mut sent = Vec::new();
        for chunk in chunks.iter().chain(&[""]) {
            let out = response.stream.call_hook(Body::from(*chunk)).unwrap();
            sent.extend_from_slice(&out);
        }
        String::from_utf8(sent).unwrap()
    }

    #[test]
    fn replaces_within_and_across_chunks() {
        assert_eq!(stream(&["a foo b"]), "a bar b");
        assert_eq!(stream(&["xf", "oo", "fo", "o!"]), "xbarbar!");
        assert_eq!(stream(&["fo"]), "fo");
        assert_eq!(stream(&[]), "");
    }
}
