//! mitmproxy flow files: one tnetstring-encoded state dict per flow, at format version 21
//! (`mitmproxy/io/io.py`, the state of `HTTPFlow.get_state()`).
//!
//! Writing goes straight from an [`HttpFlow`] to bytes; reading decodes a record, migrates
//! it to version 21 ([`super::compat::migrate`]) and builds the flow from the state.

use std::{
    fmt,
    io::{self, BufRead, BufReader, Read},
    net::{IpAddr, SocketAddr},
    sync::Mutex,
};

use abi_stable::std_types::{RArc, ROption, RStr, RString, RVec};
use interpose_plugin_abi::{
    Address, Body, Client, Connection, ErrorKind, FlowError, Headers, HttpFlow, HttpVersion,
    Metadata, ReplaySide, Request, Response, Server, SocketAddress, Stream, TransportProtocol,
    Uuid, WebSocketData, WebSocketMessage, WebSocketMessageType,
};

use super::{
    compat,
    pem::{der_to_pem, pem_to_der},
    tnetstring::{
        self, decimal_digits, encoded_str, length_prefix, put_decimal, write_record, Encode, Sink,
        TnetError, TnetErrorKind, Value, MAX_LENGTH_DIGITS,
    },
};

/// Writes a dict key to a [`Sink`], encoded at compile time.
macro_rules! key {
    ($sink:expr, $name:literal) => {
        $sink.encoded(encoded_str!($name))
    };
}

/// The flow format version Interpose writes (mitmproxy 11 and later).
pub const FLOW_FORMAT_VERSION: i64 = 21;

/// The metadata key under which a flow's [`ErrorKind`] is kept: mitmproxy's error state has
/// only a message and a timestamp.
pub const ERROR_KIND_KEY: &str = "interpose_error_kind";

/// Why a flow file, or one record of it, could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Reading the underlying file failed.
    Io(io::Error),
    /// The record starting at `offset` is not a valid tnetstring.
    Tnet {
        /// Byte offset of the record in the file.
        offset: u64,
        /// The problem, at an offset relative to the record.
        source: TnetError,
    },
    /// The file ends inside the record starting at `offset` (a write cut short).
    Truncated {
        /// Byte offset of the incomplete record in the file.
        offset: u64,
    },
    /// The file is HAR (it starts with `{`), not a flow file.
    Har,
    /// A record's format version is newer than [`FLOW_FORMAT_VERSION`], or unknown.
    Version {
        /// The version as written in the file.
        version: String,
        /// Whether it is newer than this reader.
        newer: bool,
    },
    /// A flow of a type this reader does not handle (`tcp`, `udp`, `dns`); the caller may
    /// skip it.
    Unsupported {
        /// The flow's `type`.
        flow_type: String,
    },
    /// A key the state needs is missing.
    MissingKey {
        /// Where, e.g. `request.headers`.
        key: String,
    },
    /// A value has the wrong type.
    WrongType {
        /// Where, e.g. `response.status_code`.
        key: String,
        /// The type that was expected.
        expected: &'static str,
        /// The type that was found.
        found: &'static str,
    },
    /// A value has the right type but cannot be used.
    Invalid {
        /// Where, e.g. `id`.
        key: String,
        /// Why not.
        reason: String,
    },
    /// A problem with the state of the record starting at `offset`.
    InRecord {
        /// Byte offset of the record in the file.
        offset: u64,
        /// The problem.
        source: Box<ReadError>,
    },
}

impl ReadError {
    /// The error without the record position, to match on what went wrong.
    pub fn root(&self) -> &ReadError {
        match self {
            ReadError::InRecord { source, .. } => source.root(),
            other => other,
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "cannot read the flow file: {e}"),
            ReadError::Tnet { offset, source } => write!(
                f,
                "invalid flow record at byte {offset}: {source} (byte {} of the file)",
                *offset + source.offset as u64
            ),
            ReadError::Truncated { offset } => write!(
                f,
                "the flow file ends inside the record at byte {offset} (the file was cut short)"
            ),
            ReadError::Har => f.write_str("this is a HAR file, not a mitmproxy flow file"),
            ReadError::Version { version, newer } => {
                write!(
                    f,
                    "Interpose {} cannot read files with flow format version {version}",
                    env!("CARGO_PKG_VERSION")
                )?;
                if *newer {
                    write!(
                        f,
                        ", please update Interpose (it reads up to {FLOW_FORMAT_VERSION})"
                    )?;
                }
                Ok(())
            }
            ReadError::Unsupported { flow_type } => {
                write!(
                    f,
                    "unsupported flow type {flow_type:?} (only http flows are read)"
                )
            }
            ReadError::MissingKey { key } => write!(f, "flow state has no {key:?}"),
            ReadError::WrongType {
                key,
                expected,
                found,
            } => write!(f, "flow state: {key:?} should be {expected}, not {found}"),
            ReadError::Invalid { key, reason } => {
                write!(f, "flow state: invalid {key:?}: {reason}")
            }
            ReadError::InRecord { offset, source } => {
                write!(f, "flow record at byte {offset}: {source}")
            }
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io(e) => Some(e),
            ReadError::Tnet { source, .. } => Some(source),
            ReadError::InRecord { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

// ---- Writing ----

/// Appends one flow to `out` as a version-21 record, as mitmproxy's `FlowWriter.add`.
///
/// A streamed body (`stream.is_on()`) is written as `null`, as mitmproxy does.
pub fn write_flow(flow: &HttpFlow, out: &mut Vec<u8>) {
    CONNECTIONS.with_borrow_mut(|cache| {
        cache.encode_client(&flow.client_conn);
        if let ROption::RSome(server) = &flow.server_conn {
            cache.encode_server(server);
        }
    });
    write_record(flow, out);
}

/// Connections shared by many flows (every request of a keep-alive connection) are encoded
/// once per thread: an entry keeps the `RArc` it was made from, and the host never changes
/// a connection in place (a changed connection is a new `RArc`), so the pointer identifies
/// the contents.
#[derive(Default)]
struct ConnectionCache {
    clients: std::collections::HashMap<usize, (RArc<Client>, Vec<u8>)>,
    servers: std::collections::HashMap<usize, (RArc<Server>, Vec<u8>)>,
}

/// Entries kept per thread and kind, at most (then the cache starts over).
const CACHED_CONNECTIONS: usize = 512;

thread_local! {
    static CONNECTIONS: std::cell::RefCell<ConnectionCache> =
        std::cell::RefCell::new(ConnectionCache::default());
}

/// A client connection's state dict, for encoding it on its own.
struct ClientState<'a>(&'a Client);

impl Encode for ClientState<'_> {
    fn encode_to<S: Sink>(&self, s: &mut S) {
        write_client(self.0, s);
    }
}

/// A server connection's state dict, for encoding it on its own.
struct ServerState<'a>(&'a Server);

