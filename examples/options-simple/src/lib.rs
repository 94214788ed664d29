//! Declares the bool option `addheader` and, while it is on, numbers the responses in a
//! `count` header (twin of mitmproxy's `examples/addons/options-simple.py`).
//!
//! The counter only moves while the option is on: responses passed while it is off are not
//! counted. Turn it on with `--set addheader=true` (or `--set addheader`), `addheader: true`
//! in `config.yaml`, or at run time through the control endpoint's `set`.

use std::sync::atomic::{AtomicU64, Ordering};

use interpose_plugin_abi::prelude::*;

/// Numbers the responses while `addheader` is on.
#[derive(Default)]
pub struct AddHeader {
    num: AtomicU64,
}

#[addon]
impl Addon for AddHeader {
    fn load(&self, ctx: &Context) {
        ctx.add_option("addheader", false, "Add a count header to responses");
    }

    fn response(&self, ctx: &Context, flow: &mut HttpFlow) {
        // Read in every event (no lock): a change at run time takes effect at once.
        if ctx.get_option::<bool>("addheader") {
            let n = self.num.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(response) = flow.response_mut() {
                response.headers.insert("count", n.to_string());
            }
        }
    }
}

export_plugin!(addons = [AddHeader::default()]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    fn count(tctx: &TestContext, addon: &AddHeader) -> Option<String> {
        let mut flow = testing::flow_with_response();
        addon.response(tctx.ctx(), &mut flow);
        let response = flow.response().unwrap();
        response.headers.get("count").map(str::to_string)
    }

    #[test]
    fn declares_addheader_off_by_default() {
        let tctx = TestContext::new();
        let addon = AddHeader::default();
        addon.load(tctx.ctx());
        assert!(!tctx.ctx().get_option::<bool>("addheader"));
        assert_eq!(count(&tctx, &addon), None);
    }

    #[test]
    fn counts_only_while_on() {
        let tctx = TestContext::new();
        let addon = AddHeader::default();
        addon.load(tctx.ctx());
        tctx.configure(&addon, &[("addheader", "true")]).unwrap();
        assert_eq!(count(&tctx, &addon).as_deref(), Some("1"));
        assert_eq!(count(&tctx, &addon).as_deref(), Some("2"));
        tctx.configure(&addon, &[("addheader", "false")]).unwrap();
        assert_eq!(count(&tctx, &addon), None);
        tctx.configure(&addon, &[("addheader", "true")]).unwrap();
        assert_eq!(count(&tctx, &addon).as_deref(), Some("3"));
    }

    #[test]
    fn refuses_a_value_that_is_not_a_bool() {
        let tctx = TestContext::new();
        AddHeader::default().load(tctx.ctx());
        assert!(tctx.set_option_checked("addheader", "maybe").is_err());
    }
}
