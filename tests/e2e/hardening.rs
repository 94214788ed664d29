//! Hostile and broken peers: a server answering what nobody asked, loops back into the proxy,
//! bodies larger than memory, peers that go silent, more clients than descriptors, and
//! malformed framing. Each test starts the misbehaving peer itself (raw sockets).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    thread,
    time::{Duration, Instant},
};

use crate::harness::{plugin, raw_exchange, upload, BigUpstream, Proxy, RawUpstream, Upstream};

const MIB: u64 = 1024 * 1024;

/// A server that answers each request with `first`, then, 100 ms later and unasked, writes a
/// second response `stray` on the same connection (a late or smuggled response).
fn stray_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
                    thread::sleep(Duration::from_millis(100));
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray");
                }
            });
        }
    });
    addr
}

/// Sends `GET target` on `stream` and returns the body of the (Content-Length) response.
fn get_body(stream: &mut TcpStream, target: &str) -> String {
    stream
        .write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    String::from_utf8(body).unwrap()
}

#[test]
fn a_stray_response_never_reaches_another_request() {
    let server = stray_upstream();
    for (pool, target) in [
        ("shared", "/".to_string()),
        ("client", format!("http://{server}/")),
    ] {
        let proxy = match pool {
            "shared" => Proxy::builder().reverse(server),
            _ => Proxy::builder(),
        }
        .set("upstream_pool", pool)
        .start();
        let mut first = TcpStream::connect(proxy.addr).unwrap();
        first
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(get_body(&mut first, &target), "first");
        // Let the stray response arrive on the now idle server connection.
        thread::sleep(Duration::from_millis(300));
        let mut second = TcpStream::connect(proxy.addr).unwrap();
        second
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(
            get_body(&mut second, &target),
            "first",
            "{pool}: another client"
        );
        thread::sleep(Duration::from_millis(300));
        assert_eq!(
            get_body(&mut first, &target),
            "first",
            "{pool}: the same client"
        );
    }
}

/// A port that is free now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_proxy_pointed_at_itself_answers_at_once_and_keeps_its_descriptors() {
    for host in ["[::ffff:127.0.0.1]", "127.0.0.1", "localhost"] {
        let port = free_port();
        let proxy = Proxy::builder()
            .port(port)
            .args(["--mode", &format!("reverse:http://{host}:{port}")])
            .start();
        let before = proxy.open_fds();
        for _ in 0..3 {
            let started = Instant::now();
            let answer = raw_exchange(
                proxy.addr,
                b"GET /loop HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            );
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{host}: answered at once"
            );
            assert!(
                answer.starts_with("HTTP/1.1 502") || answer.starts_with("HTTP/1.1 508"),
                "{host}: {answer}"
            );
            assert!(answer.contains("loop"), "{host}: {answer}");
        }
        thread::sleep(Duration::from_millis(100));
        let after = proxy.open_fds();
        assert!(
            after <= before + 2,
            "{host}: descriptors {before} -> {after}"
        );
    }
}

#[test]
fn bodies_over_the_memory_budget_stream_instead_of_filling_memory() {
    let upstream = BigUpstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .set("body_buffer_budget", "16m")
        .start();
    let baseline = proxy.rss();
    let size = 256 * MIB;
    for chunked in [false, true] {
        let got = upload(proxy.addr, "/upload", size, chunked).unwrap();
        assert_eq!(got.text(), format!("received {size}"), "chunked: {chunked}");
    }

    // Ten clients reading a 64 MiB download slowly: the proxy holds back, it does not buffer.
    let mut readers = Vec::new();
    for _ in 0..10 {
        let mut stream = TcpStream::connect(proxy.addr).unwrap();
        stream
            .write_all(format!("GET /big?size={} HTTP/1.1\r\nHost: x\r\n\r\n", 64 * MIB).as_bytes())
            .unwrap();
        let mut first = vec![0u8; 256 * 1024];
        stream.read_exact(&mut first).unwrap();
        readers.push(stream);
    }
    thread::sleep(Duration::from_millis(500));
    let peak = proxy.peak_rss();
    drop(readers);
    assert!(
        peak < baseline + 48 * MIB,
        "peak RSS {} MiB (from {} MiB) with 256 MiB uploads and ten slow 64 MiB readers",
        peak / MIB,
        baseline / MIB
    );
    // Freed memory goes back to the system within a couple of seconds of the load ending.
    thread::sleep(Duration::from_millis(2500));
    let after = proxy.rss();
    eprintln!(
        "memory budget 16m: RSS {} MiB at start, peak {} MiB, {} MiB after the readers left",
        baseline / MIB,
        peak / MIB,
        after / MIB
    );
    assert!(
        after < baseline + 16 * MIB,
        "RSS {} MiB after the readers left (from {} MiB)",
        after / MIB,
        baseline / MIB
    );
}