impl Encode for ServerState<'_> {
    fn encode_to<S: Sink>(&self, s: &mut S) {
        write_server(self.0, s);
    }
}

impl ConnectionCache {
    fn encode_client(&mut self, client: &RArc<Client>) {
        let key = &**client as *const Client as usize;
        if !self.clients.contains_key(&key) {
            if self.clients.len() >= CACHED_CONNECTIONS {
                self.clients.clear();
            }
            let mut bytes = Vec::with_capacity(512);
            write_record(&ClientState(client), &mut bytes);
            self.clients.insert(key, (RArc::clone(client), bytes));
        }
    }

    fn encode_server(&mut self, server: &RArc<Server>) {
        let key = &**server as *const Server as usize;
        if !self.servers.contains_key(&key) {
            if self.servers.len() >= CACHED_CONNECTIONS {
                self.servers.clear();
            }
            let mut bytes = Vec::with_capacity(512);
            write_record(&ServerState(server), &mut bytes);
            self.servers.insert(key, (RArc::clone(server), bytes));
        }
    }
}

/// Writes `client` from the cache when [`write_flow`] put it there, else encodes it.
fn write_client_cached<S: Sink>(client: &RArc<Client>, s: &mut S) {
    let key = &**client as *const Client as usize;
    CONNECTIONS.with_borrow(|cache| match cache.clients.get(&key) {
        Some((_, bytes)) => s.encoded(bytes),
        None => write_client(client, s),
    });
}

/// Writes `server` from the cache when [`write_flow`] put it there, else encodes it.
fn write_server_cached<S: Sink>(server: &RArc<Server>, s: &mut S) {
    let key = &**server as *const Server as usize;
    CONNECTIONS.with_borrow(|cache| match cache.servers.get(&key) {
        Some((_, bytes)) => s.encoded(bytes),
        None => write_server(server, s),
    });
}

/// The version-21 state dict of `flow` (what [`write_flow`] writes, as a [`Value`]).
pub fn flow_state(flow: &HttpFlow) -> Value {
    let mut out = Vec::with_capacity(4096);
    write_flow(flow, &mut out);
    match tnetstring::decode(&out) {
        Ok((value, _)) => value,
        // `write_flow` writes nothing `decode` rejects; `decode_own_output` tests it.
        Err(e) => unreachable!("write_flow wrote an invalid tnetstring: {e}"),
    }
}

impl Encode for HttpFlow {
    fn encode_to<S: Sink>(&self, s: &mut S) {
        let flow = self;
        s.dict(|s| {
            key!(s, "version");
            s.int(FLOW_FORMAT_VERSION);
            key!(s, "type");
            s.encoded(encoded_str!("http"));
            key!(s, "id");
            write_uuid(&flow.id, s);
            key!(s, "error");
            match &flow.error {
                ROption::RSome(error) => s.dict(|s| {
                    key!(s, "msg");
                    s.str(&error.msg);
                    key!(s, "timestamp");
                    s.float(error.timestamp);
                }),
                ROption::RNone => s.null(),
            }
            key!(s, "client_conn");
            write_client_cached(&flow.client_conn, s);
            key!(s, "server_conn");
            match &flow.server_conn {
                ROption::RSome(server) => write_server_cached(server, s),
                ROption::RNone => write_unconnected_server(&flow.id, s),
            }
            key!(s, "intercepted");
            s.bool(flow.intercepted);
            key!(s, "is_replay");
            match flow.is_replay {
                ROption::RSome(ReplaySide::Request) => s.encoded(encoded_str!("request")),
                ROption::RSome(ReplaySide::Response) => s.encoded(encoded_str!("response")),
                ROption::RNone => s.null(),
            }
            key!(s, "marked");
            s.str(&flow.marked);
            key!(s, "metadata");
            s.dict(|s| {
                for (name, value) in flow.metadata.iter() {
                    if name == ERROR_KIND_KEY {
                        continue;
                    }
                    s.str(name);
                    s.str(value);
                }
                if let ROption::RSome(error) = &flow.error {
                    s.str(ERROR_KIND_KEY);
                    s.str(error.kind.name());
                }
            });
            key!(s, "comment");
            s.str(&flow.comment);
            key!(s, "timestamp_created");
            s.float(flow.timestamp_created);
            key!(s, "request");
            write_request(&flow.request, s);
            key!(s, "response");
            match &flow.response {
                ROption::RSome(response) => write_response(response, s),
                ROption::RNone => s.null(),
            }
            key!(s, "websocket");
            match &flow.websocket {
                ROption::RSome(ws) => write_websocket(ws, s),
                ROption::RNone => s.null(),
            }
        });
    }
}

fn write_uuid<S: Sink>(id: &Uuid, s: &mut S) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    s.filled(36, b';', |text| {
        let mut i = 0;
        for (n, byte) in id.0.iter().enumerate() {
            if matches!(n, 4 | 6 | 8 | 10) {
                text[i] = b'-';
                i += 1;
            }
            text[i] = HEX[usize::from(byte >> 4)];
            text[i + 1] = HEX[usize::from(byte & 15)];
            i += 2;
        }
    });
}

