//! `save_stream_file` paths with strftime patterns, as mitmproxy formats them (with the
//! local time, for each flow): `-w "flows-%Y-%m-%d.mitm"` starts a new file each day.
//!
//! The directives: `%Y %y %m %d %H %M %S %j %a %A %b %B %p %%` (others are kept as written).

pub use interpose_plugin_abi::time::{local_time, utc_time, LocalTime as Tm};

/// Whether `spec` has a directive to format (else it names one fixed file).
pub fn is_pattern(spec: &str) -> bool {
    spec.contains('%')
}

/// `pattern` with its directives replaced by parts of `tm`.
pub fn format(pattern: &str, tm: &Tm) -> String {
    interpose_plugin_abi::time::strftime(pattern, tm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_directives() {
        // 2026-11-25 20:05:09 UTC, a Wednesday, day 329 of the year.
        let tm = utc_time(1_795_637_109.0);
        assert_eq!(
            tm,
            Tm {
                year: 2026,
                month: 11,
                day: 25,
                hour: 20,
                minute: 5,
                second: 9,
                micros: 0,
                weekday: 3,
                yearday: 328,
            }
        );
        assert_eq!(
            format("+/tmp/%Y/%m-%d_%H%M%S-%j-%a-%b-%y-%p-%%-%q.mitm", &tm),
            "+/tmp/2026/11-25_200509-329-Wed-Nov-26-PM-%-%q.mitm"
        );
        assert!(is_pattern("a-%S") && !is_pattern("plain.mitm"));
        assert_eq!(utc_time(0.0).weekday, 4, "1970-01-01 was a Thursday");
        assert_eq!(utc_time(951_782_400.0).month, 2, "2000-02-29");
        assert_eq!(utc_time(951_782_400.0).day, 29);
    }
}
