//! Moving a replayed response's dates forward (mitmproxy's `Response.refresh`): `Date`,
//! `Expires` and `Last-Modified` in the HTTP date format, by the time since the response was
//! saved. Dates in other formats, and Set-Cookie expiry dates, are left as they are.

use interpose_plugin_abi::{time, Response};

/// Moves the response's date headers forward by `now - response.timestamp_start`.
pub fn refresh(response: &mut Response, now: f64) {
    let delta = now - response.timestamp_start;
    for name in ["date", "expires", "last-modified"] {
        let Some(when) = response.headers.get(name).and_then(parse_http_date) else {
            continue;
        };
        let moved = format_http_date(when + delta);
        response.headers.insert(name, moved);
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110's IMF-fixdate) as seconds since the epoch.
pub fn parse_http_date(text: &str) -> Option<f64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, clock, zone] = parts.as_slice() else {
        return None;
    };
    if *zone != "GMT" {
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

/// An HTTP date for `timestamp` (seconds since the epoch).
pub fn format_http_date(timestamp: f64) -> String {
    time::strftime("%a, %d %b %Y %H:%M:%S GMT", &time::utc_time(timestamp))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_round_trip() {
        let when = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(when, 784_111_777.0);
        assert_eq!(format_http_date(when), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
    }

    #[test]
    fn moves_dates_by_the_time_since_saving() {
        let mut response = Response::make(200, "", &[("Date", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        response.headers.insert("Expires", "never");
        response.timestamp_start = 784_111_777.0;
        refresh(&mut response, 784_111_777.0 + 86_400.0);
        assert_eq!(
            response.headers.get("date"),
            Some("Mon, 07 Nov 1994 08:49:37 GMT")
        );
        assert_eq!(response.headers.get("expires"), Some("never"));
    }
}
