//! Modifies an HTML form submission: the Rust twin of mitmproxy's `http-modify-form.py`.
//!
//! A request carrying a url-encoded form (`Content-Type:
//! application/x-www-form-urlencoded` with at least one field) gets the field `mitmproxy`
//! set to `rocks`, replacing any value it had. Any other request gets the one-field form
//! `foo=bar` as its body, which also sets its `Content-Type` (and `Content-Length`), as
//! assigning `flow.request.urlencoded_form` does in mitmproxy.

use interpose_plugin_abi::prelude::*;

fn request(_ctx: &Context, flow: &mut HttpFlow) {
    let mut form = flow.request.urlencoded_form();
    if form.is_empty() {
        // Not a form (or an empty one): replace the body with a form of our own.
        form = MultiDict::new();
        form.append("foo", "bar");
    } else {
        form.set("mitmproxy", "rocks");
    }
    flow.request.set_urlencoded_form(&form);
}

export_plugin!(functions = [request]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    #[test]
    fn sets_the_field_of_a_form_and_replaces_other_bodies() {
        let tctx = TestContext::new();
        let mut flow = testing::flow();
        flow.request.set_method("POST");
        flow.request
            .headers
            .insert("content-type", "application/x-www-form-urlencoded");
        flow.request.set_content("mitmproxy=sucks&x=1");
        request(tctx.ctx(), &mut flow);
        assert_eq!(flow.request.text().unwrap(), "mitmproxy=rocks&x=1");

        let mut other = testing::flow();
        other
            .request
            .headers
            .insert("content-type", "application/json");
        other.request.set_content("{}");
        request(tctx.ctx(), &mut other);
        assert_eq!(other.request.text().unwrap(), "foo=bar");
        assert_eq!(
            other.request.headers.get("content-type"),
            Some("application/x-www-form-urlencoded")
        );
    }
}