fn write_opt_float<S: Sink>(value: ROption<f64>, s: &mut S) {
    match value {
        ROption::RSome(x) => s.float(x),
        ROption::RNone => s.null(),
    }
}

fn write_opt_str<S: Sink>(value: &ROption<RString>, s: &mut S) {
    match value {
        ROption::RSome(text) => s.str(text),
        ROption::RNone => s.null(),
    }
}

/// `[host, port]`, or `null` (or `["", 0]` where mitmproxy needs an address).
fn write_socket_address<S: Sink>(addr: &SocketAddress, required: bool, s: &mut S) {
    match addr.get() {
        Some(addr) => s.list(|s| {
            write_ip(addr.ip(), s);
            s.int(i64::from(addr.port()));
        }),
        None if required => s.encoded(b"7:0:;1:0#]"),
        None => s.null(),
    }
}

/// An IP address as text, as `Display` writes it.
fn write_ip<S: Sink>(ip: IpAddr, s: &mut S) {
    match ip {
        IpAddr::V4(v4) => {
            let octets = v4.octets();
            let len = 3 + octets
                .iter()
                .map(|&o| decimal_digits(usize::from(o)))
                .sum::<usize>();
            s.filled(len, b';', |text| {
                let mut at = 0;
                for (i, octet) in octets.into_iter().enumerate() {
                    if i > 0 {
                        text[at] = b'.';
                        at += 1;
                    }
                    let digits = decimal_digits(usize::from(octet));
                    put_decimal(usize::from(octet), &mut text[at..at + digits]);
                    at += digits;
                }
            });
        }
        IpAddr::V6(v6) => s.formatted(b';', |buf| {
            let _ = io::Write::write_fmt(buf, format_args!("{v6}"));
        }),
    }
}

fn write_address<S: Sink>(addr: &ROption<Address>, s: &mut S) {
    match addr {
        ROption::RSome(a) => s.list(|s| {
            s.str(&a.host);
            s.int(i64::from(a.port));
        }),
        ROption::RNone => s.null(),
    }
}

fn write_connection<S: Sink>(conn: &Connection, required_addresses: bool, s: &mut S) {
    key!(s, "id");
    write_uuid(&conn.id, s);
    key!(s, "peername");
    write_socket_address(&conn.peername, required_addresses, s);
    key!(s, "sockname");
    write_socket_address(&conn.sockname, required_addresses, s);
    key!(s, "transport_protocol");
    s.encoded(match conn.transport_protocol {
        TransportProtocol::Tcp => encoded_str!("tcp"),
        TransportProtocol::Udp => encoded_str!("udp"),
    });
    key!(s, "error");
    write_opt_str(&conn.error, s);
    key!(s, "tls");
    s.bool(conn.tls);
    key!(s, "certificate_list");
    s.list(|s| {
        for der in conn.certificate_list.iter() {
            s.formatted(b',', |buf| der_to_pem(der, buf));
        }
    });
    key!(s, "alpn");
    match &conn.alpn {
        ROption::RSome(alpn) => s.bytes(alpn),
        ROption::RNone => s.null(),
    }
    key!(s, "alpn_offers");
    s.list(|s| {
        for offer in conn.alpn_offers.iter() {
            s.bytes(offer);
        }
    });
    key!(s, "cipher");
    write_opt_str(&conn.cipher, s);
    key!(s, "cipher_list");
    s.list(|s| {
        for cipher in conn.cipher_list.iter() {
            s.str(cipher);
        }
    });
    key!(s, "tls_version");
    write_opt_str(&conn.tls_version, s);
    key!(s, "sni");
    write_opt_str(&conn.sni, s);
    key!(s, "timestamp_start");
    match conn.timestamp_start {
        // mitmproxy's client needs a start time.
        ROption::RNone if required_addresses => s.float(0.0),
        other => write_opt_float(other, s),
    }
    key!(s, "timestamp_end");
    write_opt_float(conn.timestamp_end, s);
    key!(s, "timestamp_tls_setup");
    write_opt_float(conn.timestamp_tls_setup, s);
}

fn write_client<S: Sink>(client: &Client, s: &mut S) {
    s.dict(|s| {
        write_connection(&client.conn, true, s);
        key!(s, "mitmcert");
        match &client.mitmcert {
            ROption::RSome(der) => s.formatted(b',', |buf| der_to_pem(der, buf)),
            ROption::RNone => s.null(),
        }
        key!(s, "proxy_mode");
        s.str(client.proxy_mode.as_str());
    });
}

fn write_server<S: Sink>(server: &Server, s: &mut S) {
    s.dict(|s| {
        write_connection(&server.conn, false, s);
        key!(s, "address");
        write_address(&server.address, s);
        key!(s, "timestamp_tcp_setup");
        write_opt_float(server.timestamp_tcp_setup, s);
        key!(s, "via");
        match &server.via {
            ROption::RSome(via) => s.list(|s| {
                s.encoded(encoded_str!("http"));
                s.list(|s| {
                    s.str(&via.host);
                    s.int(i64::from(via.port));
                });
            }),
            ROption::RNone => s.null(),
        }
    });
}

/// The id given to the server of a flow that never had one (mitmproxy always has a server
/// connection): the flow's id with the last byte flipped, so a file reads back the same.
fn unconnected_server_id(flow_id: &Uuid) -> Uuid {
    let mut id = *flow_id;
    id.0[15] ^= 0xff;
    id
}

fn write_unconnected_server<S: Sink>(flow_id: &Uuid, s: &mut S) {
    let server = Server {
        conn: Connection::new(unconnected_server_id(flow_id)),
        address: ROption::RNone,
        timestamp_tcp_setup: ROption::RNone,
        via: ROption::RNone,
    };
    write_server(&server, s);
}

fn write_headers<S: Sink>(headers: &Headers, s: &mut S) {
    s.list(|s| {
        for (name, value) in headers.iter() {
            s.list(|s| {
                s.bytes(name.as_bytes());
                s.bytes(value);
            });
        }
    });
}

