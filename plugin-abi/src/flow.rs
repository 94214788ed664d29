//! HTTP flows: one request, its response or error, and what addons attach to them
//! (mitmproxy's `HTTPFlow`, `Request`, `Response`).
//!
//! ```
//! use interpose_plugin_abi::{prelude::*, testing};
//!
//! let mut flow = testing::flow();
//! if flow.request.pretty_host() == "example.com" {
//!     flow.set_response(Response::make(403, "blocked", &[("content-type", "text/plain")]));
//! }
//! assert_eq!(flow.response().map(|r| r.status_code), Some(403));
//! ```

use std::fmt;

use abi_stable::{
    std_types::{RArc, ROption, RString, RVec},
    StableAbi,
};

use crate::{
    body::Body, connection::Client, connection::HostPort, connection::Server, headers::Headers,
    state::FlowState, stream::Stream, time::now,
};

/// A 128-bit unique id, shown in the UUID text form mitmproxy uses for flows and connections.
///
/// ```
/// use interpose_plugin_abi::flow::Uuid;
///
/// let id = Uuid([0xab; 16]);
/// assert_eq!(id.to_string(), "abababab-abab-abab-abab-abababababab");
/// ```
#[repr(C)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Uuid {
    type Err = String;

    /// Reads the text form (`be3b0936-e8b1-4a7a-b5cc-daeb2e45b58d`; the dashes are optional).
    ///
    /// ```
    /// use interpose_plugin_abi::Uuid;
    ///
    /// let id: Uuid = "be3b0936-e8b1-4a7a-b5cc-daeb2e45b58d".parse().unwrap();
    /// assert_eq!(id.to_string(), "be3b0936-e8b1-4a7a-b5cc-daeb2e45b58d");
    /// assert!("@all".parse::<Uuid>().is_err());
    /// ```
    fn from_str(text: &str) -> Result<Uuid, String> {
        let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
        let mut bytes = [0u8; 16];
        if hex.len() != 32 {
            return Err(format!("not a flow id: {text:?}"));
        }
        for (byte, pair) in bytes.iter_mut().zip(hex.chunks(2)) {
            let digits =
                std::str::from_utf8(pair).map_err(|_| format!("not a flow id: {text:?}"))?;
            *byte =
                u8::from_str_radix(digits, 16).map_err(|_| format!("not a flow id: {text:?}"))?;
        }
        Ok(Uuid(bytes))
    }
}

impl Uuid {
    /// A fresh random id (version 4 layout): what [`HttpFlow::copy`] gives its copy.
    ///
    /// ```
    /// use interpose_plugin_abi::Uuid;
    ///
    /// let (a, b) = (Uuid::random(), Uuid::random());
    /// assert_ne!(a, b);
    /// assert_eq!(a.to_string().as_bytes()[14], b'4');
    /// ```
    pub fn random() -> Uuid {
        use std::{
            collections::hash_map::RandomState,
            hash::{BuildHasher, Hasher},
            sync::atomic::{AtomicU64, Ordering},
        };
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut bytes = [0u8; 16];
        for half in bytes.chunks_mut(8) {
            // A fresh SipHash key per call (RandomState), over a counter and the time.
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
            hasher.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            half.copy_from_slice(&hasher.finish().to_le_bytes());
        }
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Uuid(bytes)
    }
}

/// Why `flow` cannot be replayed as a client request, in mitmproxy's words; `None` when it can.
#[doc(hidden)]
pub fn why_not_replayable(flow: &HttpFlow) -> Option<&'static str> {
    if flow.live {
        return Some("Can't replay live flow.");
    }
    if flow.intercepted {
        return Some("Can't replay intercepted flow.");
    }
    if flow.websocket.is_some() {
        return Some("Can't replay WebSocket flows.");
    }
    if flow.request.stream.is_on() && flow.request.content.is_empty() {
        return Some("Can't replay flow with missing content.");
    }
    None
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The HTTP version of a message.
///
/// ```
/// use interpose_plugin_abi::{flow::HttpVersion, testing};
///
/// let flow = testing::flow();
/// assert_eq!(flow.request.http_version, HttpVersion::Http11);
/// assert_eq!(HttpVersion::Http2.as_str(), "HTTP/2.0");
/// assert_eq!(HttpVersion::Http11.to_string(), "HTTP/1.1");
/// ```
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HttpVersion {
    /// HTTP/0.9
    Http09,
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
    /// HTTP/2
    Http2,
    /// HTTP/3
    Http3,
}

impl HttpVersion {
    /// The version as mitmproxy writes it: `HTTP/1.1`, `HTTP/2.0`, `HTTP/3`.
    ///
    /// See the example on [`HttpVersion`].
    pub fn as_str(self) -> &'static str {
        match self {
            HttpVersion::Http09 => "HTTP/0.9",
            HttpVersion::Http10 => "HTTP/1.0",
            HttpVersion::Http11 => "HTTP/1.1",
            HttpVersion::Http2 => "HTTP/2.0",
            HttpVersion::Http3 => "HTTP/3",
        }
    }
}

impl fmt::Display for HttpVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a flow's failure came from (set by the host on [`FlowError::kind`]).
///
/// ```
/// use interpose_plugin_abi::{prelude::*, testing};
///
/// let mut flow = testing::flow();
/// flow.kill();
/// let kind = flow.error().map(|e| e.kind);
/// assert_eq!(kind, Some(ErrorKind::Killed));
/// assert_eq!(ErrorKind::TooLarge.name(), "too_large");
/// ```
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The client sent something invalid, or went away.
    Client,
    /// The server was unreachable, reset the connection, or sent an invalid response.
    Server,
    /// An addon panicked and `addon_errors` is `fail`.
    Addon,
    /// The proxy itself failed.
    Proxy,
    /// An addon or the user killed the flow ([`HttpFlow::kill`]).
    Killed,
    /// The proxy is shutting down.
    Shutdown,
    /// A timeout expired.
    Timeout,
    /// A body exceeded `body_size_limit`.
    TooLarge,
}

