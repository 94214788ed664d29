//! The compiled form of a filter and its evaluation against an [`HttpFlow`].

use std::{cell::Cell, io::Write, sync::LazyLock};

use abi_stable::std_types::ROption;
use interpose_plugin_abi::{
    flow::{default_port, split_authority},
    HttpFlow, ReplaySide, Request, Response,
};
use regex::bytes::Regex;

use crate::flow::content::decoded;

/// A node of a compiled filter.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    /// An operator without an argument.
    Flag(Flag),
    /// `~c`: `None` for a number no status code can equal.
    Code(Option<u16>),
    /// An operator with a regex argument.
    Rex(RexOp, Regex),
}

/// Operators without an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flag {
    All,
    Asset,
    Error,
    Http,
    Marked,
    Replay,
    ReplayRequest,
    ReplayResponse,
    NoResponse,
    HasResponse,
    /// `~tcp`, `~udp`, `~dns`: Interpose only has HTTP flows.
    OtherFlowType,
    WebSocket,
}

/// Operators with a regex argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RexOp {
    Body,
    BodyRequest,
    BodyResponse,
    ContentType,
    ContentTypeRequest,
    ContentTypeResponse,
    Domain,
    Dst,
    Header,
    HeaderRequest,
    HeaderResponse,
    Method,
    Src,
    Url,
    Meta,
    Marker,
    Comment,
}

impl RexOp {
    /// `(multi_line, dot_matches_new_line)`, as mitmproxy compiles each operator's regex.
    pub(crate) fn flags(self) -> (bool, bool) {
        match self {
            RexOp::Header | RexOp::HeaderRequest | RexOp::HeaderResponse => (true, false),
            RexOp::Meta | RexOp::Comment => (true, false),
            RexOp::Body | RexOp::BodyRequest | RexOp::BodyResponse => (false, true),
            _ => (false, false),
        }
    }
}

/// What an operator name (without the `~`) stands for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Operator {
    Flag(Flag),
    Rex(RexOp),
    Code,
}

/// Looks up an operator by its name without the `~` (`"hq"` for `~hq`).
pub(crate) fn operator(name: &str) -> Option<Operator> {
    use Operator::{Code, Flag as F, Rex as R};
    Some(match name {
        "a" => F(Flag::Asset),
        "all" => F(Flag::All),
        "b" => R(RexOp::Body),
        "bq" => R(RexOp::BodyRequest),
        "bs" => R(RexOp::BodyResponse),
        "c" => Code,
        "comment" => R(RexOp::Comment),
        "d" => R(RexOp::Domain),
        "dns" | "tcp" | "udp" => F(Flag::OtherFlowType),
        "dst" => R(RexOp::Dst),
        "e" => F(Flag::Error),
        "h" => R(RexOp::Header),
        "hq" => R(RexOp::HeaderRequest),
        "hs" => R(RexOp::HeaderResponse),
        "http" => F(Flag::Http),
        "m" => R(RexOp::Method),
        "marked" => F(Flag::Marked),
        "marker" => R(RexOp::Marker),
        "meta" => R(RexOp::Meta),
        "q" => F(Flag::NoResponse),
        "replay" => F(Flag::Replay),
        "replayq" => F(Flag::ReplayRequest),
        "replays" => F(Flag::ReplayResponse),
        "s" => F(Flag::HasResponse),
        "src" => R(RexOp::Src),
        "t" => R(RexOp::ContentType),
        "tq" => R(RexOp::ContentTypeRequest),
        "ts" => R(RexOp::ContentTypeResponse),
        "u" => R(RexOp::Url),
        "websocket" => F(Flag::WebSocket),
        _ => return None,
    })
}

/// mitmproxy's asset content types, searched (unanchored, case-sensitive) in the response's
/// Content-Type; `image/.*` and friends reduce to their prefixes for an unanchored search.
static ASSET_TYPES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        "text/javascript|application/x-javascript|application/javascript|text/css|image/|font/\
         |application/font",
    )
    .expect("a valid built-in regex")
});

