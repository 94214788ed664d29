//! Headless capture: the dump output, `-w` flow files that mitmproxy itself reads, `-r` /
//! `-n` reading them back through the addons, the filter expression on the command line
//! (checked against mitmproxy's own filter language), HAR, and what happens on a full disk,
//! `kill -9` and SIGTERM under load.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use interpose::capture::flowfile::FlowReader;

use crate::{
    harness::{plugin, send, temp_dir, Connection, Finished, Proxy, Upstream},
    mitmproxy::mitmproxy_python,
};

/// The repository's `tests/mitmproxy/` folder of Python helpers.
fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/mitmproxy")
        .join(name)
}

/// Runs a Python helper with mitmproxy's interpreter and returns its stdout.
fn python(name: &str, args: &[&str]) -> String {
    let output = Command::new(mitmproxy_python())
        .arg(script(name))
        .args(args)
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

/// Runs `interpose` to completion with `args` (no proxy server, with `-n`).
fn interpose(args: &[&str]) -> Finished {
    Proxy::builder().args(args).run()
}

/// Header fields to send.
type Fields<'a> = &'a [(&'a str, &'a str)];

/// Sends a varied set of requests through `proxy` (reverse mode to `upstream`): methods,
/// bodies, query strings, a header with odd bytes.
fn varied_traffic(proxy: &Proxy) -> usize {
    let mut conn = Connection::open(proxy.addr);
    let text: Fields = &[("X-Test", "caf\u{e9}")];
    let json: Fields = &[("Content-Type", "application/json")];
    let requests: [(&str, &str, Fields, &[u8]); 5] = [
        ("GET", "/a", text, b""),
        ("GET", "/b?x=1&y=two", text, b""),
        ("POST", "/echo", text, b"posted body"),
        ("PUT", "/echo", json, b"{\"json\": true}"),
        ("DELETE", "/a/c", text, b""),
    ];
    for (method, path, headers, body) in requests {
        let reply = conn.send(method, path, headers, body).expect("reply");
        assert_eq!(reply.status, 200);
    }
    requests.len()
}

/// Captures `varied_traffic` with `-w` into a fresh folder labelled `label`: the folder, the
/// flow file and how many flows were sent.
fn captured(label: &str) -> (PathBuf, PathBuf, usize) {
    let upstream = Upstream::start();
    let dir = temp_dir(label);
    let file = dir.join("flows");
    let mut proxy = Proxy::builder()
        .reverse(upstream.addr)
        .args(["--flow-detail", "0", "-w", file.to_str().unwrap()])
        .start();
    let sent = varied_traffic(&proxy);
    proxy.terminate();
    (dir, file, sent)
}

/// Counts the flows `interpose -n -r FILE` reads (one response line each at flow_detail 1).
fn flows_in(path: &Path) -> usize {
    let run = interpose(&["-n", "-r", path.to_str().unwrap()]);
    assert!(run.status.success(), "{}{}", run.stdout, run.stderr);
    run.stdout.lines().filter(|l| l.contains(" << ")).count()
}

#[test]
fn dump_output_prints_each_flow_as_mitmdump_does() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder().reverse(upstream.addr).start();
    let reply = send(proxy.addr, "GET", "/hello", b"").unwrap();
    assert_eq!(reply.text(), "upstream saw GET /hello");
    let response = proxy.wait_for_log(" << 200 OK 23b");
    let log = proxy.log();
    let at = log.iter().position(|l| *l == response).unwrap();
    let request = &log[at - 1];
    let url = format!("http://{}/hello", upstream.addr);
    assert!(
        request.starts_with("127.0.0.1:") && request.ends_with(&format!(": GET {url}")),
        "{request}"
    );
    // The response line's arrows sit under the method.
    let client = request.split(": GET").next().unwrap();
    assert_eq!(
        response,
        format!("{} << 200 OK 23b", " ".repeat(client.len() - 2))
    );
}