/// What requests and responses write alike; `content` is `None` for a streamed body.
struct MessageParts<'a> {
    http_version: HttpVersion,
    headers: &'a Headers,
    content: Option<&'a Body>,
    trailers: &'a ROption<Headers>,
    timestamp_start: f64,
    timestamp_end: ROption<f64>,
}

fn write_message_common<S: Sink>(m: MessageParts<'_>, s: &mut S) {
    key!(s, "http_version");
    s.bytes(m.http_version.as_str().as_bytes());
    key!(s, "headers");
    write_headers(m.headers, s);
    key!(s, "content");
    match m.content {
        Some(content) => s.bytes(content),
        None => s.null(),
    }
    key!(s, "trailers");
    match m.trailers {
        ROption::RSome(t) => write_headers(t, s),
        ROption::RNone => s.null(),
    }
    key!(s, "timestamp_start");
    s.float(m.timestamp_start);
    key!(s, "timestamp_end");
    write_opt_float(m.timestamp_end, s);
}

fn write_request<S: Sink>(request: &Request, s: &mut S) {
    s.dict(|s| {
        write_message_common(
            MessageParts {
                http_version: request.http_version,
                headers: &request.headers,
                content: (!request.stream.is_on()).then_some(&request.content),
                trailers: &request.trailers,
                timestamp_start: request.timestamp_start,
                timestamp_end: request.timestamp_end,
            },
            s,
        );
        key!(s, "host");
        s.str(&request.host);
        key!(s, "port");
        s.int(i64::from(request.port));
        key!(s, "method");
        s.bytes(request.method.as_bytes());
        key!(s, "scheme");
        s.bytes(request.scheme.as_bytes());
        key!(s, "authority");
        s.bytes(request.authority.as_bytes());
        key!(s, "path");
        s.bytes(request.path.as_bytes());
    });
}

fn write_response<S: Sink>(response: &Response, s: &mut S) {
    s.dict(|s| {
        write_message_common(
            MessageParts {
                http_version: response.http_version,
                headers: &response.headers,
                content: (!response.stream.is_on()).then_some(&response.content),
                trailers: &response.trailers,
                timestamp_start: response.timestamp_start,
                timestamp_end: response.timestamp_end,
            },
            s,
        );
        key!(s, "status_code");
        s.int(i64::from(response.status_code));
        key!(s, "reason");
        s.bytes(response.reason.as_bytes());
    });
}

fn write_websocket<S: Sink>(ws: &WebSocketData, s: &mut S) {
    s.dict(|s| {
        key!(s, "messages");
        s.list(|s| {
            for m in ws.messages.iter() {
                s.list(|s| {
                    s.int(m.type_ as i64);
                    s.bool(m.from_client);
                    s.bytes(&m.content);
                    s.float(m.timestamp);
                    s.bool(m.dropped);
                    s.bool(m.injected);
                });
            }
        });
        key!(s, "closed_by_client");
        match ws.closed_by_client {
            ROption::RSome(b) => s.bool(b),
            ROption::RNone => s.null(),
        }
        key!(s, "close_code");
        match ws.close_code {
            ROption::RSome(c) => s.int(i64::from(c)),
            ROption::RNone => s.null(),
        }
        key!(s, "close_reason");
        write_opt_str(&ws.close_reason, s);
        key!(s, "timestamp_end");
        write_opt_float(ws.timestamp_end, s);
    });
}

// ---- Reading ----

