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
    write_record(value, out);
}

impl Encode for Value {
    fn encode_to<S: Sink>(&self, sink: &mut S) {
        match self {
            Value::Null => sink.null(),
            Value::Bool(b) => sink.bool(*b),
            Value::Int(i) => sink.int(*i),
            Value::Float(x) => sink.float(*x),
            Value::Bytes(b) => sink.bytes(b),
            Value::Str(s) => sink.str(s),
            Value::List(items) => sink.list(|sink| {
                for item in items {
                    item.encode_to(sink);
                }
            }),
            Value::Dict(entries) => sink.dict(|sink| {
                for (key, value) in entries {
                    sink.str(key);
                    value.encode_to(sink);
                }
            }),
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

// ---- Writing ----
//
// A record is written in two passes over the same description (an [`Encode`]): a [`Sizer`]
// measures every list and dict, and formats the floats, then a [`Writer`] writes each length
// prefix before its payload. Writing the payload first and moving it to make room for the
// prefix would move every byte once per enclosing container.

/// What can be written as a tnetstring, to either pass of [`write_record`].
pub(crate) trait Encode {
    /// Describes the value to `sink`, the same way on every call.
    fn encode_to<S: Sink>(&self, sink: &mut S);
}

/// Where an [`Encode`] describes its value: the measuring pass or the writing one.
pub(crate) trait Sink: Sized {
    /// A value with its payload at hand.
    fn tagged(&mut self, payload: &[u8], tag: u8);

    /// A whole encoded value, such as `0:~`.
    fn encoded(&mut self, value: &[u8]);

    /// A value whose payload `format` appends to a buffer; it runs in the measuring pass only.
    fn formatted(&mut self, tag: u8, format: impl FnOnce(&mut Vec<u8>));

    /// A value whose payload, `len` bytes, `fill` writes; it runs in the writing pass only.
    fn filled(&mut self, len: usize, tag: u8, fill: impl FnOnce(&mut [u8]));

    /// A list or dict (`tag`) whose items `items` describes.
    fn container(&mut self, tag: u8, items: impl FnOnce(&mut Self));

    /// Bytes (`,`).
    #[inline]
    fn bytes(&mut self, data: &[u8]) {
        self.tagged(data, b',');
    }

    /// Text (`;`), and dict keys.
    #[inline]
    fn str(&mut self, text: &str) {
        self.tagged(text.as_bytes(), b';');
    }

    /// An int (`#`).
    #[inline]
    fn int(&mut self, value: i64) {
        let mut digits = itoa::Buffer::new();
        self.tagged(digits.format(value).as_bytes(), b'#');
    }

    /// A float (`^`), as [`push_float`] writes it.
    #[inline]
    fn float(&mut self, value: f64) {
        self.formatted(b'^', |buf| push_float(value, buf));
    }

    /// Null (`~`).
    #[inline]
    fn null(&mut self) {
        self.encoded(b"0:~");
    }

    /// A bool (`!`).
    #[inline]
    fn bool(&mut self, value: bool) {
        self.encoded(if value { b"4:true!" } else { b"5:false!" });
    }

    /// A list of the items `items` describes.
    #[inline]
    fn list(&mut self, items: impl FnOnce(&mut Self)) {
        self.container(b']', items);
    }

    /// A dict of the keys and values `entries` describes, in turn.
    #[inline]
    fn dict(&mut self, entries: impl FnOnce(&mut Self)) {
        self.container(b'}', entries);
    }
}

/// What the measuring pass leaves for the writing pass.
#[derive(Default)]
struct Plan {
    /// The payload length of every container and formatted value, in writing order.
    lengths: Vec<usize>,
    /// The payloads of the formatted values, back to back.
    texts: Vec<u8>,
}

/// A plan bigger than this (a flow with thousands of headers or WebSocket messages) is not
/// kept for the next record.
const PLAN_KEPT: usize = 64 * 1024;

thread_local! {
    /// Reused from record to record: measuring allocates nothing once it has grown.
    static PLAN: std::cell::RefCell<Plan> = std::cell::RefCell::default();
}

/// Appends the tnetstring `value` describes to `out`.
pub(crate) fn write_record<T: Encode + ?Sized>(value: &T, out: &mut Vec<u8>) {
    PLAN.with_borrow_mut(|plan| {
        plan.lengths.clear();
        plan.texts.clear();
        let mut sizer = Sizer { plan, total: 0 };
        value.encode_to(&mut sizer);
        // Zeroing costs less than growing the vector a piece at a time.
        let start = out.len();
        out.resize(start + sizer.total, 0);
        let mut writer = Writer {
            buf: &mut out[start..],
            at: 0,
            lengths: plan.lengths.iter(),
            texts: &plan.texts,
        };
        value.encode_to(&mut writer);
        debug_assert!(writer.at == writer.buf.len(), "the record size changed");
        debug_assert!(writer.lengths.len() == 0 && writer.texts.is_empty());
        if plan.lengths.capacity() > PLAN_KEPT || plan.texts.capacity() > PLAN_KEPT {
            *plan = Plan::default();
        }
    });
}

/// The length of `<len>:<payload><tag>` for a payload of `len` bytes.
#[inline]
pub(crate) const fn encoded_len(len: usize) -> usize {
    decimal_digits(len) + 1 + len + 1
}

/// How many decimal digits `n` has.
#[inline]
pub(crate) const fn decimal_digits(n: usize) -> usize {
    match n.checked_ilog10() {
        Some(log) => log as usize + 1,
        None => 1,
    }
}

/// The tnetstring of `text` (`;`), for [`encoded_str!`]; `N` is its [`encoded_len`].
pub(crate) const fn encode_str_const<const N: usize>(text: &str) -> [u8; N] {
    let text = text.as_bytes();
    let mut out = [0u8; N];
    let digits = N - text.len() - 2;
    let (mut i, mut rest) = (digits, text.len());
    while i > 0 {
        i -= 1;
        out[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out[digits] = b':';
    let mut j = 0;
    while j < text.len() {
        out[digits + 1 + j] = text[j];
        j += 1;
    }
    out[N - 1] = b';';
    out
}

/// The tnetstring of a text literal, built at compile time: `encoded_str!("version")` is
/// `b"7:version;"`. Written with [`Sink::encoded`], a dict key costs one fixed-size copy.
macro_rules! encoded_str {
    ($text:literal) => {{
        const ENCODED: [u8; $crate::capture::tnetstring::encoded_len($text.len())] =
            $crate::capture::tnetstring::encode_str_const($text);
        &ENCODED
    }};
}
pub(crate) use encoded_str;

/// The measuring pass: adds up the encoded length and fills the [`Plan`].
struct Sizer<'a> {
    plan: &'a mut Plan,
    total: usize,
}

impl Sink for Sizer<'_> {
    #[inline]
    fn tagged(&mut self, payload: &[u8], _tag: u8) {
        self.total += encoded_len(payload.len());
    }

    #[inline]
    fn encoded(&mut self, value: &[u8]) {
        self.total += value.len();
    }

    #[inline]
    fn formatted(&mut self, _tag: u8, format: impl FnOnce(&mut Vec<u8>)) {
        let start = self.plan.texts.len();
        format(&mut self.plan.texts);
        let len = self.plan.texts.len() - start;
        self.plan.lengths.push(len);
        self.total += encoded_len(len);
    }

    #[inline]
    fn filled(&mut self, len: usize, _tag: u8, _fill: impl FnOnce(&mut [u8])) {
        self.total += encoded_len(len);
    }

    #[inline]
    fn container(&mut self, _tag: u8, items: impl FnOnce(&mut Self)) {
        let slot = self.plan.lengths.len();
        self.plan.lengths.push(0);
        let start = self.total;
        items(self);
        let len = self.total - start;
        self.plan.lengths[slot] = len;
        self.total = start + encoded_len(len);
    }
}

/// The writing pass: fills the space measured, taking lengths and texts from the [`Plan`].
struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
    lengths: std::slice::Iter<'a, usize>,
    texts: &'a [u8],
}

impl Writer<'_> {
    /// The next length of the plan; both passes describe the same value, so there is one.
    #[inline]
    fn next_length(&mut self) -> usize {
        let len = self.lengths.next().copied();
        debug_assert!(len.is_some(), "the writing pass outran the measuring pass");
        len.unwrap_or(0)
    }

    #[inline]
    fn put(&mut self, data: &[u8]) {
        let len = data.len();
        let to = &mut self.buf[self.at..self.at + len];
        // Most payloads are short (keys, header names and values): two overlapping
        // fixed-size copies are cheaper than a call to `memcpy`.
        match len {
            0..=3 => {
                for (to, from) in to.iter_mut().zip(data) {
                    *to = *from;
                }
            }
            4..=7 => {
                to[..4].copy_from_slice(&data[..4]);
                to[len - 4..].copy_from_slice(&data[len - 4..]);
            }
            8..=16 => {
                to[..8].copy_from_slice(&data[..8]);
                to[len - 8..].copy_from_slice(&data[len - 8..]);
            }
            17..=32 => {
                to[..16].copy_from_slice(&data[..16]);
                to[len - 16..].copy_from_slice(&data[len - 16..]);
            }
            _ => to.copy_from_slice(data),
        }
        self.at += len;
    }

    #[inline]
    fn put_byte(&mut self, byte: u8) {
        self.buf[self.at] = byte;
        self.at += 1;
    }

    #[inline]
    fn prefix(&mut self, len: usize) {
        // Most payloads are shorter than 100 bytes.
        if len < 10 {
            self.put(&[b'0' + len as u8, b':']);
        } else if len < 100 {
            self.put(&[b'0' + (len / 10) as u8, b'0' + (len % 10) as u8, b':']);
        } else {
            let digits = decimal_digits(len);
            put_decimal(len, &mut self.buf[self.at..self.at + digits]);
            self.at += digits;
            self.put_byte(b':');
        }
    }
}

impl Sink for Writer<'_> {
    #[inline]
    fn tagged(&mut self, payload: &[u8], tag: u8) {
        self.prefix(payload.len());
        self.put(payload);
        self.put_byte(tag);
    }

