//! The text of a flow as mitmdump prints it: the request line, the response (or error) line,
//! and at higher detail levels the headers, bodies and trailers.

use std::fmt::Write as _;

use interpose_plugin_abi::{Headers, HttpFlow, HttpVersion, ReplaySide, SocketAddress};

/// How a flow is shown (the options the dumper reads).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Style {
    /// `flow_detail`: 1 the lines, 2 + headers and trailers, 3 + bodies cut to
    /// `cutoff` lines, 4 + whole bodies.
    pub detail: u8,
    /// `showhost`: URLs use the Host header instead of the address connected to.
    pub showhost: bool,
    /// `content_view_lines_cutoff`: body lines shown at detail 3.
    pub cutoff: usize,
    /// Terminal colours (only when stdout is a terminal).
    pub colour: bool,
    /// Characters a URL may take at detail 1 before it is cut (the terminal's width − 25,
    /// at least 50).
    pub url_limit: usize,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            detail: 1,
            showhost: false,
            cutoff: 512,
            colour: false,
            url_limit: 80 - 25,
        }
    }
}

/// ANSI styles, as mitmdump's `click` styles.
#[derive(Clone, Copy)]
enum Paint {
    Bold,
    Green,
    Red,
    Magenta,
    Yellow,
    Blue,
    Dim,
}

impl Paint {
    fn code(self) -> &'static str {
        match self {
            Paint::Bold => "\x1b[1m",
            Paint::Green => "\x1b[32m\x1b[1m",
            Paint::Red => "\x1b[31m\x1b[1m",
            Paint::Magenta => "\x1b[35m\x1b[1m",
            Paint::Yellow => "\x1b[33m\x1b[1m",
            Paint::Blue => "\x1b[34m",
            Paint::Dim => "\x1b[2m",
        }
    }
}

const RESET: &str = "\x1b[0m";

/// Appends `text` to `out`, painted when colours are on.
fn paint(out: &mut String, style: &Style, paint: Paint, text: &str) {
    if style.colour {
        out.push_str(paint.code());
        out.push_str(text);
        out.push_str(RESET);
    } else {
        out.push_str(text);
    }
}

/// A client or server address as mitmproxy shows it: `ip:port`, `[v6]:port`, an
/// IPv4-mapped IPv6 address as IPv4, `*:port` for an unspecified address.
pub fn format_address(address: &SocketAddress) -> String {
    match address.get() {
        None => "<no address>".to_string(),
        Some(addr) => {
            let ip = addr.ip();
            if ip.is_unspecified() {
                return format!("*:{}", addr.port());
            }
            match ip {
                std::net::IpAddr::V4(v4) => format!("{v4}:{}", addr.port()),
                std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => format!("{v4}:{}", addr.port()),
                    None => format!("[{v6}]:{}", addr.port()),
                },
            }
        }
    }
}

/// A size as mitmproxy's `pretty_size` writes it: `6b`, `1.5k`, `120k`, `12.0m`.
pub fn pretty_size(size: u64) -> String {
    if size < 1024 {
        return format!("{size}b");
    }
    let mut value = size as f64;
    for suffix in ["k", "m", "g", "t"] {
        value /= 1024.0;
        if value < 99.95 {
            return format!("{value:.1}{suffix}");
        }
        if value < 1024.0 || suffix == "t" {
            return format!("{value:.0}{suffix}");
        }
    }
    unreachable!("the loop returns at t")
}

/// Text with control characters (other than tab, CR and LF) shown as `.`.
fn escape_control(text: &str) -> String {
    text.chars()
        .map(|c| {
            if (c < ' ' && !matches!(c, '\t' | '\r' | '\n')) || c == '\x7f' {
                '.'
            } else {
                c
            }
        })
        .collect()
}

/// Bytes as a printable string, as Python's `repr` of bytes shows them: printable ASCII as
/// is, `\\`, `\t`, `\n`, `\r`, everything else `\xNN`.
pub fn escaped_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out
}

fn is_http1(version: HttpVersion) -> bool {
    matches!(version, HttpVersion::Http10 | HttpVersion::Http11)
}

/// The client column: `[replay]` for a replayed request, else the client's address.
fn client_label(flow: &HttpFlow) -> String {
    if flow.is_replay() == Some(ReplaySide::Request) {
        "[replay]".to_string()
    } else {
        format_address(&flow.client_conn().peername)
    }
}