impl ErrorKind {
    /// The kind as one lower-case word: `client`, `server`, `addon`, `proxy`, `killed`,
    /// `shutdown`, `timeout`, `too_large`.
    ///
    /// See the example on [`ErrorKind`].
    pub const fn name(self) -> &'static str {
        match self {
            ErrorKind::Client => "client",
            ErrorKind::Server => "server",
            ErrorKind::Addon => "addon",
            ErrorKind::Proxy => "proxy",
            ErrorKind::Killed => "killed",
            ErrorKind::Shutdown => "shutdown",
            ErrorKind::Timeout => "timeout",
            ErrorKind::TooLarge => "too_large",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a flow failed (mitmproxy's `Error`), and where the failure came from.
///
/// ```
/// use interpose_plugin_abi::{flow::FlowError, prelude::*, testing};
///
/// let mut flow = testing::flow();
/// flow.set_error(FlowError::new(ErrorKind::Timeout, "server too slow"));
/// let error = flow.error().unwrap();
/// assert_eq!(error.msg(), "server too slow");
/// assert_eq!(error.kind, ErrorKind::Timeout);
/// assert!(error.timestamp > 0.0);
///
/// flow = testing::flow();
/// flow.kill();
/// assert_eq!(flow.error().unwrap().msg(), FlowError::KILLED_MESSAGE);
/// ```
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq)]
pub struct FlowError {
    /// What went wrong, for people.
    #[doc(hidden)]
    pub msg: RString,
    /// When it happened.
    pub timestamp: f64,
    /// Where it came from: the client, the server, an addon, the proxy, a kill, ...
    pub kind: ErrorKind,
}

impl FlowError {
    /// The message of a killed flow (mitmproxy's `Error.KILLED_MESSAGE`).
    ///
    /// See the example on [`FlowError`].
    pub const KILLED_MESSAGE: &'static str = "Connection killed.";

    /// An error of `kind` that happens now.
    ///
    /// See the example on [`FlowError`].
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        FlowError {
            msg: RString::from(msg.into()),
            timestamp: now(),
            kind,
        }
    }
}

/// Free-form key/value data that addons attach to a flow (mitmproxy's `flow.metadata`).
///
/// ```
/// use interpose_plugin_abi::testing;
///
/// let mut flow = testing::flow();
/// assert!(flow.metadata.is_empty());
/// flow.metadata.insert("seen-by", "my-addon");
/// flow.metadata.insert("seen-by", "other-addon");
/// assert_eq!(flow.metadata.get("seen-by"), Some("other-addon"));
/// assert_eq!(flow.metadata.len(), 1);
/// assert_eq!(flow.metadata.iter().collect::<Vec<_>>(), [("seen-by", "other-addon")]);
/// assert_eq!(flow.metadata.remove("seen-by").as_deref(), Some("other-addon"));
/// assert_eq!(flow.metadata.get("seen-by"), None);
/// ```
#[repr(C)]
#[derive(StableAbi, Clone, Default, PartialEq)]
pub struct Metadata {
    entries: RVec<MetadataEntry>,
}

#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
struct MetadataEntry {
    key: RString,
    value: RString,
}

impl Metadata {
    /// The value stored under `key`.
    ///
    /// See the example on [`Metadata`].
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    }

    /// Stores `value` under `key`, replacing any previous value.
    ///
    /// See the example on [`Metadata`].
    pub fn insert(&mut self, key: &str, value: impl Into<String>) {
        let value = RString::from(value.into());
        match self.entries.iter_mut().find(|e| e.key == key) {
            Some(entry) => entry.value = value,
            None => self.entries.push(MetadataEntry {
                key: key.into(),
                value,
            }),
        }
    }

    /// Removes `key`, returning its value.
    ///
    /// See the example on [`Metadata`].
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let index = self.entries.iter().position(|e| e.key == key)?;
        Some(self.entries.remove(index).value.into_string())
    }

    /// All entries in insertion order.
    ///
    /// See the example on [`Metadata`].
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
    }

    /// Number of entries.
    ///
    /// See the example on [`Metadata`].
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no entry.
    ///
    /// See the example on [`Metadata`].
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Which half of a flow was replayed.
///
/// ```
/// use interpose_plugin_abi::{flow::ReplaySide, prelude::*, testing};
///
/// fn is_client_replay(flow: &HttpFlow) -> bool {
///     flow.is_replay() == Some(ReplaySide::Request)
/// }
/// assert!(!is_client_replay(&testing::flow()));
/// ```
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplaySide {
    /// The request was replayed to the server (client replay).
    Request,
    /// The response was replayed from a saved flow (server replay).
    Response,
}

/// An HTTP request (mitmproxy's `Request`).
///
/// ```
/// use interpose_plugin_abi::Request;
///
/// let mut request = Request::make("get", "https://example.com:8443/search?q=1", "").unwrap();
/// assert_eq!(request.method(), "GET");
/// assert_eq!(request.scheme(), "https");
/// assert_eq!(request.host(), "example.com");
/// assert_eq!(request.port, 8443);
/// assert_eq!(request.path(), "/search?q=1");
/// assert_eq!(request.authority(), ""); // origin-form, as HTTP/1 clients send it
/// assert_eq!(request.url(), "https://example.com:8443/search?q=1");
/// assert!(request.timestamp_end().is_some());
///
/// request.set_method("POST");
/// assert_eq!(request.method(), "POST");
/// ```
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq)]
pub struct Request {
    /// Upper-case method: `GET`, `POST`, ...
    #[doc(hidden)]
    pub method: RString,
    /// `http` or `https`.
    #[doc(hidden)]
    pub scheme: RString,
    /// The authority of an absolute-form or CONNECT request line (or HTTP/2 `:authority`);
    /// empty for origin-form requests.
    #[doc(hidden)]
    pub authority: RString,
    /// The server the request goes to. Changing it (with `port` and `scheme`) in
    /// `requestheaders` or `request` sends the request elsewhere; the `Host` header is separate.
    #[doc(hidden)]
    pub host: RString,
    /// The server port.
    pub port: u16,
    /// Path and query, e.g. `/search?q=1`.
    #[doc(hidden)]
    pub path: RString,
    /// HTTP version.
    pub http_version: HttpVersion,
    /// Header fields.
    pub headers: Headers,
    /// The body (empty until the `request` event, and in it too when streamed; the proxy sets
    /// `Content-Length` when sending).
    pub content: Body,
    /// Whether the body is streamed to the server instead of read whole; set it in
    /// `requestheaders` (mitmproxy's `request.stream`).
    pub stream: Stream,
    /// Trailer fields, if the message had any.
    #[doc(hidden)]
    pub trailers: ROption<Headers>,
    /// When the first byte of the request arrived.
    pub timestamp_start: f64,
    /// When the last byte of the request arrived.
    #[doc(hidden)]
    pub timestamp_end: ROption<f64>,
}

