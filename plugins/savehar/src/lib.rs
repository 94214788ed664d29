//! Built-in addon `savehar`: mitmproxy's `hardump`. Every finished flow (at `response` or
//! `error`) that matches `save_stream_filter` becomes a HAR 1.2 entry; at exit the entries
//! are written as one HAR file that browsers' developer tools import (`-` writes it to
//! stdout; a name ending in `.zhar` is compressed with zlib, as in mitmproxy).
//!
//! As in mitmproxy, entries are held in memory until exit (a HAR file is one JSON document);
//! for long captures use `save_stream_file`, which streams.

use std::{
    io::Write,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, OnceLock, RwLock,
    },
};

use interpose_plugin_abi::{prelude::*, CaptureFormat, Filter};

/// Where the HAR goes, and which flows.
struct Target {
    path: String,
    filter: Option<Filter>,
}

/// Collects HAR entries and writes the file at exit.
#[derive(Default)]
pub struct SaveHar {
    /// Where the HAR goes (none without `hardump`); replaced when the options change.
    target: RwLock<Option<Arc<Target>>>,
    /// Whether the options were read (once the proxy runs).
    started: OnceLock<()>,
    /// Whether there is a target: without `hardump` (the default) flows return here, before
    /// the lock.
    active: AtomicBool,
    entries: Mutex<Vec<Vec<u8>>>,
}

impl SaveHar {
    /// The target the options name now, if they name one.
    fn read_target(ctx: &Context) -> Option<Arc<Target>> {
        let path = ctx.option("hardump").filter(|p| !p.is_empty())?;
        let filter = ctx
            .filter_option("save_stream_filter")
            .map_err(|e| error!(ctx, "{e}; no HAR is written"))
            .ok()?;
        Some(Arc::new(Target { path, filter }))
    }

    fn set_target(&self, target: Option<Arc<Target>>) {
        self.active.store(target.is_some(), Ordering::Relaxed);
        *self.target.write().unwrap_or_else(|e| e.into_inner()) = target;
    }

    fn target(&self, ctx: &Context) -> Option<Arc<Target>> {
        self.started
            .get_or_init(|| self.set_target(SaveHar::read_target(ctx)));
        self.target
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn collect(&self, ctx: &Context, flow: &HttpFlow) {
        let Some(target) = self.target(ctx) else {
            return;
        };
        if target.filter.as_ref().is_some_and(|f| !f.matches(flow)) {
            return;
        }
        let mut entry = Vec::with_capacity(1024);
        match ctx.encode_flow(flow, CaptureFormat::HarEntry, &mut entry) {
            Ok(()) => self
                .entries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(entry),
            Err(e) => error!(ctx, "cannot make a HAR entry of flow {}: {e}", flow.id),
        }
    }
}

/// The HAR document around `entries` (each a JSON object).
pub fn har_document(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.iter().map(Vec::len).sum::<usize>() + 256);
    out.extend_from_slice(
        b"{\"log\": {\"version\": \"1.2\", \"creator\": {\"name\": \"interpose\", \"version\": \"",
    );
    out.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
    out.extend_from_slice(b"\", \"comment\": \"\"}, \"pages\": [], \"entries\": [");
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(entry);
    }
    out.extend_from_slice(b"]}}\n");
    out
}

/// `data` compressed with zlib (RFC 1950) at the best compression level.
fn compress(data: &[u8]) -> Vec<u8> {
    use flate2::{write::ZlibEncoder, Compression};
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

#[addon]
impl Addon for SaveHar {
    fn name(&self) -> String {
        "savehar".to_string()
    }

    fn load(&self, ctx: &Context) {
        ctx.add_option(
            "hardump",
            String::new(),
            "Write the finished flows to this HAR file at exit (- for stdout).",
        );
    }

    fn configure(&self, ctx: &Context, data: &mut ConfigureData) {
        // Changed while the proxy runs: later flows go by the new filter, and the file is
        // written where `hardump` says at exit.
        let changed = data.contains("hardump") || data.contains("save_stream_filter");
        if changed && self.started.get().is_some() {
            self.set_target(SaveHar::read_target(ctx));
        }
    }

    fn running(&self, ctx: &Context) {
        self.target(ctx);
    }

    fn response(&self, ctx: &Context, flow: &mut HttpFlow) {
        // A WebSocket flow is written when its conversation ends (mitmproxy).
        if flow.websocket().is_none() {
            self.collect(ctx, flow);
        }
    }

    fn error(&self, ctx: &Context, flow: &mut HttpFlow) {
        if flow.websocket().is_none() {
            self.collect(ctx, flow);
        }
    }

    fn websocket_end(&self, ctx: &Context, flow: &mut HttpFlow) {
        self.collect(ctx, flow);
    }

    fn done(&self, ctx: &Context) {
        if self.started.get().is_none() {
            return;
        }
        let Some(target) = self.target(ctx) else {
            return;
        };
        let entries = std::mem::take(&mut *self.entries.lock().unwrap_or_else(|e| e.into_inner()));
        let mut document = har_document(&entries);
        if target.path.ends_with(".zhar") {
            // As mitmproxy: `.zhar` is the document compressed with zlib at level 9.
            document = compress(&document);
        }
        let written = if target.path == "-" {
            std::io::stdout().write_all(&document)
        } else {
            std::fs::write(&target.path, &document)
        };
        match written {
            Ok(()) => info!(
                ctx,
                "HAR file saved ({} flows) to {}.",
                entries.len(),
                target.path
            ),
            Err(e) => error!(ctx, "cannot write the HAR file {}: {e}", target.path),
        }
    }
}

export_plugin!(addons = [SaveHar::default()]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zhar_is_zlib() {
        use std::io::Read;
        let doc = har_document(&[b"{}".to_vec()]);
        let mut back = Vec::new();
        flate2::read::ZlibDecoder::new(&compress(&doc)[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, doc);
    }

    #[test]
    fn document_wraps_entries() {
        let doc = har_document(&[b"{\"a\": 1}".to_vec(), b"{\"b\": 2}".to_vec()]);
        let text = String::from_utf8(doc).unwrap();
        assert!(text.starts_with("{\"log\": {\"version\": \"1.2\""));
        assert!(
            text.ends_with("\"entries\": [{\"a\": 1}, {\"b\": 2}]}}\n"),
            "{text}"
        );
    }
}
