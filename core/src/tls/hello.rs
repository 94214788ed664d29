//! A ClientHello parser over the first bytes of a connection that consumes nothing: the
//! engine peeks, asks whether a complete ClientHello is there, and decides (intercept, pass
//! through, not TLS at all) before anything is read. A ClientHello split over several TLS
//! records, or not all arrived yet, is handled.

use super::details::cipher_name;

/// TLS record content type of handshake messages.
const HANDSHAKE: u8 = 22;
/// Handshake message type of a ClientHello.
const CLIENT_HELLO: u8 = 1;
/// The largest record payload TLS allows (2^14) plus what compression or encryption adds;
/// a plaintext ClientHello record above this is not TLS.
const MAX_RECORD: usize = (1 << 14) + 2048;
/// The largest ClientHello accepted (real ones are under 2 KiB, post-quantum key shares
/// included); anything bigger is refused rather than buffered.
const MAX_HELLO: usize = 1 << 16;

const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// What the first bytes of a connection hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloParse {
    /// A whole ClientHello.
    Complete(ClientHello),
    /// The start of a TLS handshake: read more bytes and ask again.
    Incomplete,
    /// Not a TLS ClientHello (plain HTTP, another protocol, or a malformed hello); why.
    NotClientHello(&'static str),
}

/// A client's first TLS handshake message (mitmproxy's `ClientHello`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// The `host_name` of the server_name extension.
    pub sni: Option<String>,
    /// The ALPN protocols offered, in the client's order.
    pub alpn_protocols: Vec<Vec<u8>>,
    /// The cipher suites offered, in the client's order (see [`ClientHello::cipher_list`]).
    pub cipher_suites: Vec<u16>,
    /// The versions of the supported_versions extension (TLS 1.3 clients), else empty.
    pub supported_versions: Vec<u16>,
    /// `legacy_version` (0x0303 for TLS 1.2 and 1.3).
    pub legacy_version: u16,
    /// Every extension, as (type, data), in order.
    pub extensions: Vec<(u16, Vec<u8>)>,
    /// The handshake message, header included, without the record framing.
    pub raw: Vec<u8>,
    /// How many bytes of the connection the records holding it take.
    pub records_len: usize,
}

impl ClientHello {
    /// Looks at `data`, the first bytes a client sent, without consuming them.
    pub fn parse(data: &[u8]) -> HelloParse {
        let mut message = Vec::new();
        let mut pos = 0;
        loop {
            let rest = &data[pos..];
            // Refuse as early as possible: what looks like HTTP must not wait for 5 bytes.
            if let Some(&kind) = rest.first() {
                if kind != HANDSHAKE {
                    return HelloParse::NotClientHello(if pos == 0 {
                        "not a TLS handshake record"
                    } else {
                        "ClientHello interrupted by another record"
                    });
                }
            }
            if rest.get(1).is_some_and(|&major| major != 3) {
                return HelloParse::NotClientHello("not a TLS record version");
            }
            if pos == 0 && rest.get(5).is_some_and(|&kind| kind != CLIENT_HELLO) {
                return HelloParse::NotClientHello("first handshake message is not a ClientHello");
            }
            if rest.len() < 5 {
                return HelloParse::Incomplete;
            }
            let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
            if len == 0 || len > MAX_RECORD {
                return HelloParse::NotClientHello("bad TLS record length");
            }
            let Some(fragment) = rest.get(5..5 + len) else {
                return HelloParse::Incomplete;
            };
            message.extend_from_slice(fragment);
            pos += 5 + len;
            if message.len() < 4 {
                continue;
            }
            let body_len = usize::from(message[1]) << 16
                | usize::from(message[2]) << 8
                | usize::from(message[3]);
            if body_len > MAX_HELLO {
                return HelloParse::NotClientHello("ClientHello too large");
            }
            if message.len() >= 4 + body_len {
                message.truncate(4 + body_len);
                return match parse_body(&message[4..]) {
                    Some(mut hello) => {
                        hello.raw = message;
                        hello.records_len = pos;
                        HelloParse::Complete(hello)
                    }
                    None => HelloParse::NotClientHello("malformed ClientHello"),
                };
            }
        }
    }

    /// The cipher suites offered, named as mitmproxy records them (OpenSSL's names).
    pub fn cipher_list(&self) -> Vec<String> {
        self.cipher_suites.iter().map(|s| cipher_name(*s)).collect()
    }
}

