//! HTTPS interception: the CA made on first run, clients trusting it, servers verified (or
//! not, with `--ssl-insecure`), addons changing HTTPS responses, reverse mode to https.

use std::os::unix::fs::PermissionsExt;

use crate::harness::{curl_direct, curl_through, plugin, send, temp_dir, Proxy, TlsServer};

#[test]
fn https_through_connect_is_intercepted_with_the_proxys_ca() {
    let server = TlsServer::start();
    let confdir = temp_dir("tls-confdir");
    let proxy = server
        .trusting_proxy(&confdir)
        .plugin(&plugin("engine-probe"))
        .start();
    let ca = confdir.join("interpose-ca-cert.pem");
    // curl trusts only Interpose's CA: the certificate it saw was made by the proxy.
    let (connect, body) = curl_through(proxy.addr, &server.url("/hello"), &ca, &[])
        .unwrap_or_else(|e| panic!("{e}\nproxy log:\n{}", proxy.dump()));
    assert_eq!((connect.as_str(), body.as_str()), ("200", "tls-ok /hello"));
    // An addon sees and changes the decrypted response.
    let (_, body) = curl_through(
        proxy.addr,
        &server.url("/changed"),
        &ca,
        &["-H", "x-probe-stream: upper"],
    )
    .unwrap();
    assert_eq!(body, "TLS-OK /CHANGED");
    // The server's own certificate does not verify through the proxy.
    let refused = curl_through(proxy.addr, &server.url("/"), &server.ca_pem, &[]);
    assert!(refused.is_err(), "{refused:?}");
    // And the proxy goes on serving.
    let (_, body) = curl_through(proxy.addr, &server.url("/again"), &ca, &[]).unwrap();
    assert_eq!(body, "tls-ok /again");
}

#[test]
fn an_untrusted_server_certificate_is_a_502_unless_ssl_insecure() {
    let server = TlsServer::start();
    let confdir = temp_dir("tls-confdir");
    // The test server's CA is in no trust store the proxy reads.
    let proxy = Proxy::builder()
        .confdir(&confdir)
        .env("SSL_CERT_FILE", "/nonexistent/ca.pem")
        .start();
    let ca = confdir.join("interpose-ca-cert.pem");
    let (_, body) = curl_through(proxy.addr, &server.url("/bad"), &ca, &[])
        .unwrap_or_else(|e| panic!("{e}\n{}", proxy.dump()));
    assert!(body.starts_with("502 Bad Gateway"), "{body}");
    assert!(body.contains("TLS handshake with the server"), "{body}");

    let insecure = Proxy::builder()
        .confdir(&confdir)
        .env("SSL_CERT_FILE", "/nonexistent/ca.pem")
        .args(["--ssl-insecure"])
        .start();
    let (_, body) = curl_through(insecure.addr, &server.url("/fine"), &ca, &[])
        .unwrap_or_else(|e| panic!("{e}\n{}", insecure.dump()));
    assert_eq!(body, "tls-ok /fine");
}

#[test]
fn the_ca_is_made_once_with_an_owner_only_key() {
    let confdir = temp_dir("tls-confdir");
    let mut first = Proxy::builder().confdir(&confdir).start();
    let key = confdir.join("interpose-ca.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the CA key is readable by its owner only");
    for file in ["interpose-ca-cert.pem", "interpose-ca-cert.cer"] {
        assert!(confdir.join(file).is_file(), "{file}");
    }
    let pem = std::fs::read(&key).unwrap();
    let status = first.terminate();
    assert!(status.success(), "{status:?}\n{}", first.dump());
    let mut second = Proxy::builder().confdir(&confdir).start();
    assert_eq!(std::fs::read(&key).unwrap(), pem, "reused, not replaced");
    assert!(second.terminate().success());

    // A damaged CA is an error at startup, never silently replaced.
    std::fs::write(&key, "not a certificate").unwrap();
    let finished = Proxy::builder().confdir(&confdir).args(["-p", "0"]).run();
    assert!(!finished.status.success());
    assert!(
        finished.stderr.contains("interpose-ca.pem"),
        "{}",
        finished.stderr
    );
}

#[test]
fn reverse_mode_to_an_https_server() {
    let server = TlsServer::start();
    let confdir = temp_dir("tls-confdir");
    let proxy = server
        .trusting_proxy(&confdir)
        .args([
            "--mode",
            &format!("reverse:https://localhost:{}", server.addr.port()),
        ])
        .start();
    let reply = send(proxy.addr, "GET", "/behind", b"").unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "tls-ok /behind");
}

