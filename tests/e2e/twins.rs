//! The Rust twins of mitmproxy's example addons (`examples/<mitmproxy's name>/`), each loaded
//! into the real proxy and checked for what the Python original does, seen from outside:
//! by the client, by the server (or the next proxy, where the original names real hosts),
//! and in the proxy's log.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use crate::harness::{
    plugin, raw_request, send, temp_dir, Connection, Proxy, RawMessage, RawUpstream, Upstream,
};

/// How long a test waits for bytes that should come.
const WAIT: Duration = Duration::from_secs(10);

#[test]
fn twins_anatomy_logs_the_number_of_flows_seen() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("anatomy"))
        .start();
    for _ in 0..3 {
        assert_eq!(send(proxy.addr, "GET", "/", b"").unwrap().status, 200);
    }
    let lines = proxy.wait_for_count("We've seen ", 3);
    // The addon is named after its type, as mitmproxy names addons after their class.
    for (n, line) in (1..=3).zip(&lines) {
        assert!(
            line.ends_with(&format!("] counter: We've seen {n} flows")),
            "{lines:?}"
        );
    }
}

#[test]
fn twins_anatomy2_sets_myheader_on_requests() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("anatomy2"))
        .start();
    assert_eq!(send(proxy.addr, "GET", "/", b"").unwrap().status, 200);
    assert_eq!(upstream.seen()[0].header("myheader"), Some("value"));
}

#[test]
fn twins_http_add_header_numbers_the_responses() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("http-add-header"))
        .start();
    let mut client = Connection::open(proxy.addr);
    for n in ["1", "2", "3"] {
        let reply = client.send("GET", "/", &[], b"").unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("count"), Some(n), "{:?}", reply.headers);
    }
    // The upstream's own response is otherwise untouched.
    assert_eq!(
        send(proxy.addr, "GET", "/x", b"").unwrap().text(),
        "upstream saw GET /x"
    );
}

