//! Filter expressions: text (lossy UTF-8) to `Filter::parse` never panics; an expression that
//! compiles matches flows without panicking (with and without a response, case-sensitive too)
//! and keeps its text; an error formats, its position is within the expression (in
//! characters) and its message is not empty.
#![no_main]

use interpose::filter::Filter;
use interpose_plugin_abi::testing::{flow, flow_with_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let expr = String::from_utf8_lossy(data);
    match Filter::parse(&expr) {
        Ok(filter) => {
            assert_eq!(filter.expression(), &*expr);
            let flows = [flow(), flow_with_response()];
            for flow in &flows {
                let _ = filter.matches(flow);
            }
            // Case sensitivity changes only how regexes are built, not what parses.
            let sensitive = Filter::parse_with(&expr, true)
                .unwrap_or_else(|e| panic!("{expr:?} parses case-insensitively only: {e}"));
            for flow in &flows {
                let _ = sensitive.matches(flow);
            }
        }
        Err(error) => {
            let shown = error.to_string();
            assert!(!shown.is_empty() && !error.message.is_empty());
            assert_eq!(error.expression, *expr);
            assert!(
                error.position <= expr.chars().count(),
                "error position {} past the end of {expr:?}",
                error.position
            );
        }
    }
});
