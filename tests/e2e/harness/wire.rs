//! HTTP/1.1 on the wire, byte for byte: a reader that keeps every byte of a message as it
//! arrived (field-name case, field order, chunk framing, trailers), a recording upstream that
//! answers with bytes the test chose, and a raw client.

use std::{
    io::{self, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{Arc, Condvar, Mutex},
    thread,
    time::{Duration, Instant},
};

/// How long a raw peer waits for bytes before it gives up on a connection.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One HTTP/1.1 message exactly as it crossed the wire.
#[derive(Debug, Clone)]
pub struct RawMessage {
    /// Every byte: start line, fields, blank line, body with its framing, trailers.
    pub bytes: Vec<u8>,
    /// Where the body starts (just past the blank line).
    head_len: usize,
}

impl RawMessage {
    /// The start line and the field lines, without the blank line.
    pub fn head(&self) -> String {
        let head = &self.bytes[..self.head_len];
        String::from_utf8_lossy(head.strip_suffix(b"\r\n\r\n").unwrap_or(head)).into_owned()
    }

    /// The request or status line.
    pub fn start_line(&self) -> String {
        self.head().lines().next().unwrap_or_default().to_string()
    }

    /// The header fields, spelled and ordered as on the wire, values trimmed.
    pub fn fields(&self) -> Vec<(String, String)> {
        parse_fields(self.head().lines().skip(1))
    }

    /// The first value of field `name` (any case).
    pub fn field(&self, name: &str) -> Option<String> {
        field(&self.fields(), name)
    }

    /// Whether the body is chunked (`Transfer-Encoding: chunked`).
    pub fn is_chunked(&self) -> bool {
        self.field("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    }

    /// The body without its chunk framing.
    pub fn body(&self) -> Vec<u8> {
        self.decode().0
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body()).into_owned()
    }

    /// The trailer fields of a chunked body, spelled and ordered as on the wire.
    pub fn trailers(&self) -> Vec<(String, String)> {
        self.decode().1
    }

    fn decode(&self) -> (Vec<u8>, Vec<(String, String)>) {
        let raw = &self.bytes[self.head_len..];
        if !self.is_chunked() {
            return (raw.to_vec(), Vec::new());
        }
        let mut body = Vec::new();
        let mut rest = raw;
        loop {
            let Some(end) = find(rest, b"\r\n") else {
                return (body, Vec::new());
            };
            let size_line = String::from_utf8_lossy(&rest[..end]);
            let size_hex = size_line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_hex, 16).unwrap_or(0);
            rest = &rest[end + 2..];
            if size == 0 {
                let trailer_text = String::from_utf8_lossy(rest);
                return (body, parse_fields(trailer_text.split("\r\n")));
            }
            let take = size.min(rest.len());
            body.extend_from_slice(&rest[..take]);
            rest = rest.get(take + 2..).unwrap_or_default();
        }
    }
}

/// The first value of `name` (any case) among `fields`.
fn field(fields: &[(String, String)], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

fn parse_fields<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (name, value) = l.split_once(':').unwrap_or((l, ""));
            (name.to_string(), value.trim().to_string())
        })
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// How the body of the message being read is delimited, beyond its own fields.
#[derive(Clone, Copy, Debug)]
pub enum Framing<'a> {
    /// A request: no body unless its fields announce one.
    Request,
    /// A response to a request with this method (HEAD and CONNECT change the rules).
    ResponseTo(&'a str),
}

/// Reads HTTP/1.1 messages from a stream, keeping the bytes of each exactly.
pub struct WireReader<R> {
    inner: R,
    buffer: Vec<u8>,
}

impl<R: Read> WireReader<R> {
    /// Reads from `inner`.
    pub fn new(inner: R) -> Self {
        WireReader {
            inner,
            buffer: Vec::new(),
        }
    }

