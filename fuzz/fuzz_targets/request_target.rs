//! Request targets to flow requests, for a regular proxy (absolute form needed), a reverse
//! proxy and a tunnel: no panics; a request that is routed has a host, a port, a path that
//! starts with `/` (or is `*`), and an http or https scheme.
#![no_main]

use std::sync::Arc;

use interpose::fuzzing::{
    http1::RequestHead,
    messages::{request_from_head, Destination, FixedTarget},
};
use interpose_plugin_abi::{Headers, HttpVersion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, target)) = data.split_first() else {
        return;
    };
    let target = String::from_utf8_lossy(target).into_owned();
    let destination = match choice % 3 {
        0 => Destination::FromRequest,
        1 => Destination::Fixed(Arc::new(FixedTarget {
            scheme: "http",
            host: "10.0.0.1".into(),
            port: 9000,
            host_header: Some("10.0.0.1:9000".into()),
        })),
        _ => Destination::Fixed(Arc::new(FixedTarget {
            scheme: "https",
            host: "inner.example".into(),
            port: 443,
            host_header: None,
        })),
    };
    let head = RequestHead {
        method: if choice & 0x80 != 0 { "OPTIONS" } else { "GET" }.into(),
        target: target.clone(),
        version: HttpVersion::Http11,
        headers: [("Host", "client.example")]
            .into_iter()
            .collect::<Headers>(),
    };
    let Ok(request) = request_from_head(&destination, head, 0.0) else {
        return;
    };
    assert!(
        request.path.starts_with('/') || request.path == "*",
        "{target:?} routed with path {:?}",
        request.path
    );
    assert!(
        request.scheme == "http" || request.scheme == "https",
        "{target:?} routed with scheme {:?}",
        request.scheme
    );
    assert!(
        !request.host.is_empty(),
        "{target:?} routed to an empty host"
    );
    assert_eq!(request.headers.len(), 1, "{target:?}");
    let _ = request.url();
});
