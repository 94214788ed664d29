//! Flow files: any bytes to `FlowReader` yield flows or errors, never a panic, a hang or an
//! allocation beyond what the input holds; the reader stops after an error that ends the file
//! and never yields more items than the input has bytes. The same bytes to
//! `tnetstring::decode` never panic, and what it decodes it took from the input.
#![no_main]

use interpose::capture::{flowfile::FlowReader, tnetstring};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut items = 0usize;
    for item in FlowReader::new(data) {
        items += 1;
        assert!(items <= data.len(), "more records than bytes");
        match item {
            Ok(flow) => {
                let _ = format!("{flow:?}");
            }
            Err(error) => {
                let _ = (error.to_string(), error.root().to_string());
            }
        }
    }

    match tnetstring::decode(data) {
        Ok((value, used)) => {
            assert!(used > 0 && used <= data.len(), "decode took {used} of {} bytes", data.len());
            // What decodes encodes again and decodes to the same value (NaN aside).
            let mut out = Vec::new();
            tnetstring::encode(&value, &mut out);
            let (again, n) = tnetstring::decode(&out)
                .unwrap_or_else(|e| panic!("encoded {value:?} as {out:?}, which fails: {e}"));
            assert_eq!(n, out.len());
            assert_eq!(format!("{again:?}"), format!("{value:?}"));
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