/// A request for `url` through `proxy` (regular or upstream mode), as raw bytes with its
/// `Host` header.
fn absolute_get(proxy: SocketAddr, url: &str) -> RawMessage {
    let host = url.split('/').nth(2).unwrap();
    let request = format!("GET {url} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    raw_request(proxy, request.as_bytes()).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[test]
fn twins_http_redirect_requests_sends_example_org_to_mitmproxy_org() {
    // The test cannot reach either host: the proxy runs in upstream mode, and the next
    // proxy (a recording server) shows which server each request was sent to.
    for (url, expected_line, expected_host) in [
        (
            "http://example.org/a?b=1",
            "GET http://mitmproxy.org/a?b=1 HTTP/1.1",
            "mitmproxy.org",
        ),
        (
            "http://example.com/a",
            "GET http://example.com/a HTTP/1.1",
            "example.com",
        ),
    ] {
        let next = RawUpstream::start(OK);
        let proxy = Proxy::builder()
            .args(["--mode", &format!("upstream:http://{}", next.addr)])
            .plugin(&plugin("http-redirect-requests"))
            .start();
        let answer = absolute_get(proxy.addr, url);
        assert!(
            answer.start_line().starts_with("HTTP/1.1 200"),
            "{answer:?}"
        );
        let seen = next.first_request();
        assert_eq!(seen.start_line(), expected_line, "{}", seen.head());
        assert_eq!(seen.field("host").as_deref(), Some(expected_host));
    }
}

#[test]
fn twins_http_reply_from_proxy_answers_example_com_path_itself() {
    let next = RawUpstream::start(OK);
    let proxy = Proxy::builder()
        .args(["--mode", &format!("upstream:http://{}", next.addr)])
        .plugin(&plugin("http-reply-from-proxy"))
        .start();
    let answer = absolute_get(proxy.addr, "http://example.com/path");
    assert_eq!(answer.start_line(), "HTTP/1.1 200 OK");
    assert_eq!(answer.field("content-type").as_deref(), Some("text/html"));
    assert_eq!(answer.field("content-length").as_deref(), Some("11"));
    assert_eq!(answer.text(), "Hello World");
    // Any other URL goes on to the server: the first request the next proxy sees is that one.
    let other = absolute_get(proxy.addr, "http://example.com/other");
    assert_eq!(other.text(), "ok");
    assert_eq!(
        next.first_request().start_line(),
        "GET http://example.com/other HTTP/1.1"
    );
}

#[test]
fn twins_http_trailers_logs_trailers_and_injects_one_on_inject_trailers() {
    let upstream = RawUpstream::start(
        &b"HTTP/1.1 200 OK\r\n\
           Transfer-Encoding: chunked\r\n\
           Trailer: X-Checksum\r\n\
           \r\n\
           5\r\nhello\r\n0\r\n\
           X-Checksum: abc\r\n\
           \r\n"[..],
    );
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("http-trailers"))
        .start();
    let answer = raw_request(
        proxy.addr,
        b"POST /inject_trailers HTTP/1.1\r\n\
          Host: localhost\r\n\
          TE: trailers\r\n\
          Transfer-Encoding: chunked\r\n\
          Trailer: X-Request-Sum\r\n\
          \r\n\
          4\r\ndata\r\n0\r\n\
          X-Request-Sum: 42\r\n\
          \r\n",
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", proxy.dump()));
    let wire = String::from_utf8_lossy(&answer.bytes).into_owned();
    let injected = (
        "x-my-injected-trailer-header".to_string(),
        "foobar".to_string(),
    );

    // Both directions: announced, chunked, and the trailer after the body (replacing the
    // received ones, as mitmproxy's example assigns the trailers).
    let seen = upstream.first_request();
    let request_wire = String::from_utf8_lossy(&seen.bytes).into_owned();
    for (what, message, wire) in [
        ("request", &seen, &request_wire),
        ("response", &answer, &wire),
    ] {
        assert!(message.is_chunked(), "{what}: {wire}");
        assert_eq!(
            message.field("trailer").as_deref(),
            Some("x-my-injected-trailer-header"),
            "{what}: {wire}"
        );
        assert_eq!(
            message.trailers(),
            std::slice::from_ref(&injected),
            "{what}: {wire}"
        );
    }
    assert_eq!(seen.text(), "data");
    assert_eq!(answer.text(), "hello");

    proxy.wait_for_log("Injected a new response trailer... x-my-injected-trailer-header");
    for line in [
        "http-trailers: HTTP Trailers detected! Request contains: X-Request-Sum: 42",
        "http-trailers: Injected a new request trailer... x-my-injected-trailer-header",
        "http-trailers: HTTP Trailers detected! Response contains: X-Checksum: abc",
    ] {
        assert_eq!(proxy.lines_with(line).len(), 1, "{line}\n{}", proxy.dump());
    }
}

#[test]
fn twins_http_trailers_leaves_other_paths_alone() {
    let upstream = RawUpstream::start(OK);
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("http-trailers"))
        .start();
    let answer = raw_request(
        proxy.addr,
        b"POST /other HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\ndata",
    )
    .unwrap();
    assert_eq!(answer.text(), "ok");
    assert!(answer.field("trailer").is_none() && !answer.is_chunked());
    let seen = upstream.first_request();
    assert!(seen.field("trailer").is_none() && !seen.is_chunked());
}

#[test]
fn twins_internet_in_mirror_adds_the_style_before_the_end_of_head() {
    let page = "<html><head><title>t</title></head><body>hi</body></html>";
    let upstream = RawUpstream::start(format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{page}",
        page.len()
    ));
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("internet-in-mirror"))
        .start();
    let answer = raw_request(proxy.addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mirrored = "<html><head><title>t</title>\
                    <style>body {transform: scaleX(-1);}</style></head><body>hi</body></html>";
    assert_eq!(answer.text(), mirrored);
    assert_eq!(
        answer.field("content-length"),
        Some(mirrored.len().to_string())
    );
}

/// A server for one exchange that sends the head and `first` of a chunked body, then waits
/// (at most [`WAIT`]) for the test's go before sending `rest` and the end of the body: a body
/// the client can only see a part of early if the proxy streams it.
fn held_back_upstream(first: &'static str, rest: &'static str) -> (SocketAddr, mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (go, wait) = mpsc::channel();
    thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let _ = read_until(&mut stream, b"\r\n\r\n", WAIT);
        let chunk = |text: &str| format!("{:x}\r\n{text}\r\n", text.len());
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let _ = stream.write_all(format!("{head}{}", chunk(first)).as_bytes());
        let _ = wait.recv_timeout(WAIT);
        let _ = stream.write_all(format!("{}0\r\n\r\n", chunk(rest)).as_bytes());
        let _ = read_until(&mut stream, b"\r\n\r\n", Duration::from_secs(1));
    });
    (addr, go)
}