#[test]
fn dump_output_obeys_flow_detail_quiet_and_the_filter() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .args(["--flow-detail", "2", "~u /shown"])
        .start();
    send(proxy.addr, "GET", "/hidden", b"").unwrap();
    send(proxy.addr, "GET", "/shown", b"").unwrap();
    proxy.wait_for_log("GET http://");
    proxy.wait_for_log("    content-length: 23");
    assert!(proxy.lines_with("/hidden").is_empty(), "{}", proxy.dump());
    assert_eq!(proxy.lines_with("/shown").len(), 1, "{}", proxy.dump());
}

#[test]
fn quiet_prints_no_flows() {
    let upstream = Upstream::start();
    let file = temp_dir("quiet").join("flows");
    let mut proxy = Proxy::builder()
        .reverse(upstream.addr)
        .args(["-w", file.to_str().unwrap()])
        .start();
    send(proxy.addr, "GET", "/quiet", b"").unwrap();
    proxy.terminate();
    assert_eq!(proxy.lines_with("/quiet").len(), 1, "{}", proxy.dump());
    let path = file.to_str().unwrap();
    let loud = interpose(&["-n", "-r", path]);
    assert!(loud.stdout.contains("GET http://"), "{}", loud.stdout);
    let quiet = interpose(&["-n", "-q", "-r", path]);
    assert!(quiet.status.success());
    assert_eq!(quiet.stdout, "", "{}", quiet.stderr);
}

