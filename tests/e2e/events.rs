//! Events: their order, and how addons steer flows (short-circuit, kill), survive panics and
//! learn about failures.

use crate::harness::{
    bad_upstream, closed_port, plugin, send, BadUpstream, Connection, Proxy, Upstream,
};

/// The index of the first log line containing `needle`.
fn first(log: &[String], needle: &str) -> usize {
    log.iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{}", log.join("\n")))
}

#[test]
fn events_arrive_in_mitmproxy_order_and_done_fires_once_at_shutdown() {
    let upstream = Upstream::start();
    let mut proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("event-log"))
        .start();
    assert_eq!(send(proxy.addr, "GET", "/order", b"").unwrap().status, 200);
    proxy.wait_for_log("event client_disconnected");
    let status = proxy.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");

    let log = proxy.log();
    let order = [
        "event load",
        "event running",
        "event client_connected",
        "event requestheaders /order status=-",
        "event request /order status=-",
        "event server_connect",
        "event server_connected",
        "event responseheaders /order status=200",
        "event response /order status=200",
        "event done",
    ];
    let positions: Vec<usize> = order.iter().map(|e| first(&log, e)).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "events out of order:\n{}",
        log.join("\n")
    );
    let done = first(&log, "event done");
    assert!(first(&log, "event server_disconnected") < done);
    assert!(first(&log, "event client_disconnected") < done);
    assert_eq!(proxy.lines_with("event done").len(), 1);
    assert!(proxy.lines_with("event error").is_empty());
}

#[test]
fn a_response_set_in_request_short_circuits_the_upstream() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("block-path"))
        .plugin(&plugin("event-log"))
        .start();
    let reply = send(proxy.addr, "GET", "/blocked", b"").unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.text(), "Blocked by Interpose\n");
    assert!(upstream.seen().is_empty(), "the upstream was not contacted");
    assert!(proxy.lines_with("event server_connect").is_empty());
    // Addons still see the response events of an answered flow.
    proxy.wait_for_log("event responseheaders /blocked status=403");
    proxy.wait_for_log("event response /blocked status=403");

    let reply = send(proxy.addr, "GET", "/open", b"").unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.seen().len(), 1);
}

#[test]
fn killed_flows_are_dropped_and_the_proxy_goes_on() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("event-log"))
        .start();

    let killed = send(proxy.addr, "GET", "/kill-at-request", b"");
    assert!(killed.is_err(), "no response for a killed flow: {killed:?}");
    proxy.wait_for_log("event error /kill-at-request status=- error=Connection killed.");
    assert!(upstream.seen().is_empty());

    // Killed in `response`: the server saw the request, the client gets nothing, and the
    // flow's `error` event says it was killed.
    let killed = send(proxy.addr, "GET", "/kill-at-response", b"");
    assert!(killed.is_err(), "{killed:?}");
    assert_eq!(upstream.seen().len(), 1);
    proxy.wait_for_log("event error /kill-at-response status=200 error=Connection killed.");

    assert_eq!(send(proxy.addr, "GET", "/alive", b"").unwrap().status, 200);
}

#[test]
fn a_panicking_addon_is_reported_and_flows_go_on() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("panic-request"))
        .plugin(&plugin("anatomy"))
        .start();
    let mut client = Connection::open(proxy.addr);
    for path in ["/p1", "/p2"] {
        let reply = client.send("GET", path, &[], b"").unwrap();
        assert_eq!(reply.status, 200);
    }
    let reports = proxy.wait_for_count("panicked in request", 2);
    assert!(
        reports[0].contains("addon 'panicky'") && reports[0].contains("fixture panic for /p1"),
        "{reports:?}"
    );
    assert!(reports[0].contains("plugin panic-request"), "{reports:?}");
    // The next addon still ran, and the flow went on as the panicking addon left it.
    proxy.wait_for_log("We've seen 2 flows");
    assert_eq!(upstream.seen()[1].header("x-before-panic"), Some("1"));
}

