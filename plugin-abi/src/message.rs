//! mitmproxy's message helpers on [`Request`] and [`Response`]: decoded bodies and text,
//! JSON, queries, cookies and forms, each read from and written back to the raw message.
//!
//! The `content` field stays the body as on the wire (mitmproxy's `raw_content`); the methods
//! here undo and redo its `Content-Encoding` and charset.

use std::borrow::Cow;

use abi_stable::std_types::RString;

use crate::{
    body::Body,
    cookies::{self, CookieAttrs},
    encoding::{self, ContentError},
    flow::{split_authority, Request, Response},
    forms::{self, MultipartError},
    headers::Headers,
    multidict::MultiDict,
};

/// The `Content-Encoding`, all its fields joined, when not empty.
fn content_encoding(headers: &Headers) -> Option<Cow<'_, str>> {
    headers
        .get_folded("content-encoding")
        .filter(|ce| !ce.is_empty())
}

fn get_content<'a>(headers: &Headers, raw: &'a [u8]) -> Result<Cow<'a, [u8]>, ContentError> {
    match content_encoding(headers) {
        Some(ce) => encoding::decode(raw, &ce),
        None => Ok(Cow::Borrowed(raw)),
    }
}

fn set_content(headers: &mut Headers, raw: &mut Body, content: Body) {
    let encoded = match content_encoding(headers) {
        None => Ok(None),
        Some(ce) => match encoding::encode(&content, &ce) {
            Ok(Cow::Borrowed(_)) => Ok(None),
            Ok(Cow::Owned(bytes)) => Ok(Some(bytes)),
            Err(e) => Err(e),
        },
    };
    *raw = match encoded {
        Ok(None) => content,
        Ok(Some(bytes)) => Body::from_vec(bytes),
        Err(_) => {
            // An encoding we cannot write: send the body unencoded, as mitmproxy does.
            headers.remove("content-encoding");
            content
        }
    };
    if !headers.contains("transfer-encoding") {
        headers.insert("content-length", raw.len().to_string());
    }
}

fn content_type(headers: &Headers) -> Cow<'_, str> {
    headers.get_folded("content-type").unwrap_or_default()
}

fn get_text<'a>(headers: &Headers, raw: &'a [u8]) -> Result<Cow<'a, str>, ContentError> {
    match get_content(headers, raw)? {
        Cow::Borrowed(content) => encoding::decode_text(
            content,
            &encoding::infer_charset(&content_type(headers), content),
        ),
        Cow::Owned(content) => {
            let charset = encoding::infer_charset(&content_type(headers), &content);
            encoding::decode_text(&content, &charset).map(|text| Cow::Owned(text.into_owned()))
        }
    }
}

fn get_text_lossy<'a>(headers: &Headers, raw: &'a [u8]) -> Cow<'a, str> {
    let content = get_content(headers, raw).unwrap_or(Cow::Borrowed(raw));
    let charset = encoding::infer_charset(&content_type(headers), &content);
    match content {
        Cow::Borrowed(content) => encoding::decode_text_lossy(content, &charset),
        Cow::Owned(content) => {
            Cow::Owned(encoding::decode_text_lossy(&content, &charset).into_owned())
        }
    }
}

fn set_text(headers: &mut Headers, raw: &mut Body, text: &str) {
    let charset = encoding::infer_charset(&content_type(headers), b"");
    let bytes = match encoding::encode_text(text, &charset) {
        Ok(bytes) => bytes.into_owned(),
        Err(_) => {
            // Fall back to UTF-8 and say so in the Content-Type.
            let (ty, sub, mut params) = forms::parse_content_type(&content_type(headers))
                .unwrap_or_else(|| ("text".into(), "plain".into(), Vec::new()));
            match params.iter_mut().find(|(k, _)| k == "charset") {
                Some(entry) => entry.1 = "utf-8".into(),
                None => params.push(("charset".into(), "utf-8".into())),
            }
            headers.insert(
                "content-type",
                forms::assemble_content_type(&ty, &sub, &params),
            );
            text.as_bytes().to_vec()
        }
    };
    set_content(headers, raw, Body::from_vec(bytes));
}

fn json(headers: &Headers, raw: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
    let content = get_content(headers, raw).unwrap_or(Cow::Borrowed(raw));
    // Python's `json.loads` of bytes accepts a UTF-8 byte-order mark.
    let content = content.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&content);
    serde_json::from_slice(content)
}

fn decode(headers: &mut Headers, raw: &mut Body) -> Result<(), ContentError> {
    if raw.is_empty() {
        return Ok(());
    }
    let decoded = match get_content(headers, raw)? {
        Cow::Borrowed(_) => None,
        Cow::Owned(bytes) => Some(bytes),
    };
    headers.remove("content-encoding");
    let decoded = match decoded {
        Some(bytes) => Body::from_vec(bytes),
        None => std::mem::take(raw),
    };
    set_content(headers, raw, decoded);
    Ok(())
}

