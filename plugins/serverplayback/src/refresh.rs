//! Moving a replayed response's dates forward (mitmproxy's `Response.refresh`): `Date`,
//! `Expires` and `Last-Modified` in the HTTP date format, and the `Expires` of each
//! `Set-Cookie`, by the time since the response was saved. Header dates in other formats are
//! left as they are; a cookie expiry that is not a date is dropped, as mitmproxy drops it.

use interpose_plugin_abi::{
    cookies::{format_set_cookie_header, parse_set_cookie_header},
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
    let cookies: Vec<String> = response
        .headers
        .get_all("set-cookie")
        .map(|line| refresh_set_cookie(line, delta))
        .collect();
    if !cookies.is_empty() {
        response.headers.set_all("set-cookie", cookies);
    }
}

/// One `Set-Cookie` value with its `Expires` moved by `delta` (mitmproxy's
/// `refresh_set_cookie_header`); a value that does not parse is kept as it is.
fn refresh_set_cookie(line: &str, delta: f64) -> String {
    let mut parsed = parse_set_cookie_header(line);
    if parsed.len() != 1 {
        return line.to_string();
    }
    let (name, value, mut attrs) = parsed.remove(0);
    if name.is_empty() || value.as_deref().is_none_or(str::is_empty) {
        return line.to_string();
    }
    if let Some(expires) = attrs.get("expires") {
        match expires.and_then(parse_http_date) {
            Some(when) => attrs.set("expires", Some(&format_http_date(when + delta))),
            None => {
                attrs.remove("expires");
            }
        }
    }
    format_set_cookie_header(&name, value.as_deref(), &attrs)
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

    #[test]
    fn moves_cookie_expiry_dates() {
        let mut response = Response::make(
            200,
            "",
            &[
                (
                    "Set-Cookie",
                    "id=1; Expires=Sun, 06 Nov 1994 08:49:37 GMT; Path=/",
                ),
                ("Set-Cookie", "other=2; HttpOnly"),
            ],
        );
        response.timestamp_start = 784_111_777.0;
        refresh(&mut response, 784_111_777.0 + 3600.0);
        let cookies: Vec<&str> = response.headers.get_all("set-cookie").collect();
        assert_eq!(
            cookies,
            [
                "id=1; Expires=Sun, 06 Nov 1994 09:49:37 GMT; Path=/",
                "other=2; HttpOnly"
            ]
        );
        assert_eq!(refresh_set_cookie("x=1; Expires=soon", 10.0), "x=1");
    }
}