#[test]
fn a_client_that_stops_mid_head_gets_408() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .set("header_read_timeout", "0.5")
        .start();
    let started = Instant::now();
    let answer = raw_exchange(proxy.addr, b"GET /slow HTTP/1.1\r\nHost: x\r\n");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn an_idle_keep_alive_client_is_closed() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .set("client_idle_timeout", "0.5")
        .start();
    let mut client = TcpStream::connect(proxy.addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert!(get_body(&mut client, "/a").starts_with("upstream saw GET /a"));
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest);
    assert!(rest.is_empty(), "nothing more was sent");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(3), "closed after {waited:?}");
}

#[test]
fn a_body_that_stops_arriving_fails_with_408_or_504() {
    // The client stops sending its body.
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .set("body_read_timeout", "0.5")
        .start();
    let answer = raw_exchange(
        proxy.addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(upstream.seen().is_empty());

    // The server stops sending its body.
    let silent = RawUpstream::start(&b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"[..]);
    let proxy = Proxy::builder()
        .reverse(silent.addr)
        .set("body_read_timeout", "0.5")
        .plugin(&plugin("event-log"))
        .start();
    let started = Instant::now();
    let answer = raw_exchange(
        proxy.addr,
        b"GET /stall HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let error = proxy.wait_for_log("event error /stall");
    assert!(error.ends_with("(timeout)"), "{error}");
}

#[test]
fn accepting_pauses_at_max_connections_with_one_warning() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .set("max_connections", "2")
        .start();
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(proxy.addr).unwrap())
        .collect();
    thread::sleep(Duration::from_millis(200));
    let mut waiting = TcpStream::connect(proxy.addr).unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    waiting
        .write_all(b"GET /third HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        waiting.read(&mut byte).is_err(),
        "not served while two are open"
    );
    let mut fourth = TcpStream::connect(proxy.addr).unwrap();
    fourth
        .write_all(b"GET /fourth HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    drop(held);
    waiting
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = [0u8; 12];
    waiting.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    assert_eq!(
        proxy.lines_with("max_connections").len(),
        1,
        "{}",
        proxy.dump()
    );
    drop(fourth);
}

#[test]
fn ambiguous_or_broken_framing_and_targets_get_400() {
    let upstream = Upstream::start();
    let reverse = Proxy::builder().reverse(upstream.addr).start();
    let cl_and_te = raw_exchange(
        reverse.addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert!(cl_and_te.starts_with("HTTP/1.1 400"), "{cl_and_te}");
    let bad_chunk = raw_exchange(
        reverse.addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    );
    assert!(bad_chunk.starts_with("HTTP/1.1 400"), "{bad_chunk}");

    let regular = Proxy::builder().start();
    let userinfo = raw_exchange(
        regular.addr,
        b"GET http://user@example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
    );
    assert!(userinfo.starts_with("HTTP/1.1 400"), "{userinfo}");
    assert!(
        upstream.seen().is_empty(),
        "nothing ambiguous was forwarded"
    );
}

#[test]
fn regular_mode_sends_the_targets_authority_as_host() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder().start();
    let request = format!(
        "GET http://{}/h HTTP/1.1\r\nHost: somewhere.else\r\nConnection: close\r\n\r\n",
        upstream.addr
    );
    let answer = raw_exchange(proxy.addr, request.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let host = upstream.addr.to_string();
    assert_eq!(upstream.seen()[0].header("host"), Some(host.as_str()));
}

#[test]
fn early_hints_reach_the_client_before_the_response() {
    let upstream = RawUpstream::start(
        &b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n\
           HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..],
    );
    let proxy = Proxy::builder().reverse(upstream.addr).start();
    let answer = raw_exchange(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let hints = answer.find("HTTP/1.1 103").expect(&answer);
    let ok = answer.find("HTTP/1.1 200").expect(&answer);
    assert!(hints < ok, "{answer}");
    assert!(
        answer.contains("Link: </style.css>; rel=preload"),
        "{answer}"
    );
    assert!(answer.ends_with("ok"), "{answer}");
}

#[test]
fn repeated_addon_log_lines_are_folded() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder().reverse(upstream.addr).start();
    for _ in 0..30 {
        let answer = raw_exchange(
            proxy.addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, close\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    thread::sleep(Duration::from_millis(1100));
    // The next one prints again, with the count of the folded ones first.
    raw_exchange(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, close\r\n\r\n",
    );
    let warnings = proxy.wait_for_count("h2c upgrade requests", 2);
    assert!(warnings.len() < 5, "{}", proxy.dump());
    assert!(
        !proxy.lines_with("the previous line repeated").is_empty(),
        "{}",
        proxy.dump()
    );
}