fn encode(headers: &mut Headers, raw: &mut Body, coding: &str) -> Result<(), ContentError> {
    headers.insert("content-encoding", coding);
    let content = std::mem::take(raw);
    set_content(headers, raw, content);
    if headers.contains("content-encoding") {
        Ok(())
    } else {
        Err(ContentError::UnknownEncoding {
            encoding: coding.to_string(),
        })
    }
}

/// The methods shared by requests and responses; `$example` builds a message with a
/// `text/plain` body `hello` for the doc examples.
macro_rules! message_helpers {
    ($ty:ident, $example:literal) => {
        impl $ty {
            /// The body as on the wire, `Content-Encoding` and all (mitmproxy's
            /// `raw_content`; the same bytes as the `content` field).
            ///
            /// ```
            /// # use interpose_plugin_abi::*;
            #[doc = $example]
            /// assert_eq!(message.raw_content(), b"hello");
            /// ```
            pub fn raw_content(&self) -> &[u8] {
                self.content.as_slice()
            }

            /// The body with its `Content-Encoding` undone (mitmproxy's `content`): `identity`
            /// (or no header) borrows the raw bytes; `gzip`, `deflate`, `br` and `zstd`
            /// decompress. An unknown coding or a corrupt body is an error.
            ///
            /// ```
            /// # use interpose_plugin_abi::*;
            #[doc = $example]
            /// message.headers.insert("content-encoding", "gzip");
            /// message.set_content("hello");
            /// assert_ne!(message.raw_content(), b"hello");
            /// assert_eq!(&message.content().unwrap()[..], b"hello");
            /// message.headers.insert("content-encoding", "rot13");
            /// assert!(message.content().is_err());
            /// ```
            pub fn content(&self) -> Result<Cow<'_, [u8]>, ContentError> {
                get_content(&self.headers, &self.content)
            }

            /// Like [`Self::content`], but the raw bytes when they do not decode (mitmproxy's
            /// `get_content(strict=False)`).
            ///
            /// ```
            /// # use interpose_plugin_abi::*;
            #[doc = $example]
            /// message.headers.insert("content-encoding", "gzip"); // but the body is not gzip
            /// assert!(message.content().is_err());
            /// assert_eq!(&message.content_or_raw()[..], b"hello");
            /// ```
            pub fn content_or_raw(&self) -> Cow<'_, [u8]> {
                get_content(&self.headers, &self.content)
                    .unwrap_or(Cow::Borrowed(self.content.as_slice()))
            }

            /// Replaces the body by `content` encoded with the current `Content-Encoding`
            /// (mitmproxy's `content = ...`): when that coding cannot be written the header is
            /// removed and the body is sent as it is. `Content-Length` is updated unless the
            /// message has a `Transfer-Encoding`.
            ///
            /// ```
            /// # use interpose_plugin_abi::*;
            #[doc = $example]
            /// message.headers.insert("content-encoding", "br");
            /// message.set_content(b"bonjour".to_vec());
            /// assert_eq!(&message.content().unwrap()[..], b"bonjour");
            /// let length = message.raw_content().len().to_string();
            /// assert_eq!(message.headers.get("content-length"), Some(length.as_str()));
            /// ```
            pub fn set_content(&mut self, content: impl Into<Body>) {
                set_content(&mut self.headers, &mut self.content, content.into());
            }

            /// The decoded body as text (mitmproxy's `text`): the charset is the
            /// `Content-Type`'s, or found as mitmproxy does (byte-order mark, HTML `<meta>`,
            /// XML declaration, CSS `@charset`, UTF-8 for JSON, JavaScript, HTML, XML and CSS,
            /// else latin-1). A body that does not decode is an error.
            ///
            /// ```
            /// # use interpose_plugin_abi::*;
            #[doc = $example]
            /// message.headers.insert("content-type", "text/plain; charset=latin-1");
            /// message.set_content(b"caf\xe9".to_vec());
            /// assert_eq!(message.text().unwrap(), "café");
            /// ```
            pub fn text(&self) -> Result<Cow<'_, str>, ContentError> {
                get_text(&self.headers, &self.content)
            }

            /// Like [`Self::text`], but never fails (mitmproxy's `get_text(strict=False)`): a
            /// body that does not decode is used raw, and bytes invalid in the charset make it
            /// read as UTF-8 with U+FFFD for the invalid bytes (where mitmproxy keeps them as
            /// surrogate escapes).
            ///
            /// ```
            /// # use interpose_plugin_abi::*;
            #[doc = $example]
            /// message.headers.insert("content-type", "text/plain; charset=utf-8");
            /// message.set_content(b"ok \xff".to_vec()); // not UTF-8
            /// assert!(message.text().is_err());
            /// assert_eq!(message.text_lossy(), "ok \u{fffd}");
            /// ```
            pub fn text_lossy(&self) -> Cow<'_, str> {
                get_text_lossy(&self.headers, &self.content)
            }

            /// Replaces the body by `text`, written in the charset [`Self::text`] would read it
            /// with (mitmproxy's `text = ...`); when that charset is unknown or cannot hold the
            /// text, UTF-8 is written and the `Content-Type` says `charset=utf-8` (`text/plain`
            /// when there was none). The body is then set as by [`Self::set_content`].
            ///
            /// ```
            /// # use interpose_plugin_abi::*;
            #[doc = $example]
            /// message.headers.insert("content-type", "text/plain; charset=latin-1");
            /// message.set_text("café");
            /// assert_eq!(message.raw_content(), b"caf\xe9");
            /// message.set_text("€");
            /// assert_eq!(message.headers.get("content-type"), Some("text/plain; charset=utf-8"));
            /// assert_eq!(message.raw_content(), "€".as_bytes());
            /// ```
            pub fn set_text(&mut self, text: &str) {
                set_text(&mut self.headers, &mut self.content, text);
            }

            /// The decoded body (raw when it does not decode) parsed as JSON (mitmproxy's
            /// `json()`).
            ///
            /// ```
            /// # use interpose_plugin_abi::*;
            #[doc = $example]
            /// message.set_content(r#"{"a": [1, 2]}"#);
            /// assert_eq!(message.json().unwrap()["a"][1], 2);
            /// ```
            pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
                json(&self.headers, &self.content)
            }

            /// Undoes the `Content-Encoding` in place and removes the header (mitmproxy's
            /// `decode()`); an empty body is left alone. On error nothing changes.
            ///
            /// ```
            /// # use interpose_plugin_abi::*;
            #[doc = $example]
            /// message.encode("zstd").unwrap();
            /// message.decode().unwrap();
            /// assert_eq!(message.raw_content(), b"hello");
            /// assert!(!message.headers.contains("content-encoding"));
            /// ```
            pub fn decode(&mut self) -> Result<(), ContentError> {
                decode(&mut self.headers, &mut self.content)
            }

            /// Encodes the raw body with `coding` (`gzip`, `deflate`, `br`, `zstd`,
            /// `identity`) and sets `Content-Encoding` (mitmproxy's `encode()`); the body is not
            /// decoded first. An unknown coding is an error and leaves the body unencoded,
            /// without `Content-Encoding`.
            ///
            /// ```
            /// # use interpose_plugin_abi::*;
            #[doc = $example]
            /// message.encode("gzip").unwrap();
            /// assert_eq!(message.headers.get("content-encoding"), Some("gzip"));
            /// assert_eq!(&message.content().unwrap()[..], b"hello");
            /// assert!(message.encode("rot13").is_err());
            /// ```
            pub fn encode(&mut self, coding: &str) -> Result<(), ContentError> {
                encode(&mut self.headers, &mut self.content, coding)
            }
        }
    };
}

