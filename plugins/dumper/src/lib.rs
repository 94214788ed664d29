//! Built-in addon `dumper`: mitmdump's console output. Each finished flow (at `response` or
//! `error`) is printed as a request line and a response or error line, as mitmdump prints
//! them; `flow_detail` adds headers and trailers (2), bodies cut to
//! `content_view_lines_cutoff` lines (3) or whole (4), and 0 prints nothing. `dumper_filter`
//! (the command line's filter expression) limits which flows are shown, `showhost` uses the
//! Host header in URLs. Colours only when stdout is a terminal.
//!
//! Lines are written by a thread of the addon's own, so a slow terminal never holds up a
//! flow; if it falls too far behind, flows are skipped and the count is printed.

pub mod format;
pub mod output;

use std::{
    io::IsTerminal,
    sync::{OnceLock, RwLock},
};

use interpose_plugin_abi::{prelude::*, Filter};

pub use format::Style;
use output::Output;

/// What `running` configured: the style, the filter and the writer.
struct Configured {
    style: Style,
    filter: Option<Filter>,
    output: Output,
}

/// Prints flows as mitmdump does.
#[derive(Default)]
pub struct Dumper {
    configured: OnceLock<Configured>,
    /// A writer to use instead of stdout (tests).
    sink: RwLock<Option<Box<dyn std::io::Write + Send + Sync>>>,
}

impl Dumper {
    /// A dumper writing to `sink` instead of stdout.
    pub fn with_sink(sink: Box<dyn std::io::Write + Send + Sync>) -> Self {
        Dumper {
            configured: OnceLock::new(),
            sink: RwLock::new(Some(sink)),
        }
    }

    /// Reads the options (once): `flow_detail`, `dumper_filter`, `showhost`,
    /// `content_view_lines_cutoff`.
    fn configure(&self, ctx: &Context) -> &Configured {
        self.configured.get_or_init(|| {
            let number = |name: &str| ctx.option(name).and_then(|v| v.parse::<usize>().ok());
            let detail = number("flow_detail").unwrap_or(1).min(4) as u8;
            let filter = ctx.filter_option("dumper_filter").unwrap_or_else(|e| {
                error!(ctx, "{e}");
                None
            });
            let sink = self.sink.write().ok().and_then(|mut s| s.take());
            let (sink, colour): (Box<dyn std::io::Write + Send>, bool) = match sink {
                Some(sink) => (sink, false),
                None => (Box::new(std::io::stdout()), std::io::stdout().is_terminal()),
            };
            let width = std::env::var("COLUMNS")
                .ok()
                .and_then(|w| w.parse::<usize>().ok())
                .unwrap_or(80);
            let style = Style {
                detail,
                showhost: ctx.option("showhost").as_deref() == Some("true"),
                cutoff: number("content_view_lines_cutoff").unwrap_or(512),
                colour,
                url_limit: width.saturating_sub(25).max(50),
            };
            Configured {
                style,
                filter,
                output: Output::start(sink),
            }
        })
    }

    fn echo(&self, ctx: &Context, flow: &HttpFlow) {
        let configured = self.configure(ctx);
        if configured.style.detail == 0 {
            return;
        }
        if let Some(filter) = &configured.filter {
            if !filter.matches(flow) {
                return;
            }
        }
        let mut text = String::with_capacity(160);
        format::write_flow(&mut text, &configured.style, flow);
        // Only flows read from a file carry messages (live WebSocket traffic is relayed
        // without events for now).
        format::write_websocket(&mut text, &configured.style, flow);
        configured.output.send(text);
    }
}

#[addon]
impl Addon for Dumper {
    fn name(&self) -> String {
        "dumper".to_string()
    }

    fn running(&self, ctx: &Context) {
        self.configure(ctx);
    }

    fn response(&self, ctx: &Context, flow: &mut HttpFlow) {
        self.echo(ctx, flow);
    }

    fn error(&self, ctx: &Context, flow: &mut HttpFlow) {
        self.echo(ctx, flow);
    }

    fn done(&self, ctx: &Context) {
        if let Some(configured) = self.configured.get() {
            configured.output.flush();
            let skipped = configured.output.skipped();
            if skipped > 0 {
                warn!(
                    ctx,
                    "{skipped} flows were not shown: the output was slower than the traffic"
                );
            }
        }
    }
}

export_plugin!(addons = [Dumper::default()]);

#[cfg(test)]
mod tests;
