//! HTTP/2 to servers: a server that chose `h2` gets the flows of HTTP/2 and HTTP/1.1 clients
//! over one multiplexed connection, in regular (CONNECT) and reverse mode; addons see the
//! response as HTTP/2; HTTP/1.1 servers keep getting HTTP/1.1.

use crate::harness::{curl_direct, curl_through, plugin, send, temp_dir, TlsServer};

#[test]
fn http2_and_http1_clients_reach_an_http2_only_server() {
    let server = TlsServer::start_h2();
    let confdir = temp_dir("h2-confdir");
    let proxy = server
        .trusting_proxy(&confdir)
        .plugin(&plugin("event-log"))
        .start();
    let ca = confdir.join("interpose-ca-cert.pem");

    let (_, out) = curl_through(proxy.addr, &server.url("/two"), &ca, &["--http2", "-i"])
        .unwrap_or_else(|e| panic!("{e}\n{}", proxy.dump()));
    assert!(out.contains("\nHTTP/2 200"), "{out}");
    assert!(out.ends_with("tls-ok /two"), "{out}");
    // The server chose h2 among the client's offers, and addons see an HTTP/2 response.
    proxy.wait_for_log("event tls_established_server sni=localhost alpn=h2 ");
    proxy.wait_for_log("event response /two status=200 error=- version=HTTP/2.0");

    // An HTTP/1.1 client: the proxy translates.
    let (_, out) = curl_through(proxy.addr, &server.url("/one"), &ca, &["--http1.1", "-i"])
        .unwrap_or_else(|e| panic!("{e}\n{}", proxy.dump()));
    assert!(out.contains("\nHTTP/1.1 200"), "{out}");
    assert!(out.ends_with("tls-ok /one"), "{out}");

    // Bodies both ways, buffered.
    let (_, out) = curl_through(
        proxy.addr,
        &server.url("/post"),
        &ca,
        &["--http2", "--data-binary", "hello there"],
    )
    .unwrap();
    assert_eq!(out, "tls-ok /post body=11");
    let (_, out) = curl_through(
        proxy.addr,
        &server.url("/post1"),
        &ca,
        &["--http1.1", "--data-binary", "hello"],
    )
    .unwrap();
    assert_eq!(out, "tls-ok /post1 body=5");
    assert!(
        server
            .versions()
            .iter()
            .all(|v| *v == http::Version::HTTP_2),
        "{:?}",
        server.versions()
    );
    assert_eq!(server.versions().len(), 4);
}

