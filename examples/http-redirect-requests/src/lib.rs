//! Sends requests for `example.org` to `mitmproxy.org` instead (twin of mitmproxy's
//! `examples/addons/http-redirect-requests.py`). [`Request::pretty_host`] takes the `Host`
//! header into account, which matters in transparent mode where the request itself only has
//! the server's IP address; [`Request::set_host`] also rewrites the `Host` header, as
//! mitmproxy's `request.host = ...` setter does.

use interpose_plugin_abi::prelude::*;

fn request(_ctx: &Context, flow: &mut HttpFlow) {
    if flow.request.pretty_host() == "example.org" {
        flow.request.set_host("mitmproxy.org");
    }
}

export_plugin!(functions = [request]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    fn redirected(url: &str) -> HttpFlow {
        let tctx = TestContext::new();
        let mut flow = testing::flow();
        flow.request = Request::make("GET", url, "").unwrap();
        request(tctx.ctx(), &mut flow);
        flow
    }

    #[test]
    fn example_org_goes_to_mitmproxy_org() {
        let flow = redirected("http://example.org/some/path?q=1");
        assert_eq!(flow.request.url(), "http://mitmproxy.org/some/path?q=1");
        assert_eq!(flow.request.headers.get("host"), Some("mitmproxy.org"));
    }

    #[test]
    fn the_host_header_decides() {
        // An IP address on the request line, as in transparent mode, and the name in Host.
        let mut flow = redirected("http://93.184.215.14/");
        assert_eq!(flow.request.host(), "93.184.215.14");
        flow.request.headers.insert("Host", "example.org");
        request(TestContext::new().ctx(), &mut flow);
        assert_eq!(flow.request.host(), "mitmproxy.org");

        let other = redirected("http://example.com/");
        assert_eq!(other.request.url(), "http://example.com/");
        assert_eq!(other.request.headers.get("host"), Some("example.com"));
    }
}