    #[inline]
    fn encoded(&mut self, value: &[u8]) {
        self.put(value);
    }

    #[inline]
    fn formatted(&mut self, tag: u8, _format: impl FnOnce(&mut Vec<u8>)) {
        let len = self.next_length();
        let (text, rest) = self.texts.split_at(len.min(self.texts.len()));
        self.texts = rest;
        self.tagged(text, tag);
    }

    #[inline]
    fn filled(&mut self, len: usize, tag: u8, fill: impl FnOnce(&mut [u8])) {
        self.prefix(len);
        fill(&mut self.buf[self.at..self.at + len]);
        self.at += len;
        self.put_byte(tag);
    }

    #[inline]
    fn container(&mut self, tag: u8, items: impl FnOnce(&mut Self)) {
        let len = self.next_length();
        self.prefix(len);
        let start = self.at;
        items(self);
        debug_assert_eq!(self.at - start, len, "container size changed");
        self.put_byte(tag);
    }
}

/// Writes `n` in decimal to `to`, which is [`decimal_digits`]`(n)` bytes long.
#[inline]
pub(crate) fn put_decimal(n: usize, to: &mut [u8]) {
    let mut rest = n;
    for digit in to.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
}

/// Appends the text of a float: the shortest form that reads back exactly, as Rust's `{:?}`
/// writes it (`1.0`, `1e16`, `1e-5`; Python's `float()` reads them all), and `nan`, `inf`,
/// `-inf` as Python's `repr`.
pub(crate) fn push_float(value: f64, out: &mut Vec<u8>) {
    if value.is_nan() {
        out.extend_from_slice(b"nan");
    } else if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 { b"inf" } else { b"-inf" });
    } else if ryu_may_differ_from_debug(value) {
        use std::io::Write;
        let _ = write!(out, "{value:?}");
    } else {
        // ryu gives the same text three times faster.
        out.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
    }
}

