//! config.yaml: no panics, no endless loops; entries have distinct names and lines within the
//! file, errors name a line within it (from 1); the file applied to a store of the core options
//! leaves a store that still makes a typed snapshot.
#![no_main]

use std::path::Path;

use interpose::{fuzzing::yaml::parse_config, options::OptionStore};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The file is read with `read_to_string`: it is UTF-8 or refused before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // YAML's line breaks: CRLF, LF and a lone CR. yaml-rust2 puts the end of a file that does
    // not end in a line break on the line after its last (an empty key there, `? ` or `: 1`,
    // is on that line too): one more line is allowed.
    let lines = text.replace("\r\n", "\n").split(['\r', '\n']).count() + 1;
    match parse_config(text) {
        Ok(entries) => {
            for (i, entry) in entries.iter().enumerate() {
                assert!(
                    (1..=lines).contains(&entry.line),
                    "{:?} on line {} of {lines}",
                    entry.name,
                    entry.line
                );
                assert!(
                    entries[..i].iter().all(|e| e.name != entry.name),
                    "{:?} twice",
                    entry.name
                );
            }
        }
        Err(error) => {
            assert!(
                (1..=lines).contains(&error.line),
                "error on line {} of {lines}: {}",
                error.line,
                error.problem
            );
        }
    }

    let mut store = OptionStore::with_core_options();
    if let Err(error) = store.load_config_text(Path::new("config.yaml"), text) {
        let _ = error.to_string();
    }
    let _ = store.resolve_pending().map_err(|e| e.to_string());
    if let Err(error) = store.core_options() {
        panic!("accepted config gives no snapshot: {error}");
    }
    let _ = store.describe();
});