#[test]
fn upstream_failures_become_502_and_error_events() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder().plugin(&plugin("event-log")).start();

    let refused = closed_port();
    let reply = send(proxy.addr, "GET", &format!("http://{refused}/r"), b"").unwrap();
    assert_eq!(reply.status, 502);
    assert!(
        reply
            .text()
            .contains(&format!("Cannot connect to {refused}")),
        "{}",
        reply.text()
    );
    proxy.wait_for_log("event server_connect_error");
    proxy.wait_for_log("event error /r status=- error=Cannot connect to");

    let hangup = bad_upstream(BadUpstream::Hangup);
    let reply = send(proxy.addr, "GET", &format!("http://{hangup}/h"), b"").unwrap();
    assert_eq!(reply.status, 502);
    assert!(
        reply.text().contains(&format!("server {hangup} failed"))
            && reply.text().contains("closed before a complete response"),
        "{}",
        reply.text()
    );
    proxy.wait_for_log("event error /h");

    let garbage = bad_upstream(BadUpstream::Garbage);
    let reply = send(proxy.addr, "GET", &format!("http://{garbage}/g"), b"").unwrap();
    assert_eq!(reply.status, 502);
    assert!(
        reply.text().contains("invalid HTTP response"),
        "{}",
        reply.text()
    );
    proxy.wait_for_log("event error /g");

    assert!(
        proxy.lines_with("event response /").is_empty(),
        "no response events"
    );
    let fine = format!("http://{}/after", upstream.addr);
    assert_eq!(send(proxy.addr, "GET", &fine, b"").unwrap().status, 200);
}

#[test]
fn a_client_leaving_mid_flow_gives_the_flow_an_error() {
    let slow = bad_upstream(BadUpstream::Slow);
    let proxy = Proxy::builder()
        .reverse(slow)
        .plugin(&plugin("event-log"))
        .start();
    let mut client = std::net::TcpStream::connect(proxy.addr).unwrap();
    std::io::Write::write_all(&mut client, b"GET /leaving HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    proxy.wait_for_log("event server_connected");
    drop(client);
    proxy.wait_for_log("event error /leaving status=- error=Client disconnected.");
    proxy.wait_for_log("event client_disconnected");
    let log = proxy.log();
    assert!(
        first(&log, "event error /leaving") < first(&log, "event client_disconnected"),
        "the flow's error comes before the disconnect:\n{}",
        log.join("\n")
    );
    assert!(proxy.lines_with("event response /leaving").is_empty());
}

#[test]
fn shutdown_ends_flows_in_flight_with_an_error_before_done() {
    let slow = bad_upstream(BadUpstream::Slow);
    let mut proxy = Proxy::builder()
        .reverse(slow)
        .set("shutdown_grace", "0.3")
        .plugin(&plugin("event-log"))
        .start();
    let mut client = std::net::TcpStream::connect(proxy.addr).unwrap();
    std::io::Write::write_all(&mut client, b"GET /in-flight HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    proxy.wait_for_log("event server_connected");
    let status = proxy.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    let log = proxy.log();
    let error = first(
        &log,
        "event error /in-flight status=- error=Proxy shutting down.",
    );
    let done = first(&log, "event done");
    assert!(error < done, "error before done:\n{}", log.join("\n"));
    assert!(first(&log, "event client_disconnected") < done);
    assert!(first(&log, "event server_disconnected") < done);
    assert_eq!(proxy.lines_with("event done").len(), 1);
    drop(client);
}

#[test]
fn a_server_slower_than_response_timeout_gets_504_and_a_timeout_error() {
    let slow = bad_upstream(BadUpstream::Slow);
    let proxy = Proxy::builder()
        .reverse(slow)
        .set("response_timeout", "0.5")
        .plugin(&plugin("event-log"))
        .start();
    let started = std::time::Instant::now();
    let reply = send(proxy.addr, "GET", "/late", b"").unwrap();
    assert_eq!(reply.status, 504, "{}", reply.text());
    assert!(
        reply.text().contains("did not answer within 0.5s"),
        "{}",
        reply.text()
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    let error = proxy.wait_for_log("event error /late");
    assert!(error.ends_with("(timeout)"), "{error}");
}