/// Reads from `stream` until what was read contains `needle` or `limit` passes; returns all
/// that was read.
fn read_until(stream: &mut TcpStream, needle: &[u8], limit: Duration) -> Vec<u8> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(needle.len()).any(|w| w == needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// `GET /` through `proxy` from a [`held_back_upstream`]: what the client had received when
/// `early` showed up (or the wait ran out), and the whole response after the server finished.
fn streamed_get(proxy: &Proxy, early: &str, go: mpsc::Sender<()>) -> (String, String) {
    let mut client = TcpStream::connect(proxy.addr).unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut got = read_until(&mut client, early.as_bytes(), WAIT);
    let before = String::from_utf8_lossy(&got).into_owned();
    let _ = go.send(());
    got.extend(read_until(&mut client, b"0\r\n\r\n", WAIT));
    (before, String::from_utf8_lossy(&got).into_owned())
}

#[test]
fn twins_http_stream_simple_streams_responses() {
    let (upstream, go) = held_back_upstream("first part", "second part");
    let proxy = Proxy::builder()
        .reverse(upstream)
        .plugin(&plugin("http-stream-simple"))
        .start();
    let (before, all) = streamed_get(&proxy, "first part", go);
    // Buffered, nothing would arrive before the server sent the rest.
    assert!(
        before.contains("first part"),
        "{before:?}\n{}",
        proxy.dump()
    );
    assert!(!before.contains("second part"), "{before:?}");
    assert!(
        all.contains("second part") && all.ends_with("0\r\n\r\n"),
        "{all:?}"
    );
}

#[test]
fn twins_http_stream_modify_replaces_foo_in_each_chunk_as_it_streams() {
    let (upstream, go) = held_back_upstream("one foo, two foo, end", "and foo again");
    let proxy = Proxy::builder()
        .reverse(upstream)
        .plugin(&plugin("http-stream-modify"))
        .start();
    let (before, all) = streamed_get(&proxy, "two bar", go);
    assert!(
        before.contains("one bar, two bar"),
        "the first chunk went through rewritten before the server finished: {before:?}\n{}",
        proxy.dump()
    );
    assert!(
        !before.contains("foo") && !before.contains("again"),
        "{before:?}"
    );
    let body: String = all
        .split_once("\r\n\r\n")
        .map(|(_, body)| dechunk(body))
        .unwrap_or_default();
    assert_eq!(body, "one bar, two bar, endand bar again", "{all:?}");
}

/// The data of a chunked body (no trailers).
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

#[test]
fn twins_log_events_logs_at_every_level_on_load() {
    let proxy = Proxy::builder().plugin(&plugin("log-events")).start();
    let alert = proxy.wait_for_log("This is an alert.");
    for (line, expected) in [
        ("This is some informative text.", "] log-events: "),
        ("This is a warning.", "] warn: log-events: "),
        ("This is an error.", "] error: log-events: "),
    ] {
        let found = proxy.lines_with(line);
        assert_eq!(found.len(), 1, "{line}\n{}", proxy.dump());
        assert!(
            found[0].ends_with(&format!("{expected}{line}")),
            "{found:?}"
        );
    }
    // mitmproxy's ALERT level: at info here.
    assert!(
        alert.ends_with(
            "] log-events: This is an alert. It has the same urgency as info, but will also \
             pop up in the status bar."
        ),
        "{alert}"
    );
}

#[test]
fn twins_save_streamed_data_writes_streamed_bodies_to_files() {
    let dir = temp_dir("save-streamed-data");
    let (upstream, go) = held_back_upstream("first part, ", "second part");
    let _ = go.send(());
    let pattern = format!("{}/%Y/%+D_%+C_%+I_%+T.bin", dir.display());
    let mut proxy = Proxy::builder()
        .reverse(upstream)
        // mitmproxy's original saves only what something else made a stream.
        .plugin(&plugin("http-stream-simple"))
        .plugin(&plugin("save_streamed_data"))
        .env("INTERPOSE_SAVE_STREAMED_DATA", &pattern)
        .start();
    let reply = send(proxy.addr, "GET", "/", b"").unwrap();
    assert_eq!(reply.text(), "first part, second part");
    assert!(proxy.terminate().success(), "{}", proxy.dump());

    let years: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(years.len(), 1, "{}", proxy.dump());
    let year = years[0].file_name().into_string().unwrap();
    assert!(year.len() == 4 && year.starts_with("20"), "{year}");
    let files: Vec<_> = std::fs::read_dir(years[0].path())
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(files.len(), 1, "one file, the response's: {files:?}");
    let name = files[0].file_name().into_string().unwrap();
    let parts: Vec<&str> = name.trim_end_matches(".bin").split('_').collect();
    assert_eq!(parts.len(), 4, "{name}");
    assert_eq!(&parts[..2], ["rsp", "127.0.0.1"], "{name}");
    assert_eq!(parts[2].len(), 36, "a client connection id: {name}");
    assert!(parts[3].parse::<f64>().is_ok(), "a timestamp: {name}");
    assert_eq!(
        std::fs::read_to_string(files[0].path()).unwrap(),
        "first part, second part"
    );
}

/// A GitHub personal access token's shape (`ghp_` and 36 letters and digits), made up.
const TOKEN: &str = "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8";

#[test]
fn twins_secret_leak_detector_logs_and_masks_secrets() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("secret_leak_detector"))
        .start();
    let mut client = Connection::open(proxy.addr);
    let reply = client
        .send("GET", "/page", &[("x-token", TOKEN)], b"")
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        upstream.seen()[0].header("x-token"),
        Some("ghp_a1B2...q7R8")
    );
    let warning = proxy.wait_for_log("secret_leak_detected");
    assert!(
        warning.contains("] warn: secretleakdetector: {"),
        "{warning}"
    );
    for part in [
        "\"secret_type\": \"GitHub PAT\"",
        "\"location\": \"Request Header: x-token\"",
        "\"masked_value\": \"ghp_a1B2...q7R8\"",
    ] {
        assert!(warning.contains(part), "{part} in {warning}");
    }
}

