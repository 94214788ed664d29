//! Declares the optional number option `addheader` and refuses values over 100 in
//! `configure`; while it is set, responses get a header `addheader` with its value (twin of
//! mitmproxy's `examples/addons/options-configure.py`).
//!
//! As in mitmproxy, a refused value stops the proxy at startup with the message
//! (`--set addheader=101`: "addheader must be <= 100"); at run time (the control endpoint's
//! `set`) the change is undone and the caller gets the message. Unlike Python's `int`, the
//! option takes whole numbers of 0 or more (Interpose's `int` options).

use interpose_plugin_abi::prelude::*;

/// Copies the `addheader` option into a response header.
pub struct AddHeader;

#[addon]
impl Addon for AddHeader {
    fn load(&self, ctx: &Context) {
        ctx.add_option::<Option<i64>>("addheader", None, "Add a header to responses");
    }

    fn configure(&self, ctx: &Context, data: &mut ConfigureData) {
        if data.contains("addheader") {
            if let Some(n) = ctx.get_option::<Option<i64>>("addheader") {
                if n > 100 {
                    data.reject("addheader must be <= 100");
                }
            }
        }
    }

    fn response(&self, ctx: &Context, flow: &mut HttpFlow) {
        if let Some(n) = ctx.get_option::<Option<i64>>("addheader") {
            if let Some(response) = flow.response_mut() {
                response.headers.insert("addheader", n.to_string());
            }
        }
    }
}

export_plugin!(addons = [AddHeader]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    fn header(tctx: &TestContext) -> Option<String> {
        let mut flow = testing::flow_with_response();
        AddHeader.response(tctx.ctx(), &mut flow);
        let response = flow.response().unwrap();
        response.headers.get("addheader").map(str::to_string)
    }

    #[test]
    fn unset_by_default_adds_nothing() {
        let tctx = TestContext::new();
        AddHeader.load(tctx.ctx());
        assert_eq!(tctx.ctx().get_option::<Option<i64>>("addheader"), None);
        assert_eq!(header(&tctx), None);
    }

    #[test]
    fn a_value_up_to_100_becomes_the_header() {
        let tctx = TestContext::new();
        AddHeader.load(tctx.ctx());
        tctx.configure(&AddHeader, &[("addheader", "42")]).unwrap();
        assert_eq!(header(&tctx).as_deref(), Some("42"));
        tctx.configure(&AddHeader, &[("addheader", "100")]).unwrap();
        assert_eq!(header(&tctx).as_deref(), Some("100"));
    }

    #[test]
    fn a_value_over_100_is_refused_and_the_old_one_kept() {
        let tctx = TestContext::new();
        AddHeader.load(tctx.ctx());
        tctx.configure(&AddHeader, &[("addheader", "7")]).unwrap();
        assert_eq!(
            tctx.configure(&AddHeader, &[("addheader", "101")]),
            Err("addheader must be <= 100".to_string())
        );
        assert_eq!(header(&tctx).as_deref(), Some("7"));
    }

    #[test]
    fn unsetting_removes_the_header() {
        let tctx = TestContext::new();
        AddHeader.load(tctx.ctx());
        tctx.configure(&AddHeader, &[("addheader", "5")]).unwrap();
        tctx.configure(&AddHeader, &[("addheader", "")]).unwrap();
        assert_eq!(header(&tctx), None);
    }

    #[test]
    fn other_options_changing_are_not_checked() {
        let tctx = TestContext::new();
        AddHeader.load(tctx.ctx());
        let mut data = ConfigureData::new(["anticache"]);
        AddHeader.configure(tctx.ctx(), &mut data);
        assert_eq!(data.rejection(), None);
    }
}
