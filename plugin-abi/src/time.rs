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
