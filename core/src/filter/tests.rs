//! The filter language: every operator both ways, the grammar, and the error positions.

use std::{io::Write, net::SocketAddr};

use abi_stable::std_types::{RArc, ROption};
use flate2::{write::GzEncoder, Compression};
use interpose_plugin_abi::{
    testing, Address, Body, ErrorKind, FlowError, HttpFlow, HttpVersion, ReplaySide, Request,
    SocketAddress, WebSocketData, WebSocketMessage, WebSocketMessageType,
};

use super::{matcher::pretty_url, Filter, FilterError};

/// `GET http://example.com/path` without a response.
fn req() -> HttpFlow {
    let mut flow = testing::flow();
    flow.request.headers.append("header", "qvalue");
    flow.request.content = Body::from("content");
    flow
}

/// [`req`] with a `200 OK` `text/plain` response whose body is `message`.
fn resp() -> HttpFlow {
    let mut flow = testing::flow_with_response();
    flow.request.headers.append("header", "qvalue");
    flow.request.content = Body::from("content");
    let response = flow.response.as_mut().unwrap();
    response.headers.append("header-response", "svalue");
    flow
}

#[track_caller]
fn check(expr: &str, flow: &HttpFlow) -> bool {
    Filter::parse_with(expr, false)
        .unwrap_or_else(|e| panic!("{e}"))
        .matches(flow)
}

/// Asserts that each expression matches `flow`, and that each `!`-prefixed one does not.
#[track_caller]
fn assert_cases(flow: &HttpFlow, cases: &[&str]) {
    for case in cases {
        match case.strip_prefix("!!") {
            Some(expr) => assert!(!check(expr, flow), "{expr:?} should not match"),
            None => assert!(check(case, flow), "{case:?} should match"),
        }
    }
}

#[track_caller]
fn error(expr: &str) -> FilterError {
    match Filter::parse_with(expr, false) {
        Ok(filter) => panic!("{expr:?} parsed as {filter:?}"),
        Err(e) => e,
    }
}

fn set_response_header(flow: &mut HttpFlow, name: &str, value: &str) {
    flow.response.as_mut().unwrap().headers.insert(name, value);
}

// ---- operators ----

#[test]
fn flow_type_operators() {
    let flow = req();
    assert_cases(&flow, &["~all", "~http", "!!~tcp", "!!~udp", "!!~dns"]);
}

#[test]
fn request_and_response() {
    assert_cases(&req(), &["~q", "!!~s"]);
    assert_cases(&resp(), &["!!~q", "~s"]);
}

#[test]
fn error_operator() {
    let mut flow = req();
    assert_cases(&flow, &["!!~e"]);
    flow.error = ROption::RSome(FlowError::new(ErrorKind::Server, "refused"));
    assert_cases(&flow, &["~e"]);
}

#[test]
fn asset() {
    let mut flow = resp();
    assert_cases(&flow, &["!!~a"]);
    for asset in [
        "text/javascript",
        "application/x-javascript",
        "application/javascript; charset=utf-8",
        "text/css",
        "image/png",
        "font/woff2",
        "application/font-woff",
    ] {
        set_response_header(&mut flow, "content-type", asset);
        assert_cases(&flow, &["~a"]);
    }
    // Case-sensitive, as in mitmproxy, and only the response counts.
    set_response_header(&mut flow, "content-type", "TEXT/CSS");
    assert_cases(&flow, &["!!~a"]);
    let mut flow = req();
    flow.request.headers.insert("content-type", "text/css");
    assert_cases(&flow, &["!!~a"]);
}

#[test]
fn content_type() {
    let mut q = req();
    let mut s = resp();
    assert_cases(&q, &["!!~t content"]);
    q.request.headers.insert("content-type", "text/json");
    assert_cases(&q, &["~t json", "~tq json", "!!~ts json"]);
    set_response_header(&mut s, "content-type", "text/json");
    assert_cases(&s, &["~t json", "~ts json", "!!~tq json"]);
    s.response.as_mut().unwrap().headers.remove("content-type");
    s.request.headers.insert("Content-Type", "text/json");
    assert_cases(&s, &["~t json", "~tq json", "!!~ts json"]);
}

