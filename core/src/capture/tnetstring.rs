//! tnetstrings, the encoding of mitmproxy flow files: `<length>:<payload><tag>`.
//!
//! Tags: `,` bytes, `;` UTF-8 text, `#` int, `^` float, `!` bool, `~` null, `]` list, `}` dict
//! (key, value, key, value, ...).

use std::fmt;

/// The deepest nesting [`decode`] accepts; a flow state nests about five levels.
pub const MAX_DEPTH: usize = 64;

/// The longest length prefix, in digits (as mitmproxy's reader).
pub const MAX_LENGTH_DIGITS: usize = 12;

/// One decoded tnetstring.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `0:~`
    Null,
    /// `4:true!`, `5:false!`
    Bool(bool),
    /// `3:200#`
    Int(i64),
    /// `3:1.5^`
    Float(f64),
    /// `5:hello,`
    Bytes(Vec<u8>),
    /// `4:host;` (also every dict key).
    Str(String),
    /// `]`: tuples are written as lists too.
    List(Vec<Value>),
    /// `}` in file order; keys are text (bytes keys of very old files are decoded as UTF-8).
    Dict(Vec<(String, Value)>),
}

impl Value {
    /// The value under `key` of a dict (the last one, should a key repeat).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(entries) => entries.iter().rev().find(|(k, _)| k == key).map(|e| &e.1),
            _ => None,
        }
    }

    /// The value under `key` of a dict, for changing it.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        match self {
            Value::Dict(entries) => entries
                .iter_mut()
                .rev()
                .find(|(k, _)| k == key)
                .map(|e| &mut e.1),
            _ => None,
        }
    }

    /// Sets `key` of a dict to `value`, replacing an existing entry; does nothing on other
    /// values.
    pub fn insert(&mut self, key: &str, value: Value) {
        if let Value::Dict(entries) = self {
            match entries.iter_mut().rev().find(|(k, _)| k == key) {
                Some(entry) => entry.1 = value,
                None => entries.push((key.to_string(), value)),
            }
        }
    }

    /// Removes `key` from a dict, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        match self {
            Value::Dict(entries) => {
                let i = entries.iter().rposition(|(k, _)| k == key)?;
                Some(entries.remove(i).1)
            }
            _ => None,
        }
    }

    /// What kind of value this is, for error messages: `null`, `bool`, `int`, ...
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Bytes(_) => "bytes",
            Value::Str(_) => "str",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
        }
    }

    /// Whether this is a true value in Python's sense (non-null, non-zero, non-empty).
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Bytes(b) => !b.is_empty(),
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Dict(d) => !d.is_empty(),
        }
    }
}

/// Why [`decode`] rejected its input; `offset` is where in the input the problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TnetError {
    /// Byte offset of the problem in the input given to [`decode`].
    pub offset: usize,
    /// What is wrong.
    pub kind: TnetErrorKind,
}

/// What is wrong with a tnetstring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TnetErrorKind {
    /// The input ended before the value did.
    Truncated,
    /// The length prefix is missing, not decimal, or not followed by `:`.
    BadLength,
    /// The length prefix has more than [`MAX_LENGTH_DIGITS`] digits.
    LengthTooLong,
    /// An unknown type tag.
    BadTag(u8),
    /// A payload that does not fit its tag (`3:abc#`, invalid UTF-8 text, ...).
    BadPayload(&'static str),
    /// Containers nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A dict key that is neither text nor bytes, or a key without a value.
    BadKey,
}

impl fmt::Display for TnetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid tnetstring at byte {}: ", self.offset)?;
        match &self.kind {
            TnetErrorKind::Truncated => f.write_str("the data ends before the value does"),
            TnetErrorKind::BadLength => f.write_str("missing or invalid length prefix"),
            TnetErrorKind::LengthTooLong => {
                write!(f, "length prefix longer than {MAX_LENGTH_DIGITS} digits")
            }
            TnetErrorKind::BadTag(tag) => write!(f, "unknown type tag {:?}", char::from(*tag)),
            TnetErrorKind::BadPayload(what) => write!(f, "invalid {what}"),
            TnetErrorKind::TooDeep => write!(f, "nested deeper than {MAX_DEPTH} levels"),
            TnetErrorKind::BadKey => f.write_str("dict key is not text, or has no value"),
        }
    }
}

