//! Built-in addon `dumper`: mitmdump's console output. Each finished flow (at `response` or
//! `error`) is printed as a request line and a response or error line, as mitmdump prints
//! them; `flow_detail` adds headers and trailers (2), bodies cut to
//! `content_view_lines_cutoff` lines (3) or whole (4), and 0 prints nothing. `dumper_filter`
//! (the command line's filter expression) limits which flows are shown, `showhost` uses the
//! Host header in URLs. Colours only when stdout is a terminal.
//!
//! Lines are written by a thread of the addon's own, so a slow terminal never holds up a
//! flow; if it falls too far behind, flows are skipped and the count is printed. The options
//! may change while the proxy runs (`interpose ctl set flow_detail=2`): the next flow is
//! shown with them.

pub mod format;
pub mod output;

use std::{
    io::IsTerminal,
    sync::{
        atomic::{AtomicU8, Ordering},
        Arc, OnceLock, RwLock,
    },
};

use interpose_plugin_abi::{prelude::*, Filter};

pub use format::Style;
use output::Output;

/// What the options say about the output: the style and the filter. Rebuilt when they change.
struct View {
    style: Style,
    filter: Option<Filter>,
}

/// Prints flows as mitmdump does.
pub struct Dumper {
    /// The writer, started on first use.
    output: OnceLock<(Output, bool)>,
    /// The current view of the options (`flow_detail`, `dumper_filter`, `showhost`,
    /// `content_view_lines_cutoff`), read per flow and replaced by `configure`.
    view: RwLock<Option<Arc<View>>>,
    /// The view's `flow_detail` (5 before there is a view): with 0 (`-q`), flows return at
    /// once, without touching the lock.
    detail: AtomicU8,
    /// A writer to use instead of stdout (tests).
    sink: RwLock<Option<Box<dyn std::io::Write + Send + Sync>>>,
}

impl Default for Dumper {
    fn default() -> Self {
        Dumper {
            output: OnceLock::new(),
            view: RwLock::new(None),
            detail: AtomicU8::new(NO_VIEW),
            sink: RwLock::new(None),
        }
    }
}

/// `Dumper::detail` before there is a view.
const NO_VIEW: u8 = 5;

impl Dumper {
    /// A dumper writing to `sink` instead of stdout.
    pub fn with_sink(sink: Box<dyn std::io::Write + Send + Sync>) -> Self {
        Dumper {
            sink: RwLock::new(Some(sink)),
            ..Dumper::default()
        }
    }

    /// Makes `view` the current one.
    fn set_view(&self, view: Arc<View>) {
        self.detail.store(view.style.detail, Ordering::Relaxed);
        if let Ok(mut slot) = self.view.write() {
            *slot = Some(view);
        }
    }

    /// The writer and whether it takes colours (a terminal), started on first use.
    fn output(&self) -> &(Output, bool) {
        self.output.get_or_init(|| {
            let sink = self.sink.write().ok().and_then(|mut s| s.take());
            let (sink, colour): (Box<dyn std::io::Write + Send>, bool) = match sink {
                Some(sink) => (sink, false),
                None => (Box::new(std::io::stdout()), std::io::stdout().is_terminal()),
            };
            (Output::start(sink), colour)
        })
    }

