//! Logs every flow whose response matches a flow filter expression (mitmproxy's
//! "filter-flows" addon), compiled once by the proxy's own filter language.
//!
//! mitmproxy's version reads the expression from its addon option `flowfilter`; Interpose
//! addons cannot declare options yet, so this one reads the environment variable
//! `INTERPOSE_FLOWFILTER` when the plugin is loaded. Unset or empty, the addon does
//! nothing. (mitmproxy's example, as of 8fc25b3, compiles `"."` instead of the option, so
//! every flow matches; this twin uses the expression it was given.)
//!
//! ```text
//! INTERPOSE_FLOWFILTER='~d example.com & ~c 200' interpose --plugin libfilter_flows.so
//! ```

use std::sync::OnceLock;

use interpose_plugin_abi::{prelude::*, Filter};

/// The environment variable holding the filter expression (mitmproxy's `flowfilter`).
pub const FLOWFILTER_VAR: &str = "INTERPOSE_FLOWFILTER";

/// Logs the flows matching one filter expression.
pub struct FilterFlows {
    /// The expression, if one was given.
    expression: Option<String>,
    /// The compiled filter: `None` when there is no expression or it did not compile.
    filter: OnceLock<Option<Filter>>,
}

impl FilterFlows {
    /// An addon filtering with `expression`; `None` or an empty one disables it.
    pub fn new(expression: Option<String>) -> Self {
        FilterFlows {
            expression: expression.filter(|e| !e.trim().is_empty()),
            filter: OnceLock::new(),
        }
    }

    /// An addon filtering with the expression in `INTERPOSE_FLOWFILTER`.
    pub fn from_env() -> Self {
        FilterFlows::new(std::env::var(FLOWFILTER_VAR).ok())
    }

    /// The compiled filter, compiling it on first use; a bad expression is logged once.
    fn filter(&self, ctx: &Context) -> Option<&Filter> {
        self.filter
            .get_or_init(|| {
                let expression = self.expression.as_deref()?;
                ctx.filter(expression)
                    .map_err(|e| error!(ctx, "{FLOWFILTER_VAR}={expression:?} is invalid: {e}"))
                    .ok()
            })
            .as_ref()
    }
}

#[addon]
impl Addon for FilterFlows {
    fn running(&self, ctx: &Context) {
        // Compile at startup, so that a bad expression is reported before any traffic.
        self.filter(ctx);
    }

    fn response(&self, ctx: &Context, flow: &mut HttpFlow) {
        if self.filter(ctx).is_some_and(|filter| filter.matches(flow)) {
            info!(ctx, "Flow matches filter: {}", describe(flow));
        }
    }
}

/// A one-line description of a flow: method, URL and status (`GET http://a/b 200 OK`).
pub fn describe(flow: &HttpFlow) -> String {
    let request = &flow.request;
    let outcome = match (flow.response(), flow.error()) {
        (Some(response), _) => format!("{} {}", response.status_code, response.reason()),
        (None, Some(error)) => format!("error: {}", error.msg()),
        (None, None) => "no response".to_string(),
    };
    format!("{} {} {outcome}", request.method(), request.url())
}

export_plugin!(addons = [FilterFlows::from_env()]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    #[test]
    fn describes_method_url_and_status() {
        assert_eq!(
            describe(&testing::flow_with_response()),
            "GET http://example.com/path 200 OK"
        );
        assert_eq!(
            describe(&testing::flow()),
            "GET http://example.com/path no response"
        );
    }

    #[test]
    fn without_an_expression_it_logs_nothing() {
        let tctx = TestContext::new();
        for expression in [None, Some(String::new()), Some("  ".to_string())] {
            let addon = FilterFlows::new(expression);
            addon.running(tctx.ctx());
            addon.response(tctx.ctx(), &mut testing::flow_with_response());
        }
        assert!(tctx.logs().is_empty(), "{:?}", tctx.logs());
    }

    #[test]
    fn an_expression_that_does_not_compile_is_logged_once_naming_the_variable() {
        // TestContext compiles no filter at all (filters live in the proxy), which takes
        // the same path as a bad expression; matching itself is tested end to end.
        let tctx = TestContext::new();
        let addon = FilterFlows::new(Some("~u /match".to_string()));
        addon.running(tctx.ctx());
        addon.response(tctx.ctx(), &mut testing::flow_with_response());
        let logs = tctx.logs();
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert_eq!(logs[0].0, Level::Error);
        assert!(
            logs[0]
                .1
                .starts_with("INTERPOSE_FLOWFILTER=\"~u /match\" is invalid: "),
            "{}",
            logs[0].1
        );
    }
}
