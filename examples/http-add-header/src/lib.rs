//! Adds a `count` header to every response: 1, 2, 3... across all flows (twin of
//! mitmproxy's `examples/addons/http-add-header.py`, formerly `addheader.py`).

use std::sync::atomic::{AtomicU64, Ordering};

use interpose_plugin_abi::prelude::*;

/// Numbers the responses it sees.
#[derive(Default)]
pub struct AddHeader {
    num: AtomicU64,
}

#[addon]
impl Addon for AddHeader {
    fn response(&self, _ctx: &Context, flow: &mut HttpFlow) {
        // Flows run on many threads at once: the counter is an atomic.
        let n = self.num.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(response) = flow.response_mut() {
            response.headers.insert("count", n.to_string());
        }
    }
}

export_plugin!(addons = [AddHeader::default()]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    #[test]
    fn numbers_the_responses() {
        let tctx = TestContext::new();
        let addon = AddHeader::default();
        for n in ["1", "2", "3"] {
            let mut flow = testing::flow_with_response();
            addon.response(tctx.ctx(), &mut flow);
            let response = flow.response().unwrap();
            assert_eq!(response.headers.get("count"), Some(n));
        }
    }
}
