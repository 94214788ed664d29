//! The HTTP/1 wire codec: parsing and writing message heads, choosing a body's framing
//! (RFC 9112 §6.3), decoding bodies frame by frame and encoding chunked ones.
//!
//! Pure and synchronous: it works on byte buffers and never does I/O. Header fields keep their
//! name case and order end to end: parsing copies them once into a [`Headers`], writing emits
//! them in the same order and spelling.

use std::{fmt, mem::MaybeUninit};

use bytes::{Buf, Bytes, BytesMut};
use interpose_plugin_abi::{flow::reason_phrase, Headers, HttpVersion};

/// The largest message head accepted: the request or status line plus every header field.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most header fields accepted in one head (and in one trailer section).
pub const MAX_HEADERS: usize = 256;
/// The longest chunk size line accepted: size, extensions and the CRLF.
pub const MAX_CHUNK_LINE_BYTES: usize = 4 * 1024;

/// A parsed request line and its header fields.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestHead {
    /// The method exactly as sent (methods are case-sensitive).
    pub method: String,
    /// The request target as sent: origin form, absolute form, authority form or `*`.
    pub target: String,
    /// [`HttpVersion::Http10`] or [`HttpVersion::Http11`].
    pub version: HttpVersion,
    /// The header fields in order, names spelled as sent.
    pub headers: Headers,
}

/// A parsed status line and its header fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseHead {
    /// [`HttpVersion::Http10`] or [`HttpVersion::Http11`].
    pub version: HttpVersion,
    /// The status code, 100 to 999.
    pub status: u16,
    /// The reason phrase as sent (possibly empty; bytes that are not UTF-8 become U+FFFD).
    pub reason: String,
    /// The header fields in order, names spelled as sent.
    pub headers: Headers,
}

/// Why a message head was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// The head is longer than [`MAX_HEAD_BYTES`].
    TooLarge,
    /// The head has more than [`MAX_HEADERS`] fields.
    TooManyFields,
    /// The message is not HTTP/1.0 or HTTP/1.1.
    UnsupportedVersion,
    /// The head is malformed or its framing is ambiguous; the text says how.
    Invalid(String),
}

impl HeadError {
    /// The status code to answer a client with: 431, 505 or 400.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::TooLarge | HeadError::TooManyFields => 431,
            HeadError::UnsupportedVersion => 505,
            HeadError::Invalid(_) => 400,
        }
    }

    fn invalid(why: &str) -> Self {
        HeadError::Invalid(why.to_owned())
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::TooLarge => write!(f, "message head is larger than {MAX_HEAD_BYTES} bytes"),
            HeadError::TooManyFields => {
                write!(f, "message head has more than {MAX_HEADERS} header fields")
            }
            HeadError::UnsupportedVersion => f.write_str("HTTP version is not 1.0 or 1.1"),
            HeadError::Invalid(why) => write!(f, "malformed message head: {why}"),
        }
    }
}

impl std::error::Error for HeadError {}

/// Parses a request head at the start of `buf`.
///
/// `Ok(None)`: the head is incomplete, read more (but once `buf` holds more than
/// [`MAX_HEAD_BYTES`] without a complete head: [`HeadError::TooLarge`]). On success the head's
/// bytes are removed from `buf`; what follows (body bytes, the next message) stays. Empty lines
/// before the request line are skipped (RFC 9112 §2.2).
pub fn parse_request_head(buf: &mut BytesMut) -> Result<Option<RequestHead>, HeadError> {
    let window = &buf[..buf.len().min(MAX_HEAD_BYTES)];
    let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let status = httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut request, window, &mut slots)
        .map_err(|e| request_error(e, window))?;
    let httparse::Status::Complete(len) = status else {
        return incomplete(buf.len());
    };
    let fields = &*request.headers;
    if fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("host"))
        .nth(1)
        .is_some()
    {
        return Err(HeadError::invalid("more than one Host field"));
    }
    let head = RequestHead {
        method: request.method.unwrap_or_default().to_owned(),
        target: request.path.unwrap_or_default().to_owned(),
        version: minor_version(request.version),
        headers: copy_fields(fields),
    };
    buf.advance(len);
    Ok(Some(head))
}

/// Parses a response head at the start of `buf`; like [`parse_request_head`].
pub fn parse_response_head(buf: &mut BytesMut) -> Result<Option<ResponseHead>, HeadError> {
    let window = &buf[..buf.len().min(MAX_HEAD_BYTES)];
    let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let status = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut response, window, &mut slots)
        .map_err(|e| response_error(e, window))?;
    let httparse::Status::Complete(len) = status else {
        return incomplete(buf.len());
    };
    let code = response.code.unwrap_or_default();
    if code < 100 {
        return Err(HeadError::invalid("status code below 100"));
    }
    let reason = match response.reason {
        Some(reason) if !reason.is_empty() => reason.to_owned(),
        // httparse reports a reason with obs-text (bytes ≥ 0x80) as empty: take it from the
        // line itself.
        _ => String::from_utf8_lossy(raw_reason(window)).into_owned(),
    };
    let head = ResponseHead {
        version: minor_version(response.version),
        status: code,
        reason,
        headers: copy_fields(response.headers),
    };
    buf.advance(len);
    Ok(Some(head))
}

fn incomplete<T>(buffered: usize) -> Result<Option<T>, HeadError> {
    if buffered > MAX_HEAD_BYTES {
        Err(HeadError::TooLarge)
    } else {
        Ok(None)
    }
}

fn minor_version(minor: Option<u8>) -> HttpVersion {
    match minor {
        Some(0) => HttpVersion::Http10,
        _ => HttpVersion::Http11,
    }
}

/// Copies parsed fields into one `Headers` buffer sized up front: two allocations in all.
fn copy_fields(fields: &[httparse::Header<'_>]) -> Headers {
    let bytes = fields.iter().map(|f| f.name.len() + f.value.len()).sum();
    let mut headers = Headers::with_capacity(fields.len(), bytes);
    for field in fields {
        headers.append(field.name, field.value);
    }
    headers
}

/// The first line of a head, without leading empty lines or its line ending; the available
/// bytes if the line is not complete yet.
fn first_line(buf: &[u8]) -> (&[u8], bool) {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let rest = &buf[start..];
    match rest.iter().position(|&b| b == b'\n') {
        Some(end) => (
            rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]),
            true,
        ),
        None => (rest, false),
    }
}

fn raw_reason(buf: &[u8]) -> &[u8] {
    // `HTTP/1.1 200 ` is 13 bytes; httparse has checked the line's shape already.
    first_line(buf).0.get(13..).unwrap_or_default()
}

fn request_error(error: httparse::Error, window: &[u8]) -> HeadError {
    let (line, complete) = first_line(window);
    match error {
        httparse::Error::Version => {
            let version = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
            version_error(version)
        }
        // `GET /` alone on its line is an HTTP/0.9 request.
        httparse::Error::Token if complete && is_http09_request_line(line) => {
            HeadError::UnsupportedVersion
        }
        other => parse_error(other),
    }
}

fn response_error(error: httparse::Error, window: &[u8]) -> HeadError {
    match error {
        httparse::Error::Version => version_error(first_line(window).0),
        other => parse_error(other),
    }
}

fn version_error(version: &[u8]) -> HeadError {
    if version.starts_with(b"HTTP/") {
        HeadError::UnsupportedVersion
    } else {
        HeadError::invalid("invalid HTTP version")
    }
}

fn is_http09_request_line(line: &[u8]) -> bool {
    let mut parts = line.split(|&b| b == b' ');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(method), Some(target), None)
            if is_token(method) && !target.is_empty() && !target.contains(&b'\t')
    )
}

fn parse_error(error: httparse::Error) -> HeadError {
    match error {
        httparse::Error::TooManyHeaders => HeadError::TooManyFields,
        httparse::Error::HeaderName => {
            HeadError::invalid("invalid header field name, space before a colon or line folding")
        }
        httparse::Error::HeaderValue => HeadError::invalid("invalid byte in a header field value"),
        httparse::Error::NewLine => HeadError::invalid("bare CR or malformed line ending"),
        httparse::Error::Status => HeadError::invalid("invalid status line"),
        httparse::Error::Token => HeadError::invalid("invalid request line"),
        httparse::Error::Version => HeadError::invalid("invalid HTTP version"),
    }
}

/// How a message's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding, possibly followed by trailer fields.
    Chunked,
    /// Everything until the peer closes the connection (responses only).
    UntilClose,
}