/// The port a URL of `scheme` uses when it names none: 443 for `https`, else 80.
///
/// ```
/// use interpose_plugin_abi::flow::default_port;
///
/// assert_eq!(default_port("https"), 443);
/// assert_eq!(default_port("http"), 80);
/// ```
pub fn default_port(scheme: &str) -> u16 {
    if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    }
}

impl Request {
    /// Builds a request for `url` (`scheme://host[:port][/path]`), stamped with the current
    /// time, with a `Host` header and, for a non-empty body, a `Content-Length` header.
    ///
    /// ```
    /// use interpose_plugin_abi::Request;
    ///
    /// let request = Request::make("POST", "http://example.com/api", r#"{"a":1}"#).unwrap();
    /// assert_eq!(request.headers.get("host"), Some("example.com"));
    /// assert_eq!(request.headers.get("content-length"), Some("7"));
    /// assert!(Request::make("GET", "ftp://example.com/", "").is_err());
    /// ```
    pub fn make(method: &str, url: &str, content: impl Into<Body>) -> Result<Request, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("not an absolute URL: {url:?}"))?;
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(format!("unsupported scheme in {url:?}"));
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = split_authority(authority, default_port(scheme))
            .ok_or_else(|| format!("invalid host or port in {url:?}"))?;
        let content = content.into();
        let mut headers = Headers::new();
        headers.append("Host", authority);
        if !content.is_empty() {
            headers.append("Content-Length", content.len().to_string());
        }
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        let now = now();
        Ok(Request {
            method: method.to_ascii_uppercase().into(),
            scheme: scheme.to_ascii_lowercase().into(),
            authority: RString::new(),
            host: host.into(),
            port,
            path: path.into(),
            http_version: HttpVersion::Http11,
            headers,
            content,
            stream: Stream::off(),
            trailers: ROption::RNone,
            timestamp_start: now,
            timestamp_end: ROption::RSome(now),
        })
    }

    /// Sends the request to `host` (mitmproxy's `request.host = ...`): also updates the
    /// `Host` header (when there is one) and the authority (when set) to match.
    ///
    /// ```
    /// # use interpose_plugin_abi::Request;
    /// let mut request = Request::make("GET", "http://example.com/", "").unwrap();
    /// request.set_host("example.org");
    /// assert_eq!(request.headers.get("host"), Some("example.org"));
    /// assert_eq!(request.url(), "http://example.org/");
    /// ```
    pub fn set_host(&mut self, host: &str) {
        self.host = host.into();
        self.update_host_and_authority();
    }

    /// Sends the request to `port` (mitmproxy's `request.port = ...`): also updates the
    /// `Host` header (when there is one) and the authority (when set) to match.
    ///
    /// ```
    /// # use interpose_plugin_abi::Request;
    /// let mut request = Request::make("GET", "http://example.com/", "").unwrap();
    /// request.set_port(8080);
    /// assert_eq!(request.headers.get("host"), Some("example.com:8080"));
    /// assert_eq!(request.url(), "http://example.com:8080/");
    /// ```
    pub fn set_port(&mut self, port: u16) {
        self.port = port;
        self.update_host_and_authority();
    }

    pub(crate) fn update_host_and_authority(&mut self) {
        let value = if self.port == default_port(&self.scheme) {
            if self.host.contains(':') {
                format!("[{}]", self.host)
            } else {
                self.host.to_string()
            }
        } else {
            HostPort(&self.host, self.port).to_string()
        };
        if self.headers.contains("host") {
            self.headers.insert("Host", &value);
        }
        if !self.authority.is_empty() {
            self.authority = value.into();
        }
    }

    /// The full URL: scheme, host, port (when not the scheme's default) and path.
    ///
    /// See the example on [`Request`].
    pub fn url(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.to_string()
        };
        if self.port == default_port(&self.scheme) {
            format!("{}://{}{}", self.scheme, host, self.path)
        } else {
            format!("{}://{}:{}{}", self.scheme, host, self.port, self.path)
        }
    }

    /// The `Host` header (HTTP/1) or the authority (HTTP/2 and 3), if any.
    ///
    /// ```
    /// # use interpose_plugin_abi::Request;
    /// let mut request = Request::make("GET", "http://10.0.0.1:8080/", "").unwrap();
    /// request.headers.insert("Host", "example.com:8080");
    /// assert_eq!(request.host_header(), Some("example.com:8080"));
    /// assert_eq!(request.pretty_host(), "example.com");
    /// assert_eq!(request.host(), "10.0.0.1");
    /// ```
    pub fn host_header(&self) -> Option<&str> {
        match self.http_version {
            HttpVersion::Http2 | HttpVersion::Http3 if !self.authority.is_empty() => {
                Some(self.authority.as_str())
            }
            _ => self.headers.get("host"),
        }
    }

    /// The host from the `Host` header if there is one, else [`Request::host`].
    ///
    /// See the example on [`Request::host_header`].
    pub fn pretty_host(&self) -> &str {
        self.host_header()
            .and_then(|h| split_authority(h, self.port).map(|(host, _)| host))
            .unwrap_or(&self.host)
    }
}

/// Splits an authority, `host[:port]` with IPv6 addresses in brackets, into host and port
/// (for [`Request::make`] and the host's request parsing; addons have
/// [`Request::pretty_host`]).
#[doc(hidden)]
pub fn split_authority(authority: &str, default_port: u16) -> Option<(&str, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(port) => Some((host, port.parse().ok()?)),
            None if after.is_empty() => Some((host, default_port)),
            None => None,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            (!host.is_empty()).then_some(())?;
            Some((host, port.parse().ok()?))
        }
        Some(_) => None,
        None if authority.is_empty() => None,
        None => Some((authority, default_port)),
    }
}

/// An HTTP response (mitmproxy's `Response`).
///
/// ```
/// use interpose_plugin_abi::{prelude::*, testing};
///
/// let mut flow = testing::flow_with_response();
/// let response = flow.response_mut().unwrap();
/// assert_eq!(response.status_code, 200);
/// assert_eq!(response.reason(), "OK");
/// assert_eq!(response.content.text(), Some("message"));
/// assert!(response.timestamp_end().is_some());
///
/// response.set_reason("Fine");
/// assert_eq!(flow.response().unwrap().reason(), "Fine");
/// ```
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq)]
pub struct Response {
    /// HTTP version.
    pub http_version: HttpVersion,
    /// Status code, e.g. 200.
    pub status_code: u16,
    /// Reason phrase, e.g. `OK` (empty for HTTP/2).
    #[doc(hidden)]
    pub reason: RString,
    /// Header fields.
    pub headers: Headers,
    /// The body (empty until the `response` event, and in it too when streamed; the proxy
    /// sets `Content-Length` when sending).
    pub content: Body,
    /// Whether the body is streamed to the client instead of read whole; set it in
    /// `responseheaders` (mitmproxy's `response.stream`).
    pub stream: Stream,
    /// Trailer fields, if the message had any.
    #[doc(hidden)]
    pub trailers: ROption<Headers>,
    /// When the first byte of the response arrived.
    pub timestamp_start: f64,
    /// When the last byte of the response arrived.
    #[doc(hidden)]
    pub timestamp_end: ROption<f64>,
}

