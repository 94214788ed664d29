//! Form and query encodings: `application/x-www-form-urlencoded` (queries and form bodies),
//! `multipart/form-data`, and `Content-Type` parsing, as mitmproxy's `net.http.url`,
//! `net.http.multipart` and `net.http.headers` do them.
//!
//! ```
//! use interpose_plugin_abi::{testing, MultiDict};
//!
//! let mut flow = testing::flow();
//! let mut form = MultiDict::new();
//! form.append("user", "jo doe");
//! flow.request.set_urlencoded_form(&form);
//! assert_eq!(flow.request.raw_content(), b"user=jo+doe");
//! assert_eq!(flow.request.urlencoded_form().get("user").map(String::as_str), Some("jo doe"));
//! ```

use std::fmt;

use crate::multidict::MultiDict;

/// A parsed `Content-Type`: type, subtype and parameters (mitmproxy's tuple).
///
/// See the example on [`parse_content_type`].
pub type ContentType = (String, String, Vec<(String, String)>);

/// Splits a `Content-Type` value into lower-cased type and subtype and its parameters, in order,
/// names and values trimmed (mitmproxy's `parse_content_type`); `None` without a `/`.
///
/// ```
/// use interpose_plugin_abi::forms::parse_content_type;
///
/// let (ty, sub, params) = parse_content_type("Text/HTML; charset=UTF-8").unwrap();
/// assert_eq!((ty.as_str(), sub.as_str()), ("text", "html"));
/// assert_eq!(params, [("charset".to_string(), "UTF-8".to_string())]);
/// assert!(parse_content_type("nonsense").is_none());
/// ```
pub fn parse_content_type(value: &str) -> Option<ContentType> {
    let (media, params) = value.split_once(';').unwrap_or((value, ""));
    let (ty, sub) = media.split_once('/')?;
    let mut parsed: Vec<(String, String)> = Vec::new();
    if value.contains(';') {
        for clause in params.split(';') {
            if let Some((k, v)) = clause.split_once('=') {
                let (k, v) = (k.trim().to_string(), v.trim().to_string());
                // A repeated parameter keeps its first position and its last value (a dict).
                match parsed.iter_mut().find(|(name, _)| *name == k) {
                    Some(entry) => entry.1 = v,
                    None => parsed.push((k, v)),
                }
            }
        }
    }
    Some((ty.to_lowercase(), sub.to_lowercase(), parsed))
}

/// Writes a `Content-Type` value back (mitmproxy's `assemble_content_type`): `type/subtype`,
/// then `; name=value` per parameter.
///
/// ```
/// use interpose_plugin_abi::forms::assemble_content_type;
///
/// let params = [("charset".to_string(), "utf-8".to_string())];
/// assert_eq!(assemble_content_type("text", "plain", &params), "text/plain; charset=utf-8");
/// ```
pub fn assemble_content_type(ty: &str, subtype: &str, params: &[(String, String)]) -> String {
    let mut out = format!("{ty}/{subtype}");
    for (k, v) in params {
        out.push_str("; ");
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Decodes a query string or form body into its pairs, in order, repeats and blank values
/// kept (mitmproxy's `url.decode`, Python's `parse_qsl(keep_blank_values=True)`): pairs are
/// separated by `&`, a pair without `=` has an empty value, `+` is a space and `%XX` escapes
/// are decoded. Decoded bytes that are not UTF-8 become U+FFFD (mitmproxy keeps them as
/// surrogate escapes, which Rust strings cannot hold).
///
/// ```
/// use interpose_plugin_abi::forms::decode_urlencoded;
///
/// let q = decode_urlencoded("q=a+b%21&flag&q=2&=x");
/// let pairs: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
/// assert_eq!(pairs, [("q", "a b!"), ("flag", ""), ("q", "2"), ("", "x")]);
/// ```
pub fn decode_urlencoded(text: &str) -> MultiDict<String, String> {
    text.split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            (unquote_plus(k), unquote_plus(v))
        })
        .collect()
}