    /// Builds the view from the current options.
    fn build_view(&self, ctx: &Context) -> Arc<View> {
        let number = |name: &str| ctx.option(name).and_then(|v| v.parse::<usize>().ok());
        let detail = number("flow_detail").unwrap_or(1).min(4) as u8;
        let filter = ctx.filter_option("dumper_filter").unwrap_or_else(|e| {
            error!(ctx, "{e}");
            None
        });
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|w| w.parse::<usize>().ok())
            .unwrap_or(80);
        let style = Style {
            detail,
            showhost: ctx.option("showhost").as_deref() == Some("true"),
            cutoff: number("content_view_lines_cutoff").unwrap_or(512),
            colour: self.output().1,
            url_limit: width.saturating_sub(25).max(50),
        };
        Arc::new(View { style, filter })
    }

    /// The current view, built from the options on first use.
    fn view(&self, ctx: &Context) -> Arc<View> {
        if let Some(view) = self.view.read().ok().and_then(|v| v.clone()) {
            return view;
        }
        let view = self.build_view(ctx);
        self.set_view(Arc::clone(&view));
        view
    }

    fn echo(&self, ctx: &Context, flow: &HttpFlow) {
        self.echo_with(ctx, flow, |text, style| {
            format::write_flow(text, style, flow)
        });
    }

    /// Prints what `write` makes of `flow`, when the view shows it.
    fn echo_with(&self, ctx: &Context, flow: &HttpFlow, write: impl FnOnce(&mut String, &Style)) {
        if self.detail.load(Ordering::Relaxed) == 0 {
            return;
        }
        let view = self.view(ctx);
        if view.style.detail == 0 {
            return;
        }
        if let Some(filter) = &view.filter {
            if !filter.matches(flow) {
                return;
            }
        }
        let mut text = String::with_capacity(160);
        write(&mut text, &view.style);
        if !text.is_empty() {
            self.output().0.send(text);
        }
    }
}

/// The options the dumper's view is made of.
const VIEW_OPTIONS: [&str; 4] = [
    "flow_detail",
    "dumper_filter",
    "showhost",
    "content_view_lines_cutoff",
];

#[addon]
impl Addon for Dumper {
    fn name(&self) -> String {
        "dumper".to_string()
    }

    fn load(&self, ctx: &Context) {
        ctx.add_option(
            "flow_detail",
            1i64,
            "How much of each flow the console shows: 0 nothing, 1 a request and a response \
             line, 2 also headers and trailers, 3 also bodies cut to content_view_lines_cutoff \
             lines, 4 whole bodies.",
        );
        ctx.add_option::<Option<String>>(
            "dumper_filter",
            None,
            "Only flows matching this filter expression are shown on the console (the command \
             line's filter expression sets it).",
        );
        ctx.add_option(
            "showhost",
            false,
            "Show URLs with the Host header's name instead of the address connected to.",
        );
        ctx.add_option(
            "content_view_lines_cutoff",
            512i64,
            "Body lines shown at flow_detail 3.",
        );
    }

    fn configure(&self, ctx: &Context, data: &mut ConfigureData) {
        if data.contains("flow_detail") && ctx.get_option::<i64>("flow_detail") > 4 {
            data.reject("flow_detail: expected an integer from 0 to 4");
        } else if data.contains("content_view_lines_cutoff")
            && ctx.get_option::<i64>("content_view_lines_cutoff") < 1
        {
            data.reject("content_view_lines_cutoff: expected an integer of at least 1");
        } else if data.contains("dumper_filter") {
            if let Err(why) = ctx.filter_option("dumper_filter") {
                data.reject(why);
            }
        }
        // At startup and whenever one changes (`interpose ctl set flow_detail=2`), the next
        // flow is shown with the new options.
        if data.rejection().is_none() && VIEW_OPTIONS.iter().any(|name| data.contains(name)) {
            self.set_view(self.build_view(ctx));
        }
    }

    fn running(&self, ctx: &Context) {
        self.view(ctx);
    }

    fn response(&self, ctx: &Context, flow: &mut HttpFlow) {
        self.echo(ctx, flow);
    }

    fn error(&self, ctx: &Context, flow: &mut HttpFlow) {
        self.echo(ctx, flow);
    }

    fn websocket_message(&self, ctx: &Context, flow: &mut HttpFlow) {
        let Some(message) = flow.websocket().and_then(|ws| ws.messages().last()) else {
            return;
        };
        self.echo_with(ctx, flow, |text, style| {
            format::write_websocket_message(text, style, flow, message)
        });
    }

    fn websocket_end(&self, ctx: &Context, flow: &mut HttpFlow) {
        self.echo_with(ctx, flow, |text, style| {
            format::write_websocket_end(text, style, flow)
        });
    }

    fn done(&self, ctx: &Context) {
        if let Some((output, _)) = self.output.get() {
            output.flush();
            let skipped = output.skipped();
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
