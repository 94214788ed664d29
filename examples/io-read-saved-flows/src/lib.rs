//! Prints every flow of a mitmproxy flow file: a one-line summary, the request's host, then
//! the flow's whole state (mitmproxy's "io-read-saved-flows" script). Not a plugin: a small
//! program over the `interpose` library's flow file reader.
//!
//! ```text
//! interpose -w flows.mitm ...
//! cargo run -p io-read-saved-flows -- flows.mitm
//! ```

use std::{
    fmt::Write as _,
    io::{self, Read, Write},
};

use interpose::capture::{
    flowfile::{flow_state, FlowReader, ReadError},
    tnetstring::Value,
};
use interpose_plugin_abi::HttpFlow;

/// What [`print_flows`] found in a file.
#[derive(Debug, Default)]
pub struct Summary {
    /// HTTP flows printed.
    pub flows: usize,
    /// Flows of other types (`tcp`, `udp`, `dns`), which the reader skips.
    pub skipped: usize,
    /// The read error that ended the file early, if any.
    pub corrupted: Option<ReadError>,
}

/// Prints each flow of the flow file `input` to `out`, stopping at the first read error
/// with "Flow file corrupted: ..." as mitmproxy's script does; fails only if `out` does.
pub fn print_flows(input: impl Read, out: &mut impl Write) -> io::Result<Summary> {
    let mut summary = Summary::default();
    for flow in FlowReader::new(input) {
        match flow {
            Ok(flow) => {
                writeln!(out, "{}", describe(&flow))?;
                writeln!(out, "{}", flow.request.host())?;
                writeln!(out, "{}", pretty(&flow_state(&flow)))?;
                summary.flows += 1;
            }
            Err(ReadError::Unsupported { flow_type }) => {
                writeln!(out, "(a {flow_type} flow: only HTTP flows are read)")?;
                summary.skipped += 1;
            }
            Err(e) => {
                writeln!(out, "Flow file corrupted: {e}")?;
                summary.corrupted = Some(e);
                break;
            }
        }
    }
    Ok(summary)
}

/// One line per flow: `GET http://example.com/path << 200 OK 7b`.
pub fn describe(flow: &HttpFlow) -> String {
    let request = &flow.request;
    let outcome = match (flow.response(), flow.error()) {
        (Some(response), _) => format!(
            "{} {} {}b",
            response.status_code,
            response.reason(),
            response.content.len()
        ),
        (None, Some(error)) => format!("error: {}", error.msg()),
        (None, None) => "no response".to_string(),
    };
    format!("{} {} << {outcome}", request.method(), request.url())
}

/// `value` as indented text: one dict entry or list item per line, short lists of plain
/// values (addresses, header fields) on one line, bytes as `b"..."` with escapes.
pub fn pretty(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0);
    out
}

/// The widest list kept on one line.
const INLINE_WIDTH: usize = 72;

fn write_value(out: &mut String, value: &Value, depth: usize) {
    match value {
        Value::List(items) if items.is_empty() => out.push_str("[]"),
        Value::Dict(entries) if entries.is_empty() => out.push_str("{}"),
        Value::List(items) => {
            if let Some(line) = inline(items) {
                out.push_str(&line);
                return;
            }
            out.push_str("[\n");
            for item in items {
                indent(out, depth + 1);
                write_value(out, item, depth + 1);
                out.push_str(",\n");
            }
            indent(out, depth);
            out.push(']');
        }
        Value::Dict(entries) => {
            out.push_str("{\n");
            for (key, item) in entries {
                indent(out, depth + 1);
                let _ = write!(out, "{key}: ");
                write_value(out, item, depth + 1);
                out.push_str(",\n");
            }
            indent(out, depth);
            out.push('}');
        }
        scalar => write_scalar(out, scalar),
    }
}

/// `[a, b]` for a short list of scalars.
fn inline(items: &[Value]) -> Option<String> {
    let mut line = String::from("[");
    for (n, item) in items.iter().enumerate() {
        if matches!(item, Value::List(_) | Value::Dict(_)) {
            return None;
        }
        if n > 0 {
            line.push_str(", ");
        }
        write_scalar(&mut line, item);
        if line.len() > INLINE_WIDTH {
            return None;
        }
    }
    line.push(']');
    Some(line)
}

