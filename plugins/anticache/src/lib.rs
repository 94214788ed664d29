//! Built-in addon `anticache` (mitmproxy's AntiCache): with the `anticache` option on, every
//! request loses `If-Modified-Since` and `If-None-Match`, so servers send whole responses
//! instead of `304 Not Modified` (useful to see and change every body).

use interpose_plugin_abi::prelude::*;

/// The `anticache` option.
pub struct Anticache;

#[addon]
impl Addon for Anticache {
    fn load(&self, ctx: &Context) {
        ctx.add_option(
            "anticache",
            false,
            "Strip out request headers that might cause the server to return 304-not-modified.",
        );
    }

    fn request(&self, ctx: &Context, flow: &mut HttpFlow) {
        if ctx.get_option::<bool>("anticache") {
            flow.request.anticache();
        }
    }
}

export_plugin!(addons = [Anticache]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    #[test]
    fn only_with_the_option_on() {
        let tctx = TestContext::new();
        Anticache.load(tctx.ctx());
        let mut flow = testing::flow();
        flow.request.headers.insert("If-None-Match", "\"x\"");
        flow.request.headers.insert("Accept-Encoding", "gzip");
        let before = flow.request.headers.clone();
        Anticache.request(tctx.ctx(), &mut flow);
        assert_eq!(flow.request.headers, before, "off by default");
        tctx.configure(&Anticache, &[("anticache", "true")])
            .unwrap();
        Anticache.request(tctx.ctx(), &mut flow);
        assert_ne!(flow.request.headers, before);
    }
}