impl std::error::Error for TnetError {}

/// Appends the encoding of `value` to `out`.
pub fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"0:~"),
        Value::Bool(true) => out.extend_from_slice(b"4:true!"),
        Value::Bool(false) => out.extend_from_slice(b"5:false!"),
        Value::Int(i) => write_int(*i, out),
        Value::Float(x) => write_float(*x, out),
        Value::Bytes(b) => write_bytes(b, out),
        Value::Str(s) => write_str(s, out),
        Value::List(items) => {
            let start = begin(out);
            for item in items {
                encode(item, out);
            }
            end(out, start, b']');
        }
        Value::Dict(entries) => {
            let start = begin(out);
            for (key, value) in entries {
                write_str(key, out);
                encode(value, out);
            }
            end(out, start, b'}');
        }
    }
}

/// Decodes the first tnetstring of `input`, returning it and the number of bytes it took.
pub fn decode(input: &[u8]) -> Result<(Value, usize), TnetError> {
    let mut decoder = Decoder { input, depth: 0 };
    let (value, end) = decoder.value(0, input.len())?;
    Ok((value, end))
}

/// Reads a length prefix at `pos` (`limit` is where the enclosing data ends): returns the
/// payload length and the position after the `:`.
pub(crate) fn length_prefix(
    input: &[u8],
    pos: usize,
    limit: usize,
) -> Result<(usize, usize), TnetError> {
    let mut len: usize = 0;
    let mut i = pos;
    loop {
        if i >= limit {
            let kind = if limit == input.len() {
                TnetErrorKind::Truncated
            } else {
                TnetErrorKind::BadLength
            };
            return Err(TnetError { offset: i, kind });
        }
        match input[i] {
            b @ b'0'..=b'9' => {
                if i - pos == MAX_LENGTH_DIGITS {
                    return Err(TnetError {
                        offset: pos,
                        kind: TnetErrorKind::LengthTooLong,
                    });
                }
                len = len * 10 + usize::from(b - b'0');
            }
            b':' if i > pos => return Ok((len, i + 1)),
            _ => {
                return Err(TnetError {
                    offset: i,
                    kind: TnetErrorKind::BadLength,
                })
            }
        }
        i += 1;
    }
}

struct Decoder<'a> {
    input: &'a [u8],
    depth: usize,
}

impl Decoder<'_> {
    /// Decodes the value at `pos`, which must end by `limit`; returns it and its end.
    fn value(&mut self, pos: usize, limit: usize) -> Result<(Value, usize), TnetError> {
        let (len, data) = length_prefix(self.input, pos, limit)?;
        let tag_at = data.checked_add(len).filter(|&t| t < limit).ok_or({
            let kind = if limit == self.input.len() {
                TnetErrorKind::Truncated
            } else {
                TnetErrorKind::BadLength
            };
            TnetError { offset: pos, kind }
        })?;
        let payload = &self.input[data..tag_at];
        let bad = |what| TnetError {
            offset: data,
            kind: TnetErrorKind::BadPayload(what),
        };
        let value = match self.input[tag_at] {
            b',' => Value::Bytes(payload.to_vec()),
            b';' => Value::Str(String::from_utf8(payload.to_vec()).map_err(|_| bad("UTF-8 text"))?),
            b'#' => Value::Int(
                std::str::from_utf8(payload)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad("integer"))?,
            ),
            b'^' => Value::Float(
                std::str::from_utf8(payload)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .ok_or_else(|| bad("float"))?,
            ),
            b'!' => match payload {
                b"true" => Value::Bool(true),
                b"false" => Value::Bool(false),
                _ => return Err(bad("boolean")),
            },
            b'~' if payload.is_empty() => Value::Null,
            b'~' => return Err(bad("null")),
            tag @ (b']' | b'}') => {
                if self.depth == MAX_DEPTH {
                    return Err(TnetError {
                        offset: pos,
                        kind: TnetErrorKind::TooDeep,
                    });
                }
                self.depth += 1;
                let value = if tag == b']' {
                    self.list(data, tag_at)?
                } else {
                    self.dict(data, tag_at)?
                };
                self.depth -= 1;
                value
            }
            tag => {
                return Err(TnetError {
                    offset: tag_at,
                    kind: TnetErrorKind::BadTag(tag),
                })
            }
        };
        Ok((value, tag_at + 1))
    }

    fn list(&mut self, mut pos: usize, limit: usize) -> Result<Value, TnetError> {
        let mut items = Vec::new();
        while pos < limit {
            let (item, next) = self.value(pos, limit)?;
            items.push(item);
            pos = next;
        }
        Ok(Value::List(items))
    }

    fn dict(&mut self, mut pos: usize, limit: usize) -> Result<Value, TnetError> {
        let mut entries = Vec::new();
        while pos < limit {
            let key_at = pos;
            let (key, next) = self.value(pos, limit)?;
            let key = match key {
                Value::Str(s) => s,
                Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                _ => {
                    return Err(TnetError {
                        offset: key_at,
                        kind: TnetErrorKind::BadKey,
                    })
                }
            };
            if next >= limit {
                return Err(TnetError {
                    offset: key_at,
                    kind: TnetErrorKind::BadKey,
                });
            }
            let (value, next) = self.value(next, limit)?;
            entries.push((key, value));
            pos = next;
        }
        Ok(Value::Dict(entries))
    }
}