message_helpers!(
    Request,
    "let mut message = Request::make(\"POST\", \"http://example.com/\", \"hello\").unwrap();"
);
message_helpers!(
    Response,
    "let mut message = Response::make(200, \"hello\", &[(\"content-type\", \"text/plain\")]);"
);

impl Request {
    /// The query string's pairs, decoded, in order, repeats kept (mitmproxy's
    /// `request.query`): `/s?q=a+b&n=1` gives `q` = `a b` and `n` = `1`. See
    /// [`forms::decode_urlencoded`] for the decoding rules.
    ///
    /// ```
    /// # use interpose_plugin_abi::*;
    /// let request = Request::make("GET", "http://example.com/s?q=a+b&n=1&q=%C3%A9", "").unwrap();
    /// let query = request.query();
    /// assert_eq!(query.get("q").map(String::as_str), Some("a b"));
    /// assert_eq!(query.get_all("q").collect::<Vec<_>>(), ["a b", "é"]);
    /// ```
    pub fn query(&self) -> MultiDict<String, String> {
        let (before_fragment, _) = split_fragment(&self.path);
        match before_fragment.split_once('?') {
            Some((_, query)) => forms::decode_urlencoded(query),
            None => MultiDict::new(),
        }
    }

    /// Replaces the query string of `path` by `query`, encoded as mitmproxy does (see
    /// [`forms::encode_urlencoded`]); the path before it and any fragment stay. An empty
    /// query removes the `?`.
    ///
    /// ```
    /// # use interpose_plugin_abi::*;
    /// let mut request = Request::make("GET", "http://example.com/s?old=1", "").unwrap();
    /// let mut query = request.query();
    /// query.set("old", "a b/c");
    /// query.append("new", "é");
    /// request.set_query(&query);
    /// assert_eq!(request.path, "/s?old=a+b%2Fc&new=%C3%A9");
    /// request.set_query(&MultiDict::new());
    /// assert_eq!(request.path, "/s");
    /// ```
    pub fn set_query(&mut self, query: &MultiDict<String, String>) {
        let (before_fragment, fragment) = split_fragment(&self.path);
        let path = before_fragment
            .split_once('?')
            .map_or(before_fragment, |(path, _)| path);
        let mut new = path.to_string();
        let encoded = forms::encode_urlencoded(query, None);
        if !encoded.is_empty() {
            new.push('?');
            new.push_str(&encoded);
        }
        if let Some(fragment) = fragment.filter(|f| !f.is_empty()) {
            new.push('#');
            new.push_str(fragment);
        }
        self.path = new.into();
    }