/// Undoes `+` and `%XX` escapes (Python's `unquote_plus`).
///
/// ```
/// use interpose_plugin_abi::forms::unquote_plus;
///
/// assert_eq!(unquote_plus("caf%C3%A9+au+lait"), "café au lait");
/// ```
pub fn unquote_plus(text: &str) -> String {
    if !text.contains(['+', '%']) {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| char::from(b).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Encodes pairs as a query string or form body (mitmproxy's `url.encode`, Python's
/// `urlencode` with `quote_plus`): letters, digits and `_.-~` stay, a space becomes `+`,
/// every other byte of the UTF-8 form becomes `%XX` (upper-case hex); pairs are joined with
/// `&`. When `similar_to` (the previous encoding) has a pair without `=`, pairs with an empty
/// value are written without `=` too.
///
/// ```
/// use interpose_plugin_abi::{forms::encode_urlencoded, MultiDict};
///
/// let form: MultiDict<String, String> = [("q", "a b&c/d"), ("e", "")]
///     .into_iter()
///     .map(|(k, v)| (k.to_string(), v.to_string()))
///     .collect();
/// assert_eq!(encode_urlencoded(&form, None), "q=a+b%26c%2Fd&e=");
/// assert_eq!(encode_urlencoded(&form, Some("x&y=1")), "q=a+b%26c%2Fd&e");
/// ```
pub fn encode_urlencoded(pairs: &MultiDict<String, String>, similar_to: Option<&str>) -> String {
    let bare_keys = similar_to.is_some_and(|s| s.split('&').any(|p| !p.contains('=')));
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        quote_plus_into(k, &mut out);
        if !(bare_keys && v.is_empty()) {
            out.push('=');
            quote_plus_into(v, &mut out);
        }
    }
    out
}

/// Python's `quote_plus(text, safe="")`.
///
/// ```
/// use interpose_plugin_abi::forms::quote_plus;
/// assert_eq!(quote_plus("a b+c=é~"), "a+b%2Bc%3D%C3%A9~");
/// ```
pub fn quote_plus(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    quote_plus_into(text, &mut out);
    out
}

fn quote_plus_into(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    }
}

/// Why a multipart form could not be written.
///
/// ```
/// use interpose_plugin_abi::{forms::encode_multipart, MultiDict, MultipartError};
///
/// let mut form = MultiDict::<Vec<u8>, Vec<u8>>::new();
/// form.append("file", "--b0 inside");
/// let err = encode_multipart("multipart/form-data", &form).unwrap_err();
/// assert!(matches!(err, MultipartError::NoBoundary { .. }));
/// let err = encode_multipart("multipart/form-data; boundary=b0", &form).unwrap_err();
/// assert_eq!(err, MultipartError::BoundaryInValue { boundary: "b0".into() });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultipartError {
    /// The `Content-Type` has no usable (ASCII) `boundary` parameter.
    NoBoundary {
        /// The `Content-Type` value.
        content_type: String,
    },
    /// A value contains the boundary, so the form would not read back.
    BoundaryInValue {
        /// The boundary.
        boundary: String,
    },
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MultipartError::NoBoundary { content_type } => {
                write!(f, "no multipart boundary in Content-Type {content_type:?}")
            }
            MultipartError::BoundaryInValue { boundary } => {
                write!(f, "multipart boundary {boundary:?} found in a value")
            }
        }
    }
}

impl std::error::Error for MultipartError {}

/// The `boundary` parameter of a `Content-Type`, surrounding quotes removed (ASCII only).
fn boundary(content_type: &str) -> Option<String> {
    let (_, _, params) = parse_content_type(content_type)?;
    let value = params.into_iter().find(|(k, _)| k == "boundary")?.1;
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(&value);
    (!value.is_empty() && value.is_ascii()).then(|| value.to_string())
}

