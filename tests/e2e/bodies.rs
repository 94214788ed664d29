//! Bodies and heads on the wire: trailers, and header-field case and order.

use crate::harness::{raw_request, Proxy, RawUpstream};

#[test]
fn request_trailers_reach_the_upstream() {
    let upstream = RawUpstream::start(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..]);
    let proxy = Proxy::builder().reverse(upstream.addr).start();
    let answer = raw_request(
        proxy.addr,
        b"POST /trailers HTTP/1.1\r\n\
          Host: localhost\r\n\
          Transfer-Encoding: chunked\r\n\
          Trailer: X-Checksum\r\n\
          \r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\n\
          X-Checksum: abc\r\n\
          \r\n",
    )
    .unwrap_or_else(|e| panic!("{e}\nproxy log:\n{}", proxy.dump()));
    assert!(
        answer.start_line().starts_with("HTTP/1.1 200"),
        "{answer:?}"
    );
    assert_eq!(answer.text(), "ok");

    let seen = upstream.first_request();
    let head = seen.head();
    assert!(seen.is_chunked(), "trailers need a chunked body: {head}");
    assert_eq!(seen.text(), "hello world");
    let trailers = seen.trailers();
    assert!(
        trailers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("x-checksum") && v == "abc"),
        "the trailer reached the upstream: {:?}",
        String::from_utf8_lossy(&seen.bytes)
    );
}

#[test]
fn response_trailers_reach_the_client() {
    let upstream = RawUpstream::start(
        &b"HTTP/1.1 200 OK\r\n\
           Transfer-Encoding: chunked\r\n\
           Trailer: X-Checksum\r\n\
           \r\n\
           5\r\nhello\r\n0\r\n\
           X-Checksum: abc\r\n\
           \r\n"[..],
    );
    let proxy = Proxy::builder().reverse(upstream.addr).start();
    let answer = raw_request(
        proxy.addr,
        b"GET /trailers HTTP/1.1\r\nHost: localhost\r\nTE: trailers\r\n\r\n",
    )
    .unwrap_or_else(|e| panic!("{e}\nproxy log:\n{}", proxy.dump()));
    let wire = String::from_utf8_lossy(&answer.bytes).into_owned();
    assert!(answer.start_line().starts_with("HTTP/1.1 200"), "{wire:?}");
    assert!(
        answer.is_chunked(),
        "trailers need a chunked body: {wire:?}"
    );
    assert_eq!(answer.text(), "hello");
    assert!(
        answer
            .trailers()
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("x-checksum") && v == "abc"),
        "the trailer reached the client: {wire:?}"
    );
}

/// Fields a proxy may add or drop on the way: the ones that frame the message.
fn is_framing(name: &str) -> bool {
    [
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
    ]
    .iter()
    .any(|f| name.eq_ignore_ascii_case(f))
}

#[test]
fn request_field_names_keep_their_case_and_order() {
    let upstream = RawUpstream::start(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..]);
    let proxy = Proxy::builder().reverse(upstream.addr).start();
    let answer = raw_request(
        proxy.addr,
        b"GET /case HTTP/1.1\r\n\
          Host: localhost\r\n\
          X-Mixed-Case: 1\r\n\
          x-lower: 2\r\n\
          X-UPPER: 3\r\n\
          Accept: */*\r\n\
          \r\n",
    )
    .unwrap_or_else(|e| panic!("{e}\nproxy log:\n{}", proxy.dump()));
    assert!(
        answer.start_line().starts_with("HTTP/1.1 200"),
        "{answer:?}"
    );

    let seen = upstream.first_request();
    let fields: Vec<(String, String)> = seen
        .fields()
        .into_iter()
        .filter(|(n, _)| !is_framing(n))
        .collect();
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["Host", "X-Mixed-Case", "x-lower", "X-UPPER", "Accept"],
        "as on the wire:\n{}",
        seen.head()
    );
    // Host is rewritten to the reverse target; the others pass untouched.
    let values: Vec<&str> = fields[1..].iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(values, ["1", "2", "3", "*/*"], "{}", seen.head());
}

#[test]
fn response_field_names_keep_their_case() {
    let upstream = RawUpstream::start(
        &b"HTTP/1.1 200 OK\r\nX-Server-Case: y\r\nContent-Length: 2\r\n\r\nok"[..],
    );
    let proxy = Proxy::builder().reverse(upstream.addr).start();
    let answer = raw_request(proxy.addr, b"GET /case HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap_or_else(|e| panic!("{e}\nproxy log:\n{}", proxy.dump()));
    assert!(
        answer.start_line().starts_with("HTTP/1.1 200"),
        "{answer:?}"
    );
    assert!(
        answer
            .fields()
            .iter()
            .any(|(n, v)| n == "X-Server-Case" && v == "y"),
        "spelled as the upstream sent it:\n{}",
        answer.head()
    );
    assert_eq!(answer.text(), "ok");
}
