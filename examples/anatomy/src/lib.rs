//! Counts flows and logs the running total for every request: "We've seen N flows" (twin of
//! mitmproxy's `examples/addons/anatomy.py`, the basic skeleton of an addon: a struct with
//! state).
//!
//! Build with `cargo build --release -p anatomy`, then load it with
//! `interpose --plugin target/release/libanatomy.so`.

use std::sync::atomic::{AtomicU64, Ordering};

use interpose_plugin_abi::prelude::*;

/// Counts the requests it has seen.
#[derive(Default)]
pub struct Counter {
    num: AtomicU64,
}

#[addon]
impl Addon for Counter {
    fn request(&self, ctx: &Context, _flow: &mut HttpFlow) {
        // Called from many threads at once: the count is an atomic.
        let n = self.num.fetch_add(1, Ordering::Relaxed) + 1;
        info!(ctx, "We've seen {n} flows");
    }
}

export_plugin!(addons = [Counter::default()]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    #[test]
    fn counts_every_request() {
        let tctx = TestContext::new();
        let counter = Counter::default();
        for _ in 0..2 {
            counter.request(tctx.ctx(), &mut testing::flow());
        }
        assert_eq!(
            tctx.messages(),
            ["We've seen 1 flows", "We've seen 2 flows"]
        );
    }
}