/// The framing of a request body, refusing the ambiguous framings that enable request
/// smuggling: Content-Length together with Transfer-Encoding, a Transfer-Encoding that does
/// not end in `chunked` or appears in HTTP/1.0, and conflicting Content-Length values.
pub fn request_framing(head: &RequestHead) -> Result<Framing, HeadError> {
    let headers = &head.headers;
    if headers.contains("transfer-encoding") {
        if headers.contains("content-length") {
            return Err(HeadError::invalid(
                "Content-Length together with Transfer-Encoding",
            ));
        }
        if head.version == HttpVersion::Http10 {
            return Err(HeadError::invalid(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        let codings = transfer_codings(headers);
        if !codings.ends_chunked || codings.chunked != 1 {
            return Err(HeadError::invalid(
                "Transfer-Encoding does not end in a single chunked",
            ));
        }
        return Ok(Framing::Chunked);
    }
    Ok(match content_length(headers)? {
        Some(n) => Framing::Length(n),
        None => Framing::Empty,
    })
}

/// The framing of a response body to a request with method `request_method`.
///
/// HEAD responses, 1xx, 204, 304 and 2xx answers to CONNECT have no body; a Transfer-Encoding
/// ending in `chunked` wins over Content-Length; any other Transfer-Encoding, or no framing
/// field at all, means the body runs until the server closes. Transfer-Encoding in an HTTP/1.0
/// response is refused: RFC 9112 §6.1 says such framing is faulty.
pub fn response_framing(request_method: &str, head: &ResponseHead) -> Result<Framing, HeadError> {
    let status = head.status;
    if request_method == "HEAD"
        || (100..200).contains(&status)
        || status == 204
        || status == 304
        || (request_method == "CONNECT" && (200..300).contains(&status))
    {
        return Ok(Framing::Empty);
    }
    let headers = &head.headers;
    if headers.contains("transfer-encoding") {
        if head.version == HttpVersion::Http10 {
            return Err(HeadError::invalid(
                "Transfer-Encoding in an HTTP/1.0 response",
            ));
        }
        return Ok(if transfer_codings(headers).ends_chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    Ok(match content_length(headers)? {
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
}

struct Codings {
    ends_chunked: bool,
    chunked: usize,
}

/// What the Transfer-Encoding fields say, read as one comma list.
fn transfer_codings(headers: &Headers) -> Codings {
    let mut codings = Codings {
        ends_chunked: false,
        chunked: 0,
    };
    for value in headers.get_all_bytes("transfer-encoding") {
        for coding in list_items(value) {
            let chunked = coding.eq_ignore_ascii_case(b"chunked");
            codings.ends_chunked = chunked;
            codings.chunked += usize::from(chunked);
        }
    }
    codings
}

/// The Content-Length, if any: every value (separate fields or a comma list) must be digits
/// only, and all must be equal.
fn content_length(headers: &Headers) -> Result<Option<u64>, HeadError> {
    let mut length = None;
    for value in headers.get_all_bytes("content-length") {
        for item in value.split(|&b| b == b',') {
            let n = parse_decimal(trim_ows(item))
                .ok_or_else(|| HeadError::invalid("invalid Content-Length"))?;
            if length.is_some_and(|m| m != n) {
                return Err(HeadError::invalid("conflicting Content-Length values"));
            }
            length = Some(n);
        }
    }
    Ok(length)
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// The non-empty items of a comma-separated field value, trimmed.
fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|item| !item.is_empty())
}

/// One step of a body: data, trailer fields, or its end.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// Body bytes, split off the read buffer without copying.
    Data(Bytes),
    /// The trailer fields of a chunked body (only when there is at least one).
    Trailers(Headers),
    /// The body is complete.
    End,
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The peer closed the connection before the body was complete.
    Incomplete,
    /// The chunked coding is malformed; the text says how.
    InvalidChunk(String),
    /// A chunk size line is longer than [`MAX_CHUNK_LINE_BYTES`], or the trailer section
    /// longer than [`MAX_HEAD_BYTES`] or [`MAX_HEADERS`] fields.
    TooLarge,
}

impl BodyError {
    fn invalid(why: &str) -> Self {
        BodyError::InvalidChunk(why.to_owned())
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Incomplete => f.write_str("connection closed before the body was complete"),
            BodyError::InvalidChunk(why) => write!(f, "malformed chunked body: {why}"),
            BodyError::TooLarge => f.write_str("chunk size line or trailer section too large"),
        }
    }
}

impl std::error::Error for BodyError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Length framing with this many bytes to come.
    Length(u64),
    UntilClose,
    /// Before a chunk size line.
    ChunkSize,
    /// Inside a chunk with this many data bytes to come.
    ChunkData(u64),
    /// After a chunk's data, before its CRLF.
    ChunkDataEnd,
    /// After the last chunk, before the trailer section.
    Trailers,
    /// The body is complete; `End` not returned yet.
    Ending,
    /// `End` was returned.
    Finished,
}

/// Decodes one message body from a read buffer, frame by frame, as its bytes arrive.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    framing: Framing,
    state: State,
}

impl BodyDecoder {
    /// A decoder for a body with this framing.
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Ending,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        BodyDecoder { framing, state }
    }

    /// The next frame from `buf`.
    ///
    /// Data is split off `buf` without copying and never goes beyond the body: the bytes after
    /// it (a pipelined request) stay in `buf`. A data frame holds whatever part of the body is
    /// buffered, without waiting for a whole chunk. `Ok(None)`: more bytes are needed. `eof`:
    /// the peer closed and no more bytes will come, so an `UntilClose` body ends and an
    /// unfinished `Length` or `Chunked` body is [`BodyError::Incomplete`] (once the buffered
    /// bytes have been handed out). After [`Frame::End`], every call returns `End` again.
    pub fn decode(&mut self, buf: &mut BytesMut, eof: bool) -> Result<Option<Frame>, BodyError> {
        loop {
            match self.state {
                State::Length(left) => {
                    let Some(data) = take(buf, left) else {
                        return need_more(eof);
                    };
                    let left = left - data.len() as u64;
                    self.state = if left == 0 {
                        State::Ending
                    } else {
                        State::Length(left)
                    };
                    return Ok(Some(Frame::Data(data)));
                }
                State::UntilClose => {
                    if !buf.is_empty() {
                        return Ok(Some(Frame::Data(buf.split().freeze())));
                    }
                    if !eof {
                        return Ok(None);
                    }
                    self.state = State::Ending;
                }
                State::ChunkSize => match parse_chunk_line(buf)? {
                    Some((line, 0)) => {
                        buf.advance(line);
                        self.state = State::Trailers;
                    }
                    Some((line, size)) => {
                        buf.advance(line);
                        self.state = State::ChunkData(size);
                    }
                    None => return need_more(eof),
                },
                State::ChunkData(left) => {
                    let Some(data) = take(buf, left) else {
                        return need_more(eof);
                    };
                    let left = left - data.len() as u64;
                    self.state = if left == 0 {
                        State::ChunkDataEnd
                    } else {
                        State::ChunkData(left)
                    };
                    return Ok(Some(Frame::Data(data)));
                }
                State::ChunkDataEnd => match &buf[..] {
                    [b'\r', b'\n', ..] => {
                        buf.advance(2);
                        self.state = State::ChunkSize;
                    }
                    [] | [b'\r'] => return need_more(eof),
                    _ => return Err(BodyError::invalid("no CRLF after chunk data")),
                },
                State::Trailers => {
                    let Some((len, trailers)) = parse_trailers(buf)? else {
                        return need_more(eof);
                    };
                    buf.advance(len);
                    self.state = State::Ending;
                    if !trailers.is_empty() {
                        return Ok(Some(Frame::Trailers(trailers)));
                    }
                }
                State::Ending | State::Finished => {
                    self.state = State::Finished;
                    return Ok(Some(Frame::End));
                }
            }
        }
    }

    /// Whether [`Frame::End`] was returned.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// For `Length` framing, the bytes still to come; else `None`.
    pub fn remaining(&self) -> Option<u64> {
        match (self.framing, self.state) {
            (Framing::Length(_), State::Length(left)) => Some(left),
            (Framing::Length(_), _) => Some(0),
            _ => None,
        }
    }
}

fn need_more(eof: bool) -> Result<Option<Frame>, BodyError> {
    if eof {
        Err(BodyError::Incomplete)
    } else {
        Ok(None)
    }
}

/// Splits off up to `limit` buffered bytes without copying; `None` if nothing is buffered.
fn take(buf: &mut BytesMut, limit: u64) -> Option<Bytes> {
    if buf.is_empty() {
        return None;
    }
    let n = usize::try_from(limit).map_or(buf.len(), |limit| limit.min(buf.len()));
    Some(buf.split_to(n).freeze())
}

/// Where the chunk size line parser is (RFC 9112 §7.1.1:
/// `chunk-size *( BWS ";" BWS ext-name [ BWS "=" BWS ( token / quoted-string ) ] ) CRLF`).
#[derive(Clone, Copy)]
enum Line {
    Size,
    /// Whitespace after the size: only `;` may follow.
    SizeSpace,
    /// After `;`.
    ExtStart,
    ExtName,
    /// Whitespace after an extension name: `=` or `;` must follow.
    NameSpace,
    /// After `=`.
    ValueStart,
    Token,
    Quoted,
    QuotedEscape,
    QuotedEnd,
    /// Whitespace after a value: only `;` may follow.
    ValueSpace,
    Cr,
}

/// Parses a chunk size line at the start of `buf`: `Some((line length, chunk size))`, or
/// `None` if the line is not complete yet. Extensions are checked and ignored.
fn parse_chunk_line(buf: &[u8]) -> Result<Option<(usize, u64)>, BodyError> {
    let mut size = 0u64;
    let mut digits = 0;
    let mut state = Line::Size;
    for (i, &b) in buf.iter().take(MAX_CHUNK_LINE_BYTES).enumerate() {
        let space = b == b' ' || b == b'\t';
        state = match state {
            Line::Size if b.is_ascii_hexdigit() => {
                digits += 1;
                if digits > 16 {
                    return Err(BodyError::invalid("chunk size has more than 16 hex digits"));
                }
                // At most 16 digits, so this never overflows.
                size = size << 4 | u64::from(hex_value(b));
                Line::Size
            }
            Line::Size if digits == 0 => {
                return Err(BodyError::invalid("chunk size is not a hex number"));
            }
            Line::Size | Line::SizeSpace if space => Line::SizeSpace,
            Line::ExtStart | Line::NameSpace | Line::ValueStart if space => state,
            Line::ExtName | Line::NameSpace if b == b'=' => Line::ValueStart,
            Line::ExtName if space => Line::NameSpace,
            Line::Token | Line::QuotedEnd | Line::ValueSpace if space => Line::ValueSpace,
            Line::Size
            | Line::SizeSpace
            | Line::ExtName
            | Line::NameSpace
            | Line::Token
            | Line::QuotedEnd
            | Line::ValueSpace
                if b == b';' =>
            {
                Line::ExtStart
            }
            Line::Size | Line::ExtName | Line::Token | Line::QuotedEnd if b == b'\r' => Line::Cr,
            Line::ExtStart | Line::ExtName if is_tchar(b) => Line::ExtName,
            Line::ValueStart | Line::Token if is_tchar(b) => Line::Token,
            Line::ValueStart if b == b'"' => Line::Quoted,
            Line::Quoted if b == b'"' => Line::QuotedEnd,
            Line::Quoted if b == b'\\' => Line::QuotedEscape,
            Line::Quoted | Line::QuotedEscape
                if b == b'\t' || b == b' ' || (0x21..0x7f).contains(&b) || b >= 0x80 =>
            {
                Line::Quoted
            }
            Line::Cr if b == b'\n' => return Ok(Some((i + 1, size))),
            Line::Cr => return Err(BodyError::invalid("bare CR in a chunk size line")),
            Line::Size if b == b'\n' => {
                return Err(BodyError::invalid("chunk size line ends in a bare LF"));
            }
            Line::Size => return Err(BodyError::invalid("chunk size is not a hex number")),
            Line::SizeSpace => {
                return Err(BodyError::invalid("whitespace after a chunk size"));
            }
            _ => return Err(BodyError::invalid("malformed chunk extension")),
        };
    }
    if buf.len() >= MAX_CHUNK_LINE_BYTES {
        Err(BodyError::TooLarge)
    } else {
        Ok(None)
    }
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// Parses the trailer section (fields, then an empty line) at the start of `buf`.
fn parse_trailers(buf: &[u8]) -> Result<Option<(usize, Headers)>, BodyError> {
    // The common case, no trailer fields, without the field array below.
    if buf.starts_with(b"\r\n") {
        return Ok(Some((2, Headers::new())));
    }
    let window = &buf[..buf.len().min(MAX_HEAD_BYTES)];
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::parse_headers(window, &mut slots) {
        Ok(httparse::Status::Complete((len, fields))) => Ok(Some((len, copy_fields(fields)))),
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => Err(BodyError::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::invalid("malformed trailer section")),
    }
}

/// How [`write_request_head`] and [`write_response_head`] frame the message they write.
#[derive(Debug, Clone, Copy)]
pub struct HeadOptions<'a> {
    /// The framing the body will be sent with; decides the Content-Length and
    /// Transfer-Encoding fields written.
    pub framing: Framing,
    /// Keep the Connection and Upgrade fields as given (Upgrade requests, 101 responses).
    pub upgrade: bool,
    /// A `connection` field to append, such as `"close"` or `"keep-alive"` (not added when
    /// `upgrade` keeps the original Connection field).
    pub connection: Option<&'static str>,
    /// A field written in place of the message's fields of that name (the proxy's own
    /// credentials, `upstream_auth`), leaving the message itself untouched.
    pub replace: Option<(&'a str, &'a str)>,
}

impl HeadOptions<'_> {
    /// Options for `framing`, no upgrade, no Connection field, no replaced field.
    pub const fn new(framing: Framing) -> Self {
        HeadOptions {
            framing,
            upgrade: false,
            connection: None,
            replace: None,
        }
    }
}