#[test]
fn twins_secret_leak_detector_blocks_high_confidence_leaks_when_asked() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("secret_leak_detector"))
        .env("INTERPOSE_SECRETLEAKDETECTOR_BLOCK", "true")
        .start();
    let body = format!("{{\"config\": {{\"token\": \"{TOKEN}\"}}}}");
    let reply = send(proxy.addr, "POST", "/api/upload", body.as_bytes()).unwrap();
    assert_eq!(reply.status, 403, "{}", proxy.dump());
    assert_eq!(
        reply.text(),
        "Secret leak detected and blocked by mitmproxy addon"
    );
    assert!(upstream.seen().is_empty(), "the server was not contacted");
    let blocked = proxy.wait_for_log("secret_leak_blocked");
    assert!(
        blocked.contains("] error: secretleakdetector: {"),
        "{blocked}"
    );

    // A safe path is not blocked, only masked.
    let reply = send(proxy.addr, "POST", "/health", body.as_bytes()).unwrap();
    assert_eq!(reply.status, 200);
    let masked = body.replace(TOKEN, "ghp_a1B2...q7R8");
    assert_eq!(upstream.seen()[0].body, masked.as_bytes());
    proxy.wait_for_log("[SAFE PATH] Skipped blocking for /health");
}

#[test]
fn twins_http_modify_form_sets_a_field_of_forms_and_replaces_other_bodies() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("http-modify-form"))
        .start();
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let reply = Connection::open(proxy.addr).send("POST", "/form", &form, b"mitmproxy=sucks&a=1");
    assert_eq!(reply.unwrap().status, 200);
    let reply = Connection::open(proxy.addr).send(
        "POST",
        "/json",
        &[("content-type", "application/json")],
        b"{\"a\": 1}",
    );
    assert_eq!(reply.unwrap().status, 200);
    assert_eq!(
        send(proxy.addr, "GET", "/nothing", b"").unwrap().status,
        200
    );

    let seen = upstream.seen();
    assert_eq!(seen[0].body, b"mitmproxy=rocks&a=1");
    assert_eq!(seen[0].header("content-length"), Some("19"));
    for request in &seen[1..] {
        assert_eq!(request.body, b"foo=bar", "{}", request.path);
        assert_eq!(
            request.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(request.header("content-length"), Some("7"));
    }
}

#[test]
fn twins_http_modify_query_string_sets_the_parameter() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("http-modify-query-string"))
        .start();
    for path in ["/page", "/search?q=a+b&mitmproxy=no"] {
        assert_eq!(send(proxy.addr, "GET", path, b"").unwrap().status, 200);
    }
    let paths: Vec<String> = upstream.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths,
        ["/page?mitmproxy=rocks", "/search?q=a+b&mitmproxy=rocks"]
    );
}