/// Whether ryu's text for the finite `value` may differ from `{:?}`'s (what flow files
/// have always had). ryu writes `0.00005` where `{:?}` writes `5e-5`, and when two shortest
/// forms are equally near the value, ryu rounds to even where `{:?}` rounds up
/// (`1594941473.28515625`: ryu `…562`, `{:?}` `…563`). Such a tie needs an exact decimal
/// expansion one digit longer than the shortest form, so at most 18 significant digits,
/// which few values have.
fn ryu_may_differ_from_debug(value: f64) -> bool {
    const TWO_TO_53: f64 = 9_007_199_254_740_992.0;
    let abs = value.abs();
    if (1e-5..1e-4).contains(&abs) || abs >= TWO_TO_53 {
        return true;
    }
    // abs = mantissa * 2^exponent
    let bits = abs.to_bits();
    let biased_exponent = (bits >> 52) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (mut mantissa, mut exponent) = match biased_exponent {
        0 => (fraction, -1074),
        _ => (fraction | 1 << 52, biased_exponent - 1075),
    };
    if mantissa == 0 {
        return false;
    }
    let zeros = mantissa.trailing_zeros();
    mantissa >>= zeros;
    exponent += zeros as i32;
    if exponent >= 0 {
        // An integer below 2^53, written exactly.
        return false;
    }
    // mantissa * 2^-k = mantissa * 5^k / 10^k, and mantissa * 5^k is odd: its digits are
    // the significant digits of the expansion.
    for _ in 0..-exponent {
        match mantissa.checked_mul(5) {
            Some(m) if m < 1_000_000_000_000_000_000 => mantissa = m,
            _ => return false,
        }
    }
    true
}
