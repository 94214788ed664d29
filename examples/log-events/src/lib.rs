//! Writes to the proxy's event log at each level when loaded (twin of mitmproxy's
//! `examples/addons/log-events.py`).
//!
//! mitmproxy also has an `ALERT` level (info's urgency, and the line pops up in the
//! console's status bar). Interpose has no such level and no status bar: the alert line is
//! logged at info.

use interpose_plugin_abi::prelude::*;

fn load(ctx: &Context) {
    info!(ctx, "This is some informative text.");
    warn!(ctx, "This is a warning.");
    error!(ctx, "This is an error.");
    // mitmproxy's ALERT; Interpose has no such level.
    info!(
        ctx,
        "This is an alert. It has the same urgency as info, but will also pop up in the \
         status bar."
    );
}

export_plugin!(functions = [load]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::TestContext;

    #[test]
    fn logs_at_each_level() {
        let tctx = TestContext::new();
        load(tctx.ctx());
        let logs = tctx.logs();
        let levels: Vec<Level> = logs.iter().map(|(level, _)| *level).collect();
        assert_eq!(
            levels,
            [Level::Info, Level::Warn, Level::Error, Level::Info]
        );
        assert_eq!(logs[0].1, "This is some informative text.");
        assert_eq!(logs[1].1, "This is a warning.");
        assert_eq!(logs[2].1, "This is an error.");
        assert!(logs[3]
            .1
            .starts_with("This is an alert. It has the same urgency"));
    }
}
