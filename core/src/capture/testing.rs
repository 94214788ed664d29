//! Sample flows for the capture tests, the mitmproxy interop tests and the benchmark.

use abi_stable::std_types::{RArc, ROption, RStr, RVec};
use interpose_plugin_abi::{
    Address, Body, Client, Connection, ErrorKind, FlowError, Headers, HttpFlow, HttpVersion,
    ReplaySide, Request, Response, Server, SocketAddress, Stream, TransportProtocol, Uuid,
    WebSocketData, WebSocketMessage, WebSocketMessageType,
};

const T0: f64 = 1_732_500_000.123_456;

fn id(n: u8) -> Uuid {
    let mut bytes = [n; 16];
    bytes[6] = 0x40 | (n & 0x0f);
    bytes[8] = 0x80 | (n & 0x3f);
    Uuid(bytes)
}

fn addr(text: &str) -> SocketAddress {
    SocketAddress::from(
        text.parse::<std::net::SocketAddr>()
            .expect("a valid test address"),
    )
}

fn headers(n: usize, extra: &[(&str, &[u8])]) -> Headers {
    let mut h = Headers::new();
    for (name, value) in extra {
        h.append(name, value);
    }
    for i in h.len()..n {
        h.append(&format!("x-header-{i}"), format!("value number {i}"));
    }
    h
}

fn client(n: u8) -> Client {
    let mut conn = Connection::new(id(n));
    conn.peername = addr("127.0.0.1:51234");
    conn.sockname = addr("127.0.0.1:8080");
    conn.timestamp_start = ROption::RSome(T0 - 1.0);
    Client {
        conn,
        mitmcert: ROption::RNone,
        proxy_mode: RStr::from_str("regular"),
    }
}

fn server(n: u8, host: &str, port: u16) -> Server {
    let mut conn = Connection::new(id(n));
    conn.peername = addr(&format!("93.184.216.34:{port}"));
    conn.sockname = addr("192.168.1.2:40000");
    conn.timestamp_start = ROption::RSome(T0 + 0.001);
    Server {
        conn,
        address: ROption::RSome(Address {
            host: host.into(),
            port,
        }),
        timestamp_tcp_setup: ROption::RSome(T0 + 0.011),
        via: ROption::RNone,
    }
}

/// A typical flow: `GET` with 10 request headers, a `200` with 10 response headers, 100-byte
/// bodies both ways, client and server connections (the benchmark's flow).
pub fn typical_flow() -> HttpFlow {
    let body = Body::from_vec(vec![b'a'; 100]);
    let request = Request {
        method: "GET".into(),
        scheme: "http".into(),
        authority: "".into(),
        host: "example.com".into(),
        port: 80,
        path: "/index.html?q=1".into(),
        http_version: HttpVersion::Http11,
        headers: headers(
            10,
            &[
                ("Host", b"example.com"),
                ("User-Agent", b"curl/8.5.0"),
                ("Accept", b"*/*"),
                ("Content-Length", b"100"),
            ],
        ),
        content: body.clone(),
        stream: Stream::off(),
        trailers: ROption::RNone,
        timestamp_start: T0,
        timestamp_end: ROption::RSome(T0 + 0.002),
    };
    let response = Response {
        http_version: HttpVersion::Http11,
        status_code: 200,
        reason: "OK".into(),
        headers: headers(
            10,
            &[
                ("Content-Type", b"text/html; charset=utf-8"),
                ("Content-Length", b"100"),
                ("Set-Cookie", b"session=abc; Path=/; HttpOnly"),
            ],
        ),
        content: body,
        stream: Stream::off(),
        trailers: ROption::RNone,
        timestamp_start: T0 + 0.05,
        timestamp_end: ROption::RSome(T0 + 0.06),
    };
    let mut flow = HttpFlow::new(id(1), RArc::new(client(2)), request);
    flow.server_conn = ROption::RSome(RArc::new(server(3, "example.com", 80)));
    flow.response = ROption::RSome(response);
    flow.live = false;
    flow
}

