//! WebSocket framing (RFC 6455 section 5): reading frames out of a byte buffer, unmasked, and
//! writing them back, masked when they go to a server.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A frame's opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// The next fragment of a message.
    Continuation,
    /// The first (or only) frame of a text message.
    Text,
    /// The first (or only) frame of a binary message.
    Binary,
    /// The closing handshake.
    Close,
    /// A ping.
    Ping,
    /// A pong.
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Opcode> {
        Some(match bits {
            0 => Opcode::Continuation,
            1 => Opcode::Text,
            2 => Opcode::Binary,
            8 => Opcode::Close,
            9 => Opcode::Ping,
            10 => Opcode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0,
            Opcode::Text => 1,
            Opcode::Binary => 2,
            Opcode::Close => 8,
            Opcode::Ping => 9,
            Opcode::Pong => 10,
        }
    }

    /// Whether this is a control frame (close, ping, pong).
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// One frame, its payload unmasked.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    /// Whether this is the last frame of its message.
    pub fin: bool,
    /// RSV1: the message is compressed (permessage-deflate), on its first frame.
    pub compressed: bool,
    /// What the frame is.
    pub opcode: Opcode,
    /// The payload.
    pub payload: Bytes,
}

/// Why a peer's bytes are not a valid frame; the text goes into the close reason.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// A reserved opcode or RSV bit, or a malformed control frame.
    Protocol(&'static str),
    /// A frame longer than the limit.
    TooBig(u64),
}

/// Takes the next whole frame out of `buf`; `Ok(None)` until one has arrived. Frames over
/// `limit` bytes of payload are refused as soon as their header is in.
pub fn parse(buf: &mut BytesMut, limit: u64) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x30 != 0 {
        return Err(FrameError::Protocol("reserved bits set"));
    }
    let opcode = Opcode::from_bits(b0 & 0x0f).ok_or(FrameError::Protocol("unknown opcode"))?;
    let fin = b0 & 0x80 != 0;
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7f {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut n = [0u8; 8];
            n.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(n), 10)
        }
        n => (u64::from(n), 2),
    };
    if opcode.is_control() && (len > 125 || !fin) {
        return Err(FrameError::Protocol(
            "fragmented or oversized control frame",
        ));
    }
    if len > limit {
        return Err(FrameError::TooBig(len));
    }
    let mask = if masked {
        if buf.len() < at + 4 {
            return Ok(None);
        }
        let key = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        at += 4;
        Some(key)
    } else {
        None
    };
    let len = len as usize;
    if buf.len() < at + len {
        buf.reserve(at + len - buf.len());
        return Ok(None);
    }
    buf.advance(at);
    let mut payload = buf.split_to(len);
    if let Some(key) = mask {
        apply_mask(&mut payload, key);
    }
    Ok(Some(Frame {
        fin,
        compressed: b0 & 0x40 != 0,
        opcode,
        payload: payload.freeze(),
    }))
}

/// XORs `data` with the masking key (masking and unmasking are the same).
fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    for (i, byte) in data.iter_mut().enumerate() {
        *byte ^= key[i & 3];
    }
}

/// Appends a frame to `out`: masked with `mask` (frames to a server), or not (to a client).
/// Never compressed: the proxy forwards every message uncompressed, which permessage-deflate
/// allows.
pub fn write(out: &mut BytesMut, fin: bool, opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>) {
    out.reserve(payload.len() + 14);
    out.put_u8(if fin { 0x80 } else { 0 } | opcode.bits());
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.put_u8(mask_bit | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.put_u8(mask_bit | 126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(mask_bit | 127);
            out.put_u64(n as u64);
        }
    }
    match mask {
        Some(key) => {
            out.put_slice(&key);
            let start = out.len();
            out.put_slice(payload);
            apply_mask(&mut out[start..], key);
        }
        None => out.put_slice(payload),
    }
}

/// A close frame's payload read as (code, reason): no payload is 1005 (no status), as
/// RFC 6455 section 7.1.5 says.
pub fn close_parts(payload: &[u8]) -> (u16, String) {
    if payload.len() < 2 {
        return (1005, String::new());
    }
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    (code, String::from_utf8_lossy(&payload[2..]).into_owned())
}

/// A close frame's payload for `code` and `reason` (empty for 1005, which is never sent).
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    if code == 1005 || code == 1006 {
        return Vec::new();
    }
    let mut payload = code.to_be_bytes().to_vec();
    // A control frame's payload is at most 125 bytes.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_bytes(fin: bool, opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>) -> BytesMut {
        let mut out = BytesMut::new();
        write(&mut out, fin, opcode, payload, mask);
        out
    }

    #[test]
    fn round_trips_masked_and_unmasked_frames_of_every_length_class() {
        for len in [0usize, 5, 125, 126, 65_535, 65_536, 200_000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut buf = frame_bytes(true, Opcode::Binary, &payload, mask);
                let frame = parse(&mut buf, u64::MAX).unwrap().unwrap();
                assert_eq!(frame.payload.as_ref(), payload.as_slice(), "len {len}");
                assert!(frame.fin && !frame.compressed && frame.opcode == Opcode::Binary);
                assert!(buf.is_empty());
            }
        }
    }

    #[test]
    fn waits_for_the_whole_frame_and_leaves_the_next_one() {
        let mut all = frame_bytes(false, Opcode::Text, b"hel", Some([9, 8, 7, 6]));
        all.extend_from_slice(&frame_bytes(true, Opcode::Continuation, b"lo", None));
        for cut in 0..all.len() {
            let mut part = BytesMut::from(&all[..cut]);
            let first = parse(&mut part, 1 << 20).unwrap();
            if cut < 9 {
                assert!(first.is_none(), "cut {cut}");
            }
        }
        let mut buf = all.clone();
        let a = parse(&mut buf, 1 << 20).unwrap().unwrap();
        let b = parse(&mut buf, 1 << 20).unwrap().unwrap();
        assert_eq!(
            (a.fin, a.opcode, a.payload.as_ref()),
            (false, Opcode::Text, &b"hel"[..])
        );
        assert_eq!(
            (b.fin, b.opcode, b.payload.as_ref()),
            (true, Opcode::Continuation, &b"lo"[..])
        );
        assert_eq!(parse(&mut buf, 1 << 20), Ok(None));
    }

    #[test]
    fn refuses_bad_frames() {
        let mut reserved = BytesMut::from(&[0x83u8, 0x00][..]);
        assert_eq!(
            parse(&mut reserved, 10),
            Err(FrameError::Protocol("unknown opcode"))
        );
        let mut rsv2 = BytesMut::from(&[0xa1u8, 0x00][..]);
        assert!(matches!(parse(&mut rsv2, 10), Err(FrameError::Protocol(_))));
        let mut long_ping = frame_bytes(true, Opcode::Ping, &[0; 126], None);
        assert!(matches!(
            parse(&mut long_ping, 1000),
            Err(FrameError::Protocol(_))
        ));
        let mut big = BytesMut::from(&[0x82u8, 127, 0, 0, 0, 1, 0, 0, 0, 0][..]);
        assert_eq!(parse(&mut big, 1 << 20), Err(FrameError::TooBig(1 << 32)));
    }

    #[test]
    fn close_payloads() {
        assert_eq!(close_parts(&[]), (1005, String::new()));
        assert_eq!(
            close_parts(&close_payload(1000, "bye")),
            (1000, "bye".to_string())
        );
        assert!(close_payload(1006, "x").is_empty());
        assert_eq!(close_payload(1001, &"é".repeat(100)).len(), 2 + 122);
    }
}
