//! Body codings: `Content-Encoding` (gzip, deflate, br, zstd) and text charsets, as mitmproxy's
//! `net.encoding` and `infer_content_encoding` handle them.
//!
//! ```
//! use interpose_plugin_abi::encoding::{decode, encode};
//!
//! let gzipped = encode(b"hello", "gzip").unwrap();
//! assert_ne!(&gzipped[..], b"hello");
//! assert_eq!(&decode(&gzipped, "gzip").unwrap()[..], b"hello");
//! ```

use std::{
    borrow::Cow,
    fmt,
    io::{Read, Write},
};

/// Why a body could not be decoded or encoded. Every variant names the coding involved.
///
/// ```
/// use interpose_plugin_abi::{ContentError, Response};
///
/// let mut response = Response::make(200, "not gzip", &[("content-encoding", "gzip")]);
/// let err = response.content().unwrap_err();
/// assert!(matches!(err, ContentError::Corrupt { ref encoding, .. } if encoding == "gzip"));
/// response.headers.insert("content-encoding", "rot13");
/// assert_eq!(
///     response.decode().unwrap_err().to_string(),
///     r#"invalid Content-Encoding "rot13""#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentError {
    /// The `Content-Encoding` is none of `identity`, `none`, `gzip`, `deflate`, `deflateraw`,
    /// `br`, `zstd` (several codings, `gzip, br`, are not undone either, as in mitmproxy).
    UnknownEncoding {
        /// The `Content-Encoding` value.
        encoding: String,
    },
    /// The body is not valid data of its `Content-Encoding`.
    Corrupt {
        /// The `Content-Encoding` value.
        encoding: String,
        /// What the decoder reported.
        detail: String,
    },
    /// The charset names no encoding this crate knows.
    UnknownCharset {
        /// The charset name.
        charset: String,
    },
    /// The bytes are not valid in the charset, or the text cannot be written in it.
    Charset {
        /// The charset name.
        charset: String,
    },
}

impl fmt::Display for ContentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentError::UnknownEncoding { encoding } => {
                write!(f, "invalid Content-Encoding {encoding:?}")
            }
            ContentError::Corrupt { encoding, detail } => {
                write!(f, "body does not decode as {encoding:?}: {detail}")
            }
            ContentError::UnknownCharset { charset } => write!(f, "unknown charset {charset:?}"),
            ContentError::Charset { charset } => {
                write!(f, "text does not convert with charset {charset:?}")
            }
        }
    }
}

impl std::error::Error for ContentError {}

fn corrupt(encoding: &str, detail: impl fmt::Display) -> ContentError {
    ContentError::Corrupt {
        encoding: encoding.to_string(),
        detail: detail.to_string(),
    }
}

/// Undoes the content coding `encoding` (any case, mitmproxy's `encoding.decode`): `identity`
/// and `none` give the bytes back borrowed; `gzip` (a zlib stream is accepted too),
/// `deflate`/`deflateraw` (zlib-wrapped, or raw deflate as a fallback), `br` and `zstd`
/// decompress. An empty body decodes to an empty body.
///
/// ```
/// use interpose_plugin_abi::encoding::{decode, encode};
///
/// let packed = encode(b"hello", "gzip").unwrap();
/// assert_eq!(&decode(&packed, "GZIP").unwrap()[..], b"hello");
/// assert!(decode(b"not gzip", "gzip").is_err());
/// assert!(decode(b"x", "gzip, br").is_err());
/// ```
pub fn decode<'a>(content: &'a [u8], encoding: &str) -> Result<Cow<'a, [u8]>, ContentError> {
    let coding = encoding.to_ascii_lowercase();
    match coding.as_str() {
        "identity" | "none" => return Ok(Cow::Borrowed(content)),
        "gzip" | "deflate" | "deflateraw" | "br" | "zstd" if content.is_empty() => {
            return Ok(Cow::Borrowed(content))
        }
        _ => {}
    }
    let decoded = match coding.as_str() {
        "gzip" => gunzip(content).map_err(|e| corrupt(encoding, e))?,
        "deflate" | "deflateraw" => inflate(content, true)
            .or_else(|_| inflate(content, false))
            .map_err(|e| corrupt(encoding, e))?,
        "br" => {
            let mut out = Vec::with_capacity(content.len().saturating_mul(4));
            brotli::BrotliDecompress(&mut &content[..], &mut out)
                .map_err(|e| corrupt(encoding, e))?;
            out
        }
        "zstd" => unzstd(content).map_err(|e| corrupt(encoding, e))?,
        _ => {
            return Err(ContentError::UnknownEncoding {
                encoding: encoding.to_string(),
            })
        }
    };
    Ok(Cow::Owned(decoded))
}