/// A state dict being taken apart, with the path of its keys for errors.
struct Fields {
    entries: Vec<(String, Value)>,
    path: String,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn wrong(key: String, expected: &'static str, found: &Value) -> ReadError {
    ReadError::WrongType {
        key,
        expected,
        found: found.type_name(),
    }
}

fn invalid(key: String, reason: impl Into<String>) -> ReadError {
    ReadError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl Fields {
    fn new(value: Value, path: String) -> Result<Fields, ReadError> {
        match value {
            Value::Dict(entries) => Ok(Fields { entries, path }),
            other => Err(wrong(path, "a dict", &other)),
        }
    }

    fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    fn take(&mut self, key: &str) -> Result<Value, ReadError> {
        match self.entries.iter().rposition(|(k, _)| k == key) {
            Some(i) => Ok(self.entries.swap_remove(i).1),
            None => Err(ReadError::MissingKey {
                key: self.path(key),
            }),
        }
    }

    fn take_or_null(&mut self, key: &str) -> Value {
        self.take(key).unwrap_or(Value::Null)
    }

    fn dict(&mut self, key: &str) -> Result<Fields, ReadError> {
        let value = self.take(key)?;
        Fields::new(value, self.path(key))
    }

    fn opt_dict(&mut self, key: &str) -> Result<Option<Fields>, ReadError> {
        match self.take(key)? {
            Value::Null => Ok(None),
            value => Fields::new(value, self.path(key)).map(Some),
        }
    }

    fn text(&mut self, key: &str) -> Result<String, ReadError> {
        let value = self.take(key)?;
        as_text(value, self.path(key))
    }

    fn opt_text(&mut self, key: &str) -> Result<Option<String>, ReadError> {
        match self.take(key)? {
            Value::Null => Ok(None),
            value => as_text(value, self.path(key)).map(Some),
        }
    }

    fn bytes(&mut self, key: &str) -> Result<Vec<u8>, ReadError> {
        let value = self.take(key)?;
        as_bytes(value, self.path(key))
    }

    fn opt_bytes(&mut self, key: &str) -> Result<Option<Vec<u8>>, ReadError> {
        match self.take(key)? {
            Value::Null => Ok(None),
            value => as_bytes(value, self.path(key)).map(Some),
        }
    }

    fn int(&mut self, key: &str) -> Result<i64, ReadError> {
        match self.take(key)? {
            Value::Int(i) => Ok(i),
            other => Err(wrong(self.path(key), "an int", &other)),
        }
    }

    fn u16(&mut self, key: &str) -> Result<u16, ReadError> {
        let i = self.int(key)?;
        u16::try_from(i).map_err(|_| invalid(self.path(key), format!("{i} is out of range")))
    }

    fn float(&mut self, key: &str) -> Result<f64, ReadError> {
        let value = self.take(key)?;
        as_float(value, self.path(key))
    }

    fn opt_float(&mut self, key: &str) -> Result<ROption<f64>, ReadError> {
        match self.take(key)? {
            Value::Null => Ok(ROption::RNone),
            value => as_float(value, self.path(key)).map(ROption::RSome),
        }
    }

    fn bool(&mut self, key: &str) -> Result<bool, ReadError> {
        match self.take(key)? {
            Value::Bool(b) => Ok(b),
            other => Err(wrong(self.path(key), "a bool", &other)),
        }
    }

    fn list(&mut self, key: &str) -> Result<Vec<Value>, ReadError> {
        match self.take(key)? {
            Value::List(items) => Ok(items),
            other => Err(wrong(self.path(key), "a list", &other)),
        }
    }
}

/// Text; bytes are accepted (files from Python 2 era mitmproxy hold bytes everywhere).
fn as_text(value: Value, key: String) -> Result<String, ReadError> {
    match value {
        Value::Str(s) => Ok(s),
        Value::Bytes(b) => Ok(String::from_utf8(b)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())),
        other => Err(wrong(key, "str", &other)),
    }
}

/// Bytes; text is accepted.
fn as_bytes(value: Value, key: String) -> Result<Vec<u8>, ReadError> {
    match value {
        Value::Bytes(b) => Ok(b),
        Value::Str(s) => Ok(s.into_bytes()),
        other => Err(wrong(key, "bytes", &other)),
    }
}

/// A float; ints are accepted, as mitmproxy does.
fn as_float(value: Value, key: String) -> Result<f64, ReadError> {
    match value {
        Value::Float(f) => Ok(f),
        Value::Int(i) => Ok(i as f64),
        other => Err(wrong(key, "a float", &other)),
    }
}

/// Parses the UUID text form (hyphens optional).
fn parse_uuid(text: &str, key: String) -> Result<Uuid, ReadError> {
    let hex: Vec<u8> = text.bytes().filter(|&b| b != b'-').collect();
    let digit = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    if hex.len() != 32 {
        return Err(invalid(key, format!("{text:?} is not a UUID")));
    }
    let mut id = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        match (digit(pair[0]), digit(pair[1])) {
            (Some(hi), Some(lo)) => id[i] = hi << 4 | lo,
            _ => return Err(invalid(key, format!("{text:?} is not a UUID"))),
        }
    }
    Ok(Uuid(id))
}

fn parse_http_version(text: &[u8], key: String) -> Result<HttpVersion, ReadError> {
    Ok(match text {
        b"HTTP/0.9" => HttpVersion::Http09,
        b"HTTP/1.0" => HttpVersion::Http10,
        b"HTTP/1.1" => HttpVersion::Http11,
        b"HTTP/2.0" | b"HTTP/2" => HttpVersion::Http2,
        b"HTTP/3" | b"HTTP/3.0" => HttpVersion::Http3,
        other => {
            return Err(invalid(
                key,
                format!("unknown HTTP version {:?}", String::from_utf8_lossy(other)),
            ))
        }
    })
}

/// `[host, port, ...]` (IPv6 addresses may carry flow info and scope id) or `null`; a host
/// that is not an IP address (mitmproxy's test flows have some) reads as no address.
fn parse_socket_address(value: Value, key: String) -> Result<SocketAddress, ReadError> {
    let (host, port) = match parse_host_port(value, key)? {
        Some(hp) => hp,
        None => return Ok(SocketAddress::NONE),
    };
    Ok(match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).into(),
        Err(_) => SocketAddress::NONE,
    })
}

fn parse_host_port(value: Value, key: String) -> Result<Option<(String, u16)>, ReadError> {
    let items = match value {
        Value::Null => return Ok(None),
        Value::List(items) if items.len() >= 2 => items,
        other => return Err(wrong(key, "a [host, port] list or null", &other)),
    };
    let mut items = items.into_iter();
    let host = as_text(items.next().unwrap_or(Value::Null), format!("{key}[0]"))?;
    let port = match items.next() {
        Some(Value::Int(p)) => u16::try_from(p)
            .map_err(|_| invalid(format!("{key}[1]"), format!("port {p} is out of range")))?,
        Some(other) => return Err(wrong(format!("{key}[1]"), "an int", &other)),
        None => 0,
    };
    Ok(Some((host, port)))
}

fn parse_headers(value: Value, key: String) -> Result<Headers, ReadError> {
    let items = match value {
        Value::List(items) => items,
        other => return Err(wrong(key, "a list of [name, value]", &other)),
    };
    let mut headers = Headers::with_capacity(items.len(), 0);
    for (i, item) in items.into_iter().enumerate() {
        let pair_key = || format!("{key}[{i}]");
        let mut pair = match item {
            Value::List(pair) if pair.len() == 2 => pair.into_iter(),
            other => return Err(wrong(pair_key(), "a [name, value] pair", &other)),
        };
        let name = as_bytes(pair.next().unwrap_or(Value::Null), pair_key())?;
        let value = as_bytes(pair.next().unwrap_or(Value::Null), pair_key())?;
        let name =
            String::from_utf8(name).map_err(|_| invalid(pair_key(), "header name is not UTF-8"))?;
        headers.append(&name, value);
    }
    Ok(headers)
}

fn parse_pem_list(items: Vec<Value>, key: &str) -> Result<RVec<RVec<u8>>, ReadError> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let pem = as_bytes(v, format!("{key}[{i}]"))?;
            pem_to_der(&pem)
                .map(RVec::from)
                .ok_or_else(|| invalid(format!("{key}[{i}]"), "not a PEM certificate"))
        })
        .collect()
}