impl Response {
    /// Builds an HTTP/1.1 response with the standard reason phrase, the given headers and a
    /// `Content-Length`, stamped with the current time (mitmproxy's `Response.make`).
    ///
    /// Setting one on the flow in `requestheaders` or `request` answers the client without
    /// contacting the server.
    ///
    /// ```
    /// use interpose_plugin_abi::{prelude::*, testing};
    ///
    /// let mut flow = testing::flow();
    /// flow.set_response(Response::make(404, "gone", &[("content-type", "text/plain")]));
    /// let response = flow.response().unwrap();
    /// assert_eq!(response.reason(), "Not Found");
    /// assert_eq!(response.headers.get("content-length"), Some("4"));
    /// ```
    pub fn make(status_code: u16, content: impl Into<Body>, headers: &[(&str, &str)]) -> Self {
        let content = content.into();
        let mut all: Headers = headers.iter().copied().collect();
        if !all.contains("content-length") {
            all.append("content-length", content.len().to_string());
        }
        let now = now();
        Response {
            http_version: HttpVersion::Http11,
            status_code,
            reason: reason_phrase(status_code).into(),
            headers: all,
            content,
            stream: Stream::off(),
            trailers: ROption::RNone,
            timestamp_start: now,
            timestamp_end: ROption::RSome(now),
        }
    }
}

/// The standard reason phrase of a status code (RFC 9110 and the registered extensions;
/// `""` for unknown codes).
///
/// ```
/// use interpose_plugin_abi::flow::reason_phrase;
///
/// assert_eq!(reason_phrase(418), "I'm a teapot");
/// assert_eq!(reason_phrase(299), "");
/// ```
pub fn reason_phrase(status_code: u16) -> &'static str {
    match status_code {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "",
    }
}

/// The kind of a WebSocket message.
///
/// ```
/// use interpose_plugin_abi::{flow::WebSocketMessageType, prelude::*, testing};
///
/// /// The text of the newest message, if it is a text message.
/// fn last_text(flow: &HttpFlow) -> Option<&str> {
///     let message = flow.websocket()?.messages().last()?;
///     if message.type_ != WebSocketMessageType::Text {
///         return None;
///     }
///     message.content.text()
/// }
/// assert_eq!(last_text(&testing::flow()), None);
/// ```
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebSocketMessageType {
    /// A text frame (opcode 1).
    Text = 1,
    /// A binary frame (opcode 2).
    Binary = 2,
}

/// One WebSocket message (mitmproxy's `WebSocketMessage`).
///
/// ```
/// use interpose_plugin_abi::{flow::WebSocketMessage, prelude::*, testing};
///
/// /// How many messages the client sent that were not dropped.
/// fn from_client(flow: &HttpFlow) -> usize {
///     let messages: &[WebSocketMessage] = flow.websocket().map_or(&[], |ws| ws.messages());
///     messages.iter().filter(|m| m.from_client && !m.dropped).count()
/// }
/// assert_eq!(from_client(&testing::flow()), 0);
/// ```
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct WebSocketMessage {
    /// Text or binary.
    pub type_: WebSocketMessageType,
    /// Whether the client sent it.
    pub from_client: bool,
    /// The payload.
    pub content: Body,
    /// When it was received.
    pub timestamp: f64,
    /// Whether an addon dropped it (it is not forwarded).
    pub dropped: bool,
    /// Whether it was injected by the proxy rather than sent by a peer.
    pub injected: bool,
}

/// The WebSocket conversation of an upgraded flow (mitmproxy's `WebSocketData`).
///
/// ```
/// use interpose_plugin_abi::flow::WebSocketData;
///
/// let ws = WebSocketData::default(); // an open conversation with no message yet
/// assert!(ws.messages().is_empty());
/// assert_eq!(ws.closed_by_client(), None);
/// assert_eq!(ws.close_code(), None);
/// assert_eq!(ws.close_reason(), None);
/// assert_eq!(ws.timestamp_end(), None);
/// ```
#[repr(C)]
#[derive(StableAbi, Clone, Default, PartialEq)]
pub struct WebSocketData {
    /// Every message so far; the newest is last.
    #[doc(hidden)]
    pub messages: RVec<WebSocketMessage>,
    /// Whether the client closed the connection (`None` while open).
    #[doc(hidden)]
    pub closed_by_client: ROption<bool>,
    /// The close code.
    #[doc(hidden)]
    pub close_code: ROption<u16>,
    /// The close reason.
    #[doc(hidden)]
    pub close_reason: ROption<RString>,
    /// When the connection closed.
    #[doc(hidden)]
    pub timestamp_end: ROption<f64>,
}