#[test]
fn capture_is_read_back_identically_and_by_mitmproxy() {
    let (dir, file, sent) = captured("capture");

    // mitmproxy reads every flow, with the same requests and responses.
    let json = python("flows_to_json.py", &[file.to_str().unwrap()]);
    let flows: Vec<&str> = json.split("\"method\"").skip(1).collect();
    assert_eq!(flows.len(), sent, "{json}");
    for needle in [
        "\"POST\"",
        "/b?x=1&y=two",
        "\"status_code\": 200",
        // base64 of "posted body"
        "cG9zdGVkIGJvZHk=",
    ] {
        assert!(json.contains(needle), "{needle} missing from {json}");
    }

    // Read back and written again: the same bytes.
    let again = dir.join("again");
    let run = interpose(&[
        "-n",
        "-q",
        "-r",
        file.to_str().unwrap(),
        "-w",
        again.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}{}", run.stdout, run.stderr);
    assert_eq!(
        std::fs::read(&file).unwrap(),
        std::fs::read(&again).unwrap()
    );
    assert_eq!(flows_in(&file), sent);
}

#[test]
fn filter_expressions_select_the_flows_mitmproxy_selects() {
    let (dir, file, _) = captured("filters");

    let expressions = [
        "~m POST",
        "~u /a",
        "~u \"b\\?x=1\"",
        "!~m GET & ~c 200",
        "~bq posted | ~bs json",
        "~h \"x-test: caf\"",
        "~hq content-length",
        "~d 127.0.0.1 & !~q",
        "~s",
        "~t json",
        "(~m PUT | ~m DELETE) & !~u echo",
        "~src 127.0.0.1",
        "echo",
        "~hs content-length",
        "~bs upstream",
        "~dst 127.0.0.1",
        "~m get",
        "~u B",
        "!(~q & ~t json)",
        "~all",
        "~http",
        "~q ~m post | ~s ~m put",
        // These select nothing here, in mitmproxy as in Interpose.
        "~e",
        "~a",
        "~marked",
        "~websocket",
        "~replay",
        "~c 404",
        "~tcp",
        "~comment x",
    ];
    let json = python("filter_ids.py", &{
        let mut args = vec![file.to_str().unwrap()];
        args.extend(expressions);
        args
    });
    for expression in expressions {
        let out = dir.join("selected");
        let run = interpose(&[
            "-n",
            "-q",
            "-r",
            file.to_str().unwrap(),
            "-w",
            out.to_str().unwrap(),
            expression,
        ]);
        assert!(
            run.status.success(),
            "{expression}: {}{}",
            run.stdout,
            run.stderr
        );
        let ours = python("filter_ids.py", &[out.to_str().unwrap(), "~all"]);
        let ours_ids = selected(&ours, "~all");
        let theirs = selected(&json, expression);
        assert_eq!(ours_ids, theirs, "{expression}");
        // Juxtaposition binds looser than `|` in mitmproxy: this one selects nothing either.
        let expect_none = [
            "~e",
            "~a",
            "~marked",
            "~websocket",
            "~replay",
            "~c 404",
            "~tcp",
            "~comment x",
            "~q ~m post | ~s ~m put",
        ];
        assert_eq!(
            theirs.is_empty(),
            expect_none.contains(&expression),
            "{expression}: {theirs:?}"
        );
    }
}

/// The ids listed under `expression` in `filter_ids.py`'s JSON output.
fn selected(json: &str, expression: &str) -> Vec<String> {
    let escaped = expression.replace('\\', "\\\\").replace('"', "\\\"");
    let key = format!("\"{escaped}\": [");
    let rest = json
        .split(&key)
        .nth(1)
        .unwrap_or_else(|| panic!("{key} not in {json}"));
    let list = rest.split(']').next().unwrap_or_default();
    list.split(',')
        .map(|id| id.trim().trim_matches('"').to_string())
        .filter(|id| !id.is_empty())
        .collect()
}

#[test]
fn streamed_bodies_are_saved_without_content_as_mitmproxy_saves_them() {
    let upstream = Upstream::start();
    let file = temp_dir("streamed").join("flows");
    let mut proxy = Proxy::builder()
        .reverse(upstream.addr)
        .set("stream_large_bodies", "1k")
        .args(["-w", file.to_str().unwrap()])
        .start();
    let big = vec![b'x'; 8 * 1024];
    let reply = send(proxy.addr, "POST", "/echo", &big).unwrap();
    assert_eq!(reply.body.len(), big.len());
    send(proxy.addr, "POST", "/echo", b"small").unwrap();
    proxy.terminate();
    let json = python("flows_to_json.py", &[file.to_str().unwrap()]);
    // The streamed flow: no content on either side; the small one: its content.
    assert_eq!(json.matches("\"content\": null").count(), 2, "{json}");
    assert!(json.contains("c21hbGw="), "{json}");
}

#[test]
fn har_dump_opens_in_mitmproxy() {
    let upstream = Upstream::start();
    let dir = temp_dir("har");
    let har = dir.join("flows.har");
    let mut proxy = Proxy::builder()
        .reverse(upstream.addr)
        .set("hardump", har.to_str().unwrap())
        .start();
    let sent = varied_traffic(&proxy);
    proxy.terminate();
    let text = std::fs::read_to_string(&har).unwrap();
    assert!(
        text.starts_with("{\"log\": {\"version\": \"1.2\""),
        "{text}"
    );
    // The HAR 1.2 structure: required fields and their types.
    assert_eq!(
        python("har_check.py", &[har.to_str().unwrap()]).trim(),
        format!("ok {sent}")
    );
    // `.zhar`: the same document, compressed with zlib.
    let zhar = dir.join("flows.zhar");
    let mut proxy = Proxy::builder()
        .reverse(upstream.addr)
        .set("hardump", zhar.to_str().unwrap())
        .start();
    varied_traffic(&proxy);
    proxy.terminate();
    assert_eq!(
        python("har_check.py", &[zhar.to_str().unwrap()]).trim(),
        format!("ok {sent}")
    );
    // mitmproxy reads HAR files as flows (its reader's HAR import).
    let json = python("flows_to_json.py", &[har.to_str().unwrap()]);
    assert_eq!(json.matches("\"method\"").count(), sent, "{json}");
    assert!(json.contains("cG9zdGVkIGJvZHk="), "{json}");
}

#[test]
fn a_full_disk_is_reported_and_the_proxy_keeps_serving() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let upstream = Upstream::start();
    let mut proxy = Proxy::builder()
        .reverse(upstream.addr)
        .args(["-w", "/dev/full"])
        .start();
    for i in 0..20 {
        let reply = send(proxy.addr, "GET", &format!("/{i}"), b"").unwrap();
        assert_eq!(reply.status, 200);
    }
    proxy.terminate();
    let errors = proxy.lines_with("cannot write to /dev/full");
    assert!(!errors.is_empty(), "{}", proxy.dump());
    let summary = proxy.lines_with("flows were not saved to /dev/full");
    assert!(
        summary
            .iter()
            .any(|l| l.contains("20 flows were not saved")),
        "{}",
        proxy.dump()
    );
}

