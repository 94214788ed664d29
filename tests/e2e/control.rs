//! The control endpoint and `interpose ctl`: commands listed, suggested and checked, options
//! set while traffic flows, paused flows marked and resumed, the Unix socket's mode and its
//! removal at exit, the TCP endpoint's token, refused non-loopback addresses, and the
//! endpoint off by default.

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    os::unix::{fs::PermissionsExt, net::UnixStream},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::Duration,
};

use crate::harness::{plugin, temp_dir, Connection, Finished, Proxy, ProxyBuilder, Upstream};

/// Runs `interpose ctl ARGS...` to completion.
fn ctl(args: &[&str]) -> Finished {
    let mut all = vec!["ctl"];
    all.extend_from_slice(args);
    Proxy::builder().args(all).run()
}

/// Runs `interpose ctl --control SOCKET ARGS...` and returns its stdout, failing on exit 1.
fn ctl_ok(socket: &Path, args: &[&str]) -> String {
    let mut all = vec!["--control", socket.to_str().unwrap()];
    all.extend_from_slice(args);
    let run = ctl(&all);
    assert!(
        run.status.success(),
        "ctl {args:?} failed: {}{}",
        run.stdout,
        run.stderr
    );
    run.stdout
}

/// Runs `interpose ctl --control SOCKET ARGS...`, expects exit 1, returns its stderr.
fn ctl_err(socket: &Path, args: &[&str]) -> String {
    let mut all = vec!["--control", socket.to_str().unwrap()];
    all.extend_from_slice(args);
    let run = ctl(&all);
    assert_eq!(run.status.code(), Some(1), "ctl {args:?}: {}", run.stdout);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    run.stderr
}

/// Starts `builder` with a control socket in a fresh folder labelled `label`, and waits for
/// the endpoint: the proxy and the socket's path.
fn with_control(label: &str, builder: ProxyBuilder) -> (Proxy, PathBuf) {
    let socket = temp_dir(label).join("ctl.sock");
    let proxy = builder.set("control", socket.to_str().unwrap()).start();
    proxy.wait_for_log("control endpoint: unix:");
    (proxy, socket)
}

/// Sends request lines on one connection and reads one response line for each.
fn exchange(stream: impl std::io::Read + Write, lines: &[&str]) -> Vec<String> {
    let mut reader = BufReader::new(stream);
    let mut answers = Vec::new();
    for line in lines {
        reader
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
        let mut answer = String::new();
        reader.read_line(&mut answer).unwrap();
        answers.push(answer.trim_end().to_string());
    }
    answers
}

