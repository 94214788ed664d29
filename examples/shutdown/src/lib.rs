//! Shuts the proxy down when a client asks for `http://example.com/path`: the Rust twin of
//! mitmproxy's `shutdown.py` example (`ctx.master.shutdown()`).
//!
//! [`Context::shutdown`] does what Ctrl-C does: the proxy stops accepting connections, ends
//! the flows in progress and sends `done` to every addon.

use interpose_plugin_abi::prelude::*;

fn request(ctx: &Context, flow: &mut HttpFlow) {
    // mitmproxy compares `flow.request.pretty_url`: the URL with the Host header's name.
    let request = &flow.request;
    let port = match (request.scheme(), request.port) {
        ("http", 80) | ("https", 443) => String::new(),
        (_, port) => format!(":{port}"),
    };
    let url = format!(
        "{}://{}{port}{}",
        request.scheme(),
        request.pretty_host(),
        request.path()
    );
    if url == "http://example.com/path" {
        info!(ctx, "Shutting down everything...");
        ctx.shutdown();
    }
}

export_plugin!(functions = [request]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    #[test]
    fn only_that_url_shuts_the_proxy_down() {
        let tctx = TestContext::new();
        let mut other = testing::flow();
        other.request.path = "/other".into();
        request(tctx.ctx(), &mut other);
        assert!(!tctx.shutdown_requested());

        let mut flow = testing::flow();
        request(tctx.ctx(), &mut flow);
        assert!(tctx.shutdown_requested());
        assert_eq!(tctx.messages(), ["Shutting down everything..."]);
    }
}