thread_local! {
    /// The reusable buffer for the values that have to be written out before a regex can run
    /// on them (header blocks, URLs, addresses, metadata).
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Above this, the scratch buffer is not kept for the next flow.
const SCRATCH_KEEP: usize = 64 * 1024;

/// Runs `f` on the cleared thread-local buffer. Taking the buffer out of its cell (instead of
/// borrowing it) keeps this sound even if `f` were ever to nest another call.
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut buf = cell.take();
        buf.clear();
        let result = f(&mut buf);
        if buf.capacity() <= SCRATCH_KEEP {
            cell.set(buf);
        }
        result
    })
}

impl Node {
    pub(crate) fn eval(&self, flow: &HttpFlow) -> bool {
        match self {
            Node::And(a, b) => a.eval(flow) && b.eval(flow),
            Node::Or(a, b) => a.eval(flow) || b.eval(flow),
            Node::Not(a) => !a.eval(flow),
            Node::Flag(flag) => flag.eval(flow),
            Node::Code(code) => match (&flow.response, code) {
                (ROption::RSome(response), Some(code)) => response.status_code == *code,
                _ => false,
            },
            Node::Rex(op, re) => op.eval(re, flow),
        }
    }
}

impl Flag {
    fn eval(self, flow: &HttpFlow) -> bool {
        match self {
            Flag::All | Flag::Http => true,
            Flag::OtherFlowType => false,
            Flag::Asset => response(flow).is_some_and(|r| content_type_matches(&ASSET_TYPES, r)),
            Flag::Error => flow.error.is_some(),
            Flag::Marked => !flow.marked.is_empty(),
            Flag::Replay => flow.is_replay.is_some(),
            Flag::ReplayRequest => flow.is_replay == ROption::RSome(ReplaySide::Request),
            Flag::ReplayResponse => flow.is_replay == ROption::RSome(ReplaySide::Response),
            Flag::NoResponse => flow.response.is_none(),
            Flag::HasResponse => flow.response.is_some(),
            Flag::WebSocket => flow.websocket.is_some(),
        }
    }
}

fn response(flow: &HttpFlow) -> Option<&Response> {
    flow.response.as_ref().into_option()
}

impl RexOp {
    fn eval(self, re: &Regex, flow: &HttpFlow) -> bool {
        let request = &flow.request;
        match self {
            RexOp::Body => {
                request_body_matches(re, request)
                    || response(flow).is_some_and(|r| response_body_matches(re, r))
                    || websocket_matches(re, flow, |_| true)
            }
            RexOp::BodyRequest => {
                request_body_matches(re, request) || websocket_matches(re, flow, |from| from)
            }
            RexOp::BodyResponse => {
                response(flow).is_some_and(|r| response_body_matches(re, r))
                    || websocket_matches(re, flow, |from| !from)
            }
            RexOp::ContentType => {
                content_type_matches_request(re, request)
                    || response(flow).is_some_and(|r| content_type_matches(re, r))
            }
            RexOp::ContentTypeRequest => content_type_matches_request(re, request),
            RexOp::ContentTypeResponse => {
                response(flow).is_some_and(|r| content_type_matches(re, r))
            }
            RexOp::Domain => {
                re.is_match(request.host.as_bytes())
                    || re.is_match(request.pretty_host().as_bytes())
            }
            RexOp::Dst => match &flow.server_conn {
                ROption::RSome(server) => match &server.address {
                    ROption::RSome(address) => with_scratch(|buf| {
                        // mitmproxy writes `host:port` without brackets, even for IPv6.
                        let _ = write!(buf, "{}:{}", address.host, address.port);
                        re.is_match(buf)
                    }),
                    ROption::RNone => false,
                },
                ROption::RNone => false,
            },
            RexOp::Src => match flow.client_conn.conn.peername.get() {
                Some(peer) => with_scratch(|buf| {
                    let _ = write!(buf, "{}:{}", peer.ip(), peer.port());
                    re.is_match(buf)
                }),
                None => false,
            },
            RexOp::Header => {
                headers_match(re, &request.headers)
                    || response(flow).is_some_and(|r| headers_match(re, &r.headers))
            }
            RexOp::HeaderRequest => headers_match(re, &request.headers),
            RexOp::HeaderResponse => response(flow).is_some_and(|r| headers_match(re, &r.headers)),
            RexOp::Method => re.is_match(request.method.as_bytes()),
            RexOp::Url => with_scratch(|buf| {
                write_pretty_url(buf, request);
                re.is_match(buf)
            }),
            RexOp::Meta => with_scratch(|buf| {
                for (i, (key, value)) in flow.metadata.iter().enumerate() {
                    if i > 0 {
                        buf.push(b'\n');
                    }
                    let _ = write!(buf, "{key}: {value}");
                }
                re.is_match(buf)
            }),
            RexOp::Marker => re.is_match(flow.marked.as_bytes()),
            RexOp::Comment => re.is_match(flow.comment.as_bytes()),
        }
    }
}