/// Applies the content coding `encoding` (any case, mitmproxy's `encoding.encode`), at the
/// fastest level as mitmproxy does: gzip level 1 with no timestamp, zlib-wrapped deflate level
/// 1 (also for `deflateraw`), brotli quality 0, zstd's fastest level.
///
/// ```
/// use interpose_plugin_abi::encoding::{decode, encode};
///
/// for coding in ["identity", "gzip", "deflate", "br", "zstd"] {
///     let packed = encode(b"round trip", coding).unwrap();
///     assert_eq!(&decode(&packed, coding).unwrap()[..], b"round trip");
/// }
/// assert!(encode(b"x", "compress").is_err());
/// ```
pub fn encode<'a>(content: &'a [u8], encoding: &str) -> Result<Cow<'a, [u8]>, ContentError> {
    use flate2::{write::ZlibEncoder, Compression};
    let coding = encoding.to_ascii_lowercase();
    let io_error = |e: std::io::Error| corrupt(encoding, e);
    let encoded = match coding.as_str() {
        "identity" | "none" => return Ok(Cow::Borrowed(content)),
        "gzip" => {
            let mut encoder = flate2::GzBuilder::new()
                .mtime(0)
                .write(Vec::new(), Compression::new(1));
            encoder.write_all(content).map_err(io_error)?;
            encoder.finish().map_err(io_error)?
        }
        "deflate" | "deflateraw" => {
            let mut encoder = ZlibEncoder::new(Vec::new(), Compression::new(1));
            encoder.write_all(content).map_err(io_error)?;
            encoder.finish().map_err(io_error)?
        }
        "br" => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: 0,
                ..Default::default()
            };
            let mut out = Vec::new();
            brotli::BrotliCompress(&mut &content[..], &mut out, &params).map_err(io_error)?;
            out
        }
        "zstd" => {
            ruzstd::encoding::compress_to_vec(content, ruzstd::encoding::CompressionLevel::Fastest)
        }
        _ => {
            return Err(ContentError::UnknownEncoding {
                encoding: encoding.to_string(),
            })
        }
    };
    Ok(Cow::Owned(encoded))
}

/// Every member of a gzip stream, one after another (as Python's `GzipFile.read`, which
/// mitmproxy uses), or a zlib stream (mitmproxy's zlib auto-detection).
fn gunzip(content: &[u8]) -> Result<Vec<u8>, String> {
    if !content.starts_with(&[0x1f, 0x8b]) {
        return inflate(content, true);
    }
    let mut out = Vec::with_capacity(content.len().saturating_mul(4));
    flate2::read::MultiGzDecoder::new(content)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Inflates a whole deflate stream (zlib-wrapped when `zlib`); truncated streams are errors,
/// as with Python's `zlib.decompress`.
fn inflate(content: &[u8], zlib: bool) -> Result<Vec<u8>, String> {
    use flate2::{Decompress, FlushDecompress, Status};
    let mut decoder = Decompress::new(zlib);
    let mut out = Vec::with_capacity(content.len().saturating_mul(4).max(64));
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity());
        }
        let consumed = decoder.total_in() as usize;
        let produced = decoder.total_out();
        let status = decoder
            .decompress_vec(&content[consumed..], &mut out, FlushDecompress::None)
            .map_err(|e| e.to_string())?;
        let stalled = decoder.total_in() as usize == consumed && decoder.total_out() == produced;
        match status {
            Status::StreamEnd => return Ok(out),
            // Room was left, yet nothing moved: the input ended before the stream did.
            _ if stalled && out.len() < out.capacity() => {
                return Err("truncated stream".to_string())
            }
            _ => {}
        }
    }
}

