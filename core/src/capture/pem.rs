//! Base64 (RFC 4648, standard alphabet) and PEM certificates, for flow files (certificates
//! are PEM there, DER in flows) and HAR (binary bodies).

pub use interpose_plugin_abi::encoding::{base64_decode, base64_encode};

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// Appends a DER certificate as PEM (64-character lines, trailing newline), as mitmproxy
/// writes `certificate_list`.
pub fn der_to_pem(der: &[u8], out: &mut Vec<u8>) {
    let mut text = String::with_capacity(der.len() * 4 / 3 + 80);
    text.push_str(BEGIN);
    text.push('\n');
    let mut encoded = String::new();
    base64_encode(der, &mut encoded);
    for line in encoded.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid text.
        text.push_str(std::str::from_utf8(line).unwrap_or_default());
        text.push('\n');
    }
    text.push_str(END);
    text.push('\n');
    out.extend_from_slice(text.as_bytes());
}

/// The DER bytes of the first certificate in a PEM text, if it is one.
pub fn pem_to_der(pem: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(pem).ok()?;
    let start = text.find(BEGIN)? + BEGIN.len();
    let end = start + text[start..].find(END)?;
    base64_decode(&text.as_bytes()[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_known_answers() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut out = String::new();
            base64_encode(plain.as_bytes(), &mut out);
            assert_eq!(out, encoded);
            assert_eq!(base64_decode(encoded.as_bytes()).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64_decode(b"Zm9v\nYmFy").unwrap(), b"foobar");
        assert_eq!(base64_decode(b"Zm9v!"), None);
        assert_eq!(base64_decode(b"Z"), None);
        assert_eq!(base64_decode(b"Zg==Zg"), None);
    }

    #[test]
    fn pem_round_trip() {
        let der: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        let mut pem = Vec::new();
        der_to_pem(&der, &mut pem);
        let text = String::from_utf8(pem.clone()).unwrap();
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(text.ends_with("\n-----END CERTIFICATE-----\n"));
        assert!(text.lines().all(|l| l.len() <= 64));
        assert_eq!(pem_to_der(&pem).unwrap(), der);
        assert_eq!(pem_to_der(b"not a pem"), None);
    }
}