#[test]
fn headers() {
    let q = req();
    let s = resp();
    assert_cases(
        &q,
        &[
            "!!~h nonexistent",
            "~h qvalue",
            "~h header",
            "~h 'header: qvalue'",
            "~hq 'header: qvalue'",
            "!!~hs 'header: qvalue'",
            // Multi-line mode over `Name: value\r\n` lines, original name case.
            "~h '^Host: example.com'",
            "~h '^header: qvalue\\r$'",
            "!!~h '^qvalue'",
        ],
    );
    assert_cases(
        &s,
        &[
            "~h 'header: qvalue'",
            "~h 'header-response: svalue'",
            "~hq 'header: qvalue'",
            "!!~hq 'header-response: svalue'",
            "~hs 'header-response: svalue'",
            "!!~hs 'header: qvalue'",
            "~hs '^content-type: text/plain'",
        ],
    );
}

#[test]
fn bodies() {
    let q = req();
    let s = resp();
    assert_cases(
        &q,
        &[
            "!!~b nonexistent",
            "~b content",
            "~bq content",
            "!!~bs content",
        ],
    );
    assert_cases(
        &s,
        &[
            "~b message",
            "~b content",
            "!!~bq message",
            "~bq content",
            "~bs message",
            "!!~bs content",
            "!!~bs nomatch",
        ],
    );
}

#[test]
fn bodies_match_across_lines_and_non_ascii() {
    let mut s = resp();
    s.response.as_mut().unwrap().content = Body::from("first\nsecond яч");
    assert_cases(
        &s,
        &["~bs first.second", "~bs яч", "~bs ЯЧ", "!!~bs 'first$'"],
    );
}

#[test]
fn bodies_are_decoded() {
    let mut s = resp();
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(b"compressed secret").unwrap();
    let response = s.response.as_mut().unwrap();
    response.content = Body::from_vec(gz.finish().unwrap());
    response.headers.insert("content-encoding", "gzip");
    assert_cases(&s, &["~bs 'compressed secret'", "~b secret"]);
    // Undecodable content is searched raw.
    let response = s.response.as_mut().unwrap();
    response.content = Body::from("plain secret");
    assert_cases(&s, &["~bs 'plain secret'"]);
}

#[test]
fn bodies_search_websocket_messages() {
    let mut flow = resp();
    let message = |from_client, text: &'static str| WebSocketMessage {
        type_: WebSocketMessageType::Text,
        from_client,
        content: Body::from(text),
        timestamp: 0.0,
        dropped: false,
        injected: false,
    };
    assert_cases(&flow, &["!!~websocket", "!!~b hello"]);
    flow.websocket = ROption::RSome(WebSocketData {
        messages: vec![message(true, "hello server"), message(false, "hi client")].into(),
        ..WebSocketData::default()
    });
    assert_cases(
        &flow,
        &[
            "~websocket",
            "~b 'hello server'",
            "~b 'hi client'",
            "~bq 'hello server'",
            "!!~bq 'hi client'",
            "~bs 'hi client'",
            "!!~bs 'hello server'",
        ],
    );
}

#[test]
fn method() {
    let mut flow = req();
    assert_cases(&flow, &["~m get", "~m GET", "~m ^GET$", "!!~m post"]);
    flow.request.method = "POST".into();
    assert_cases(&flow, &["~m post", "!!~m get"]);
}

#[test]
fn code() {
    assert_cases(&req(), &["!!~c 200"]);
    assert_cases(
        &resp(),
        &["~c 200", "!!~c 201", "!!~c 2", "!!~c 99999999999999999999"],
    );
}

#[test]
fn domain() {
    let mut flow = req();
    assert_cases(&flow, &["~d example.com", "~d EXAMPLE", "!!~d none"]);
    // Transparent mode: the host is an address, the Host header names the site.
    flow.request.host = "192.0.2.1".into();
    assert_cases(&flow, &["~d 192.0.2.1", "~d example.com", "!!~d other"]);
}

