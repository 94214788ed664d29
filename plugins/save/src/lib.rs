//! Built-in addon `save`: mitmproxy's `save_stream_file` (`-w FILE`). Every finished flow
//! (at `response` or `error`) that matches `save_stream_filter` is appended to the file as a
//! record of mitmproxy's flow file format (version 21), which `mitmproxy -r`, `mitmweb -r`,
//! `mitmdump -r` and `interpose -r` open. `+FILE` appends to an existing file; strftime
//! directives in the path (`flows-%Y-%m-%d.mitm`) start a new file whenever the formatted
//! path changes, as in mitmproxy.
//!
//! Flows are encoded on the worker that finished them and written by a thread of the
//! addon's own ([`writer`]): the disk is never on the hot path, a full queue slows traffic
//! instead of dropping flows (and says so), a write error is reported with the file's name
//! and the number of flows it cost while the proxy goes on, and at shutdown every queued
//! flow is written before the file is closed.

pub mod path;
pub mod writer;

use std::{
    cell::RefCell,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, OnceLock, RwLock,
    },
    time::{SystemTime, UNIX_EPOCH},
};

use interpose_plugin_abi::{prelude::*, CaptureFormat, Filter};

use writer::{Counters, Writer};

/// The open file and its filter.
struct Stream {
    /// The file being written, and the `save_stream_file` value (formatted) it was opened
    /// for; replaced when a strftime pattern formats to a new path.
    current: RwLock<(Writer, String)>,
    /// `save_stream_file` when it has strftime directives.
    pattern: Option<String>,
    /// The second the pattern was last formatted for: it is formatted once a second, not
    /// once a flow.
    checked: AtomicU64,
    filter: Option<Filter>,
}

/// Streams finished flows to a flow file.
#[derive(Default)]
pub struct Save {
    /// The file being written (none without `save_stream_file`). Flows hold the read side
    /// while they are queued, so that `configure` (the write side) switches files between
    /// flows, never during one.
    stream: RwLock<Option<Arc<Stream>>>,
    /// Whether the options were read (once the proxy runs).
    started: OnceLock<()>,
    /// Whether there is a file: without `save_stream_file` (the default) flows return here,
    /// before the lock.
    active: AtomicBool,
    /// Waits reported so far (to log new ones once a second at most).
    reported_waits: AtomicU64,
    /// When the last report was logged (seconds since the epoch).
    last_report: AtomicU64,
}

/// Seconds since the Unix epoch.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `pattern` formatted for the local time `secs` seconds after the epoch.
fn formatted_at(pattern: &str, secs: u64) -> String {
    path::format(pattern, &path::local_time(secs as f64))
}

impl Save {
    /// Opens the file the options name, if they name one.
    fn open(ctx: &Context) -> Option<Arc<Stream>> {
        let spec = ctx.option("save_stream_file").filter(|s| !s.is_empty())?;
        let filter = ctx
            .filter_option("save_stream_filter")
            .map_err(|e| error!(ctx, "{e}; no flows are saved"))
            .ok()?;
        let pattern = path::is_pattern(&spec).then(|| spec.clone());
        let secs = now_secs();
        let first = match &pattern {
            Some(pattern) => formatted_at(pattern, secs),
            None => spec.clone(),
        };
        match Writer::open(&first) {
            Ok(writer) => Some(Arc::new(Stream {
                current: RwLock::new((writer, first)),
                pattern,
                checked: AtomicU64::new(secs),
                filter,
            })),
            Err(e) => {
                error!(
                    ctx,
                    "cannot open {first} to save flows: {e}; no flows are saved"
                );
                None
            }
        }
    }

    /// Opens the file on first use.
    fn start(&self, ctx: &Context) {
        self.started.get_or_init(|| {
            let stream = Save::open(ctx);
            self.active.store(stream.is_some(), Ordering::Relaxed);
            *self.stream.write().unwrap_or_else(|e| e.into_inner()) = stream;
        });
    }

    /// Writes out and closes the current file, if any, and puts `next` in its place.
    fn switch(&self, ctx: &Context, next: Option<Arc<Stream>>) {
        self.active.store(next.is_some(), Ordering::Relaxed);
        let old = std::mem::replace(
            &mut *self.stream.write().unwrap_or_else(|e| e.into_inner()),
            next,
        );
        if let Some(old) = old {
            let current = read(&old.current);
            let counters = current.0.close();
            report_closed(ctx, &current.0, &counters);
        }
    }

