//! Sends a copy of every request again, to `/changed`, as a client replay (twin of
//! mitmproxy's `examples/addons/duplicate-modify-replay.py`). The original flow goes on
//! untouched; the replayed copy comes back through the addons with
//! `is_replay() == Some(ReplaySide::Request)`, which this addon leaves alone.
//!
//! The original also adds the copy to the console's flow list (`view.flows.duplicate`);
//! headless Interpose has no flow list.

use interpose_plugin_abi::{flow::ReplaySide, prelude::*};

/// The addon.
pub struct DuplicateModifyReplay;

#[addon]
impl Addon for DuplicateModifyReplay {
    fn request(&self, ctx: &Context, flow: &mut HttpFlow) {
        // Only interactive replays go through; the copy we queued does not loop back.
        if flow.is_replay() == Some(ReplaySide::Request) {
            return;
        }
        let mut copy = flow.copy();
        copy.request.set_path("/changed");
        if let Err(why) = ctx.replay_client(&copy) {
            warn!(ctx, "cannot replay {}: {why}", copy.request.url());
        }
    }
}

export_plugin!(addons = [DuplicateModifyReplay]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    #[test]
    fn replays_a_changed_copy_once() {
        let tctx = TestContext::new();
        let mut flow = testing::flow();
        DuplicateModifyReplay.request(tctx.ctx(), &mut flow);
        let replayed = tctx.replayed();
        assert_eq!(replayed.len(), 1);
        assert_eq!(replayed[0].request.path(), "/changed");
        assert_ne!(replayed[0].id, flow.id);
        // The original is untouched.
        assert_eq!(flow.request.path(), "/path");

        // The replay itself is not copied again.
        let mut replay = testing::replay_of(&replayed[0]);
        DuplicateModifyReplay.request(tctx.ctx(), &mut replay);
        assert_eq!(tctx.replayed().len(), 1);
    }
}
