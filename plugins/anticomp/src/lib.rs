//! Built-in addon `anticomp` (mitmproxy's AntiComp): with the `anticomp` option on, every
//! request asks for `Accept-Encoding: identity`, so bodies come uncompressed (easier to read
//! and rewrite; Interpose decodes compressed bodies for filters and dumps anyway).

use interpose_plugin_abi::prelude::*;

/// The `anticomp` option.
pub struct Anticomp;

#[addon]
impl Addon for Anticomp {
    fn load(&self, ctx: &Context) {
        ctx.add_option(
            "anticomp",
            false,
            "Try to convince servers to send us un-compressed data.",
        );
    }

    fn request(&self, ctx: &Context, flow: &mut HttpFlow) {
        if ctx.get_option::<bool>("anticomp") {
            flow.request.anticomp();
        }
    }
}

export_plugin!(addons = [Anticomp]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    #[test]
    fn only_with_the_option_on() {
        let tctx = TestContext::new();
        Anticomp.load(tctx.ctx());
        let mut flow = testing::flow();
        flow.request.headers.insert("If-None-Match", "\"x\"");
        flow.request.headers.insert("Accept-Encoding", "gzip");
        let before = flow.request.headers.clone();
        Anticomp.request(tctx.ctx(), &mut flow);
        assert_eq!(flow.request.headers, before, "off by default");
        tctx.configure(&Anticomp, &[("anticomp", "true")]).unwrap();
        Anticomp.request(tctx.ctx(), &mut flow);
        assert_ne!(flow.request.headers, before);
    }
}
