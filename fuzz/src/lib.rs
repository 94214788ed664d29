//! What the fuzz targets share: reading structured choices out of the fuzzer's bytes, cutting
//! a byte stream at fuzzer-chosen points, and the parts of a head that survive forwarding.

use bytes::BytesMut;
use interpose::fuzzing::http1::{connection_has, BodyDecoder, BodyError, Frame, Framing};
use interpose_plugin_abi::Headers;

/// Reads choices off the front of the fuzzer's input; past its end every read is 0.
pub struct Choices<'a> {
    bytes: &'a [u8],
}

impl<'a> Choices<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Choices { bytes }
    }

    pub fn byte(&mut self) -> u8 {
        match self.bytes {
            [first, rest @ ..] => {
                self.bytes = rest;
                *first
            }
            [] => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(std::array::from_fn(|_| self.byte()))
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.bytes.split_at(n.min(self.bytes.len()));
        self.bytes = rest;
        taken
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// `count` piece lengths (1 to 256 bytes each) read from `choices`; the stream is cut there
/// and after the last cut the rest is one piece.
pub fn cut_points(choices: &mut Choices<'_>, count: usize) -> Vec<usize> {
    (0..count)
        .map(|_| usize::from(choices.byte()) + 1)
        .collect()
}

/// `stream` cut at `lengths` (see [`cut_points`]).
pub fn pieces<'a>(stream: &'a [u8], lengths: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut rest = stream;
    for &length in lengths {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(length.min(rest.len()));
        pieces.push(piece);
        rest = tail;
    }
    if !rest.is_empty() || pieces.is_empty() {
        pieces.push(rest);
    }
    pieces
}

/// What a body decoder made of a byte stream.
#[derive(Debug, Default, PartialEq)]
pub struct Decoded {
    pub data: Vec<u8>,
    pub trailers: Option<Headers>,
    pub ended: bool,
    /// The bytes left in the buffer after the body (empty after an error: how much was
    /// buffered when it was found depends on the cuts).
    pub left: Vec<u8>,
    pub error: Option<BodyError>,
}

/// Feeds `pieces` to a decoder for `framing` one after the other, draining every frame after
/// each; the peer closes after the last piece when `eof`. Checks the decoder's own promises on
/// the way: no empty data frames, one trailers frame at most, `End` repeats, no frame without
/// progress (so no endless loop), no more data than a `Length` body has.
pub fn decode_pieces(framing: Framing, pieces: &[&[u8]], eof: bool) -> Decoded {
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    let mut decoder = BodyDecoder::new(framing);
    let mut buf = BytesMut::new();
    let mut decoded = Decoded::default();
    // Every frame but End consumes at least one byte, trailers at least two: a few calls per
    // byte and per piece bound any correct decoder.
    let mut budget = 4 * total + 4 * pieces.len() + 16;
    'pieces: for (i, piece) in pieces.iter().enumerate() {
        buf.extend_from_slice(piece);
        let eof = eof && i + 1 == pieces.len();
        while !decoded.ended {
            budget = budget
                .checked_sub(1)
                .expect("the decoder returns frames without consuming input");
            let before = buf.len();
            match decoder.decode(&mut buf, eof) {
                Ok(None) => {
                    assert!(!eof, "Ok(None) after the peer closed");
                    break;
                }
                Ok(Some(Frame::Data(data))) => {
                    assert!(!data.is_empty(), "empty data frame");
                    assert!(buf.len() < before, "data frame without consuming input");
                    decoded.data.extend_from_slice(&data);
                }
                Ok(Some(Frame::Trailers(trailers))) => {
                    assert!(decoded.trailers.is_none(), "two trailers frames");
                    assert!(!trailers.is_empty(), "empty trailers frame");
                    assert!(framing == Framing::Chunked, "trailers without chunked");
                    decoded.trailers = Some(trailers);
                }
                Ok(Some(Frame::End)) => {
                    decoded.ended = true;
                    assert!(decoder.is_finished());
                    let left = buf.len();
                    assert_eq!(decoder.decode(&mut buf, eof), Ok(Some(Frame::End)));
                    assert_eq!(buf.len(), left, "End again consumed bytes");
                }
                Err(error) => {
                    decoded.error = Some(error);
                    break 'pieces;
                }
            }
        }
    }
    if let Framing::Length(n) = framing {
        assert!(
            decoded.data.len() as u64 <= n,
            "more data than Content-Length"
        );
        if decoded.ended {
            assert_eq!(decoded.data.len() as u64, n);
        }
        let remaining = decoder.remaining().expect("Length framing has a remainder");
        assert_eq!(remaining, n - decoded.data.len() as u64);
    }
    if framing == Framing::Empty {
        assert!(decoded.data.is_empty());
    }
    assert!(decoded.data.len() <= total);
    if decoded.error.is_none() {
        decoded.left = buf.to_vec();
    }
    decoded
}

/// The fields of a head that are forwarded as they are (neither framing nor hop-by-hop, nor
/// named by a Connection field), in order.
pub fn end_to_end(headers: &Headers) -> Vec<(String, Vec<u8>)> {
    const HOP_BY_HOP: [&str; 8] = [
        "content-length",
        "transfer-encoding",
        "trailer",
        "connection",
        "upgrade",
        "keep-alive",
        "proxy-connection",
        "te",
    ];
    headers
        .iter()
        .filter(|(name, _)| !HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)))
        .filter(|(name, _)| !connection_has(headers, name))
        .map(|(name, value)| (name.to_string(), value.to_vec()))
        .collect()
}

/// Framing up to what is said the same way on the wire: a request without body and one with
/// `Content-Length: 0` are both empty.
pub fn same_framing(a: Framing, b: Framing) -> bool {
    let norm = |f| match f {
        Framing::Length(0) => Framing::Empty,
        f => f,
    };
    norm(a) == norm(b)
}