/// Reads a `multipart/form-data` body into `(name, value)` pairs, in order (mitmproxy's
/// `decode_multipart`): parts without a `name="..."` in their `Content-Disposition` are
/// skipped, and a body without a boundary in `content_type` gives no pairs.
///
/// Values keep their line breaks (mitmproxy joins a multi-line value's lines without them);
/// the line break before the next boundary belongs to the delimiter, as RFC 7578 says.
///
/// ```
/// use interpose_plugin_abi::forms::decode_multipart;
///
/// let body = b"--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--xyz--\r\n";
/// let form = decode_multipart("multipart/form-data; boundary=xyz", body);
/// assert_eq!(form.get(&b"a"[..]).map(Vec::as_slice), Some(&b"1"[..]));
/// ```
pub fn decode_multipart(content_type: &str, content: &[u8]) -> MultiDict<Vec<u8>, Vec<u8>> {
    let mut form = MultiDict::new();
    let Some(boundary) = boundary(content_type) else {
        return form;
    };
    let delimiter = [b"--", boundary.as_bytes()].concat();
    let mut chunks = split_bytes(content, &delimiter);
    chunks.next(); // The preamble.
    for chunk in chunks {
        if chunk.starts_with(b"--") {
            break; // The close delimiter.
        }
        // The rest of the delimiter line, then header lines up to an empty line.
        let Some(line_end) = find(chunk, b"\n") else {
            continue;
        };
        let part = &chunk[line_end + 1..];
        let (head, body) = match find(part, b"\r\n\r\n") {
            Some(i) if find(&part[..i], b"\n\n").is_none() => (&part[..i], &part[i + 4..]),
            _ => match find(part, b"\n\n") {
                Some(i) => (&part[..i], &part[i + 2..]),
                None => continue,
            },
        };
        let body = body
            .strip_suffix(b"\r\n")
            .or_else(|| body.strip_suffix(b"\n"))
            .unwrap_or(body);
        let name = head
            .split(|&b| b == b'\n')
            .filter(|line| {
                line.len() > 20 && line[..20].eq_ignore_ascii_case(b"content-disposition:")
            })
            .find_map(disposition_name);
        if let Some(name) = name {
            form.append(name.to_vec(), body.to_vec());
        }
    }
    form
}

/// The `name="..."` of a `Content-Disposition` line (not `filename="..."`).
fn disposition_name(line: &[u8]) -> Option<&[u8]> {
    let mut from = 0;
    while let Some(at) = find(&line[from..], b"name=\"") {
        let start = from + at;
        let word_before = start > 0 && {
            let b = line[start - 1];
            b.is_ascii_alphanumeric() || b == b'_'
        };
        let value = &line[start + 6..];
        if !word_before {
            let end = value.iter().position(|&b| b == b'"')?;
            if end > 0 {
                return Some(&value[..end]);
            }
        }
        from = start + 6;
    }
    None
}