/// One HTTP exchange as it passes through the proxy (mitmproxy's `HTTPFlow`).
///
/// Addons control a flow by changing it: edit the request or response, set
/// [`HttpFlow::response`] in `requestheaders`/`request` to answer without contacting the
/// server, or call [`HttpFlow::kill`] to drop it.
///
/// ```
/// use interpose_plugin_abi::{prelude::*, testing};
///
/// let mut flow = testing::flow();
/// assert_eq!(flow.request.url(), "http://example.com/path");
/// assert_eq!(flow.client_conn().proxy_mode(), "regular");
/// assert!(flow.server_conn().is_none());
/// assert!(flow.live() && !flow.intercepted() && flow.is_replay().is_none());
/// assert!(flow.websocket().is_none());
/// assert_eq!(flow.timestamp_start(), flow.request.timestamp_start);
///
/// flow.set_response(Response::make(200, "hi", &[]));
/// flow.response_mut().unwrap().headers.insert("x-by", "addon");
/// let response = flow.take_response().unwrap();
/// assert_eq!(response.headers.get("x-by"), Some("addon"));
/// assert!(flow.response().is_none());
///
/// flow.set_marked(":grapes:");
/// flow.set_comment("looked at");
/// assert_eq!((flow.marked(), flow.comment()), (":grapes:", "looked at"));
/// ```
#[repr(C)]
#[derive(StableAbi, Clone)]
pub struct HttpFlow {
    /// Unique id of the flow.
    pub id: Uuid,
    /// The client connection the request came in on.
    #[doc(hidden)]
    pub client_conn: RArc<Client>,
    /// The server connection the request went out on (`None` until one is assigned).
    #[doc(hidden)]
    pub server_conn: ROption<RArc<Server>>,
    /// The request.
    pub request: Request,
    /// The response, once there is one (or once an addon set one).
    #[doc(hidden)]
    pub response: ROption<Response>,
    /// Why the flow failed, if it did.
    #[doc(hidden)]
    pub error: ROption<FlowError>,
    /// The WebSocket conversation, when the flow was upgraded to one.
    #[doc(hidden)]
    pub websocket: ROption<WebSocketData>,
    /// Whether the flow is paused, waiting to be resumed.
    #[doc(hidden)]
    pub intercepted: bool,
    /// Whether and which side of this flow was replayed.
    #[doc(hidden)]
    pub is_replay: ROption<ReplaySide>,
    /// Whether the flow still belongs to an open connection.
    #[doc(hidden)]
    pub live: bool,
    /// A user mark: empty, a character, or an emoji name such as `:grapes:`.
    #[doc(hidden)]
    pub marked: RString,
    /// A user comment.
    #[doc(hidden)]
    pub comment: RString,
    /// Data addons attach to the flow.
    pub metadata: Metadata,
    /// When the flow was created.
    pub timestamp_created: f64,
    /// The addons' per-flow values ([`HttpFlow::state`]).
    #[doc(hidden)]
    pub addon_state: FlowState,
}

impl HttpFlow {
    /// A live flow for `request`, received from `client_conn` (made by the host; tests use
    /// [`testing::flow_for`](crate::testing::flow_for)).
    #[doc(hidden)]
    pub fn new(id: Uuid, client_conn: RArc<Client>, request: Request) -> Self {
        HttpFlow {
            id,
            client_conn,
            server_conn: ROption::RNone,
            timestamp_created: request.timestamp_start,
            request,
            response: ROption::RNone,
            error: ROption::RNone,
            websocket: ROption::RNone,
            intercepted: false,
            is_replay: ROption::RNone,
            live: true,
            marked: RString::new(),
            comment: RString::new(),
            metadata: Metadata::default(),
            addon_state: FlowState::default(),
        }
    }

    /// Kills the flow: the proxy drops it and closes the client connection (mitmproxy's
    /// `flow.kill()`). Does nothing if the flow is not live or already killed.
    ///
    /// ```
    /// use interpose_plugin_abi::{prelude::*, testing};
    ///
    /// let mut flow = testing::flow();
    /// assert!(flow.killable() && !flow.killed());
    /// flow.kill();
    /// assert!(flow.killed() && !flow.killable() && !flow.live());
    /// assert_eq!(flow.error().unwrap().kind, ErrorKind::Killed);
    /// ```
    pub fn kill(&mut self) {
        if self.killable() {
            self.error =
                ROption::RSome(FlowError::new(ErrorKind::Killed, FlowError::KILLED_MESSAGE));
            self.intercepted = false;
            self.live = false;
        }
    }

    /// A copy of the flow with a new id, no longer live and not paused (mitmproxy's
    /// `flow.copy()`): what an addon changes and hands to
    /// [`Context::replay_client`](crate::Context::replay_client) without touching the
    /// original. Per-flow addon state is not copied.
    ///
    /// ```
    /// use interpose_plugin_abi::{prelude::*, testing};
    ///
    /// let flow = testing::flow();
    /// let mut copy = flow.copy();
    /// copy.request.set_path("/changed");
    /// assert_ne!(copy.id, flow.id);
    /// assert!(!copy.live() && flow.live());
    /// assert_eq!(flow.request.path(), "/path");
    /// ```
    pub fn copy(&self) -> HttpFlow {
        let mut copy = self.clone();
        copy.id = Uuid::random();
        copy.live = false;
        copy.intercepted = false;
        copy.addon_state = FlowState::default();
        copy
    }

    /// Whether [`HttpFlow::kill`] would have an effect.
    ///
    /// See the example on [`HttpFlow::kill`].
    pub fn killable(&self) -> bool {
        self.live && !self.killed()
    }

    /// Whether the flow was killed (its error is of kind [`ErrorKind::Killed`]).
    ///
    /// See the example on [`HttpFlow::kill`].
    pub fn killed(&self) -> bool {
        matches!(&self.error, ROption::RSome(e) if e.kind == ErrorKind::Killed)
    }

    /// When the flow's request started (mitmproxy's `flow.timestamp_start`).
    ///
    /// See the example on [`HttpFlow`].
    pub fn timestamp_start(&self) -> f64 {
        self.request.timestamp_start
    }
}

/// `Option<&T>` from the ABI's optional field.
fn opt<T>(value: &ROption<T>) -> Option<&T> {
    value.as_ref().into_option()
}

impl FlowError {
    /// What went wrong, for people.
    ///
    /// See the example on [`FlowError`].
    pub fn msg(&self) -> &str {
        &self.msg
    }
}

impl fmt::Debug for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowError")
            .field("msg", &self.msg())
            .field("timestamp", &self.timestamp)
            .field("kind", &self.kind)
            .finish()
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Request {
    /// The method, upper case: `GET`, `POST`, ...
    ///
    /// See the example on [`Request`].
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Changes the method (upper case, as it goes on the wire).
    ///
    /// See the example on [`Request`].
    pub fn set_method(&mut self, method: impl Into<String>) {
        self.method = RString::from(method.into());
    }

    /// `http` or `https`.
    ///
    /// See the example on [`Request`].
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The authority of an absolute-form or CONNECT request line (or HTTP/2 `:authority`);
    /// empty for origin-form requests.
    ///
    /// See the example on [`Request`].
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The server the request goes to (change it with [`Request::set_host`]).
    ///
    /// See the example on [`Request`].
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The path and query, e.g. `/search?q=1`.
    ///
    /// See the example on [`Request`].
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The trailer fields, if the message has any.
    ///
    /// See the example on [`Request::set_trailers`].
    pub fn trailers(&self) -> Option<&Headers> {
        opt(&self.trailers)
    }

    /// The trailer fields, to change them.
    ///
    /// See the example on [`Request::set_trailers`].
    pub fn trailers_mut(&mut self) -> Option<&mut Headers> {
        self.trailers.as_mut().into_option()
    }

    /// Sets or removes the trailer fields.
    ///
    /// ```
    /// use interpose_plugin_abi::{Headers, Request};
    ///
    /// let mut request = Request::make("POST", "http://example.com/upload", "data").unwrap();
    /// assert!(request.trailers().is_none());
    /// request.set_trailers(Some(Headers::from_iter([("x-checksum", "abc")])));
    /// request.trailers_mut().unwrap().append("x-signature", "def");
    /// assert_eq!(request.trailers().unwrap().len(), 2);
    /// request.set_trailers(None);
    /// assert!(request.trailers().is_none());
    /// ```
    pub fn set_trailers(&mut self, trailers: Option<Headers>) {
        self.trailers = trailers.into();
    }

    /// When the last byte of the request arrived (seconds since the epoch), once it has.
    ///
    /// See the example on [`Request`].
    pub fn timestamp_end(&self) -> Option<f64> {
        self.timestamp_end.into_option()
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("scheme", &self.scheme())
            .field("authority", &self.authority())
            .field("host", &self.host())
            .field("port", &self.port)
            .field("path", &self.path())
            .field("http_version", &self.http_version)
            .field("headers", &self.headers)
            .field("content", &self.content)
            .field("stream", &self.stream)
            .field("trailers", &self.trailers())
            .field("timestamp_start", &self.timestamp_start)
            .field("timestamp_end", &self.timestamp_end())
            .finish()
    }
}

