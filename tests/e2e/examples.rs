//! The example plugins and programs of `examples/` that need the proxy's own services
//! (flow filters, flow file encoding) or read its captures: `filter-flows`,
//! `io-write-flow-file` and `io-read-saved-flows`.

use std::{path::Path, process::Command};

use crate::harness::{binary, plugin, send, temp_dir, Proxy, Upstream};

const MATCHES: &str = "Flow matches filter: ";

/// Sends `GET path` through `proxy` and checks that the upstream answered.
fn get(proxy: &Proxy, path: &str) {
    let reply = send(proxy.addr, "GET", path, b"").expect("reply");
    assert_eq!(reply.status, 200, "GET {path}");
}

#[test]
fn filter_flows_logs_the_flows_matching_its_expression_only() {
    let upstream = Upstream::start();
    let mut proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("filter-flows"))
        .env("INTERPOSE_FLOWFILTER", "~u /match")
        .start();
    for path in ["/other", "/match", "/other/x", "/match?n=2"] {
        get(&proxy, path);
    }
    proxy.wait_for_count(MATCHES, 2);
    assert!(proxy.terminate().success(), "{}", proxy.dump());
    let matches = proxy.lines_with(MATCHES);
    let url = format!("http://{}", upstream.addr);
    assert_eq!(matches.len(), 2, "{}", proxy.dump());
    assert!(
        matches[0].ends_with(&format!("{MATCHES}GET {url}/match 200 OK")),
        "{matches:?}"
    );
    assert!(
        matches[1].ends_with(&format!("{MATCHES}GET {url}/match?n=2 200 OK")),
        "{matches:?}"
    );
    assert!(proxy
        .lines_with("/other")
        .iter()
        .all(|l| !l.contains(MATCHES)));
}

#[test]
fn filter_flows_reports_a_bad_expression_and_logs_nothing_without_one() {
    let upstream = Upstream::start();
    let bad = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("filter-flows"))
        .env("INTERPOSE_FLOWFILTER", "~c notanumber")
        .start();
    let error = bad.wait_for_log("INTERPOSE_FLOWFILTER=\"~c notanumber\" is invalid: ");
    assert!(error.contains("error"), "{error}");
    get(&bad, "/match");

    let mut unset = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("filter-flows"))
        .env("INTERPOSE_FLOWFILTER", "")
        .start();
    get(&unset, "/match");
    assert!(unset.terminate().success());
    let mut bad = bad;
    assert!(bad.terminate().success());
    for proxy in [&bad, &unset] {
        assert!(proxy.lines_with(MATCHES).is_empty(), "{}", proxy.dump());
    }
    assert!(unset.lines_with("INTERPOSE_FLOWFILTER").is_empty());
}

#[test]
fn io_write_flow_file_saves_about_half_of_the_flows_in_a_file_interpose_reads() {
    const SENT: usize = 40;
    let upstream = Upstream::start();
    let file = temp_dir("io-write-flow-file").join("out.mitm");
    let mut proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("io-write-flow-file"))
        .env("INTERPOSE_OUTFILE", file.to_str().unwrap())
        .start();
    for n in 0..SENT {
        get(&proxy, &format!("/flow/{n}"));
    }
    assert!(proxy.terminate().success(), "{}", proxy.dump());
    assert!(file.exists(), "{}", proxy.dump());
    let wrote = proxy.lines_with(" flows to ");

    let read = Proxy::builder()
        .args(["-n", "-r", file.to_str().unwrap()])
        .run();
    assert!(read.status.success(), "{}{}", read.stdout, read.stderr);
    let flows = read
        .stdout
        .lines()
        .filter(|l| l.contains(" << 200 OK"))
        .count();
    // p = 0.5 each: all or none of 40 happens once in 2^39 runs.
    assert!(
        (1..SENT).contains(&flows),
        "{flows} of {SENT}:\n{}",
        read.stdout
    );
    let expected = format!("wrote {flows} flows to {}", file.display());
    assert!(
        wrote.len() == 1 && wrote[0].ends_with(&expected),
        "{wrote:?}"
    );
    // Whole records of distinct flows, in the order they were answered.
    let paths: Vec<usize> = read
        .stdout
        .lines()
        .filter_map(|l| l.split("/flow/").nth(1)?.parse().ok())
        .collect();
    assert_eq!(paths.len(), flows, "{}", read.stdout);
    assert!(paths.windows(2).all(|w| w[0] < w[1]), "{paths:?}");
}

/// Runs `io-read-saved-flows FILE`: (success, stdout).
fn read_saved_flows(file: &Path) -> (bool, String) {
    let output = Command::new(binary("io-read-saved-flows"))
        .arg(file)
        .output()
        .expect("run io-read-saved-flows");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), stdout)
}

#[test]
fn io_read_saved_flows_prints_every_flow_of_a_capture_and_reports_a_truncated_file() {
    let upstream = Upstream::start();
    let dir = temp_dir("io-read-saved-flows");
    let file = dir.join("capture.mitm");
    let mut proxy = Proxy::builder()
        .reverse(upstream.addr)
        .args(["-w", file.to_str().unwrap()])
        .start();
    let paths = ["/a", "/b?x=1", "/c/d"];
    for path in paths {
        get(&proxy, path);
    }
    assert!(proxy.terminate().success(), "{}", proxy.dump());

    let (ok, out) = read_saved_flows(&file);
    assert!(ok, "{out}");
    let url = format!("http://{}", upstream.addr);
    for path in paths {
        let summary = format!("GET {url}{path} << 200 OK ");
        let at = out
            .lines()
            .position(|l| l.starts_with(&summary))
            .unwrap_or_else(|| panic!("no {summary:?} in\n{out}"));
        let mut rest = out.lines().skip(at + 1);
        assert_eq!(rest.next(), Some("127.0.0.1"), "{out}");
        assert_eq!(rest.next(), Some("{"), "{out}");
        // The state, nested: the request's path, as mitmproxy keeps it (bytes).
        let state: Vec<&str> = rest.take_while(|l| *l != "}").collect();
        assert!(state.contains(&"  type: \"http\","), "{out}");
        assert!(state.contains(&"  request: {"), "{out}");
        assert!(
            state.contains(&format!("    path: b\"{path}\",").as_str()),
            "{out}"
        );
        assert!(state.contains(&"    status_code: 200,"), "{out}");
    }
    assert_eq!(out.lines().filter(|l| *l == "127.0.0.1").count(), 3);
    assert!(!out.contains("Flow file corrupted"), "{out}");

    let bytes = std::fs::read(&file).unwrap();
    let truncated = dir.join("truncated.mitm");
    std::fs::write(&truncated, &bytes[..bytes.len() - 5]).unwrap();
    let (ok, out) = read_saved_flows(&truncated);
    assert!(!ok, "{out}");
    assert_eq!(
        out.lines().filter(|l| *l == "127.0.0.1").count(),
        2,
        "{out}"
    );
    let last = out.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("Flow file corrupted: the flow file ends inside the record at byte "),
        "{out}"
    );
}