#[test]
fn kill_9_leaves_a_readable_file_and_sigterm_under_load_loses_nothing() {
    let upstream = Upstream::start();
    let dir = temp_dir("crash");

    // kill -9 while traffic flows: every complete record reads back.
    let file = dir.join("killed");
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .args(["--flow-detail", "0", "-w", file.to_str().unwrap()])
        .start();
    let stop = Arc::new(AtomicBool::new(false));
    let load = load_threads(proxy.addr, &stop);
    while std::fs::metadata(&file).map_or(0, |m| m.len()) < 20_000 {
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: plain FFI call with a pid we own.
    unsafe { libc::kill(proxy.pid() as i32, libc::SIGKILL) };
    stop.store(true, Ordering::Relaxed);
    load.join();
    let read = interpose(&["-n", "-r", file.to_str().unwrap()]);
    let flows = read.stdout.lines().filter(|l| l.contains(" << ")).count();
    assert!(flows > 0, "{}{}", read.stdout, read.stderr);

    // SIGTERM under load: every flow a client completed is in the file.
    let file = dir.join("terminated");
    let mut proxy = Proxy::builder()
        .reverse(upstream.addr)
        .args(["--flow-detail", "0", "-w", file.to_str().unwrap()])
        .start();
    let stop = Arc::new(AtomicBool::new(false));
    let load = load_threads(proxy.addr, &stop);
    std::thread::sleep(Duration::from_millis(500));
    proxy.terminate();
    stop.store(true, Ordering::Relaxed);
    let completed = load.join();
    assert!(completed > 0);
    let saved = python("filter_ids.py", &[file.to_str().unwrap(), "~s & ~c 200"]);
    let saved = selected(&saved, "~s & ~c 200").len();
    assert!(
        saved as u64 >= completed,
        "{completed} requests completed, {saved} flows with a response saved"
    );
}

/// Four client threads sending requests until `stop`; `join` returns how many completed.
struct Load {
    threads: Vec<std::thread::JoinHandle<()>>,
    completed: Arc<AtomicU64>,
}

impl Load {
    fn join(self) -> u64 {
        for thread in self.threads {
            let _ = thread.join();
        }
        self.completed.load(Ordering::Relaxed)
    }
}

fn load_threads(proxy: std::net::SocketAddr, stop: &Arc<AtomicBool>) -> Load {
    let completed = Arc::new(AtomicU64::new(0));
    let threads = (0..4)
        .map(|t| {
            let stop = Arc::clone(stop);
            let completed = Arc::clone(&completed);
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    match send(proxy, "GET", &format!("/load/{t}/{i}"), b"") {
                        Ok(reply) if reply.status == 200 => {
                            completed.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => break,
                    }
                }
            })
        })
        .collect();
    Load { threads, completed }
}

#[test]
fn dump_output_matches_mitmdump_reading_the_same_capture() {
    let (_, file, _) = captured("dump-vs-mitmdump");
    assert_dump_matches_mitmdump(&file, &["1", "2", "3"], " << 200 OK");
}

