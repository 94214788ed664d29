//! HAR 1.2 export (mitmproxy's `addons/savehar.py`): one entry per HTTP flow, written as JSON
//! by hand.

use std::{collections::HashSet, fmt::Write};

use abi_stable::std_types::ROption;
use interpose_plugin_abi::{HostPort, HttpFlow, Request, Uuid, WebSocketMessageType};

use super::pem::base64_encode;

/// Appends the HAR entry of `flow` as one JSON object.
///
/// `timings.connect` and `ssl` are -1 for a reused server connection; without the other
/// entries to look at, a connection counts as reused when its TCP handshake finished before
/// the request started ([`har_entry_with`] tracks connections exactly, as mitmproxy does).
pub fn har_entry(flow: &HttpFlow, out: &mut String) {
    let reused = match &flow.server_conn {
        ROption::RSome(server) => matches!(
            server.timestamp_tcp_setup,
            ROption::RSome(t) if t < flow.request.timestamp_start
        ),
        ROption::RNone => false,
    };
    entry(flow, reused, out);
}

/// Appends the HAR entry of `flow`, counting a server connection as reused if its id is in
/// `servers_seen` (and adding it there), as mitmproxy does across one export.
pub fn har_entry_with(flow: &HttpFlow, servers_seen: &mut HashSet<Uuid>, out: &mut String) {
    let reused = match &flow.server_conn {
        ROption::RSome(server) => {
            !servers_seen.insert(server.id) || server.timestamp_tcp_setup.is_none()
        }
        ROption::RNone => false,
    };
    entry(flow, reused, out);
}

/// The whole HAR document around `entries` (from [`har_entry`]).
pub fn har_document(entries: &[String], creator_version: &str) -> String {
    let mut out = String::with_capacity(entries.iter().map(|e| e.len() + 1).sum::<usize>() + 128);
    out.push_str(r#"{"log":{"version":"1.2","creator":{"name":"interpose","version":"#);
    json_str(creator_version, &mut out);
    out.push_str(r#","comment":""},"pages":[],"entries":["#);
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(entry);
    }
    out.push_str("]}}");
    out
}

/// Appends `text` as a JSON string.
pub fn json_str(text: &str, out: &mut String) {
    out.push('"');
    let mut plain = 0;
    for (i, c) in text.char_indices() {
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => "",
            _ => continue,
        };
        out.push_str(&text[plain..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push_str(escape);
        }
        plain = i + c.len_utf8();
    }
    out.push_str(&text[plain..]);
    out.push('"');
}

/// Appends a JSON number; NaN and infinities, which JSON lacks, as 0.
fn json_f64(value: f64, out: &mut String) {
    if value.is_finite() {
        let _ = write!(out, "{value:?}");
    } else {
        out.push('0');
    }
}

fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// `{"name":..,"value":..}` objects.
fn name_values<'a>(
    pairs: impl Iterator<Item = (&'a str, std::borrow::Cow<'a, str>)>,
    out: &mut String,
) {
    out.push('[');
    for (i, (name, value)) in pairs.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"name":"#);
        json_str(name, out);
        out.push_str(r#","value":"#);
        json_str(&value, out);
        out.push('}');
    }
    out.push(']');
}

fn headers_json(headers: &interpose_plugin_abi::Headers, out: &mut String) {
    name_values(headers.iter().map(|(n, v)| (n, lossy(v))), out);
}

/// The size of the header block as sent on an HTTP/1 connection (`name: value\r\n` each).
fn headers_size(headers: &interpose_plugin_abi::Headers) -> usize {
    headers.iter().map(|(n, v)| n.len() + 2 + v.len() + 2).sum()
}

fn owned_pairs(pairs: &[(String, String)], out: &mut String) {
    name_values(
        pairs
            .iter()
            .map(|(k, v)| (k.as_str(), std::borrow::Cow::Borrowed(v.as_str()))),
        out,
    );
}