    /// The cookies of every `Cookie` header, in order, duplicates kept (mitmproxy's
    /// `request.cookies`); non-UTF-8 bytes become U+FFFD.
    ///
    /// ```
    /// # use interpose_plugin_abi::*;
    /// let mut request = Request::make("GET", "http://example.com/", "").unwrap();
    /// request.headers.append("Cookie", "a=1; b=2");
    /// request.headers.append("Cookie", "a=3");
    /// let cookies = request.cookies();
    /// assert_eq!(cookies.get_all("a").collect::<Vec<_>>(), ["1", "3"]);
    /// ```
    pub fn cookies(&self) -> MultiDict<String, String> {
        self.headers
            .get_all_bytes("cookie")
            .flat_map(|value| cookies::parse_cookie_header(&String::from_utf8_lossy(value)))
            .collect()
    }

    /// Writes `cookies` as one `Cookie` header, `; `-separated, replacing every `Cookie`
    /// header (at the position of the first). No cookies removes the header (mitmproxy would
    /// leave an empty one).
    ///
    /// ```
    /// # use interpose_plugin_abi::*;
    /// let mut request = Request::make("GET", "http://example.com/", "").unwrap();
    /// request.headers.append("Cookie", "a=1");
    /// request.headers.append("Cookie", "b=2");
    /// let mut cookies = request.cookies();
    /// cookies.set("a", "x y");
    /// request.set_cookies(&cookies);
    /// assert_eq!(request.headers.get_all("cookie").collect::<Vec<_>>(), [r#"a="x y"; b=2"#]);
    /// ```
    pub fn set_cookies(&mut self, cookies: &MultiDict<String, String>) {
        if cookies.is_empty() {
            self.headers.remove("cookie");
        } else {
            self.headers
                .insert("cookie", cookies::format_cookie_header(cookies.fields()));
        }
    }

    /// The `application/x-www-form-urlencoded` body's pairs (mitmproxy's
    /// `urlencoded_form`); empty unless the `Content-Type` says so. The body is read as
    /// [`Self::text_lossy`] does.
    ///
    /// ```
    /// # use interpose_plugin_abi::*;
    /// let mut request = Request::make("POST", "http://example.com/", "a=1&b=x+y").unwrap();
    /// assert!(request.urlencoded_form().is_empty());
    /// request.headers.insert("Content-Type", "application/x-www-form-urlencoded");
    /// assert_eq!(request.urlencoded_form().get("b").map(String::as_str), Some("x y"));
    /// ```
    pub fn urlencoded_form(&self) -> MultiDict<String, String> {
        if content_type(&self.headers)
            .to_lowercase()
            .contains("application/x-www-form-urlencoded")
        {
            forms::decode_urlencoded(&self.text_lossy())
        } else {
            MultiDict::new()
        }
    }

    /// Replaces the body by `form`, urlencoded, and sets `Content-Type:
    /// application/x-www-form-urlencoded` (mitmproxy's `urlencoded_form = ...`). When the old
    /// body had a key without `=`, empty values are written without `=` too.
    ///
    /// ```
    /// # use interpose_plugin_abi::*;
    /// let mut request = Request::make("POST", "http://example.com/", "").unwrap();
    /// let mut form = MultiDict::new();
    /// form.append("name", "Jo Doe");
    /// form.append("lang", "fr&en");
    /// request.set_urlencoded_form(&form);
    /// assert_eq!(request.raw_content(), b"name=Jo+Doe&lang=fr%26en");
    /// assert_eq!(request.headers.get("content-type"), Some("application/x-www-form-urlencoded"));
    /// assert_eq!(request.urlencoded_form(), form);
    /// ```
    pub fn set_urlencoded_form(&mut self, form: &MultiDict<String, String>) {
        self.headers
            .insert("content-type", "application/x-www-form-urlencoded");
        let body = forms::encode_urlencoded(form, Some(&self.text_lossy()));
        self.set_content(body);
    }

    /// The `multipart/form-data` body's `(name, value)` pairs, as bytes (mitmproxy's
    /// `multipart_form`); empty unless the `Content-Type` says so (with a boundary) and the
    /// body decodes. See [`forms::decode_multipart`].
    ///
    /// ```
    /// # use interpose_plugin_abi::*;
    /// let mut request = Request::make("POST", "http://example.com/", "").unwrap();
    /// let mut form = MultiDict::<Vec<u8>, Vec<u8>>::new();
    /// form.append("file", b"\x00\x01".to_vec());
    /// request.set_multipart_form(&form).unwrap();
    /// assert!(request.headers.get("content-type").unwrap().starts_with("multipart/form-data; boundary="));
    /// assert_eq!(request.multipart_form(), form);
    /// ```
    pub fn multipart_form(&self) -> MultiDict<Vec<u8>, Vec<u8>> {
        let content_type = content_type(&self.headers);
        if !content_type.to_lowercase().contains("multipart/form-data") {
            return MultiDict::new();
        }
        match self.content() {
            Ok(content) => forms::decode_multipart(&content_type, &content),
            Err(_) => MultiDict::new(),
        }
    }

