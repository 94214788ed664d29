//! Streams every response body to the client as it arrives instead of reading it whole
//! first (twin of mitmproxy's `examples/addons/http-stream-simple.py`; the same as
//! `--set stream_large_bodies=1`). The `response` event still fires once the body went
//! through, with empty `content`.

use interpose_plugin_abi::prelude::*;

fn responseheaders(_ctx: &Context, flow: &mut HttpFlow) {
    if let Some(response) = flow.response_mut() {
        response.stream = Stream::on();
    }
}

export_plugin!(functions = [responseheaders]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    #[test]
    fn turns_streaming_on() {
        let mut flow = testing::flow_with_response();
        responseheaders(TestContext::new().ctx(), &mut flow);
        let stream = &flow.response().unwrap().stream;
        assert!(stream.is_on() && !stream.has_hook());
    }
}