#[test]
fn url() {
    let mut flow = req();
    assert_cases(
        &flow,
        &[
            "~u example.com/path",
            "~u ^http://example.com/path$",
            "example.com/path",
            "!!~u moo/path",
        ],
    );
    // Without a Host header the URL comes from host and port.
    flow.request.headers.remove("host");
    flow.request.host = "address".into();
    flow.request.port = 22;
    assert_cases(&flow, &["~u address:22/path", "!!~u example"]);
    assert_eq!(pretty_url(&flow.request), "http://address:22/path");
}

#[test]
fn pretty_url_prefers_the_host_header() {
    let mut request = Request::make("GET", "https://192.0.2.1:8443/a?b=1", "").unwrap();
    request.headers.insert("Host", "example.com");
    assert_eq!(pretty_url(&request), "https://example.com/a?b=1");
    request.headers.insert("Host", "example.com:8080");
    assert_eq!(pretty_url(&request), "https://example.com:8080/a?b=1");
    request.headers.insert("Host", "[::1]:443");
    assert_eq!(pretty_url(&request), "https://[::1]/a?b=1");
    request.http_version = HttpVersion::Http2;
    request.authority = "h2.example:443".into();
    assert_eq!(pretty_url(&request), "https://h2.example/a?b=1");

    let mut connect = Request::make("CONNECT", "http://example.com:443", "").unwrap();
    connect.authority = "example.com:443".into();
    assert_eq!(pretty_url(&connect), "example.com:443");
}

#[test]
fn source_and_destination() {
    let mut flow = req();
    assert_cases(
        &flow,
        &[
            "~src 127.0.0.1",
            "~src :22",
            "~src ^127.0.0.1:22$",
            "!!~src :99",
            "!!~src foobar",
            "!!~dst example.com",
        ],
    );
    let mut server = testing::server();
    flow.server_conn = ROption::RSome(RArc::new(server.clone()));
    assert_cases(
        &flow,
        &["~dst example.com", "~dst ^example.com:443$", "!!~dst :80"],
    );
    server.address = ROption::RSome(Address {
        host: "::1".into(),
        port: 8080,
    });
    flow.server_conn = ROption::RSome(RArc::new(server.clone()));
    assert_cases(&flow, &["~dst '^::1:8080$'"]);
    server.address = ROption::RNone;
    flow.server_conn = ROption::RSome(RArc::new(server));
    assert_cases(&flow, &["!!~dst ."]);

    let mut client = testing::client();
    client.conn.peername = SocketAddress::from("[::1]:4000".parse::<SocketAddr>().unwrap());
    flow.client_conn = RArc::new(client.clone());
    assert_cases(&flow, &["~src '^::1:4000$'"]);
    client.conn.peername = SocketAddress::NONE;
    flow.client_conn = RArc::new(client);
    assert_cases(&flow, &["!!~src ."]);
}

#[test]
fn marks_comments_and_metadata() {
    let mut flow = req();
    assert_cases(
        &flow,
        &["!!~marked", "!!~marker .", "!!~comment .", "!!~meta ."],
    );
    flow.marked = ":default:".into();
    assert_cases(&flow, &["~marked", "~marker default", "!!~marker X"]);
    flow.marked = "X".into();
    assert_cases(&flow, &["~marker ^x$"]);
    flow.comment = "first line\nnote".into();
    assert_cases(&flow, &["~comment ^note", "!!~comment nothing"]);
    flow.metadata.insert("a", "string");
    flow.metadata.insert("key", "value");
    assert_cases(
        &flow,
        &[
            "~meta string",
            "~meta '^key: value$'",
            "~meta '^a: string$'",
            "!!~meta no",
        ],
    );
}

#[test]
fn replays() {
    let mut flow = req();
    assert_cases(&flow, &["!!~replay", "!!~replayq", "!!~replays"]);
    flow.is_replay = ROption::RSome(ReplaySide::Request);
    assert_cases(&flow, &["~replay", "~replayq", "!!~replays"]);
    flow.is_replay = ROption::RSome(ReplaySide::Response);
    assert_cases(&flow, &["~replay", "!!~replayq", "~replays"]);
}

// ---- grammar ----

