//! Client replay (mitmproxy's `ClientPlayback`): `-C FILE` sends saved requests to their
//! servers again and exits when done; `replay.client.file` / `count` / `stop` while the
//! proxy runs; and the Rust twin of mitmproxy's `duplicate-modify-replay` example, which
//! replays a changed copy of every request from an addon.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use crate::harness::{plugin, send, temp_dir, Proxy, Upstream};

/// Waits until `upstream` has seen `n` requests; returns their paths.
fn wait_for_paths(upstream: &Upstream, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = upstream.seen();
        if seen.len() >= n {
            return seen.into_iter().map(|s| s.path).collect();
        }
        assert!(Instant::now() < deadline, "upstream saw only {seen:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Records `requests` (method, path, body) through a reverse proxy in front of `upstream`
/// into a fresh flow file in `dir`; returns its path.
fn record(
    upstream: &Upstream,
    dir: &std::path::Path,
    requests: &[(&str, &str, &[u8])],
) -> std::path::PathBuf {
    let file = dir.join("flows.mitm");
    let mut recorder = Proxy::builder()
        .reverse(upstream.addr)
        .args(["-w", file.to_str().unwrap()])
        .start();
    for (method, path, body) in requests {
        send(recorder.addr, method, path, body).unwrap();
    }
    recorder.terminate();
    file
}

#[test]
fn duplicate_modify_replay_twin_sends_a_changed_copy_of_each_request() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("duplicate-modify-replay"))
        .start();
    let reply = send(proxy.addr, "GET", "/original", b"").unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&reply.body),
        "upstream saw GET /original"
    );
    let mut paths = wait_for_paths(&upstream, 2);
    paths.sort();
    assert_eq!(paths, ["/changed", "/original"]);
    // The replayed copy shows in the dump output as mitmdump shows replays, and it was not
    // copied again (no third request).
    proxy.wait_for_log("[replay]");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(upstream.seen().len(), 2, "{:?}", upstream.seen());
}

#[test]
fn client_replay_from_a_file_resends_the_requests_and_exits() {
    let upstream = Upstream::start();
    let dir = temp_dir("client-replay");
    let file = record(
        &upstream,
        &dir,
        &[
            ("GET", "/first", b""),
            ("POST", "/second", b"a body to send again"),
        ],
    );
    assert_eq!(upstream.seen().len(), 2);

    // No server traffic needed: -C replays the file and the proxy stops by itself.
    let run = Proxy::builder()
        .args(["-p", "0", "--confdir", dir.to_str().unwrap()])
        .args(["-C", file.to_str().unwrap()])
        .run();
    assert!(run.status.success(), "{}{}", run.stdout, run.stderr);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 4, "{seen:?}");
    // One at a time, in the file's order (client_replay_concurrency=1).
    assert_eq!(seen[2].path, "/first");
    assert_eq!(
        (seen[3].method.as_str(), seen[3].path.as_str()),
        ("POST", "/second")
    );
    assert_eq!(seen[3].body, b"a body to send again");
    let out = format!("{}{}", run.stdout, run.stderr);
    assert_eq!(out.matches("[replay]").count(), 2, "{out}");
    assert!(out.contains("2 flows queued for client replay"), "{out}");
}

#[test]
fn replay_commands_queue_count_and_stop() {
    let upstream = Upstream::start();
    let dir = temp_dir("client-replay-commands");
    let file = record(&upstream, &dir, &[("GET", "/again", b"")]);
    let socket = dir.join("control.sock");
    let proxy = Proxy::builder()
        .set("control", socket.to_str().unwrap())
        .start();
    let ctl = |args: &[&str]| {
        let mut all = vec!["ctl", "--control", socket.to_str().unwrap()];
        all.extend_from_slice(args);
        let run = Proxy::builder().args(all).run();
        assert!(
            run.status.success(),
            "{args:?}: {}{}",
            run.stdout,
            run.stderr
        );
        run.stdout.trim().to_string()
    };
    assert_eq!(ctl(&["replay.client.count"]), "0");
    assert_eq!(ctl(&["replay.client.file", file.to_str().unwrap()]), "1");
    let paths = wait_for_paths(&upstream, 2);
    assert_eq!(paths, ["/again", "/again"]);
    assert_eq!(ctl(&["replay.client.stop"]), "0");
    // The proxy keeps serving: the file was queued by a command, not by -C.
    proxy.wait_for_log("[replay]");
    assert_eq!(ctl(&["replay.client.count"]), "0");
}

#[test]
fn server_replay_answers_from_saved_responses_then_exits() {
    let upstream = Upstream::start();
    let dir = temp_dir("server-replay");
    let file = record(
        &upstream,
        &dir,
        &[("GET", "/a?x=1", b""), ("POST", "/b", b"payload")],
    );
    // The server is gone: answers can only come from the file.
    let gone = crate::harness::closed_port();
    let mut proxy = Proxy::builder()
        .reverse(gone)
        .args([
            "-S",
            file.to_str().unwrap(),
            "--set",
            "server_replay_extra=404",
        ])
        // The saved flows went to the old server's port.
        .args(["--set", "server_replay_ignore_port=true"])
        .start();
    let a = send(proxy.addr, "GET", "/a?x=1", b"").unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(String::from_utf8_lossy(&a.body), "upstream saw GET /a?x=1");
    // Not saved (another query): server_replay_extra=404.
    assert_eq!(send(proxy.addr, "GET", "/a?x=2", b"").unwrap().status, 404);
    // The body is part of the match.
    assert_eq!(
        send(proxy.addr, "POST", "/b", b"other").unwrap().status,
        404
    );
    let b = send(proxy.addr, "POST", "/b", b"payload").unwrap();
    assert_eq!(String::from_utf8_lossy(&b.body), "upstream saw POST /b");
    // Every saved response used: the proxy stops by itself, as mitmdump does.
    let status = proxy.wait_for_exit();
    assert!(status.success(), "{}", proxy.dump());
    proxy.wait_for_log("replays and rfile done");
    assert_eq!(
        upstream.seen().len(),
        2,
        "nothing reached the old server again"
    );
}

#[test]
fn rfile_without_no_server_reads_then_exits_and_dash_reads_stdin() {
    let upstream = Upstream::start();
    let dir = temp_dir("rfile-keepserving");
    let file = record(&upstream, &dir, &[("GET", "/read-me", b"")]);
    // As mitmdump: with -r and no --keepserving, the proxy serves until the file is read,
    // then stops by itself.
    let run = Proxy::builder()
        .args(["-p", "0", "--confdir", dir.to_str().unwrap()])
        .args(["-r", file.to_str().unwrap()])
        .run();
    assert!(run.status.success(), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("GET http://"), "{}", run.stdout);
    assert!(run.stdout.contains("/read-me"), "{}", run.stdout);

    // `-r -` reads the flows from standard input.
    let output = Command::new(env!("CARGO_BIN_EXE_interpose"))
        .args(["-n", "-r", "-"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("/read-me"), "{stdout}");
}
