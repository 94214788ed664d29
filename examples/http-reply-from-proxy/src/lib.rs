//! Answers `http://example.com/path` itself with `200 Hello World`, without contacting the
//! server (twin of mitmproxy's `examples/addons/http-reply-from-proxy.py`): a response set in
//! `request` short-circuits the flow.

use interpose_plugin_abi::prelude::*;

fn request(_ctx: &Context, flow: &mut HttpFlow) {
    if flow.request.pretty_url() == "http://example.com/path" {
        flow.set_response(Response::make(
            200,
            "Hello World",
            &[("Content-Type", "text/html")],
        ));
    }
}

export_plugin!(functions = [request]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    fn answered(url: &str) -> Option<Response> {
        let mut flow = testing::flow();
        flow.request = Request::make("GET", url, "").unwrap();
        request(TestContext::new().ctx(), &mut flow);
        flow.response.into_option()
    }

    #[test]
    fn answers_that_url_only() {
        let response = answered("http://example.com/path").expect("answered");
        assert_eq!(response.status_code, 200);
        assert_eq!(response.reason(), "OK");
        assert_eq!(response.content.text(), Some("Hello World"));
        assert_eq!(response.headers.get("content-type"), Some("text/html"));
        assert_eq!(response.headers.get("content-length"), Some("11"));
        for other in [
            "http://example.com/path?x=1",
            "http://example.com/other",
            "https://example.com/path",
            "http://example.com:8080/path",
            "http://example.org/path",
        ] {
            assert!(answered(other).is_none(), "{other}");
        }
    }
}