/// Every zstd frame of `content`, one after the other (as `zstd.decompress` does).
fn unzstd(mut content: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(content.len().saturating_mul(4));
    while !content.is_empty() {
        let mut decoder =
            ruzstd::decoding::StreamingDecoder::new(&mut content).map_err(|e| e.to_string())?;
        decoder.read_to_end(&mut out).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// The charset of a body (mitmproxy's `infer_content_encoding`): a byte-order mark first, then
/// the `charset` parameter of `content_type`; failing those, UTF-8 for JSON, HTML (unless a
/// `<meta charset>` says otherwise), XML (unless its declaration does), JavaScript and CSS
/// (unless `@charset` does); else latin-1. `gb2312` and `gbk` become their superset `gb18030`.
///
/// ```
/// use interpose_plugin_abi::encoding::infer_charset;
///
/// assert_eq!(infer_charset("text/html; charset=Shift_JIS", b""), "Shift_JIS");
/// assert_eq!(infer_charset("text/html", b"<meta charset='koi8-r'>"), "koi8-r");
/// assert_eq!(infer_charset("application/json", b"{}"), "utf8");
/// assert_eq!(infer_charset("application/octet-stream", b""), "latin-1");
/// ```
pub fn infer_charset(content_type: &str, content: &[u8]) -> String {
    let mut charset: Option<String> = if content.starts_with(b"\x00\x00\xfe\xff") {
        Some("utf-32be".into())
    } else if content.starts_with(b"\xff\xfe\x00\x00") {
        Some("utf-32le".into())
    } else if content.starts_with(b"\xfe\xff") {
        Some("utf-16be".into())
    } else if content.starts_with(b"\xff\xfe") {
        Some("utf-16le".into())
    } else if content.starts_with(b"\xef\xbb\xbf") {
        Some("utf-8-sig".into())
    } else {
        crate::forms::parse_content_type(content_type).and_then(|(_, _, params)| {
            params
                .into_iter()
                .rev()
                .find(|(k, _)| k == "charset")
                .map(|(_, v)| v)
        })
    };
    charset = charset.filter(|c| !c.is_empty());
    let utf8 = || Some("utf8".to_string());
    if charset.is_none() && content_type.contains("json") {
        charset = utf8();
    }
    if charset.is_none() && content_type.contains("html") {
        charset = tag_attribute(content, b"<meta", b"charset=", b">", false).or_else(utf8);
    }
    if charset.is_none() && content_type.contains("xml") {
        charset = tag_attribute(content, b"<?xml", b"encoding=", b"?>", true).or_else(utf8);
    }
    if charset.is_none()
        && (content_type.contains("javascript") || content_type.contains("ecmascript"))
    {
        charset = utf8();
    }
    if charset.is_none() && content_type.contains("text/css") {
        charset = css_charset(content).or_else(utf8);
    }
    let charset = charset.unwrap_or_else(|| "latin-1".to_string());
    if charset.eq_ignore_ascii_case("gb2312") || charset.eq_ignore_ascii_case("gbk") {
        "gb18030".to_string()
    } else {
        charset
    }
}

/// The value of `key` (any case) inside the first `tag` (any case) that has one before any of
/// `ends`, e.g. `<meta ... charset="x">`: mitmproxy's `<meta[^>]+charset=['"]?([^'">]+)` and
/// `<\?xml[^\?>]+encoding=['"]([^'"\?>]+)` searches. `quoted` makes the opening quote
/// mandatory.
fn tag_attribute(
    content: &[u8],
    tag: &[u8],
    key: &[u8],
    ends: &[u8],
    quoted: bool,
) -> Option<String> {
    let lower = content.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = find(&lower[from..], tag) {
        let start = from + at + tag.len();
        let end = lower[start..]
            .iter()
            .position(|b| ends.contains(b))
            .map_or(lower.len(), |p| start + p);
        // `[^>]+` is greedy: the last key of the tag wins; at least one byte precedes it.
        let found = (1..=(end - start).saturating_sub(key.len()))
            .rev()
            .find(|&k| lower[start + k..].starts_with(key));
        if let Some(k) = found {
            let mut rest = &content[start + k + key.len()..];
            match rest.first() {
                Some(b'\'' | b'"') => rest = &rest[1..],
                _ if quoted => {
                    from = start;
                    continue;
                }
                _ => {}
            }
            let len = rest
                .iter()
                .position(|b| b"'\"".contains(b) || ends.contains(b))
                .unwrap_or(rest.len());
            if len > 0 {
                return Some(ascii_only(&rest[..len]));
            }
        }
        from = start;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Python's `.decode("ascii", "ignore")`.
fn ascii_only(bytes: &[u8]) -> String {
    bytes
        .iter()
        .filter(|b| b.is_ascii())
        .map(|&b| char::from(b))
        .collect()
}

/// `@charset "name";` at the very start of a stylesheet.
fn css_charset(content: &[u8]) -> Option<String> {
    let prefix = b"@charset \"";
    if content.len() < prefix.len() || !content[..prefix.len()].eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = &content[prefix.len()..];
    let end = rest.iter().position(|&b| b == b'"')?;
    (end > 0 && rest[end + 1..].starts_with(b";")).then(|| ascii_only(&rest[..end]))
}

/// The charsets handled here rather than by `encoding_rs`, whose WHATWG labels differ from
/// Python's codecs (WHATWG reads `latin-1` and `ascii` as windows-1252, and cannot write
/// UTF-16 or read UTF-32).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Charset {
    Latin1,
    Ascii,
    Utf8,
    Utf8Sig,
    Utf16 { big_endian: bool, bom: bool },
    Utf32 { big_endian: bool, bom: bool },
    Other(&'static encoding_rs::Encoding),
}

fn charset(name: &str) -> Result<Charset, ContentError> {
    // Python's codec lookup ignores case and treats `-`, `_` and spaces alike.
    let norm: String = name
        .trim()
        .chars()
        .map(|c| match c {
            '_' | ' ' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    Ok(match norm.as_str() {
        "latin-1" | "latin1" | "latin" | "l1" | "iso-8859-1" | "iso8859-1" | "8859" | "cp819"
        | "iso-ir-100" | "iso-8859-1:1987" | "csisolatin1" => Charset::Latin1,
        "ascii" | "us-ascii" | "646" | "us" | "ansi-x3.4-1968" => Charset::Ascii,
        "utf8" | "utf-8" | "u8" | "utf" | "cp65001" | "utf8-ucs2" | "utf8-ucs4" => Charset::Utf8,
        "utf-8-sig" | "utf8-sig" => Charset::Utf8Sig,
        "utf-16" | "utf16" | "u16" => Charset::Utf16 {
            big_endian: false,
            bom: true,
        },
        "utf-16le" | "utf-16-le" | "utf16le" => Charset::Utf16 {
            big_endian: false,
            bom: false,
        },
        "utf-16be" | "utf-16-be" | "utf16be" => Charset::Utf16 {
            big_endian: true,
            bom: false,
        },
        "utf-32" | "utf32" | "u32" => Charset::Utf32 {
            big_endian: false,
            bom: true,
        },
        "utf-32le" | "utf-32-le" | "utf32le" => Charset::Utf32 {
            big_endian: false,
            bom: false,
        },
        "utf-32be" | "utf-32-be" | "utf32be" => Charset::Utf32 {
            big_endian: true,
            bom: false,
        },
        _ => encoding_rs::Encoding::for_label_no_replacement(norm.as_bytes())
            .or_else(|| encoding_rs::Encoding::for_label_no_replacement(name.trim().as_bytes()))
            .map(Charset::Other)
            .ok_or_else(|| ContentError::UnknownCharset {
                charset: name.to_string(),
            })?,
    })
}

/// Decodes `bytes` written in `charset` (Python codec names: `utf8`, `latin-1`, `utf-16le`,
/// `shift_jis`, ...; other names through the WHATWG labels of `encoding_rs`). Strict: bytes
/// that are invalid in the charset are an error, as with Python's `bytes.decode`.
///
/// ```
/// use interpose_plugin_abi::encoding::decode_text;
///
/// assert_eq!(decode_text(b"caf\xe9", "latin-1").unwrap(), "café");
/// assert_eq!(decode_text(b"caf\xc3\xa9", "utf8").unwrap(), "café");
/// assert!(decode_text(b"caf\xe9", "utf8").is_err());
/// ```
pub fn decode_text<'a>(bytes: &'a [u8], charset_name: &str) -> Result<Cow<'a, str>, ContentError> {
    let invalid = || ContentError::Charset {
        charset: charset_name.to_string(),
    };
    match charset(charset_name)? {
        Charset::Latin1 => Ok(match std::str::from_utf8(bytes) {
            Ok(text) if bytes.is_ascii() => Cow::Borrowed(text),
            _ => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
        }),
        Charset::Ascii if bytes.is_ascii() => Ok(Cow::Borrowed(
            std::str::from_utf8(bytes).map_err(|_| invalid())?,
        )),
        Charset::Ascii => Err(invalid()),
        Charset::Utf8 => std::str::from_utf8(bytes)
            .map(Cow::Borrowed)
            .map_err(|_| invalid()),
        Charset::Utf8Sig => {
            std::str::from_utf8(bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes))
                .map(Cow::Borrowed)
                .map_err(|_| invalid())
        }
        Charset::Utf16 { big_endian, bom } => {
            let (bytes, big_endian) = strip_bom(bytes, big_endian, bom, 2);
            if bytes.len() % 2 != 0 {
                return Err(invalid());
            }
            let units = bytes.chunks_exact(2).map(|c| {
                let pair = [c[0], c[1]];
                if big_endian {
                    u16::from_be_bytes(pair)
                } else {
                    u16::from_le_bytes(pair)
                }
            });
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .map(Cow::Owned)
                .map_err(|_| invalid())
        }
        Charset::Utf32 { big_endian, bom } => {
            let (bytes, big_endian) = strip_bom(bytes, big_endian, bom, 4);
            if bytes.len() % 4 != 0 {
                return Err(invalid());
            }
            bytes
                .chunks_exact(4)
                .map(|c| {
                    let quad = [c[0], c[1], c[2], c[3]];
                    let n = if big_endian {
                        u32::from_be_bytes(quad)
                    } else {
                        u32::from_le_bytes(quad)
                    };
                    char::from_u32(n).ok_or_else(invalid)
                })
                .collect::<Result<String, _>>()
                .map(Cow::Owned)
        }
        Charset::Other(encoding) => encoding
            .decode_without_bom_handling_and_without_replacement(bytes)
            .ok_or_else(invalid),
    }
}

/// For `utf-16`/`utf-32` (`bom`): a leading byte-order mark decides the byte order and is
/// dropped; without one, little-endian (Python's native order here).
fn strip_bom(bytes: &[u8], big_endian: bool, bom: bool, width: usize) -> (&[u8], bool) {
    if !bom {
        return (bytes, big_endian);
    }
    let (le, be): (&[u8], &[u8]) = if width == 2 {
        (b"\xff\xfe", b"\xfe\xff")
    } else {
        (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")
    };
    if let Some(rest) = bytes.strip_prefix(le) {
        (rest, false)
    } else if let Some(rest) = bytes.strip_prefix(be) {
        (rest, true)
    } else {
        (bytes, false)
    }
}

/// Like [`decode_text`], but never fails: when the bytes do not decode in `charset` (or the
/// charset is unknown), they are read as UTF-8 with U+FFFD for invalid bytes, as mitmproxy's
/// `get_text(strict=False)` falls back to UTF-8 (its `surrogateescape`, which keeps invalid
/// bytes as lone surrogates, has no equivalent in Rust strings).
///
/// ```
/// use interpose_plugin_abi::encoding::decode_text_lossy;
///
/// assert_eq!(decode_text_lossy(b"a\xffb", "utf8"), "a\u{fffd}b");
/// assert_eq!(decode_text_lossy(b"caf\xe9", "latin-1"), "café");
/// ```
pub fn decode_text_lossy<'a>(bytes: &'a [u8], charset_name: &str) -> Cow<'a, str> {
    decode_text(bytes, charset_name).unwrap_or_else(|_| String::from_utf8_lossy(bytes))
}

/// Writes `text` in `charset` (Python codec names, see [`decode_text`]). Strict: a character
/// the charset cannot represent is an error, as with Python's `str.encode`.
///
/// ```
/// use interpose_plugin_abi::encoding::encode_text;
///
/// assert_eq!(encode_text("café", "latin-1").unwrap(), &b"caf\xe9"[..]);
/// assert!(encode_text("€", "latin-1").is_err());
/// assert_eq!(encode_text("a", "utf-16le").unwrap(), &b"a\x00"[..]);
/// ```
pub fn encode_text<'a>(text: &'a str, charset_name: &str) -> Result<Cow<'a, [u8]>, ContentError> {
    let invalid = || ContentError::Charset {
        charset: charset_name.to_string(),
    };
    match charset(charset_name)? {
        Charset::Utf8 => Ok(Cow::Borrowed(text.as_bytes())),
        Charset::Ascii | Charset::Latin1 if text.is_ascii() => Ok(Cow::Borrowed(text.as_bytes())),
        Charset::Ascii => Err(invalid()),
        Charset::Latin1 => text
            .chars()
            .map(|c| u8::try_from(u32::from(c)).map_err(|_| invalid()))
            .collect::<Result<Vec<u8>, _>>()
            .map(Cow::Owned),
        Charset::Utf8Sig => {
            let mut out = b"\xef\xbb\xbf".to_vec();
            out.extend_from_slice(text.as_bytes());
            Ok(Cow::Owned(out))
        }
        Charset::Utf16 { big_endian, bom } => {
            let mut out = Vec::with_capacity(2 * text.len() + 2);
            let units = bom.then_some(0xfeff).into_iter().chain(text.encode_utf16());
            for unit in units {
                out.extend_from_slice(&if big_endian {
                    unit.to_be_bytes()
                } else {
                    unit.to_le_bytes()
                });
            }
            Ok(Cow::Owned(out))
        }
        Charset::Utf32 { big_endian, bom } => {
            let mut out = Vec::with_capacity(4 * text.len() + 4);
            let chars = bom.then_some('\u{feff}').into_iter().chain(text.chars());
            for c in chars {
                let n = u32::from(c);
                out.extend_from_slice(&if big_endian {
                    n.to_be_bytes()
                } else {
                    n.to_le_bytes()
                });
            }
            Ok(Cow::Owned(out))
        }
        Charset::Other(encoding) => {
            // encoding_rs writes UTF-16 labels (and `replacement`) as UTF-8; refuse those.
            if encoding.output_encoding() != encoding {
                return Err(invalid());
            }
            let (bytes, _, unmappable) = encoding.encode(text);
            if unmappable {
                Err(invalid())
            } else {
                Ok(bytes)
            }
        }
    }
}

