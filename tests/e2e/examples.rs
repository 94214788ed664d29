//! The example plugins of `examples/` that need the proxy's own services (flow filters, flow
//! file encoding): `filter-flows` and `io-write-flow-file`. (`io-read-saved-flows`, a
//! program, is tested in its own crate.)

use crate::harness::{plugin, send, temp_dir, Proxy, Upstream};

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
