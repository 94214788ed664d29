//! Interop with mitmproxy 11.0.2 itself: flow files Interpose writes are read by mitmproxy's
//! `FlowReader` with every field intact, and files mitmproxy's `FlowWriter` writes are read
//! by Interpose's [`FlowReader`].
//!
//! Needs mitmproxy in a Python environment: `tests/mitmproxy/setup.sh` installs it into
//! `target/mitmproxy-venv`; `INTERPOSE_MITMPROXY_PYTHON` points at another one.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use abi_stable::std_types::{ROption, RVec};
use interpose::capture::{
    har::json_str,
    pem::{base64_encode, der_to_pem},
    testing::varied_flows,
    write_flow, FlowReader,
};
use interpose_plugin_abi::{Connection, Headers, HttpFlow, SocketAddress};

/// The Python interpreter that has mitmproxy: `INTERPOSE_MITMPROXY_PYTHON`, else
/// `<repo>/target/mitmproxy-venv/bin/python`.
pub fn mitmproxy_python() -> PathBuf {
    let python = match std::env::var_os("INTERPOSE_MITMPROXY_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => repo().join("target/mitmproxy-venv/bin/python"),
    };
    if !python.exists() {
        panic!("mitmproxy is not installed for the tests: run tests/mitmproxy/setup.sh");
    }
    python
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("core is in the workspace")
        .to_path_buf()
}