    /// Replaces the body by `form` as `multipart/form-data` (mitmproxy's `multipart_form =
    /// ...`), with the boundary of the current `Content-Type` when it is already
    /// `multipart/form-data`, else a new random boundary in a new `Content-Type`. See
    /// [`forms::encode_multipart`]; on error nothing changes.
    ///
    /// See the example on [`Request::multipart_form`].
    pub fn set_multipart_form(
        &mut self,
        form: &MultiDict<Vec<u8>, Vec<u8>>,
    ) -> Result<(), MultipartError> {
        let current = content_type(&self.headers).into_owned();
        let content_type = if current.to_lowercase().starts_with("multipart/form-data") {
            current
        } else {
            format!("multipart/form-data; boundary={}", forms::new_boundary())
        };
        let body = forms::encode_multipart(&content_type, form)?;
        self.headers.insert("content-type", &content_type);
        self.set_content(body);
        Ok(())
    }

    /// Like [`Request::url`], but with the host (and port) of the `Host` header or HTTP/2
    /// authority when there is one (mitmproxy's `pretty_url`); a CONNECT request gives its
    /// authority. Useful in transparent mode, where `host` is only an address.
    ///
    /// ```
    /// # use interpose_plugin_abi::*;
    /// let mut request = Request::make("GET", "http://10.0.0.1/a?b", "").unwrap();
    /// request.headers.insert("Host", "example.com:8080");
    /// assert_eq!(request.pretty_url(), "http://example.com:8080/a?b");
    /// request.headers.insert("Host", "example.com");
    /// assert_eq!(request.pretty_url(), "http://example.com/a?b");
    /// ```
    pub fn pretty_url(&self) -> String {
        if self.method.eq_ignore_ascii_case("CONNECT") {
            return self.authority.to_string();
        }
        let path = if self.path == "*" { "" } else { &self.path };
        let (host, port) = match self.host_header().filter(|h| !h.is_empty()) {
            // Port 0 stands for "no port given" (a malformed authority is taken as a host).
            Some(authority) => split_authority(authority, 0).unwrap_or((authority, 0)),
            None => (self.host.as_str(), self.port),
        };
        let default = match self.scheme.as_str() {
            "http" => 80,
            _ => 443,
        };
        let port = if port == 0 { default } else { port };
        let host: Cow<'_, str> = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]").into()
        } else {
            host.into()
        };
        if port == default && matches!(self.scheme.as_str(), "http" | "https") {
            format!("{}://{host}{path}", self.scheme)
        } else {
            format!("{}://{host}:{port}{path}", self.scheme)
        }
    }

    /// Sets the scheme (mitmproxy's `request.scheme = ...`): only the scheme; the port and the
    /// `Host` header stay.
    ///
    /// ```
    /// # use interpose_plugin_abi::*;
    /// let mut request = Request::make("GET", "http://example.com/", "").unwrap();
    /// request.set_scheme("https");
    /// assert_eq!(request.url(), "https://example.com:80/");
    /// ```
    pub fn set_scheme(&mut self, scheme: &str) {
        self.scheme = scheme.into();
    }

    /// Points the request at an absolute `http://` or `https://` URL (mitmproxy's
    /// `request.url = ...`): scheme, host, port and path change, and the `Host` header (when
    /// there is one) follows. `Err` for a URL that is not absolute HTTP(S).
    ///
    /// ```
    /// # use interpose_plugin_abi::*;
    /// let mut request = Request::make("GET", "http://example.com/a?b=1", "").unwrap();
    /// request.set_url("https://example.org:8443/c").unwrap();
    /// assert_eq!(request.url(), "https://example.org:8443/c");
    /// assert_eq!(request.headers.get("host"), Some("example.org:8443"));
    /// assert!(request.set_url("/relative").is_err());
    /// ```
    pub fn set_url(&mut self, url: &str) -> Result<(), String> {
        let parsed = Request::make(self.method.as_str(), url, "")?;
        self.scheme = parsed.scheme;
        self.path = parsed.path;
        self.host = parsed.host;
        self.port = parsed.port;
        self.update_host_and_authority();
        Ok(())
    }

    /// Removes the headers that let a server answer `304 Not Modified` (`If-Modified-Since`,
    /// `If-None-Match`), so the whole response comes back (mitmproxy's
    /// `request.anticache()`).
    ///
    /// ```
    /// # use interpose_plugin_abi::*;
    /// let mut request = Request::make("GET", "http://example.com/", "").unwrap();
    /// request.headers.insert("If-None-Match", "\"abc\"");
    /// request.anticache();
    /// assert!(!request.headers.contains("if-none-match"));
    /// ```
    pub fn anticache(&mut self) {
        self.headers.remove("if-modified-since");
        self.headers.remove("if-none-match");
    }

    /// Asks for an uncompressed response: `Accept-Encoding: identity` (mitmproxy's
    /// `request.anticomp()`).
    ///
    /// ```
    /// # use interpose_plugin_abi::*;
    /// let mut request = Request::make("GET", "http://example.com/", "").unwrap();
    /// request.headers.insert("Accept-Encoding", "gzip, br");
    /// request.anticomp();
    /// assert_eq!(request.headers.get("accept-encoding"), Some("identity"));
    /// ```
    pub fn anticomp(&mut self) {
        self.headers.insert("accept-encoding", "identity");
    }

    /// Sets the path and query (mitmproxy's `request.path = ...`).
    ///
    /// ```
    /// # use interpose_plugin_abi::*;
    /// let mut request = Request::make("GET", "http://example.com/", "").unwrap();
    /// request.set_path("/a?b=1");
    /// assert_eq!(request.url(), "http://example.com/a?b=1");
    /// ```
    pub fn set_path(&mut self, path: impl Into<String>) {
        self.path = RString::from(path.into());
    }
}

