//! Timestamps as mitmproxy keeps them: seconds since the Unix epoch, as `f64`; and their
//! calendar dates.
//!
//! ```
//! use interpose_plugin_abi::{testing, time};
//!
//! let flow = testing::flow_with_response();
//! let response = flow.response().unwrap();
//! let elapsed = response.timestamp_start - flow.request.timestamp_start;
//! assert!(elapsed >= 0.0 && time::now() >= response.timestamp_start);
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The current time in seconds since the Unix epoch (the unit of every `timestamp_*` field).
///
/// ```
/// use interpose_plugin_abi::{now, testing};
///
/// let flow = testing::flow();
/// let age = now() - flow.timestamp_created;
/// assert!(age >= 0.0 && age < 60.0);
/// ```
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A timestamp (seconds since the epoch, as in every `timestamp_*` field) as a
/// [`SystemTime`]; negative or non-finite values give the epoch.
///
/// ```
/// use interpose_plugin_abi::{testing, time};
/// use std::time::{Duration, SystemTime};
///
/// let flow = testing::flow();
/// let started = time::system_time(flow.request.timestamp_start);
/// assert!(SystemTime::now().duration_since(started).unwrap() < Duration::from_secs(60));
/// ```
pub fn system_time(timestamp: f64) -> SystemTime {
    match Duration::try_from_secs_f64(timestamp) {
        Ok(since) => UNIX_EPOCH + since,
        Err(_) => UNIX_EPOCH,
    }
}

/// The time between two timestamps (`end - start`) as a [`Duration`]; zero when `end` is
/// before `start`.
///
/// ```
/// use interpose_plugin_abi::{testing, time};
///
/// let flow = testing::flow_with_response();
/// let response = flow.response().unwrap();
/// let took = time::between(flow.request.timestamp_start, response.timestamp_start);
/// assert!(took.as_secs() < 60);
/// ```
pub fn between(start: f64, end: f64) -> Duration {
    Duration::try_from_secs_f64(end - start).unwrap_or_default()
}

/// The proleptic Gregorian date `(year, month 1-12, day 1-31)` of a count of days since
/// 1970-01-01 (Howard Hinnant's `civil_from_days`), for writing timestamps as dates.
///
/// ```
/// use interpose_plugin_abi::time::{civil_from_days, now};
///
/// let (year, month, day) = civil_from_days((now() / 86_400.0).floor() as i64);
/// assert!(year >= 2024 && (1..=12).contains(&month) && (1..=31).contains(&day));
/// assert_eq!(civil_from_days(19_723), (2024, 1, 1));
/// ```
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(super::civil_from_days(-1), (1969, 12, 31));
    }
}

/// A broken-down time: what [`local_time`] and [`utc_time`] give and [`strftime`] formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalTime {
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
    /// 0 to 999,999.
    pub micros: u32,
    /// 0 (Sunday) to 6.
    pub weekday: u32,
    /// 0 to 365.
    pub yearday: u32,
}

/// The local time at `timestamp` (seconds since the epoch, as every `timestamp_*` field);
/// UTC where the local zone is unknown.
///
/// ```
/// use interpose_plugin_abi::time::{local_time, now};
///
/// let tm = local_time(now());
/// assert!(tm.year >= 2024 && (1..=12).contains(&tm.month));
/// ```
pub fn local_time(timestamp: f64) -> LocalTime {
    let secs = timestamp.floor() as i64;
    #[cfg(unix)]
    {
        let time = secs as libc::time_t;
        // SAFETY: `tm` is plain data for localtime_r to fill.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid for the call; localtime_r is the thread-safe form.
        if !unsafe { libc::localtime_r(&time, &mut tm) }.is_null() {
            return LocalTime {
                year: tm.tm_year + 1900,
                month: (tm.tm_mon + 1) as u32,
                day: tm.tm_mday as u32,
                hour: tm.tm_hour as u32,
                minute: tm.tm_min as u32,
                second: tm.tm_sec as u32,
                micros: micros(timestamp),
                weekday: tm.tm_wday as u32,
                yearday: tm.tm_yday as u32,
            };
        }
    }
    utc_time(timestamp)
}

fn micros(timestamp: f64) -> u32 {
    ((timestamp - timestamp.floor()) * 1e6) as u32
}

