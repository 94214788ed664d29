//! Offers the command `myaddon.addheader FLOWS`, which adds the request header
//! `myheader: value` to each flow named and then logs "done" (twin of mitmproxy's
//! `examples/addons/commands-flows.py`).
//!
//! Differences: the flows a command can name are the paused ones (mitmproxy's intercepted
//! flows; mitmproxy also reaches finished flows in its view), so the header reaches the
//! server once the flow is resumed (`flow.resume @all`). mitmproxy logs "done" at `ALERT`;
//! Interpose has no such level, so it is logged at info.
//!
//! ```text
//! interpose ctl --control <socket> myaddon.addheader @all
//! interpose ctl --control <socket> flow.resume @all
//! ```

use interpose_plugin_abi::prelude::*;

/// Adds a header to the flows its command names.
pub struct MyAddon;

/// What the command does to each flow.
pub fn add_header(flow: &mut HttpFlow) {
    flow.request.headers.insert("myheader", "value");
}

#[addon]
impl Addon for MyAddon {
    fn load(&self, ctx: &Context) {
        ctx.add_command(
            "myaddon.addheader",
            "Add the request header myheader: value to flows",
            &[("flows", ParamKind::Flows)],
            |ctx, args| {
                for id in args.flows(0)? {
                    // A flow resumed or ended since the argument was resolved is skipped.
                    ctx.with_flow(id, add_header);
                }
                // mitmproxy's ctx.log.alert; Interpose has no alert level.
                info!(ctx, "done");
                Ok(CommandValue::None)
            },
        );
    }
}

export_plugin!(addons = [MyAddon]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    #[test]
    fn adds_myheader_to_a_flow() {
        let mut flow = testing::flow();
        add_header(&mut flow);
        assert_eq!(flow.request.headers.get("myheader"), Some("value"));
    }

    #[test]
    fn the_command_logs_done() {
        // A test context holds no flows: `@all` names none.
        let tctx = TestContext::new();
        MyAddon.load(tctx.ctx());
        assert_eq!(
            tctx.ctx().call_command("myaddon.addheader", &["@all"]),
            Ok(String::new())
        );
        assert_eq!(tctx.messages(), ["done"]);
    }

    #[test]
    fn the_command_needs_its_flows_argument() {
        let tctx = TestContext::new();
        MyAddon.load(tctx.ctx());
        assert!(tctx.ctx().call_command("myaddon.addheader", &[]).is_err());
    }
}