impl Response {
    /// The reason phrase, e.g. `OK` (empty for HTTP/2).
    ///
    /// See the example on [`Response`].
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Changes the reason phrase.
    ///
    /// See the example on [`Response`].
    pub fn set_reason(&mut self, reason: impl Into<String>) {
        self.reason = RString::from(reason.into());
    }

    /// The trailer fields, if the message has any.
    ///
    /// See the example on [`Response::set_trailers`].
    pub fn trailers(&self) -> Option<&Headers> {
        opt(&self.trailers)
    }

    /// The trailer fields, to change them.
    ///
    /// See the example on [`Response::set_trailers`].
    pub fn trailers_mut(&mut self) -> Option<&mut Headers> {
        self.trailers.as_mut().into_option()
    }

    /// Sets or removes the trailer fields.
    ///
    /// ```
    /// use interpose_plugin_abi::{Headers, Response};
    ///
    /// let mut response = Response::make(200, "chunk", &[("trailer", "x-status")]);
    /// assert!(response.trailers().is_none());
    /// response.set_trailers(Some(Headers::from_iter([("x-status", "ok")])));
    /// response.trailers_mut().unwrap().insert("x-status", "done");
    /// assert_eq!(response.trailers().unwrap().get("x-status"), Some("done"));
    /// ```
    pub fn set_trailers(&mut self, trailers: Option<Headers>) {
        self.trailers = trailers.into();
    }

    /// When the last byte of the response arrived (seconds since the epoch), once it has.
    ///
    /// See the example on [`Response`].
    pub fn timestamp_end(&self) -> Option<f64> {
        self.timestamp_end.into_option()
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("http_version", &self.http_version)
            .field("status_code", &self.status_code)
            .field("reason", &self.reason())
            .field("headers", &self.headers)
            .field("content", &self.content)
            .field("stream", &self.stream)
            .field("trailers", &self.trailers())
            .field("timestamp_start", &self.timestamp_start)
            .field("timestamp_end", &self.timestamp_end())
            .finish()
    }
}

impl WebSocketMessage {
    /// A message as a peer would send it (not dropped, not injected), received now.
    ///
    /// ```
    /// use interpose_plugin_abi::flow::{WebSocketMessage, WebSocketMessageType};
    ///
    /// let message = WebSocketMessage::new(WebSocketMessageType::Text, true, "hello");
    /// assert!(message.is_text() && message.from_client());
    /// assert_eq!(message.text(), Some("hello"));
    /// assert!(!message.dropped() && !message.injected());
    /// ```
    pub fn new(type_: WebSocketMessageType, from_client: bool, content: impl Into<Body>) -> Self {
        WebSocketMessage {
            type_,
            from_client,
            content: content.into(),
            timestamp: crate::now(),
            dropped: false,
            injected: false,
        }
    }

    /// Whether it is a text message (else binary).
    ///
    /// See the example on [`WebSocketMessage::new`].
    pub fn is_text(&self) -> bool {
        self.type_ == WebSocketMessageType::Text
    }

    /// Whether the client sent it (else the server, or it goes to the client if injected).
    ///
    /// See the example on [`WebSocketMessage::new`].
    pub fn from_client(&self) -> bool {
        self.from_client
    }

    /// The payload as text, if it is valid UTF-8 (a text message always is, unless an addon
    /// changed it).
    ///
    /// See the example on [`WebSocketMessage::new`].
    pub fn text(&self) -> Option<&str> {
        self.content.text()
    }

    /// Replaces the payload with `text`.
    ///
    /// ```
    /// use interpose_plugin_abi::flow::{WebSocketMessage, WebSocketMessageType};
    ///
    /// let mut message = WebSocketMessage::new(WebSocketMessageType::Text, false, "Hello world");
    /// let changed = message.text().unwrap().replacen("Hello", "HAPPY", 1);
    /// message.set_text(&changed);
    /// assert_eq!(message.text(), Some("HAPPY world"));
    /// ```
    pub fn set_text(&mut self, text: &str) {
        self.content = Body::from(text.as_bytes().to_vec());
    }

    /// Replaces the payload with `bytes`.
    ///
    /// ```
    /// use interpose_plugin_abi::flow::{WebSocketMessage, WebSocketMessageType};
    ///
    /// let mut message = WebSocketMessage::new(WebSocketMessageType::Binary, true, vec![1, 2]);
    /// message.set_content(vec![3]);
    /// assert_eq!(message.content.as_slice(), [3]);
    /// ```
    pub fn set_content(&mut self, bytes: impl Into<Body>) {
        self.content = bytes.into();
    }

    /// Drops the message: the proxy does not forward it (mitmproxy's `message.drop()`). It
    /// stays in the flow's messages, marked dropped.
    ///
    /// See the example on [`websocket_message`](crate::Addon::websocket_message).
    // mitmproxy's name; `Drop::drop` cannot be called by hand, so the two never meet.
    #[allow(clippy::should_implement_trait)]
    pub fn drop(&mut self) {
        self.dropped = true;
    }

    /// Whether an addon dropped it.
    ///
    /// See the example on [`WebSocketMessage::new`].
    pub fn dropped(&self) -> bool {
        self.dropped
    }

