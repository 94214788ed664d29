//! The proxy's log: mitmdump-style lines on stdout, `[HH:MM:SS.mmm] message` (UTC), with the
//! level named for anything but info and the addon named for lines an addon wrote.

use std::{
    fmt::{self, Write as _},
    sync::atomic::{AtomicU8, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use interpose_plugin_abi::Level;
use tracing::{field::Field, Event, Subscriber};
use tracing_subscriber::{
    fmt::{format::Writer, FmtContext, FormatEvent, FormatFields},
    registry::LookupSpan,
};

/// The most verbose level printed, shared with every addon's context so that addons skip
/// formatting lines nobody will see.
pub static ADDON_LOG_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// The tracing target of lines written by addons; they carry an `addon` field.
pub const ADDON_TARGET: &str = "addon";

/// Installs the global logger printing `level` and more severe lines.
pub fn init(level: Level) {
    ADDON_LOG_LEVEL.store(level as u8, Ordering::Relaxed);
    let filter = match level {
        Level::Error => tracing::Level::ERROR,
        Level::Warn => tracing::Level::WARN,
        Level::Info => tracing::Level::INFO,
        Level::Debug => tracing::Level::DEBUG,
    };
    // Only fails if a logger is already installed (a test calling `init` twice): keep it.
    let _ = tracing_subscriber::fmt()
        .with_max_level(filter)
        .with_writer(std::io::stdout)
        .event_format(LineFormat)
        .try_init();
}

/// Formats one event as a mitmdump-like line.
struct LineFormat;

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write_clock(&mut writer, SystemTime::now())?;
        let level = *event.metadata().level();
        if level != tracing::Level::INFO {
            write!(writer, "{}: ", level.as_str().to_ascii_lowercase())?;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let Some(addon) = &fields.addon {
            write!(writer, "{addon}: ")?;
        }
        writer.write_str(&fields.message)?;
        for (name, value) in &fields.rest {
            write!(writer, " {name}={value}")?;
        }
        writeln!(writer)
    }
}

fn write_clock(writer: &mut impl fmt::Write, now: SystemTime) -> fmt::Result {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs_today = since_epoch.as_secs() % 86_400;
    write!(
        writer,
        "[{:02}:{:02}:{:02}.{:03}] ",
        secs_today / 3600,
        secs_today / 60 % 60,
        secs_today % 60,
        since_epoch.subsec_millis()
    )
}

#[derive(Default)]
struct Fields {
    message: String,
    addon: Option<String>,
    rest: Vec<(&'static str, String)>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "addon" => self.addon = Some(value.to_string()),
            name => self.rest.push((name, value.to_string())),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            "addon" => self.addon = Some(format!("{value:?}")),
            name => self.rest.push((name, format!("{value:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn clock_is_time_of_day() {
        let mut out = String::new();
        let t = UNIX_EPOCH + Duration::from_millis(86_400_000 * 3 + 3_723_045);
        write_clock(&mut out, t).unwrap();
        assert_eq!(out, "[01:02:03.045] ");
    }
}