/// Proxy modes read from files, leaked once each (`Client::proxy_mode` is `'static`); a
/// bounded number, so a file cannot make the reader leak without limit.
static READ_MODES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
const MAX_READ_MODES: usize = 64;

/// Maps a proxy mode spec to a `'static` string: `regular`, or a `reverse:`/`upstream:` spec
/// as the host writes them; anything else reads as `regular`.
fn static_proxy_mode(spec: &str) -> RStr<'static> {
    if spec == "regular"
        || !(spec.starts_with("reverse:") || spec.starts_with("upstream:"))
        || spec.len() > 256
    {
        return RStr::from_str("regular");
    }
    let Ok(mut modes) = READ_MODES.lock() else {
        return RStr::from_str("regular");
    };
    if let Some(known) = modes.iter().find(|m| **m == spec) {
        return RStr::from_str(known);
    }
    if modes.len() == MAX_READ_MODES {
        return RStr::from_str("regular");
    }
    let leaked: &'static str = Box::leak(spec.to_string().into_boxed_str());
    modes.push(leaked);
    RStr::from_str(leaked)
}

fn read_connection(f: &mut Fields) -> Result<Connection, ReadError> {
    let id = {
        let text = f.text("id")?;
        parse_uuid(&text, f.path("id"))?
    };
    let peername = parse_socket_address(f.take("peername")?, f.path("peername"))?;
    let sockname = parse_socket_address(f.take("sockname")?, f.path("sockname"))?;
    let transport_protocol = match f.text("transport_protocol")?.as_str() {
        "tcp" => TransportProtocol::Tcp,
        "udp" => TransportProtocol::Udp,
        other => {
            return Err(invalid(
                f.path("transport_protocol"),
                format!("{other:?} is neither tcp nor udp"),
            ))
        }
    };
    let error = f.opt_text("error")?;
    let tls = f.bool("tls")?;
    let certificate_list =
        parse_pem_list(f.list("certificate_list")?, &f.path("certificate_list"))?;
    let alpn = f.opt_bytes("alpn")?;
    let alpn_offers = f
        .list("alpn_offers")?
        .into_iter()
        .enumerate()
        .map(|(i, v)| as_bytes(v, format!("{}[{i}]", f.path("alpn_offers"))).map(RVec::from))
        .collect::<Result<RVec<_>, _>>()?;
    let cipher = f.opt_text("cipher")?;
    let cipher_list = f
        .list("cipher_list")?
        .into_iter()
        .enumerate()
        .map(|(i, v)| as_text(v, format!("{}[{i}]", f.path("cipher_list"))).map(RString::from))
        .collect::<Result<RVec<_>, _>>()?;
    let tls_version = f.opt_text("tls_version")?;
    let sni = f.opt_text("sni")?;
    Ok(Connection {
        id,
        peername,
        sockname,
        transport_protocol,
        error: error.map(RString::from).into(),
        tls,
        certificate_list,
        alpn: alpn.map(RVec::from).into(),
        alpn_offers,
        cipher: cipher.map(RString::from).into(),
        cipher_list,
        tls_version: tls_version.map(RString::from).into(),
        sni: sni.map(RString::from).into(),
        timestamp_start: f.opt_float("timestamp_start")?,
        timestamp_end: f.opt_float("timestamp_end")?,
        timestamp_tls_setup: f.opt_float("timestamp_tls_setup")?,
    })
}

fn read_client(mut f: Fields) -> Result<Client, ReadError> {
    let conn = read_connection(&mut f)?;
    let mitmcert = match f.opt_bytes("mitmcert")? {
        Some(pem) => ROption::RSome(
            pem_to_der(&pem)
                .map(RVec::from)
                .ok_or_else(|| invalid(f.path("mitmcert"), "not a PEM certificate"))?,
        ),
        None => ROption::RNone,
    };
    let proxy_mode = static_proxy_mode(&f.text("proxy_mode")?);
    Ok(Client {
        conn,
        mitmcert,
        proxy_mode,
    })
}

fn read_server(mut f: Fields, flow_id: &Uuid) -> Result<Option<Server>, ReadError> {
    let conn = read_connection(&mut f)?;
    let address =
        parse_host_port(f.take("address")?, f.path("address"))?.map(|(host, port)| Address {
            host: host.into(),
            port,
        });
    let timestamp_tcp_setup = f.opt_float("timestamp_tcp_setup")?;
    let via = match f.take("via")? {
        Value::Null => None,
        Value::List(items) if items.len() == 2 => {
            let mut items = items.into_iter();
            let _scheme = items.next();
            parse_host_port(items.next().unwrap_or(Value::Null), f.path("via"))?.map(
                |(host, port)| Address {
                    host: host.into(),
                    port,
                },
            )
        }
        other => {
            return Err(wrong(
                f.path("via"),
                "a [scheme, [host, port]] list",
                &other,
            ))
        }
    };
    // What `write_flow` writes for a flow without a server connection reads back as none.
    if conn.id == unconnected_server_id(flow_id)
        && address.is_none()
        && conn.timestamp_start.is_none()
        && conn.peername.get().is_none()
    {
        return Ok(None);
    }
    Ok(Some(Server {
        conn,
        address: address.into(),
        timestamp_tcp_setup,
        via: via.into(),
    }))
}

/// The fields requests and responses share.
struct MessageCommon {
    http_version: HttpVersion,
    headers: Headers,
    content: Body,
    trailers: ROption<Headers>,
    timestamp_start: f64,
    timestamp_end: ROption<f64>,
}

fn read_message_common(f: &mut Fields) -> Result<MessageCommon, ReadError> {
    let http_version = parse_http_version(&f.bytes("http_version")?, f.path("http_version"))?;
    let headers = parse_headers(f.take("headers")?, f.path("headers"))?;
    let content = Body::from_vec(f.opt_bytes("content")?.unwrap_or_default());
    let trailers = match f.take_or_null("trailers") {
        Value::Null => ROption::RNone,
        value => ROption::RSome(parse_headers(value, f.path("trailers"))?),
    };
    Ok(MessageCommon {
        http_version,
        headers,
        content,
        trailers,
        timestamp_start: f.float("timestamp_start")?,
        timestamp_end: f.opt_float("timestamp_end")?,
    })
}

