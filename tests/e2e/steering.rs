//! Addons steering flows through the engine: rerouting in `request` and `server_connect`,
//! chunk hooks on streamed bodies, and `addon_errors=fail`.

use crate::harness::{closed_port, plugin, send, Connection, Proxy, RawUpstream, Upstream};

#[test]
fn changing_the_request_target_in_request_reroutes_it_and_updates_host() {
    let first = Upstream::start();
    let second = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(first.addr)
        .plugin(&plugin("engine-probe"))
        .start();
    let target = second.addr.to_string();
    let reply = Connection::open(proxy.addr)
        .send("GET", "/moved", &[("x-probe-reroute", &target)], b"")
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "upstream saw GET /moved");
    assert!(
        first.seen().is_empty(),
        "the original server was not contacted"
    );
    let seen = second.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("host"), Some(target.as_str()));
}

#[test]
fn changing_server_address_in_server_connect_connects_elsewhere() {
    let upstream = Upstream::start();
    let nowhere = closed_port();
    let proxy = Proxy::builder()
        .plugin(&plugin("engine-probe"))
        .env("PROBE_CONNECT_FROM", &nowhere.to_string())
        .env("PROBE_CONNECT_TO", &upstream.addr.to_string())
        .start();
    let reply = send(
        proxy.addr,
        "GET",
        &format!("http://{nowhere}/rerouted"),
        b"",
    )
    .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "upstream saw GET /rerouted");
    proxy.wait_for_log(&format!("rerouting {nowhere} to {}", upstream.addr));
}

#[test]
fn a_chunk_hook_transforms_a_streamed_response() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("engine-probe"))
        .start();
    let mut client = Connection::open(proxy.addr);
    let reply = client
        .send(
            "POST",
            "/echo",
            &[("x-probe-stream", "upper")],
            b"hello world",
        )
        .unwrap();
    assert_eq!(reply.text(), "HELLO WORLD");
    // The hook's end-of-body call may add a last piece.
    let reply = client
        .send("POST", "/echo", &[("x-probe-stream", "append")], b"abc")
        .unwrap();
    assert_eq!(reply.text(), "abc|end");
    // Streaming without a hook passes the body through as it is, length announced.
    let reply = client
        .send("POST", "/echo", &[("x-probe-stream", "on")], b"as is")
        .unwrap();
    assert_eq!(reply.text(), "as is");
    assert_eq!(reply.header("content-length"), Some("5"));
}

#[test]
fn a_chunk_hook_transforms_a_streamed_request() {
    let upstream = RawUpstream::start(&b"HTTP/1.1 204 No Content\r\n\r\n"[..]);
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("engine-probe"))
        .start();
    let reply = Connection::open(proxy.addr)
        .send(
            "POST",
            "/up",
            &[("x-probe-request-stream", "upper")],
            b"quiet words",
        )
        .unwrap();
    assert_eq!(reply.status, 204);
    let seen = upstream.first_request();
    assert!(seen.is_chunked(), "a hooked body has no length up front");
    assert_eq!(seen.body(), b"QUIET WORDS");
}

#[test]
fn addon_errors_fail_ends_the_flow_with_502_and_an_error_of_kind_addon() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .set("addon_errors", "fail")
        .plugin(&plugin("panic-request"))
        .plugin(&plugin("event-log"))
        .start();
    let reply = send(proxy.addr, "GET", "/boom", b"").unwrap();
    assert_eq!(reply.status, 502);
    assert!(
        reply.text().contains("panicked in request"),
        "{}",
        reply.text()
    );
    assert!(upstream.seen().is_empty(), "a failed flow goes no further");
    let error = proxy.wait_for_log("event error /boom");
    assert!(error.ends_with("(addon)"), "{error}");
    // The addon after the panicking one never saw the event.
    assert!(proxy.lines_with("event request /boom").is_empty());

    // The default, `continue`, logs and goes on.
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("panic-request"))
        .start();
    assert_eq!(send(proxy.addr, "GET", "/fine", b"").unwrap().status, 200);
}
