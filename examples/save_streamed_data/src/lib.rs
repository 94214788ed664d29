//! Writes streamed request and response bodies to files, one file per body (twin of
//! mitmproxy's `examples/contrib/save_streamed_data.py`).
//!
//! The file name comes from a pattern: strftime directives (`%Y %y %m %d %H %M %S %f %j %a
//! %A %b %B %p %%`, with the request's start in local time), and four of its own: `%+T`
//! the request's timestamp (seconds, with the fraction), `%+D` `req` or `rsp`, `%+I` the
//! client connection's id and `%+C` the client's IP address. A leading `~` is the home
//! folder; missing folders are made. For example `~/streamed_files/%+D:%+T:%+I`, or
//! `~/streamed_files/%+C/%Y-%m-%d/%+D:%+T:%+I`.
//!
//! Differences from the original:
//! - mitmproxy's version reads the pattern from its addon option `save_streamed_data`;
//!   Interpose addons cannot declare options yet, so this one reads the environment
//!   variable `INTERPOSE_SAVE_STREAMED_DATA` when the plugin is loaded. Unset or empty, the
//!   addon does nothing.
//! - As in the original, only bodies that are already streamed when `requestheaders` /
//!   `responseheaders` reach this addon are saved: another addon must have turned streaming
//!   on before it (load `http-stream-simple` first, say). Interpose's `stream_large_bodies`
//!   decides after the events, so it does not count here (mitmproxy's does).
//! - The pass-through hook replaces whatever hook the body had (the original is "not
//!   compatible" with `http-stream-modify` in the same way).
//! - The file is created when the body starts (so an empty body makes an empty file; the
//!   original opens it at the first chunk), and closed at the end of the body or when the
//!   flow is dropped (the original also closes it in `responseheaders`, `response` and
//!   `error`).

use std::{fs::File, io::Write, sync::Arc};

use interpose_plugin_abi::{commands::expand_home, prelude::*, time};

/// The environment variable holding the pattern (mitmproxy's option `save_streamed_data`).
pub const PATTERN_VAR: &str = "INTERPOSE_SAVE_STREAMED_DATA";

/// Saves streamed bodies to files named by a pattern.
pub struct SaveStreamedData {
    pattern: Option<Arc<str>>,
}

impl SaveStreamedData {
    /// An addon saving to files named by `pattern`; `None` or an empty one disables it.
    pub fn new(pattern: Option<String>) -> Self {
        SaveStreamedData {
            pattern: pattern.filter(|p| !p.is_empty()).map(Arc::from),
        }
    }

    /// An addon with the pattern in `INTERPOSE_SAVE_STREAMED_DATA`.
    pub fn from_env() -> Self {
        SaveStreamedData::new(std::env::var(PATTERN_VAR).ok())
    }

    /// A pass-through hook writing every chunk to the file for `direction` of `flow`.
    fn saver(&self, ctx: &Context, flow: &HttpFlow, direction: &str) -> Option<Stream> {
        let pattern = self.pattern.as_deref()?;
        let path = expand_home(&file_name(pattern, flow, direction));
        if let Some(parent) = path.parent() {
            if std::fs::create_dir_all(parent).is_err() {
                error!(
                    ctx,
                    "save_streamed_data: Failed to create directory: {}",
                    parent.display()
                );
            }
        }
        let mut file = match File::create(&path) {
            Ok(file) => Some(file),
            Err(e) => {
                error!(
                    ctx,
                    "save_streamed_data: Failed to open for writing: {}: {e}",
                    path.display()
                );
                return None;
            }
        };
        Some(Stream::with_hook(move |chunk: Body| {
            if chunk.is_empty() {
                // The end of the body: close the file.
                file = None;
            } else if let Some(f) = &mut file {
                if let Err(e) = f.write_all(&chunk) {
                    // A hook has no context to log through: stderr it is.
                    eprintln!(
                        "save_streamed_data: Failed to write to: {}: {e}",
                        path.display()
                    );
                    file = None;
                }
            }
            chunk
        }))
    }
}