/// The UTC time at `timestamp` (seconds since the epoch).
///
/// ```
/// use interpose_plugin_abi::time::utc_time;
///
/// let tm = utc_time(1_795_637_109.5); // 2026-11-25 20:05:09.5 UTC, a Wednesday
/// assert_eq!((tm.year, tm.month, tm.day, tm.hour, tm.minute, tm.second), (2026, 11, 25, 20, 5, 9));
/// assert_eq!((tm.micros, tm.weekday, tm.yearday), (500_000, 3, 328));
/// ```
pub fn utc_time(timestamp: f64) -> LocalTime {
    let secs = timestamp.floor() as i64;
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    let year = year as i32;
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    const BEFORE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    LocalTime {
        year,
        month,
        day,
        hour: rest / 3600,
        minute: rest / 60 % 60,
        second: rest % 60,
        micros: micros(timestamp),
        weekday: (days + 4).rem_euclid(7) as u32,
        yearday: BEFORE[month as usize - 1] + day - 1 + u32::from(leap && month > 2),
    }
}

/// `pattern` with its strftime directives replaced by parts of `tm`, as Python's
/// `time.strftime` writes them for mitmproxy's file name patterns: `%Y %y %m %d %H %M %S %f %j
/// %a %A %b %B %p %%` (others are kept as written).
///
/// ```
/// use interpose_plugin_abi::time::{strftime, utc_time};
///
/// let tm = utc_time(1_795_637_109.0);
/// assert_eq!(strftime("flows-%Y-%m-%d_%H%M%S-%a-%%-%q", &tm), "flows-2026-11-25_200509-Wed-%-%q");
/// ```
pub fn strftime(pattern: &str, tm: &LocalTime) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(directive) => push_directive(&mut out, directive, tm),
            None => out.push('%'),
        }
    }
    out
}

/// Appends what one strftime directive (the letter after `%`) gives for `tm`; an unknown one
/// is appended as written (`%q`). For patterns with codes of one's own besides strftime's.
///
/// ```
/// use interpose_plugin_abi::time::{push_directive, utc_time};
///
/// let mut out = String::new();
/// push_directive(&mut out, 'B', &utc_time(0.0));
/// assert_eq!(out, "January");
/// ```
pub fn push_directive(out: &mut String, directive: char, tm: &LocalTime) {
    use std::fmt::Write;
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
    let _ = match directive {
        'Y' => write!(out, "{}", tm.year),
        'y' => write!(out, "{:02}", tm.year.rem_euclid(100)),
        'm' => write!(out, "{:02}", tm.month),
        'd' => write!(out, "{:02}", tm.day),
        'H' => write!(out, "{:02}", tm.hour),
        'M' => write!(out, "{:02}", tm.minute),
        'S' => write!(out, "{:02}", tm.second),
        'f' => write!(out, "{:06}", tm.micros),
        'j' => write!(out, "{:03}", tm.yearday + 1),
        'a' => write!(out, "{}", &day[..3]),
        'A' => write!(out, "{day}"),
        'b' => write!(out, "{}", &month[..3]),
        'B' => write!(out, "{month}"),
        'p' => write!(out, "{}", if tm.hour < 12 { "AM" } else { "PM" }),
        '%' => write!(out, "%"),
        other => write!(out, "%{other}"),
    };
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, or a cookie's `Sun, 06-Nov-1994 08:49:37
/// GMT`) as seconds since the epoch; `None` for other forms.
///
/// ```
/// use interpose_plugin_abi::time::{format_http_date, parse_http_date};
///
/// let when = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
/// assert_eq!(when, 784_111_777.0);
/// assert_eq!(parse_http_date("Sun, 06-Nov-1994 08:49:37 GMT"), Some(when));
/// assert_eq!(format_http_date(when + 86_400.0), "Mon, 07 Nov 1994 08:49:37 GMT");
/// assert_eq!(parse_http_date("tomorrow"), None);
/// ```
pub fn parse_http_date(text: &str) -> Option<f64> {
    let text = text.replace('-', " ");
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, clock, zone] = parts.as_slice() else {
        return None;
    };
    if !zone.eq_ignore_ascii_case("GMT") {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? as i64 + 1;
    let day: i64 = day.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let mut hms = clock.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    Some((days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s) as f64)
}

/// `timestamp` (seconds since the epoch) as an HTTP date.
///
/// See the example on [`parse_http_date`].
pub fn format_http_date(timestamp: f64) -> String {
    strftime("%a, %d %b %Y %H:%M:%S GMT", &utc_time(timestamp))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
