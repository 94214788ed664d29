//! Upgrades flow states written by older mitmproxy versions to format version 21, step by
//! step as mitmproxy's `io/compat.py` does: the legacy tuple versions `(0, 11)` to `(3, 0)`,
//! then the ints 4 to 20.
//!
//! Two steps of mitmproxy's keep memory across flows; here each flow migrates on its own:
//! 4→5 derives connection ids from a hash of what mitmproxy keys them by (so connections
//! shared by flows still share ids), and 11→12 keeps a WebSocket handshake flow as a plain
//! HTTP flow and turns a WebSocket message flow into a flow with a made-up handshake, as
//! mitmproxy does when the handshake is missing.

use std::hash::{DefaultHasher, Hash, Hasher};

use super::{
    flowfile::{ReadError, FLOW_FORMAT_VERSION},
    tnetstring::Value,
};

/// Upgrades `state` to [`FLOW_FORMAT_VERSION`]; a newer or unknown version is an error.
pub fn migrate(mut state: Value) -> Result<Value, ReadError> {
    // Each step raises the version, so this ends.
    loop {
        let version = version_of(&state)?;
        match version {
            Version::Int(v) if v == FLOW_FORMAT_VERSION => return Ok(state),
            Version::Int(v) if v > FLOW_FORMAT_VERSION => {
                return Err(ReadError::Version {
                    version: v.to_string(),
                    newer: true,
                })
            }
            Version::Int(v) if (4..FLOW_FORMAT_VERSION).contains(&v) => {
                state = step_int(v, state)?;
            }
            Version::Legacy(major, minor)
                if (major == 0 && (11..=19).contains(&minor))
                    || ((1..=3).contains(&major) && minor == 0) =>
            {
                state = step_legacy(major, minor, state)?;
            }
            other => {
                return Err(ReadError::Version {
                    version: other.to_string(),
                    newer: false,
                })
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Version {
    Int(i64),
    Legacy(i64, i64),
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Version::Int(v) => write!(f, "{v}"),
            Version::Legacy(a, b) => write!(f, "({a}, {b})"),
        }
    }
}

fn version_of(state: &Value) -> Result<Version, ReadError> {
    match state.get("version") {
        Some(Value::Int(v)) => Ok(Version::Int(*v)),
        Some(Value::List(items)) => match items.as_slice() {
            [Value::Int(a), Value::Int(b), ..] => Ok(Version::Legacy(*a, *b)),
            _ => Err(ReadError::Invalid {
                key: "version".into(),
                reason: "a version tuple of two ints at least".into(),
            }),
        },
        Some(other) => Err(ReadError::WrongType {
            key: "version".into(),
            expected: "an int or a list of ints",
            found: other.type_name(),
        }),
        None => Err(ReadError::MissingKey {
            key: "version".into(),
        }),
    }
}

/// `state[key]`, which must be there.
fn at<'a>(state: &'a mut Value, key: &str) -> Result<&'a mut Value, ReadError> {
    state
        .get_mut(key)
        .ok_or_else(|| ReadError::MissingKey { key: key.into() })
}

/// `state[outer]` if it is a dict (a missing or null response has nothing to change).
fn dict_at<'a>(state: &'a mut Value, outer: &str) -> Option<&'a mut Value> {
    state.get_mut(outer).filter(|v| matches!(v, Value::Dict(_)))
}

fn rename(dict: &mut Value, from: &str, to: &str) {
    if let Some(value) = dict.remove(from) {
        dict.insert(to, value);
    }
}

/// Renames `from` to `to`, setting `to` to null when `from` is missing.
fn rename_or_null(dict: &mut Value, from: &str, to: &str) {
    let value = dict.remove(from).unwrap_or(Value::Null);
    dict.insert(to, value);
}

fn truthy(dict: &Value, key: &str) -> bool {
    dict.get(key).is_some_and(Value::is_truthy)
}

/// The server connection and, when there is one, its legacy `via` connection.
fn server_and_via(state: &mut Value, mut f: impl FnMut(&mut Value)) -> Result<(), ReadError> {
    let server = at(state, "server_conn")?;
    f(server);
    if truthy(server, "via") {
        if let Some(via) = server.get_mut("via") {
            f(via);
        }
    }
    Ok(())
}

