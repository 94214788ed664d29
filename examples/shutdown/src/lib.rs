//! Shuts the proxy down when a client asks for `http://example.com/path`: the Rust twin of
//! mitmproxy's `shutdown.py` example (`ctx.master.shutdown()`).
//!
//! [`Context::shutdown`] does what Ctrl-C does: the proxy stops accepting connections, ends
//! the flows in progress and sends `done` to every addon.

use interpose_plugin_abi::prelude::*;

fn request(ctx: &Context, flow: &mut HttpFlow) {
    if flow.request.pretty_url() == "http://example.com/path" {
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