#[addon]
impl Addon for SaveStreamedData {
    fn requestheaders(&self, ctx: &Context, flow: &mut HttpFlow) {
        if flow.request.stream.is_on() {
            if let Some(stream) = self.saver(ctx, flow, "req") {
                flow.request.stream = stream;
            }
        }
    }

    fn responseheaders(&self, ctx: &Context, flow: &mut HttpFlow) {
        let streamed = flow.response().is_some_and(|r| r.stream.is_on());
        if streamed {
            if let Some(stream) = self.saver(ctx, flow, "rsp") {
                if let Some(response) = flow.response_mut() {
                    response.stream = stream;
                }
            }
        }
    }
}

/// The file name `pattern` gives for `direction` (`req` or `rsp`) of `flow`.
pub fn file_name(pattern: &str, flow: &HttpFlow, direction: &str) -> String {
    let start = flow.request.timestamp_start;
    let tm = time::local_time(start);
    let client = flow.client_conn();
    let mut out = String::with_capacity(pattern.len() + 32);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'+') {
            chars.next();
            match chars.next() {
                // Python's str() of the float: the shortest text that reads back the same.
                Some('T') => out.push_str(&format!("{start:?}")),
                Some('D') => out.push_str(direction),
                Some('I') => out.push_str(&client.id.to_string()),
                Some('C') => {
                    let ip = client.peername.ip();
                    out.push_str(&ip.map(|ip| ip.to_string()).unwrap_or_default());
                }
                Some(other) => {
                    out.push_str("%+");
                    out.push(other);
                }
                None => out.push_str("%+"),
            }
            continue;
        }
        match chars.next() {
            Some(directive) => time::push_directive(&mut out, directive, &tm),
            None => out.push('%'),
        }
    }
    out
}

export_plugin!(addons = [SaveStreamedData::from_env()]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};
    use std::path::PathBuf;

    fn flow_at(timestamp: f64) -> HttpFlow {
        let mut flow = testing::flow_with_response();
        flow.request.timestamp_start = timestamp;
        flow
    }

    #[test]
    fn names_files_with_its_own_codes_and_strftime() {
        let flow = flow_at(1_700_000_000.25);
        let tm = time::local_time(1_700_000_000.25);
        let name = file_name("/tmp/%+C/%Y-%m-%d/%+D:%+T:%+I:%f%%%q", &flow, "rsp");
        let expected = format!(
            "/tmp/127.0.0.1/{}-{:02}-{:02}/rsp:1700000000.25:{}:250000%%q",
            tm.year, tm.month, tm.day, flow.client_conn.conn.id
        );
        assert_eq!(name, expected);
        assert_eq!(file_name("%+X%+", &flow, "req"), "%+X%+");
    }

    #[test]
    fn expands_the_home_folder() {
        let home = std::env::var("HOME").unwrap();
        assert_eq!(expand_home("~/a/b"), PathBuf::from(&home).join("a/b"));
        assert_eq!(expand_home("/x/~/y"), PathBuf::from("/x/~/y"));
    }

    #[test]
    fn saves_streamed_bodies_only() {
        let dir = std::env::temp_dir().join(format!("save_streamed_data-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let addon = SaveStreamedData::new(Some(format!("{}/%+D.bin", dir.display())));
        let tctx = TestContext::new();

        let mut buffered = flow_at(1.0);
        addon.responseheaders(tctx.ctx(), &mut buffered);
        assert!(!buffered.response.as_ref().unwrap().stream.has_hook());

        let mut streamed = flow_at(1.0);
        streamed.response.as_mut().unwrap().stream = Stream::on();
        addon.responseheaders(tctx.ctx(), &mut streamed);
        let stream = &mut streamed.response.as_mut().unwrap().stream;
        for chunk in ["ab", "cd", ""] {
            let out = stream.call_hook(Body::from(chunk)).unwrap();
            assert_eq!(&out[..], chunk.as_bytes(), "passed through unchanged");
        }
        assert_eq!(
            std::fs::read_to_string(dir.join("rsp.bin")).unwrap(),
            "abcd"
        );
        assert!(!dir.join("req.bin").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
