//! Answers requests for `/blocked` itself with `403 Forbidden`: setting a response in
//! `request` short-circuits the flow, so the server is never contacted.

use interpose_plugin_abi::prelude::*;

/// Blocks one path.
pub struct BlockPath {
    path: &'static str,
}

#[addon]
impl Addon for BlockPath {
    fn request(&self, ctx: &Context, flow: &mut HttpFlow) {
        let path = flow.request.path().split('?').next().unwrap_or_default();
        if path == self.path {
            info!(ctx, "blocked {}", flow.request.url());
            flow.set_response(Response::make(
                403,
                "Blocked by Interpose\n",
                &[("content-type", "text/plain")],
            ));
        }
    }
}

export_plugin!(addons = [BlockPath { path: "/blocked" }]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    #[test]
    fn blocks_only_the_path() {
        let tctx = TestContext::new();
        let addon = BlockPath { path: "/blocked" };
        let mut flow = testing::flow();
        flow.request.path = "/blocked?x=1".into();
        addon.request(tctx.ctx(), &mut flow);
        let response = flow.response.as_ref().expect("answered");
        assert_eq!(response.status_code, 403);
        assert_eq!(response.content.text(), Some("Blocked by Interpose\n"));

        let mut other = testing::flow();
        addon.request(tctx.ctx(), &mut other);
        assert!(other.response.is_none());
    }
}