fn request_body_matches(re: &Regex, request: &Request) -> bool {
    re.is_match(&decoded(&request.headers, &request.content))
}

fn response_body_matches(re: &Regex, response: &Response) -> bool {
    re.is_match(&decoded(&response.headers, &response.content))
}

/// Whether a WebSocket message whose sender passes `side(from_client)` matches.
fn websocket_matches(re: &Regex, flow: &HttpFlow, side: impl Fn(bool) -> bool) -> bool {
    match &flow.websocket {
        ROption::RSome(ws) => ws
            .messages
            .iter()
            .any(|m| side(m.from_client) && re.is_match(&m.content)),
        ROption::RNone => false,
    }
}

fn content_type_matches_request(re: &Regex, request: &Request) -> bool {
    request
        .headers
        .get_all_bytes("content-type")
        .any(|value| re.is_match(value))
}

fn content_type_matches(re: &Regex, response: &Response) -> bool {
    response
        .headers
        .get_all_bytes("content-type")
        .any(|value| re.is_match(value))
}

/// Whether `re` finds a match in the header block written as `Name: value\r\n` lines.
fn headers_match(re: &Regex, headers: &interpose_plugin_abi::Headers) -> bool {
    if headers.is_empty() {
        return re.is_match(b"");
    }
    with_scratch(|buf| {
        buf.reserve(headers.byte_len() + 4 * headers.len());
        for (name, value) in headers.iter() {
            buf.extend_from_slice(name.as_bytes());
            buf.extend_from_slice(b": ");
            buf.extend_from_slice(value);
            buf.extend_from_slice(b"\r\n");
        }
        re.is_match(buf)
    })
}

/// Writes mitmproxy's `pretty_url`: the URL with the host (and port) from the `Host` header
/// or HTTP/2 authority when there is one; a CONNECT request's is its authority.
fn write_pretty_url(buf: &mut Vec<u8>, request: &Request) {
    if request.method.eq_ignore_ascii_case("CONNECT") && !request.authority.is_empty() {
        buf.extend_from_slice(request.authority.as_bytes());
        return;
    }
    let scheme = request.scheme.as_str();
    let (host, port, path) = match request.host_header().filter(|h| !h.is_empty()) {
        Some(header) => {
            // mitmproxy parses the header leniently: a malformed one is all host.
            let (host, port) = split_authority(header, default_port(scheme))
                .unwrap_or((header, default_port(scheme)));
            let path = if request.path == "*" {
                ""
            } else {
                request.path.as_str()
            };
            (host, port, path)
        }
        None => (request.host.as_str(), request.port, request.path.as_str()),
    };
    let _ = write!(buf, "{scheme}://");
    if host.contains(':') {
        let _ = write!(buf, "[{host}]");
    } else {
        buf.extend_from_slice(host.as_bytes());
    }
    if port != default_port(scheme) {
        let _ = write!(buf, ":{port}");
    }
    buf.extend_from_slice(path.as_bytes());
}

#[cfg(test)]
pub(crate) fn pretty_url(request: &Request) -> String {
    let mut buf = Vec::new();
    write_pretty_url(&mut buf, request);
    String::from_utf8(buf).expect("URLs are UTF-8")
}
