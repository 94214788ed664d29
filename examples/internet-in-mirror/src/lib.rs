//! Mirrors every web page: a style rule flipping the body horizontally goes in before
//! `</head>` (twin of mitmproxy's `examples/addons/internet-in-mirror.py`, "useful if you
//! are living down under"). Empty responses are left alone.

use interpose_plugin_abi::prelude::*;

const HEAD_END: &[u8] = b"</head>";
const MIRRORED: &[u8] = b"<style>body {transform: scaleX(-1);}</style></head>";

fn response(_ctx: &Context, flow: &mut HttpFlow) {
    if let Some(response) = flow.response_mut() {
        if !response.content.is_empty() {
            // The proxy sets Content-Length for the new body when it sends it.
            response.content = Body::from(replace_all(&response.content, HEAD_END, MIRRORED));
        }
    }
}

/// `haystack` with every `from` replaced by `to` (Python's `bytes.replace`).
fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(i) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(to);
        rest = &rest[i + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

export_plugin!(functions = [response]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    fn mirrored(body: &str) -> String {
        let mut flow = testing::flow_with_response();
        flow.response_mut().unwrap().content = Body::from(body.to_string());
        response(TestContext::new().ctx(), &mut flow);
        let content = &flow.response().unwrap().content;
        String::from_utf8(content.to_vec()).unwrap()
    }

    #[test]
    fn styles_before_the_end_of_head() {
        assert_eq!(
            mirrored("<html><head><title>t</title></head><body>hi</body></html>"),
            "<html><head><title>t</title><style>body {transform: scaleX(-1);}</style></head>\
             <body>hi</body></html>"
        );
        assert_eq!(mirrored("no head here"), "no head here");
        assert_eq!(mirrored(""), "");
    }
}