/// The base64 alphabet (RFC 4648, standard).
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Appends the padded base64 form of `data` to `out` (RFC 4648, standard alphabet).
///
/// ```
/// use interpose_plugin_abi::encoding::{base64_decode, base64_encode};
///
/// let mut text = String::from("Basic ");
/// base64_encode(b"alice:secret", &mut text);
/// assert_eq!(text, "Basic YWxpY2U6c2VjcmV0");
/// assert_eq!(base64_decode(b"YWxpY2U6c2VjcmV0").unwrap(), b"alice:secret");
/// assert_eq!(base64_decode(b"YQ==").unwrap(), b"a");
/// assert!(base64_decode(b"!!").is_none());
/// ```
pub fn base64_encode(data: &[u8], out: &mut String) {
    out.reserve(data.len().div_ceil(3) * 4);
    let mut chunks = data.chunks_exact(3);
    for c in &mut chunks {
        let n = u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]);
        for shift in [18, 12, 6, 0] {
            out.push(char::from(ALPHABET[(n >> shift & 63) as usize]));
        }
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.push(char::from(ALPHABET[(n >> 18 & 63) as usize]));
            out.push(char::from(ALPHABET[(n >> 12 & 63) as usize]));
            out.push_str("==");
        }
        [a, b] => {
            let n = u32::from(a) << 16 | u32::from(b) << 8;
            for shift in [18, 12, 6] {
                out.push(char::from(ALPHABET[(n >> shift & 63) as usize]));
            }
            out.push('=');
        }
        _ => {}
    }
}