fn read_request(mut f: Fields) -> Result<Request, ReadError> {
    let common = read_message_common(&mut f)?;
    let text = |f: &mut Fields, key: &str| -> Result<RString, ReadError> {
        let bytes = f.bytes(key)?;
        String::from_utf8(bytes)
            .map(RString::from)
            .map_err(|_| invalid(f.path(key), "not UTF-8"))
    };
    Ok(Request {
        host: f.text("host")?.into(),
        port: f.u16("port")?,
        method: text(&mut f, "method")?,
        scheme: text(&mut f, "scheme")?,
        authority: text(&mut f, "authority")?,
        path: text(&mut f, "path")?,
        http_version: common.http_version,
        headers: common.headers,
        content: common.content,
        stream: Stream::off(),
        trailers: common.trailers,
        timestamp_start: common.timestamp_start,
        timestamp_end: common.timestamp_end,
    })
}

fn read_response(mut f: Fields) -> Result<Response, ReadError> {
    let common = read_message_common(&mut f)?;
    let reason = String::from_utf8_lossy(&f.bytes("reason")?).into_owned();
    Ok(Response {
        http_version: common.http_version,
        status_code: f.u16("status_code")?,
        reason: reason.into(),
        headers: common.headers,
        content: common.content,
        stream: Stream::off(),
        trailers: common.trailers,
        timestamp_start: common.timestamp_start,
        timestamp_end: common.timestamp_end,
    })
}

fn read_websocket(mut f: Fields) -> Result<WebSocketData, ReadError> {
    let messages_key = f.path("messages");
    let mut messages = RVec::new();
    for (i, item) in f.list("messages")?.into_iter().enumerate() {
        let key = format!("{messages_key}[{i}]");
        let items = match item {
            Value::List(items) if items.len() >= 4 => items,
            other => return Err(wrong(key, "a message list", &other)),
        };
        let mut m = Fields {
            entries: [
                "type",
                "from_client",
                "content",
                "timestamp",
                "dropped",
                "injected",
            ]
            .iter()
            .map(|k| k.to_string())
            .zip(items)
            .collect(),
            path: key,
        };
        let type_ = match m.int("type")? {
            1 => WebSocketMessageType::Text,
            2 => WebSocketMessageType::Binary,
            other => {
                return Err(invalid(m.path("type"), format!("unknown opcode {other}")));
            }
        };
        let from_client = m.bool("from_client")?;
        let content = Body::from_vec(m.bytes("content")?);
        let timestamp = m.float("timestamp")?;
        let bool_or_false = |m: &mut Fields, k: &str| match m.take_or_null(k) {
            Value::Null => Ok(false),
            Value::Bool(b) => Ok(b),
            other => Err(wrong(m.path(k), "a bool", &other)),
        };
        messages.push(WebSocketMessage {
            type_,
            from_client,
            content,
            timestamp,
            dropped: bool_or_false(&mut m, "dropped")?,
            injected: bool_or_false(&mut m, "injected")?,
        });
    }
    let closed_by_client = match f.take_or_null("closed_by_client") {
        Value::Null => ROption::RNone,
        Value::Bool(b) => ROption::RSome(b),
        other => return Err(wrong(f.path("closed_by_client"), "a bool or null", &other)),
    };
    let close_code = match f.take_or_null("close_code") {
        Value::Null => ROption::RNone,
        Value::Int(c) => ROption::RSome(
            u16::try_from(c)
                .map_err(|_| invalid(f.path("close_code"), format!("{c} is out of range")))?,
        ),
        other => return Err(wrong(f.path("close_code"), "an int or null", &other)),
    };
    let close_reason = match f.take_or_null("close_reason") {
        Value::Null => None,
        value => Some(as_text(value, f.path("close_reason"))?),
    };
    Ok(WebSocketData {
        messages,
        closed_by_client,
        close_code,
        close_reason: close_reason.map(RString::from).into(),
        timestamp_end: match f.take_or_null("timestamp_end") {
            Value::Null => ROption::RNone,
            value => ROption::RSome(as_float(value, f.path("timestamp_end"))?),
        },
    })
}

fn metadata_text(value: Value) -> Option<String> {
    match value {
        Value::Str(s) => Some(s),
        Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(x) => Some(x.to_string()),
        Value::Bool(b) => Some(if b { "True" } else { "False" }.to_string()),
        // Structured values have no text form in Interpose's metadata.
        _ => None,
    }
}

fn error_kind(name: Option<&str>, msg: &str) -> ErrorKind {
    const KINDS: [ErrorKind; 8] = [
        ErrorKind::Client,
        ErrorKind::Server,
        ErrorKind::Addon,
        ErrorKind::Proxy,
        ErrorKind::Killed,
        ErrorKind::Shutdown,
        ErrorKind::Timeout,
        ErrorKind::TooLarge,
    ];
    match name.and_then(|n| KINDS.into_iter().find(|k| k.name() == n)) {
        Some(kind) => kind,
        None if msg == FlowError::KILLED_MESSAGE => ErrorKind::Killed,
        // mitmproxy's errors are mostly the server's (connection refused, reset, ...).
        None => ErrorKind::Server,
    }
}

