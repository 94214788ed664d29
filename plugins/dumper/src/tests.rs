use std::{
    io::Write,
    sync::{Arc, Mutex},
};

// Flows the proxy would build (a WebSocket, a server connection) need the ABI's own types.
use interpose_plugin_abi::abi_stable::std_types::ROption::{RNone, RSome};
use interpose_plugin_abi::{
    testing::{self, TestContext},
    Body, FlowError, HttpVersion,
};

use super::*;

/// A sink the test reads back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the dumper prints for `flow` with the options set.
fn dump(options: &[(&str, &str)], flow: &mut HttpFlow) -> String {
    let tctx = TestContext::new();
    for (name, value) in options {
        tctx.set_option(name, value);
    }
    let sink = Shared::default();
    let dumper = Dumper::with_sink(Box::new(sink.clone()));
    dumper.running(tctx.ctx());
    if flow.error.is_some() {
        dumper.error(tctx.ctx(), flow);
    } else {
        dumper.response(tctx.ctx(), flow);
    }
    dumper.done(tctx.ctx());
    let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    text
}

#[test]
fn one_flow_two_lines_as_mitmdump() {
    let mut flow = testing::flow_with_response();
    let text = dump(&[], &mut flow);
    let client = format::format_address(&flow.client_conn.conn.peername);
    let url = flow.request.url();
    let response = flow.response.as_ref().unwrap();
    let expected = format!(
        "{client}: GET {url}\n{pad} << {} {} {}\n",
        response.status_code,
        response.reason,
        format::pretty_size(response.content.len() as u64),
        pad = " ".repeat(client.len() - 2),
    );
    assert_eq!(text, expected);
}

#[test]
fn versions_shown_when_they_differ() {
    let mut flow = testing::flow_with_response();
    flow.response.as_mut().unwrap().http_version = HttpVersion::Http10;
    let text = dump(&[], &mut flow);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].ends_with(" HTTP/1.1"), "{text}");
    let client = format::format_address(&flow.client_conn.conn.peername);
    let pad = client.len() - 2 - "HTTP/1.0 ".len();
    assert!(
        lines[1].starts_with(&format!("{} << HTTP/1.0 200", " ".repeat(pad))),
        "{text}"
    );
}

#[test]
fn http2_shows_the_standard_reason() {
    let mut flow = testing::flow_with_response();
    flow.request.http_version = HttpVersion::Http2;
    let response = flow.response.as_mut().unwrap();
    response.http_version = HttpVersion::Http2;
    response.reason = "".into();
    let text = dump(&[], &mut flow);
    assert!(
        text.lines().next().unwrap().ends_with(" HTTP/2.0"),
        "{text}"
    );
    assert!(text.contains(" << HTTP/2.0 200 OK "), "{text}");
}

#[test]
fn errors_and_detail_zero() {
    let mut flow = testing::flow();
    flow.error = RSome(FlowError::new(ErrorKind::Server, "connection refused"));
    let text = dump(&[], &mut flow);
    assert!(text.ends_with("\n << connection refused\n"), "{text}");
    assert_eq!(dump(&[("flow_detail", "0")], &mut flow), "");
}

#[test]
fn headers_bodies_and_cut_off() {
    let mut flow = testing::flow_with_response();
    flow.request.headers.append("X-Bin", b"a\x01\xff");
    let body: String = (0..10).map(|i| format!("line {i}\n")).collect();
    flow.response.as_mut().unwrap().content = Body::from_vec(body.into_bytes());
    let two = dump(&[("flow_detail", "2")], &mut flow);
    assert!(two.contains("\n    X-Bin: a\\x01\\xff\n"), "{two}");
    assert!(!two.contains("line 0"), "{two}");
    let three = dump(
        &[("flow_detail", "3"), ("content_view_lines_cutoff", "4")],
        &mut flow,
    );
    assert!(three.contains("\r\n    line 3\n    (cut off)\n"), "{three}");
    assert!(!three.contains("line 4"), "{three}");
    let four = dump(
        &[("flow_detail", "4"), ("content_view_lines_cutoff", "4")],
        &mut flow,
    );
    assert!(
        four.contains("line 9") && !four.contains("cut off"),
        "{four}"
    );
}

#[test]
fn binary_bodies_as_hex() {
    let lines = format::body_lines(&Default::default(), &[0, 1, 2, b'A']);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("0000000000 00 01 02 41"),
        "{}",
        lines[0]
    );
    assert!(lines[0].ends_with("...A"), "{}", lines[0]);
}