/// Decodes base64, ignoring ASCII whitespace; padding is optional. `None` for any other
/// character or a dangling final character.
///
/// See the example on [`base64_encode`].
pub fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut padding = false;
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padding = true;
                continue;
            }
            c if c.is_ascii_whitespace() => continue,
            _ => return None,
        };
        if padding {
            return None;
        }
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // 6 leftover bits cannot come from whole bytes.
    (bits != 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &[u8] = b"hello hello hello hello, encoded world";

    #[test]
    fn round_trips_every_coding() {
        for coding in [
            "identity",
            "none",
            "gzip",
            "deflate",
            "deflateraw",
            "br",
            "zstd",
            "GZip",
        ] {
            let packed = encode(TEXT, coding).unwrap();
            assert_eq!(decode(&packed, coding).unwrap(), TEXT, "{coding}");
            let empty = encode(b"", coding).unwrap();
            assert_eq!(decode(&empty, coding).unwrap(), &b""[..], "{coding}");
        }
    }

    #[test]
    fn gzip_is_deterministic_and_fast_level() {
        let a = encode(TEXT, "gzip").unwrap();
        assert_eq!(a, encode(TEXT, "gzip").unwrap());
        // mtime 0.
        assert_eq!(&a[4..8], &[0, 0, 0, 0]);
    }

    #[test]
    fn deflate_accepts_raw_and_gzip_accepts_zlib() {
        use flate2::{write::DeflateEncoder, Compression};
        let mut raw = DeflateEncoder::new(Vec::new(), Compression::default());
        raw.write_all(TEXT).unwrap();
        let raw = raw.finish().unwrap();
        assert_eq!(decode(&raw, "deflate").unwrap(), TEXT);
        let zlib = encode(TEXT, "deflate").unwrap();
        assert_eq!(decode(&zlib, "gzip").unwrap(), TEXT);
    }

    #[test]
    fn corrupt_and_unknown_are_errors() {
        for coding in ["gzip", "deflate", "br", "zstd"] {
            let err = decode(b"\x00\x01garbage, not compressed", coding).unwrap_err();
            assert!(
                matches!(err, ContentError::Corrupt { .. }),
                "{coding}: {err}"
            );
        }
        let packed = encode(TEXT, "gzip").unwrap();
        assert!(decode(&packed[..packed.len() / 2], "gzip").is_err());
        assert_eq!(
            decode(b"x", "utf8"),
            Err(ContentError::UnknownEncoding {
                encoding: "utf8".into()
            })
        );
        assert!(encode(b"x", "gzip, br").is_err());
    }

    #[test]
    fn zstd_reads_several_frames() {
        let mut two = encode(b"ab", "zstd").unwrap().into_owned();
        two.extend_from_slice(&encode(b"cd", "zstd").unwrap());
        assert_eq!(decode(&two, "zstd").unwrap(), &b"abcd"[..]);
    }

    #[test]
    fn charset_inference() {
        assert_eq!(infer_charset("text/plain; charset=latin-1", b""), "latin-1");
        assert_eq!(infer_charset("text/plain; charset=gbk", b""), "gb18030");
        assert_eq!(infer_charset("text/plain", b"\xef\xbb\xbfx"), "utf-8-sig");
        assert_eq!(
            infer_charset("text/plain; charset=latin-1", b"\xff\xfex"),
            "utf-16le"
        );
        assert_eq!(infer_charset("text/html", b"<html>"), "utf8");
        assert_eq!(
            infer_charset(
                "text/html",
                b"<META http-equiv=x content=\"text/html; charset=ISO-8859-2\">"
            ),
            "ISO-8859-2"
        );
        assert_eq!(
            infer_charset(
                "application/xml",
                b"<?xml version=\"1.0\" encoding=\"windows-1251\"?>"
            ),
            "windows-1251"
        );
        assert_eq!(infer_charset("text/xml", b"<a/>"), "utf8");
        assert_eq!(infer_charset("text/javascript", b""), "utf8");
        assert_eq!(
            infer_charset("text/css", b"@charset \"koi8-r\"; a{}"),
            "koi8-r"
        );
        assert_eq!(infer_charset("text/css", b"a{}"), "utf8");
        assert_eq!(infer_charset("", b""), "latin-1");
        assert_eq!(infer_charset("text/plain; charset=", b""), "latin-1");
    }

    #[test]
    fn charsets_decode_and_encode() {
        let all: Vec<u8> = (0..=255).collect();
        let text = decode_text(&all, "iso-8859-1").unwrap();
        assert_eq!(text.chars().count(), 256);
        assert_eq!(encode_text(&text, "latin1").unwrap(), all);
        assert!(decode_text(b"\x80", "ascii").is_err());
        assert_eq!(decode_text(b"\xef\xbb\xbfa", "utf-8-sig").unwrap(), "a");
        assert_eq!(decode_text(b"\xff\xfea\x00", "utf-16").unwrap(), "a");
        assert_eq!(decode_text(b"\x00a", "utf-16be").unwrap(), "a");
        assert_eq!(
            decode_text(b"\xff\xfe\x00\x00a\x00\x00\x00", "utf-32le").unwrap(),
            "\u{feff}a"
        );
        assert_eq!(
            encode_text("é", "utf-32be").unwrap(),
            &b"\x00\x00\x00\xe9"[..]
        );
        assert_eq!(decode_text(b"\x82\xa0", "shift_jis").unwrap(), "あ");
        assert_eq!(encode_text("あ", "Shift_JIS").unwrap(), &b"\x82\xa0"[..]);
        assert_eq!(decode_text(b"\xd2\xbb", "gb18030").unwrap(), "一");
        assert!(matches!(
            decode_text(b"x", "no-such-charset"),
            Err(ContentError::UnknownCharset { .. })
        ));
        assert!(encode_text("あ", "windows-1252").is_err());
        assert_eq!(decode_text_lossy(b"a\xff", "nonsense"), "a\u{fffd}");
    }
}
