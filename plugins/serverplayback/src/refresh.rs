//! Moving a replayed response's dates forward (mitmproxy's `Response.refresh`): `Date`,
//! `Expires` and `Last-Modified` in the HTTP date format, by the time since the response was
//! saved. Dates in other formats, and Set-Cookie expiry dates, are left as they are.

use interpose_plugin_abi::{
    time::{format_http_date, parse_http_date},
    Response,
};

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

#[cfg(test)]
mod tests {
    use super::*;

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