/// Writes `flow` as mitmdump does at `style.detail` (which is at least 1), each line ending
/// in `\n`.
pub fn write_flow(out: &mut String, style: &Style, flow: &HttpFlow) {
    let client = client_label(flow);
    write_request_line(out, style, flow, &client);
    let request = &flow.request;
    if style.detail >= 2 {
        write_headers(out, style, &request.headers);
    }
    if style.detail >= 3 {
        let query = request.query();
        write_body(
            out,
            style,
            &request.headers,
            request.content.as_slice(),
            request.stream.is_on(),
            query.fields(),
        );
    }
    if style.detail >= 2 {
        write_trailers(out, style, request.trailers());
    }
    if let Some(response) = flow.response() {
        write_response_line(out, style, flow, &client);
        if style.detail >= 2 {
            write_headers(out, style, &response.headers);
        }
        if style.detail >= 3 {
            write_body(
                out,
                style,
                &response.headers,
                response.content.as_slice(),
                response.stream.is_on(),
                &[],
            );
        }
        if style.detail >= 2 {
            write_trailers(out, style, response.trailers());
        }
    }
    if let Some(error) = flow.error() {
        paint(
            out,
            style,
            Paint::Red,
            &format!(" << {}", escape_control(error.msg())),
        );
        out.push('\n');
    }
}

/// A server address as mitmproxy's `format_address` shows it: an IP address as
/// [`format_address`] does, a host name as `host:port`, `<no address>` without one.
fn format_server_address(flow: &HttpFlow) -> String {
    let Some(address) = flow.server_conn().and_then(|server| server.address()) else {
        return "<no address>".to_string();
    };
    match address.host().parse::<std::net::IpAddr>() {
        Ok(ip) => format_address(&std::net::SocketAddr::new(ip, address.port).into()),
        Err(_) => format!("{}:{}", address.host(), address.port),
    }
}

/// The name of a WebSocket close code, as Python's `wsproto` `CloseReason` has it.
fn close_reason_name(code: u16) -> String {
    let name = match code {
        1000 => "NORMAL_CLOSURE",
        1001 => "GOING_AWAY",
        1002 => "PROTOCOL_ERROR",
        1003 => "UNSUPPORTED_DATA",
        1005 => "NO_STATUS_RCVD",
        1006 => "ABNORMAL_CLOSURE",
        1007 => "INVALID_FRAME_PAYLOAD_DATA",
        1008 => "POLICY_VIOLATION",
        1009 => "MESSAGE_TOO_BIG",
        1010 => "MANDATORY_EXT",
        1011 => "INTERNAL_ERROR",
        1012 => "SERVICE_RESTART",
        1013 => "TRY_AGAIN_LATER",
        1015 => "TLS_HANDSHAKE_FAILED",
        _ => return format!("UNKNOWN_ERROR={code}"),
    };
    name.to_string()
}

/// Writes the line of one WebSocket message of `flow`, as mitmdump prints it at
/// `websocket_message`, and from detail 3 its content as a body is shown.
pub fn write_websocket_message(
    out: &mut String,
    style: &Style,
    flow: &HttpFlow,
    message: &interpose_plugin_abi::flow::WebSocketMessage,
) {
    let client = format_address(&flow.client_conn().peername);
    let server = format_server_address(flow);
    let direction = if message.from_client() { "->" } else { "<-" };
    let kind = if message.is_text() { "text" } else { "binary" };
    let _ = writeln!(
        out,
        "{client} {direction} WebSocket {kind} message {direction} {server}{}",
        flow.request.path()
    );
    if style.detail >= 3 {
        let headers = Headers::default();
        write_body(out, style, &headers, message.content.as_slice(), false, &[]);
    }
}

/// Writes how a flow's WebSocket conversation ended, as mitmdump prints it at
/// `websocket_end`: a normal close, or an error in red. Nothing while it is open.
pub fn write_websocket_end(out: &mut String, style: &Style, flow: &HttpFlow) {
    let Some(websocket) = flow.websocket() else {
        return;
    };
    let server = format_server_address(flow);
    let Some(code) = websocket.close_code() else {
        return;
    };
    let reason = websocket.close_reason().unwrap_or("").to_string();
    if matches!(code, 1000 | 1001 | 1005) {
        let by = if websocket.closed_by_client() == Some(true) {
            "client"
        } else {
            "server"
        };
        let _ = writeln!(out, "WebSocket connection closed by {by}: {code} {reason}");
    } else {
        let mut error = close_reason_name(code);
        if !reason.is_empty() {
            let _ = write!(error, " (reason: {reason})");
        }
        paint(
            out,
            style,
            Paint::Red,
            &format!("Error in WebSocket connection to {server}: WebSocket Error: {error}"),
        );
        out.push('\n');
    }
}

