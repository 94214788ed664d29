//! `save_stream_file` paths with strftime patterns, as mitmproxy formats them (with the
//! local time, for each flow): `-w "flows-%Y-%m-%d.mitm"` starts a new file each day.
//!
//! The directives: `%Y %y %m %d %H %M %S %j %a %A %b %B %p %%` (others are kept as written).

/// A broken-down time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tm {
    /// The year, e.g. 2026.
    pub year: i32,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    /// 0 to 23.
    pub hour: u32,
    /// 0 to 59.
    pub minute: u32,
    /// 0 to 60.
    pub second: u32,
    /// 0 (Sunday) to 6.
    pub weekday: u32,
    /// 0 to 365.
    pub yearday: u32,
}

/// Whether `spec` has a directive to format (else it names one fixed file).
pub fn is_pattern(spec: &str) -> bool {
    spec.contains('%')
}

/// `pattern` with its directives replaced by parts of `tm`.
pub fn format(pattern: &str, tm: &Tm) -> String {
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
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let day = DAYS[tm.weekday as usize % 7];
        let month = MONTHS[(tm.month as usize + 11) % 12];
        match chars.next() {
            Some('Y') => out.push_str(&tm.year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", tm.year.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{:02}", tm.month)),
            Some('d') => out.push_str(&format!("{:02}", tm.day)),
            Some('H') => out.push_str(&format!("{:02}", tm.hour)),
            Some('M') => out.push_str(&format!("{:02}", tm.minute)),
            Some('S') => out.push_str(&format!("{:02}", tm.second)),
            Some('j') => out.push_str(&format!("{:03}", tm.yearday + 1)),
            Some('a') => out.push_str(&day[..3]),
            Some('A') => out.push_str(day),
            Some('b') => out.push_str(&month[..3]),
            Some('B') => out.push_str(month),
            Some('p') => out.push_str(if tm.hour < 12 { "AM" } else { "PM" }),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// The local time at `secs` since the Unix epoch (UTC where the local zone is unknown).
pub fn local_time(secs: i64) -> Tm {
    #[cfg(unix)]
    {
        let time = secs as libc::time_t;
        // SAFETY: `tm` is plain data that localtime_r fills; both pointers are valid for the
        // call.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: as above; localtime_r is the thread-safe variant.
        if !unsafe { libc::localtime_r(&time, &mut tm) }.is_null() {
            return Tm {
                year: tm.tm_year + 1900,
                month: (tm.tm_mon + 1) as u32,
                day: tm.tm_mday as u32,
                hour: tm.tm_hour as u32,
                minute: tm.tm_min as u32,
                second: tm.tm_sec as u32,
                weekday: tm.tm_wday as u32,
                yearday: tm.tm_yday as u32,
            };
        }
    }
    utc_time(secs)
}

/// The UTC time at `secs` since the Unix epoch.
pub fn utc_time(secs: i64) -> Tm {
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = interpose_plugin_abi::time::civil_from_days(days);
    let year = year as i32;
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    const BEFORE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yearday = BEFORE[month as usize - 1] + day - 1 + u32::from(leap && month > 2);
    Tm {
        year,
        month,
        day,
        hour: rest / 3600,
        minute: rest / 60 % 60,
        second: rest % 60,
        weekday: (days + 4).rem_euclid(7) as u32,
        yearday,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_directives() {
        // 2026-11-25 20:05:09 UTC, a Wednesday, day 329 of the year.
        let tm = utc_time(1_795_637_109);
        assert_eq!(
            tm,
            Tm {
                year: 2026,
                month: 11,
                day: 25,
                hour: 20,
                minute: 5,
                second: 9,
                weekday: 3,
                yearday: 328,
            }
        );
        assert_eq!(
            format("+/tmp/%Y/%m-%d_%H%M%S-%j-%a-%b-%y-%p-%%-%q.mitm", &tm),
            "+/tmp/2026/11-25_200509-329-Wed-Nov-26-PM-%-%q.mitm"
        );
        assert!(is_pattern("a-%S") && !is_pattern("plain.mitm"));
        assert_eq!(utc_time(0).weekday, 4, "1970-01-01 was a Thursday");
        assert_eq!(utc_time(951_782_400).month, 2, "2000-02-29");
        assert_eq!(utc_time(951_782_400).day, 29);
    }
}