// The writers below append straight to the output; `write_flow` uses them without building a
// `Value` tree.

/// Starts a list or dict: returns where its payload begins.
#[inline]
pub(crate) fn begin(out: &[u8]) -> usize {
    out.len()
}

/// Ends the list or dict whose payload began at `start`: appends `tag` and puts the length
/// prefix in front of the payload.
#[inline]
pub(crate) fn end(out: &mut Vec<u8>, start: usize, tag: u8) {
    let len = out.len() - start;
    let mut digits = itoa::Buffer::new();
    let prefix = digits.format(len).as_bytes();
    let shift = prefix.len() + 1;
    out.push(tag);
    out.resize(out.len() + shift, 0);
    out.copy_within(start..start + len + 1, start + shift);
    out[start..start + prefix.len()].copy_from_slice(prefix);
    out[start + prefix.len()] = b':';
}

/// Appends `data` with its length prefix and `tag`.
#[inline]
fn write_tagged(data: &[u8], tag: u8, out: &mut Vec<u8>) {
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(digits.format(data.len()).as_bytes());
    out.push(b':');
    out.extend_from_slice(data);
    out.push(tag);
}

/// Appends bytes (`,`).
#[inline]
pub(crate) fn write_bytes(data: &[u8], out: &mut Vec<u8>) {
    write_tagged(data, b',', out);
}

/// Appends text (`;`).
#[inline]
pub(crate) fn write_str(text: &str, out: &mut Vec<u8>) {
    write_tagged(text.as_bytes(), b';', out);
}

/// Appends an int (`#`).
#[inline]
pub(crate) fn write_int(value: i64, out: &mut Vec<u8>) {
    let mut digits = itoa::Buffer::new();
    write_tagged(digits.format(value).as_bytes(), b'#', out);
}

/// Appends a float (`^`) in the shortest form that reads back exactly, as Python's `repr`
/// (`1.0`, `1e+300` style exponents are read by both).
#[inline]
pub(crate) fn write_float(value: f64, out: &mut Vec<u8>) {
    use std::io::Write;
    let mut buf = [0u8; 32];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let text: &[u8] = if value.is_nan() {
        b"nan"
    } else if value.is_infinite() {
        if value > 0.0 {
            b"inf"
        } else {
            b"-inf"
        }
    } else {
        // `{:?}` always has a `.` or an exponent, so Python reads a float, and fits 32 bytes.
        let _ = write!(cursor, "{value:?}");
        let n = cursor.position() as usize;
        &buf[..n]
    };
    write_tagged(text, b'^', out);
}

/// Appends null (`~`).
#[inline]
pub(crate) fn write_null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0:~");
}

/// Appends a bool (`!`).
#[inline]
pub(crate) fn write_bool(value: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(if value { b"4:true!" } else { b"5:false!" });
}
