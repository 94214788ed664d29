//! Adds `myheader: value` to every request, written in the abbreviated style: a free
//! function named after the event, no struct (twin of mitmproxy's
//! `examples/addons/anatomy2.py`, "an addon using the abbreviated scripting syntax").

use interpose_plugin_abi::prelude::*;

fn request(_ctx: &Context, flow: &mut HttpFlow) {
    flow.request.headers.insert("myheader", "value");
}

export_plugin!(functions = [request]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    #[test]
    fn sets_the_header() {
        let tctx = TestContext::new();
        let mut flow = testing::flow();
        request(tctx.ctx(), &mut flow);
        assert_eq!(flow.request.headers.get("MyHeader"), Some("value"));
    }
}
