//! Reading `config.yaml`: one YAML mapping of option names to scalars or lists of scalars,
//! each key with its line for error messages.

use yaml_rust2::{
    parser::{Event, Parser},
    scanner::{Marker, ScanError, TScalarStyle},
};

use super::spec::RawValue;

/// One `name: value` line of a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The option name.
    pub name: String,
    /// The value as written.
    pub value: RawValue,
    /// The key's line, from 1.
    pub line: usize,
}

/// What is wrong with a config file, and on which line (from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSyntaxError {
    /// The line of the problem.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

impl From<ScanError> for ConfigSyntaxError {
    fn from(error: ScanError) -> Self {
        ConfigSyntaxError {
            line: error.marker().line(),
            problem: format!("invalid YAML: {}", error.info()),
        }
    }
}

fn error_at(mark: Marker, problem: impl Into<String>) -> ConfigSyntaxError {
    ConfigSyntaxError {
        line: mark.line(),
        problem: problem.into(),
    }
}

/// Whether a plain scalar is YAML's null.
fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// Parses a config file's text: an empty file (or one with only comments) has no entries; a
/// key given twice is an error, as in mitmproxy's YAML loader.
pub fn parse_config(text: &str) -> Result<Vec<ConfigEntry>, ConfigSyntaxError> {
    let mut parser = Parser::new_from_str(text);
    let mut entries: Vec<ConfigEntry> = Vec::new();
    // StreamStart, then either StreamEnd (empty file) or one document.
    parser.next_token()?;
    match parser.next_token()? {
        (Event::StreamEnd, _) => return Ok(entries),
        (Event::DocumentStart, _) => {}
        (_, mark) => return Err(error_at(mark, "expected a YAML document")),
    }
    let is_mapping = match parser.next_token()? {
        (Event::MappingStart(..), _) => true,
        (Event::Scalar(text, TScalarStyle::Plain, ..), _) if is_null(&text) => false,
        (_, mark) => {
            return Err(error_at(
                mark,
                "expected option names with their values, one `name: value` per line",
            ))
        }
    };
    if is_mapping {
        read_pairs(&mut parser, &mut entries)?;
    }
    match parser.next_token()? {
        (Event::DocumentEnd, _) => {}
        (_, mark) => return Err(error_at(mark, "expected the end of the document")),
    }
    match parser.next_token()? {
        (Event::StreamEnd, _) => Ok(entries),
        (_, mark) => Err(error_at(
            mark,
            "more than one YAML document (`---`): put every option in one",
        )),
    }
}

/// Reads the pairs of the mapping just started, up to its end.
fn read_pairs(
    parser: &mut Parser<std::str::Chars<'_>>,
    entries: &mut Vec<ConfigEntry>,
) -> Result<(), ConfigSyntaxError> {
    loop {
        let (name, key_mark) = match parser.next_token()? {
            (Event::MappingEnd, _) => return Ok(()),
            (Event::Scalar(name, ..), mark) => (name, mark),
            (_, mark) => return Err(error_at(mark, "option names must be plain text")),
        };
        let value = match parser.next_token()? {
            (Event::Scalar(text, style, ..), _) => {
                if style == TScalarStyle::Plain && is_null(&text) {
                    RawValue::Null
                } else {
                    RawValue::Text(text)
                }
            }
            (Event::SequenceStart(..), _) => RawValue::List(read_list(parser, &name)?),
            (Event::MappingStart(..), mark) => {
                return Err(error_at(
                    mark,
                    format!("{name}: expected a value or a list, got a mapping"),
                ))
            }
            (Event::Alias(_), mark) => {
                return Err(error_at(
                    mark,
                    format!("{name}: YAML aliases (*name) are not supported"),
                ))
            }
            (_, mark) => return Err(error_at(mark, format!("{name}: expected a value"))),
        };
        if entries.iter().any(|e| e.name == name) {
            return Err(error_at(key_mark, format!("{name} is set twice")));
        }
        entries.push(ConfigEntry {
            name,
            value,
            line: key_mark.line(),
        });
    }
}

/// The scalars of the list just started.
fn read_list(
    parser: &mut Parser<std::str::Chars<'_>>,
    name: &str,
) -> Result<Vec<String>, ConfigSyntaxError> {
    let mut items = Vec::new();
    loop {
        match parser.next_token()? {
            (Event::SequenceEnd, _) => return Ok(items),
            (Event::Scalar(text, ..), _) => items.push(text),
            (_, mark) => {
                return Err(error_at(
                    mark,
                    format!("{name}: list items must be single values"),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, value: RawValue, line: usize) -> ConfigEntry {
        ConfigEntry {
            name: name.into(),
            value,
            line,
        }
    }

    fn text(s: &str) -> RawValue {
        RawValue::Text(s.into())
    }

    #[test]
    fn reads_scalars_lists_and_nulls_with_their_lines() {
        let file = "\
# a mitmproxy-style config
listen_port: 8081
mode: [regular]
ignore_hosts:
  - example\\.com
  - '^10\\.'
body_size_limit: 3m
stream_large_bodies:
connect_timeout: ~
listen_host: \"\"
ssl_insecure: true
";
        assert_eq!(
            parse_config(file).unwrap(),
            [
                entry("listen_port", text("8081"), 2),
                entry("mode", RawValue::List(vec!["regular".into()]), 3),
                entry(
                    "ignore_hosts",
                    RawValue::List(vec!["example\\.com".into(), "^10\\.".into()]),
                    4
                ),
                entry("body_size_limit", text("3m"), 7),
                entry("stream_large_bodies", RawValue::Null, 8),
                entry("connect_timeout", RawValue::Null, 9),
                entry("listen_host", text(""), 10),
                entry("ssl_insecure", text("true"), 11),
            ]
        );
    }

    #[test]
    fn empty_files_have_no_entries() {
        for file in ["", "\n", "# only a comment\n", "---\n", "---\n...\n", "{}"] {
            assert_eq!(parse_config(file), Ok(vec![]), "{file:?}");
        }
    }

    #[test]
    fn errors_name_the_line() {
        let cases: [(&str, usize, &str); 7] = [
            ("listen_port: 1\n  bad: [\n", 2, "invalid YAML"),
            ("a: 1\nb: \"unclosed\n", 2, "invalid YAML"),
            ("- a\n- b\n", 1, "one `name: value` per line"),
            (
                "a: 1\nb:\n  c: 2\n",
                3,
                "b: expected a value or a list, got a mapping",
            ),
            ("a: 1\na: 2\n", 2, "a is set twice"),
            ("a: [1, [2]]\n", 1, "a: list items must be single values"),
            ("a: 1\n---\nb: 2\n", 2, "more than one YAML document"),
        ];
        for (file, line, problem) in cases {
            let error = parse_config(file).unwrap_err();
            assert_eq!(error.line, line, "{file:?}: {error:?}");
            assert!(error.problem.contains(problem), "{file:?}: {error:?}");
        }
    }
}