/// Builds a flow from a version-21 state dict (migrate older ones with
/// [`super::compat::migrate`] first). The flow is not live, and bodies written as `null`
/// (streamed) are empty.
pub fn flow_from_state(state: Value) -> Result<HttpFlow, ReadError> {
    let mut f = Fields::new(state, String::new())?;
    let flow_type = f.text("type")?;
    if flow_type != "http" {
        return Err(ReadError::Unsupported { flow_type });
    }
    let id = {
        let text = f.text("id")?;
        parse_uuid(&text, "id".into())?
    };
    let client = read_client(f.dict("client_conn")?)?;
    let server = match f.opt_dict("server_conn")? {
        Some(server) => read_server(server, &id)?,
        None => None,
    };
    let request = read_request(f.dict("request")?)?;
    let response = f.opt_dict("response")?.map(read_response).transpose()?;
    let websocket = match f.take_or_null("websocket") {
        Value::Null => None,
        value => Some(read_websocket(Fields::new(value, "websocket".into())?)?),
    };
    let mut metadata = Metadata::default();
    let mut kind_name = None;
    match f.take("metadata")? {
        Value::Dict(entries) => {
            for (k, v) in entries {
                if k == ERROR_KIND_KEY {
                    kind_name = metadata_text(v);
                } else if let Some(text) = metadata_text(v) {
                    metadata.insert(&k, text);
                }
            }
        }
        other => return Err(wrong("metadata".into(), "a dict", &other)),
    }
    let error = match f.opt_dict("error")? {
        Some(mut e) => {
            let msg = e.text("msg")?;
            let timestamp = e.float("timestamp")?;
            ROption::RSome(FlowError {
                kind: error_kind(kind_name.as_deref(), &msg),
                msg: msg.into(),
                timestamp,
            })
        }
        None => ROption::RNone,
    };
    let is_replay = match f.take("is_replay")? {
        Value::Null => ROption::RNone,
        value => match as_text(value, "is_replay".into())?.as_str() {
            "request" => ROption::RSome(ReplaySide::Request),
            "response" => ROption::RSome(ReplaySide::Response),
            other => {
                return Err(invalid(
                    "is_replay".into(),
                    format!("{other:?} is neither request nor response"),
                ))
            }
        },
    };
    let marked = match f.take("marked")? {
        // Before version 13 a bool.
        Value::Bool(b) => if b { ":default:" } else { "" }.to_string(),
        value => as_text(value, "marked".into())?,
    };
    let comment = f.text("comment")?;
    let timestamp_created = f.float("timestamp_created")?;
    let intercepted = f.bool("intercepted")?;
    Ok(HttpFlow {
        id,
        client_conn: RArc::new(client),
        server_conn: server.map(RArc::new).into(),
        request,
        response: response.into(),
        error,
        websocket: websocket.into(),
        intercepted,
        is_replay,
        live: false,
        marked: marked.into(),
        comment: comment.into(),
        metadata,
        timestamp_created,
        addon_state: Default::default(),
    })
}

/// Reads the flows of a flow file one by one (mitmproxy's `FlowReader.stream`), migrating
/// older format versions.
///
/// A file that ends inside a record (cut by a crash) yields its complete flows and then one
/// [`ReadError::Truncated`]. Errors in one record's state are wrapped in [`ReadError::InRecord`] and reading
/// goes on with the next record; [`ReadError::Unsupported`] and [`ReadError::Version`] come
/// unwrapped. A broken tnetstring ends the iteration.
pub struct FlowReader<R: Read> {
    reader: BufReader<R>,
    offset: u64,
    done: bool,
    record: Vec<u8>,
}

impl<R: Read> FlowReader<R> {
    /// A reader of the flow file `reader`.
    pub fn new(reader: R) -> Self {
        FlowReader {
            reader: BufReader::with_capacity(64 * 1024, reader),
            offset: 0,
            done: false,
            record: Vec::new(),
        }
    }

    /// Byte offset of the next record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads the next record into `self.record`: `Ok(false)` at a clean end of file.
    fn read_record(&mut self) -> Result<bool, ReadError> {
        let start = self.offset;
        self.record.clear();
        // The length prefix, a byte at a time (the reader is buffered).
        loop {
            let buf = self.reader.fill_buf()?;
            let Some(&byte) = buf.first() else {
                return if self.record.is_empty() {
                    Ok(false)
                } else {
                    Err(ReadError::Truncated { offset: start })
                };
            };
            if self.record.is_empty() && (byte == b'{' || byte == 0xef) {
                return Err(ReadError::Har);
            }
            self.reader.consume(1);
            self.record.push(byte);
            if byte == b':' {
                break;
            }
            if !byte.is_ascii_digit() || self.record.len() > MAX_LENGTH_DIGITS {
                break;
            }
        }
        let (len, _) = length_prefix(&self.record, 0, self.record.len()).map_err(|source| {
            ReadError::Tnet {
                offset: start,
                source,
            }
        })?;
        // `take` grows the buffer as data arrives, so a bogus huge length in a short file
        // costs no more memory than the file has.
        let want = len as u64 + 1;
        let got = (&mut self.reader)
            .take(want)
            .read_to_end(&mut self.record)? as u64;
        if got < want {
            return Err(ReadError::Truncated { offset: start });
        }
        self.offset += self.record.len() as u64;
        Ok(true)
    }
}

impl<R: Read> Iterator for FlowReader<R> {
    type Item = Result<HttpFlow, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let start = self.offset;
        match self.read_record() {
            Ok(true) => {}
            Ok(false) => {
                self.done = true;
                return None;
            }
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        }
        let state = match tnetstring::decode(&self.record) {
            Ok((state, _)) => state,
            Err(source) => {
                self.done = true;
                return Some(Err(ReadError::Tnet {
                    offset: start,
                    source,
                }));
            }
        };
        if !matches!(state, Value::Dict(_)) {
            self.done = true;
            return Some(Err(ReadError::Tnet {
                offset: start,
                source: TnetError {
                    offset: 0,
                    kind: TnetErrorKind::BadPayload("flow record (not a dict)"),
                },
            }));
        }
        let flow = compat::migrate(state).and_then(flow_from_state);
        Some(flow.map_err(|e| match e {
            // What callers match on stays unwrapped.
            ReadError::Unsupported { .. } | ReadError::Version { .. } => e,
            other => ReadError::InRecord {
                offset: start,
                source: Box::new(other),
            },
        }))
    }
}