/// `value` as text, for the places where old files have bytes.
fn text_of(value: &Value) -> String {
    match value {
        Value::Str(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Int(i) => i.to_string(),
        Value::Float(x) => format!("{x:?}"),
        _ => String::new(),
    }
}

fn step_legacy(major: i64, minor: i64, mut state: Value) -> Result<Value, ReadError> {
    let next = |a: i64, b: i64| Value::List(vec![Value::Int(a), Value::Int(b)]);
    match (major, minor) {
        (0, 11) => state.insert("version", next(0, 12)),
        (0, 12) => state.insert("version", next(0, 13)),
        (0, 13) => {
            let request = at(&mut state, "request")?;
            rename(request, "form_in", "first_line_format");
            let version = legacy_http_version(request.remove("httpversion"));
            request.insert("http_version", version);
            if let Some(response) = dict_at(&mut state, "response") {
                let version = legacy_http_version(response.remove("httpversion"));
                response.insert("http_version", version);
                rename(response, "code", "status_code");
                rename(response, "content", "body");
            }
            let server = at(&mut state, "server_conn")?;
            server.remove("state");
            server.insert("via", Value::Null);
            state.insert("version", next(0, 14));
        }
        (0, 14) => state.insert("version", next(0, 15)),
        (0, 15) => {
            for side in ["request", "response"] {
                if let Some(message) = dict_at(&mut state, side) {
                    rename(message, "body", "content");
                }
            }
            if let Some(response) = dict_at(&mut state, "response") {
                rename(response, "msg", "reason");
            }
            at(&mut state, "request")?.remove("form_out");
            state.insert("version", next(0, 16));
        }
        (0, 16) => {
            at(&mut state, "server_conn")?.insert("peer_address", Value::Null);
            state.insert("version", next(0, 17));
        }
        (0, 17) => {
            rename_or_null(at(&mut state, "server_conn")?, "peer_address", "ip_address");
            state.insert("marked", Value::Bool(false));
            state.insert("version", next(0, 18));
        }
        (0, 18) => {
            let request = at(&mut state, "request")?;
            request.remove("stickyauth");
            request.remove("stickycookie");
            let client = at(&mut state, "client_conn")?;
            for key in ["sni", "alpn_proto_negotiated", "cipher_name", "tls_version"] {
                client.insert(key, Value::Null);
            }
            server_and_via(&mut state, |conn| {
                conn.insert("alpn_proto_negotiated", Value::Null);
            })?;
            state.insert("mode", Value::Str("regular".into()));
            state.insert("metadata", Value::Dict(Vec::new()));
            state.insert("version", next(0, 19));
        }
        (0, 19) => {
            state.insert(
                "version",
                Value::List(vec![Value::Int(1), Value::Int(0), Value::Int(0)]),
            );
        }
        (1, 0) => {
            // Addresses were `{"address": (host, port), ...}`.
            let unwrap = |conn: &mut Value, key: &str| {
                if let Some(inner) = conn.get_mut(key).and_then(|a| a.remove("address")) {
                    conn.insert(key, inner);
                }
            };
            unwrap(at(&mut state, "client_conn")?, "address");
            server_and_via(&mut state, |conn| {
                for key in ["address", "source_address", "ip_address"] {
                    unwrap(conn, key);
                }
            })?;
            state.insert(
                "version",
                Value::List(vec![Value::Int(2), Value::Int(0), Value::Int(0)]),
            );
        }
        (2, 0) => {
            at(&mut state, "client_conn")?.insert("mitmcert", Value::Null);
            server_and_via(&mut state, |conn| conn.insert("tls_version", Value::Null))?;
            state.insert(
                "version",
                Value::List(vec![Value::Int(3), Value::Int(0), Value::Int(0)]),
            );
        }
        (3, 0) => state.insert("version", Value::Int(4)),
        _ => unreachable!("migrate only calls step_legacy for known versions"),
    }
    Ok(state)
}

/// `(1, 1)` → `b"HTTP/1.1"`.
fn legacy_http_version(version: Option<Value>) -> Value {
    let parts = match version {
        Some(Value::List(parts)) => parts,
        _ => vec![Value::Int(1), Value::Int(1)],
    };
    let numbers: Vec<String> = parts.iter().map(text_of).collect();
    Value::Bytes(format!("HTTP/{}", numbers.join(".")).into_bytes())
}

/// A UUID made from a hash of `key`: connections mitmproxy's step 4→5 would give the same
/// random id get the same id here.
fn derived_id(kind: &str, key: &[&Value]) -> Value {
    let mut text = String::from(kind);
    for part in key {
        text.push('\0');
        text.push_str(&text_of(part));
        if let Value::List(items) = part {
            for item in items {
                text.push('\0');
                text.push_str(&text_of(item));
            }
        }
    }
    let mut bytes = [0u8; 16];
    for (i, half) in bytes.chunks_mut(8).enumerate() {
        let mut hasher = DefaultHasher::new();
        (i, &text).hash(&mut hasher);
        half.copy_from_slice(&hasher.finish().to_be_bytes());
    }
    // Version 4, RFC 4122 variant, as `uuid.uuid4()`.
    bytes[6] = bytes[6] & 0x0f | 0x40;
    bytes[8] = bytes[8] & 0x3f | 0x80;
    Value::Str(interpose_plugin_abi::Uuid(bytes).to_string())
}

fn step_int(version: i64, mut state: Value) -> Result<Value, ReadError> {
    match version {
        4 => {
            let client = at(&mut state, "client_conn")?;
            let ts = client
                .get("timestamp_start")
                .cloned()
                .unwrap_or(Value::Null);
            let addr = client.get("address").cloned().unwrap_or(Value::Null);
            client.insert("id", derived_id("client", &[&ts, &addr]));
            server_and_via(&mut state, |conn| {
                let ts = conn.get("timestamp_start").cloned().unwrap_or(Value::Null);
                let addr = conn.get("source_address").cloned().unwrap_or(Value::Null);
                conn.insert("id", derived_id("server", &[&ts, &addr]));
            })?;
        }
        5 => {
            rename_pair(at(&mut state, "client_conn")?);
            server_and_via(&mut state, rename_pair)?;
        }
        6 => at(&mut state, "client_conn")?.insert("tls_extensions", Value::Null),
        7 => {
            for side in ["request", "response"] {
                if let Some(message) = dict_at(&mut state, side) {
                    message.insert("trailers", Value::Null);
                }
            }
        }
        8 => {
            let mut request_replay = false;
            if let Some(request) = dict_at(&mut state, "request") {
                request.remove("first_line_format");
                request.insert("authority", Value::Bytes(Vec::new()));
                request_replay = request.remove("is_replay").is_some_and(|v| v.is_truthy());
            }
            let mut response_replay = false;
            if let Some(response) = dict_at(&mut state, "response") {
                response_replay = response.remove("is_replay").is_some_and(|v| v.is_truthy());
            }
            let side = if request_replay {
                Value::Str("request".into())
            } else if response_replay {
                Value::Str("response".into())
            } else {
                Value::Null
            };
            state.insert("is_replay", side);
        }
        9 => {
            let client = at(&mut state, "client_conn")?;
            client.insert(
                "sockname",
                Value::List(vec![Value::Str(String::new()), Value::Int(0)]),
            );
            let cert = client.remove("clientcert").filter(Value::is_truthy);
            client.insert("certificate_list", Value::List(cert.into_iter().collect()));
            conn_9_10(client);
            server_and_via(&mut state, |conn| {
                let cert = conn.remove("cert").filter(Value::is_truthy);
                conn.insert("certificate_list", Value::List(cert.into_iter().collect()));
                conn.insert("cipher_name", Value::Null);
                conn.insert("via2", Value::Null);
                conn_9_10(conn);
            })?;
        }
        10 => {
            conn_10_11(at(&mut state, "client_conn")?);
            server_and_via(&mut state, conn_10_11)?;
        }
        11 => state = websocket_11_12(state)?,
        12 => {
            let marked = if truthy(&state, "marked") {
                ":default:"
            } else {
                ""
            };
            state.insert("marked", Value::Str(marked.into()));
        }
        13 => {
            state.insert("comment", Value::Str(String::new()));
            // mitmproxy#4576: responses without a start time.
            let request_end = state
                .get("request")
                .and_then(|r| r.get("timestamp_end"))
                .cloned();
            if let Some(response) = dict_at(&mut state, "response") {
                if matches!(response.get("timestamp_start"), None | Some(Value::Null)) {
                    let end = match &request_end {
                        Some(Value::Int(i)) => *i as f64,
                        Some(Value::Float(x)) => *x,
                        _ => 0.0,
                    };
                    response.insert("timestamp_start", Value::Float(end));
                    response.insert("timestamp_end", Value::Float(end + 1.0));
                }
            }
        }
        14 => {
            if let Some(Value::List(messages)) = state
                .get_mut("websocket")
                .and_then(|ws| ws.get_mut("messages"))
            {
                for message in messages {
                    if let Value::List(items) = message {
                        items.push(Value::Bool(false));
                    }
                }
            }
        }
        15 => {
            let source = state
                .get("request")
                .filter(|r| matches!(r, Value::Dict(_)))
                .or(state.get("client_conn"));
            let created = source
                .and_then(|s| s.get("timestamp_start"))
                .cloned()
                .unwrap_or(Value::Float(0.0));
            state.insert("timestamp_created", created);
        }
        16 => {
            state.remove("mode");
        }
        17 => at(&mut state, "client_conn")?.insert("proxy_mode", Value::Str("regular".into())),
        18 => {
            let client = at(&mut state, "client_conn")?;
            rename_or_null(client, "address", "peername");
            if matches!(client.get("timestamp_start"), None | Some(Value::Null)) {
                client.insert("timestamp_start", Value::Float(0.0));
            }
            client.remove("tls_extensions");
            let server = at(&mut state, "server_conn")?;
            rename_or_null(server, "ip_address", "peername");
            rename_or_null(server, "source_address", "sockname");
            rename_or_null(server, "via2", "via");
            for side in ["client_conn", "server_conn"] {
                let conn = at(&mut state, side)?;
                conn.remove("tls_established");
                rename_or_null(conn, "cipher_name", "cipher");
                if conn.get("transport_protocol").is_none() {
                    conn.insert("transport_protocol", Value::Str("tcp".into()));
                }
                for name in ["peername", "sockname", "address"] {
                    if let Some(Value::List(items)) = conn.get_mut(name) {
                        if let Some(host @ Value::Bytes(_)) = items.first_mut() {
                            *host = Value::Str(text_of(host));
                        }
                    }
                }
            }
            let server = at(&mut state, "server_conn")?;
            if matches!(server.get("sni"), Some(Value::Bool(true))) {
                let host = match server.get("address") {
                    Some(Value::List(items)) => items.first().cloned().unwrap_or(Value::Null),
                    _ => Value::Null,
                };
                server.insert("sni", host);
            }
        }
        19 => {
            at(&mut state, "client_conn")?.remove("state");
            at(&mut state, "server_conn")?.remove("state");
        }
        20 => {
            for side in ["client_conn", "server_conn"] {
                let conn = at(&mut state, side)?;
                if matches!(conn.get("tls_version"), Some(Value::Str(v)) if v == "QUIC") {
                    conn.insert("tls_version", Value::Str("QUICv1".into()));
                }
            }
        }
        _ => unreachable!("migrate only calls step_int for 4..21"),
    }
    state.insert("version", Value::Int(version + 1));
    Ok(state)
}

/// 5→6: `ssl_*` becomes `tls_*`.
fn rename_pair(conn: &mut Value) {
    rename_or_null(conn, "ssl_established", "tls_established");
    rename_or_null(conn, "timestamp_ssl_setup", "timestamp_tls_setup");
}

/// 9→10 for one connection.
fn conn_9_10(conn: &mut Value) {
    conn.insert("state", Value::Int(0));
    conn.insert("error", Value::Null);
    let tls = conn
        .get("tls_established")
        .cloned()
        .unwrap_or(Value::Bool(false));
    conn.insert("tls", tls);
    let alpn = conn
        .get("alpn_proto_negotiated")
        .cloned()
        .filter(Value::is_truthy);
    conn.insert(
        "alpn_offers",
        alpn.map_or(Value::Null, |a| Value::List(vec![a])),
    );
    let cipher = conn.get("cipher_name").cloned().filter(Value::is_truthy);
    conn.insert(
        "cipher_list",
        cipher.map_or(Value::Null, |c| Value::List(vec![c])),
    );
}

/// 10→11 for one connection.
fn conn_10_11(conn: &mut Value) {
    let sni = match conn.get("sni") {
        Some(Value::Bytes(b)) => Value::Str(
            b.iter()
                .flat_map(|&c| {
                    if c.is_ascii() {
                        vec![char::from(c)]
                    } else {
                        format!("\\x{c:02x}").chars().collect()
                    }
                })
                .collect(),
        ),
        Some(other) => other.clone(),
        None => Value::Null,
    };
    conn.insert("sni", sni);
    rename_or_null(conn, "alpn_proto_negotiated", "alpn");
    for key in ["alpn_offers", "cipher_list"] {
        if !matches!(conn.get(key), Some(Value::List(_))) {
            conn.insert(key, Value::List(Vec::new()));
        }
    }
}

/// 11→12: WebSocket conversations move into the HTTP flow of their handshake.
fn websocket_11_12(mut state: Value) -> Result<Value, ReadError> {
    let is_messages = state
        .get("metadata")
        .is_some_and(|m| m.get("websocket_handshake").is_some());
    if !is_messages {
        state.insert("websocket", Value::Null);
        return Ok(state);
    }
    // The handshake flow is elsewhere in the file; like mitmproxy without it, make one up.
    let take = |state: &mut Value, key: &str| state.remove(key).unwrap_or(Value::Null);
    let server_end = state
        .get("server_conn")
        .and_then(|s| s.get("timestamp_end"))
        .cloned()
        .unwrap_or(Value::Null);
    let closed_by_client = matches!(state.get("close_sender"), Some(Value::Str(s)) if s == "client")
        || matches!(state.get("close_sender"), Some(Value::Bytes(b)) if b == b"client");
    let websocket = Value::Dict(vec![
        ("messages".into(), take(&mut state, "messages")),
        ("closed_by_client".into(), Value::Bool(closed_by_client)),
        ("close_code".into(), take(&mut state, "close_code")),
        ("close_reason".into(), take(&mut state, "close_reason")),
        ("timestamp_end".into(), server_end),
    ]);
    let mut flow = Value::Dict(Vec::new());
    for key in [
        "client_conn",
        "error",
        "id",
        "intercepted",
        "is_replay",
        "marked",
        "server_conn",
    ] {
        flow.insert(key, take(&mut state, key));
    }
    let bytes = |b: &[u8]| Value::Bytes(b.to_vec());
    flow.insert(
        "metadata",
        Value::Dict(vec![(
            "duplicated".into(),
            Value::Str(
                "This WebSocket flow has been migrated from an old file format version and may \
                 appear duplicated."
                    .into(),
            ),
        )]),
    );
    flow.insert("mode", Value::Str("transparent".into()));
    flow.insert(
        "request",
        Value::Dict(vec![
            ("authority".into(), bytes(b"")),
            ("content".into(), Value::Null),
            ("headers".into(), Value::List(Vec::new())),
            ("host".into(), bytes(b"unknown")),
            ("http_version".into(), bytes(b"HTTP/1.1")),
            ("method".into(), bytes(b"GET")),
            ("path".into(), bytes(b"/")),
            ("port".into(), Value::Int(80)),
            ("scheme".into(), bytes(b"http")),
            ("timestamp_end".into(), Value::Int(0)),
            ("timestamp_start".into(), Value::Int(0)),
            ("trailers".into(), Value::Null),
        ]),
    );
    flow.insert("response", Value::Null);
    flow.insert("type", Value::Str("http".into()));
    flow.insert("websocket", websocket);
    Ok(flow)
}