fn helper(name: &str) -> PathBuf {
    repo().join("tests/mitmproxy").join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("interpose-mitmproxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir.join(name)
}

/// Runs a helper script, returning its stdout; panics with its output if it fails.
fn python(script: &str, args: &[&Path], extra: &[&str]) -> String {
    let output = Command::new(mitmproxy_python())
        .arg(helper(script))
        .args(args)
        .args(extra)
        .output()
        .expect("running python");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Checks that every field in the JSON at `expected` is the same in `actual`.
fn compare(expected: &Path, actual: &Path, ignored: &[&str]) {
    python("compare_json.py", &[expected, actual], ignored);
}

// ---- The JSON form of flows_to_json.py, from Interpose's flows ----

fn b64(data: &[u8], out: &mut String) {
    out.push('"');
    base64_encode(data, out);
    out.push('"');
}

fn opt_b64(data: Option<&[u8]>, out: &mut String) {
    match data {
        Some(d) => b64(d, out),
        None => out.push_str("null"),
    }
}

fn opt_str(text: Option<&str>, out: &mut String) {
    match text {
        Some(t) => json_str(t, out),
        None => out.push_str("null"),
    }
}

fn num(x: f64, out: &mut String) {
    let _ = write!(out, "{x:?}");
}

fn opt_num(x: ROption<f64>, out: &mut String) {
    match x {
        ROption::RSome(x) => num(x, out),
        ROption::RNone => out.push_str("null"),
    }
}

fn pem_b64(der: &[u8], out: &mut String) {
    let mut pem = Vec::new();
    der_to_pem(der, &mut pem);
    b64(&pem, out);
}

fn headers(h: &Headers, out: &mut String) {
    out.push('[');
    for (i, (name, value)) in h.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        json_str(name, out);
        out.push(',');
        b64(value, out);
        out.push(']');
    }
    out.push(']');
}

fn address(addr: &SocketAddress, required: bool, out: &mut String) {
    match addr.get() {
        Some(a) => {
            out.push('[');
            json_str(&a.ip().to_string(), out);
            let _ = write!(out, ",{}]", a.port());
        }
        None if required => out.push_str(r#"["",0]"#),
        None => out.push_str("null"),
    }
}

fn connection(c: &Connection, client: bool, out: &mut String) {
    out.push_str(r#""id":"#);
    json_str(&c.id.to_string(), out);
    out.push_str(r#","peername":"#);
    address(&c.peername, client, out);
    out.push_str(r#","sockname":"#);
    address(&c.sockname, client, out);
    out.push_str(r#","transport_protocol":"#);
    json_str(
        match c.transport_protocol {
            interpose_plugin_abi::TransportProtocol::Tcp => "tcp",
            interpose_plugin_abi::TransportProtocol::Udp => "udp",
        },
        out,
    );
    out.push_str(r#","error":"#);
    opt_str(c.error.as_ref().map(|e| e.as_str()).into_option(), out);
    let _ = write!(out, r#","tls":{},"certificates":["#, c.tls);
    for (i, der) in c.certificate_list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        pem_b64(der, out);
    }
    out.push_str(r#"],"alpn":"#);
    opt_b64(c.alpn.as_ref().map(|a| a.as_slice()).into_option(), out);
    out.push_str(r#","alpn_offers":["#);
    for (i, a) in c.alpn_offers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        b64(a, out);
    }
    out.push_str(r#"],"cipher":"#);
    opt_str(c.cipher.as_ref().map(|s| s.as_str()).into_option(), out);
    out.push_str(r#","cipher_list":["#);
    for (i, s) in c.cipher_list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(s, out);
    }
    out.push_str(r#"],"tls_version":"#);
    opt_str(
        c.tls_version.as_ref().map(|s| s.as_str()).into_option(),
        out,
    );
    out.push_str(r#","sni":"#);
    opt_str(c.sni.as_ref().map(|s| s.as_str()).into_option(), out);
    out.push_str(r#","timestamp_start":"#);
    match c.timestamp_start {
        ROption::RNone if client => out.push_str("0.0"),
        other => opt_num(other, out),
    }
    out.push_str(r#","timestamp_end":"#);
    opt_num(c.timestamp_end, out);
    out.push_str(r#","timestamp_tls_setup":"#);
    opt_num(c.timestamp_tls_setup, out);
}

#[allow(clippy::too_many_arguments)]
fn message(
    version: &str,
    h: &Headers,
    content: Option<&[u8]>,
    trailers: &ROption<Headers>,
    start: f64,
    end: ROption<f64>,
    out: &mut String,
) {
    out.push_str(r#""http_version":"#);
    json_str(version, out);
    out.push_str(r#","headers":"#);
    headers(h, out);
    out.push_str(r#","content":"#);
    opt_b64(content, out);
    out.push_str(r#","trailers":"#);
    match trailers {
        ROption::RSome(t) => headers(t, out),
        ROption::RNone => out.push_str("null"),
    }
    out.push_str(r#","timestamp_start":"#);
    num(start, out);
    out.push_str(r#","timestamp_end":"#);
    opt_num(end, out);
}

/// `flow` as flows_to_json.py prints a flow (without `server_conn` when there is none:
/// mitmproxy always has one, which Interpose writes as an unconnected server).
fn flow_json(flow: &HttpFlow, out: &mut String) {
    let r = &flow.request;
    out.push_str(r#"{"id":"#);
    json_str(&flow.id.to_string(), out);
    out.push_str(r#","request":{"#);
    let content = (!r.stream.is_on()).then_some(r.content.as_slice());
    message(
        r.http_version.as_str(),
        &r.headers,
        content,
        &r.trailers,
        r.timestamp_start,
        r.timestamp_end,
        out,
    );
    for (key, value) in [
        ("method", r.method.as_str()),
        ("url", &r.url()),
        ("scheme", r.scheme.as_str()),
        ("host", r.host.as_str()),
        ("path", r.path.as_str()),
        ("authority", r.authority.as_str()),
    ] {
        let _ = write!(out, r#","{key}":"#);
        json_str(value, out);
    }
    let _ = write!(out, r#","port":{}}},"response":"#, r.port);
    match &flow.response {
        ROption::RSome(resp) => {
            out.push('{');
            let content = (!resp.stream.is_on()).then_some(resp.content.as_slice());
            message(
                resp.http_version.as_str(),
                &resp.headers,
                content,
                &resp.trailers,
                resp.timestamp_start,
                resp.timestamp_end,
                out,
            );
            let _ = write!(out, r#","status_code":{},"reason":"#, resp.status_code);
            json_str(&resp.reason, out);
            out.push('}');
        }
        ROption::RNone => out.push_str("null"),
    }
    out.push_str(r#","error":"#);
    match &flow.error {
        ROption::RSome(e) => {
            out.push_str(r#"{"msg":"#);
            json_str(&e.msg, out);
            out.push_str(r#","timestamp":"#);
            num(e.timestamp, out);
            out.push('}');
        }
        ROption::RNone => out.push_str("null"),
    }
    out.push_str(r#","client_conn":{"#);
    connection(&flow.client_conn, true, out);
    out.push_str(r#","proxy_mode":"#);
    json_str(flow.client_conn.proxy_mode.as_str(), out);
    out.push_str(r#","mitmcert":"#);
    match &flow.client_conn.mitmcert {
        ROption::RSome(der) => pem_b64(der, out),
        ROption::RNone => out.push_str("null"),
    }
    out.push('}');
    if let ROption::RSome(s) = &flow.server_conn {
        out.push_str(r#","server_conn":{"#);
        connection(s, false, out);
        out.push_str(r#","address":"#);
        match &s.address {
            ROption::RSome(a) => {
                out.push('[');
                json_str(&a.host, out);
                let _ = write!(out, ",{}]", a.port);
            }
            ROption::RNone => out.push_str("null"),
        }
        out.push_str(r#","timestamp_tcp_setup":"#);
        opt_num(s.timestamp_tcp_setup, out);
        out.push_str(r#","via":"#);
        match &s.via {
            ROption::RSome(a) => {
                out.push_str(r#"["http",["#);
                json_str(&a.host, out);
                let _ = write!(out, ",{}]]", a.port);
            }
            ROption::RNone => out.push_str("null"),
        }
        out.push('}');
    }
    out.push_str(r#","websocket":"#);
    match &flow.websocket {
        ROption::RSome(ws) => {
            out.push_str(r#"{"messages":["#);
            for (i, m) in ws.messages.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "[{},{},", m.type_ as u8, m.from_client);
                b64(&m.content, out);
                out.push(',');
                num(m.timestamp, out);
                let _ = write!(out, ",{},{}]", m.dropped, m.injected);
            }
            out.push_str(r#"],"closed_by_client":"#);
            match ws.closed_by_client {
                ROption::RSome(b) => {
                    let _ = write!(out, "{b}");
                }
                ROption::RNone => out.push_str("null"),
            }
            out.push_str(r#","close_code":"#);
            match ws.close_code {
                ROption::RSome(c) => {
                    let _ = write!(out, "{c}");
                }
                ROption::RNone => out.push_str("null"),
            }
            out.push_str(r#","close_reason":"#);
            opt_str(
                ws.close_reason.as_ref().map(|s| s.as_str()).into_option(),
                out,
            );
            out.push_str(r#","timestamp_end":"#);
            opt_num(ws.timestamp_end, out);
            out.push('}');
        }
        ROption::RNone => out.push_str("null"),
    }
    let _ = write!(out, r#","intercepted":{},"is_replay":"#, flow.intercepted);
    opt_str(
        match flow.is_replay {
            ROption::RSome(interpose_plugin_abi::ReplaySide::Request) => Some("request"),
            ROption::RSome(interpose_plugin_abi::ReplaySide::Response) => Some("response"),
            ROption::RNone => None,
        },
        out,
    );
    out.push_str(r#","marked":"#);
    json_str(&flow.marked, out);
    out.push_str(r#","comment":"#);
    json_str(&flow.comment, out);
    out.push_str(r#","metadata":{"#);
    for (i, (k, v)) in flow.metadata.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(k, out);
        out.push(':');
        json_str(v, out);
    }
    out.push_str(r#"},"timestamp_created":"#);
    num(flow.timestamp_created, out);
    out.push('}');
}

fn flows_json(flows: &[HttpFlow]) -> String {
    let mut out = String::from("[");
    for (i, flow) in flows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        flow_json(flow, &mut out);
    }
    out.push(']');
    out
}

/// The sample flows, with real certificates where they have some (mitmproxy parses them).
fn flows_with_real_certificates() -> Vec<HttpFlow> {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = |name: &str| {
        rcgen::CertificateParams::new(vec![name.to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate")
            .der()
            .to_vec()
    };
    let mut flows = varied_flows();
    for flow in &mut flows {
        let mut client = (*flow.client_conn).clone();
        if client.mitmcert.is_some() {
            client.mitmcert = ROption::RSome(RVec::from(cert("example.com")));
        }
        flow.client_conn = abi_stable::std_types::RArc::new(client);
        if let ROption::RSome(server) = &flow.server_conn {
            let mut server = (**server).clone();
            if !server.certificate_list.is_empty() {
                server.certificate_list = RVec::from(vec![
                    RVec::from(cert("example.com")),
                    RVec::from(cert("Interpose test CA")),
                ]);
            }
            flow.server_conn = ROption::RSome(abi_stable::std_types::RArc::new(server));
        }
    }
    flows
}

#[test]
fn mitmproxy_reads_interpose_flow_files() {
    let flows = flows_with_real_certificates();
    let mut file = Vec::new();
    for flow in &flows {
        write_flow(flow, &mut file);
    }
    let path = scratch("interpose.flows");
    std::fs::write(&path, &file).expect("writing the flow file");
    let actual = scratch("interpose-read-by-mitmproxy.json");
    std::fs::write(&actual, python("flows_to_json.py", &[&path], &[])).expect("json");
    let expected = scratch("interpose-expected.json");
    std::fs::write(&expected, flows_json(&flows)).expect("json");
    compare(&expected, &actual, &[]);
}

#[test]
fn interpose_reads_mitmproxy_flow_files() {
    let path = scratch("mitmproxy.flows");
    let expected = scratch("mitmproxy-expected.json");
    std::fs::write(&expected, python("write_flows.py", &[&path], &[])).expect("json");
    let file = std::fs::read(&path).expect("mitmproxy's flow file");
    let flows: Vec<HttpFlow> = FlowReader::new(&file[..])
        .collect::<Result<_, _>>()
        .expect("Interpose reads mitmproxy's file");
    assert_eq!(flows.len(), 4);
    let actual = scratch("mitmproxy-read-by-interpose.json");
    std::fs::write(&actual, flows_json(&flows)).expect("json");
    // tflow's server sockname is ("address", 22), which is no IP address.
    compare(&expected, &actual, &["server_conn.sockname"]);
}
