//! The built-in addons that rewrite and guard traffic (`-H`/`modify_headers`, `-B`/`modify_body`,
//! `-M`/`map_remote`, `block_private`/`block_global`, `--proxyauth`), through the real binary.

use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};

use crate::harness::{raw_exchange, Connection, Proxy, Upstream};

#[test]
fn modify_headers_on_requests_and_responses_by_filter() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .args(["-H", "/~q/X-Req/hello", "-H", ":~s:X-Resp:added"])
        .args(["-H", "|~q & ~m POST|X-Post-Only|yes"])
        .start();
    let mut client = Connection::open(proxy.addr);
    let reply = client.send("GET", "/a", &[("X-Req", "old")], b"").unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-resp"), Some("added"));
    let seen = upstream.seen();
    assert_eq!(seen[0].header("x-req"), Some("hello"));
    assert_eq!(
        seen[0].headers.iter().filter(|(n, _)| n == "x-req").count(),
        1
    );
    assert_eq!(seen[0].header("x-post-only"), None);
    client.send("POST", "/b", &[], b"x").unwrap();
    assert_eq!(upstream.seen()[1].header("x-post-only"), Some("yes"));
}

#[test]
fn modify_body_and_map_remote() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .args(["-B", "/saw (\\w+)/SAW [\\\\1]", "-M", "|/old$|/new"])
        .start();
    let mut client = Connection::open(proxy.addr);
    let reply = client.send("GET", "/old", &[], b"").unwrap();
    assert_eq!(upstream.seen()[0].path, "/new");
    assert_eq!(
        String::from_utf8_lossy(&reply.body),
        "upstream SAW [GET] /new"
    );
}

#[test]
fn a_bad_spec_stops_the_proxy_with_the_option_named() {
    let run = Proxy::builder()
        .args(["-p", "0", "-M", "|(unclosed|x"])
        .run();
    assert!(!run.status.success());
    assert!(
        run.stderr
            .contains("Cannot parse map_remote option |(unclosed|x: Invalid regular expression"),
        "{}",
        run.stderr
    );
}

/// An address of this machine other than loopback (from which a connection to a proxy
/// listening on every interface comes from a private or public address), if it has one.
fn non_loopback_address() -> Option<IpAddr> {
    // Connecting a UDP socket sends nothing; it picks the outgoing interface's address.
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("10.255.255.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn block_private_refuses_clients_from_private_addresses_but_not_loopback() {
    let Some(ip) = non_loopback_address() else {
        eprintln!("no non-loopback address on this machine: nothing to test");
        return;
    };
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .args(["--listen-host", "0.0.0.0", "--set", "block_private=true"])
        .start();
    let port = proxy.addr.port();
    // Loopback is always let in.
    let reply = raw_exchange(
        SocketAddr::new("127.0.0.1".parse().unwrap(), port),
        b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    // From this machine's own private (or public) address: refused, whichever option
    // applies to it (block_global is on by default).
    assert!(TcpStream::connect(SocketAddr::new(ip, port)).is_ok());
    let reply = raw_exchange(
        SocketAddr::new(ip, port),
        b"GET /no HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.is_empty(), "{reply}");
    proxy.wait_for_log(&format!("Client connection from {ip} killed by block_"));
    assert_eq!(upstream.seen().len(), 1);
}

#[test]
fn proxyauth_asks_proxy_clients_and_reverse_clients_for_credentials() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .args(["--proxyauth", "alice:secret"])
        .start();
    let target = format!("http://{}/private", upstream.addr);
    let mut client = Connection::open(proxy.addr);
    let refused = client.send("GET", &target, &[], b"").unwrap();
    assert_eq!(refused.status, 407);
    assert_eq!(
        refused.header("proxy-authenticate"),
        Some("Basic realm=\"mitmproxy\"")
    );
    assert!(upstream.seen().is_empty());
    // alice:secret
    let auth = [("Proxy-Authorization", "Basic YWxpY2U6c2VjcmV0")];
    let reply = client.send("GET", &target, &auth, b"").unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.seen()[0].header("proxy-authorization"), None);

    // A CONNECT without credentials is refused; with them, its tunnel carries requests
    // without asking again.
    let request = format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", upstream.addr);
    let answer = raw_exchange(proxy.addr, request.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 407"), "{answer}");
    let request = format!(
        "CONNECT {0} HTTP/1.1\r\nHost: {0}\r\nProxy-Authorization: Basic YWxpY2U6c2VjcmV0\r\n\r\n\
         GET /inside HTTP/1.1\r\nHost: {0}\r\nConnection: close\r\n\r\n",
        upstream.addr
    );
    let answer = raw_exchange(proxy.addr, request.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("upstream saw GET /inside"), "{answer}");

    // As a reverse proxy it is a server asking for its own credentials.
    let reverse = Proxy::builder()
        .reverse(upstream.addr)
        .args(["--proxyauth", "any"])
        .start();
    let refused = crate::harness::send(reverse.addr, "GET", "/r", b"").unwrap();
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Basic realm=\"mitmproxy\"")
    );
    let reply = Connection::open(reverse.addr)
        .send("GET", "/r", &[("Authorization", "Basic Ym9iOng=")], b"")
        .unwrap();
    assert_eq!(reply.status, 200);
}

