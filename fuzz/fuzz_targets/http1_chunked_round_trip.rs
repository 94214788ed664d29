//! Chunked bodies built from the fuzzer's choices (chunk sizes with leading zeros or
//! upper-case digits, extensions, trailer fields, then a pipelined message), cut at
//! fuzzer-chosen points: the decoded data equals the body that was encoded, the trailers
//! equal those written, and the next message stays in the buffer.
#![no_main]

use bytes::BytesMut;
use interpose::fuzzing::http1::{write_chunk_size, write_last_chunk, Framing};
use interpose_fuzz::{cut_points, decode_pieces, pieces, Choices};
use interpose_plugin_abi::Headers;
use libfuzzer_sys::fuzz_target;

/// Valid chunk extensions (RFC 9112 §7.1.1), BWS included.
const EXTENSIONS: [&str; 8] = [
    "",
    ";a",
    ";a=b",
    ";name=\"quoted \\\" value\"",
    " ; a = b",
    ";a;b=1;c=\"\"",
    "\t;x=\"\u{e9}\"",
    ";ext=\"v\" ;y",
];

const TCHARS: &[u8] =
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

const NEXT: &[u8] = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let mut choices = Choices::new(data);
    let chunk_count = usize::from(choices.byte() % 8);
    let cut_count = usize::from(choices.byte() % 16);
    let lengths = cut_points(&mut choices, cut_count);
    let trailer_count = usize::from(choices.byte() % 4);

    let mut trailers = Headers::new();
    for _ in 0..trailer_count {
        // `x-` names are never dropped from trailers; values without CR, LF or NUL and
        // without leading or trailing whitespace reach the other side as they are.
        let name_len = usize::from(choices.byte() % 8) + 1;
        let name: String = std::iter::once("x-".to_string())
            .chain(
                choices
                    .take(name_len)
                    .iter()
                    .map(|b| char::from(TCHARS[usize::from(*b) % TCHARS.len()]).to_string()),
            )
            .collect();
        let value_len = usize::from(choices.byte() % 16);
        let value: Vec<u8> = choices
            .take(value_len)
            .iter()
            .map(|&b| match b {
                0..=0x1f | 0x7f if b != b'\t' => b'.',
                b => b,
            })
            .collect();
        trailers.append(&name, value.trim_ascii());
    }

    let mut chunks = Vec::new();
    for _ in 0..chunk_count {
        let size = usize::from(choices.u16() % 2048) + 1;
        let style = choices.byte();
        chunks.push((size, style));
    }
    let body = choices.rest();

    let mut encoded = BytesMut::new();
    let mut rest = body;
    let mut next_chunk = chunks.iter().cycle();
    while !rest.is_empty() {
        let (size, style) = next_chunk.next().copied().unwrap_or((rest.len(), 0));
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        let mut line = BytesMut::new();
        write_chunk_size(&mut line, chunk.len());
        line.truncate(line.len() - 2);
        let mut digits = String::from_utf8(line.to_vec()).unwrap();
        if style & 1 != 0 {
            digits = digits.to_ascii_uppercase();
        }
        let zeros = usize::from(style >> 1 & 7).min(16 - digits.len());
        encoded.extend_from_slice("0".repeat(zeros).as_bytes());
        encoded.extend_from_slice(digits.as_bytes());
        encoded.extend_from_slice(EXTENSIONS[usize::from(style >> 4 & 7)].as_bytes());
        encoded.extend_from_slice(b"\r\n");
        encoded.extend_from_slice(chunk);
        encoded.extend_from_slice(b"\r\n");
        rest = tail;
    }
    write_last_chunk(&mut encoded, Some(&trailers));
    encoded.extend_from_slice(NEXT);

    let decoded = decode_pieces(Framing::Chunked, &pieces(&encoded, &lengths), false);
    assert_eq!(decoded.error, None, "{encoded:?}");
    assert!(decoded.ended, "{encoded:?}");
    assert_eq!(decoded.data, body);
    assert_eq!(decoded.trailers.unwrap_or_default(), trailers);
    assert_eq!(decoded.left, NEXT);
});
