//! Waits 5 seconds in `request` without holding up any other flow: the Rust twin of
//! mitmproxy's `nonblocking.py` example, whose `async def request` awaits `asyncio.sleep(5)`.
//!
//! The event pauses its flow ([`Context::intercept`]) and hands the [`Paused`] handle to a
//! thread of its own, which resumes the flow when the time is up; the proxy's worker goes on
//! with other flows meanwhile. (The other way, like mitmproxy's `@concurrent`: mark the
//! method `#[blocking]` and sleep in it; the host then runs it on its blocking pool.)

use std::{thread, time::Duration};

use interpose_plugin_abi::prelude::*;

/// How long each request waits.
const DELAY: Duration = Duration::from_secs(5);

fn request(ctx: &Context, flow: &mut HttpFlow) {
    let target = format!("{}{}", flow.request.host(), flow.request.path());
    info!(ctx, "handle request: {target}");
    let paused = ctx.intercept(flow);
    let ctx = ctx.clone();
    thread::spawn(move || {
        thread::sleep(DELAY);
        info!(&ctx, "start  request: {target}");
        paused.resume();
    });
}

export_plugin!(functions = [request]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::{
        testing::{self, TestContext},
        Resolution,
    };

    #[test]
    fn pauses_the_flow_and_resumes_it_after_the_delay() {
        let tctx = TestContext::new();
        let mut flow = testing::flow();
        let start = std::time::Instant::now();
        request(tctx.ctx(), &mut flow);
        assert!(flow.intercepted, "the event paused the flow");
        assert_eq!(tctx.messages(), ["handle request: example.com/path"]);
        assert_eq!(tctx.wait_for_resume(&mut flow), Some(Resolution::Resume));
        assert!(start.elapsed() >= DELAY);
        assert!(!flow.intercepted);
        assert_eq!(
            tctx.messages(),
            [
                "handle request: example.com/path",
                "start  request: example.com/path"
            ]
        );
    }
}
