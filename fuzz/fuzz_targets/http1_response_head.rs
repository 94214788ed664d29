//! Response heads: as `http1_request_head`, for responses to a GET, HEAD or CONNECT (the
//! request method decides the framing). A non-empty reason phrase survives forwarding.
#![no_main]

use bytes::BytesMut;
use interpose::fuzzing::http1::{
    parse_response_head, response_framing, write_response_head, HeadOptions, MAX_HEADERS,
    MAX_HEAD_BYTES,
};
use interpose_fuzz::{end_to_end, same_framing};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&method, data)) = data.split_first() else {
        return;
    };
    let method = ["GET", "HEAD", "CONNECT", "POST"][usize::from(method % 4)];
    let mut buf = BytesMut::from(data);
    let head = match parse_response_head(&mut buf) {
        Ok(Some(head)) => head,
        Ok(None) => {
            assert_eq!(&buf[..], data, "an incomplete head consumed bytes");
            return;
        }
        Err(error) => {
            let _ = (error.to_string(), error.status());
            return;
        }
    };
    assert!(data.ends_with(&buf), "what follows the head is kept");
    assert!(data.len() - buf.len() <= MAX_HEAD_BYTES);
    assert!(head.headers.len() <= MAX_HEADERS);
    assert!((100..=999).contains(&head.status));

    let Ok(framing) = response_framing(method, &head) else {
        return;
    };
    let mut out = BytesMut::new();
    write_response_head(
        &mut out,
        head.version,
        head.status,
        &head.reason,
        &head.headers,
        HeadOptions::new(framing),
    );
    let mut again = out.clone();
    let reparsed = match parse_response_head(&mut again) {
        Ok(Some(head)) => head,
        other => panic!("written head {:?} does not parse: {other:?}", out),
    };
    assert!(again.is_empty(), "written head {out:?} has bytes after it");
    assert_eq!(reparsed.status, head.status);
    assert_eq!(reparsed.version, head.version);
    if !head.reason.is_empty() {
        assert_eq!(reparsed.reason, head.reason);
    }
    assert_eq!(end_to_end(&reparsed.headers), end_to_end(&head.headers));
    let reframed =
        response_framing(method, &reparsed).expect("the written head's framing is accepted");
    assert!(
        same_framing(reframed, framing),
        "{framing:?} written as {reframed:?}: {out:?}"
    );
});
