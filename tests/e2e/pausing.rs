//! Addons that wait without blocking anyone: flows paused and resumed from another thread,
//! killed while paused, left by their client, paused at shutdown; `#[blocking]` handlers;
//! and the `nonblocking` example. The proxy runs on one worker thread, so anything that held
//! the worker would hold up every other flow.

use std::{
    io::Write,
    net::TcpStream,
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use crate::harness::{plugin, Connection, Proxy, Upstream};

/// A proxy in front of `upstream` with the `pauser` fixture, on one worker thread.
fn pausing_proxy(upstream: &Upstream) -> Proxy {
    Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("pauser"))
        .set("threads", "1")
        .start()
}

/// Sends `GET path` with `headers` on a thread; the receiver gets the status (0 on error)
/// and when the answer came.
fn send_later(
    proxy: &Proxy,
    path: &str,
    headers: &[(&'static str, String)],
) -> mpsc::Receiver<(u16, Instant)> {
    let (tx, rx) = mpsc::channel();
    let (addr, path, headers) = (proxy.addr, path.to_string(), headers.to_vec());
    thread::spawn(move || {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let status = Connection::open(addr)
            .send("GET", &path, &headers, b"")
            .map_or(0, |reply| reply.status);
        let _ = tx.send((status, Instant::now()));
    });
    rx
}

#[test]
fn paused_flows_wait_off_the_worker_and_resume_with_the_changes_made_meanwhile() {
    let upstream = Upstream::start();
    let mut proxy = pausing_proxy(&upstream);
    let pause = Duration::from_millis(1500);
    let start = Instant::now();
    let paused: Vec<_> = (0..10)
        .map(|i| {
            send_later(
                &proxy,
                &format!("/paused/{i}"),
                &[("x-pause-ms", pause.as_millis().to_string())],
            )
        })
        .collect();
    proxy.wait_for_count("paused /paused/", 10);

    // Ten flows are paused on the only worker; another flow goes straight through.
    let reply = Connection::open(proxy.addr)
        .send("GET", "/plain", &[], b"")
        .expect("reply");
    let plain_done = Instant::now();
    assert_eq!(reply.status, 200);

    let mut finished = Vec::new();
    for rx in paused {
        let (status, at) = rx.recv_timeout(Duration::from_secs(20)).expect("answer");
        assert_eq!(status, 200);
        finished.push(at);
    }
    assert!(
        finished.iter().all(|at| *at > plain_done),
        "the plain flow finished before every paused one"
    );
    let last = finished.iter().max().unwrap().duration_since(start);
    assert!(
        last < pause * 4,
        "ten 1.5 s pauses ran side by side, not one after another: {last:?}"
    );

    // The resumer's change reached the server, and the addon after the pausing one saw the
    // flow only after the resume.
    let seen = upstream.seen();
    let resumed: Vec<_> = seen
        .iter()
        .filter(|s| s.path.starts_with("/paused/"))
        .collect();
    assert_eq!(resumed.len(), 10);
    for request in resumed {
        assert_eq!(
            request.header("x-resumed"),
            Some("yes"),
            "{:?}",
            request.headers
        );
        assert_eq!(
            request.header("x-witness"),
            Some("yes"),
            "{:?}",
            request.headers
        );
    }
    let plain = seen.iter().find(|s| s.path == "/plain").expect("plain");
    assert_eq!(plain.header("x-witness"), Some("no"));
    assert!(proxy.terminate().success(), "{}", proxy.dump());
}

#[test]
fn killing_a_paused_flow_ends_it_with_a_killed_error_and_the_proxy_goes_on() {
    let upstream = Upstream::start();
    let mut proxy = pausing_proxy(&upstream);
    let rx = send_later(&proxy, "/doomed", &[("x-pause-kill", "200".to_string())]);
    let (status, _) = rx.recv_timeout(Duration::from_secs(20)).expect("answer");
    assert_eq!(
        status, 0,
        "a killed flow's connection closes without an answer"
    );
    proxy.wait_for_log("error /doomed killed");
    assert!(upstream.seen().iter().all(|s| s.path != "/doomed"));

    let reply = Connection::open(proxy.addr).send("GET", "/after", &[], b"");
    assert_eq!(reply.expect("reply").status, 200);
    assert!(proxy.terminate().success(), "{}", proxy.dump());
}

#[test]
fn a_client_that_leaves_while_its_flow_is_paused_ends_the_flow() {
    let upstream = Upstream::start();
    let mut proxy = pausing_proxy(&upstream);
    let mut client = TcpStream::connect(proxy.addr).unwrap();
    client
        .write_all(b"GET /gone HTTP/1.1\r\nHost: x\r\nx-pause-forever: 1\r\n\r\n")
        .unwrap();
    proxy.wait_for_log("paused /gone for good");
    drop(client);
    proxy.wait_for_log("error /gone client");
    // The addon's handle no longer reaches the flow.
    proxy.wait_for_log("0 flows still reachable");
    assert!(upstream.seen().is_empty());

    let reply = Connection::open(proxy.addr).send("GET", "/after", &[], b"");
    assert_eq!(reply.expect("reply").status, 200);
    assert!(proxy.terminate().success(), "{}", proxy.dump());
}

#[test]
fn shutdown_ends_paused_flows_with_a_shutdown_error() {
    let upstream = Upstream::start();
    let mut proxy = pausing_proxy(&upstream);
    let rx = send_later(&proxy, "/waiting", &[("x-pause-forever", "1".to_string())]);
    proxy.wait_for_log("paused /waiting for good");
    assert!(proxy.terminate().success(), "{}", proxy.dump());
    let _ = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the client is let go");
    proxy.wait_for_log("error /waiting shutdown");
}

#[test]
fn blocking_handlers_run_off_the_worker_in_addon_order() {
    let upstream = Upstream::start();
    let mut proxy = pausing_proxy(&upstream);
    let block = Duration::from_millis(1500);
    let start = Instant::now();
    let blocked: Vec<_> = (0..4)
        .map(|i| {
            send_later(
                &proxy,
                &format!("/blocked/{i}"),
                &[("x-block-ms", block.as_millis().to_string())],
            )
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    let reply = Connection::open(proxy.addr)
        .send("GET", "/plain", &[], b"")
        .expect("reply");
    let plain_done = Instant::now();
    assert_eq!(reply.status, 200);
    let mut finished = Vec::new();
    for rx in blocked {
        let (status, at) = rx.recv_timeout(Duration::from_secs(20)).expect("answer");
        assert_eq!(status, 200);
        finished.push(at);
    }
    assert!(
        finished.iter().all(|at| *at > plain_done),
        "the plain flow finished while the blocking handlers slept"
    );
    let last = finished.iter().max().unwrap().duration_since(start);
    assert!(last < block * 3, "four 1.5 s sleeps side by side: {last:?}");
    assert_eq!(proxy.lines_with("blocked /blocked/").len(), 4);
    // The witness addon (after the blocking one) still saw every flow.
    let seen = upstream.seen();
    assert!(seen.iter().all(|s| s.header("x-witness") == Some("no")));
    assert!(proxy.terminate().success(), "{}", proxy.dump());
}

#[test]
fn nonblocking_example_waits_five_seconds_per_flow_side_by_side() {
    let upstream = Upstream::start();
    let mut proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("nonblocking"))
        .set("threads", "1")
        .start();
    let start = Instant::now();
    let flows: Vec<_> = (0..10)
        .map(|i| send_later(&proxy, &format!("/n/{i}"), &[]))
        .collect();
    for rx in flows {
        let (status, _) = rx.recv_timeout(Duration::from_secs(30)).expect("answer");
        assert_eq!(status, 200);
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(5) && elapsed < Duration::from_secs(15),
        "ten 5 s waits side by side on one worker, not 50 s: {elapsed:?}"
    );
    assert_eq!(proxy.lines_with("handle request: 127.0.0.1").len(), 10);
    assert_eq!(proxy.lines_with("start  request: 127.0.0.1").len(), 10);
    assert!(proxy.terminate().success(), "{}", proxy.dump());
}

#[test]
fn shutdown_example_stops_the_proxy_on_its_url_only() {
    let upstream = Upstream::start();
    let mut proxy = Proxy::builder().plugin(&plugin("shutdown")).start();
    let url = format!("http://{}/other", upstream.addr);
    let reply = Connection::open(proxy.addr).send("GET", &url, &[], b"");
    assert_eq!(reply.expect("reply").status, 200);
    assert!(proxy.lines_with("Shutting down").is_empty());

    // The proxy shuts down while it handles the request (example.com is never reached).
    let _ = Connection::open(proxy.addr).send("GET", "http://example.com/path", &[], b"");
    let status = proxy.wait_for_exit();
    assert!(status.success(), "{status:?}\n{}", proxy.dump());
    proxy.wait_for_log("Shutting down everything...");
    proxy.wait_for_log("asked the proxy to shut down");
}