#[test]
fn tls_events_arrive_in_order_and_a_failed_client_handshake_is_reported() {
    let server = TlsServer::start();
    let confdir = temp_dir("tls-confdir");
    let proxy = server
        .trusting_proxy(&confdir)
        .plugin(&plugin("event-log"))
        .start();
    let ca = confdir.join("interpose-ca-cert.pem");
    let (_, body) = curl_through(proxy.addr, &server.url("/events"), &ca, &[]).unwrap();
    assert_eq!(body, "tls-ok /events");
    proxy.wait_for_log("event response /events");
    let log = proxy.log();
    let at = |needle: &str| {
        log.iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{}", log.join("\n")))
    };
    let order = [
        "event http_connect",
        "event tls_clienthello sni=localhost",
        "event tls_start_server",
        "event tls_established_server",
        "event tls_start_client",
        "event tls_established_client sni=localhost",
        "event request /events",
    ];
    let positions: Vec<usize> = order.iter().map(|e| at(e)).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "out of order:\n{}",
        log.join("\n")
    );
    assert!(log[at("event tls_established_client")].contains("tls_version=TLSv1.3"));

    // A client that does not trust the proxy's CA: its handshake fails, the proxy says so.
    let refused = curl_through(proxy.addr, &server.url("/x"), &server.ca_pem, &[]);
    assert!(refused.is_err());
    proxy.wait_for_log("event tls_failed_client");
}

#[test]
fn an_addon_can_pass_a_tls_connection_through_in_tls_clienthello() {
    let server = TlsServer::start();
    let confdir = temp_dir("tls-confdir");
    let proxy = server
        .trusting_proxy(&confdir)
        .plugin(&plugin("engine-probe"))
        .env("PROBE_PASSTHROUGH_SNI", "localhost")
        .start();
    // Trusting only the server's own CA works: the proxy did not intercept.
    let (_, body) = curl_through(proxy.addr, &server.url("/through"), &server.ca_pem, &[])
        .unwrap_or_else(|e| panic!("{e}\n{}", proxy.dump()));
    assert_eq!(body, "tls-ok /through");
    proxy.wait_for_log("passing localhost through");
}

#[test]
fn curl_speaks_http2_with_the_proxy() {
    let server = TlsServer::start();
    let confdir = temp_dir("tls-confdir");
    let proxy = server
        .trusting_proxy(&confdir)
        .plugin(&plugin("engine-probe"))
        .start();
    let ca = confdir.join("interpose-ca-cert.pem");
    let (_, out) = curl_through(proxy.addr, &server.url("/two"), &ca, &["--http2", "-i"])
        .unwrap_or_else(|e| panic!("{e}\n{}", proxy.dump()));
    assert!(out.contains("\nHTTP/2 200"), "{out}");
    assert!(out.ends_with("tls-ok /two"), "{out}");
    // Addons see HTTP/2 flows like any other: a chunk hook on the response.
    let (_, out) = curl_through(
        proxy.addr,
        &server.url("/upper"),
        &ca,
        &["--http2", "-H", "x-probe-stream: upper"],
    )
    .unwrap();
    assert_eq!(out, "TLS-OK /UPPER");
    // Two requests on one connection.
    let first = server.url("/a");
    let second = server.url("/b");
    let (_, out) = curl_through(proxy.addr, &first, &ca, &["--http2", &second]).unwrap();
    assert!(
        out.contains("tls-ok /a") && out.contains("tls-ok /b"),
        "{out}"
    );
}

#[test]
fn upstream_mode_sends_everything_through_the_next_proxy() {
    let origin = crate::harness::Upstream::start();
    let server = TlsServer::start();
    // The next proxy logs what it sees and tunnels the TLS server's connections untouched.
    let next = Proxy::builder()
        .args(["--ignore-hosts", "^localhost:"])
        .plugin(&plugin("event-log"))
        .start();
    let confdir = temp_dir("tls-confdir");
    let proxy = server
        .trusting_proxy(&confdir)
        .args(["--mode", &format!("upstream:http://{}", next.addr)])
        .start();

    let reply = send(
        proxy.addr,
        "GET",
        &format!("http://{}/via", origin.addr),
        b"",
    )
    .unwrap();
    assert_eq!(reply.status, 200, "{}\n{}", reply.text(), proxy.dump());
    assert_eq!(reply.text(), "upstream saw GET /via");
    next.wait_for_log("event request /via");

    let ca = confdir.join("interpose-ca-cert.pem");
    let (_, body) = curl_through(proxy.addr, &server.url("/tls-via"), &ca, &[])
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", proxy.dump(), next.dump()));
    assert_eq!(body, "tls-ok /tls-via");
    next.wait_for_log("event http_connect");
}

#[test]
fn a_reverse_proxy_serves_tls_clients_over_http1_and_http2() {
    let origin = crate::harness::Upstream::start();
    let confdir = temp_dir("tls-confdir");
    let proxy = Proxy::builder()
        .confdir(&confdir)
        .reverse(origin.addr)
        .start();
    let ca = confdir.join("interpose-ca-cert.pem");
    let url = format!("https://localhost:{}/secure", proxy.addr.port());
    let body =
        curl_direct(&url, &ca, &["--http1.1"]).unwrap_or_else(|e| panic!("{e}\n{}", proxy.dump()));
    assert_eq!(body, "upstream saw GET /secure");
    let out = curl_direct(&url, &ca, &["--http2", "-i"]).unwrap();
    assert!(out.starts_with("HTTP/2 200"), "{out}");
    assert!(out.ends_with("upstream saw GET /secure"), "{out}");
    // Plain HTTP still works on the same port.
    assert_eq!(
        send(proxy.addr, "GET", "/plain", b"").unwrap().text(),
        "upstream saw GET /plain"
    );
}