/// Flows that between them set every field Interpose writes: a typical one, an HTTPS POST
/// over HTTP/2 with TLS on both sides and trailers, a failed request without a server, a
/// WebSocket conversation, a replayed and marked flow with a streamed response and binary
/// content, and an IPv6 client in reverse mode going through an upstream proxy.
pub fn varied_flows() -> Vec<HttpFlow> {
    let mut flows = vec![typical_flow()];

    let mut tls = typical_flow();
    tls.id = id(10);
    tls.request.method = "POST".into();
    tls.request.scheme = "https".into();
    tls.request.port = 443;
    tls.request.http_version = HttpVersion::Http2;
    tls.request.authority = "example.com".into();
    tls.request.content = Body::from_vec(b"a=1&b=%C3%A9".to_vec());
    tls.request.trailers = ROption::RSome(headers(0, &[("grpc-status", b"0")]));
    tls.request
        .headers
        .insert("content-type", "application/x-www-form-urlencoded");
    if let ROption::RSome(r) = &mut tls.response {
        r.http_version = HttpVersion::Http2;
        r.reason = "".into();
        r.status_code = 201;
        r.content = Body::from_vec("héllo wörld ✓".as_bytes().to_vec());
        r.trailers = ROption::RSome(headers(0, &[("x-trailer", b"yes")]));
    }
    let mut c = client(11);
    c.conn.tls = true;
    c.conn.sni = ROption::RSome("example.com".into());
    c.conn.alpn = ROption::RSome(RVec::from(&b"h2"[..]));
    c.conn.alpn_offers = RVec::from(vec![RVec::from(&b"h2"[..]), RVec::from(&b"http/1.1"[..])]);
    c.conn.cipher = ROption::RSome("TLS_AES_256_GCM_SHA384".into());
    c.conn.cipher_list = RVec::from(vec![
        "TLS_AES_256_GCM_SHA384".into(),
        "TLS_CHACHA20_POLY1305_SHA256".into(),
    ]);
    c.conn.tls_version = ROption::RSome("TLSv1.3".into());
    c.conn.timestamp_tls_setup = ROption::RSome(T0 - 0.5);
    c.conn.timestamp_end = ROption::RSome(T0 + 1.0);
    c.mitmcert = ROption::RSome(RVec::from(
        (0..=255u8).cycle().take(300).collect::<Vec<_>>(),
    ));
    tls.client_conn = RArc::new(c);
    let mut s = server(12, "example.com", 443);
    s.conn.tls = true;
    s.conn.sni = ROption::RSome("example.com".into());
    s.conn.alpn = ROption::RSome(RVec::from(&b"h2"[..]));
    s.conn.tls_version = ROption::RSome("TLSv1.3".into());
    s.conn.cipher = ROption::RSome("TLS_AES_128_GCM_SHA256".into());
    s.conn.timestamp_tls_setup = ROption::RSome(T0 + 0.03);
    s.conn.certificate_list = RVec::from(vec![
        RVec::from((0..=255u8).cycle().take(900).collect::<Vec<_>>()),
        RVec::from((7..=200u8).cycle().take(400).collect::<Vec<_>>()),
    ]);
    tls.server_conn = ROption::RSome(RArc::new(s));
    tls.metadata.insert("note", "tls flow");
    flows.push(tls);

    let mut failed = typical_flow();
    failed.id = id(20);
    failed.server_conn = ROption::RNone;
    failed.response = ROption::RNone;
    failed.request.timestamp_end = ROption::RNone;
    failed.error = ROption::RSome(FlowError {
        msg: "Connection refused".into(),
        timestamp: T0 + 0.2,
        kind: ErrorKind::Server,
    });
    failed.comment = "refused, \"quoted\"".into();
    flows.push(failed);

    let mut ws = typical_flow();
    ws.id = id(30);
    ws.request.headers.insert("Upgrade", "websocket");
    if let ROption::RSome(r) = &mut ws.response {
        r.status_code = 101;
        r.reason = "Switching Protocols".into();
        r.content = Body::default();
    }
    ws.websocket = ROption::RSome(WebSocketData {
        messages: RVec::from(vec![
            WebSocketMessage {
                type_: WebSocketMessageType::Text,
                from_client: true,
                content: Body::from_vec(b"hello".to_vec()),
                timestamp: T0 + 1.0,
                dropped: false,
                injected: false,
            },
            WebSocketMessage {
                type_: WebSocketMessageType::Binary,
                from_client: false,
                content: Body::from_vec(vec![0, 1, 2, 255]),
                timestamp: T0 + 1.5,
                dropped: true,
                injected: true,
            },
        ]),
        closed_by_client: ROption::RSome(true),
        close_code: ROption::RSome(1000),
        close_reason: ROption::RSome("bye".into()),
        timestamp_end: ROption::RSome(T0 + 2.0),
    });
    flows.push(ws);

    let mut replay = typical_flow();
    replay.id = id(40);
    replay.is_replay = ROption::RSome(ReplaySide::Response);
    replay.marked = ":grapes:".into();
    replay.intercepted = true;
    replay.request.content = Body::from_vec(vec![0xff, 0xfe, 0x00, 0x80]);
    replay.request.method = "PUT".into();
    if let ROption::RSome(r) = &mut replay.response {
        r.stream = Stream::on();
        r.content = Body::default();
        r.timestamp_end = ROption::RNone;
    }
    replay.error = ROption::RSome(FlowError {
        msg: FlowError::KILLED_MESSAGE.into(),
        timestamp: T0 + 3.0,
        kind: ErrorKind::Killed,
    });
    flows.push(replay);

    let mut v6 = typical_flow();
    v6.id = id(50);
    let mut c = client(51);
    c.conn.peername = addr("[::1]:50000");
    c.conn.sockname = addr("[::1]:8080");
    c.conn.transport_protocol = TransportProtocol::Tcp;
    c.proxy_mode = RStr::from_str("reverse:http://[::1]:9000");
    v6.client_conn = RArc::new(c);
    let mut s = server(52, "::1", 9000);
    s.via = ROption::RSome(Address {
        host: "proxy.internal".into(),
        port: 3128,
    });
    s.conn.error = ROption::RSome("reset".into());
    s.conn.timestamp_end = ROption::RSome(T0 + 5.0);
    v6.server_conn = ROption::RSome(RArc::new(s));
    v6.request.path = "/ünïcode path?x=%20".into();
    v6.request.timestamp_start = 1_000_000_000.0;
    flows.push(v6);

    flows
}

/// What reading `flow` back from a flow file gives: not live, and streamed bodies (written
/// as `null`) empty and not streamed.
pub fn as_read_back(flow: &HttpFlow) -> HttpFlow {
    let mut flow = flow.clone();
    flow.live = false;
    if flow.request.stream.is_on() {
        flow.request.stream = Stream::off();
        flow.request.content = Body::default();
    }
    if let ROption::RSome(r) = &mut flow.response {
        if r.stream.is_on() {
            r.stream = Stream::off();
            r.content = Body::default();
        }
    }
    flow
}
