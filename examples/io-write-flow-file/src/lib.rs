//! Writes about half of all flows, picked at random, to a mitmproxy flow file (mitmproxy's
//! "io-write-flow-file" addon). `mitmproxy -r FILE` and `interpose -r FILE` open the result.
//!
//! The file is named by the environment variable `INTERPOSE_OUTFILE` (mitmproxy's example
//! reads `MITMPROXY_OUTFILE`), `out.mitm` by default, and is created afresh when the proxy
//! is running. Each flow is encoded by the proxy ([`Context::encode_flow`]) and appended as
//! a whole record under a lock, so concurrent flows never interleave; `done` flushes and
//! closes the file.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::{SystemTime, UNIX_EPOCH},
};

use interpose_plugin_abi::{prelude::*, CaptureFormat};

/// The environment variable naming the output file (mitmproxy's `MITMPROXY_OUTFILE`).
pub const OUTFILE_VAR: &str = "INTERPOSE_OUTFILE";

/// The file written when `INTERPOSE_OUTFILE` is unset.
pub const DEFAULT_OUTFILE: &str = "out.mitm";

/// Saves a random half of the flows to a flow file.
pub struct WriteFlowFile {
    path: PathBuf,
    /// The open file, from `running` until `done`.
    file: Mutex<Option<BufWriter<File>>>,
    /// xorshift64 state: the coin for each flow (never 0).
    coin: AtomicU64,
    /// Flows written so far.
    written: AtomicU64,
}

impl WriteFlowFile {
    /// An addon writing to `path`, its coin seeded with `seed`.
    pub fn new(path: impl Into<PathBuf>, seed: u64) -> Self {
        WriteFlowFile {
            path: path.into(),
            file: Mutex::new(None),
            // xorshift stays at 0 forever once there.
            coin: AtomicU64::new(seed.max(1)),
            written: AtomicU64::new(0),
        }
    }

    /// An addon writing to `INTERPOSE_OUTFILE` (or `out.mitm`), seeded from the clock.
    pub fn from_env() -> Self {
        let path = std::env::var_os(OUTFILE_VAR)
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_OUTFILE.into());
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        WriteFlowFile::new(path, seed)
    }

    /// Tosses the coin: `true` half of the time (mitmproxy's `random.random() < 0.5`).
    fn heads(&self) -> bool {
        let step = |mut x: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let previous = self
            .coin
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| Some(step(x)))
            .unwrap_or_else(|x| x);
        // The top bit of the next state: xorshift's low bits are its weakest.
        step(previous) >> 63 == 1
    }
}

#[addon]
impl Addon for WriteFlowFile {
    fn running(&self, ctx: &Context) {
        let Ok(mut file) = self.file.lock() else {
            return;
        };
        match File::create(&self.path) {
            Ok(f) => *file = Some(BufWriter::new(f)),
            Err(e) => error!(ctx, "cannot create {}: {e}", self.path.display()),
        }
    }

    fn response(&self, ctx: &Context, flow: &mut HttpFlow) {
        if !self.heads() {
            return;
        }
        // Encoded outside the lock; only the write is serialised.
        let mut record = Vec::new();
        if let Err(e) = ctx.encode_flow(flow, CaptureFormat::FlowFile, &mut record) {
            error!(ctx, "cannot encode flow {}: {e}", flow.id);
            return;
        }
        let Ok(mut file) = self.file.lock() else {
            return;
        };
        let Some(writer) = file.as_mut() else {
            return;
        };
        match writer.write_all(&record) {
            Ok(()) => {
                self.written.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                error!(ctx, "cannot write to {}: {e}", self.path.display());
                // A partial record would make the rest of the file unreadable.
                *file = None;
            }
        }
    }

    fn done(&self, ctx: &Context) {
        let Some(mut writer) = self.file.lock().ok().and_then(|mut file| file.take()) else {
            return;
        };
        let path = self.path.display();
        match writer.flush().and_then(|()| writer.get_ref().sync_all()) {
            Ok(()) => info!(
                ctx,
                "wrote {} flows to {path}",
                self.written.load(Ordering::Relaxed)
            ),
            Err(e) => error!(ctx, "cannot write to {path}: {e}"),
        }
    }
}

export_plugin!(addons = [WriteFlowFile::from_env()]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("io-write-flow-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn the_coin_is_fair() {
        let addon = WriteFlowFile::new("unused", 0x9e37_79b9_7f4a_7c15);
        let heads = (0..10_000).filter(|_| addon.heads()).count();
        assert!((4_700..5_300).contains(&heads), "{heads} heads in 10000");
    }

    #[test]
    fn a_zero_seed_still_tosses_both_sides() {
        let addon = WriteFlowFile::new("unused", 0);
        let heads = (0..100).filter(|_| addon.heads()).count();
        assert!((1..100).contains(&heads), "{heads} heads in 100");
    }

    #[test]
    fn the_file_is_created_when_running_and_closed_when_done() {
        let path = temp_path("created.mitm");
        let tctx = TestContext::new();
        let addon = WriteFlowFile::new(&path, 7);
        addon.running(tctx.ctx());
        assert!(path.exists());
        addon.done(tctx.ctx());
        assert_eq!(
            tctx.messages(),
            [format!("wrote 0 flows to {}", path.display())]
        );
        assert!(addon.file.lock().unwrap().is_none());
        // A second `done` has nothing left to close.
        addon.done(tctx.ctx());
        assert_eq!(tctx.messages().len(), 1);
    }

    #[test]
    fn a_flow_that_cannot_be_encoded_is_logged_and_not_written() {
        // TestContext has no capture formats (they live in the proxy): the error path. The
        // records themselves are checked end to end.
        let path = temp_path("unencoded.mitm");
        let tctx = TestContext::new();
        let addon = WriteFlowFile::new(&path, 7);
        addon.running(tctx.ctx());
        for _ in 0..8 {
            addon.response(tctx.ctx(), &mut testing::flow_with_response());
        }
        let errors: Vec<_> = tctx
            .logs()
            .into_iter()
            .filter(|(level, _)| *level == Level::Error)
            .collect();
        assert!(!errors.is_empty() && errors.len() < 8, "{errors:?}");
        assert!(errors[0].1.starts_with("cannot encode flow 02020202-"));
        addon.done(tctx.ctx());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn an_unwritable_path_is_logged() {
        let path = temp_path("no-such-dir").join("out.mitm");
        let tctx = TestContext::new();
        let addon = WriteFlowFile::new(&path, 7);
        addon.running(tctx.ctx());
        addon.response(tctx.ctx(), &mut testing::flow_with_response());
        addon.done(tctx.ctx());
        let messages = tctx.messages();
        assert!(
            messages[0].starts_with(&format!("cannot create {}: ", path.display())),
            "{messages:?}"
        );
    }
}