#[test]
fn map_local_answers_from_a_folder_without_the_server() {
    let upstream = Upstream::start();
    let site = crate::harness::temp_dir("map-local");
    std::fs::create_dir_all(site.join("css")).unwrap();
    std::fs::write(site.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(site.join("css/app.css"), "body{}").unwrap();
    std::fs::write(site.parent().unwrap().join("secret.txt"), "outside").unwrap();
    let spec = format!("|/static|{}", site.display());
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .args(["--map-local", spec.as_str()])
        .start();
    let mut client = Connection::open(proxy.addr);
    let css = client
        .send("GET", "/static/css/app.css?v=2", &[], b"")
        .unwrap();
    assert_eq!(css.status, 200);
    assert_eq!(css.body, b"body{}");
    assert_eq!(css.header("content-type"), Some("text/css"));
    let home = client.send("GET", "/static/", &[], b"").unwrap();
    assert_eq!(home.body, b"<h1>home</h1>");
    let missing = client.send("GET", "/static/nope.js", &[], b"").unwrap();
    assert_eq!(missing.status, 404);
    // Nothing reached the server so far; other paths still do.
    assert!(upstream.seen().is_empty(), "{:?}", upstream.seen());
    assert_eq!(client.send("GET", "/other", &[], b"").unwrap().status, 200);
    assert_eq!(upstream.seen().len(), 1);
    // A path leaving the folder has no candidate: it is never served from the disk (it goes
    // to the server, as in mitmproxy).
    let escape = client
        .send("GET", "/static/../secret.txt", &[], b"")
        .unwrap();
    assert_ne!(escape.body, b"outside");
    assert_eq!(upstream.seen()[1].path, "/static/../secret.txt");
}

#[test]
fn stickycookie_and_stickyauth_carry_a_session_to_later_requests() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        // The server "sets" a cookie on /login (added to its response by modify_headers,
        // which runs before the sticky addons, as in mitmproxy).
        .args(["-H", "|~s & ~u /login|Set-Cookie|session=abc; Path=/"])
        .args(["--stickycookie", "~q", "--stickyauth", "~q"])
        .start();
    let mut client = Connection::open(proxy.addr);
    let login = client
        .send("GET", "/login", &[("Authorization", "Basic dTpw")], b"")
        .unwrap();
    assert_eq!(login.header("set-cookie"), Some("session=abc; Path=/"));
    // A later request without either gets both from the proxy.
    client.send("GET", "/account", &[], b"").unwrap();
    let seen = upstream.seen();
    assert_eq!(seen[1].path, "/account");
    assert_eq!(seen[1].header("cookie"), Some("session=abc"));
    assert_eq!(seen[1].header("authorization"), Some("Basic dTpw"));
}

#[test]
fn upstream_auth_logs_in_to_the_next_proxy_and_the_reverse_target() {
    let upstream = Upstream::start();
    // The next proxy wants credentials.
    let next = Proxy::builder()
        .args(["--proxyauth", "alice:secret"])
        .start();
    let mode = format!("upstream:http://{}", next.addr);
    let target = format!("http://{}/via", upstream.addr);

    let without = Proxy::builder().args(["--mode", mode.as_str()]).start();
    let refused = crate::harness::send(without.addr, "GET", &target, b"").unwrap();
    assert_eq!(refused.status, 407);

    let with = Proxy::builder()
        .args(["--mode", mode.as_str(), "--upstream-auth", "alice:secret"])
        .start();
    let reply = crate::harness::send(with.addr, "GET", &target, b"").unwrap();
    assert_eq!(reply.status, 200, "{}", next.dump());
    // The next proxy took its credentials off; the server never sees them.
    assert_eq!(upstream.seen()[0].header("proxy-authorization"), None);

    // Tunnels: the CONNECT to the next proxy carries them too.
    let tunnelling = Proxy::builder()
        .args(["--mode", mode.as_str(), "--upstream-auth", "alice:secret"])
        .args(["--ignore-hosts", ".*"])
        .start();
    let request = format!(
        "CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\nGET /tunnelled HTTP/1.1\r\nHost: {0}\r\nConnection: close\r\n\r\n",
        upstream.addr
    );
    let answer = raw_exchange(tunnelling.addr, request.as_bytes());
    assert!(answer.contains("upstream saw GET /tunnelled"), "{answer}");

    // Reverse mode: the server gets Authorization.
    let reverse = Proxy::builder()
        .reverse(upstream.addr)
        .args(["--upstream-auth", "alice:secret"])
        .start();
    crate::harness::send(reverse.addr, "GET", "/reverse", b"").unwrap();
    let seen = upstream.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.path, "/reverse");
    assert_eq!(last.header("authorization"), Some("Basic YWxpY2U6c2VjcmV0"));
}

#[test]
fn keep_host_header_leaves_the_clients_host_in_reverse_mode() {
    let upstream = Upstream::start();
    let rewriting = Proxy::builder().reverse(upstream.addr).start();
    let keeping = Proxy::builder()
        .reverse(upstream.addr)
        .set("keep_host_header", "true")
        .start();
    for proxy in [&rewriting, &keeping] {
        Connection::open(proxy.addr)
            .send("GET", "/h", &[("Host", "client.example")], b"")
            .unwrap();
    }
    let seen = upstream.seen();
    assert_eq!(
        seen[0].header("host"),
        Some(upstream.addr.to_string().as_str())
    );
    assert_eq!(seen[1].header("host"), Some("client.example"));
}
