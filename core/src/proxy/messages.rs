//! Turning hyper messages into flow messages and back, per proxy mode, and the responses the
//! proxy writes itself.

use abi_stable::std_types::{ROption, RString};
use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode, Uri, Version};
use http_body_util::Full;
use hyper::ext::ReasonPhrase;
use interpose_plugin_abi::{
    flow::{default_port, reason_phrase, split_authority},
    Body, HostPort, HttpVersion, Request, Response, Stream,
};

use super::mode::Mode;
use crate::flow::{bytes_from_body, headers_from_hyper, headers_to_hyper, share_bytes};

/// What the proxy sends to clients.
pub type ProxyBody = Full<Bytes>;

/// A response the proxy writes itself: status plus a one-line text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The status code.
    pub status: StatusCode,
    /// The explanation sent as the body.
    pub message: String,
}

impl Refusal {
    /// A refusal with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
        }
    }

    /// The response: `text/plain`, `<code> <reason>: <message>`.
    pub fn into_response(self) -> hyper::Response<ProxyBody> {
        let text = format!(
            "{} {}: {}\n",
            self.status.as_u16(),
            self.status.canonical_reason().unwrap_or(""),
            self.message
        );
        let mut response = hyper::Response::new(Full::new(Bytes::from(text)));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

fn http_version(version: Version) -> HttpVersion {
    match version {
        Version::HTTP_09 => HttpVersion::Http09,
        Version::HTTP_10 => HttpVersion::Http10,
        Version::HTTP_2 => HttpVersion::Http2,
        Version::HTTP_3 => HttpVersion::Http3,
        _ => HttpVersion::Http11,
    }
}

/// Where a request goes, read from its request line (regular mode) or the reverse target.
struct Destination<'a> {
    scheme: &'a str,
    host: &'a str,
    port: u16,
    authority: &'a str,
}

/// Builds the flow's request from a request head; the body follows later.
pub fn request_from_parts(
    mode: &Mode,
    parts: &http::request::Parts,
    timestamp_start: f64,
) -> Result<Request, Refusal> {
    if parts.method == Method::CONNECT {
        return Err(Refusal::new(
            StatusCode::NOT_IMPLEMENTED,
            "CONNECT (HTTPS through the proxy) is not supported yet",
        ));
    }
    let uri = &parts.uri;
    let authority = uri.authority().map_or("", |a| a.as_str());
    let destination = match mode {
        Mode::Regular => {
            let scheme = uri.scheme_str().ok_or_else(|| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "this is a regular (forward) proxy: send absolute-form requests such as \
                     `GET http://example.com/ HTTP/1.1`, or run interpose with \
                     --mode reverse:URL",
                )
            })?;
            let (host, port) =
                split_authority(authority, default_port(scheme)).ok_or_else(|| {
                    Refusal::new(
                        StatusCode::BAD_REQUEST,
                        format!("invalid host in request target {uri}"),
                    )
                })?;
            Destination {
                scheme,
                host,
                port,
                authority,
            }
        }
        Mode::Reverse(target) => Destination {
            scheme: target.scheme,
            host: &target.host,
            port: target.port,
            authority,
        },
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = headers_from_hyper(&parts.headers);
    if let Mode::Reverse(target) = mode {
        headers.insert("host", &target.authority);
    }
    Ok(Request {
        method: parts.method.as_str().into(),
        scheme: destination.scheme.to_ascii_lowercase().into(),
        authority: destination.authority.into(),
        host: destination.host.into(),
        port: destination.port,
        path: path.into(),
        http_version: http_version(parts.version),
        headers,
        content: Body::empty(),
        stream: Stream::off(),
        trailers: ROption::RNone,
        timestamp_start,
        timestamp_end: ROption::RNone,
    })
}

/// Builds the request to send to the server from the flow's request (origin-form, with a
/// `Host` header, the body shared without copying when the proxy read it).
pub fn request_to_hyper(request: &Request) -> Result<hyper::Request<ProxyBody>, Refusal> {
    let invalid = |what: &str| {
        Refusal::new(
            StatusCode::BAD_GATEWAY,
            format!("the request has an invalid {what} (set by an addon?)"),
        )
    };
    let method = Method::from_bytes(request.method.as_bytes()).map_err(|_| invalid("method"))?;
    let uri = Uri::try_from(request.path.as_str()).map_err(|_| invalid("path"))?;
    let mut outgoing = hyper::Request::new(Full::new(share_bytes(&request.content)));
    *outgoing.method_mut() = method;
    *outgoing.uri_mut() = uri;
    *outgoing.version_mut() = match request.http_version {
        HttpVersion::Http10 | HttpVersion::Http09 => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let headers = outgoing.headers_mut();
    headers_to_hyper(&request.headers, false, headers)
        .map_err(|e| invalid(&format!("header ({e})")))?;
    if !headers.contains_key(header::HOST) {
        let host = HostPort(&request.host, request.port).to_string();
        let value = HeaderValue::try_from(host).map_err(|_| invalid("host"))?;
        headers.insert(header::HOST, value);
    }
    Ok(outgoing)
}

/// Builds the flow's response from a response head; the body follows later.
pub fn response_from_parts(parts: &http::response::Parts, timestamp_start: f64) -> Response {
    let reason = match parts.extensions.get::<ReasonPhrase>() {
        Some(reason) => RString::from(String::from_utf8_lossy(reason.as_bytes()).as_ref()),
        None => parts.status.canonical_reason().unwrap_or("").into(),
    };
    Response {
        http_version: http_version(parts.version),
        status_code: parts.status.as_u16(),
        reason,
        headers: headers_from_hyper(&parts.headers),
        content: Body::empty(),
        stream: Stream::off(),
        trailers: ROption::RNone,
        timestamp_start,
        timestamp_end: ROption::RNone,
    }
}

/// Builds the response for the client. Responses that carry no body (to `HEAD`, 1xx, 204,
/// 304) keep their `Content-Length`; all others get one computed from the body.
pub fn response_to_hyper(
    response: Response,
    request_method: &str,
) -> Result<hyper::Response<ProxyBody>, Refusal> {
    let status = StatusCode::from_u16(response.status_code).map_err(|_| {
        Refusal::new(
            StatusCode::BAD_GATEWAY,
            format!("invalid status code {}", response.status_code),
        )
    })?;
    let bodiless = request_method == "HEAD"
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let body = if bodiless {
        Bytes::new()
    } else {
        bytes_from_body(response.content)
    };
    let mut outgoing = hyper::Response::new(Full::new(body));
    *outgoing.status_mut() = status;
    headers_to_hyper(&response.headers, bodiless, outgoing.headers_mut()).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_GATEWAY,
            format!("the response has an {e} (set by an addon?)"),
        )
    })?;
    if response.reason != reason_phrase(response.status_code) && !response.reason.is_empty() {
        if let Ok(reason) = ReasonPhrase::try_from(response.reason.as_bytes()) {
            outgoing.extensions_mut().insert(reason);
        }
    }
    Ok(outgoing)
}