    /// Moves to the file the pattern names now, if that is another file: the old one is
    /// written out and closed, as mitmproxy does when the formatted path changes.
    fn rotate(&self, ctx: &Context, stream: &Stream, secs: u64) {
        let Some(pattern) = &stream.pattern else {
            return;
        };
        // Only forward in time: a thread whose clock read is a second behind another's must not
        // move the capture back to an earlier file.
        if secs <= stream.checked.load(Ordering::Relaxed) {
            return;
        }
        let wanted = formatted_at(pattern, secs);
        if read(&stream.current).1 == wanted {
            stream.checked.store(secs, Ordering::Relaxed);
            return;
        }
        stream.checked.store(secs, Ordering::Relaxed);
        let mut current = stream.current.write().unwrap_or_else(|e| e.into_inner());
        if current.1 == wanted {
            return;
        }
        match Writer::open(&wanted) {
            Ok(writer) => {
                let (old, _) = std::mem::replace(&mut *current, (writer, wanted));
                drop(current);
                let counters = old.close();
                report_closed(ctx, &old, &counters);
            }
            Err(e) => {
                // Keep writing to the previous file rather than lose flows.
                error!(
                    ctx,
                    "cannot open {wanted} to save flows: {e}; still writing to {}", current.1
                );
                current.1 = wanted;
            }
        }
    }

    fn save(&self, ctx: &Context, flow: &HttpFlow) {
        self.start(ctx);
        if !self.active.load(Ordering::Relaxed) {
            return;
        }
        let slot = read(&self.stream);
        let Some(stream) = slot.as_deref() else {
            return;
        };
        if stream.filter.as_ref().is_some_and(|f| !f.matches(flow)) {
            return;
        }
        let secs = now_secs();
        self.rotate(ctx, stream, secs);
        thread_local! {
            /// This thread's encoding buffer, reused for every flow.
            static RECORD: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        RECORD.with(|record| {
            let mut record = record.borrow_mut();
            record.clear();
            match ctx.encode_flow(flow, CaptureFormat::FlowFile, &mut record) {
                Ok(()) => read(&stream.current).0.push(&record),
                Err(e) => error!(ctx, "cannot encode flow {}: {e}", flow.id),
            }
            // Do not keep a big flow's buffer.
            if record.capacity() > 1024 * 1024 {
                *record = Vec::new();
            }
        });
        self.report(ctx, stream, secs);
    }

    /// Logs write errors and waits for the disk, at most once a second (`now`, in seconds
    /// since the epoch).
    fn report(&self, ctx: &Context, stream: &Stream, now: u64) {
        let previous = self.last_report.load(Ordering::Relaxed);
        if now == previous
            || self
                .last_report
                .compare_exchange(previous, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let current = read(&stream.current);
        let counters = current.0.take_counters();
        let path = current.0.path().display();
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

/// The read half of a lock that a panic cannot poison for good.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

/// Logs how writing to a file that was just closed ended.
fn report_closed(ctx: &Context, writer: &Writer, counters: &Counters) {
    let path = writer.path().display();
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

#[addon]
impl Addon for Save {
    fn name(&self) -> String {
        "save".to_string()
    }

    fn load(&self, ctx: &Context) {
        ctx.add_option::<Option<String>>(
            "save_stream_file",
            None,
            "Write every finished flow to this file in mitmproxy's flow format, which \
             mitmproxy -r and interpose -r read. Prefix the path with + to append.",
        );
        ctx.add_option::<Option<String>>(
            "save_stream_filter",
            None,
            "Only flows matching this filter expression are saved (save_stream_file, \
             hardump).",
        );
    }

    fn configure(&self, ctx: &Context, data: &mut ConfigureData) {
        if data.contains("save_stream_filter") {
            if let Err(why) = ctx.filter_option("save_stream_filter") {
                data.reject(why);
                return;
            }
        }
        // Changed while the proxy runs: the current file is written out and closed, and the
        // new one (if any) opened, as mitmproxy does.
        let changed = data.contains("save_stream_file") || data.contains("save_stream_filter");
        if changed && self.started.get().is_some() {
            self.switch(ctx, Save::open(ctx));
        }
    }

    fn running(&self, ctx: &Context) {
        self.start(ctx);
    }

    fn response(&self, ctx: &Context, flow: &mut HttpFlow) {
        // A WebSocket flow is written when its conversation ends (mitmproxy).
        if flow.websocket().is_none() {
            self.save(ctx, flow);
        }
    }

    fn error(&self, ctx: &Context, flow: &mut HttpFlow) {
        if flow.websocket().is_none() {
            self.save(ctx, flow);
        }
    }

    fn websocket_end(&self, ctx: &Context, flow: &mut HttpFlow) {
        self.save(ctx, flow);
    }

    fn done(&self, ctx: &Context) {
        self.switch(ctx, None);
    }
}

export_plugin!(addons = [Save::default()]);

#[cfg(test)]
mod tests;
