//! Conversions between hyper's message parts and the plugin ABI's flow types: headers are
//! copied once per message in each direction, bodies are handed over without copying.

use std::{ffi::c_void, fmt};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue};
use interpose_plugin_abi::{body::ReleaseFn, Body, Headers};

/// Fields that describe one hop's connection and must not be forwarded (RFC 9110 7.6.1).
/// `Content-Length` is not among them: the proxy decides it separately.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// A header an addon set that cannot go on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidHeader {
    /// The offending field name (lossy if it was not text).
    pub name: String,
    /// Whether the name or the value is invalid.
    pub part: &'static str,
}

impl fmt::Display for InvalidHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid header {} {:?}", self.part, self.name)
    }
}

impl std::error::Error for InvalidHeader {}

/// Copies hyper's header map into ABI headers (names as hyper keeps them: lower case).
pub fn headers_from_hyper(map: &HeaderMap) -> Headers {
    let bytes = map
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    let mut headers = Headers::with_capacity(map.len(), bytes);
    for (name, value) in map {
        headers.append(name.as_str(), value.as_bytes());
    }
    headers
}

/// Writes `headers` into `out` for sending, leaving out hop-by-hop fields, the fields the
/// `Connection` header names and, unless `keep_content_length`, `Content-Length`.
pub fn headers_to_hyper(
    headers: &Headers,
    keep_content_length: bool,
    out: &mut HeaderMap,
) -> Result<(), InvalidHeader> {
    out.reserve(headers.len());
    let connection_tokens: Vec<&[u8]> = headers
        .get_all("connection")
        .flat_map(|v| v.split(|b| *b == b','))
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
        .collect();
    for (name, value) in headers.iter() {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| InvalidHeader {
            name: name.to_string(),
            part: "name",
        })?;
        if HOP_BY_HOP.contains(&name)
            || (!keep_content_length && name == header::CONTENT_LENGTH)
            || connection_tokens
                .iter()
                .any(|t| t.eq_ignore_ascii_case(name.as_str().as_bytes()))
        {
            continue;
        }
        let value = HeaderValue::from_bytes(value).map_err(|_| InvalidHeader {
            name: name.to_string(),
            part: "value",
        })?;
        out.append(name, value);
    }
    Ok(())
}

unsafe extern "C" fn release_bytes(owner: *mut c_void, _ptr: *const u8, _len: usize) {
    // SAFETY: `body_from_bytes` stored a leaked `Box<Bytes>` in `owner`; the body calls this
    // once, when dropped.
    unsafe { drop(Box::from_raw(owner as *mut Bytes)) }
}

/// Wraps bytes read off the wire as a body, without copying.
pub fn body_from_bytes(bytes: Bytes) -> Body {
    if bytes.is_empty() {
        return Body::empty();
    }
    let (ptr, len) = (bytes.as_ptr(), bytes.len());
    let owner = Box::into_raw(Box::new(bytes)) as *mut c_void;
    // SAFETY: the boxed `Bytes` keeps `ptr..ptr+len` alive and unchanged until
    // `release_bytes` frees it; `Bytes` is `Send + Sync`, so any thread may release it.
    unsafe { Body::from_raw_parts(ptr, len, owner, Some(release_bytes)) }
}

/// The host's `Bytes` inside `body`, if the host made it.
fn host_bytes(body: &Body) -> Option<&Bytes> {
    let release = body.release_fn()?;
    if !std::ptr::fn_addr_eq(release, release_bytes as ReleaseFn) {
        return None;
    }
    let owner = body.owner();
    // SAFETY: the release function is ours, so the owner is the `Box<Bytes>` leaked by
    // `body_from_bytes`, alive as long as `body`.
    Some(unsafe { &*(owner as *const Bytes) })
}

/// The bytes of a body for sending while the flow keeps the body: a reference-counted share
/// for bodies the proxy read, a copy for bodies an addon built.
pub fn share_bytes(body: &Body) -> Bytes {
    match host_bytes(body) {
        Some(bytes) => bytes.clone(),
        None => Bytes::copy_from_slice(body),
    }
}

/// A body addons built, kept alive as the owner of the `Bytes` that point into it.
struct ForeignBody(Body);

impl AsRef<[u8]> for ForeignBody {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// Turns a body back into `Bytes` for sending, without copying: the host's own bodies are
/// unwrapped, any other body becomes the owner of the returned `Bytes`.
pub fn bytes_from_body(body: Body) -> Bytes {
    if body.is_empty() {
        return Bytes::new();
    }
    if host_bytes(&body).is_some() {
        let (_, _, owner, _) = body.into_raw_parts();
        // SAFETY: `host_bytes` recognised our release function, so `owner` is the `Box<Bytes>`
        // leaked by `body_from_bytes`; taking the parts apart means the body will not release
        // it again.
        return *unsafe { Box::from_raw(owner as *mut Bytes) };
    }
    Bytes::from_owner(ForeignBody(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_without_copies() {
        let original = Bytes::from(vec![7u8; 1000]);
        let ptr = original.as_ptr();
        let body = body_from_bytes(original);
        assert_eq!(body.as_ptr(), ptr);
        let back = bytes_from_body(body);
        assert_eq!(back.as_ptr(), ptr);
        assert_eq!(back.len(), 1000);

        let built = Body::from(b"from an addon".to_vec());
        let built_ptr = built.as_ptr();
        let bytes = bytes_from_body(built);
        assert_eq!(bytes.as_ptr(), built_ptr);
        assert_eq!(&bytes[..], b"from an addon");
        assert!(body_from_bytes(Bytes::new()).is_empty());
    }

    #[test]
    fn hop_by_hop_fields_are_not_forwarded() {
        let headers: Headers = [
            ("Host", "example.com"),
            ("Connection", "keep-alive, X-Secret"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "5"),
            ("X-Kept", "a"),
            ("x-kept", "b"),
        ]
        .into_iter()
        .collect();
        let mut map = HeaderMap::new();
        headers_to_hyper(&headers, false, &mut map).unwrap();
        let names: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["host", "x-kept"]);
        assert_eq!(map.get_all("x-kept").iter().count(), 2);

        let mut map = HeaderMap::new();
        headers_to_hyper(&headers, true, &mut map).unwrap();
        assert_eq!(map.get("content-length").unwrap(), "5");
    }

    #[test]
    fn invalid_headers_are_reported() {
        let mut headers = Headers::new();
        headers.append("bad name", "x");
        let err = headers_to_hyper(&headers, false, &mut HeaderMap::new()).unwrap_err();
        assert_eq!(err.part, "name");
        let mut headers = Headers::new();
        headers.append("x", "line\nbreak");
        let err = headers_to_hyper(&headers, false, &mut HeaderMap::new()).unwrap_err();
        assert_eq!(err.to_string(), "invalid header value \"x\"");
    }

    #[test]
    fn from_hyper_keeps_every_value() {
        let mut map = HeaderMap::new();
        map.append("set-cookie", HeaderValue::from_static("a=1"));
        map.append("set-cookie", HeaderValue::from_static("b=2"));
        map.insert("x-one", HeaderValue::from_static("1"));
        let headers = headers_from_hyper(&map);
        assert_eq!(headers.len(), 3);
        assert_eq!(headers.get_all("set-cookie").count(), 2);
    }
}