fn write_request_line(out: &mut String, style: &Style, flow: &HttpFlow, client: &str) {
    let request = &flow.request;
    if client == "[replay]" {
        paint(out, style, Paint::Yellow, client);
    } else {
        out.push_str(&escape_control(client));
    }
    out.push_str(": ");
    let mut method = request.method().to_string();
    if flow.metadata.get("h2-pushed-stream").is_some() {
        method.push_str(" PUSH_PROMISE");
    }
    let colour = match method.to_ascii_uppercase().as_str() {
        "GET" => Paint::Green,
        "DELETE" => Paint::Red,
        _ => Paint::Magenta,
    };
    paint(out, style, colour, &escape_control(&method));
    out.push(' ');
    let mut url = if style.showhost {
        pretty_url(flow)
    } else {
        request.url()
    };
    if style.detail == 1 && url.chars().count() > style.url_limit {
        url = url.chars().take(style.url_limit).collect::<String>() + "…";
    }
    paint(out, style, Paint::Bold, &escape_control(&url));
    let response_version = flow
        .response()
        .map(|r| r.http_version)
        .unwrap_or(HttpVersion::Http11);
    if !is_http1(request.http_version) || request.http_version != response_version {
        out.push(' ');
        out.push_str(request.http_version.as_str());
    }
    out.push('\n');
}

/// The URL with the Host header's name (mitmproxy's `pretty_url`).
fn pretty_url(flow: &HttpFlow) -> String {
    let request = &flow.request;
    let host = request.pretty_host();
    let default = interpose_plugin_abi::flow::default_port(request.scheme());
    let authority = if request.port == default {
        host.to_string()
    } else if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{}", request.port)
    } else {
        format!("{host}:{}", request.port)
    };
    format!("{}://{}{}", request.scheme(), authority, request.path())
}

fn write_response_line(out: &mut String, style: &Style, flow: &HttpFlow, client: &str) {
    let Some(response) = flow.response() else {
        return;
    };
    let replay = flow.is_replay() == Some(ReplaySide::Response);
    let version =
        if !is_http1(response.http_version) || flow.request.http_version != response.http_version {
            format!("{} ", response.http_version.as_str())
        } else {
            String::new()
        };
    if replay {
        paint(out, style, Paint::Yellow, "[replay]");
    }
    if style.detail == 1 {
        let used = 2 + version.len() + if replay { "[replay]".len() } else { 0 };
        let pad = client.chars().count().saturating_sub(used);
        out.extend(std::iter::repeat_n(' ', pad));
    }
    paint(out, style, Paint::Bold, " <<");
    out.push(' ');
    out.push_str(&version);
    let code = response.status_code;
    let colour = match code {
        200..=299 => Some(Paint::Green),
        300..=399 => Some(Paint::Magenta),
        400..=599 => Some(Paint::Red),
        _ => None,
    };
    let reason = if matches!(
        response.http_version,
        HttpVersion::Http2 | HttpVersion::Http3
    ) {
        interpose_plugin_abi::flow::reason_phrase(code).to_string()
    } else {
        escape_control(response.reason())
    };
    let text = format!("{code} {reason}");
    match colour {
        Some(colour) => paint(out, style, colour, &text),
        None => paint(out, style, Paint::Bold, &text),
    }
    out.push(' ');
    let size = if response.stream.is_on() {
        "(content missing)".to_string()
    } else {
        pretty_size(response.content.len() as u64)
    };
    paint(out, style, Paint::Bold, &size);
    out.push('\n');
}

fn write_headers(out: &mut String, style: &Style, headers: &Headers) {
    for (name, value) in headers.iter() {
        out.push_str("    ");
        paint(out, style, Paint::Blue, &escaped_bytes(name.as_bytes()));
        // mitmdump strips each line before indenting it: an empty value leaves `name:`.
        let value = escaped_bytes(value);
        if value.trim().is_empty() {
            out.push(':');
        } else {
            out.push_str(": ");
            out.push_str(value.trim_end());
        }
        out.push('\n');
    }
}

fn write_trailers(out: &mut String, style: &Style, trailers: Option<&Headers>) {
    let Some(trailers) = trailers.filter(|t| !t.is_empty()) else {
        return;
    };
    out.push_str("    ");
    paint(out, style, Paint::Magenta, "--- HTTP Trailers");
    out.push('\n');
    write_headers(out, style, trailers);
}

