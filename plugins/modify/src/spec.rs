//! mitmproxy's modify specs: `[/flow-filter]/subject/replacement`, where the first character
//! is the separator; Python's escape sequences in subjects and replacements; `@path`
//! replacements read from a file; Python's `re.sub` templates turned into the regex crate's.

/// A spec split into its parts: the filter expression (if any), the subject, the
/// replacement.
#[derive(Debug, PartialEq, Eq)]
pub struct Parts<'a> {
    /// The flow filter expression; `None` matches every flow.
    pub filter: Option<&'a str>,
    /// What to change (a header name, a regex).
    pub subject: &'a str,
    /// What to put instead (`@path` for a file's contents).
    pub replacement: &'a str,
}

/// Splits `option` as mitmproxy's `parse_spec` does.
pub fn parse(option: &str) -> Result<Parts<'_>, String> {
    let mut chars = option.chars();
    let Some(separator) = chars.next() else {
        return Err("empty spec".to_string());
    };
    let rest = chars.as_str();
    let parts: Vec<&str> = rest.splitn(3, separator).collect();
    match parts.as_slice() {
        [subject, replacement] => Ok(Parts {
            filter: None,
            subject,
            replacement,
        }),
        [filter, subject, replacement] => Ok(Parts {
            filter: Some(filter),
            subject,
            replacement,
        }),
        _ => Err("Invalid number of parameters (2 or 3 are expected)".to_string()),
    }
}

/// The replacement's bytes: a file's contents for `@path` (`~` expanded), else the text with
/// Python's escape sequences undone.
pub fn read_replacement(replacement: &str) -> std::io::Result<Vec<u8>> {
    match replacement.strip_prefix('@') {
        Some(path) => std::fs::read(interpose_plugin_abi::commands::expand_home(path)),
        None => Ok(unescape(replacement)),
    }
}

/// Whether `@path` names a readable file (checked when the option is set, as mitmproxy does).
pub fn check_replacement(replacement: &str) -> Result<(), String> {
    match replacement.strip_prefix('@') {
        Some(path) => std::fs::metadata(interpose_plugin_abi::commands::expand_home(path))
            .map(|_| ())
            .map_err(|e| format!("Invalid file path: {path} ({e})")),
        None => Ok(()),
    }
}

/// Python's `codecs.escape_decode`: `\n`, `\t`, `\\`, `\xhh`, octal `\ooo` and the rest
/// become bytes; an unknown escape stays as it is.
pub fn unescape(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' || i + 1 == bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let next = bytes[i + 1];
        i += 2;
        match next {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'\\' | b'\'' | b'"' => out.push(next),
            b'\n' => {}
            b'x' => {
                let hex = bytes
                    .get(i..i + 2)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.extend_from_slice(b"\\x"),
                }
            }
            b'0'..=b'7' => {
                let mut value = u32::from(next - b'0');
                let mut digits = 1;
                while digits < 3 && i < bytes.len() && (b'0'..=b'7').contains(&bytes[i]) {
                    value = value * 8 + u32::from(bytes[i] - b'0');
                    i += 1;
                    digits += 1;
                }
                out.push(value as u8);
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    out
}

/// A Python `re.sub` replacement template (`\1`, `\g<1>`, `\g<name>`) as a template of the
/// regex crate (`${1}`, `${name}`; a literal `$` doubled).
pub fn rust_template(template: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(template.len() + 8);
    let mut i = 0;
    while i < template.len() {
        let byte = template[i];
        if byte == b'$' {
            out.extend_from_slice(b"$$");
            i += 1;
            continue;
        }
        if byte != b'\\' || i + 1 == template.len() {
            out.push(byte);
            i += 1;
            continue;
        }
        let next = template[i + 1];
        if next.is_ascii_digit() {
            // Up to two digits name a group, as in Python.
            let mut end = i + 2;
            if end < template.len() && template[end].is_ascii_digit() {
                end += 1;
            }
            out.extend_from_slice(b"${");
            out.extend_from_slice(&template[i + 1..end]);
            out.push(b'}');
            i = end;
        } else if next == b'g' && template.get(i + 2) == Some(&b'<') {
            match template[i + 3..].iter().position(|b| *b == b'>') {
                Some(len) => {
                    out.extend_from_slice(b"${");
                    out.extend_from_slice(&template[i + 3..i + 3 + len]);
                    out.push(b'}');
                    i += 4 + len;
                }
                None => {
                    out.extend_from_slice(b"\\g");
                    i += 2;
                }
            }
        } else {
            let escaped = match next {
                b'n' => Some(b'\n'),
                b't' => Some(b'\t'),
                b'r' => Some(b'\r'),
                b'\\' => Some(b'\\'),
                _ => None,
            };
            match escaped {
                Some(b) => out.push(b),
                None => out.extend_from_slice(&[b'\\', next]),
            }
            i += 2;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_with_any_separator_and_an_optional_filter() {
        assert_eq!(
            parse("/~q/Host/example.org").unwrap(),
            Parts {
                filter: Some("~q"),
                subject: "Host",
                replacement: "example.org"
            }
        );
        assert_eq!(
            parse(":x-a:b/c").unwrap(),
            Parts {
                filter: None,
                subject: "x-a",
                replacement: "b/c"
            }
        );
        // The replacement keeps further separators.
        assert_eq!(parse("|a|b|c|d").unwrap().replacement, "c|d");
        assert!(parse("/only").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn unescapes_as_python_does() {
        assert_eq!(unescape(r"a\nb\t\x41\101\\\q"), b"a\nb\tAA\\\\q".to_vec());
        assert_eq!(unescape(r"\1"), vec![1]);
        assert_eq!(unescape("plain"), b"plain");
    }

    #[test]
    fn turns_python_templates_into_rust_ones() {
        assert_eq!(rust_template(br"<\1>"), b"<${1}>".to_vec());
        assert_eq!(rust_template(br"\g<name>-\g<2>"), b"${name}-${2}".to_vec());
        assert_eq!(rust_template(b"costs $5"), b"costs $$5".to_vec());
        assert_eq!(rust_template(br"a\nb"), b"a\nb".to_vec());
    }

    #[test]
    fn replacements_from_files() {
        let dir = std::env::temp_dir().join(format!("modify-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("value");
        std::fs::write(&file, b"from a file").unwrap();
        let spec = format!("@{}", file.display());
        assert_eq!(read_replacement(&spec).unwrap(), b"from a file");
        assert!(check_replacement(&spec).is_ok());
        assert!(check_replacement("@/no/such/file")
            .unwrap_err()
            .starts_with("Invalid file path: /no/such/file"));
        assert_eq!(read_replacement(r"x\x00").unwrap(), b"x\0");
    }
}