/// Writes a request head for sending: the request line, the fields in order with their
/// spelling, minus hop-by-hop fields, with framing fields chosen by `opts` (see
/// [`HeadOptions`]; `Length(0)` adds no Content-Length to a request that had none).
///
/// Version `Http10` writes `HTTP/1.0`, any other `HTTP/1.1`. CR, LF and NUL in the line or in
/// field values are written as spaces (RFC 9110 §5.5) and fields whose name is not a token are
/// left out, so nothing an addon sets can split the message.
pub fn write_request_head(
    out: &mut BytesMut,
    method: &str,
    target: &str,
    version: HttpVersion,
    headers: &Headers,
    opts: HeadOptions,
) {
    out.reserve(method.len() + target.len() + 12 + fields_size_hint(headers));
    put_clean(out, method.as_bytes());
    out.extend_from_slice(b" ");
    put_clean(out, target.as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(version_bytes(version));
    out.extend_from_slice(b"\r\n");
    write_fields(out, headers, opts, true);
    out.extend_from_slice(b"\r\n");
}

/// Writes a response head for sending; like [`write_request_head`]. An empty `reason` writes
/// the status's canonical phrase ([`reason_phrase`]).
pub fn write_response_head(
    out: &mut BytesMut,
    version: HttpVersion,
    status: u16,
    reason: &str,
    headers: &Headers,
    opts: HeadOptions,
) {
    let reason = if reason.is_empty() {
        reason_phrase(status)
    } else {
        reason
    };
    out.reserve(reason.len() + 16 + fields_size_hint(headers));
    out.extend_from_slice(version_bytes(version));
    out.extend_from_slice(b" ");
    put_decimal(out, u64::from(status));
    out.extend_from_slice(b" ");
    put_clean(out, reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    write_fields(out, headers, opts, false);
    out.extend_from_slice(b"\r\n");
}

/// Writes the size line of a chunk of `len` bytes: `{len:x}\r\n`. The data follows, then
/// `\r\n`. `len` must not be 0: that is the last chunk, [`write_last_chunk`].
pub fn write_chunk_size(out: &mut BytesMut, len: usize) {
    debug_assert_ne!(len, 0, "a zero-size chunk ends the body");
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut n = len;
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// Writes the last chunk, the trailer fields and the final empty line: `0\r\n` fields `\r\n`.
///
/// Hop-by-hop fields and those that must not be trailers here (Content-Length,
/// Transfer-Encoding, Host, Trailer) are left out.
pub fn write_last_chunk(out: &mut BytesMut, trailers: Option<&Headers>) {
    out.extend_from_slice(b"0\r\n");
    if let Some(trailers) = trailers {
        out.reserve(fields_size_hint(trailers) + 2);
        let named_by_connection = trailers.contains("connection");
        for (name, value) in trailers.iter() {
            let dropped = field_kind(name) != FieldKind::Other
                || name.eq_ignore_ascii_case("host")
                || (named_by_connection && connection_has(trailers, name));
            if !dropped {
                put_field(out, name, value);
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Whether `token` is one of the options of any Connection field (comma lists, any case).
pub fn connection_has(headers: &Headers, token: &str) -> bool {
    headers
        .get_all_bytes("connection")
        .flat_map(list_items)
        .any(|item| item.eq_ignore_ascii_case(token.as_bytes()))
}

/// Whether the connection closes after this message: a `close` option, or HTTP/1.0 without
/// `keep-alive`.
pub fn wants_close(version: HttpVersion, headers: &Headers) -> bool {
    connection_has(headers, "close")
        || (version == HttpVersion::Http10 && !connection_has(headers, "keep-alive"))
}

/// Whether the message asks for (or agrees to) a protocol upgrade: Connection has `upgrade`
/// and an Upgrade field exists.
pub fn is_upgrade(headers: &Headers) -> bool {
    connection_has(headers, "upgrade") && headers.contains("upgrade")
}

fn version_bytes(version: HttpVersion) -> &'static [u8] {
    match version {
        HttpVersion::Http10 => b"HTTP/1.0",
        _ => b"HTTP/1.1",
    }
}

/// Fields that are never forwarded as they are: framing and hop-by-hop fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    ContentLength,
    TransferEncoding,
    Trailer,
    Connection,
    Upgrade,
    /// Keep-Alive, Proxy-Connection, TE: always dropped.
    HopByHop,
    Other,
}

fn field_kind(name: &str) -> FieldKind {
    let is = |known: &str| name.eq_ignore_ascii_case(known);
    if is("content-length") {
        FieldKind::ContentLength
    } else if is("transfer-encoding") {
        FieldKind::TransferEncoding
    } else if is("connection") {
        FieldKind::Connection
    } else if is("upgrade") {
        FieldKind::Upgrade
    } else if is("trailer") {
        FieldKind::Trailer
    } else if is("keep-alive") || is("proxy-connection") || is("te") {
        FieldKind::HopByHop
    } else {
        FieldKind::Other
    }
}

fn write_fields(out: &mut BytesMut, headers: &Headers, opts: HeadOptions<'_>, request: bool) {
    let has_connection = headers.contains("connection");
    let replaced = |name: &str| {
        opts.replace
            .is_some_and(|(r, _)| r.eq_ignore_ascii_case(name))
    };
    let mut wrote_length = false;
    let mut wrote_chunked = false;
    for (name, value) in headers.iter() {
        match (field_kind(name), opts.framing) {
            (FieldKind::ContentLength, Framing::Length(n)) if !wrote_length => {
                put_name(out, name);
                put_decimal(out, n);
                out.extend_from_slice(b"\r\n");
                wrote_length = true;
            }
            (FieldKind::TransferEncoding, Framing::Chunked) if !wrote_chunked => {
                put_field(out, name, b"chunked");
                wrote_chunked = true;
            }
            (FieldKind::ContentLength | FieldKind::TransferEncoding, Framing::Empty)
            | (FieldKind::Trailer, Framing::Chunked) => put_field(out, name, value),
            (FieldKind::Connection | FieldKind::Upgrade, _) if opts.upgrade => {
                put_field(out, name, value)
            }
            (FieldKind::Other, _)
                if !(replaced(name) || has_connection && connection_has(headers, name)) =>
            {
                put_field(out, name, value)
            }
            _ => {}
        }
    }
    match opts.framing {
        // A bodiless request (a GET) that had no Content-Length does not get one.
        Framing::Length(0) if request => {}
        Framing::Length(n) if !wrote_length => {
            out.extend_from_slice(b"content-length: ");
            put_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked if !wrote_chunked => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        _ => {}
    }
    if let Some((name, value)) = opts.replace {
        put_field(out, name, value.as_bytes());
    }
    if let Some(connection) = opts.connection {
        if !(opts.upgrade && has_connection) {
            put_field(out, "connection", connection.as_bytes());
        }
    }
}

fn fields_size_hint(headers: &Headers) -> usize {
    headers.byte_len() + 4 * headers.len() + 64
}

fn put_name(out: &mut BytesMut, name: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
}

/// Writes one field line; a field whose name is not a token is left out.
fn put_field(out: &mut BytesMut, name: &str, value: &[u8]) {
    if !is_token(name.as_bytes()) {
        return;
    }
    put_name(out, name);
    put_clean(out, value);
    out.extend_from_slice(b"\r\n");
}

/// Writes `bytes` with control characters (CR, LF, NUL and the others RFC 9110 §5.5 leaves
/// out of a field value; horizontal tab is allowed) replaced by spaces.
fn put_clean(out: &mut BytesMut, bytes: &[u8]) {
    let unsafe_byte = |b: &u8| (*b < 0x20 && *b != b'\t') || *b == 0x7f;
    if !bytes.iter().any(unsafe_byte) {
        out.extend_from_slice(bytes);
        return;
    }
    out.extend(bytes.iter().map(|b| if unsafe_byte(b) { b' ' } else { *b }));
}

fn put_decimal(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|&b| is_tchar(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().copied().collect()
    }

    fn request(bytes: &[u8]) -> Result<Option<RequestHead>, HeadError> {
        parse_request_head(&mut BytesMut::from(bytes))
    }

    fn response(bytes: &[u8]) -> Result<Option<ResponseHead>, HeadError> {
        parse_response_head(&mut BytesMut::from(bytes))
    }

    fn request_head(bytes: &[u8]) -> RequestHead {
        request(bytes).unwrap().expect("complete head")
    }

    fn response_head(bytes: &[u8]) -> ResponseHead {
        response(bytes).unwrap().expect("complete head")
    }

    fn invalid(result: Result<Option<RequestHead>, HeadError>) -> bool {
        matches!(result, Err(HeadError::Invalid(_)))
    }

    fn pairs(headers: &Headers) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(n, v)| (n.to_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    }

    fn written_request(method: &str, headers: &Headers, opts: HeadOptions) -> String {
        let mut out = BytesMut::new();
        write_request_head(&mut out, method, "/", HttpVersion::Http11, headers, opts);
        String::from_utf8(out.to_vec()).unwrap()
    }

    fn written_response(status: u16, headers: &Headers, opts: HeadOptions) -> String {
        let mut out = BytesMut::new();
        write_response_head(&mut out, HttpVersion::Http11, status, "", headers, opts);
        String::from_utf8(out.to_vec()).unwrap()
    }

    /// Everything a decoder yields: body bytes, trailers, whether it ended.
    #[derive(Debug, Default, PartialEq)]
    struct Decoded {
        data: Vec<u8>,
        trailers: Option<Headers>,
        ended: bool,
    }

    /// Feeds `pieces` one after another, decoding as far as possible after each.
    fn decode_pieces(
        framing: Framing,
        pieces: &[&[u8]],
        eof: bool,
    ) -> Result<(Decoded, BytesMut), BodyError> {
        let mut decoder = BodyDecoder::new(framing);
        let mut buf = BytesMut::new();
        let mut decoded = Decoded::default();
        for (i, piece) in pieces.iter().enumerate() {
            buf.extend_from_slice(piece);
            let last = i + 1 == pieces.len();
            drain(&mut decoder, &mut buf, eof && last, &mut decoded)?;
        }
        if pieces.is_empty() {
            drain(&mut decoder, &mut buf, eof, &mut decoded)?;
        }
        Ok((decoded, buf))
    }

    fn drain(
        decoder: &mut BodyDecoder,
        buf: &mut BytesMut,
        eof: bool,
        decoded: &mut Decoded,
    ) -> Result<(), BodyError> {
        while !decoded.ended {
            match decoder.decode(buf, eof)? {
                None => break,
                Some(Frame::Data(data)) => {
                    assert!(!data.is_empty(), "no empty data frames");
                    decoded.data.extend_from_slice(&data);
                }
                Some(Frame::Trailers(trailers)) => {
                    assert!(decoded.trailers.is_none(), "trailers once");
                    assert!(!trailers.is_empty(), "no empty trailers frame");
                    decoded.trailers = Some(trailers);
                }
                Some(Frame::End) => {
                    decoded.ended = true;
                    assert!(decoder.is_finished());
                }
            }
        }
        Ok(())
    }

    fn decode_all(
        framing: Framing,
        input: &[u8],
        eof: bool,
    ) -> Result<(Decoded, BytesMut), BodyError> {
        decode_pieces(framing, &[input], eof)
    }

    fn chunk_error(input: &[u8]) -> BodyError {
        decode_all(Framing::Chunked, input, false).unwrap_err()
    }

    fn is_invalid_chunk(input: &[u8]) -> bool {
        matches!(chunk_error(input), BodyError::InvalidChunk(_))
    }

    // ---- request heads ----

    #[test]
    fn request_head_keeps_name_case_order_and_duplicates() {
        let mut buf = BytesMut::from(
            &b"POST /upload?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Mixed-Case: a\r\n\
               x-mixed-case: b\r\nCONTENT-length: 3\r\nEmpty:\r\n\r\nabc"[..],
        );
        let head = parse_request_head(&mut buf).unwrap().unwrap();
        assert_eq!(head.method, "POST");
        assert_eq!(head.target, "/upload?x=1");
        assert_eq!(head.version, HttpVersion::Http11);
        assert_eq!(
            pairs(&head.headers),
            [
                ("Host", "example.com"),
                ("X-Mixed-Case", "a"),
                ("x-mixed-case", "b"),
                ("CONTENT-length", "3"),
                ("Empty", ""),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
        assert_eq!(&buf[..], b"abc", "only the head is consumed");
    }

    #[test]
    fn request_head_http10_and_optional_whitespace() {
        let head = request_head(b"GET http://a.example/ HTTP/1.0\r\nX:  \t v \t\r\n\r\n");
        assert_eq!(head.version, HttpVersion::Http10);
        assert_eq!(head.target, "http://a.example/");
        assert_eq!(head.headers.get("x"), Some("v"));
    }

    #[test]
    fn request_head_split_into_single_bytes() {
        let input =
            b"PUT /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nX-Mixed-Case: yes\r\n\r\nhi";
        let mut buf = BytesMut::new();
        for (i, byte) in input.iter().enumerate() {
            buf.extend_from_slice(&[*byte]);
            match parse_request_head(&mut buf).unwrap() {
                None => assert!(i < input.len() - 3, "incomplete until the empty line"),
                Some(head) => {
                    assert_eq!(i, input.len() - 3, "complete exactly at the empty line");
                    assert_eq!(head.headers.get("x-mixed-case"), Some("yes"));
                    assert!(buf.is_empty());
                    return;
                }
            }
        }
        panic!("head never completed");
    }

    #[test]
    fn response_head_split_into_single_bytes() {
        let input = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        let mut buf = BytesMut::new();
        let mut head = None;
        for byte in input {
            assert!(head.is_none(), "complete only at the end");
            buf.extend_from_slice(&[*byte]);
            head = parse_response_head(&mut buf).unwrap();
        }
        let head = head.unwrap();
        assert_eq!((head.status, head.reason.as_str()), (404, "Not Found"));
        assert!(buf.is_empty());
    }

    #[test]
    fn pipelined_requests_in_one_buffer() {
        let mut buf = BytesMut::from(
            &b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n\
               POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
               POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
               GET /4 HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        );
        let mut seen = Vec::new();
        while let Some(head) = parse_request_head(&mut buf).unwrap() {
            let mut decoder = BodyDecoder::new(request_framing(&head).unwrap());
            let mut body = Vec::new();
            loop {
                match decoder.decode(&mut buf, false).unwrap() {
                    Some(Frame::Data(data)) => body.extend_from_slice(&data),
                    Some(Frame::End) => break,
                    other => panic!("unexpected {other:?}"),
                }
            }
            seen.push((head.target, String::from_utf8(body).unwrap()));
        }
        assert!(buf.is_empty());
        let expected = [("/1", ""), ("/2", "hello"), ("/3", "abc"), ("/4", "")];
        assert_eq!(seen, expected.map(|(t, b)| (t.to_owned(), b.to_owned())));
    }

    #[test]
    fn empty_lines_before_the_request_line_are_skipped() {
        let mut buf = BytesMut::from(&b"\r\n\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\nrest"[..]);
        let head = parse_request_head(&mut buf).unwrap().unwrap();
        assert_eq!(head.method, "GET");
        assert_eq!(&buf[..], b"rest");
        assert_eq!(request(b"\r\n\r\n").unwrap(), None);
    }

    #[test]
    fn incomplete_heads_ask_for_more() {
        assert_eq!(request(b"").unwrap(), None);
        assert_eq!(request(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap(), None);
        assert_eq!(response(b"HTTP/1.1 200 OK\r\n").unwrap(), None);
    }

    #[test]
    fn unsupported_request_versions() {
        for line in [
            &b"GET / HTTP/2.0\r\n\r\n"[..],
            b"GET / HTTP/1.2\r\n\r\n",
            b"GET / HTTP/0.9\r\n\r\n",
            b"GET /\r\n",
            b"GET /index.html\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            assert_eq!(
                request(line),
                Err(HeadError::UnsupportedVersion),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        assert!(invalid(request(b"GET / FTP/1.1\r\n\r\n")));
        assert!(invalid(request(b"GET / http/1.1\r\n\r\n")));
        assert!(invalid(request(b"GET / HTTP/1.1x\r\n\r\n")));
    }

    #[test]
    fn malformed_request_heads_are_refused() {
        let cases: &[&[u8]] = &[
            // obs-fold
            b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n",
            // NUL
            b"GET / HTTP/1.1\r\nX: a\0b\r\n\r\n",
            b"GET / HTTP/1.1\r\nX\0: a\r\n\r\n",
            // bare CR
            b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\rX: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\r\n\rY: b\r\n\r\n",
            // whitespace before the colon
            b"GET / HTTP/1.1\r\nX : a\r\n\r\n",
            b"GET / HTTP/1.1\r\nX\t: a\r\n\r\n",
            // whitespace before the first field
            b"GET / HTTP/1.1\r\n X: a\r\n\r\n",
            // invalid tokens
            b"GET / HTTP/1.1\r\nX(y): a\r\n\r\n",
            b"GET / HTTP/1.1\r\n: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 \r\n\r\n",
            b" GET / HTTP/1.1\r\n\r\n",
            b"GET /a\x7fb HTTP/1.1\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
            // two Host fields
            b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHOST: a\r\nX: y\r\nHost: b\r\n\r\n",
        ];
        for case in cases {
            let result = request(case);
            assert!(
                invalid(result.clone()),
                "{:?} gave {result:?}",
                String::from_utf8_lossy(case)
            );
        }
        assert!(request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
        assert!(request(b"GET / HTTP/1.1\r\n\r\n").is_ok());
    }

    #[test]
    fn obs_text_values_are_kept_as_bytes() {
        let head = request_head(b"GET / HTTP/1.1\r\nX: caf\xc3\xa9 \xff\r\n\r\n");
        assert_eq!(head.headers.get_bytes("x"), Some(&b"caf\xc3\xa9 \xff"[..]));
    }

    fn head_with_fields(count: usize) -> Vec<u8> {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..count {
            head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        head
    }

    #[test]
    fn field_count_limit() {
        let head = request_head(&head_with_fields(MAX_HEADERS));
        assert_eq!(head.headers.len(), MAX_HEADERS);
        assert_eq!(
            request(&head_with_fields(MAX_HEADERS + 1)),
            Err(HeadError::TooManyFields)
        );
        let mut response_bytes = b"HTTP/1.1 200 OK\r\n".to_vec();
        response_bytes.extend_from_slice(&head_with_fields(MAX_HEADERS + 1)[16..]);
        assert_eq!(response(&response_bytes), Err(HeadError::TooManyFields));
    }

    /// A request head of exactly `len` bytes.
    fn head_of_size(len: usize) -> Vec<u8> {
        let start = b"GET / HTTP/1.1\r\nX-Pad: ";
        let mut head = start.to_vec();
        head.resize(len - 4, b'a');
        head.extend_from_slice(b"\r\n\r\n");
        assert_eq!(head.len(), len);
        head
    }

    #[test]
    fn head_size_limit() {
        let head = request_head(&head_of_size(MAX_HEAD_BYTES));
        assert_eq!(head.headers.len(), 1);
        assert_eq!(
            request(&head_of_size(MAX_HEAD_BYTES + 1)),
            Err(HeadError::TooLarge)
        );

        // Incomplete: fine up to the limit, too large beyond it.
        let unfinished = &head_of_size(MAX_HEAD_BYTES + 10)[..MAX_HEAD_BYTES];
        assert_eq!(request(unfinished), Ok(None));
        let mut longer = unfinished.to_vec();
        longer.push(b'a');
        assert_eq!(request(&longer), Err(HeadError::TooLarge));

        let mut huge_response = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        huge_response.resize(MAX_HEAD_BYTES + 1, b'a');
        assert_eq!(response(&huge_response), Err(HeadError::TooLarge));
    }

    #[test]
    fn head_error_statuses_and_messages() {
        assert_eq!(HeadError::TooLarge.status(), 431);
        assert_eq!(HeadError::TooManyFields.status(), 431);
        assert_eq!(HeadError::UnsupportedVersion.status(), 505);
        assert_eq!(HeadError::invalid("x").status(), 400);
        for error in [
            HeadError::TooLarge,
            HeadError::TooManyFields,
            HeadError::UnsupportedVersion,
            HeadError::invalid("bad"),
        ] {
            assert!(!error.to_string().is_empty());
        }
        let boxed: Box<dyn std::error::Error> = Box::new(BodyError::Incomplete);
        assert!(!boxed.to_string().is_empty());
    }

    // ---- response heads ----

    #[test]
    fn response_head_status_reason_and_fields() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.0 201 Created Just Now\r\nX-Mixed-Case: 1\r\nset-cookie: a\r\nSet-Cookie: b\r\n\r\nbody"[..],
        );
        let head = parse_response_head(&mut buf).unwrap().unwrap();
        assert_eq!(head.version, HttpVersion::Http10);
        assert_eq!(head.status, 201);
        assert_eq!(head.reason, "Created Just Now");
        assert_eq!(head.headers.get_all("SET-COOKIE").count(), 2);
        assert_eq!(head.headers.iter().next().unwrap().0, "X-Mixed-Case");
        assert_eq!(&buf[..], b"body");
    }

    #[test]
    fn response_reason_may_be_empty_or_not_utf8() {
        assert_eq!(response_head(b"HTTP/1.1 200\r\n\r\n").reason, "");
        assert_eq!(response_head(b"HTTP/1.1 200 \r\n\r\n").reason, "");
        assert_eq!(response_head(b"HTTP/1.1 200 \t\r\n\r\n").reason, "\t");
        assert_eq!(
            response_head(b"HTTP/1.1 200 Gr\xfc\xdf Gott\r\n\r\n").reason,
            "Gr\u{fffd}\u{fffd} Gott"
        );
        assert_eq!(
            response_head(b"\r\nHTTP/1.1 200 d\xc3\xa9j\xc3\xa0\r\n\r\n").reason,
            "déjà"
        );
        assert_eq!(response_head(b"HTTP/1.1 999 Custom\n\n").status, 999);
    }

    #[test]
    fn malformed_response_heads_are_refused() {
        for case in [
            &b"HTTP/1.1 099 Low\r\n\r\n"[..],
            b"HTTP/1.1 000\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1  200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\rX\r\n\r\n",
            b"HTTP/1.1 200 O\0K\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\0\r\n\r\n",
            b"ICY 200 OK\r\n\r\n",
        ] {
            let result = response(case);
            assert!(
                matches!(result, Err(HeadError::Invalid(_))),
                "{:?} gave {result:?}",
                String::from_utf8_lossy(case)
            );
        }
        assert_eq!(
            response(b"HTTP/2 200 OK\r\n\r\n"),
            Err(HeadError::UnsupportedVersion)
        );
        assert_eq!(
            response(b"HTTP/2.0 200\r\n\r\n"),
            Err(HeadError::UnsupportedVersion)
        );
        assert_eq!(
            response(b"HTTP/0.9 200\r\n\r\n"),
            Err(HeadError::UnsupportedVersion)
        );
    }

    // ---- framing ----

    fn request_with(version: &str, extra: &str) -> RequestHead {
        request_head(format!("POST / {version}\r\nHost: a\r\n{extra}\r\n").as_bytes())
    }

    fn req_framing(extra: &str) -> Result<Framing, HeadError> {
        request_framing(&request_with("HTTP/1.1", extra))
    }

    #[test]
    fn request_framing_rules() {
        assert_eq!(req_framing(""), Ok(Framing::Empty));
        assert_eq!(
            req_framing("Content-Length: 42\r\n"),
            Ok(Framing::Length(42))
        );
        assert_eq!(req_framing("content-length: 0\r\n"), Ok(Framing::Length(0)));
        assert_eq!(
            req_framing("Content-Length: 007\r\n"),
            Ok(Framing::Length(7))
        );
        assert_eq!(
            req_framing("Content-Length: 18446744073709551615\r\n"),
            Ok(Framing::Length(u64::MAX))
        );
        assert_eq!(
            req_framing("Transfer-Encoding: chunked\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            req_framing("transfer-encoding: CHUNKED\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            req_framing("Transfer-Encoding: gzip, chunked\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            req_framing("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"),
            Ok(Framing::Chunked)
        );
    }

    #[test]
    fn request_framing_refuses_ambiguity() {
        assert_eq!(
            req_framing("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
            Err(HeadError::invalid(
                "Content-Length together with Transfer-Encoding"
            ))
        );
        assert_eq!(
            req_framing("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
            Err(HeadError::invalid(
                "Content-Length together with Transfer-Encoding"
            ))
        );
        for extra in [
            "Transfer-Encoding: gzip\r\n",
            "Transfer-Encoding: chunked, gzip\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
            "Transfer-Encoding: chunked, chunked\r\n",
            "Transfer-Encoding: \r\n",
            "Transfer-Encoding: xchunked\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: +5\r\n",
            "Content-Length: 5a\r\n",
            "Content-Length: 0x5\r\n",
            "Content-Length: 5 5\r\n",
            "Content-Length: \r\n",
            "Content-Length: 5,\r\n",
            "Content-Length: 18446744073709551616\r\n",
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: 5, 6\r\n",
        ] {
            assert!(
                matches!(req_framing(extra), Err(HeadError::Invalid(_))),
                "{extra:?}"
            );
        }
        let http10 = request_with("HTTP/1.0", "Transfer-Encoding: chunked\r\n");
        assert!(matches!(
            request_framing(&http10),
            Err(HeadError::Invalid(_))
        ));
        let http10 = request_with("HTTP/1.0", "Content-Length: 3\r\n");
        assert_eq!(request_framing(&http10), Ok(Framing::Length(3)));
    }

    #[test]
    fn equal_duplicate_content_lengths_are_accepted() {
        assert_eq!(
            req_framing("Content-Length: 5\r\nContent-Length: 5\r\n"),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            req_framing("Content-Length: 5, 5 ,5\r\n"),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            req_framing("Content-Length: 5\r\ncontent-length: 05\r\n"),
            Ok(Framing::Length(5))
        );
    }

    fn resp_framing(method: &str, head: &str) -> Result<Framing, HeadError> {
        response_framing(method, &response_head(format!("{head}\r\n\r\n").as_bytes()))
    }

    #[test]
    fn response_framing_rules() {
        let cl = "HTTP/1.1 200 OK\r\nContent-Length: 10";
        assert_eq!(resp_framing("GET", cl), Ok(Framing::Length(10)));
        assert_eq!(resp_framing("HEAD", cl), Ok(Framing::Empty));
        assert_eq!(
            resp_framing("HEAD", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"),
            Ok(Framing::Empty)
        );
        for status in [100, 101, 103, 199, 204, 304] {
            let head = format!("HTTP/1.1 {status} X\r\nContent-Length: 10");
            assert_eq!(resp_framing("GET", &head), Ok(Framing::Empty), "{status}");
        }
        assert_eq!(resp_framing("CONNECT", cl), Ok(Framing::Empty));
        assert_eq!(
            resp_framing("CONNECT", "HTTP/1.1 299 X"),
            Ok(Framing::Empty)
        );
        assert_eq!(
            resp_framing("CONNECT", "HTTP/1.1 407 Auth\r\nContent-Length: 3"),
            Ok(Framing::Length(3))
        );
        assert_eq!(
            resp_framing("GET", "HTTP/1.1 200 OK"),
            Ok(Framing::UntilClose)
        );
        assert_eq!(
            resp_framing("POST", "HTTP/1.1 500 E"),
            Ok(Framing::UntilClose)
        );
        assert_eq!(
            resp_framing("GET", "HTTP/1.1 200 OK\r\nContent-Length: 0"),
            Ok(Framing::Length(0))
        );
        assert_eq!(
            resp_framing("GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            resp_framing(
                "GET",
                "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: gzip, chunked"
            ),
            Ok(Framing::Chunked),
            "Transfer-Encoding wins over Content-Length"
        );
        assert_eq!(
            resp_framing("GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip"),
            Ok(Framing::UntilClose)
        );
        assert_eq!(
            resp_framing("GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip"),
            Ok(Framing::UntilClose)
        );
        assert_eq!(
            resp_framing("GET", "HTTP/1.1 200 OK\r\nContent-Length: 4, 4"),
            Ok(Framing::Length(4))
        );
        for bad in [
            "Content-Length: x",
            "Content-Length: 4, 5",
            "Content-Length: 4\r\nContent-Length: 5",
        ] {
            let head = format!("HTTP/1.1 200 OK\r\n{bad}");
            assert!(
                matches!(resp_framing("GET", &head), Err(HeadError::Invalid(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            resp_framing("GET", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked"),
            Err(HeadError::Invalid(_))
        ));
        assert_eq!(
            resp_framing("GET", "HTTP/1.0 200 OK\r\nContent-Length: 1"),
            Ok(Framing::Length(1))
        );
    }

    // ---- body decoding ----

    #[test]
    fn empty_body_ends_at_once() {
        let mut decoder = BodyDecoder::new(Framing::Empty);
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        assert!(!decoder.is_finished());
        assert_eq!(decoder.remaining(), None);
        assert_eq!(decoder.decode(&mut buf, false), Ok(Some(Frame::End)));
        assert!(decoder.is_finished());
        assert_eq!(
            decoder.decode(&mut buf, true),
            Ok(Some(Frame::End)),
            "End repeats"
        );
        assert_eq!(buf.len(), 16, "nothing consumed");

        let mut decoder = BodyDecoder::new(Framing::Length(0));
        assert_eq!(decoder.remaining(), Some(0));
        assert_eq!(decoder.decode(&mut buf, false), Ok(Some(Frame::End)));
    }

    #[test]
    fn length_body_streams_and_leaves_the_next_message() {
        let mut decoder = BodyDecoder::new(Framing::Length(10));
        assert_eq!(decoder.remaining(), Some(10));
        let mut buf = BytesMut::new();
        assert_eq!(decoder.decode(&mut buf, false), Ok(None));
        buf.extend_from_slice(b"0123");
        assert_eq!(
            decoder.decode(&mut buf, false),
            Ok(Some(Frame::Data(Bytes::from_static(b"0123"))))
        );
        assert_eq!(decoder.remaining(), Some(6));
        assert_eq!(decoder.decode(&mut buf, false), Ok(None));
        buf.extend_from_slice(b"456789GET /next");
        assert_eq!(
            decoder.decode(&mut buf, false),
            Ok(Some(Frame::Data(Bytes::from_static(b"456789"))))
        );
        assert_eq!(decoder.remaining(), Some(0));
        assert!(!decoder.is_finished());
        assert_eq!(decoder.decode(&mut buf, false), Ok(Some(Frame::End)));
        assert!(decoder.is_finished());
        assert_eq!(&buf[..], b"GET /next");
    }

    #[test]
    fn length_body_cut_short_is_incomplete() {
        let mut decoder = BodyDecoder::new(Framing::Length(5));
        let mut buf = BytesMut::from(&b"abc"[..]);
        assert_eq!(
            decoder.decode(&mut buf, true),
            Ok(Some(Frame::Data(Bytes::from_static(b"abc")))),
            "buffered bytes first"
        );
        assert_eq!(decoder.decode(&mut buf, true), Err(BodyError::Incomplete));
        assert!(!decoder.is_finished());
    }

    #[test]
    fn until_close_body_ends_at_eof() {
        let mut decoder = BodyDecoder::new(Framing::UntilClose);
        assert_eq!(decoder.remaining(), None);
        let mut buf = BytesMut::from(&b"all of it"[..]);
        assert_eq!(
            decoder.decode(&mut buf, false),
            Ok(Some(Frame::Data(Bytes::from_static(b"all of it"))))
        );
        assert_eq!(decoder.decode(&mut buf, false), Ok(None));
        buf.extend_from_slice(b"tail");
        assert_eq!(
            decoder.decode(&mut buf, true),
            Ok(Some(Frame::Data(Bytes::from_static(b"tail"))))
        );
        assert_eq!(decoder.decode(&mut buf, true), Ok(Some(Frame::End)));
        assert!(decoder.is_finished());
    }

    #[test]
    fn data_frames_share_the_read_buffer() {
        for (framing, input, offset) in [
            (Framing::Length(5), &b"hello"[..], 0),
            (Framing::Chunked, b"5\r\nhello\r\n", 3),
            (Framing::UntilClose, b"hello", 0),
        ] {
            let mut buf = BytesMut::with_capacity(64);
            buf.extend_from_slice(input);
            let start = buf.as_ptr() as usize;
            let mut decoder = BodyDecoder::new(framing);
            let Ok(Some(Frame::Data(data))) = decoder.decode(&mut buf, false) else {
                panic!("data expected");
            };
            assert_eq!(&data[..], b"hello");
            assert_eq!(
                data.as_ptr() as usize,
                start + offset,
                "no copy for {framing:?}"
            );
        }
    }

    const CHUNKED: &[u8] = b"4\r\nWiki\r\n6;lang=en\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n\
        0\r\nX-Checksum: abc\r\nx-MIXED: 1\r\n\r\nGET /next HTTP/1.1\r\n\r\n";

    fn expected_chunked() -> Decoded {
        Decoded {
            data: b"Wikipedia in \r\n\r\nchunks.".to_vec(),
            trailers: Some(fields(&[("X-Checksum", "abc"), ("x-MIXED", "1")])),
            ended: true,
        }
    }

    #[test]
    fn chunked_body_with_trailers() {
        let (decoded, rest) = decode_all(Framing::Chunked, CHUNKED, false).unwrap();
        assert_eq!(decoded, expected_chunked());
        assert_eq!(&rest[..], b"GET /next HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn chunked_body_split_at_every_byte_boundary() {
        for split in 0..=CHUNKED.len() {
            let (first, second) = CHUNKED.split_at(split);
            let (decoded, rest) = decode_pieces(Framing::Chunked, &[first, second], false).unwrap();
            assert_eq!(decoded, expected_chunked(), "split at {split}");
            assert_eq!(&rest[..], b"GET /next HTTP/1.1\r\n\r\n", "split at {split}");
        }
        let bytes: Vec<&[u8]> = CHUNKED.chunks(1).collect();
        let (decoded, rest) = decode_pieces(Framing::Chunked, &bytes, false).unwrap();
        assert_eq!(decoded, expected_chunked());
        assert_eq!(&rest[..], b"GET /next HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn chunk_data_is_streamed_before_the_chunk_is_complete() {
        let mut decoder = BodyDecoder::new(Framing::Chunked);
        let mut buf = BytesMut::from(&b"b\r\nhel"[..]);
        assert_eq!(
            decoder.decode(&mut buf, false),
            Ok(Some(Frame::Data(Bytes::from_static(b"hel"))))
        );
        assert_eq!(decoder.remaining(), None);
        assert_eq!(decoder.decode(&mut buf, false), Ok(None));
        buf.extend_from_slice(b"lo worl");
        assert_eq!(
            decoder.decode(&mut buf, false),
            Ok(Some(Frame::Data(Bytes::from_static(b"lo worl"))))
        );
        buf.extend_from_slice(b"d\r\n0\r\n\r\n");
        assert_eq!(
            decoder.decode(&mut buf, false),
            Ok(Some(Frame::Data(Bytes::from_static(b"d"))))
        );
        assert_eq!(
            decoder.decode(&mut buf, false),
            Ok(Some(Frame::End)),
            "no empty trailers"
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn chunk_sizes_in_hex_and_extensions() {
        let ok: &[&[u8]] = &[
            b"A\r\n0123456789\r\n0\r\n\r\n",
            b"a\r\n0123456789\r\n0\r\n\r\n",
            b"000000000000000a\r\n0123456789\r\n0000000000000000\r\n\r\n",
            b"a;ext\r\n0123456789\r\n0;last\r\n\r\n",
            b"a;name=value;other=\"quoted ;\\\" \\\\ string\"\r\n0123456789\r\n0\r\n\r\n",
            b"a ; name = value ; flag\r\n0123456789\r\n0\r\n\r\n",
            b"a\t;\tx=\"\"\t;y\r\n0123456789\r\n0\r\n\r\n",
            b"a;x=\"caf\xc3\xa9\"\r\n0123456789\r\n0\r\n\r\n",
        ];
        for input in ok {
            let (decoded, rest) = decode_all(Framing::Chunked, input, false)
                .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(input)));
            assert_eq!(decoded.data, b"0123456789");
            assert!(decoded.ended && decoded.trailers.is_none());
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn bad_chunk_sizes_are_refused() {
        for input in [
            &b"\r\n"[..],
            b"g\r\n",
            b"-1\r\n",
            b"0x5\r\nhello\r\n",
            b"+5\r\n",
            b" 5\r\nhello\r\n",
            b"5 \r\nhello\r\n",
            b"5\t\r\nhello\r\n",
            b"5\nhello\r\n",
            b"5\rhello\r\n",
            b"5\r\r\n",
            b"0\n\r\n",
            b"10000000000000000\r\n",
            b"00000000000000001\r\n",
            b";x\r\n",
            b"5;\r\nhello\r\n",
            b"5;=v\r\nhello\r\n",
            b"5;x=\r\nhello\r\n",
            b"5;x y\r\nhello\r\n",
            b"5;x=a b\r\nhello\r\n",
            b"5;x=\"a\rb\"\r\nhello\r\n",
            b"5;x=\"a\nb\"\r\nhello\r\n",
            b"5;x=\"ab\"c\r\nhello\r\n",
            b"5;x=(\r\nhello\r\n",
            b"5;x\0\r\nhello\r\n",
            b"5;x \r\nhello\r\n",
            b"5;x=y \r\nhello\r\n",
        ] {
            assert!(
                is_invalid_chunk(input),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn missing_crlf_after_chunk_data_is_refused() {
        for input in [
            &b"5\r\nhelloX\r\n0\r\n\r\n"[..],
            b"5\r\nhello\rX0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhello0\r\n\r\n",
        ] {
            assert!(
                is_invalid_chunk(input),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // A CR alone is not an error yet: the LF may still come.
        let (decoded, _) = decode_all(Framing::Chunked, b"5\r\nhello\r", false).unwrap();
        assert!(!decoded.ended);
    }

    #[test]
    fn chunk_size_line_limit() {
        let mut line = b"5;x=".to_vec();
        line.resize(MAX_CHUNK_LINE_BYTES - 2, b'v');
        line.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        let (decoded, _) = decode_all(Framing::Chunked, &line, false).unwrap();
        assert_eq!(decoded.data, b"hello");

        let mut long = b"5;x=".to_vec();
        long.resize(MAX_CHUNK_LINE_BYTES - 1, b'v');
        long.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        assert_eq!(chunk_error(&long), BodyError::TooLarge);
        // Incomplete but already over the limit.
        assert_eq!(
            chunk_error(&long[..MAX_CHUNK_LINE_BYTES]),
            BodyError::TooLarge
        );
        assert!(decode_all(Framing::Chunked, &long[..MAX_CHUNK_LINE_BYTES - 1], false).is_ok());
    }

    #[test]
    fn trailers_are_parsed_like_fields() {
        let (decoded, rest) = decode_all(
            Framing::Chunked,
            b"0\r\nA: 1\r\nb: 2\r\nA: 3\r\n\r\nnext",
            false,
        )
        .unwrap();
        assert_eq!(
            decoded.trailers,
            Some(fields(&[("A", "1"), ("b", "2"), ("A", "3")]))
        );
        assert_eq!(&rest[..], b"next");

        for input in [
            &b"0\r\nA: 1\r\n folded\r\n\r\n"[..],
            b"0\r\nA : 1\r\n\r\n",
            b"0\r\nA: 1\0\r\n\r\n",
            b"0\r\nA: 1\rB: 2\r\n\r\n",
            b"0\r\n\rX",
            b"0\r\nno colon\r\n\r\n",
        ] {
            assert!(
                is_invalid_chunk(input),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn trailer_limits() {
        let mut many = b"0\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("T{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(chunk_error(&many), BodyError::TooLarge);

        let mut big = b"0\r\nT: ".to_vec();
        big.resize(3 + MAX_HEAD_BYTES + 1, b'v');
        assert_eq!(chunk_error(&big), BodyError::TooLarge);

        let mut fits = b"0\r\nT: ".to_vec();
        fits.resize(3 + MAX_HEAD_BYTES - 4, b'v');
        fits.extend_from_slice(b"\r\n\r\n");
        let (decoded, _) = decode_all(Framing::Chunked, &fits, false).unwrap();
        assert_eq!(decoded.trailers.unwrap().len(), 1);
    }

    #[test]
    fn unfinished_chunked_body_at_eof_is_incomplete() {
        for input in [
            &b""[..],
            b"5",
            b"5\r\n",
            b"5\r\nhel",
            b"5\r\nhello",
            b"5\r\nhello\r",
            b"5\r\nhello\r\n",
            b"5\r\nhello\r\n0\r\n",
            b"5\r\nhello\r\n0\r\nX: y\r\n",
        ] {
            assert_eq!(
                decode_all(Framing::Chunked, input, true).unwrap_err(),
                BodyError::Incomplete,
                "{:?}",
                String::from_utf8_lossy(input)
            );
            let (decoded, _) = decode_all(Framing::Chunked, input, false).unwrap();
            assert!(!decoded.ended);
        }
        let (decoded, _) = decode_all(Framing::Chunked, b"5\r\nhello\r\n0\r\n\r\n", true).unwrap();
        assert!(decoded.ended);
    }

    // ---- writing ----

    #[test]
    fn request_round_trip_keeps_field_lines() {
        let input = "POST /submit HTTP/1.1\r\nHost: example.com\r\nX-Mixed-Case: One\r\n\
                     content-TYPE: text/plain\r\nContent-Length: 5\r\nx-mixed-case: two\r\n\r\n";
        let head = request_head(input.as_bytes());
        let framing = request_framing(&head).unwrap();
        let mut out = BytesMut::new();
        write_request_head(
            &mut out,
            &head.method,
            &head.target,
            head.version,
            &head.headers,
            HeadOptions::new(framing),
        );
        assert_eq!(String::from_utf8(out.to_vec()).unwrap(), input);
    }

    #[test]
    fn response_round_trip_keeps_field_lines() {
        let input =
            "HTTP/1.1 200 Fine Thanks\r\nServer: x\r\nSet-Cookie: a=1\r\nX-Mixed-Case: y\r\n\
                     Transfer-Encoding: chunked\r\nset-cookie: b=2\r\nTrailer: X-Sum\r\n\r\n";
        let head = response_head(input.as_bytes());
        let framing = response_framing("GET", &head).unwrap();
        let mut out = BytesMut::new();
        write_response_head(
            &mut out,
            head.version,
            head.status,
            &head.reason,
            &head.headers,
            HeadOptions::new(framing),
        );
        assert_eq!(String::from_utf8(out.to_vec()).unwrap(), input);
    }

    #[test]
    fn length_replaces_the_first_content_length_in_place() {
        let headers = fields(&[
            ("A", "1"),
            ("CONTENT-LENGTH", "3"),
            ("B", "2"),
            ("content-length", "3"),
            ("Transfer-Encoding", "chunked"),
        ]);
        assert_eq!(
            written_request("POST", &headers, HeadOptions::new(Framing::Length(12))),
            "POST / HTTP/1.1\r\nA: 1\r\nCONTENT-LENGTH: 12\r\nB: 2\r\n\r\n"
        );
        let headers = fields(&[("A", "1")]);
        assert_eq!(
            written_request("POST", &headers, HeadOptions::new(Framing::Length(7))),
            "POST / HTTP/1.1\r\nA: 1\r\ncontent-length: 7\r\n\r\n"
        );
        assert_eq!(
            written_response(200, &headers, HeadOptions::new(Framing::Length(0))),
            "HTTP/1.1 200 OK\r\nA: 1\r\ncontent-length: 0\r\n\r\n"
        );
    }

    #[test]
    fn bodiless_request_gets_no_content_length() {
        let headers = fields(&[("Host", "a")]);
        assert_eq!(
            written_request("GET", &headers, HeadOptions::new(Framing::Length(0))),
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        );
        let headers = fields(&[("Host", "a"), ("Content-Length", "0")]);
        assert_eq!(
            written_request("POST", &headers, HeadOptions::new(Framing::Length(0))),
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn chunked_writes_transfer_encoding_and_keeps_trailer() {
        let headers = fields(&[
            ("Content-Length", "5"),
            ("A", "1"),
            ("TRANSFER-ENCODING", "gzip, chunked"),
            ("Trailer", "X-Sum"),
            ("transfer-encoding", "chunked"),
        ]);
        assert_eq!(
            written_response(200, &headers, HeadOptions::new(Framing::Chunked)),
            "HTTP/1.1 200 OK\r\nA: 1\r\nTRANSFER-ENCODING: chunked\r\nTrailer: X-Sum\r\n\r\n"
        );
        let headers = fields(&[("Content-Length", "5"), ("Trailer", "X-Sum"), ("A", "1")]);
        assert_eq!(
            written_request("POST", &headers, HeadOptions::new(Framing::Chunked)),
            "POST / HTTP/1.1\r\nTrailer: X-Sum\r\nA: 1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!(
            written_response(200, &headers, HeadOptions::new(Framing::Length(5))),
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nA: 1\r\n\r\n",
            "Trailer only with chunked"
        );
    }

    #[test]
    fn empty_keeps_framing_fields_and_until_close_drops_them() {
        let headers = fields(&[
            ("content-length", "1234"),
            ("ETag", "\"x\""),
            ("Transfer-Encoding", "chunked"),
        ]);
        assert_eq!(
            written_response(304, &headers, HeadOptions::new(Framing::Empty)),
            "HTTP/1.1 304 Not Modified\r\ncontent-length: 1234\r\nETag: \"x\"\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        );
        assert_eq!(
            written_response(200, &headers, HeadOptions::new(Framing::UntilClose)),
            "HTTP/1.1 200 OK\r\nETag: \"x\"\r\n\r\n"
        );
    }

    #[test]
    fn hop_by_hop_fields_are_dropped() {
        let headers = fields(&[
            ("Connection", "keep-alive, X-Hop"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Upgrade", "websocket"),
            ("Trailer", "X-Sum"),
            ("x-hop", "1"),
            ("connection", "X-Other"),
            ("X-Other", "2"),
            ("X-Kept", "3"),
        ]);
        assert_eq!(
            written_request("GET", &headers, HeadOptions::new(Framing::Empty)),
            "GET / HTTP/1.1\r\nX-Kept: 3\r\n\r\n"
        );
    }

    #[test]
    fn a_replaced_field_is_written_once_with_the_new_value() {
        let headers = fields(&[
            ("Host", "a"),
            ("authorization", "Basic old"),
            ("X-Other", "1"),
        ]);
        let opts = HeadOptions {
            replace: Some(("Authorization", "Basic new")),
            ..HeadOptions::new(Framing::Length(0))
        };
        assert_eq!(
            written_request("GET", &headers, opts),
            "GET / HTTP/1.1\r\nHost: a\r\nX-Other: 1\r\nAuthorization: Basic new\r\n\r\n"
        );
    }

    #[test]
    fn upgrade_keeps_connection_and_upgrade() {
        let headers = fields(&[
            ("Host", "a"),
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Key", "k"),
            ("Keep-Alive", "x"),
        ]);
        let opts = HeadOptions {
            framing: Framing::Length(0),
            upgrade: true,
            connection: Some("keep-alive"),
            replace: None,
        };
        assert_eq!(
            written_request("GET", &headers, opts),
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Key: k\r\n\r\n"
        );
        let opts = HeadOptions {
            framing: Framing::Empty,
            upgrade: true,
            connection: None,
            replace: None,
        };
        assert_eq!(
            written_response(
                101,
                &fields(&[("upgrade", "websocket"), ("connection", "upgrade")]),
                opts
            ),
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"
        );
        // Upgrade asked for without a Connection field: the option is still appended.
        let opts = HeadOptions {
            framing: Framing::Length(0),
            upgrade: true,
            connection: Some("upgrade"),
            replace: None,
        };
        assert_eq!(
            written_request("GET", &fields(&[("Upgrade", "h2c")]), opts),
            "GET / HTTP/1.1\r\nUpgrade: h2c\r\nconnection: upgrade\r\n\r\n"
        );
    }

    #[test]
    fn connection_option_is_appended() {
        let headers = fields(&[("Connection", "keep-alive"), ("A", "1")]);
        let opts = HeadOptions {
            framing: Framing::Length(2),
            upgrade: false,
            connection: Some("close"),
            replace: None,
        };
        assert_eq!(
            written_response(200, &headers, opts),
            "HTTP/1.1 200 OK\r\nA: 1\r\ncontent-length: 2\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn versions_and_reasons_written() {
        let none = Headers::new();
        let opts = HeadOptions::new(Framing::Empty);
        let mut out = BytesMut::new();
        write_request_head(&mut out, "GET", "/", HttpVersion::Http10, &none, opts);
        write_request_head(&mut out, "GET", "/", HttpVersion::Http2, &none, opts);
        write_response_head(&mut out, HttpVersion::Http10, 404, "", &none, opts);
        write_response_head(&mut out, HttpVersion::Http3, 200, "Fine", &none, opts);
        write_response_head(&mut out, HttpVersion::Http11, 599, "", &none, opts);
        assert_eq!(
            &out[..],
            b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\n\r\nHTTP/1.0 404 Not Found\r\n\r\n\
              HTTP/1.1 200 Fine\r\n\r\nHTTP/1.1 599 \r\n\r\n"
        );
        assert_eq!(reason_phrase(101), "Switching Protocols");
        assert_eq!(reason_phrase(502), "Bad Gateway");
        assert_eq!(reason_phrase(299), "");
    }

    #[test]
    fn written_heads_cannot_be_split() {
        let mut headers = Headers::new();
        headers.append("X-Evil", "a\r\nInjected: yes\0");
        headers.append("X-Controls", "a\x01b\x7fc\td");
        headers.append("Bad Name", "dropped");
        headers.append("Bad\r\nName", "dropped");
        headers.append("", "dropped");
        headers.append("Ok", "fine");
        let mut out = BytesMut::new();
        write_response_head(
            &mut out,
            HttpVersion::Http11,
            200,
            "OK\r\nX: y",
            &headers,
            HeadOptions::new(Framing::Empty),
        );
        assert_eq!(
            &out[..],
            &b"HTTP/1.1 200 OK  X: y\r\nX-Evil: a  Injected: yes \r\n\
               X-Controls: a b c\td\r\nOk: fine\r\n\r\n"[..]
        );
        let mut reparsed = out.clone();
        assert_eq!(
            parse_response_head(&mut reparsed)
                .unwrap()
                .unwrap()
                .headers
                .len(),
            3
        );
    }

    #[test]
    fn chunk_writing() {
        let mut out = BytesMut::new();
        write_chunk_size(&mut out, 1);
        write_chunk_size(&mut out, 0xabc);
        write_chunk_size(&mut out, usize::MAX);
        assert_eq!(
            &out[..],
            format!("1\r\nabc\r\n{:x}\r\n", usize::MAX).as_bytes()
        );

        let mut out = BytesMut::new();
        write_last_chunk(&mut out, None);
        write_last_chunk(&mut out, Some(&Headers::new()));
        assert_eq!(&out[..], b"0\r\n\r\n0\r\n\r\n");
    }

    #[test]
    fn last_chunk_with_trailers() {
        let trailers = fields(&[
            ("X-Checksum", "abc"),
            ("Content-Length", "5"),
            ("Transfer-Encoding", "chunked"),
            ("host", "a"),
            ("Trailer", "X-Checksum"),
            ("Connection", "X-Hop"),
            ("X-Hop", "1"),
            ("Keep-Alive", "1"),
            ("TE", "trailers"),
            ("Upgrade", "x"),
            ("Proxy-Connection", "x"),
            ("x-MIXED", "1"),
        ]);
        let mut out = BytesMut::new();
        write_last_chunk(&mut out, Some(&trailers));
        assert_eq!(&out[..], b"0\r\nX-Checksum: abc\r\nx-MIXED: 1\r\n\r\n");
    }

    #[test]
    fn connection_helpers() {
        let headers = fields(&[
            ("Connection", "Keep-Alive , Upgrade"),
            ("connection", ",close,"),
        ]);
        assert!(connection_has(&headers, "keep-alive"));
        assert!(connection_has(&headers, "UPGRADE"));
        assert!(connection_has(&headers, "close"));
        assert!(!connection_has(&headers, "clos"));
        assert!(!connection_has(&Headers::new(), "close"));

        let close = fields(&[("Connection", "close")]);
        let keep_alive = fields(&[("Connection", "keep-alive")]);
        let none = Headers::new();
        assert!(wants_close(HttpVersion::Http11, &close));
        assert!(!wants_close(HttpVersion::Http11, &none));
        assert!(!wants_close(HttpVersion::Http11, &keep_alive));
        assert!(wants_close(HttpVersion::Http10, &none));
        assert!(!wants_close(HttpVersion::Http10, &keep_alive));
        assert!(wants_close(HttpVersion::Http10, &close));

        assert!(is_upgrade(&fields(&[
            ("Connection", "upgrade"),
            ("Upgrade", "websocket")
        ])));
        assert!(!is_upgrade(&fields(&[("Upgrade", "websocket")])));
        assert!(!is_upgrade(&fields(&[("Connection", "upgrade")])));
        assert!(!is_upgrade(&fields(&[
            ("Connection", "close"),
            ("Upgrade", "h2c")
        ])));
    }

    // ---- randomized round trips ----

    /// xorshift64: enough randomness for splitting buffers, no crate needed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Cuts `bytes` at random points into pieces.
    fn random_pieces<'a>(rng: &mut Rng, bytes: &'a [u8]) -> Vec<&'a [u8]> {
        let mut pieces = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let max = if rng.below(4) == 0 { 3 } else { 200 };
            let (piece, tail) = rest.split_at((1 + rng.below(max)).min(rest.len()));
            pieces.push(piece);
            rest = tail;
        }
        pieces
    }

    #[test]
    fn random_chunked_round_trips() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let next_message = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
        for round in 0..500 {
            let body: Vec<u8> = (0..rng.below(3000)).map(|_| rng.next() as u8).collect();
            let mut trailers = Headers::new();
            for i in 0..rng.below(4) {
                let name = if rng.below(2) == 0 {
                    "X-Trailer"
                } else {
                    "x-tRAILER"
                };
                trailers.append(&format!("{name}-{i}"), format!("v{}", rng.next()));
            }

            let mut encoded = BytesMut::new();
            let mut rest = &body[..];
            while !rest.is_empty() {
                let (chunk, tail) = rest.split_at((1 + rng.below(700)).min(rest.len()));
                write_chunk_size(&mut encoded, chunk.len());
                if rng.below(5) == 0 {
                    // Put an extension in by hand: the writer never does.
                    encoded.truncate(encoded.len() - 2);
                    encoded.extend_from_slice(b";ext=\"v\"\r\n");
                }
                encoded.extend_from_slice(chunk);
                encoded.extend_from_slice(b"\r\n");
                rest = tail;
            }
            write_last_chunk(&mut encoded, Some(&trailers));
            encoded.extend_from_slice(next_message);

            let pieces = random_pieces(&mut rng, &encoded);
            let (decoded, left) = decode_pieces(Framing::Chunked, &pieces, false)
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(decoded.ended, "round {round}");
            assert_eq!(decoded.data, body, "round {round}");
            assert_eq!(
                decoded.trailers.unwrap_or_default(),
                trailers,
                "round {round}"
            );
            assert_eq!(&left[..], next_message, "round {round}");
        }
    }

    #[test]
    fn random_length_round_trips() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for round in 0..200 {
            let body: Vec<u8> = (0..rng.below(5000)).map(|_| rng.next() as u8).collect();
            let mut wire = body.clone();
            wire.extend_from_slice(b"NEXT");
            let pieces = random_pieces(&mut rng, &wire);
            let framing = Framing::Length(body.len() as u64);
            let (decoded, left) = decode_pieces(framing, &pieces, false).unwrap();
            assert!(decoded.ended, "round {round}");
            assert_eq!(decoded.data, body, "round {round}");
            assert_eq!(&left[..], b"NEXT", "round {round}");
        }
    }
}