/// `path` before the first `#`, and what follows it.
fn split_fragment(path: &str) -> (&str, Option<&str>) {
    match path.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (path, None),
    }
}

impl Response {
    /// The cookies of every `Set-Cookie` header, in order: name → (value, attributes)
    /// (mitmproxy's `response.cookies`). A cookie written without `=` has an empty value;
    /// non-UTF-8 bytes become U+FFFD.
    ///
    /// ```
    /// # use interpose_plugin_abi::*;
    /// let mut response = Response::make(200, "", &[]);
    /// response.headers.append("Set-Cookie", "id=a3f; Path=/; HttpOnly");
    /// response.headers.append("Set-Cookie", "lang=fr; Expires=Wed, 21 Oct 2037 07:28:00 GMT");
    /// let cookies = response.cookies();
    /// let (value, attrs) = cookies.get("id").unwrap();
    /// assert_eq!(value, "a3f");
    /// assert_eq!(attrs.get("path"), Some(Some("/")));
    /// assert_eq!(attrs.get("httponly"), Some(None));
    /// assert_eq!(cookies.get("lang").unwrap().1.get("expires"), Some(Some("Wed, 21 Oct 2037 07:28:00 GMT")));
    /// ```
    pub fn cookies(&self) -> MultiDict<String, (String, CookieAttrs)> {
        self.headers
            .get_all_bytes("set-cookie")
            .flat_map(|value| cookies::parse_set_cookie_header(&String::from_utf8_lossy(value)))
            .map(|(name, value, attrs)| (name, (value.unwrap_or_default(), attrs)))
            .collect()
    }

    /// Writes `cookies` back as one `Set-Cookie` header each, replacing the existing ones in
    /// place (extra ones removed, new ones appended; mitmproxy's `response.cookies = ...`).
    ///
    /// ```
    /// # use interpose_plugin_abi::*;
    /// let mut response = Response::make(200, "", &[]);
    /// response.headers.append("Set-Cookie", "id=a3f; Path=/");
    /// let mut cookies = response.cookies();
    /// let mut attrs = cookies.get("id").unwrap().1.clone();
    /// attrs.append("Secure", None);
    /// cookies.set("id", ("b4e".to_string(), attrs));
    /// response.set_cookies(&cookies);
    /// assert_eq!(response.headers.get("set-cookie"), Some("id=b4e; Path=/; Secure"));
    /// ```
    pub fn set_cookies(&mut self, cookies: &MultiDict<String, (String, CookieAttrs)>) {
        let values: Vec<String> = cookies
            .iter()
            .map(|(name, (value, attrs))| {
                cookies::format_set_cookie_header(name, Some(value), attrs)
            })
            .collect();
        self.headers.set_all("set-cookie", values);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str) -> Request {
        Request::make("GET", &format!("http://example.com{path}"), "").unwrap()
    }

    #[test]
    fn content_round_trips_every_coding() {
        let text = b"round trip, round trip, round trip".repeat(10);
        for coding in ["gzip", "deflate", "br", "zstd", "identity"] {
            let mut r = Response::make(200, "", &[("Content-Encoding", coding)]);
            r.set_content(text.clone());
            assert_eq!(r.content().unwrap(), &text[..], "{coding}");
            assert_eq!(
                r.headers.get("content-length"),
                Some(r.content.len().to_string().as_str())
            );
            if coding != "identity" {
                assert_ne!(r.raw_content(), &text[..]);
            }
        }
    }

