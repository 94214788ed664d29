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

use std::{fs::File, io::Write, path::PathBuf, sync::Arc};

use interpose_plugin_abi::prelude::*;

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
    let tm = local_time(start);
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
            Some(directive) => strftime(&mut out, directive, &tm),
            None => out.push('%'),
        }
    }
    out
}

/// `~` or `~/...` at the start of `path` made absolute with the home folder.
fn expand_home(path: &str) -> PathBuf {
    let home = std::env::var_os("HOME");
    match (path.strip_prefix('~'), home) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            let mut full = PathBuf::from(home);
            full.push(rest.trim_start_matches('/'));
            full
        }
        _ => PathBuf::from(path),
    }
}

/// A broken-down local time.
struct Tm {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
    weekday: u32,
    yearday: u32,
}

/// Writes one strftime directive (`directive` is the letter after `%`); one this example
/// does not know is kept as written.
fn strftime(out: &mut String, directive: char, tm: &Tm) {
    const DAYS: [&str; 7] = [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let day = DAYS[tm.weekday as usize % 7];
    let month = MONTHS[(tm.month as usize + 11) % 12];
    let text = match directive {
        'Y' => tm.year.to_string(),
        'y' => format!("{:02}", tm.year.rem_euclid(100)),
        'm' => format!("{:02}", tm.month),
        'd' => format!("{:02}", tm.day),
        'H' => format!("{:02}", tm.hour),
        'M' => format!("{:02}", tm.minute),
        'S' => format!("{:02}", tm.second),
        'f' => format!("{:06}", tm.micros),
        'j' => format!("{:03}", tm.yearday + 1),
        'a' => day[..3].to_string(),
        'A' => day.to_string(),
        'b' => month[..3].to_string(),
        'B' => month.to_string(),
        'p' => (if tm.hour < 12 { "AM" } else { "PM" }).to_string(),
        '%' => "%".to_string(),
        other => format!("%{other}"),
    };
    out.push_str(&text);
}

/// The local time at `timestamp` (seconds since the epoch); UTC where the zone is unknown.
fn local_time(timestamp: f64) -> Tm {
    let secs = timestamp.floor() as i64;
    let micros = ((timestamp - timestamp.floor()) * 1e6) as u32;
    #[cfg(unix)]
    {
        let time = secs as libc::time_t;
        // SAFETY: `tm` is plain data for localtime_r to fill.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid for the call; localtime_r is the thread-safe form.
        if !unsafe { libc::localtime_r(&time, &mut tm) }.is_null() {
            return Tm {
                year: i64::from(tm.tm_year) + 1900,
                month: (tm.tm_mon + 1) as u32,
                day: tm.tm_mday as u32,
                hour: tm.tm_hour as u32,
                minute: tm.tm_min as u32,
                second: tm.tm_sec as u32,
                micros,
                weekday: tm.tm_wday as u32,
                yearday: tm.tm_yday as u32,
            };
        }
    }
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = interpose_plugin_abi::time::civil_from_days(days);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    const BEFORE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    Tm {
        year,
        month,
        day,
        hour: rest / 3600,
        minute: rest / 60 % 60,
        second: rest % 60,
        micros,
        weekday: (days + 4).rem_euclid(7) as u32,
        yearday: BEFORE[month as usize - 1] + day - 1 + u32::from(leap && month > 2),
    }
}

export_plugin!(addons = [SaveStreamedData::from_env()]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    fn flow_at(timestamp: f64) -> HttpFlow {
        let mut flow = testing::flow_with_response();
        flow.request.timestamp_start = timestamp;
        flow
    }

    #[test]
    fn names_files_with_its_own_codes_and_strftime() {
        let flow = flow_at(1_700_000_000.25);
        let tm = local_time(1_700_000_000.25);
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
