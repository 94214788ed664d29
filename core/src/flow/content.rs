//! Message bodies as mitmproxy's `get_content(strict=False)` sees them: `Content-Encoding`
//! undone where possible, the raw bytes otherwise.

use std::borrow::Cow;

use interpose_plugin_abi::{encoding, Headers};

/// The body with its `Content-Encoding` undone (`gzip`, `deflate`, `br`, `zstd`,
/// `identity`), with the plugin ABI's decoders, which addons use too.
///
/// Like mitmproxy with `strict=False`, this never fails: an unknown encoding, a list of
/// several, a repeated `Content-Encoding` field, or a body that does not decode gives back the
/// raw bytes unchanged (borrowed, so without a copy).
pub fn decoded<'a>(headers: &Headers, body: &'a [u8]) -> Cow<'a, [u8]> {
    let mut encodings = headers.get_all_bytes("content-encoding");
    let (Some(encoding), None) = (encodings.next(), encodings.next()) else {
        return Cow::Borrowed(body);
    };
    let Ok(encoding) = std::str::from_utf8(encoding) else {
        return Cow::Borrowed(body);
    };
    if body.is_empty() {
        return Cow::Borrowed(body);
    }
    encoding::decode(body, encoding.trim()).unwrap_or(Cow::Borrowed(body))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::{
        write::{DeflateEncoder, GzEncoder, ZlibEncoder},
        Compression,
    };

    use super::*;

    const TEXT: &[u8] = b"hello hello hello hello, decoded world";

    fn headers(encoding: &str) -> Headers {
        let mut h = Headers::new();
        h.append("Content-Type", "text/plain");
        h.append("Content-Encoding", encoding);
        h
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_is_undone() {
        let body = gzip(TEXT);
        assert_eq!(&*decoded(&headers("gzip"), &body), TEXT);
        assert_eq!(&*decoded(&headers(" GZIP "), &body), TEXT);
    }

    #[test]
    fn concatenated_gzip_members_are_all_decoded() {
        let mut body = gzip(b"one ");
        body.extend(gzip(b"two"));
        assert_eq!(&*decoded(&headers("gzip"), &body), b"one two");
    }

    #[test]
    fn deflate_is_zlib_or_raw() {
        assert_eq!(&*decoded(&headers("deflate"), &zlib(TEXT)), TEXT);
        assert_eq!(&*decoded(&headers("Deflate"), &raw_deflate(TEXT)), TEXT);
    }

    #[test]
    fn large_bodies_grow_the_output() {
        let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        assert_eq!(&*decoded(&headers("deflate"), &zlib(&big)), &big[..]);
        assert_eq!(&*decoded(&headers("gzip"), &gzip(&big)), &big[..]);
        // Bodies that shrink a lot (here 1000 times) grow the output buffer many times over.
        let zeros = vec![0u8; 1_000_000];
        assert_eq!(&*decoded(&headers("deflate"), &zlib(&zeros)), &zeros[..]);
        assert_eq!(
            &*decoded(&headers("deflate"), &raw_deflate(&zeros)),
            &zeros[..]
        );
    }

    #[test]
    fn identity_and_no_encoding_borrow_the_body() {
        for h in [headers("identity"), Headers::new()] {
            assert!(matches!(decoded(&h, TEXT), Cow::Borrowed(b) if b == TEXT));
        }
    }

    #[test]
    fn unknown_encodings_and_failures_give_the_raw_body() {
        let gz = gzip(TEXT);
        let truncated = &gz[..gz.len() - 6];
        let z = zlib(TEXT);
        let cases: [(&str, &[u8]); 6] = [
            ("compress", b"anything"),
            ("zstd", b"anything"),
            ("gzip", b"not gzip at all"),
            ("gzip", truncated),
            ("deflate", &z[..z.len() / 2]),
            ("gzip, br", &gz),
        ];
        for (encoding, body) in cases {
            assert!(
                matches!(decoded(&headers(encoding), body), Cow::Borrowed(b) if b == body),
                "{encoding}"
            );
        }
    }

    #[test]
    fn brotli_and_zstd_are_undone() {
        for encoding in ["br", "zstd"] {
            let packed = encoding::encode(TEXT, encoding).unwrap();
            assert_eq!(&*decoded(&headers(encoding), &packed), TEXT, "{encoding}");
        }
    }

    #[test]
    fn repeated_content_encoding_gives_the_raw_body() {
        let mut h = headers("gzip");
        h.append("content-encoding", "gzip");
        let body = gzip(&gzip(TEXT));
        assert_eq!(&*decoded(&h, &body), &body[..]);
    }

    #[test]
    fn empty_body_stays_empty() {
        assert!(decoded(&headers("gzip"), b"").is_empty());
    }
}