    /// Whether the proxy injected it ([`Context::inject_websocket`](crate::Context::inject_websocket)).
    ///
    /// See the example on [`WebSocketMessage::new`].
    pub fn injected(&self) -> bool {
        self.injected
    }

    /// When it was received (seconds since the Unix epoch).
    ///
    /// ```
    /// use interpose_plugin_abi::flow::{WebSocketMessage, WebSocketMessageType};
    ///
    /// let message = WebSocketMessage::new(WebSocketMessageType::Text, true, "");
    /// assert!(message.timestamp() > 1.6e9);
    /// ```
    pub fn timestamp(&self) -> f64 {
        self.timestamp
    }
}

impl WebSocketData {
    /// Every message so far; the newest is last.
    ///
    /// See the example on [`WebSocketData`] (and on [`WebSocketMessage`]).
    pub fn messages(&self) -> &[WebSocketMessage] {
        &self.messages
    }

    /// Every message so far, to change (a message already forwarded is not sent again).
    ///
    /// ```
    /// use interpose_plugin_abi::testing;
    ///
    /// let mut flow = testing::websocket_flow(&[(true, "a"), (false, "b")]);
    /// let ws = flow.websocket_mut().unwrap();
    /// ws.messages_mut()[0].set_text("A");
    /// assert_eq!(ws.messages()[0].text(), Some("A"));
    /// ```
    pub fn messages_mut(&mut self) -> &mut [WebSocketMessage] {
        &mut self.messages
    }

    /// The newest message: in `websocket_message`, the one the event is about.
    ///
    /// See the example on [`websocket_message`](crate::Addon::websocket_message).
    pub fn last_message_mut(&mut self) -> Option<&mut WebSocketMessage> {
        self.messages.last_mut()
    }

    /// Appends a message (what the proxy does as messages arrive; a test builds a
    /// conversation with it).
    ///
    /// ```
    /// use interpose_plugin_abi::flow::{WebSocketData, WebSocketMessage, WebSocketMessageType};
    ///
    /// let mut ws = WebSocketData::default();
    /// ws.push_message(WebSocketMessage::new(WebSocketMessageType::Text, true, "hi"));
    /// assert_eq!(ws.messages().len(), 1);
    /// ```
    pub fn push_message(&mut self, message: WebSocketMessage) {
        self.messages.push(message);
    }

    /// Records how the conversation closed: by which side, with which code and reason, at
    /// which time.
    ///
    /// ```
    /// use interpose_plugin_abi::flow::WebSocketData;
    ///
    /// let mut ws = WebSocketData::default();
    /// ws.set_closed(true, 1000, "bye", 1.7e9);
    /// assert_eq!((ws.closed_by_client(), ws.close_code(), ws.close_reason()), (Some(true), Some(1000), Some("bye")));
    /// assert_eq!(ws.timestamp_end(), Some(1.7e9));
    /// ```
    pub fn set_closed(&mut self, by_client: bool, code: u16, reason: &str, timestamp: f64) {
        self.closed_by_client = ROption::RSome(by_client);
        self.close_code = ROption::RSome(code);
        self.close_reason = ROption::RSome(reason.into());
        self.timestamp_end = ROption::RSome(timestamp);
    }

    /// Whether the client closed the connection (`None` while it is open).
    ///
    /// See the example on [`WebSocketData`].
    pub fn closed_by_client(&self) -> Option<bool> {
        self.closed_by_client.into_option()
    }

    /// The close code, once closed.
    ///
    /// See the example on [`WebSocketData`].
    pub fn close_code(&self) -> Option<u16> {
        self.close_code.into_option()
    }

    /// The close reason, once closed.
    ///
    /// See the example on [`WebSocketData`].
    pub fn close_reason(&self) -> Option<&str> {
        opt(&self.close_reason).map(RString::as_str)
    }

    /// When the connection closed.
    ///
    /// See the example on [`WebSocketData`].
    pub fn timestamp_end(&self) -> Option<f64> {
        self.timestamp_end.into_option()
    }
}

impl fmt::Debug for WebSocketData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketData")
            .field("messages", &self.messages())
            .field("closed_by_client", &self.closed_by_client())
            .field("close_code", &self.close_code())
            .field("close_reason", &self.close_reason())
            .field("timestamp_end", &self.timestamp_end())
            .finish()
    }
}

impl HttpFlow {
    /// The client connection the request came in on.
    ///
    /// See the example on [`HttpFlow`].
    pub fn client_conn(&self) -> &Client {
        &self.client_conn
    }

    /// The server connection the request went out on, once one is assigned.
    ///
    /// See the example on [`HttpFlow`].
    pub fn server_conn(&self) -> Option<&Server> {
        opt(&self.server_conn).map(|server| &**server)
    }

    /// The response, once there is one (from the server, or set by an addon).
    ///
    /// See the example on [`HttpFlow`].
    pub fn response(&self) -> Option<&Response> {
        opt(&self.response)
    }

    /// The response, to change it.
    ///
    /// See the example on [`HttpFlow`].
    pub fn response_mut(&mut self) -> Option<&mut Response> {
        self.response.as_mut().into_option()
    }

    /// Sets the response. In `requestheaders` or `request` this answers the client without
    /// contacting the server (mitmproxy's `flow.response = Response.make(...)`).
    ///
    /// See the example on [`HttpFlow`] (and on [`Response::make`]).
    pub fn set_response(&mut self, response: Response) {
        self.response = ROption::RSome(response);
    }

    /// Removes the response and returns it.
    ///
    /// See the example on [`HttpFlow`].
    pub fn take_response(&mut self) -> Option<Response> {
        std::mem::replace(&mut self.response, ROption::RNone).into_option()
    }

    /// Why the flow failed, if it did.
    ///
    /// See the example on [`FlowError`].
    pub fn error(&self) -> Option<&FlowError> {
        opt(&self.error)
    }

    /// Records why the flow failed (to kill a flow, use [`HttpFlow::kill`]).
    ///
    /// See the example on [`FlowError`].
    pub fn set_error(&mut self, error: FlowError) {
        self.error = ROption::RSome(error);
    }

    /// The WebSocket conversation, when the flow was upgraded to one.
    ///
    /// See the example on [`HttpFlow`] (and on [`WebSocketMessageType`]).
    pub fn websocket(&self) -> Option<&WebSocketData> {
        opt(&self.websocket)
    }

    /// The WebSocket conversation, to change (the newest message in `websocket_message`).
    ///
    /// See the example on [`websocket_message`](crate::Addon::websocket_message).
    pub fn websocket_mut(&mut self) -> Option<&mut WebSocketData> {
        match &mut self.websocket {
            ROption::RSome(ws) => Some(ws),
            ROption::RNone => None,
        }
    }

