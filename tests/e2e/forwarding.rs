//! Forwarding: what the upstream receives and what the client gets back.

use std::collections::HashSet;

use crate::harness::{plugin, raw_exchange, send, Connection, Proxy, Upstream};

#[test]
fn reverse_mode_forwards_requests_and_responses() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder().reverse(upstream.addr).start();
    let reply = send(proxy.addr, "GET", "/hello?x=1", b"").unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "upstream saw GET /hello?x=1");
    assert_eq!(reply.header("x-upstream"), Some("yes"));

    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/hello?x=1");
    // mitmproxy rewrites Host to the reverse target.
    assert_eq!(
        seen[0].header("host"),
        Some(upstream.addr.to_string().as_str())
    );
}

#[test]
fn request_bodies_reach_the_upstream_and_come_back() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder().reverse(upstream.addr).start();
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut client = Connection::open(proxy.addr);
    let reply = client
        .send("POST", "/echo", &[("transfer-encoding", "chunked")], &body)
        .unwrap();
    assert_eq!(reply.status, 200);
    assert!(reply.body == body, "echoed body differs");
    let seen = upstream.seen();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].body.len(), body.len());
    assert_eq!(
        seen[0].header("content-length"),
        Some(body.len().to_string().as_str()),
        "the proxy frames the body it buffered with Content-Length"
    );
    assert_eq!(seen[0].header("transfer-encoding"), None);
}

#[test]
fn regular_mode_takes_absolute_form_requests() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder().start();
    let url = format!("http://{}/page", upstream.addr);
    let reply = send(proxy.addr, "GET", &url, b"").unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "upstream saw GET /page");
    let seen = upstream.seen();
    assert_eq!(seen[0].path, "/page", "forwarded in origin form");
    assert_eq!(
        seen[0].header("host"),
        Some(upstream.addr.to_string().as_str())
    );

    // An origin-form request to a regular proxy is a client mistake, answered with 400.
    let reply = send(proxy.addr, "GET", "/page", b"").unwrap();
    assert_eq!(reply.status, 400);
    assert!(reply.text().contains("absolute-form"), "{}", reply.text());
}

#[test]
fn curl_through_the_regular_proxy() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder().plugin(&plugin("anatomy2")).start();
    let output = std::process::Command::new("curl")
        .args(["-sS", "-i", "-x"])
        .arg(format!("http://{}", proxy.addr))
        .arg(format!("http://{}/via-curl", upstream.addr))
        .output()
        .expect("curl is installed (CI installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "curl failed: {text}");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("upstream saw GET /via-curl"), "{text}");
    assert_eq!(upstream.seen()[0].header("myheader"), Some("value"));
}

#[test]
fn keep_alive_client_and_pooled_upstream_connections() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder().reverse(upstream.addr).start();
    let mut client = Connection::open(proxy.addr);
    for i in 0..20 {
        let reply = client.send("GET", &format!("/n/{i}"), &[], b"").unwrap();
        assert_eq!(reply.text(), format!("upstream saw GET /n/{i}"));
    }
    // A second client reuses the idle upstream connection too.
    let reply = send(proxy.addr, "GET", "/other-client", b"").unwrap();
    assert_eq!(reply.status, 200);
    let connections: HashSet<_> = upstream.seen().iter().map(|s| s.peer).collect();
    assert_eq!(upstream.seen().len(), 21);
    assert_eq!(
        connections.len(),
        1,
        "all requests on one upstream connection"
    );
}

#[test]
fn head_requests_keep_the_content_length() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder().reverse(upstream.addr).start();
    let answer = raw_exchange(
        proxy.addr,
        b"HEAD /resource HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let expected = "upstream saw HEAD /resource".len();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains(&format!("content-length: {expected}\r\n")),
        "{answer}"
    );
    assert!(
        answer.ends_with("\r\n\r\n"),
        "no body after a HEAD: {answer:?}"
    );
}

#[test]
fn malformed_requests_get_400_and_the_proxy_keeps_serving() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder().reverse(upstream.addr).start();
    let answer = raw_exchange(proxy.addr, b"THIS IS NOT HTTP\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    let answer = raw_exchange(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    assert!(
        upstream.seen().is_empty(),
        "nothing malformed reached the upstream"
    );
    assert_eq!(send(proxy.addr, "GET", "/fine", b"").unwrap().status, 200);
}

#[test]
fn the_built_in_disable_h2c_strips_cleartext_http2_upgrades() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder().reverse(upstream.addr).start();
    let mut client = Connection::open(proxy.addr);
    let reply = client
        .send(
            "GET",
            "/upgrade-me",
            &[
                ("connection", "Upgrade, HTTP2-Settings"),
                ("upgrade", "h2c"),
                ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
            ],
            b"",
        )
        .unwrap();
    assert_eq!(reply.status, 200);
    let seen = &upstream.seen()[0];
    assert_eq!(seen.header("http2-settings"), None);
    assert_eq!(seen.header("upgrade"), None);
    proxy.wait_for_log("disable_h2c: HTTP/2 cleartext connections");
}

#[test]
fn a_request_addressed_to_the_proxy_itself_is_refused_instead_of_looping() {
    let proxy = Proxy::builder().start();
    let url = format!("http://{}/loop", proxy.addr);
    let reply = send(proxy.addr, "GET", &url, b"").unwrap();
    assert_eq!(reply.status, 502);
    assert!(
        reply.text().contains("this proxy itself"),
        "{}",
        reply.text()
    );
    let url = format!("http://localhost:{}/loop", proxy.addr.port());
    assert_eq!(send(proxy.addr, "GET", &url, b"").unwrap().status, 502);
}

#[test]
fn expect_100_continue_is_answered_by_the_proxy() {
    use std::io::{Read, Write};
    let upstream = Upstream::start();
    let proxy = Proxy::builder().reverse(upstream.addr).start();
    let mut client = std::net::TcpStream::connect(proxy.addr).unwrap();
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    client
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\
              Connection: close\r\n\r\n",
        )
        .unwrap();
    let mut interim = [0u8; 25];
    client.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    client.write_all(b"hello").unwrap();
    let mut answer = String::new();
    let _ = client.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello"), "{answer}");
    let seen = upstream.seen();
    assert_eq!(seen[0].body, b"hello");
    assert_eq!(
        seen[0].header("expect"),
        None,
        "the proxy answered it; it is not forwarded"
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder().reverse(upstream.addr).start();
    let answer = raw_exchange(
        proxy.addr,
        b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let one = answer.find("upstream saw GET /one").expect(&answer);
    let two = answer.find("upstream saw GET /two").expect(&answer);
    let three = answer.find("upstream saw GET /three").expect(&answer);
    assert!(one < two && two < three, "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 3, "{answer}");
}