    #[test]
    fn unknown_encoding_is_dropped_on_set_and_an_error_on_get() {
        let mut r = Response::make(200, "x", &[("Content-Encoding", "rot13")]);
        assert!(matches!(
            r.content(),
            Err(ContentError::UnknownEncoding { .. })
        ));
        assert_eq!(&r.content_or_raw()[..], b"x");
        r.set_content("plain");
        assert!(!r.headers.contains("content-encoding"));
        assert_eq!(r.raw_content(), b"plain");

        let mut r = Response::make(200, "not gzip", &[("Content-Encoding", "gzip")]);
        assert!(matches!(r.content(), Err(ContentError::Corrupt { .. })));
        assert!(r.text().is_err());
        assert_eq!(r.text_lossy(), "not gzip");
        assert!(r.decode().is_err());
        assert_eq!(r.raw_content(), b"not gzip");
    }

    #[test]
    fn make_takes_text_and_bytes() {
        let r = Response::make(200, b"\x00\x01", &[]);
        assert_eq!(r.headers.get("content-length"), Some("2"));
        let r = Response::make(200, String::from("é"), &[("content-type", "text/plain")]);
        assert_eq!(r.headers.get("content-length"), Some("2"));
        assert_eq!(
            r.text_lossy(),
            "Ã©",
            "no charset: latin-1, as mitmproxy reads it"
        );
    }

    #[test]
    fn transfer_encoding_keeps_content_length_away() {
        let mut r = Response::make(200, "", &[]);
        r.headers.remove("content-length");
        r.headers.insert("transfer-encoding", "chunked");
        r.set_content("abc");
        assert!(!r.headers.contains("content-length"));
    }

    #[test]
    fn encode_and_decode() {
        let mut r = Response::make(200, "hello hello hello", &[]);
        r.encode("gzip").unwrap();
        assert_eq!(r.headers.get("content-encoding"), Some("gzip"));
        assert_eq!(r.text().unwrap(), "hello hello hello");
        r.decode().unwrap();
        assert_eq!(r.raw_content(), b"hello hello hello");
        assert_eq!(r.headers.get("content-length"), Some("17"));
        assert!(r.encode("nope").is_err());
        assert!(!r.headers.contains("content-encoding"));
        assert_eq!(r.raw_content(), b"hello hello hello");
    }

    #[test]
    fn text_charsets() {
        let mut r = Response::make(200, "", &[("Content-Type", "text/html")]);
        r.set_content(b"<meta charset=\"iso-8859-1\">\xe9".to_vec());
        assert_eq!(r.text().unwrap(), "<meta charset=\"iso-8859-1\">é");
        // No Content-Type: latin-1, as mitmproxy.
        let mut r = Response::make(200, "", &[]);
        r.set_text("é");
        assert_eq!(r.raw_content(), b"\xe9");
        assert!(!r.headers.contains("content-type"));
        r.set_text("日本");
        assert_eq!(
            r.headers.get("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(r.text().unwrap(), "日本");
        // JSON is UTF-8; invalid bytes are an error, or U+FFFD when lossy.
        let r = Response::make(
            200,
            b"\"\xff\"".to_vec(),
            &[("Content-Type", "application/json")],
        );
        assert!(matches!(r.text(), Err(ContentError::Charset { .. })));
        assert_eq!(r.text_lossy(), "\"\u{fffd}\"");
        // An unknown charset in the Content-Type is rewritten when setting text.
        let mut r = Response::make(200, "", &[("Content-Type", "text/plain; charset=x-bogus")]);
        assert!(r.text().is_err());
        r.set_text("ok");
        assert_eq!(
            r.headers.get("content-type"),
            Some("text/plain; charset=utf-8")
        );
        // gzip and a charset together.
        let mut r = Response::make(
            200,
            "",
            &[
                ("Content-Type", "text/plain; charset=shift_jis"),
                ("Content-Encoding", "gzip"),
            ],
        );
        r.set_text("こんにちは");
        assert_eq!(r.text().unwrap(), "こんにちは");
        assert_eq!(r.content().unwrap().len(), 10);
    }

    #[test]
    fn json_reads_decoded_content() {
        let mut r = Response::make(200, "", &[("Content-Encoding", "br")]);
        r.set_content("\u{feff}{\"k\": [true, null]}");
        assert_eq!(r.json().unwrap(), serde_json::json!({"k": [true, null]}));
        r.set_content("{");
        assert!(r.json().is_err());
    }

    #[test]
    fn query_get_and_set() {
        let r = request("/p?a=1&b=x+y&a=%2F#frag?no=1");
        let q = r.query();
        assert_eq!(
            q.fields(),
            [
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "x y".to_string()),
                ("a".to_string(), "/".to_string())
            ]
        );
        assert!(request("/p").query().is_empty());
        assert!(request("/p#a?b=1").query().is_empty());

        let mut r = request("/p?a=1&b=2#frag");
        let mut q = r.query();
        q.set("a", "~ *");
        r.set_query(&q);
        assert_eq!(r.path, "/p?a=~+%2A&b=2#frag");
        let mut r = request("/p");
        let q: MultiDict<String, String> = [("k".to_string(), String::new())].into_iter().collect();
        r.set_query(&q);
        assert_eq!(r.path, "/p?k=");
        r.set_query(&MultiDict::new());
        assert_eq!(r.path, "/p");
        let mut r = request("/p?");
        r.set_query(&MultiDict::new());
        assert_eq!(r.path, "/p");
    }

    #[test]
    fn request_cookies() {
        let mut r = request("/");
        assert!(r.cookies().is_empty());
        r.headers.append("Cookie", "a=1;b=\"q;q\"");
        let mut c = r.cookies();
        assert_eq!(c.get("b").map(String::as_str), Some("q;q"));
        c.append("c", "3");
        c.remove("a");
        r.set_cookies(&c);
        assert_eq!(r.headers.get("cookie"), Some("b=\"q;q\"; c=3"));
        r.set_cookies(&MultiDict::new());
        assert!(!r.headers.contains("cookie"));
    }

    #[test]
    fn response_cookies_round_trip() {
        let mut r = Response::make(200, "", &[]);
        r.headers.append(
            "Set-Cookie",
            "a=1; Path=/; Expires=Thu, 01 Jan 2037 00:00:00 GMT; HttpOnly",
        );
        r.headers.append("X-Other", "x");
        r.headers.append("Set-Cookie", "b=2, c=3; Secure");
        let cookies = r.cookies();
        assert_eq!(cookies.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        r.set_cookies(&cookies);
        let set: Vec<&str> = r.headers.get_all("set-cookie").collect();
        assert_eq!(
            set,
            [
                "a=1; Path=/; Expires=Thu, 01 Jan 2037 00:00:00 GMT; HttpOnly",
                "b=2",
                "c=3; Secure"
            ]
        );
        assert_eq!(r.cookies(), cookies);
        let names: Vec<&str> = r.headers.iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "content-length",
                "set-cookie",
                "X-Other",
                "set-cookie",
                "set-cookie"
            ]
        );
        r.set_cookies(&MultiDict::new());
        assert!(!r.headers.contains("set-cookie"));
    }

