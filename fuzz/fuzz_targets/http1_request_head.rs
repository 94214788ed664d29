//! Request heads: parsing never panics and never reads past the head; a head the proxy accepts
//! (its framing is not refused), written back for forwarding, parses again to the same method,
//! target, version, forwarded fields and framing.
#![no_main]

use bytes::BytesMut;
use interpose::fuzzing::http1::{
    parse_request_head, request_framing, write_request_head, HeadOptions, MAX_HEADERS,
    MAX_HEAD_BYTES,
};
use interpose_fuzz::{end_to_end, same_framing};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let head = match parse_request_head(&mut buf) {
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
    assert!(!head.method.is_empty() && !head.target.is_empty());

    let Ok(framing) = request_framing(&head) else {
        return;
    };
    let mut out = BytesMut::new();
    write_request_head(
        &mut out,
        &head.method,
        &head.target,
        head.version,
        &head.headers,
        HeadOptions::new(framing),
    );
    let mut again = out.clone();
    let reparsed = match parse_request_head(&mut again) {
        Ok(Some(head)) => head,
        other => panic!("written head {:?} does not parse: {other:?}", out),
    };
    assert!(again.is_empty(), "written head {out:?} has bytes after it");
    assert_eq!(reparsed.method, head.method);
    assert_eq!(reparsed.target, head.target);
    assert_eq!(reparsed.version, head.version);
    assert_eq!(end_to_end(&reparsed.headers), end_to_end(&head.headers));
    let reframed = request_framing(&reparsed).expect("the written head's framing is accepted");
    assert!(
        same_framing(reframed, framing),
        "{framing:?} written as {reframed:?}: {out:?}"
    );
});