#[test]
fn and_or_not() {
    let s = resp();
    assert_cases(
        &s,
        &[
            "~c 200 & ~h head",
            "!!~c 200 & ~h nohead",
            "(~c 200 & ~h head) & ~b content",
            "!!(~c 200 & ~h head) & ~b nonexistent",
            "~c 200 | ~h nohead",
            "~c 201 | ~h head",
            "!!~c 201 | ~h nohead",
            "(~c 201 | ~h nohead) | ~s",
            "!!! ~c 200",
            "! ~c 201",
            "!~c 201 !~c 202",
            "!!!~c 201 !~c 200",
            "!!~c 201 & ~s",
        ],
    );
    assert!(check("!!~c 200", &s));
}

#[test]
fn precedence() {
    let s = resp();
    // `&` binds tighter than `|`: `~q & ~e | ~s` is `(~q & ~e) | ~s`.
    assert_cases(&s, &["~q & ~e | ~s", "~s | ~q & ~e", "!!~q & (~e | ~s)"]);
    // `!` binds tighter than `&`.
    assert_cases(&s, &["!~q & ~s", "!!!(~q & ~s) & ~q"]);
    // Juxtaposition binds loosest: `~q ~s | ~e` is `~q & (~s | ~e)`.
    assert_cases(&s, &["!!~q ~s | ~s", "~q & ~s | ~s", "~c 200 ~h head"]);
    assert_cases(&s, &["!!~c 200 ~h nohead", "~s ~q | ~s"]);
}

#[test]
fn grouping_and_juxtaposition() {
    let s = resp();
    assert_cases(
        &s,
        &[
            "((~s))",
            "(~s)",
            "!(~q | ~e)",
            "(~s ~c 200)",
            "!!(~s ~c 201)",
            "~s&~c 200",
            "!!~q|~e",
            "example.com ~h header",
            "!!example.com ~h nothing",
        ],
    );
}

#[test]
fn operator_names_need_a_word_end() {
    let mut flow = req();
    // `~hq` is the request-header operator, never `~h` with the regex `q`.
    flow.request.headers.append("x", "q");
    flow.request.headers.remove("header");
    assert_cases(&flow, &["~h q", "~hq x", "~hq '^x: q'"]);
    assert_eq!(error("~hq").message, "missing argument: ~hq needs a regex");
    assert_eq!(error("~hfoo").message, "unknown operator ~hfoo");
    assert_eq!(error("~q~s").position, 2);
    assert_eq!(error("~h\"x\"").position, 2);
    assert_eq!(error("~c200").message, "unknown operator ~c200");
}

#[test]
fn quoting() {
    let mut flow = req();
    flow.request.path = "/getInfo(x) ~u bar it's \"q\"".into();
    assert_cases(
        &flow,
        &[
            "~u 'getInfo\\\\(x\\\\) ~u bar'",
            "~u \"get(Info|Routers)\"",
            "~u 'it\\'s'",
            "~u \"it's \\\"q\\\"\"",
            "~u 'bar it' ~u Info",
            "\"~u bar\"",
            "!!~u 'nothing' ~u Info",
        ],
    );
    // `|`, `&` and `!` inside an unquoted regex are part of it.
    assert_cases(
        &req(),
        &["~u nothing|example", "~d x!|example", "!!~u example&"],
    );
    // \t and friends are whitespace; other escapes stand for the character.
    let mut flow = req();
    flow.comment = "a\tb.c".into();
    assert_cases(
        &flow,
        &["~comment 'a\\tb'", "~comment 'b\\.c'", "~comment 'b\\\\.c'"],
    );
    flow.comment = "abxc".into();
    assert_cases(&flow, &["~comment 'b\\.c'", "!!~comment 'b\\\\.c'"]);
}

#[test]
fn non_ascii() {
    let mut flow = req();
    flow.request.path = "/шгн".into();
    assert_cases(&flow, &["~u шгн", "~u ШГН", "шгн"]);
}