    /// Reads one message; `Ok(None)` if the peer closed before its first byte.
    pub fn read_message(&mut self, framing: Framing<'_>) -> io::Result<Option<RawMessage>> {
        let mut bytes = Vec::new();
        loop {
            let line = self.read_line()?;
            if line.is_empty() {
                return if bytes.is_empty() {
                    Ok(None)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed inside a message head",
                    ))
                };
            }
            bytes.extend_from_slice(&line);
            if line == b"\r\n" && bytes.len() > 2 {
                break;
            }
            if line == b"\r\n" {
                // Tolerate a stray CRLF between messages (RFC 9112, 2.2).
                bytes.clear();
            }
        }
        let head_len = bytes.len();
        let mut message = RawMessage { bytes, head_len };
        let fields = message.fields();
        let status: Option<u16> = match framing {
            Framing::Request => None,
            Framing::ResponseTo(_) => message
                .start_line()
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok()),
        };
        let no_body = match (framing, status) {
            (Framing::ResponseTo(method), Some(status)) => {
                method.eq_ignore_ascii_case("HEAD")
                    || (100..200).contains(&status)
                    || status == 204
                    || status == 304
                    || (method.eq_ignore_ascii_case("CONNECT") && (200..300).contains(&status))
            }
            _ => false,
        };
        if no_body {
            return Ok(Some(message));
        }
        if message.is_chunked() {
            loop {
                let size_line = self.read_line()?;
                message.bytes.extend_from_slice(&size_line);
                let text = String::from_utf8_lossy(&size_line);
                let size_hex = text.split(';').next().unwrap_or_default().trim();
                let size = usize::from_str_radix(size_hex, 16).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("chunk size {text:?}"))
                })?;
                if size == 0 {
                    break;
                }
                let chunk = self.read_exact_bytes(size + 2)?;
                message.bytes.extend_from_slice(&chunk);
            }
            loop {
                let line = self.read_line()?;
                if line.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed inside the trailers",
                    ));
                }
                message.bytes.extend_from_slice(&line);
                if line == b"\r\n" {
                    break;
                }
            }
        } else if let Some(length) = field(&fields, "content-length") {
            let length: usize = length.parse().map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, format!("length {length:?}"))
            })?;
            let body = self.read_exact_bytes(length)?;
            message.bytes.extend_from_slice(&body);
        } else if matches!(framing, Framing::ResponseTo(_)) {
            // Delimited by the end of the connection.
            message.bytes.append(&mut self.buffer);
            self.inner.read_to_end(&mut message.bytes)?;
        }
        Ok(Some(message))
    }

    /// One line including its LF; empty at end of stream.
    fn read_line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                return Ok(self.buffer.drain(..=end).collect());
            }
            if !self.fill()? {
                return Ok(std::mem::take(&mut self.buffer));
            }
        }
    }

    fn read_exact_bytes(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buffer.len() < n {
            if !self.fill()? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("closed after {} of {n} body bytes", self.buffer.len()),
                ));
            }
        }
        Ok(self.buffer.drain(..n).collect())
    }

    /// Reads more bytes into the buffer; false at end of stream.
    fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.inner.read(&mut chunk)?;
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }
}

/// A plain TCP server that reads HTTP/1.1 requests, records each exactly as received, and
/// answers every one with the same raw bytes (connections are kept open unless the answer
/// says `Connection: close`).
pub struct RawUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    received: Arc<(Mutex<Vec<RawMessage>>, Condvar)>,
}

impl RawUpstream {
    /// Starts a server on a free loopback port that answers each request with `response`.
    pub fn start(response: impl Into<Vec<u8>>) -> RawUpstream {
        let response: Arc<[u8]> = response.into().into();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind raw upstream");
        let addr = listener.local_addr().unwrap();
        let received = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let record = Arc::clone(&received);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let record = Arc::clone(&record);
                let response = Arc::clone(&response);
                thread::spawn(move || serve_raw(stream, &record, &response));
            }
        });
        RawUpstream { addr, received }
    }

    /// Waits (10 s at most) for the first request and returns it.
    pub fn first_request(&self) -> RawMessage {
        let deadline = Instant::now() + READ_TIMEOUT;
        let (lock, grew) = &*self.received;
        let mut received = lock.lock().unwrap();
        loop {
            if let Some(first) = received.first() {
                return first.clone();
            }
            let now = Instant::now();
            assert!(now < deadline, "no request reached the raw upstream");
            received = grew.wait_timeout(received, deadline - now).unwrap().0;
        }
    }
}

fn serve_raw(stream: TcpStream, record: &(Mutex<Vec<RawMessage>>, Condvar), response: &[u8]) {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let closes = String::from_utf8_lossy(response)
        .to_ascii_lowercase()
        .contains("\r\nconnection: close\r\n");
    let mut reader = WireReader::new(stream);
    while let Ok(Some(request)) = reader.read_message(Framing::Request) {
        record.0.lock().unwrap().push(request);
        record.1.notify_all();
        if writer.write_all(response).is_err() || closes {
            return;
        }
    }
}

/// Writes `request` (raw bytes) to a new connection to `proxy` and reads one response, without
/// waiting for the connection to close. The response framing follows the request's method.
pub fn raw_request(proxy: SocketAddr, request: &[u8]) -> Result<RawMessage, String> {
    let mut stream = TcpStream::connect(proxy).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(request)
        .map_err(|e| format!("write: {e}"))?;
    let method = String::from_utf8_lossy(request)
        .split_whitespace()
        .next()
        .unwrap_or("GET")
        .to_string();
    WireReader::new(stream)
        .read_message(Framing::ResponseTo(&method))
        .map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                format!("no complete response within {READ_TIMEOUT:?}")
            }
            _ => format!("read the response: {e}"),
        })?
        .ok_or_else(|| "the proxy closed the connection without answering".to_string())
}