/// Writes `form` as a `multipart/form-data` body with the boundary of `content_type`
/// (mitmproxy's `encode_multipart`): one part per pair, each with
/// `Content-Disposition: form-data; name="..."` and `Content-Type: text/plain; charset=utf-8`;
/// pairs with an empty name are left out.
///
/// Each value is followed directly by the next delimiter (mitmproxy writes one more empty line
/// there, which RFC 7578 readers take as part of the value). A value containing the boundary
/// is an error.
///
/// ```
/// use interpose_plugin_abi::{forms::{decode_multipart, encode_multipart}, MultiDict};
///
/// let ct = "multipart/form-data; boundary=b0";
/// let mut form = MultiDict::<Vec<u8>, Vec<u8>>::new();
/// form.append("field", "two\r\nlines");
/// let body = encode_multipart(ct, &form).unwrap();
/// assert!(body.starts_with(b"--b0\r\nContent-Disposition: form-data; name=\"field\"\r\n"));
/// assert_eq!(decode_multipart(ct, &body), form);
/// ```
pub fn encode_multipart(
    content_type: &str,
    form: &MultiDict<Vec<u8>, Vec<u8>>,
) -> Result<Vec<u8>, MultipartError> {
    let boundary = boundary(content_type).ok_or_else(|| MultipartError::NoBoundary {
        content_type: content_type.to_string(),
    })?;
    let delimiter = [b"--", boundary.as_bytes()].concat();
    let mut out = Vec::new();
    for (name, value) in form.iter() {
        if find(value, &delimiter).is_some() {
            return Err(MultipartError::BoundaryInValue { boundary });
        }
        if name.is_empty() {
            continue;
        }
        out.extend_from_slice(&delimiter);
        out.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"");
        out.extend_from_slice(name);
        out.extend_from_slice(b"\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(&delimiter);
    out.extend_from_slice(b"--\r\n");
    Ok(out)
}

/// A fresh boundary like mitmproxy's: twenty dashes and 32 random hex digits.
pub(crate) fn new_boundary() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = "-".repeat(20);
    for round in 0..2u64 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(round);
        if let Ok(elapsed) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            hasher.write_u128(elapsed.as_nanos());
        }
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn split_bytes<'a>(mut haystack: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        match find(haystack, needle) {
            Some(i) => {
                let chunk = &haystack[..i];
                haystack = &haystack[i + needle.len()..];
                Some(chunk)
            }
            None => {
                done = true;
                Some(haystack)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(d: &MultiDict<String, String>) -> Vec<(&str, &str)> {
        d.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn urlencoded_decoding_follows_parse_qsl() {
        let d = decode_urlencoded("a=1&&b=%zz&c=%4&d=%41%42;e=5&f=%C3%A9&g=%FF");
        assert_eq!(
            pairs(&d),
            [
                ("a", "1"),
                ("b", "%zz"),
                ("c", "%4"),
                ("d", "AB;e=5"),
                ("f", "é"),
                ("g", "\u{fffd}")
            ]
        );
        assert!(decode_urlencoded("").is_empty());
        assert_eq!(pairs(&decode_urlencoded("a==b")), [("a", "=b")]);
        assert_eq!(unquote_plus("%"), "%");
        assert_eq!(unquote_plus("%4"), "%4");
        assert_eq!(unquote_plus("100%25"), "100%");
    }

    #[test]
    fn urlencoded_round_trip() {
        let d = decode_urlencoded("q=a+b%2Bc&x=%E2%82%AC&empty=");
        assert_eq!(encode_urlencoded(&d, None), "q=a+b%2Bc&x=%E2%82%AC&empty=");
        assert_eq!(encode_urlencoded(&MultiDict::new(), Some("a")), "");
    }

    #[test]
    fn content_type_parameters() {
        let (_, _, params) =
            parse_content_type("multipart/form-data; boundary=\"q\"; x; charset=a; charset=b")
                .unwrap();
        assert_eq!(
            params,
            [
                ("boundary".to_string(), "\"q\"".to_string()),
                ("charset".to_string(), "b".to_string())
            ]
        );
        assert_eq!(
            boundary("multipart/form-data; boundary=\"q\"").as_deref(),
            Some("q")
        );
        assert_eq!(boundary("multipart/form-data"), None);
    }

    #[test]
    fn multipart_round_trip_and_foreign_bodies() {
        let ct = "multipart/form-data; boundary=----x";
        let form: MultiDict<Vec<u8>, Vec<u8>> = [
            (b"a".to_vec(), b"1".to_vec()),
            (b"bin".to_vec(), vec![0, 255, b'\n', 13]),
            (b"a".to_vec(), Vec::new()),
        ]
        .into_iter()
        .collect();
        let body = encode_multipart(ct, &form).unwrap();
        assert_eq!(decode_multipart(ct, &body), form);

        // As a browser writes it: a file part, LF-only line breaks in another.
        let body = b"preamble\r\n------x\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nfile\r\n------x\nContent-Disposition: form-data; name=\"g\"\n\ng\n------x--\r\n";
        let form = decode_multipart(ct, body);
        let got: Vec<(&[u8], &[u8])> = form.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        assert_eq!(got, [(&b"f"[..], &b"file"[..]), (&b"g"[..], &b"g"[..])]);

        assert!(decode_multipart("multipart/form-data", body).is_empty());
        assert!(matches!(
            encode_multipart("text/plain", &form),
            Err(MultipartError::NoBoundary { .. })
        ));
        let bad: MultiDict<Vec<u8>, Vec<u8>> = [(b"a".to_vec(), b"x\r\n------x\r\n".to_vec())]
            .into_iter()
            .collect();
        assert!(matches!(
            encode_multipart(ct, &bad),
            Err(MultipartError::BoundaryInValue { .. })
        ));
        let boundary = new_boundary();
        assert_eq!(boundary.len(), 52);
        assert_ne!(boundary, new_boundary());
    }
}
