//! Body decoding of arbitrary bytes with each framing: no panics, bounded work, the decoder's
//! own promises (see `decode_pieces`), and the same outcome whether the bytes arrive at once
//! or cut at fuzzer-chosen points.
#![no_main]

use interpose::fuzzing::http1::Framing;
use interpose_fuzz::{cut_points, decode_pieces, pieces, Choices};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut choices = Choices::new(data);
    let framing = match choices.byte() % 4 {
        0 => Framing::Chunked,
        1 => Framing::Length(u64::from(choices.u16())),
        2 => Framing::UntilClose,
        _ => Framing::Empty,
    };
    let eof = choices.byte() & 1 == 0;
    let count = usize::from(choices.byte() % 16);
    let lengths = cut_points(&mut choices, count);
    let stream = choices.rest();

    let whole = decode_pieces(framing, &[stream], eof);
    let cut = decode_pieces(framing, &pieces(stream, &lengths), eof);
    assert_eq!(whole, cut, "{framing:?}, eof {eof}, cut at {lengths:?}");
    if whole.ended {
        assert!(
            stream.ends_with(&whole.left),
            "what follows the body is kept"
        );
    }
});
