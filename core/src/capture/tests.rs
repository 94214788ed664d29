//! Tests of tnetstrings, flow files (write, read, migrate) and HAR.

use abi_stable::std_types::ROption;
use interpose_plugin_abi::{ErrorKind, HttpVersion};

use super::{
    flowfile::{flow_from_state, flow_state, write_flow, FlowReader, ReadError},
    testing::{as_read_back, typical_flow, varied_flows},
    tnetstring::{decode, encode, TnetErrorKind, Value, MAX_DEPTH},
};

fn s(text: &str) -> Value {
    Value::Str(text.into())
}

fn b(bytes: &[u8]) -> Value {
    Value::Bytes(bytes.to_vec())
}

fn dict(entries: Vec<(&str, Value)>) -> Value {
    Value::Dict(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn list(items: Vec<Value>) -> Value {
    Value::List(items)
}

fn enc(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode(value, &mut out);
    out
}

// ---- tnetstring ----

#[test]
fn tnetstring_known_encodings() {
    for (value, text) in [
        (Value::Null, &b"0:~"[..]),
        (Value::Bool(true), b"4:true!"),
        (Value::Bool(false), b"5:false!"),
        (Value::Int(200), b"3:200#"),
        (Value::Int(-7), b"2:-7#"),
        (Value::Float(1.5), b"3:1.5^"),
        (Value::Float(946681200.0), b"11:946681200.0^"),
        (b(b"hello"), b"5:hello,"),
        (s("host"), b"4:host;"),
        (
            list(vec![Value::Int(12345), Value::Bool(true), Value::Int(0)]),
            b"19:5:12345#4:true!1:0#]",
        ),
        (dict(vec![("a", b(b"x"))]), b"8:1:a;1:x,}"),
        (list(vec![]), b"0:]"),
    ] {
        assert_eq!(enc(&value), text, "{value:?}");
        assert_eq!(decode(text).unwrap(), (value, text.len()));
    }
}

#[test]
fn tnetstring_round_trips() {
    let value = dict(vec![
        ("null", Value::Null),
        (
            "nested",
            list(vec![
                dict(vec![("x", list(vec![]))]),
                b(&[0, 255, b':', b',']),
            ]),
        ),
        (
            "floats",
            list(vec![
                Value::Float(0.1),
                Value::Float(-1e300),
                Value::Float(5e-324),
            ]),
        ),
        ("text", s("ünïcode ✓")),
        ("int", Value::Int(i64::MIN)),
    ]);
    let bytes = enc(&value);
    let (decoded, used) = decode(&bytes).unwrap();
    assert_eq!((decoded, used), (value, bytes.len()));
    // Trailing data is left for the next record.
    let mut two = bytes.clone();
    two.extend_from_slice(b"0:~");
    assert_eq!(decode(&two).unwrap().1, bytes.len());
    // Ints are floats' stand-ins in mitmproxy, and Python writes exponents.
    assert_eq!(decode(b"5:1e300^").unwrap().0, Value::Float(1e300));
    // Bytes keys (Python 2 era files) read as text.
    assert_eq!(
        decode(b"8:1:a,1:x,}").unwrap().0,
        dict(vec![("a", b(b"x"))])
    );
}

#[test]
fn floats_are_written_as_debug_formats_them() {
    // ryu writes most floats; where its text could differ from `{:?}` (what flow files have
    // always had), `{:?}` does: exponents below 1e-4, ties (ryu rounds them to even).
    let mut values = vec![
        0.0,
        -0.0,
        1.0,
        1.5,
        0.1,
        1e-4,
        1e-5,
        5.5e-5,
        9.99e-5,
        1e15,
        1e16,
        1.5e300,
        5e-324,
        f64::MAX,
        f64::MIN_POSITIVE,
        1_594_941_473.285_156_2,
        3_880_452_783.769_531_2,
        216_486_192_242_783.62,
        1_732_500_000.123_456,
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        values.push(f64::from_bits(state));
        values.push(1.7e9 + (state % 4_000_000_000) as f64 * 1e-6);
        values.push((state % 1_000_000) as f64 / 1024.0);
        values.push((state % 100_000) as f64 * 1e-9);
    }
    for x in values {
        for x in [x, -x] {
            let text = match x {
                x if x.is_nan() => "nan".to_string(),
                x if x.is_infinite() => if x > 0.0 { "inf" } else { "-inf" }.to_string(),
                x => format!("{x:?}"),
            };
            let mut out = Vec::new();
            encode(&Value::Float(x), &mut out);
            assert_eq!(out, format!("{}:{text}^", text.len()).into_bytes(), "{x:e}");
        }
    }
}

#[test]
fn tnetstring_malformed_inputs() {
    let kind = |input: &[u8]| decode(input).unwrap_err().kind;
    let at = |input: &[u8]| decode(input).unwrap_err().offset;
    assert_eq!(kind(b""), TnetErrorKind::Truncated);
    assert_eq!(kind(b"a:x,"), TnetErrorKind::BadLength);
    assert_eq!(kind(b":x,"), TnetErrorKind::BadLength);
    assert_eq!(kind(b"1x,"), TnetErrorKind::BadLength);
    assert_eq!(kind(b"1234567890123:x,"), TnetErrorKind::LengthTooLong);
    assert_eq!(kind(b"123456789012:x,"), TnetErrorKind::Truncated);
    assert_eq!(kind(b"5:hel"), TnetErrorKind::Truncated);
    assert_eq!(kind(b"5:hello"), TnetErrorKind::Truncated);
    assert_eq!(kind(b"12"), TnetErrorKind::Truncated);
    assert_eq!(kind(b"5:hello?"), TnetErrorKind::BadTag(b'?'));
    assert_eq!(at(b"5:hello?"), 7);
    assert_eq!(kind(b"3:abc#"), TnetErrorKind::BadPayload("integer"));
    assert_eq!(kind(b"3:abc^"), TnetErrorKind::BadPayload("float"));
    assert_eq!(kind(b"3:yes!"), TnetErrorKind::BadPayload("boolean"));
    assert_eq!(kind(b"1:x~"), TnetErrorKind::BadPayload("null"));
    assert_eq!(
        kind(b"2:\xff\xfe;"),
        TnetErrorKind::BadPayload("UTF-8 text")
    );
    // An item whose length runs past its container.
    assert_eq!(kind(b"6:9:abc,]"), TnetErrorKind::BadLength);
    assert_eq!(at(b"6:9:abc,]"), 2);
    // Dict keys must be text, and have values.
    assert_eq!(kind(b"7:1:1#0:~}"), TnetErrorKind::BadKey);
    assert_eq!(kind(b"4:1:a;}"), TnetErrorKind::BadKey);
    // A depth bomb is refused, not a stack overflow.
    let mut bomb = b"0:]".to_vec();
    for _ in 0..1000 {
        let mut outer = format!("{}:", bomb.len()).into_bytes();
        outer.extend_from_slice(&bomb);
        outer.push(b']');
        bomb = outer;
    }
    assert_eq!(kind(&bomb), TnetErrorKind::TooDeep);
    let mut ok = b"0:]".to_vec();
    for _ in 1..MAX_DEPTH {
        let mut outer = format!("{}:", ok.len()).into_bytes();
        outer.extend_from_slice(&ok);
        outer.push(b']');
        ok = outer;
    }
    assert!(decode(&ok).is_ok());
    let message = decode(b"5:hello?").unwrap_err().to_string();
    assert!(
        message.contains("byte 7") && message.contains("'?'"),
        "{message}"
    );
}

// ---- flow files ----

fn assert_same(read: &interpose_plugin_abi::HttpFlow, written: &interpose_plugin_abi::HttpFlow) {
    // Debug shows every field (connections through their `RArc`s), floats exactly.
    assert_eq!(
        format!("{read:#?}"),
        format!("{:#?}", as_read_back(written))
    );
}

#[test]
fn shared_connections_are_encoded_once_and_changed_ones_again() {
    // Two flows on one client connection, then one on a changed copy of it (the host makes
    // a new `RArc` for every change): each record reads back with its own connection.
    let first = typical_flow();
    let mut second = typical_flow();
    second.client_conn = abi_stable::std_types::RArc::clone(&first.client_conn);
    let mut changed = typical_flow();
    let mut client = (*first.client_conn).clone();
    client.conn.peername = "10.1.2.3:4567"
        .parse::<std::net::SocketAddr>()
        .unwrap()
        .into();
    changed.client_conn = abi_stable::std_types::RArc::new(client);
    let mut file = Vec::new();
    for flow in [&first, &second, &changed] {
        write_flow(flow, &mut file);
    }
    let read: Vec<_> = FlowReader::new(&file[..])
        .collect::<Result<_, _>>()
        .unwrap();
    for (read, written) in read.iter().zip([&first, &second, &changed]) {
        assert_same(read, written);
    }
    assert_eq!(
        read[2].client_conn.conn.peername.to_string(),
        "10.1.2.3:4567"
    );
}

#[test]
fn a_client_without_addresses_is_written_readably() {
    // mitmproxy needs the client's peername and sockname: unknown ones are written as
    // `["", 0]` (found by the flow_file_round_trip fuzz target: the length was wrong).
    let mut flow = typical_flow();
    let mut client = (*flow.client_conn).clone();
    client.conn.peername = interpose_plugin_abi::SocketAddress::NONE;
    client.conn.sockname = interpose_plugin_abi::SocketAddress::NONE;
    flow.client_conn = abi_stable::std_types::RArc::new(client);
    let mut file = Vec::new();
    write_flow(&flow, &mut file);
    let read = FlowReader::new(&file[..])
        .next()
        .expect("one flow")
        .expect("readable");
    assert!(read.client_conn.conn.peername.get().is_none());
    let mut again = Vec::new();
    write_flow(&read, &mut again);
    assert_eq!(again, file);
}

#[test]
fn write_then_read_gives_the_same_flows() {
    let flows = varied_flows();
    let mut file = Vec::new();
    for flow in &flows {
        write_flow(flow, &mut file);
    }
    let read: Vec<_> = FlowReader::new(&file[..])
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(read.len(), flows.len());
    for (read, written) in read.iter().zip(&flows) {
        assert_same(read, written);
    }
    // The streamed response was written as null.
    let state = flow_state(&flows[4]);
    assert_eq!(
        state.get("response").unwrap().get("content"),
        Some(&Value::Null)
    );
    // The error kind survives; the server-less flow reads back without a server.
    assert_eq!(read[2].error.as_ref().unwrap().kind, ErrorKind::Server);
    assert!(read[2].server_conn.is_none());
    assert_eq!(read[4].error.as_ref().unwrap().kind, ErrorKind::Killed);
    assert_eq!(
        read[5].client_conn.proxy_mode.as_str(),
        "reverse:http://[::1]:9000"
    );
}

#[test]
fn direct_writer_matches_the_state_dict() {
    for flow in varied_flows() {
        let mut direct = Vec::new();
        write_flow(&flow, &mut direct);
        let state = flow_state(&flow);
        assert_eq!(enc(&state), direct);
        assert_same(&flow_from_state(state).unwrap(), &flow);
    }
}

#[test]
fn state_has_mitmproxys_keys_and_types() {
    let state = flow_state(&varied_flows()[1]);
    let Value::Dict(entries) = &state else {
        panic!()
    };
    let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    for key in [
        "version",
        "type",
        "id",
        "error",
        "client_conn",
        "server_conn",
        "intercepted",
        "is_replay",
        "marked",
        "metadata",
        "comment",
        "timestamp_created",
        "request",
        "response",
        "websocket",
    ] {
        assert!(keys.contains(&key), "{key}");
    }
    assert_eq!(state.get("version"), Some(&Value::Int(21)));
    let request = state.get("request").unwrap();
    assert_eq!(request.get("method"), Some(&b(b"POST")));
    assert_eq!(request.get("host"), Some(&s("example.com")));
    assert_eq!(request.get("http_version"), Some(&b(b"HTTP/2.0")));
    let server = state.get("server_conn").unwrap();
    let Some(Value::List(certs)) = server.get("certificate_list") else {
        panic!()
    };
    let Value::Bytes(pem) = &certs[0] else {
        panic!()
    };
    assert!(pem.starts_with(b"-----BEGIN CERTIFICATE-----\n"));
    assert_eq!(
        state.get("client_conn").unwrap().get("peername"),
        Some(&list(vec![s("127.0.0.1"), Value::Int(51234)]))
    );
}

#[test]
fn truncated_file_gives_complete_flows_then_truncated() {
    let flows = varied_flows();
    let mut file = Vec::new();
    let mut starts = Vec::new();
    for flow in &flows[..3] {
        starts.push(file.len());
        write_flow(flow, &mut file);
    }
    let last = starts[2];
    // Cut inside the payload, inside the prefix, and right before the tag.
    for cut in [last + 1, last + 3, last + 100, file.len() - 1] {
        let results: Vec<_> = FlowReader::new(&file[..cut]).collect();
        assert_eq!(results.len(), 3, "cut at {cut}");
        assert!(results[0].is_ok() && results[1].is_ok());
        match &results[2] {
            Err(ReadError::Truncated { offset }) => assert_eq!(*offset, last as u64),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    assert_eq!(FlowReader::new(&file[..last]).count(), 2);
    assert_eq!(FlowReader::new(&b""[..]).count(), 0);
}

#[test]
fn unsupported_and_newer_flows() {
    let mut file = Vec::new();
    let mut tcp = flow_state(&typical_flow());
    tcp.insert("type", s("tcp"));
    encode(&tcp, &mut file);
    write_flow(&typical_flow(), &mut file);
    let mut newer = flow_state(&typical_flow());
    newer.insert("version", Value::Int(22));
    encode(&newer, &mut file);
    let results: Vec<_> = FlowReader::new(&file[..]).collect();
    assert!(matches!(&results[0], Err(ReadError::Unsupported { flow_type }) if flow_type == "tcp"));
    assert!(results[1].is_ok());
    let message = results[2].as_ref().unwrap_err().to_string();
    assert!(
        message.contains("cannot read files with flow format version 22")
            && message.contains("please update"),
        "{message}"
    );
    // A field error names the key and the record.
    let mut bad = flow_state(&typical_flow());
    bad.get_mut("request").unwrap().insert("port", s("80"));
    let mut file = Vec::new();
    write_flow(&typical_flow(), &mut file);
    let offset = file.len();
    encode(&bad, &mut file);
    let results: Vec<_> = FlowReader::new(&file[..]).collect();
    let message = results[1].as_ref().unwrap_err().to_string();
    assert!(
        message.contains(&format!("byte {offset}"))
            && message.contains("request.port")
            && message.contains("an int, not str"),
        "{message}"
    );
    let mut missing = flow_state(&typical_flow());
    missing.get_mut("client_conn").unwrap().remove("sni");
    let error = flow_from_state(missing).unwrap_err().to_string();
    assert!(error.contains("client_conn.sni"), "{error}");
    // HAR is recognized.
    assert!(matches!(
        FlowReader::new(&b"{\"log\": {}}"[..]).next(),
        Some(Err(ReadError::Har))
    ));
}

/// mitmproxy 11's `tflow(resp=True).get_state()` (the reference's example), as decoded.
fn mitmproxy_sample() -> Value {
    let conn_common = |peer: Value, sock: Value, id: &str, alpn: Value, cipher: Value| {
        vec![
            ("peername", peer),
            ("sockname", sock),
            ("id", s(id)),
            ("transport_protocol", s("tcp")),
            ("error", Value::Null),
            ("tls", Value::Bool(false)),
            ("certificate_list", list(vec![])),
            ("alpn", alpn),
            ("alpn_offers", list(vec![])),
            ("cipher", cipher),
            ("cipher_list", list(vec![])),
            ("tls_version", s("TLSv1.2")),
            ("sni", s("address")),
        ]
    };
    let mut client = conn_common(
        list(vec![s("127.0.0.1"), Value::Int(22)]),
        list(vec![s(""), Value::Int(0)]),
        "7152b1f0-d7c6-4216-9cbb-b33ba4bea394",
        b(b"http/1.1"),
        s("cipher"),
    );
    client.extend([
        ("timestamp_start", Value::Float(946681200.0)),
        ("timestamp_end", Value::Float(946681206.0)),
        ("timestamp_tls_setup", Value::Float(946681201.0)),
        ("mitmcert", Value::Null),
        ("proxy_mode", s("regular")),
    ]);
    let mut server = conn_common(
        list(vec![s("192.168.0.1"), Value::Int(22)]),
        list(vec![s("address"), Value::Int(22)]),
        "7cc52748-caf8-45de-bdf6-97e08cc47b1c",
        Value::Null,
        Value::Null,
    );
    server.extend([
        ("timestamp_start", Value::Float(946681202.0)),
        ("timestamp_end", Value::Float(946681205.0)),
        ("timestamp_tls_setup", Value::Float(946681204.0)),
        ("address", list(vec![s("address"), Value::Int(22)])),
        ("timestamp_tcp_setup", Value::Float(946681203.0)),
        ("via", Value::Null),
    ]);
    let pair = |n: &[u8], v: &[u8]| list(vec![b(n), b(v)]);
    dict(vec![
        ("version", Value::Int(21)),
        ("type", s("http")),
        ("id", s("be3b0936-e8b1-4a7a-b5cc-daeb2e45b58d")),
        ("error", Value::Null),
        ("client_conn", dict(client)),
        ("server_conn", dict(server)),
        ("intercepted", Value::Bool(false)),
        ("is_replay", Value::Null),
        ("marked", s("")),
        ("metadata", dict(vec![])),
        ("comment", s("")),
        ("timestamp_created", Value::Int(946681200)),
        ("backup", Value::Null),
        (
            "request",
            dict(vec![
                ("http_version", b(b"HTTP/1.1")),
                (
                    "headers",
                    list(vec![
                        pair(b"header", b"qvalue"),
                        pair(b"content-length", b"7"),
                    ]),
                ),
                ("content", b(b"content")),
                ("trailers", Value::Null),
                ("timestamp_start", Value::Int(946681200)),
                ("timestamp_end", Value::Int(946681201)),
                ("host", s("address")),
                ("port", Value::Int(22)),
                ("method", b(b"GET")),
                ("scheme", b(b"http")),
                ("authority", b(b"")),
                ("path", b(b"/path")),
            ]),
        ),
        (
            "response",
            dict(vec![
                ("http_version", b(b"HTTP/1.1")),
                (
                    "headers",
                    list(vec![
                        pair(b"header-response", b"svalue"),
                        pair(b"content-length", b"7"),
                    ]),
                ),
                ("content", b(b"message")),
                ("trailers", Value::Null),
                ("timestamp_start", Value::Int(946681202)),
                ("timestamp_end", Value::Int(946681203)),
                ("status_code", Value::Int(200)),
                ("reason", b(b"OK")),
            ]),
        ),
        ("websocket", Value::Null),
    ])
}

fn check_mitmproxy_sample(flow: &interpose_plugin_abi::HttpFlow) {
    assert_eq!(flow.id.to_string(), "be3b0936-e8b1-4a7a-b5cc-daeb2e45b58d");
    assert_eq!(flow.request.url(), "http://address:22/path");
    assert_eq!(flow.request.headers.get("header"), Some("qvalue"));
    assert_eq!(&*flow.request.content, b"content");
    assert_eq!(flow.request.timestamp_end, ROption::RSome(946681201.0));
    let response = flow.response.as_ref().unwrap();
    assert_eq!(
        (response.status_code, response.reason.as_str()),
        (200, "OK")
    );
    assert_eq!(&*response.content, b"message");
    assert_eq!(response.http_version, HttpVersion::Http11);
    let client = &flow.client_conn;
    assert_eq!(client.peername.to_string(), "127.0.0.1:22");
    assert_eq!(client.sockname.get(), None);
    assert_eq!(
        client.alpn.as_ref().map(|a| a.to_vec()).into_option(),
        Some(b"http/1.1".to_vec())
    );
    assert_eq!(client.proxy_mode.as_str(), "regular");
    let server = flow.server_conn.as_ref().unwrap();
    assert_eq!(
        server.id.to_string(),
        "7cc52748-caf8-45de-bdf6-97e08cc47b1c"
    );
    assert_eq!(server.peername.to_string(), "192.168.0.1:22");
    // "address" is no IP address.
    assert_eq!(server.sockname.get(), None);
    assert_eq!(server.address.as_ref().unwrap().to_string(), "address:22");
    assert_eq!(server.timestamp_tcp_setup, ROption::RSome(946681203.0));
    assert_eq!(flow.timestamp_created, 946681200.0);
}

#[test]
fn reads_mitmproxys_sample_state() {
    let sample = mitmproxy_sample();
    check_mitmproxy_sample(&flow_from_state(sample.clone()).unwrap());
    let file = enc(&sample);
    let flows: Vec<_> = FlowReader::new(&file[..])
        .collect::<Result<_, _>>()
        .unwrap();
    check_mitmproxy_sample(&flows[0]);
}

/// The sample as version 18 wrote it: addresses under their old names, `tls_established`,
/// `cipher_name`, connection `state`, `via2`, a `True` server SNI.
fn version_18_sample() -> Value {
    let mut state = mitmproxy_sample();
    state.insert("version", Value::Int(18));
    let client = state.get_mut("client_conn").unwrap();
    let peer = client.remove("peername").unwrap();
    client.insert("address", peer);
    client.remove("transport_protocol");
    let cipher = client.remove("cipher").unwrap();
    client.insert("cipher_name", cipher);
    client.insert("tls_established", Value::Bool(false));
    client.insert("tls_extensions", Value::Null);
    client.insert("state", Value::Int(0));
    let server = state.get_mut("server_conn").unwrap();
    let peer = server.remove("peername").unwrap();
    server.insert("ip_address", list(vec![b(b"192.168.0.1"), Value::Int(22)]));
    drop(peer);
    let sock = server.remove("sockname").unwrap();
    server.insert("source_address", sock);
    let via = server.remove("via").unwrap();
    server.insert("via2", via);
    server.insert("via", Value::Null);
    server.remove("cipher");
    server.insert("tls_established", Value::Bool(false));
    server.insert("state", Value::Int(0));
    server.insert("sni", Value::Bool(true));
    state
}

#[test]
fn migrates_version_18() {
    let file = enc(&version_18_sample());
    let flows: Vec<_> = FlowReader::new(&file[..])
        .collect::<Result<_, _>>()
        .unwrap();
    let flow = &flows[0];
    check_mitmproxy_sample(flow);
    let server = flow.server_conn.as_ref().unwrap();
    // `sni = True` meant "the address".
    assert_eq!(
        server.sni.as_ref().map(|s| s.as_str()).into_option(),
        Some("address")
    );
    assert_eq!(
        flow.client_conn
            .cipher
            .as_ref()
            .map(|s| s.as_str())
            .into_option(),
        Some("cipher")
    );
}

/// The sample as version 12 wrote it: also no `comment`, `timestamp_created` or
/// `proxy_mode`, a bool `marked`, the flow's `mode`, WebSocket messages without `injected`.
fn version_12_sample() -> Value {
    let mut state = version_18_sample();
    state.insert("version", Value::Int(12));
    state.remove("comment");
    state.remove("timestamp_created");
    state.insert("marked", Value::Bool(true));
    state.insert("mode", s("regular"));
    state.get_mut("client_conn").unwrap().remove("proxy_mode");
    state.insert(
        "websocket",
        dict(vec![
            (
                "messages",
                list(vec![list(vec![
                    Value::Int(1),
                    Value::Bool(true),
                    b(b"hi"),
                    Value::Float(946681204.5),
                    Value::Bool(false),
                ])]),
            ),
            ("closed_by_client", Value::Bool(false)),
            ("close_code", Value::Int(1000)),
            ("close_reason", s("")),
            ("timestamp_end", Value::Null),
        ]),
    );
    state
}

#[test]
fn migrates_version_12() {
    let file = enc(&version_12_sample());
    let flows: Vec<_> = FlowReader::new(&file[..])
        .collect::<Result<_, _>>()
        .unwrap();
    let flow = &flows[0];
    check_mitmproxy_sample(flow);
    assert_eq!(flow.marked.as_str(), ":default:");
    assert_eq!(flow.comment.as_str(), "");
    let ws = flow.websocket.as_ref().unwrap();
    assert_eq!(ws.messages.len(), 1);
    assert!(!ws.messages[0].injected);
    assert_eq!(&*ws.messages[0].content, b"hi");
}

#[test]
fn migrates_from_version_4_and_legacy_tuples() {
    // Version 7: before trailers, authority, is_replay, TLS renames and connection ids.
    let mut state = version_18_sample();
    state.insert("version", Value::Int(7));
    for key in ["comment", "timestamp_created", "is_replay", "websocket"] {
        state.remove(key);
    }
    state.insert("marked", Value::Bool(false));
    state.insert("mode", s("regular"));
    let request = state.get_mut("request").unwrap();
    request.remove("trailers");
    request.remove("authority");
    request.insert("first_line_format", s("absolute"));
    request.insert("is_replay", Value::Bool(false));
    state.get_mut("response").unwrap().remove("trailers");
    for side in ["client_conn", "server_conn"] {
        let conn = state.get_mut(side).unwrap();
        for key in [
            "error",
            "tls",
            "alpn_offers",
            "cipher_list",
            "certificate_list",
            "state",
        ] {
            conn.remove(key);
        }
        let alpn = conn.remove("alpn").unwrap();
        conn.insert("alpn_proto_negotiated", alpn);
        conn.insert("sni", b(b"address"));
    }
    state.get_mut("client_conn").unwrap().remove("sockname");
    state
        .get_mut("client_conn")
        .unwrap()
        .remove("tls_extensions");
    let flow = flow_from_state(super::compat::migrate(state.clone()).unwrap()).unwrap();
    assert_eq!(flow.request.url(), "http://address:22/path");
    assert_eq!(flow.is_replay, ROption::RNone);
    assert_eq!(
        flow.client_conn
            .sni
            .as_ref()
            .map(|s| s.as_str())
            .into_option(),
        Some("address")
    );

    // (0, 19): a legacy tuple version goes through (1, 0), (2, 0), (3, 0) and 4.
    let mut legacy = state;
    legacy.insert("version", list(vec![Value::Int(0), Value::Int(19)]));
    let client = legacy.get_mut("client_conn").unwrap();
    client.insert("ssl_established", Value::Bool(false));
    client.insert("timestamp_ssl_setup", Value::Null);
    client.remove("tls_established");
    client.remove("timestamp_tls_setup");
    client.remove("id");
    client.remove("mitmcert");
    let address = client.remove("address").unwrap();
    client.insert("address", dict(vec![("address", address)]));
    let server = legacy.get_mut("server_conn").unwrap();
    server.insert("ssl_established", Value::Bool(false));
    server.insert("timestamp_ssl_setup", Value::Null);
    server.remove("tls_established");
    server.remove("timestamp_tls_setup");
    server.remove("id");
    server.remove("tls_version");
    server.remove("via2");
    for key in ["address", "source_address", "ip_address"] {
        let a = server.remove(key).unwrap();
        server.insert(key, dict(vec![("address", a)]));
    }
    let migrated = super::compat::migrate(legacy.clone()).unwrap();
    let flow = flow_from_state(migrated).unwrap();
    assert_eq!(flow.client_conn.peername.to_string(), "127.0.0.1:22");
    assert_eq!(
        flow.server_conn.as_ref().unwrap().peername.to_string(),
        "192.168.0.1:22"
    );
    // The same connection gets the same id each time.
    let again = flow_from_state(super::compat::migrate(legacy).unwrap()).unwrap();
    assert_eq!(again.client_conn.id, flow.client_conn.id);

    let mut unknown = mitmproxy_sample();
    unknown.insert("version", Value::Int(3));
    let message = super::compat::migrate(unknown).unwrap_err().to_string();
    assert!(
        message.contains("cannot read files with flow format version 3"),
        "{message}"
    );
}

// ---- HAR ----

#[test]
fn har_dates_and_escaping() {
    let mut out = String::new();
    super::har::iso8601(0.0, &mut out);
    assert_eq!(out, "1970-01-01T00:00:00.000000+00:00");
    out.clear();
    super::har::iso8601(1_795_576_129.095_311, &mut out);
    assert_eq!(out, "2026-11-25T03:08:49.095311+00:00");
    out.clear();
    super::har::iso8601(951_782_400.5, &mut out);
    assert_eq!(out, "2000-02-29T00:00:00.500000+00:00");
    out.clear();
    super::har::json_str("a\"b\\c\n\u{1}é\u{2028}", &mut out);
    assert_eq!(out, r#""a\"b\\c\n\u0001é\u2028""#);
}

#[test]
fn har_entries() {
    let flows = varied_flows();
    let entries: Vec<String> = flows
        .iter()
        .map(|f| {
            let mut e = String::new();
            super::har::har_entry(f, &mut e);
            e
        })
        .collect();
    let doc = super::har::har_document(&entries, "0.1.0");
    assert!(doc
        .starts_with(r#"{"log":{"version":"1.2","creator":{"name":"interpose","version":"0.1.0""#));
    let typical = &entries[0];
    for part in [
        r#""startedDateTime":"2024-11-25T02:00:00.123456+00:00""#,
        r#""method":"GET","url":"http://example.com/index.html?q=1","httpVersion":"HTTP/1.1""#,
        r#""queryString":[{"name":"q","value":"1"}]"#,
        r#""status":200,"statusText":"OK""#,
        r#""cookies":[{"name":"session","value":"abc","path":"/","domain":"","httpOnly":true,"secure":false}]"#,
        r#""content":{"size":100,"compression":0,"mimeType":"text/html; charset=utf-8","text":"aaaa"#,
        r#""cache":{},"timings":{"connect":"#,
        r#""serverIPAddress":"93.184.216.34""#,
    ] {
        assert!(typical.contains(part), "{part} not in {typical}");
    }
    assert!(!typical.contains("postData"));
    let post = &entries[1];
    assert!(post.contains(r#""postData":{"mimeType":"application/x-www-form-urlencoded","text":"a=1&b=%C3%A9","params":[{"name":"a","value":"1"},{"name":"b","value":"é"}]}"#), "{post}");
    assert!(post.contains(r#""httpVersion":"HTTP/2.0""#));
    let failed = &entries[2];
    assert!(failed.contains(r#""status":0"#) && failed.contains(r#""bodySize":-1"#));
    assert!(
        failed.contains(r#""_error":"Connection refused""#),
        "{failed}"
    );
    let ws = &entries[3];
    assert!(
        ws.contains(r#""_resourceType":"websocket","_webSocketMessages":[{"type":"send","time":"#)
    );
    assert!(ws.contains(r#""opcode":2,"data":"AAEC/w==""#), "{ws}");
    // Binary bodies are base64.
    let mut binary = typical_flow();
    if let ROption::RSome(r) = &mut binary.response {
        r.content = interpose_plugin_abi::Body::from_vec(vec![0, 159, 146, 150]);
    }
    let mut e = String::new();
    super::har::har_entry(&binary, &mut e);
    assert!(
        e.contains(r#""text":"AJ+Slg==","encoding":"base64""#),
        "{e}"
    );
    // Connections reused across an export report no connect time.
    let mut seen = std::collections::HashSet::new();
    let (mut first, mut second) = (String::new(), String::new());
    super::har::har_entry_with(&flows[0], &mut seen, &mut first);
    super::har::har_entry_with(&flows[0], &mut seen, &mut second);
    assert!(first.contains(r#""connect":9.99"#), "{first}");
    assert!(second.contains(r#""connect":-1.0,"ssl":-1.0"#), "{second}");
}