#[test]
fn case_insensitive_by_default_and_sensitive_on_request() {
    let flow = req();
    for expr in ["~d EXAMPLE.com", "~h HOST", "~m get", "EXAMPLE"] {
        assert!(Filter::parse_with(expr, false).unwrap().matches(&flow));
        assert!(!Filter::parse_with(expr, true).unwrap().matches(&flow));
    }
    assert!(Filter::parse_with("~d example.com", true)
        .unwrap()
        .matches(&flow));
    // The tests do not set MITMPROXY_CASE_SENSITIVE_FILTERS.
    if std::env::var_os("MITMPROXY_CASE_SENSITIVE_FILTERS").is_none() {
        assert!(Filter::parse("~d EXAMPLE").unwrap().matches(&flow));
    }
}

#[test]
fn filters_are_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Filter>();
    let filter = Filter::parse("~h 'header: qvalue' & ~u example").unwrap();
    assert_eq!(filter.expression(), "~h 'header: qvalue' & ~u example");
    std::thread::scope(|s| {
        for _ in 0..4 {
            let filter = filter.clone();
            s.spawn(move || assert!(filter.matches(&req())));
        }
    });
}

// ---- errors ----

#[test]
fn error_positions() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 0, "empty filter expression"),
        ("   ", 0, "empty filter expression"),
        ("~q & ~zz", 5, "unknown operator ~zz"),
        ("~", 0, "expected an operator name after ~"),
        ("~b", 2, "missing argument: ~b needs a regex"),
        ("~d )", 3, "missing argument: ~d needs a regex, found )"),
        ("~d ~q", 3, "missing argument: ~d needs a regex, found ~q"),
        ("~d !foo", 3, "missing argument: ~d needs a regex, found !"),
        ("(~q", 0, "unclosed ("),
        ("~s & (~q | (~e)", 5, "unclosed ("),
        ("~q)", 2, "unmatched ) without an opening ("),
        ("()", 1, "expected an expression, found )"),
        ("~q &", 4, "missing expression after &"),
        ("~q | ", 5, "missing expression after |"),
        ("~q !", 4, "missing expression after !"),
        ("~q & & ~s", 5, "expected an expression, found &"),
        ("| ~q", 0, "expected an expression, found |"),
        (
            "~c abc",
            3,
            "~c needs a status code (a number), not \"abc\"",
        ),
        (
            "~c '200'",
            3,
            "~c needs a status code (a number), not \"200\"",
        ),
        (
            "~c 200x",
            3,
            "~c needs a status code (a number), not \"200x\"",
        ),
        ("~c", 2, "missing argument: ~c needs a status code"),
        ("~u 'abc", 3, "unterminated quoted string"),
        ("~u \"abc\\\"", 3, "unterminated quoted string"),
    ];
    for &(expr, position, message) in cases {
        let e = error(expr);
        assert_eq!(
            (e.position, e.message.as_str(), e.expression.as_str()),
            (position, message, expr),
            "{expr:?}"
        );
    }
}

#[test]
fn bad_regexes_point_at_their_argument() {
    for (expr, position) in [
        ("~h [", 3),
        ("~q & ~u 'a(?=b)'", 8),
        ("~d '(a)\\\\1'", 3),
        ("~q ~b 'x\\\\Z'", 6),
        ("~m *", 3),
    ] {
        let e = error(expr);
        assert_eq!(e.position, position, "{expr:?}: {e}");
        assert!(e.message.starts_with("invalid regex"), "{expr:?}: {e}");
    }
    let e = error("~u 'a(?=b)'");
    assert!(e.message.contains("look-around"), "{}", e.message);
    assert!(!e.message.contains('\n'), "{}", e.message);
}

#[test]
fn positions_count_characters_not_bytes() {
    assert_eq!(error("шгн & ~zz").position, 6);
}

#[test]
fn error_display_shows_a_caret() {
    let e = error("~q & ~zz");
    assert_eq!(
        e.to_string(),
        "invalid filter expression: unknown operator ~zz at column 6\n  ~q & ~zz\n       ^"
    );
    let e = error("~q &");
    assert_eq!(
        e.to_string(),
        "invalid filter expression: missing expression after & at column 5\n  ~q &\n      ^"
    );
    let boxed: Box<dyn std::error::Error> = Box::new(e);
    assert!(boxed.to_string().starts_with("invalid filter expression"));
}