    /// Whether the flow is paused ([`Context::intercept`](crate::Context::intercept)).
    ///
    /// See the example on [`HttpFlow`].
    pub fn intercepted(&self) -> bool {
        self.intercepted
    }

    /// Whether and which side of this flow was replayed.
    ///
    /// See the example on [`ReplaySide`].
    pub fn is_replay(&self) -> Option<ReplaySide> {
        self.is_replay.into_option()
    }

    /// Marks the flow as replayed (mitmproxy's `flow.is_replay = "response"`): what a
    /// server-replay addon sets when it answers a request with a saved response. The dump
    /// output and flow files show it.
    ///
    /// ```
    /// use interpose_plugin_abi::{flow::ReplaySide, testing};
    ///
    /// let mut flow = testing::flow();
    /// flow.set_is_replay(Some(ReplaySide::Response));
    /// assert_eq!(flow.is_replay(), Some(ReplaySide::Response));
    /// ```
    pub fn set_is_replay(&mut self, side: Option<ReplaySide>) {
        self.is_replay = side.into();
    }

    /// Whether the flow still belongs to an open connection (false once it ended or was
    /// killed, and for flows read from a file).
    ///
    /// See the example on [`HttpFlow`].
    pub fn live(&self) -> bool {
        self.live
    }

    /// The user mark: empty, a character, or an emoji name such as `:grapes:`.
    ///
    /// See the example on [`HttpFlow`].
    pub fn marked(&self) -> &str {
        &self.marked
    }

    /// Marks the flow (saved in flow files; `~marked` matches it).
    ///
    /// See the example on [`HttpFlow`].
    pub fn set_marked(&mut self, mark: impl Into<String>) {
        self.marked = RString::from(mark.into());
    }

    /// The user comment.
    ///
    /// See the example on [`HttpFlow`].
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// Comments the flow (saved in flow files; `~comment` matches it).
    ///
    /// See the example on [`HttpFlow`].
    pub fn set_comment(&mut self, comment: impl Into<String>) {
        self.comment = RString::from(comment.into());
    }
}

impl fmt::Debug for HttpFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpFlow")
            .field("id", &self.id)
            .field("client_conn", self.client_conn())
            .field("server_conn", &self.server_conn())
            .field("request", &self.request)
            .field("response", &self.response())
            .field("error", &self.error())
            .field("websocket", &self.websocket())
            .field("intercepted", &self.intercepted)
            .field("is_replay", &self.is_replay())
            .field("live", &self.live)
            .field("marked", &self.marked())
            .field("comment", &self.comment())
            .field("metadata", &self.metadata)
            .field("timestamp_created", &self.timestamp_created)
            .field("addon_state", &self.addon_state)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_text_form() {
        let id = Uuid([
            0xbe, 0x3b, 0x09, 0x36, 0xe8, 0xb1, 0x4a, 0x7a, 0xb5, 0xcc, 0xda, 0xeb, 0x2e, 0x45,
            0xb5, 0x8d,
        ]);
        assert_eq!(id.to_string(), "be3b0936-e8b1-4a7a-b5cc-daeb2e45b58d");
    }

    #[test]
    fn make_request_parses_url() {
        let r = Request::make("get", "http://example.com:8080/a?b=1", "").unwrap();
        assert_eq!(
            (r.method.as_str(), r.host.as_str(), r.port, r.path.as_str()),
            ("GET", "example.com", 8080, "/a?b=1")
        );
        assert_eq!(r.url(), "http://example.com:8080/a?b=1");
        assert_eq!(r.headers.get("host"), Some("example.com:8080"));
        let r = Request::make("GET", "https://[::1]", "x").unwrap();
        assert_eq!((r.host.as_str(), r.port), ("::1", 443));
        assert_eq!(r.url(), "https://[::1]/");
        assert_eq!(r.headers.get("content-length"), Some("1"));
        assert!(Request::make("GET", "example.com/", "").is_err());
        assert!(Request::make("GET", "http://host:notaport/", "").is_err());
    }

    #[test]
    fn make_response_sets_reason_and_length() {
        let r = Response::make(403, "no", &[("content-type", "text/plain")]);
        assert_eq!(r.reason, "Forbidden");
        assert_eq!(r.headers.get("content-length"), Some("2"));
        assert_eq!(r.headers.get("content-type"), Some("text/plain"));
    }

    #[test]
    fn kill_is_an_error_of_kind_killed() {
        let mut flow = crate::testing::flow();
        assert!(flow.killable());
        flow.kill();
        let error = flow.error.as_ref().expect("killed flows have an error");
        assert_eq!(
            (error.kind, error.msg.as_str()),
            (ErrorKind::Killed, "Connection killed.")
        );
        assert!(flow.killed() && !flow.killable());

        // The kind decides, not the text.
        let mut other = crate::testing::flow();
        other.error = ROption::RSome(FlowError::new(ErrorKind::Server, FlowError::KILLED_MESSAGE));
        assert!(!other.killed());
        assert_eq!(ErrorKind::TooLarge.name(), "too_large");
        assert_eq!(ErrorKind::Client.to_string(), "client");
    }

    #[test]
    fn debug_output_reads_like_rust() {
        let mut flow = crate::testing::flow_with_response();
        flow.set_error(FlowError::new(ErrorKind::Server, "refused"));
        let text = format!("{flow:?}");
        for abi in ["RSome", "RNone", "RString", "RVec", "RArc", "RStr"] {
            assert!(!text.contains(abi), "{abi} in {text}");
        }
        assert!(
            text.contains(
                "response: Some(Response { http_version: Http11, status_code: 200, reason: \"OK\""
            ),
            "{text}"
        );
        assert!(
            text.contains("error: Some(FlowError { msg: \"refused\""),
            "{text}"
        );
        assert!(text.contains("server_conn: None"), "{text}");
        assert!(text.contains("sni: None"), "{text}");
        assert!(text.contains("trailers: None"), "{text}");
    }

    #[test]
    fn split_authority_cases() {
        assert_eq!(split_authority("a:1", 80), Some(("a", 1)));
        assert_eq!(split_authority("a", 80), Some(("a", 80)));
        assert_eq!(split_authority("[::1]:2", 80), Some(("::1", 2)));
        assert_eq!(split_authority("::1", 80), None);
        assert_eq!(split_authority(":1", 80), None);
        assert_eq!(split_authority("", 80), None);
    }
}