fn parse_body(body: &[u8]) -> Option<ClientHello> {
    let mut r = Reader(body);
    let legacy_version = r.u16()?;
    r.take(32)?; // random
    r.vec8()?; // legacy_session_id
    let cipher_suites = r
        .vec16()?
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    r.vec8()?; // legacy_compression_methods
    let mut hello = ClientHello {
        sni: None,
        alpn_protocols: Vec::new(),
        cipher_suites,
        supported_versions: Vec::new(),
        legacy_version,
        extensions: Vec::new(),
        raw: Vec::new(),
        records_len: 0,
    };
    // Extensions are optional in a TLS 1.2 hello.
    if r.0.is_empty() {
        return Some(hello);
    }
    let mut extensions = Reader(r.vec16()?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let data = extensions.vec16()?;
        match kind {
            EXT_SERVER_NAME => hello.sni = server_name(data)?,
            EXT_ALPN => {
                let mut list = Reader(Reader(data).vec16()?);
                while !list.0.is_empty() {
                    hello.alpn_protocols.push(list.vec8()?.to_vec());
                }
            }
            EXT_SUPPORTED_VERSIONS => {
                hello.supported_versions = Reader(data)
                    .vec8()?
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
            }
            _ => {}
        }
        hello.extensions.push((kind, data.to_vec()));
    }
    Some(hello)
}

/// The `host_name` entry of a server_name extension; `Some(None)` when it has none.
fn server_name(data: &[u8]) -> Option<Option<String>> {
    let mut list = Reader(Reader(data).vec16()?);
    while !list.0.is_empty() {
        let kind = list.u8()?;
        let name = list.vec16()?;
        if kind == 0 {
            // Host names are ASCII (IDNs travel as A-labels); anything else is malformed.
            return name
                .is_ascii()
                .then(|| Some(String::from_utf8_lossy(name).into_owned()));
        }
    }
    Some(None)
}

/// A cursor over TLS's length-prefixed encoding; every read is `None` past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal TLS 1.2-style hello: no extensions.
    fn bare_hello() -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([0; 32]);
        body.push(0); // session id
        body.extend([0, 2, 0xc0, 0x2f]); // one suite
        body.extend([1, 0]); // null compression
        let mut message = vec![CLIENT_HELLO, 0, 0, body.len() as u8];
        message.extend(body);
        let mut record = vec![HANDSHAKE, 3, 1, 0, message.len() as u8];
        record.extend(message);
        record
    }

    #[test]
    fn a_hello_without_extensions() {
        let record = bare_hello();
        let HelloParse::Complete(hello) = ClientHello::parse(&record) else {
            panic!("not parsed");
        };
        assert_eq!(hello.sni, None);
        assert_eq!(hello.cipher_list(), ["ECDHE-RSA-AES128-GCM-SHA256"]);
        assert_eq!(hello.records_len, record.len());
        for n in 0..record.len() {
            assert_eq!(
                ClientHello::parse(&record[..n]),
                HelloParse::Incomplete,
                "{n}"
            );
        }
    }

    #[test]
    fn other_protocols_are_refused_from_the_first_byte() {
        assert_eq!(
            ClientHello::parse(b"G"),
            HelloParse::NotClientHello("not a TLS handshake record")
        );
        assert!(matches!(
            ClientHello::parse(b"GET / HTTP/1.1\r\n\r\n"),
            HelloParse::NotClientHello(_)
        ));
        assert!(matches!(
            ClientHello::parse(&[HANDSHAKE, 1]),
            HelloParse::NotClientHello(_)
        ));
        // A server's hello, or an alert record.
        assert!(matches!(
            ClientHello::parse(&[HANDSHAKE, 3, 3, 0, 40, 2]),
            HelloParse::NotClientHello(_)
        ));
        assert!(matches!(
            ClientHello::parse(&[21, 3, 3, 0, 2, 2, 40]),
            HelloParse::NotClientHello(_)
        ));
        let mut truncated = bare_hello();
        truncated[4] -= 3; // the record ends inside the body, the message says more is coming
        truncated.truncate(truncated.len() - 3);
        truncated.extend([HANDSHAKE, 3, 3, 0, 1]);
        assert_eq!(ClientHello::parse(&truncated), HelloParse::Incomplete);
        let mut bad = bare_hello();
        let n = bad.len();
        bad[n - 5] = 9; // cipher suite vector longer than the body
        assert!(matches!(
            ClientHello::parse(&bad),
            HelloParse::NotClientHello("malformed ClientHello")
        ));
    }
}
