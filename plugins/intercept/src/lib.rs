//! Pauses the flows that match the `intercept` filter, at their request and at their response,
//! until a command lets them go: `interpose ctl flow.resume @all` (or `flow.kill`,
//! `flow.mark`), through the control endpoint. mitmproxy's Intercept addon, which its console
//! and web tools load; headless Interpose has it too, since the control endpoint gives it a
//! way to resume flows. Replayed flows are never paused. Unset `intercept` to stop.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    RwLock,
};

use interpose_plugin_abi::{prelude::*, Filter};

/// The `intercept` option's filter, compiled.
#[derive(Default)]
pub struct Intercept {
    filter: RwLock<Option<Filter>>,
    /// Whether a filter is set: the only thing flows check when there is none.
    active: AtomicBool,
}

impl Intercept {
    fn process(&self, ctx: &Context, flow: &mut HttpFlow) {
        if !self.active.load(Ordering::Relaxed) || flow.is_replay().is_some() {
            return;
        }
        let matches = self
            .filter
            .read()
            .map(|filter| filter.as_ref().is_some_and(|f| f.matches(flow)))
            .unwrap_or(false);
        if matches {
            debug!(ctx, "intercepting {}", flow.request.url());
            ctx.intercept(flow).leave();
        }
    }
}

#[addon]
impl Addon for Intercept {
    fn load(&self, ctx: &Context) {
        ctx.add_option::<Option<String>>(
            "intercept",
            None,
            "Pause the flows that match this filter expression until `flow.resume`",
        );
    }

    fn configure(&self, ctx: &Context, data: &mut ConfigureData) {
        if !data.contains("intercept") {
            return;
        }
        let compiled = match ctx.get_option::<Option<String>>("intercept") {
            Some(expr) if !expr.trim().is_empty() => match ctx.filter(&expr) {
                Ok(filter) => Some(filter),
                Err(why) => {
                    data.reject(format!("intercept: {why}"));
                    return;
                }
            },
            _ => None,
        };
        let active = compiled.is_some();
        if let Ok(mut filter) = self.filter.write() {
            *filter = compiled;
        }
        self.active.store(active, Ordering::Relaxed);
    }

    fn request(&self, ctx: &Context, flow: &mut HttpFlow) {
        self.process(ctx, flow);
    }

    fn response(&self, ctx: &Context, flow: &mut HttpFlow) {
        self.process(ctx, flow);
    }
}

export_plugin!(addons = [Intercept::default()]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    #[test]
    fn nothing_is_paused_without_a_filter() {
        let tctx = TestContext::new();
        let addon = Intercept::default();
        addon.load(tctx.ctx());
        let mut flow = testing::flow();
        addon.request(tctx.ctx(), &mut flow);
        assert!(!flow.intercepted());
        // The filter language lives in the proxy: a TestContext refuses to compile one, and
        // configure says so.
        let refused = tctx.configure(&addon, &[("intercept", "~u /login")]);
        assert!(refused.unwrap_err().starts_with("intercept: "));
        assert_eq!(tctx.ctx().get_option::<Option<String>>("intercept"), None);
    }
}
