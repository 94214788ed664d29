//! Turning HTTP/1 heads into flow messages: where a request goes (per mode or tunnel), and the
//! flow's request and response built from what was read.

use std::sync::Arc;

use abi_stable::std_types::{ROption, RString};
use interpose_plugin_abi::{
    flow::{default_port, split_authority},
    Body, HostPort, HttpVersion, Request, Response, Stream,
};

use super::{
    failure::Failure,
    http1::{RequestHead, ResponseHead},
    mode::{is_valid_host, Mode},
};

/// Where the requests on a client connection go.
#[derive(Debug, Clone)]
pub enum Destination {
    /// Read from each request's absolute-form target (regular mode).
    FromRequest,
    /// One server for every request (reverse mode, or inside a CONNECT tunnel).
    Fixed(Arc<FixedTarget>),
}

/// The one server of a [`Destination::Fixed`].
#[derive(Debug)]
pub struct FixedTarget {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Host name or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The `Host` value requests get (reverse mode rewrites it to the target, as mitmproxy
    /// does); `None` keeps the client's.
    pub host_header: Option<String>,
}

impl Destination {
    /// The destination of a client connection in `mode`; `keep_host_header` leaves the
    /// client's `Host` alone in reverse mode (mitmproxy's `keep_host_header`).
    pub fn for_mode(mode: &Mode, keep_host_header: bool) -> Destination {
        match mode {
            Mode::Regular | Mode::Upstream(_) => Destination::FromRequest,
            Mode::Reverse(target) => Destination::Fixed(Arc::new(FixedTarget {
                scheme: target.scheme,
                host: target.host.clone(),
                port: target.port,
                host_header: (!keep_host_header).then(|| target.authority.clone()),
            })),
        }
    }
}

/// Builds the flow's request from a request head; the body follows later.
pub fn request_from_head(
    destination: &Destination,
    head: RequestHead,
    timestamp_start: f64,
) -> Result<Request, Failure> {
    let RequestHead {
        method,
        target,
        version,
        mut headers,
    } = head;
    let absolute = target
        .split_once("://")
        .filter(|(scheme, _)| scheme.bytes().all(|b| b.is_ascii_alphanumeric()));
    let (scheme, authority, path) = match absolute {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find(['/', '?']) {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            let scheme = scheme.to_ascii_lowercase();
            if scheme != "http" && scheme != "https" {
                return Err(Failure::client(format!(
                    "unsupported scheme in request target {target}"
                )));
            }
            (Some(scheme), Some(authority), path)
        }
        None => (None, None, target.as_str()),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    let (scheme, host, port, authority): (String, String, u16, String) =
        match (destination, scheme, authority) {
            (_, Some(scheme), Some(authority)) => {
                let (host, port) = split_authority(authority, default_port(&scheme))
                    .filter(|(host, _)| is_valid_host(host))
                    .ok_or_else(|| {
                        Failure::client(format!("invalid host in request target {target}"))
                    })?;
                (scheme, host.to_string(), port, authority.to_string())
            }
            (Destination::Fixed(fixed), _, _) => (
                fixed.scheme.to_string(),
                fixed.host.clone(),
                fixed.port,
                String::new(),
            ),
            (Destination::FromRequest, _, _) => {
                return Err(Failure::client(
                    "this is a regular (forward) proxy: send absolute-form requests such as \
                     `GET http://example.com/ HTTP/1.1`, or run interpose with --mode reverse:URL",
                ))
            }
        };
    match (destination, absolute) {
        (Destination::Fixed(fixed), _) if fixed.host_header.is_some() => {
            headers.insert("Host", fixed.host_header.as_deref().unwrap_or_default());
        }
        // RFC 9112 §3.2.2: a proxy replaces `Host` with the absolute-form target's authority.
        (_, Some(_)) => headers.insert("Host", &authority),
        _ => {}
    }
    if !path.starts_with('/') && path != "*" {
        return Err(Failure::client(format!("invalid request target {target}")));
    }
    Ok(Request {
        method: RString::from(method),
        scheme: scheme.into(),
        authority: authority.into(),
        host: host.into(),
        port,
        path: path.into(),
        http_version: version,
        headers,
        content: Body::empty(),
        trailers: ROption::RNone,
        stream: Stream::default(),
        timestamp_start,
        timestamp_end: ROption::RNone,
    })
}

/// Builds the flow's response from a response head; the body follows later.
pub fn response_from_head(head: ResponseHead, timestamp_start: f64) -> Response {
    Response {
        http_version: head.version,
        status_code: head.status,
        reason: head.reason.into(),
        headers: head.headers,
        content: Body::empty(),
        trailers: ROption::RNone,
        stream: Stream::default(),
        timestamp_start,
        timestamp_end: ROption::RNone,
    }
}

/// The `Host` value for a request to `host:port` that has none.
pub fn host_value(request: &Request) -> String {
    HostPort(&request.host, request.port).to_string()
}

/// The version written on a message sent to a peer that spoke `version`.
pub fn wire_version(version: HttpVersion) -> HttpVersion {
    match version {
        HttpVersion::Http10 | HttpVersion::Http09 => HttpVersion::Http10,
        _ => HttpVersion::Http11,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::Headers;

    fn head(target: &str) -> RequestHead {
        RequestHead {
            method: "GET".into(),
            target: target.into(),
            version: HttpVersion::Http11,
            headers: [("Host", "client.example"), ("X-Mixed-Case", "1")]
                .into_iter()
                .collect::<Headers>(),
        }
    }

    #[test]
    fn regular_mode_reads_the_absolute_target() {
        let r = request_from_head(
            &Destination::FromRequest,
            head("http://example.com:8080/a?b"),
            0.0,
        )
        .unwrap();
        assert_eq!(
            (r.scheme.as_str(), r.host.as_str(), r.port, r.path.as_str()),
            ("http", "example.com", 8080, "/a?b")
        );
        assert_eq!(r.authority, "example.com:8080");
        let names: Vec<&str> = r.headers.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Host", "X-Mixed-Case"]);
        assert_eq!(
            r.headers.get("host"),
            Some("example.com:8080"),
            "Host follows the target"
        );
        let r = request_from_head(&Destination::FromRequest, head("http://[::1]"), 0.0).unwrap();
        assert_eq!((r.host.as_str(), r.port, r.path.as_str()), ("::1", 80, "/"));
    }

    #[test]
    fn regular_mode_refuses_what_it_cannot_route() {
        for target in [
            "/relative",
            "http://user@host/",
            "ftp://x/",
            "http://:80/",
            // Found by fuzz/ (request_target): hosts that name no server.
            "https://[]//[s:/",
            "http://[]:80/",
            "http://[[x]/",
            "http://[x:y]/",
            "http://a\"b/",
        ] {
            let err = request_from_head(&Destination::FromRequest, head(target), 0.0);
            assert!(err.is_err(), "{target}");
        }
    }

    #[test]
    fn fixed_destinations_route_everything_and_may_rewrite_host() {
        let reverse =
            Destination::for_mode(&"reverse:http://10.0.0.1:9000".parse().unwrap(), false);
        let r = request_from_head(&reverse, head("/x"), 0.0).unwrap();
        assert_eq!((r.host.as_str(), r.port), ("10.0.0.1", 9000));
        assert_eq!(r.headers.get("host"), Some("10.0.0.1:9000"));
        let tunnel = Destination::Fixed(Arc::new(FixedTarget {
            scheme: "http",
            host: "inner".into(),
            port: 81,
            host_header: None,
        }));
        let r = request_from_head(&tunnel, head("/y"), 0.0).unwrap();
        assert_eq!(r.headers.get("host"), Some("client.example"));
        assert_eq!(r.url(), "http://inner:81/y");
    }
}
