//! Built-in addon `save`: mitmproxy's `save_stream_file` (`-w FILE`). Every finished flow
//! (at `response` or `error`) that matches `save_stream_filter` is appended to the file as a
//! record of mitmproxy's flow file format (version 21), which `mitmproxy -r`, `mitmweb -r`,
//! `mitmdump -r` and `interpose -r` open. `+FILE` appends to an existing file.
//!
//! Flows are encoded on the worker that finished them and written by a thread of the
//! addon's own ([`writer`]): the disk is never on the hot path, a full queue slows traffic
//! instead of dropping flows (and says so), a write error is reported with the file's name
//! and the number of flows it cost while the proxy goes on, and at shutdown every queued
//! flow is written before the file is closed.

pub mod writer;

use std::{
    cell::RefCell,
    sync::{
        atomic::{AtomicU64, Ordering},
        OnceLock,
    },
    time::{SystemTime, UNIX_EPOCH},
};

use interpose_plugin_abi::{prelude::*, CaptureFormat, Filter};

use writer::Writer;

/// The open file and its filter.
struct Stream {
    writer: Writer,
    filter: Option<Filter>,
}

/// Streams finished flows to a flow file.
#[derive(Default)]
pub struct Save {
    stream: OnceLock<Option<Stream>>,
    /// Waits reported so far (to log new ones once a second at most).
    reported_waits: AtomicU64,
    /// When the last report was logged (seconds since the epoch).
    last_report: AtomicU64,
}

impl Save {
    fn stream(&self, ctx: &Context) -> Option<&Stream> {
        self.stream
            .get_or_init(|| {
                let spec = ctx.option("save_stream_file")?;
                let filter = ctx
                    .filter_option("save_stream_filter")
                    .map_err(|e| error!(ctx, "{e}; no flows are saved"))
                    .ok()?;
                match Writer::open(&spec) {
                    Ok(writer) => Some(Stream { writer, filter }),
                    Err(e) => {
                        error!(
                            ctx,
                            "cannot open {spec} to save flows: {e}; no flows are saved"
                        );
                        None
                    }
                }
            })
            .as_ref()
    }

    fn save(&self, ctx: &Context, flow: &HttpFlow) {
        let Some(stream) = self.stream(ctx) else {
            return;
        };
        if stream.filter.as_ref().is_some_and(|f| !f.matches(flow)) {
            return;
        }
        thread_local! {
            /// This thread's encoding buffer, reused for every flow.
            static RECORD: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        RECORD.with(|record| {
            let mut record = record.borrow_mut();
            record.clear();
            match ctx.encode_flow(flow, CaptureFormat::FlowFile, &mut record) {
                Ok(()) => stream.writer.push(&record),
                Err(e) => error!(ctx, "cannot encode flow {}: {e}", flow.id),
            }
            // Do not keep a big flow's buffer.
            if record.capacity() > 1024 * 1024 {
                *record = Vec::new();
            }
        });
        self.report(ctx, stream, false);
    }

    /// Logs write errors and waits for the disk, at most once a second (always when
    /// `last`).
    fn report(&self, ctx: &Context, stream: &Stream, last: bool) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let previous = self.last_report.load(Ordering::Relaxed);
        if !last
            && (now == previous
                || self
                    .last_report
                    .compare_exchange(previous, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err())
        {
            return;
        }
        let counters = stream.writer.take_counters();
        let path = stream.writer.path().display();
        if let Some((message, lost)) = counters.unreported {
            error!(
                ctx,
                "cannot write to {path}: {message}; {lost} flows not saved \
                 ({} in all); the proxy goes on",
                counters.lost
            );
        }
        let reported = self.reported_waits.swap(counters.waits, Ordering::Relaxed);
        if counters.waits > reported {
            warn!(
                ctx,
                "saving to {path}: the disk is slower than the traffic; flows waited for \
                 the writer {} times",
                counters.waits - reported
            );
        }
    }
}

#[addon]
impl Addon for Save {
    fn name(&self) -> String {
        "save".to_string()
    }

    fn running(&self, ctx: &Context) {
        self.stream(ctx);
    }

    fn response(&self, ctx: &Context, flow: &mut HttpFlow) {
        self.save(ctx, flow);
    }

    fn error(&self, ctx: &Context, flow: &mut HttpFlow) {
        self.save(ctx, flow);
    }

    fn done(&self, ctx: &Context) {
        let Some(Some(stream)) = self.stream.get() else {
            return;
        };
        let counters = stream.writer.close();
        let path = stream.writer.path().display();
        if let Some((message, _)) = &counters.unreported {
            error!(ctx, "cannot write to {path}: {message}");
        }
        if counters.lost > 0 {
            error!(
                ctx,
                "{} flows were not saved to {path} ({} saved)", counters.lost, counters.saved
            );
        } else {
            debug!(ctx, "saved {} flows to {path}", counters.saved);
        }
    }
}

export_plugin!(addons = [Save::default()]);

#[cfg(test)]
mod tests;
