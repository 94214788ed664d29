//! Flow files, written back: every flow `FlowReader` accepts from arbitrary bytes (any
//! supported format version, migrated) is written with `write_flow` as one version-21 record
//! that reads back, alone, as a flow equal to the first (compared by `Debug`), and writing
//! that flow again gives the same bytes.
#![no_main]

use interpose::capture::flowfile::{write_flow, FlowReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for flow in FlowReader::new(data).flatten() {
        let mut written = Vec::new();
        write_flow(&flow, &mut written);
        let mut again = FlowReader::new(&written[..]);
        let reread = match again.next() {
            Some(Ok(reread)) => reread,
            other => panic!(
                "{flow:?} written as {:?} reads back as {other:?}",
                String::from_utf8_lossy(&written)
            ),
        };
        assert!(again.next().is_none(), "one flow written, more read back");
        assert_eq!(
            format!("{reread:?}"),
            format!("{flow:?}"),
            "flow changed when written as {:?}",
            String::from_utf8_lossy(&written)
        );
        let mut rewritten = Vec::new();
        write_flow(&reread, &mut rewritten);
        assert!(rewritten == written, "writing the flow read back gives other bytes");
    }
});
