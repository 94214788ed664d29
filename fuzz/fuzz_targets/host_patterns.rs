//! `ignore_hosts` / `allow_hosts` patterns: the first line is `host:port`, the others are
//! patterns. Compiling never panics (bad patterns are errors) and matching is bounded.
#![no_main]

use interpose::options::HostPatterns;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.lines();
    let target = lines.next().unwrap_or_default();
    let (host, port) = match target.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().unwrap_or(443)),
        None => (target, 443),
    };
    let patterns: Vec<&str> = lines.take(8).collect();
    match HostPatterns::new(&patterns) {
        Ok(compiled) => {
            assert_eq!(compiled.is_empty(), patterns.is_empty());
            let _ = compiled.matches(host, port);
            let _ = compiled.matches(target, 0);
        }
        Err(error) => assert!(error.starts_with("invalid host pattern")),
    }
});