/// Checks that `interpose -n -r FILE` prints exactly what `mitmdump -n -r FILE` prints at
/// each flow detail level given; mitmdump's output must contain `needle`.
fn assert_dump_matches_mitmdump(file: &Path, details: &[&str], needle: &str) {
    let mitmdump = mitmproxy_python().with_file_name("mitmdump");
    let path = file.to_str().unwrap();
    for detail in details {
        let theirs = Command::new(&mitmdump)
            .args(["-n", "-r", path, "--flow-detail", detail])
            .output()
            .expect("run mitmdump");
        let theirs = String::from_utf8_lossy(&theirs.stdout).into_owned();
        let ours = interpose(&["-n", "-r", path, "--flow-detail", detail]);
        assert!(ours.status.success(), "{}", ours.stderr);
        assert!(theirs.contains(needle), "{theirs}");
        assert_eq!(ours.stdout, theirs, "flow_detail {detail}");
    }
}

#[test]
fn dump_output_matches_mitmdump_on_flows_mitmproxy_wrote() {
    // mitmproxy's own test flows: a response, an error, WebSocket messages, HTTP/2 over TLS
    // from an IPv6 client.
    let file = temp_dir("mitmproxy-flows").join("flows");
    let path = file.to_str().unwrap();
    python("write_flows.py", &[path]);
    assert_dump_matches_mitmdump(&file, &["1", "2"], "WebSocket text message");
    // Read and saved again, mitmproxy's flows stay readable by mitmproxy.
    let again = file.with_file_name("again");
    let run = interpose(&["-n", "-q", "-r", path, "-w", again.to_str().unwrap()]);
    assert!(run.status.success(), "{}", run.stderr);
    let original = python("flows_to_json.py", &[path]);
    let saved = python("flows_to_json.py", &[again.to_str().unwrap()]);
    assert_eq!(
        saved.matches("\"method\"").count(),
        original.matches("\"method\"").count()
    );
}

#[test]
fn strftime_patterns_start_a_new_file_when_the_path_changes() {
    let upstream = Upstream::start();
    let dir = temp_dir("rotation");
    let pattern = dir.join("flows-%H%M%S.mitm");
    let mut proxy = Proxy::builder()
        .reverse(upstream.addr)
        .args(["--flow-detail", "0", "-w", pattern.to_str().unwrap()])
        .start();
    let mut sent = 0;
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        send(proxy.addr, "GET", &format!("/{sent}"), b"").unwrap();
        sent += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    proxy.terminate();
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(files.len() >= 2, "{files:?}");
    for file in &files {
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("flows-") && name.ends_with(".mitm") && name.len() == 17,
            "{name}"
        );
    }
    let saved: usize = files.iter().map(|f| flows_in(f)).sum();
    assert_eq!(saved, sent);
}

#[test]
fn marks_and_comments_set_by_addons_are_saved_and_filtered_on() {
    let upstream = Upstream::start();
    let dir = temp_dir("marked");
    let file = dir.join("flows");
    let mut proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("engine-probe"))
        .args(["--flow-detail", "0", "-w", file.to_str().unwrap()])
        .set("save_stream_filter", "~marked")
        .start();
    let mut conn = Connection::open(proxy.addr);
    for (path, mark) in [
        ("/plain", None),
        ("/marked", Some(":grapes:")),
        ("/other", None),
    ] {
        let headers: Vec<(&str, &str)> = mark.map(|m| ("x-probe-mark", m)).into_iter().collect();
        assert_eq!(conn.send("GET", path, &headers, b"").unwrap().status, 200);
    }
    assert!(proxy.terminate().success(), "{}", proxy.dump());

    let flows: Vec<_> = FlowReader::new(std::fs::File::open(&file).unwrap())
        .collect::<Result<_, _>>()
        .expect("a readable capture");
    assert_eq!(flows.len(), 1, "only the marked flow was saved");
    assert_eq!(flows[0].request.path(), "/marked");
    assert_eq!(flows[0].marked(), ":grapes:");
    assert_eq!(flows[0].comment(), "marked by the probe");
    // The filter language sees them too.
    let run = interpose(&["-n", "-r", file.to_str().unwrap(), "~comment probe"]);
    assert!(
        run.stdout.contains("/marked"),
        "{}{}",
        run.stdout,
        run.stderr
    );
}
