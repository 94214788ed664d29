//! `--mode` specs: no panics; a mode that parses has a spec that parses back to the same mode,
//! and a reverse proxy's target has a host and routes an origin-form request.
#![no_main]

use interpose::{
    fuzzing::{
        http1::RequestHead,
        messages::{request_from_head, Destination},
    },
    proxy::Mode,
};
use interpose_plugin_abi::{Headers, HttpVersion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = std::str::from_utf8(data) else {
        return;
    };
    let mode = match spec.parse::<Mode>() {
        Ok(mode) => mode,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let shown = mode.spec();
    assert_eq!(
        shown.parse::<Mode>().as_ref(),
        Ok(&mode),
        "{spec:?} parsed, its spec {shown:?} does not parse back"
    );
    if let Mode::Reverse(target) = &mode {
        assert!(
            !target.host.is_empty(),
            "{spec:?}: reverse target without host"
        );
        let head = RequestHead {
            method: "GET".into(),
            target: "/".into(),
            version: HttpVersion::Http11,
            headers: Headers::new(),
        };
        let request = request_from_head(&Destination::for_mode(&mode), head, 0.0)
            .unwrap_or_else(|e| panic!("{spec:?}: / is not routed: {e:?}"));
        assert_eq!(request.host.as_str(), target.host);
        assert_eq!(request.port, target.port);
    }
});
