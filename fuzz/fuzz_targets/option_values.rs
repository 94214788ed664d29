//! Option values as `--set name=value` gives them, one per line, applied to a store of the core
//! options: no panics; whatever was accepted or refused, the store still makes a typed
//! snapshot. Each line is also read as a value of every option type: sizes, integers, seconds
//! and bools that parse are shown (as `--options` shows them) in a way that parses back to the
//! same value, and sizes shown with a suffix are the same number of bytes.
#![no_main]

use std::time::Duration;

use interpose::options::{
    format_size, parse_duration, parse_size, Assignment, OptionSpec, OptionStore, OptionType,
    RawValue, Value,
};
use libfuzzer_sys::fuzz_target;

fn specs() -> Vec<OptionSpec> {
    vec![
        OptionSpec::new("flag", OptionType::Bool, Value::Bool(false), ""),
        OptionSpec::new(
            "port",
            OptionType::Int { min: 0, max: 65535 },
            Value::Int(8080),
            "",
        ),
        OptionSpec::new(
            "count",
            OptionType::Int {
                min: 1,
                max: u64::MAX,
            },
            Value::Int(1),
            "",
        ),
        OptionSpec::optional("limit", OptionType::Size, ""),
        OptionSpec::new(
            "timeout",
            OptionType::Duration,
            Value::Duration(Duration::from_secs(10)),
            "",
        ),
        OptionSpec::optional("name", OptionType::Str, ""),
        OptionSpec::new("choice", OptionType::Str, Value::Str("a".into()), "")
            .with_choices(&["a", "b"]),
        OptionSpec::new("items", OptionType::List, Value::List(Vec::new()), ""),
    ]
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines: Vec<&str> = text.lines().take(64).collect();

    let mut store = OptionStore::with_core_options();
    for line in &lines {
        let assignment = Assignment::from_set_argument(line);
        if let Err(error) = store.apply(std::slice::from_ref(&assignment)) {
            let _ = error.to_string();
        }
    }
    let set: Vec<Assignment> = lines
        .iter()
        .map(|line| Assignment::from_set_argument(line))
        .collect();
    let _ = store.apply(&set);
    if let Err(error) = store.core_options() {
        panic!("accepted values give no snapshot: {error}");
    }
    let _ = store.describe();

    let specs = specs();
    for line in &lines {
        if let Some(bytes) = parse_size(line) {
            let shown = format_size(bytes);
            assert_eq!(
                parse_size(&shown),
                Some(bytes),
                "{line:?} shown as {shown:?}"
            );
        }
        if let Some(duration) = parse_duration(line) {
            let _ = duration.as_secs_f64();
        }
        for spec in &specs {
            let Ok(value) = spec.parse(&RawValue::Text(line.to_string())) else {
                continue;
            };
            if matches!(
                value,
                Value::Bool(_) | Value::Int(_) | Value::Duration(_) | Value::None
            ) {
                let shown = spec.display(&value);
                let again = spec.parse(&RawValue::Text(shown.clone()));
                if value.is_none() {
                    // `none` is how --options shows an unset value, not a value to give.
                    continue;
                }
                assert_eq!(
                    again.as_ref(),
                    Ok(&value),
                    "{}: {line:?} parsed as {value:?}, shown as {shown:?}",
                    spec.name
                );
            }
        }
    }
    for spec in &specs {
        let list = RawValue::List(lines.iter().map(|l| l.to_string()).collect());
        let _ = spec.parse(&list);
        let _ = spec.parse(&RawValue::Missing);
        let _ = spec.parse(&RawValue::Null);
    }
});