#[test]
fn streamed_bodies_go_over_http2_streams() {
    let server = TlsServer::start_h2();
    let confdir = temp_dir("h2-confdir");
    let proxy = server
        .trusting_proxy(&confdir)
        .args(["--set", "stream_large_bodies=1k"])
        .start();
    let ca = confdir.join("interpose-ca-cert.pem");
    let upload = temp_dir("h2-upload").join("body");
    std::fs::write(&upload, vec![b'u'; 300_000]).unwrap();
    let data = format!("@{}", upload.display());
    for version in ["--http2", "--http1.1"] {
        let (_, out) = curl_through(
            proxy.addr,
            &server.url("/up"),
            &ca,
            &[version, "--data-binary", &data],
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", proxy.dump()));
        assert_eq!(out, "tls-ok /up body=300000", "{version}");
        let (_, out) = curl_through(proxy.addr, &server.url("/big/500000"), &ca, &[version])
            .unwrap_or_else(|e| panic!("{e}\n{}", proxy.dump()));
        assert_eq!(out.len(), 500_000, "{version}");
        assert!(out.bytes().all(|b| b == b'x'));
    }
}

#[test]
fn concurrent_streams_share_one_server_connection() {
    let server = TlsServer::start_h2();
    let confdir = temp_dir("h2-confdir");
    let proxy = server.trusting_proxy(&confdir).start();
    let ca = confdir.join("interpose-ca-cert.pem");
    let urls: Vec<String> = (0..20).map(|i| server.url(&format!("/slow/{i}"))).collect();
    let mut args = vec!["--http2", "--parallel", "--parallel-max", "20"];
    args.extend(urls[1..].iter().map(String::as_str));
    let started = std::time::Instant::now();
    let (_, out) = curl_through(proxy.addr, &urls[0], &ca, &args)
        .unwrap_or_else(|e| panic!("{e}\n{}", proxy.dump()));
    for i in 0..20 {
        assert!(out.contains(&format!("tls-ok /slow/{i}")), "{i}: {out}");
    }
    assert_eq!(server.connections(), 1, "one upstream connection");
    assert_eq!(server.versions().len(), 20);
    // Multiplexed, not one after the other (each answer takes 200 ms).
    assert!(
        started.elapsed().as_secs_f64() < 3.0,
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_http1_server_still_gets_http1_when_the_client_offers_h2() {
    let server = TlsServer::start();
    let confdir = temp_dir("h2-confdir");
    let proxy = server.trusting_proxy(&confdir).start();
    let ca = confdir.join("interpose-ca-cert.pem");
    let (_, out) = curl_through(proxy.addr, &server.url("/old"), &ca, &["--http2", "-i"])
        .unwrap_or_else(|e| panic!("{e}\n{}", proxy.dump()));
    assert!(out.contains("\nHTTP/2 200"), "{out}");
    assert!(out.ends_with("tls-ok /old"), "{out}");
    assert_eq!(server.versions(), vec![http::Version::HTTP_11]);
}

#[test]
fn without_http2_an_http2_only_server_is_not_offered_h2() {
    let server = TlsServer::start_h2();
    let confdir = temp_dir("h2-confdir");
    let proxy = server
        .trusting_proxy(&confdir)
        .args(["--set", "http2=false"])
        .start();
    let ca = confdir.join("interpose-ca-cert.pem");
    // The server refuses a handshake without h2 (as with mitmproxy): a 502 saying why.
    let (_, out) = curl_through(proxy.addr, &server.url("/no"), &ca, &["--http2", "-i"])
        .unwrap_or_else(|e| panic!("{e}\n{}", proxy.dump()));
    assert!(out.contains("HTTP/1.1 502"), "{out}");
    assert!(server.versions().is_empty());
}

#[test]
fn reverse_mode_speaks_http2_to_an_https_target() {
    let server = TlsServer::start_h2();
    let confdir = temp_dir("h2-confdir");
    let proxy = server
        .trusting_proxy(&confdir)
        .args([
            "--mode",
            &format!("reverse:https://localhost:{}", server.addr.port()),
        ])
        .start();
    let reply = send(proxy.addr, "GET", "/behind", b"").unwrap();
    assert_eq!(reply.status, 200, "{}\n{}", reply.text(), proxy.dump());
    assert_eq!(reply.text(), "tls-ok /behind");
    let reply = send(proxy.addr, "POST", "/posted", b"abc").unwrap();
    assert_eq!(reply.text(), "tls-ok /posted body=3");
    // A TLS client speaking HTTP/2 to the reverse proxy.
    let ca = confdir.join("interpose-ca-cert.pem");
    let out = curl_direct(
        &format!("https://localhost:{}/secure", proxy.addr.port()),
        &ca,
        &["--http2", "-i"],
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", proxy.dump()));
    assert!(out.starts_with("HTTP/2 200"), "{out}");
    assert!(out.ends_with("tls-ok /secure"), "{out}");
    assert_eq!(server.versions(), vec![http::Version::HTTP_2; 3]);
}

#[test]
fn a_reset_stream_is_a_502_and_a_server_error_and_the_connection_goes_on() {
    let server = TlsServer::start_h2();
    let confdir = temp_dir("h2-confdir");
    let proxy = server
        .trusting_proxy(&confdir)
        .plugin(&plugin("event-log"))
        .start();
    let ca = confdir.join("interpose-ca-cert.pem");
    let reset = server.url("/reset");
    let after = server.url("/after");
    let (_, out) = curl_through(proxy.addr, &reset, &ca, &["--http2", "-i", &after])
        .unwrap_or_else(|e| panic!("{e}\n{}", proxy.dump()));
    assert!(out.contains("HTTP/2 502"), "{out}");
    assert!(out.contains("server localhost:"), "{out}");
    let error = proxy.wait_for_log("event error /reset");
    assert!(error.ends_with("(server)"), "{error}");
    // The next stream goes over the same server connection.
    assert!(out.contains("tls-ok /after"), "{out}");
    assert_eq!(server.connections(), 1);
}

#[test]
fn upstream_auth_reaches_an_http2_reverse_target() {
    let server = TlsServer::start_h2();
    let confdir = temp_dir("h2-auth-confdir");
    let proxy = server
        .trusting_proxy(&confdir)
        .args([
            "--mode",
            &format!("reverse:https://localhost:{}", server.addr.port()),
        ])
        .args(["--upstream-auth", "alice:secret"])
        .start();
    let reply = send(proxy.addr, "GET", "/show-authorization", b"").unwrap();
    assert_eq!(
        reply.text(),
        "tls-ok /show-authorization auth=Basic YWxpY2U6c2VjcmV0",
        "{}",
        proxy.dump()
    );
    assert_eq!(server.versions(), vec![http::Version::HTTP_2]);
}