#[test]
fn sizes_as_mitmproxy() {
    assert_eq!(format::pretty_size(6), "6b");
    assert_eq!(format::pretty_size(1536), "1.5k");
    assert_eq!(format::pretty_size(150 * 1024), "150k");
    assert_eq!(format::pretty_size(12 * 1024 * 1024), "12.0m");
}

#[test]
fn long_urls_cut_at_detail_one() {
    let mut flow = testing::flow_with_response();
    flow.request.path = format!("/{}", "a".repeat(200)).into();
    let text = dump(&[], &mut flow);
    assert!(text.lines().next().unwrap().ends_with('…'), "{text}");
    let two = dump(&[("flow_detail", "2")], &mut flow);
    assert!(two.contains(&"a".repeat(200)), "{two}");
}

#[test]
fn json_reindented_as_python_does() {
    let lines =
        format::json_lines(r#"{"a": [1, 2.5, {"b": null}], "c": {}, "d": [], "e": "x, y"}"#)
            .unwrap();
    assert_eq!(
        lines,
        [
            "{",
            "    \"a\": [",
            "        1,",
            "        2.5,",
            "        {",
            "            \"b\": null",
            "        }",
            "    ],",
            "    \"c\": {},",
            "    \"d\": [],",
            "    \"e\": \"x, y\"",
            "}",
        ]
    );
    assert!(format::json_lines("{\"a\": nope}").is_none());
    assert!(format::json_lines("[1, 2").is_none());
}

#[test]
fn query_pairs_aligned() {
    let mut flow = testing::flow();
    flow.request.path = "/p?x=1&long=two+words&e=%C3%A9#frag".into();
    assert_eq!(
        format::query_lines(flow.request.query().fields()),
        ["x:    1", "long: two words", "e:    é"]
    );
}

#[test]
fn websocket_messages_and_close_of_a_read_flow() {
    use interpose_plugin_abi::{Address, WebSocketData, WebSocketMessage, WebSocketMessageType};
    let mut flow = testing::flow_with_response();
    let mut server = testing::server();
    server.address = RSome(Address {
        host: "example.com".into(),
        port: 80,
    });
    flow.server_conn = RSome(interpose_plugin_abi::abi_stable::std_types::RArc::new(
        server,
    ));
    let message = |from_client, type_| WebSocketMessage {
        type_,
        from_client,
        content: Body::from_vec(b"hi".to_vec()),
        timestamp: 0.0,
        dropped: false,
        injected: false,
    };
    flow.websocket = RSome(WebSocketData {
        messages: vec![
            message(true, WebSocketMessageType::Text),
            message(false, WebSocketMessageType::Binary),
        ]
        .into(),
        closed_by_client: RSome(true),
        close_code: RSome(1000),
        close_reason: RSome("bye".into()),
        timestamp_end: RNone,
    });
    let mut out = String::new();
    for message in flow.websocket().unwrap().messages() {
        format::write_websocket_message(&mut out, &Style::default(), &flow, message);
    }
    format::write_websocket_end(&mut out, &Style::default(), &flow);
    let client = format::format_address(&flow.client_conn.conn.peername);
    let path = flow.request.path.to_string();
    assert_eq!(
        out,
        format!(
            "{client} -> WebSocket text message -> example.com:80{path}\n\
             {client} <- WebSocket binary message <- example.com:80{path}\n\
             WebSocket connection closed by client: 1000 bye\n"
        )
    );
    if let RSome(ws) = flow.websocket.as_mut() {
        ws.close_code = RSome(1006);
        ws.close_reason = RNone;
    }
    let mut out = String::new();
    for message in flow.websocket().unwrap().messages() {
        format::write_websocket_message(&mut out, &Style::default(), &flow, message);
    }
    format::write_websocket_end(&mut out, &Style::default(), &flow);
    assert!(
        out.ends_with(
            "Error in WebSocket connection to example.com:80: WebSocket Error: ABNORMAL_CLOSURE\n"
        ),
        "{out}"
    );
}

#[test]
fn websocket_message_content_from_detail_3() {
    let flow = interpose_plugin_abi::testing::websocket_flow(&[(true, "hello\nworld")]);
    let message = &flow.websocket().unwrap().messages()[0];
    let mut short = String::new();
    format::write_websocket_message(&mut short, &Style::default(), &flow, message);
    assert!(!short.contains("hello"), "{short}");
    let style = Style {
        detail: 3,
        cutoff: 1,
        ..Style::default()
    };
    let mut long = String::new();
    format::write_websocket_message(&mut long, &style, &flow, message);
    assert!(long.contains("-> WebSocket text message ->"), "{long}");
    assert!(long.contains("\n    hello\n"), "{long}");
    assert!(!long.contains("world"), "cut at one line: {long}");
    assert!(long.contains("(cut off)"), "{long}");
}