fn write_scalar(out: &mut String, value: &Value) {
    let _ = match value {
        Value::Null => write!(out, "null"),
        Value::Bool(b) => write!(out, "{b}"),
        Value::Int(i) => write!(out, "{i}"),
        // `{:?}` keeps the `.0` of whole numbers, so floats still look like floats.
        Value::Float(x) => write!(out, "{x:?}"),
        Value::Str(s) => write!(out, "{s:?}"),
        Value::Bytes(bytes) => {
            out.push_str("b\"");
            for &byte in bytes {
                match byte {
                    b'"' => out.push_str("\\\""),
                    b'\\' => out.push_str("\\\\"),
                    b'\n' => out.push_str("\\n"),
                    b'\r' => out.push_str("\\r"),
                    b'\t' => out.push_str("\\t"),
                    0x20..=0x7e => out.push(char::from(byte)),
                    _ => {
                        let _ = write!(out, "\\x{byte:02x}");
                    }
                }
            }
            out.push('"');
            Ok(())
        }
        Value::List(_) | Value::Dict(_) => unreachable!("containers are not scalars"),
    };
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use interpose::capture::flowfile::write_flow;
    use interpose_plugin_abi::testing;

    fn file_of(flows: &[HttpFlow]) -> Vec<u8> {
        let mut file = Vec::new();
        for flow in flows {
            write_flow(flow, &mut file);
        }
        file
    }

    fn printed(file: &[u8]) -> (String, Summary) {
        let mut out = Vec::new();
        let summary = print_flows(file, &mut out).unwrap();
        (String::from_utf8(out).unwrap(), summary)
    }

    #[test]
    fn pretty_prints_nested_values() {
        let value = Value::Dict(vec![
            ("id".into(), Value::Str("abc".into())),
            ("ok".into(), Value::Bool(true)),
            ("none".into(), Value::Null),
            ("when".into(), Value::Float(2.0)),
            ("port".into(), Value::Int(443)),
            ("body".into(), Value::Bytes(b"a\"\\\n\x00\xff".to_vec())),
            ("empty".into(), Value::List(vec![])),
            (
                "headers".into(),
                Value::List(vec![Value::List(vec![
                    Value::Bytes(b"host".to_vec()),
                    Value::Bytes(b"example.com".to_vec()),
                ])]),
            ),
            ("long".into(), Value::List(vec![Value::Int(1234567890); 10])),
            ("nested".into(), Value::Dict(vec![])),
        ]);
        let expected = r#"{
  id: "abc",
  ok: true,
  none: null,
  when: 2.0,
  port: 443,
  body: b"a\"\\\n\x00\xff",
  empty: [],
  headers: [
    [b"host", b"example.com"],
  ],
  long: [
    1234567890,
    1234567890,
    1234567890,
    1234567890,
    1234567890,
    1234567890,
    1234567890,
    1234567890,
    1234567890,
    1234567890,
  ],
  nested: {},
}"#;
        assert_eq!(pretty(&value), expected);
    }

    #[test]
    fn prints_summary_host_and_state_of_every_flow() {
        let mut other = testing::flow();
        other.request.host = "other.example".into();
        let (text, summary) = printed(&file_of(&[testing::flow_with_response(), other]));
        assert_eq!(summary.flows, 2);
        assert!(summary.corrupted.is_none());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "GET http://example.com/path << 200 OK 7b");
        assert_eq!(lines[1], "example.com");
        assert_eq!(lines[2], "{");
        assert!(text.contains("\n  type: \"http\",\n"), "{text}");
        assert!(text.contains("\n    host: \"example.com\",\n"), "{text}");
        assert!(
            text.contains("\nGET http://other.example/path << no response\nother.example\n{\n"),
            "{text}"
        );
        assert!(text.ends_with("}\n"), "{text}");
    }

    #[test]
    fn a_truncated_file_prints_its_complete_flows_then_the_error() {
        let mut file = file_of(&[testing::flow_with_response()]);
        let first = file.len();
        write_flow(&testing::flow(), &mut file);
        let (text, summary) = printed(&file[..file.len() - 10]);
        assert_eq!(summary.flows, 1);
        assert!(
            matches!(
                summary.corrupted,
                Some(ReadError::Truncated { offset }) if offset == first as u64
            ),
            "{:?}",
            summary.corrupted
        );
        let error = format!(
            "\nFlow file corrupted: the flow file ends inside the record at byte {first} \
             (the file was cut short)\n"
        );
        assert!(text.ends_with(&error), "{text}");
    }

    #[test]
    fn an_empty_file_has_no_flows() {
        let (text, summary) = printed(b"");
        assert_eq!((text.as_str(), summary.flows), ("", 0));
    }
}