/// The body as mitmdump's automatic view shows it: text as its lines, anything else as a
/// hex dump; cut at `style.cutoff` lines at detail 3.
fn write_body(
    out: &mut String,
    style: &Style,
    headers: &Headers,
    body: &[u8],
    streamed: bool,
    query: &[(String, String)],
) {
    let lines = if streamed {
        vec!["(content missing)".to_string()]
    } else if body.is_empty() && !query.is_empty() {
        query_lines(query)
    } else {
        body_lines(headers, body)
    };
    let limit = if style.detail == 3 {
        style.cutoff
    } else {
        usize::MAX
    };
    if !lines.is_empty() {
        out.push('\n');
        // mitmdump joins a body's lines with CRLF (and ends the block with LF).
        for (i, line) in lines.iter().take(limit).enumerate() {
            if i > 0 {
                out.push_str("\r\n");
            }
            out.push_str("    ");
            out.push_str(line);
        }
        out.push('\n');
    }
    if lines.len() > limit {
        out.push_str("    ");
        paint(out, style, Paint::Dim, "(cut off)");
        out.push('\n');
    }
    if style.detail >= 2 {
        out.push('\n');
    }
}

/// Query pairs as mitmproxy's query view shows them: one `name: value` line per pair,
/// names padded to a common width (at most 30).
pub fn query_lines(pairs: &[(String, String)]) -> Vec<String> {
    let width = pairs
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0)
        .min(30);
    pairs
        .iter()
        .map(|(name, value)| format!("{:<w$}{value}", format!("{name}:"), w = width + 2))
        .collect()
}

/// Whether a Content-Type is JSON for mitmproxy's JSON view.
fn is_json(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json"
        || mime == "application/json-rpc"
        || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// A JSON document re-indented as Python's `json` module writes it with `indent=4` (what
/// mitmproxy's JSON view shows); `None` if it is not JSON. Strings and numbers are kept as
/// written.
pub fn json_lines(text: &str) -> Option<Vec<String>> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut depth = 0usize;
    let mut chars = text.char_indices().peekable();
    // What the previous token opened, to print `{}` and `[]` for empty containers.
    let mut just_opened = false;
    let newline = |lines: &mut Vec<String>, line: &mut String, depth: usize| {
        lines.push(std::mem::take(line));
        line.push_str(&" ".repeat(4 * depth));
    };
    while let Some((at, c)) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => continue,
            '{' | '[' => {
                line.push(c);
                depth += 1;
                just_opened = true;
                continue;
            }
            '}' | ']' => {
                depth = depth.checked_sub(1)?;
                if !just_opened {
                    newline(&mut lines, &mut line, depth);
                }
                line.push(c);
            }
            ',' => {
                line.push(',');
                newline(&mut lines, &mut line, depth);
            }
            ':' => line.push_str(": "),
            '"' => {
                if just_opened {
                    newline(&mut lines, &mut line, depth);
                }
                let mut end = None;
                let mut escaped = false;
                for (i, d) in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if d == '\\' {
                        escaped = true;
                    } else if d == '"' {
                        end = Some(i);
                        break;
                    }
                }
                line.push_str(&text[at..=end?]);
            }
            _ => {
                if just_opened {
                    newline(&mut lines, &mut line, depth);
                }
                let mut end = at + c.len_utf8();
                while let Some(&(i, d)) = chars.peek() {
                    if matches!(d, ',' | ']' | '}' | ' ' | '\t' | '\n' | '\r' | ':') {
                        break;
                    }
                    end = i + d.len_utf8();
                    chars.next();
                }
                let token = &text[at..end];
                let literal = matches!(token, "true" | "false" | "null")
                    || token.parse::<f64>().is_ok_and(|_| {
                        token
                            .chars()
                            .all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
                    });
                if !literal {
                    return None;
                }
                line.push_str(token);
            }
        }
        just_opened = false;
    }
    if depth != 0 {
        return None;
    }
    lines.push(line);
    Some(lines)
}

/// The lines of a body: text (UTF-8 without control characters other than spacing) as is,
/// anything else as a hex dump of 16 bytes a line. Bodies with a content encoding other than
/// identity are shown as they came (the dumper does not decode them).
pub fn body_lines(headers: &Headers, body: &[u8]) -> Vec<String> {
    if body.is_empty() {
        return Vec::new();
    }
    let encoded = headers
        .get("content-encoding")
        .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity") && !e.trim().is_empty());
    if !encoded {
        if let Ok(text) = std::str::from_utf8(body) {
            if headers.get("content-type").is_some_and(is_json) {
                if let Some(lines) = json_lines(text) {
                    return lines;
                }
            }
            if !text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n'))
            {
                return text.lines().map(str::to_string).collect();
            }
        }
    }
    body.chunks(16)
        .enumerate()
        .map(|(i, chunk)| {
            let mut line = format!("{:010x}", i * 16);
            for b in chunk {
                let _ = write!(line, " {b:02x}");
            }
            for _ in chunk.len()..16 {
                line.push_str("   ");
            }
            line.push_str("  ");
            line.extend(chunk.iter().map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                }
            }));
            line
        })
        .collect()
}