#[test]
fn ctl_lists_commands_suggests_names_and_shows_signatures() {
    let dir = temp_dir("ctl-unix");
    let socket = dir.join("ctl.sock");
    let mut proxy = Proxy::builder()
        .set("control", socket.to_str().unwrap())
        .start();
    proxy.wait_for_log(&format!("control endpoint: unix:{}", socket.display()));

    let listing = ctl_ok(&socket, &["commands"]);
    for signature in [
        "set assignments:",
        "options.save path:",
        "flow.resume flows:",
        "flow.kill flows:",
        "flow.mark flows:",
    ] {
        assert!(listing.contains(signature), "{signature}: {listing}");
    }
    let unknown = ctl_err(&socket, &["comands"]);
    assert_eq!(
        unknown.trim_end(),
        "error: Unknown command: comands (did you mean commands?)"
    );
    let wrong = ctl_err(&socket, &["flow.mark", "@all"]);
    assert!(wrong.starts_with("error: "), "{wrong}");
    assert!(wrong.contains("usage: flow.mark flows:"), "{wrong}");

    // Only the user who started the proxy may connect.
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");

    // Several requests on one connection; malformed ones get an error, not a hang-up.
    let answers = exchange(
        UnixStream::connect(&socket).unwrap(),
        &[
            "not json",
            r#"{"command": 7}"#,
            r#"{"command": "flow.resume", "args": ["@all"]}"#,
            r#"{"command": "nope"}"#,
        ],
    );
    assert!(
        answers[0].contains(r#""ok":false"#) && answers[0].contains("malformed request"),
        "{answers:?}"
    );
    assert!(answers[1].contains("must be a string"), "{answers:?}");
    assert_eq!(answers[2], r#"{"ok":true,"result":"0"}"#);
    assert!(answers[3].contains("Unknown command: nope"), "{answers:?}");

    assert!(proxy.terminate().success(), "{}", proxy.dump());
    assert!(!socket.exists(), "the socket outlived the proxy");
}

#[test]
fn ctl_set_changes_options_while_traffic_flows() {
    let upstream = Upstream::start();
    let (proxy, socket) = with_control(
        "ctl-set",
        Proxy::builder()
            .reverse(upstream.addr)
            .plugin(&plugin("panic-request"))
            .set("flow_detail", "0"),
    );
    let dir = socket.parent().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (stop, addr) = (Arc::clone(&stop), proxy.addr);
        thread::spawn(move || {
            let mut connection = Connection::open(addr);
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let status = connection
                    .send("GET", "/loop", &[], b"")
                    .map_or(0, |reply| reply.status);
                statuses.push(status);
            }
            statuses
        })
    };
    for seconds in 5..9 {
        let timeout = format!("connect_timeout={seconds}");
        assert_eq!(
            ctl_ok(&socket, &["set", &timeout, "body_size_limit=1m"]),
            ""
        );
    }
    stop.store(true, Ordering::Relaxed);
    let statuses = client.join().unwrap();
    assert!(!statuses.is_empty());
    assert!(
        statuses.iter().all(|s| *s == 200),
        "a request failed while options changed: {statuses:?}\n{}",
        proxy.dump()
    );

    // Applied at once: the panicking addon now fails its flow.
    assert_eq!(ctl_ok(&socket, &["set", "addon_errors=fail"]), "");
    let reply = Connection::open(proxy.addr)
        .send("GET", "/after", &[], b"")
        .unwrap();
    assert_eq!(reply.status, 502, "{}", proxy.dump());

    let unknown = ctl_err(&socket, &["set", "body_size_limt=10"]);
    assert!(
        unknown.contains("did you mean body_size_limit"),
        "{unknown}"
    );
    let bad = ctl_err(&socket, &["set", "connect_timeout=soon"]);
    assert!(bad.contains("connect_timeout"), "{bad}");
    let moved = ctl_err(&socket, &["set", "control=/tmp/elsewhere.sock"]);
    assert!(moved.contains("restart"), "{moved}");

    let saved = dir.join("saved.yaml");
    assert_eq!(
        ctl_ok(&socket, &["options.save", saved.to_str().unwrap()]),
        ""
    );
    let text = std::fs::read_to_string(&saved).unwrap();
    for line in [
        "addon_errors: \"fail\"",
        "connect_timeout: 8",
        "body_size_limit: 1m",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
}

#[test]
fn ctl_marks_and_resumes_paused_flows() {
    let upstream = Upstream::start();
    let (proxy, socket) = with_control(
        "ctl-pause",
        Proxy::builder()
            .reverse(upstream.addr)
            .plugin(&plugin("pauser")),
    );
    let addr = proxy.addr;
    let waiting = thread::spawn(move || {
        Connection::open(addr)
            .send("GET", "/held", &[("x-pause-forever", "1")], b"")
            .map(|reply| reply.status)
    });
    proxy.wait_for_log("paused /held for good");
    assert_eq!(ctl_ok(&socket, &["flow.mark", "@all", ":star:"]), "1\n");
    assert!(!waiting.is_finished());
    assert_eq!(ctl_ok(&socket, &["flow.resume", "@all"]), "1\n");
    assert_eq!(waiting.join().unwrap(), Ok(200), "{}", proxy.dump());
    assert_eq!(ctl_ok(&socket, &["flow.resume", "@all"]), "0\n");
}

#[test]
fn tcp_endpoint_wants_the_token() {
    let confdir = temp_dir("ctl-tcp");
    let proxy = Proxy::builder()
        .confdir(&confdir)
        .set("control", "127.0.0.1:0")
        .start();
    let line = proxy.wait_for_log("control endpoint: tcp:");
    let address = line.rsplit("tcp:").next().unwrap().trim().to_string();
    let token_file = confdir.join("control-token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let token = std::fs::read_to_string(&token_file).unwrap();
    let token = token.trim();
    assert_eq!(token.len(), 32);

    let refused = |line: &str| {
        let answers = exchange(TcpStream::connect(&address).unwrap(), &[line]);
        assert!(
            answers[0].contains(r#""ok":false"#) && answers[0].contains("token"),
            "{answers:?}"
        );
    };
    refused(r#"{"command": "flow.resume", "args": ["@all"]}"#);
    refused(r#"{"command": "flow.resume", "args": ["@all"], "token": "0123"}"#);
    let answers = exchange(
        TcpStream::connect(&address).unwrap(),
        &[&format!(
            r#"{{"command": "flow.resume", "args": ["@all"], "token": "{token}"}}"#
        )],
    );
    assert_eq!(answers[0], r#"{"ok":true,"result":"0"}"#);

    // `interpose ctl` reads the token from the confdir.
    let run = ctl(&[
        "--control",
        &address,
        "--confdir",
        confdir.to_str().unwrap(),
        "commands",
    ]);
    assert!(run.status.success(), "{}", run.stderr);
    assert!(run.stdout.contains("flow.resume"), "{}", run.stdout);
    // From config.yaml when --control is left out.
    std::fs::write(confdir.join("config.yaml"), format!("control: {address}\n")).unwrap();
    let run = ctl(&["--confdir", confdir.to_str().unwrap(), "commands"]);
    assert!(run.status.success(), "{}", run.stderr);
}

#[test]
fn non_loopback_tcp_is_a_startup_error_and_a_dead_endpoint_is_named() {
    let run = Proxy::builder().set("control", "0.0.0.0:1234").run();
    assert_eq!(run.status.code(), Some(1));
    assert!(
        run.stderr.contains("0.0.0.0 is not a loopback address"),
        "{}",
        run.stderr
    );

    let dir = temp_dir("ctl-dead");
    let socket = dir.join("nobody.sock");
    let error = ctl_err(&socket, &["commands"]);
    assert!(
        error.contains(&format!(
            "cannot connect to the control endpoint {}",
            socket.display()
        )) && error.contains("--set control="),
        "{error}"
    );
}

#[test]
fn without_the_option_nothing_listens() {
    let home = temp_dir("ctl-off");
    let mut proxy = Proxy::builder().home(&home).start();
    assert!(proxy.lines_with("control endpoint").is_empty());
    // `interpose ctl` finds no endpoint in the default confdir (HOME is the proxy's).
    let run = Proxy::builder().home(&home).args(["ctl", "commands"]).run();
    assert_eq!(run.status.code(), Some(1));
    assert!(run.stderr.contains("no control endpoint"), "{}", run.stderr);
    assert!(proxy.terminate().success());
    let confdir = home.join(".interpose");
    assert!(!confdir.join("control-token").exists());
    let sockets: Vec<_> = std::fs::read_dir(&confdir)
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        sockets.iter().all(|p| {
            use std::os::unix::fs::FileTypeExt;
            !std::fs::metadata(p).unwrap().file_type().is_socket()
        }),
        "{sockets:?}"
    );
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let dir = temp_dir("ctl-stale");
    let socket = dir.join("ctl.sock");
    let spec = socket.to_str().unwrap();
    let first = Proxy::builder().set("control", spec).start();
    let second = Proxy::builder()
        .set("control", spec)
        .args(["-p", "0"])
        .run();
    assert_eq!(second.status.code(), Some(1));
    assert!(
        second.stderr.contains("another proxy is listening on"),
        "{}",
        second.stderr
    );
    // Killed (SIGKILL): its socket file stays behind, stale.
    drop(first);
    assert!(socket.exists());
    let _third = Proxy::builder().set("control", spec).start();
    assert!(ctl_ok(&socket, &["commands"]).contains("flow.kill"));
}

#[test]
fn set_applies_the_proxys_own_options_at_once_and_refuses_restart_only_ones() {
    let upstream = Upstream::start();
    let (proxy, socket) = with_control("ctl-live", Proxy::builder().reverse(upstream.addr));
    let body = [b'x'; 100];
    let reply = Connection::open(proxy.addr).send("POST", "/echo", &[], &body);
    assert_eq!(reply.unwrap().status, 200);

    assert_eq!(ctl_ok(&socket, &["set", "body_size_limit=10"]), "");
    let reply = Connection::open(proxy.addr).send("POST", "/echo", &[], &body);
    assert_eq!(
        reply.unwrap().status,
        413,
        "the new limit holds for the next flow"
    );

    // A restart-only option is refused by name, and nothing of that `set` applies.
    let refused = ctl_err(&socket, &["set", "listen_port=1", "body_size_limit=1m"]);
    assert!(
        refused.contains("listen_port cannot change while the proxy runs"),
        "{refused}"
    );
    let reply = Connection::open(proxy.addr).send("POST", "/echo", &[], &body);
    assert_eq!(reply.unwrap().status, 413, "body_size_limit stayed at 10");
    assert_eq!(ctl_ok(&socket, &["set", "body_size_limit"]), "");
    let reply = Connection::open(proxy.addr).send("POST", "/echo", &[], &body);
    assert_eq!(reply.unwrap().status, 200, "unset again");
}

#[test]
fn the_intercept_option_pauses_matching_flows_until_flow_resume() {
    let upstream = Upstream::start();
    let (proxy, socket) = with_control("ctl-intercept", Proxy::builder().reverse(upstream.addr));
    assert_eq!(ctl_ok(&socket, &["set", "intercept=~u /held"]), "");
    let bad = ctl_err(&socket, &["set", "intercept=~nonsense"]);
    assert!(bad.contains("intercept: "), "{bad}");

    let addr = proxy.addr;
    let held = thread::spawn(move || Connection::open(addr).send("GET", "/held", &[], b""));
    // Other flows go through; the matching one waits for the command.
    let reply = Connection::open(proxy.addr).send("GET", "/free", &[], b"");
    assert_eq!(reply.unwrap().status, 200);
    let mut resumed = String::new();
    for _ in 0..100 {
        resumed = ctl_ok(&socket, &["flow.resume", "~u /held"]);
        if resumed != "0\n" {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(resumed, "1\n");
    // It pauses again at its response.
    let mut again = String::new();
    for _ in 0..100 {
        again = ctl_ok(&socket, &["flow.resume", "@all"]);
        if again != "0\n" {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(again, "1\n");
    assert_eq!(held.join().unwrap().unwrap().status, 200);
    assert_eq!(upstream.seen().len(), 2);
}

#[test]
fn configure_sees_every_option_at_start_and_the_changed_ones_after_set() {
    let upstream = Upstream::start();
    let (proxy, socket) = with_control(
        "ctl-configure",
        Proxy::builder()
            .reverse(upstream.addr)
            .plugin(&plugin("event-log")),
    );
    let first = proxy.wait_for_log("event configure ");
    assert!(first.contains("options (listen_port: true)"), "{first}");
    let dir = socket.parent().unwrap();
    assert_eq!(
        ctl_ok(&socket, &["set", "connect_timeout=4", "body_size_limit=2m"]),
        ""
    );
    proxy.wait_for_log("event configure body_size_limit,connect_timeout");
    // Setting the value an option has changes nothing, and nobody is told.
    assert_eq!(ctl_ok(&socket, &["set", "connect_timeout=4"]), "");

    // An addon calls `set` itself, through its context.
    let reply = Connection::open(proxy.addr).send("GET", "/call-set/connect_timeout=6", &[], b"");
    assert_eq!(reply.unwrap().status, 200);
    proxy.wait_for_log("called set connect_timeout=6: Ok(\"\")");
    proxy.wait_for_log("event configure connect_timeout");
    let saved = dir.join("saved.yaml");
    ctl_ok(&socket, &["options.save", saved.to_str().unwrap()]);
    let text = std::fs::read_to_string(&saved).unwrap();
    assert!(text.contains("connect_timeout: 6\n"), "{text}");
    assert_eq!(proxy.lines_with("event configure connect_timeout").len(), 1);
}

#[test]
fn a_value_an_addon_refuses_at_run_time_is_undone_everywhere() {
    let upstream = Upstream::start();
    let (proxy, socket) = with_control(
        "ctl-refuse",
        Proxy::builder()
            .reverse(upstream.addr)
            .plugin(&plugin("options-configure"))
            .set("addheader", "42"),
    );
    let refused = ctl_err(&socket, &["set", "addheader=101"]);
    assert!(refused.contains("addheader must be <= 100"), "{refused}");
    let reply = Connection::open(proxy.addr)
        .send("GET", "/", &[], b"")
        .unwrap();
    assert_eq!(
        reply.header("addheader"),
        Some("42"),
        "the old value stayed"
    );
    assert_eq!(ctl_ok(&socket, &["set", "addheader=7"]), "");
    let reply = Connection::open(proxy.addr)
        .send("GET", "/", &[], b"")
        .unwrap();
    assert_eq!(reply.header("addheader"), Some("7"));
}

#[test]
fn the_dump_output_follows_its_options_while_the_proxy_runs() {
    let upstream = Upstream::start();
    let (proxy, socket) = with_control("ctl-dump", Proxy::builder().reverse(upstream.addr));
    let get = |path: &str| {
        let reply = Connection::open(proxy.addr).send("GET", path, &[], b"");
        assert_eq!(reply.unwrap().status, 200);
    };
    get("/shown-1");
    proxy.wait_for_log("GET http://");
    assert_eq!(ctl_ok(&socket, &["set", "flow_detail=0"]), "");
    get("/hidden");
    assert_eq!(
        ctl_ok(
            &socket,
            &["set", "flow_detail=1", "dumper_filter=~u /shown"]
        ),
        ""
    );
    get("/filtered-out");
    get("/shown-2");
    proxy.wait_for_log("/shown-2");
    let refused = ctl_err(&socket, &["set", "flow_detail=7"]);
    assert!(
        refused.contains("flow_detail: expected an integer from 0 to 4"),
        "{refused}"
    );
    get("/shown-3");
    proxy.wait_for_log("/shown-3");
    assert!(proxy.lines_with("/hidden").is_empty(), "{}", proxy.dump());
    assert!(
        proxy.lines_with("/filtered-out").is_empty(),
        "{}",
        proxy.dump()
    );
    assert_eq!(proxy.lines_with("/shown-1").len(), 1);
}

#[test]
fn changing_save_stream_file_while_the_proxy_runs_moves_to_the_new_file() {
    let upstream = Upstream::start();
    let dir = temp_dir("ctl-save");
    let (first, second) = (dir.join("first.mitm"), dir.join("second.mitm"));
    let (mut proxy, socket) = with_control(
        "ctl-save-socket",
        Proxy::builder().reverse(upstream.addr).args([
            "--flow-detail",
            "0",
            "-w",
            first.to_str().unwrap(),
        ]),
    );
    let get = |path: &str| {
        let reply = Connection::open(proxy.addr).send("GET", path, &[], b"");
        assert_eq!(reply.unwrap().status, 200);
    };
    get("/one");
    get("/two");
    let spec = format!("save_stream_file={}", second.display());
    assert_eq!(ctl_ok(&socket, &["set", &spec]), "");
    get("/three");
    assert!(proxy.terminate().success(), "{}", proxy.dump());
    let paths = |file: &Path| -> Vec<String> {
        interpose::capture::flowfile::FlowReader::new(std::fs::File::open(file).unwrap())
            .map(|flow| flow.expect("a readable flow").request.path().to_string())
            .collect()
    };
    assert_eq!(
        paths(&first),
        ["/one", "/two"],
        "the first file was written out and closed"
    );
    assert_eq!(paths(&second), ["/three"]);
}

#[test]
fn anticache_and_anticomp_from_the_command_line_and_at_run_time() {
    let upstream = Upstream::start();
    let (proxy, socket) = with_control(
        "ctl-anticache",
        Proxy::builder().reverse(upstream.addr).args(["--anticomp"]),
    );
    let headers = [("If-None-Match", "\"v1\""), ("Accept-Encoding", "gzip, br")];
    let get = |path: &str| {
        let reply = Connection::open(proxy.addr).send("GET", path, &headers, b"");
        assert_eq!(reply.unwrap().status, 200);
    };
    get("/before");
    // The issue's own example: switched on while the proxy runs.
    assert_eq!(ctl_ok(&socket, &["set", "anticache=true"]), "");
    get("/after");
    let seen = upstream.seen();
    assert_eq!(seen[0].header("if-none-match"), Some("\"v1\""));
    assert_eq!(seen[1].header("if-none-match"), None);
    for request in &seen {
        assert_eq!(
            request.header("accept-encoding"),
            Some("identity"),
            "--anticomp"
        );
    }
}

#[test]
fn connections_past_the_cap_are_told_so_and_the_endpoint_goes_on() {
    use std::io::Read;
    let (_proxy, socket) = with_control("control-cap", Proxy::builder());
    // 32 open connections (each proven served by one answered request).
    let held: Vec<UnixStream> = (0..32)
        .map(|_| {
            let stream = UnixStream::connect(&socket).unwrap();
            let answer = exchange(stream.try_clone().unwrap(), &[r#"{"command": "commands"}"#]);
            assert!(answer[0].contains("\"ok\":true"), "{answer:?}");
            stream
        })
        .collect();
    let mut extra = UnixStream::connect(&socket).unwrap();
    let mut answer = String::new();
    extra.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("too many control connections"), "{answer}");
    // Closing one makes room again.
    drop(held);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(ctl_ok(&socket, &["replay.client.count"]).trim(), "0");
}
