//! Modifies the query string of every request: the Rust twin of mitmproxy's
//! `http-modify-query-string.py`, which sets the query parameter `mitmproxy` to `rocks`
//! (replacing any value it had, adding a query string where there was none).

use interpose_plugin_abi::prelude::*;

fn request(_ctx: &Context, flow: &mut HttpFlow) {
    let mut query = flow.request.query();
    query.set("mitmproxy", "rocks");
    flow.request.set_query(&query);
}

export_plugin!(functions = [request]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    #[test]
    fn sets_the_parameter_with_or_without_a_query() {
        let tctx = TestContext::new();
        for (path, expected) in [
            ("/path", "/path?mitmproxy=rocks"),
            ("/s?q=a+b&mitmproxy=no", "/s?q=a+b&mitmproxy=rocks"),
        ] {
            let mut flow = testing::flow();
            flow.request.set_path(path);
            request(tctx.ctx(), &mut flow);
            assert_eq!(flow.request.path(), expected);
        }
    }
}
