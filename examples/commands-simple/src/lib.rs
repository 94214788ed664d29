//! Offers the command `myaddon.inc`, which adds one to a counter and logs "num = N" (twin of
//! mitmproxy's `examples/addons/commands-simple.py`).
//!
//! Call it from outside the proxy with `interpose ctl --control <socket> myaddon.inc` (the
//! proxy started with `--set control=<socket>`), or from another addon with
//! `ctx.call_command("myaddon.inc", &[])`.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use interpose_plugin_abi::prelude::*;

/// Counts the calls of its command.
#[derive(Default)]
pub struct MyAddon {
    // Shared with the command's closure, which must be `'static`.
    num: Arc<AtomicU64>,
}

#[addon]
impl Addon for MyAddon {
    fn load(&self, ctx: &Context) {
        let num = Arc::clone(&self.num);
        ctx.add_command(
            "myaddon.inc",
            "Add one to the counter",
            &[],
            move |ctx, _args| {
                let n = num.fetch_add(1, Ordering::Relaxed) + 1;
                info!(ctx, "num = {n}");
                Ok(CommandValue::None)
            },
        );
    }
}

export_plugin!(addons = [MyAddon::default()]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::TestContext;

    #[test]
    fn each_call_adds_one_and_logs_it() {
        let tctx = TestContext::new();
        MyAddon::default().load(tctx.ctx());
        for _ in 0..3 {
            assert_eq!(
                tctx.ctx().call_command("myaddon.inc", &[]),
                Ok(String::new())
            );
        }
        assert_eq!(tctx.messages(), ["num = 1", "num = 2", "num = 3"]);
    }

    #[test]
    fn takes_no_arguments() {
        let tctx = TestContext::new();
        MyAddon::default().load(tctx.ctx());
        assert!(tctx.ctx().call_command("myaddon.inc", &["1"]).is_err());
        assert!(tctx.messages().is_empty());
    }
}