/// Cookies of the request's `Cookie` headers.
fn request_cookies(request: &Request) -> Vec<(String, String)> {
    let mut cookies = Vec::new();
    for value in request.headers.get_all_bytes("cookie") {
        for part in lossy(value).split(';') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            cookies.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    cookies
}

/// Cookies of `Set-Cookie` headers, with the attributes mitmproxy exports.
fn response_cookies(headers: &interpose_plugin_abi::Headers, out: &mut String) {
    out.push('[');
    let mut first = true;
    for value in headers.get_all_bytes("set-cookie") {
        let value = lossy(value);
        let mut parts = value.split(';');
        let Some((name, val)) = parts.next().and_then(|p| p.split_once('=')) else {
            continue;
        };
        let (mut path, mut domain, mut http_only, mut secure, mut same_site) =
            ("/".to_string(), String::new(), false, false, None);
        for attr in parts {
            let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "path" => path = v.trim().to_string(),
                "domain" => domain = v.trim().to_string(),
                "httponly" => http_only = true,
                "secure" => secure = true,
                "samesite" => same_site = Some(v.trim().to_string()),
                _ => {}
            }
        }
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(r#"{"name":"#);
        json_str(name.trim(), out);
        out.push_str(r#","value":"#);
        json_str(val.trim(), out);
        out.push_str(r#","path":"#);
        json_str(&path, out);
        out.push_str(r#","domain":"#);
        json_str(&domain, out);
        let _ = write!(out, r#","httpOnly":{http_only},"secure":{secure}"#);
        if let Some(same_site) = same_site {
            out.push_str(r#","sameSite":"#);
            json_str(&same_site, out);
        }
        out.push('}');
    }
    out.push(']');
}

/// Whether `data` looks binary, as mitmproxy's `is_mostly_bin`: over 30% control bytes in
/// the first 100.
fn mostly_binary(data: &[u8]) -> bool {
    let head = &data[..data.len().min(100)];
    !head.is_empty()
        && head
            .iter()
            .filter(|&&b| b < 9 || (14..32).contains(&b) || b > 126)
            .count()
            * 10
            > head.len() * 3
}

/// `text` (and `encoding: base64` for binary or non-UTF-8 bodies) of a content object.
fn content_text(data: &[u8], out: &mut String) {
    match std::str::from_utf8(data) {
        Ok(text) if !mostly_binary(data) || data.is_empty() => {
            out.push_str(r#","text":"#);
            json_str(text, out);
        }
        _ => {
            out.push_str(r#","text":""#);
            base64_encode(data, out);
            out.push_str(r#"","encoding":"base64""#);
        }
    }
}

/// ISO-8601 in UTC with microseconds, as Python's `datetime.isoformat()`:
/// `2024-11-25T03:08:49.095311+00:00`.
pub fn iso8601(timestamp: f64, out: &mut String) {
    let micros = (timestamp * 1e6).round() as i64;
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = interpose_plugin_abi::time::civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}+00:00",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
}

/// The URL as mitmproxy's `pretty_url`: the `Host` header's host when there is one.
fn pretty_url(request: &Request) -> String {
    if request.method.eq_ignore_ascii_case("CONNECT") {
        return format!("https://{}/", HostPort(&request.host, request.port));
    }
    let host = request.pretty_host();
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    if request.port == interpose_plugin_abi::flow::default_port(&request.scheme) {
        format!("{}://{}{}", request.scheme, host, request.path)
    } else {
        format!(
            "{}://{}:{}{}",
            request.scheme, host, request.port, request.path
        )
    }
}

fn entry(flow: &HttpFlow, reused: bool, out: &mut String) {
    let request = &flow.request;
    let (connect, ssl) = match &flow.server_conn {
        ROption::RSome(server) if !reused => {
            match (server.timestamp_tcp_setup, server.timestamp_start) {
                (ROption::RSome(tcp), ROption::RSome(start)) => {
                    let ssl = match server.timestamp_tls_setup {
                        ROption::RSome(tls) => 1000.0 * (tls - tcp),
                        ROption::RNone => -1.0,
                    };
                    (1000.0 * (tcp - start), ssl)
                }
                _ => (-1.0, -1.0),
            }
        }
        _ => (-1.0, -1.0),
    };
    let send = match request.timestamp_end {
        ROption::RSome(end) => 1000.0 * (end - request.timestamp_start),
        ROption::RNone => 0.0,
    };
    let (wait, receive) = match (&flow.response, request.timestamp_end) {
        (ROption::RSome(r), req_end) => (
            match req_end {
                ROption::RSome(end) => 1000.0 * (r.timestamp_start - end),
                ROption::RNone => 0.0,
            },
            match r.timestamp_end {
                ROption::RSome(end) => 1000.0 * (end - r.timestamp_start),
                ROption::RNone => 0.0,
            },
        ),
        _ => (0.0, 0.0),
    };
    let time: f64 = [connect, ssl, send, receive, wait]
        .iter()
        .filter(|t| **t >= 0.0)
        .sum();

    out.push_str(r#"{"startedDateTime":""#);
    iso8601(request.timestamp_start, out);
    out.push_str(r#"","time":"#);
    json_f64(time, out);

    out.push_str(r#","request":{"method":"#);
    json_str(&request.method, out);
    out.push_str(r#","url":"#);
    json_str(&pretty_url(request), out);
    out.push_str(r#","httpVersion":"#);
    json_str(request.http_version.as_str(), out);
    out.push_str(r#","cookies":"#);
    owned_pairs(&request_cookies(request), out);
    out.push_str(r#","headers":"#);
    headers_json(&request.headers, out);
    out.push_str(r#","queryString":"#);
    owned_pairs(request.query().fields(), out);
    let _ = write!(
        out,
        r#","headersSize":{},"bodySize":{}"#,
        headers_size(&request.headers),
        request.content.len()
    );
    if matches!(request.method.as_str(), "POST" | "PUT" | "PATCH") {
        let mime = request.headers.get("content-type").unwrap_or("");
        out.push_str(r#","postData":{"mimeType":"#);
        json_str(mime, out);
        out.push_str(r#","text":"#);
        json_str(&lossy(&request.content), out);
        out.push_str(r#","params":"#);
        let params = if mime
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
        {
            interpose_plugin_abi::forms::decode_urlencoded(&lossy(&request.content)).into_fields()
        } else {
            Vec::new()
        };
        owned_pairs(&params, out);
        out.push('}');
    }
    out.push('}');

    out.push_str(r#","response":"#);
    match &flow.response {
        ROption::RSome(r) => {
            let _ = write!(out, r#"{{"status":{},"statusText":"#, r.status_code);
            json_str(&r.reason, out);
            out.push_str(r#","httpVersion":"#);
            json_str(r.http_version.as_str(), out);
            out.push_str(r#","cookies":"#);
            response_cookies(&r.headers, out);
            out.push_str(r#","headers":"#);
            headers_json(&r.headers, out);
            // Bodies are kept as received, so nothing is decompressed here.
            let _ = write!(
                out,
                r#","content":{{"size":{},"compression":0,"mimeType":"#,
                r.content.len()
            );
            json_str(r.headers.get("content-type").unwrap_or(""), out);
            content_text(&r.content, out);
            out.push_str(r#"},"redirectURL":"#);
            json_str(r.headers.get("location").unwrap_or(""), out);
            let _ = write!(
                out,
                r#","headersSize":{},"bodySize":{}}}"#,
                headers_size(&r.headers),
                r.content.len()
            );
        }
        ROption::RNone => {
            out.push_str(
                r#"{"status":0,"statusText":"","httpVersion":"","headers":[],"cookies":[],"content":{},"redirectURL":"","headersSize":-1,"bodySize":-1,"_transferSize":0,"_error":"#,
            );
            match &flow.error {
                ROption::RSome(e) => json_str(&e.msg, out),
                ROption::RNone => out.push_str("null"),
            }
            out.push('}');
        }
    }

    out.push_str(r#","cache":{},"timings":{"connect":"#);
    json_f64(connect, out);
    out.push_str(r#","ssl":"#);
    json_f64(ssl, out);
    out.push_str(r#","send":"#);
    json_f64(send, out);
    out.push_str(r#","receive":"#);
    json_f64(receive, out);
    out.push_str(r#","wait":"#);
    json_f64(wait, out);
    out.push('}');

    if let ROption::RSome(server) = &flow.server_conn {
        if let Some(ip) = server.peername.ip() {
            out.push_str(r#","serverIPAddress":""#);
            let _ = write!(out, "{ip}");
            out.push('"');
        }
    }

    if let ROption::RSome(ws) = &flow.websocket {
        out.push_str(r#","_resourceType":"websocket","_webSocketMessages":["#);
        for (i, m) in ws.messages.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(r#"{"type":"#);
            out.push_str(if m.from_client {
                r#""send""#
            } else {
                r#""receive""#
            });
            out.push_str(r#","time":"#);
            json_f64(m.timestamp, out);
            let _ = write!(out, r#","opcode":{},"data":"#, m.type_ as u8);
            match m.type_ {
                WebSocketMessageType::Text => json_str(&lossy(&m.content), out),
                WebSocketMessageType::Binary => {
                    out.push('"');
                    base64_encode(&m.content, out);
                    out.push('"');
                }
            }
            out.push('}');
        }
        out.push(']');
    }
    out.push('}');
}