    #[test]
    fn urlencoded_form_round_trip() {
        let mut r = Request::make("POST", "http://example.com/", "a&b=1").unwrap();
        r.headers.insert(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        );
        let mut form = r.urlencoded_form();
        assert_eq!(form.get("a").map(String::as_str), Some(""));
        form.append("c", "é è");
        r.set_urlencoded_form(&form);
        // The old body had a bare key: empty values stay bare.
        assert_eq!(r.raw_content(), b"a&b=1&c=%C3%A9+%C3%A8");
        assert_eq!(r.urlencoded_form(), form);
        assert_eq!(r.headers.get("content-length"), Some("21"));
    }

    #[test]
    fn multipart_form_round_trip() {
        let mut r = Request::make("POST", "http://example.com/", "").unwrap();
        assert!(r.multipart_form().is_empty());
        r.headers
            .insert("Content-Type", "multipart/form-data; boundary=AaB03x");
        r.headers.insert("Content-Encoding", "gzip");
        let form: MultiDict<Vec<u8>, Vec<u8>> = [
            (b"submit-name".to_vec(), b"Larry".to_vec()),
            (
                b"files".to_vec(),
                b"... contents of file1.txt ...\r\n".to_vec(),
            ),
        ]
        .into_iter()
        .collect();
        r.set_multipart_form(&form).unwrap();
        assert_eq!(
            r.headers.get("content-type"),
            Some("multipart/form-data; boundary=AaB03x")
        );
        assert!(r.content().unwrap().starts_with(b"--AaB03x\r\n"));
        assert_eq!(r.multipart_form(), form);
    }

    #[test]
    fn pretty_url_prefers_the_host_header() {
        let mut r = request("/x");
        r.host = "10.0.0.1".into();
        assert_eq!(r.url(), "http://10.0.0.1/x");
        assert_eq!(r.pretty_url(), "http://example.com/x");
        r.headers.insert("host", "[::1]:81");
        assert_eq!(r.pretty_url(), "http://[::1]:81/x");
        r.headers.remove("host");
        assert_eq!(r.pretty_url(), "http://10.0.0.1/x");
        r.path = "*".into();
        r.method = "OPTIONS".into();
        assert_eq!(r.pretty_url(), "http://10.0.0.1");
        r.method = "CONNECT".into();
        r.authority = "example.com:443".into();
        assert_eq!(r.pretty_url(), "example.com:443");
    }

    #[test]
    fn set_host_updates_host_header_and_authority() {
        let mut r = request("/");
        r.authority = "example.com".into();
        r.set_host("example.org");
        assert_eq!(r.headers.get("host"), Some("example.org"));
        assert_eq!(r.authority, "example.org");
        r.set_port(8080);
        assert_eq!(r.headers.get("host"), Some("example.org:8080"));
        assert_eq!(r.authority, "example.org:8080");
        r.set_scheme("https");
        r.set_path("/q?x=1");
        assert_eq!(r.url(), "https://example.org:8080/q?x=1");
        assert_eq!(r.query().get("x").map(String::as_str), Some("1"));
    }
}
