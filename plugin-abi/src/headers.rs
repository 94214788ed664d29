//! HTTP header fields: an ordered, multi-valued list that keeps each name's case.
//!
//! All fields share one byte buffer, so a message's headers cost two allocations however many
//! fields it has. Lookups compare names ASCII case-insensitively, like mitmproxy's `Headers`.
//!
//! Values are bytes on the wire. The text accessors ([`Headers::get`], [`Headers::get_all`])
//! give the values that are valid UTF-8 and pass over the others (which mitmproxy would show
//! decoded as latin-1); the `_bytes` accessors give every value as it is.
//!
//! ```
//! use interpose_plugin_abi::testing;
//!
//! let mut flow = testing::flow();
//! flow.request.headers.insert("User-Agent", "interpose");
//! flow.request.headers.remove("accept-encoding");
//! assert_eq!(flow.request.headers.get("user-agent"), Some("interpose"));
//! ```

use std::fmt;

use abi_stable::{std_types::RVec, StableAbi};

/// Where one field's name and value sit in the shared buffer.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
struct Field {
    /// Offset of the name; the value follows the name directly.
    start: u32,
    name_len: u32,
    value_len: u32,
}

impl Field {
    fn name_range(self) -> std::ops::Range<usize> {
        self.start as usize..(self.start + self.name_len) as usize
    }

    fn value_range(self) -> std::ops::Range<usize> {
        let value_start = (self.start + self.name_len) as usize;
        value_start..value_start + self.value_len as usize
    }
}

/// The header fields of a request or response, in order, duplicates and name case kept.
///
/// ```
/// use interpose_plugin_abi::Headers;
///
/// let mut h = Headers::new();
/// h.append("Set-Cookie", "a=1");
/// h.append("set-cookie", "b=2");
/// h.insert("Content-Type", "text/plain");
/// assert_eq!(h.get("set-cookie"), Some("a=1"));
/// assert_eq!(h.get_all("SET-COOKIE").collect::<Vec<_>>(), ["a=1", "b=2"]);
/// assert_eq!(h.remove("Set-Cookie"), 2);
/// assert_eq!(h.iter().collect::<Vec<_>>(), [("Content-Type", &b"text/plain"[..])]);
/// ```
#[repr(C)]
#[derive(StableAbi, Clone, Default)]
pub struct Headers {
    /// Names and values back to back. Names are always valid UTF-8 (they only enter as `&str`).
    buf: RVec<u8>,
    fields: RVec<Field>,
}

impl Headers {
    /// An empty list; allocates nothing.
    ///
    /// See the example on [`Headers::with_capacity`].
    pub const fn new() -> Self {
        Headers {
            buf: RVec::new(),
            fields: RVec::new(),
        }
    }

    /// An empty list with room for `fields` fields holding `bytes` bytes of names and values.
    ///
    /// ```
    /// use interpose_plugin_abi::Headers;
    ///
    /// let mut h = Headers::with_capacity(2, 32);
    /// assert!(h.is_empty() && Headers::new().is_empty());
    /// h.append("Accept", "*/*");
    /// h.append("accept", "text/html");
    /// assert_eq!(h.len(), 2);
    /// assert_eq!(h.byte_len(), "Accept*/*accepttext/html".len());
    /// assert!(h.contains("ACCEPT") && !h.contains("cookie"));
    /// h.clear();
    /// assert!(h.is_empty());
    /// ```
    pub fn with_capacity(fields: usize, bytes: usize) -> Self {
        Headers {
            buf: RVec::with_capacity(bytes),
            fields: RVec::with_capacity(fields),
        }
    }

    /// Number of fields (a repeated name counts once per occurrence).
    ///
    /// See the example on [`Headers::with_capacity`].
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there is no field at all.
    ///
    /// See the example on [`Headers::with_capacity`].
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Total bytes of names and values, as they would be stored in a fresh list.
    ///
    /// See the example on [`Headers::with_capacity`].
    pub fn byte_len(&self) -> usize {
        self.fields
            .iter()
            .map(|f| (f.name_len + f.value_len) as usize)
            .sum()
    }

    fn name_at(&self, field: Field) -> &str {
        // SAFETY: names are only ever copied in from `&str` (see `push`), so every name range
        // holds valid UTF-8, and ranges always lie inside `buf`.
        unsafe { std::str::from_utf8_unchecked(&self.buf[field.name_range()]) }
    }

    fn value_at(&self, field: Field) -> &[u8] {
        &self.buf[field.value_range()]
    }

    fn matching<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Field> + 'a {
        self.fields
            .iter()
            .copied()
            .filter(move |f| self.name_at(*f).eq_ignore_ascii_case(name))
    }

    /// All fields in order, as `(name, value)`.
    ///
    /// See the example on [`Headers`].
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &[u8])> + '_ {
        self.fields
            .iter()
            .map(|f| (self.name_at(*f), self.value_at(*f)))
    }

    /// The first value of `name` (any case), if present and valid UTF-8 (a first value that is
    /// not UTF-8 gives `None`: see [`Headers::get_bytes`]).
    ///
    /// ```
    /// # use interpose_plugin_abi::Headers;
    /// let h: Headers = [("Content-Type", "text/html")].into_iter().collect();
    /// assert_eq!(h.get("content-type"), Some("text/html"));
    /// ```
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first value of `name` (any case) as raw bytes.
    ///
    /// ```
    /// # use interpose_plugin_abi::Headers;
    /// let mut h = Headers::new();
    /// h.append("X-Bin", [0xff]);
    /// assert_eq!(h.get_bytes("x-bin"), Some(&[0xff][..]));
    /// assert_eq!(h.get("x-bin"), None);
    /// ```
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.matching(name).next().map(|f| self.value_at(f))
    }

    /// Every value of `name` (any case) that is valid UTF-8, in order; values that are not
    /// UTF-8 are passed over (see [`Headers::get_all_bytes`]).
    ///
    /// ```
    /// # use interpose_plugin_abi::Headers;
    /// let mut h = Headers::new();
    /// h.append("Via", "1.1 a");
    /// h.append("via", [0xff]);
    /// h.append("VIA", "1.1 b");
    /// assert_eq!(h.get_all("via").collect::<Vec<_>>(), ["1.1 a", "1.1 b"]);
    /// ```
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all_bytes(name)
            .filter_map(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of `name` (any case) as raw bytes, in order.
    ///
    /// ```
    /// # use interpose_plugin_abi::Headers;
    /// let h: Headers = [("a", "1"), ("A", "2")].into_iter().collect();
    /// assert_eq!(h.get_all_bytes("a").collect::<Vec<_>>(), [b"1", b"2"]);
    /// ```
    pub fn get_all_bytes<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.matching(name).map(|f| self.value_at(f))
    }

    /// The values of `name` that are valid UTF-8 joined with `, ` (mitmproxy's
    /// `headers[name]`), borrowed when there is only one.
    pub(crate) fn get_folded<'a>(&'a self, name: &'a str) -> Option<std::borrow::Cow<'a, str>> {
        let mut values = self.get_all(name);
        let first = values.next()?;
        match values.next() {
            None => Some(std::borrow::Cow::Borrowed(first)),
            Some(second) => {
                let mut folded = format!("{first}, {second}");
                for value in values {
                    folded.push_str(", ");
                    folded.push_str(value);
                }
                Some(std::borrow::Cow::Owned(folded))
            }
        }
    }

    /// Whether at least one field is called `name` (any case).
    ///
    /// See the example on [`Headers::with_capacity`].
    pub fn contains(&self, name: &str) -> bool {
        self.matching(name).next().is_some()
    }

    fn push(&mut self, name: &str, value: &[u8]) -> Field {
        let start = self.buf.len();
        assert!(
            start + name.len() + value.len() <= u32::MAX as usize,
            "header block larger than 4 GiB"
        );
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(value);
        Field {
            start: start as u32,
            name_len: name.len() as u32,
            value_len: value.len() as u32,
        }
    }

    /// Adds a field at the end, keeping any existing field of the same name.
    ///
    /// See the example on [`Headers`].
    pub fn append(&mut self, name: &str, value: impl AsRef<[u8]>) {
        let field = self.push(name, value.as_ref());
        self.fields.push(field);
    }

    /// Sets `name` to `value`: the first existing field of that name takes the new name and
    /// value in place and the others are removed; without one, the field is appended.
    ///
    /// ```
    /// # use interpose_plugin_abi::Headers;
    /// let mut h: Headers = [("Accept", "a"), ("Host", "h"), ("accept", "b")].into_iter().collect();
    /// h.insert("ACCEPT", "*/*");
    /// assert_eq!(h.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["ACCEPT", "Host"]);
    /// assert_eq!(h.get("accept"), Some("*/*"));
    /// ```
    pub fn insert(&mut self, name: &str, value: impl AsRef<[u8]>) {
        let value = value.as_ref();
        let mut first = None;
        let mut i = 0;
        while i < self.fields.len() {
            if self.name_at(self.fields[i]).eq_ignore_ascii_case(name) {
                if first.is_none() {
                    first = Some(i);
                    i += 1;
                } else {
                    self.fields.remove(i);
                }
            } else {
                i += 1;
            }
        }
        let field = self.push(name, value);
        match first {
            Some(index) => self.fields[index] = field,
            None => self.fields.push(field),
        }
        self.compact_if_wasteful();
    }

    /// Replaces the values of `name` by `values` (mitmproxy's `headers.set_all`): the existing
    /// fields of that name take the new values in order, in place (and, as with
    /// [`Headers::insert`], the new name's case); fields left over are removed and values left
    /// over are appended at the end. No values removes the name.
    ///
    /// ```
    /// # use interpose_plugin_abi::Headers;
    /// let mut h: Headers = [("Set-Cookie", "a=1"), ("X", "x"), ("Set-Cookie", "b=2")]
    ///     .into_iter()
    ///     .collect();
    /// h.set_all("set-cookie", ["c=3"]);
    /// assert_eq!(h.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["set-cookie", "X"]);
    /// h.set_all("Set-Cookie", ["d=4", "e=5"]);
    /// assert_eq!(h.get_all("set-cookie").collect::<Vec<_>>(), ["d=4", "e=5"]);
    /// ```
    pub fn set_all<V: AsRef<[u8]>>(&mut self, name: &str, values: impl IntoIterator<Item = V>) {
        let mut values = values.into_iter();
        let mut i = 0;
        while i < self.fields.len() {
            if self.name_at(self.fields[i]).eq_ignore_ascii_case(name) {
                match values.next() {
                    Some(value) => {
                        self.fields[i] = self.push(name, value.as_ref());
                        i += 1;
                    }
                    None => {
                        self.fields.remove(i);
                    }
                }
            } else {
                i += 1;
            }
        }
        for value in values {
            self.append(name, value);
        }
        self.compact_if_wasteful();
    }

    /// Removes every field called `name` (any case); returns how many there were.
    ///
    /// See the example on [`Headers`].
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.fields.len();
        let mut kept = RVec::with_capacity(before);
        for field in self.fields.iter().copied() {
            if !self.name_at(field).eq_ignore_ascii_case(name) {
                kept.push(field);
            }
        }
        let removed = before - kept.len();
        if removed > 0 {
            self.fields = kept;
            self.compact_if_wasteful();
        }
        removed
    }

    /// Removes every field.
    ///
    /// See the example on [`Headers::with_capacity`].
    pub fn clear(&mut self) {
        self.buf.clear();
        self.fields.clear();
    }

    /// Rewrites the buffer once removed and replaced fields waste more than half of it.
    fn compact_if_wasteful(&mut self) {
        let live = self.byte_len();
        if self.buf.len() <= 2 * live + 256 {
            return;
        }
        let mut fresh = Headers::with_capacity(self.fields.len(), live);
        for (name, value) in self.iter() {
            fresh.append(name, value);
        }
        *self = fresh;
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|(name, value)| (name, String::from_utf8_lossy(value))),
            )
            .finish()
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<N: AsRef<str>, V: AsRef<[u8]>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        for (name, value) in iter {
            headers.append(name.as_ref(), value);
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_case_and_duplicates() {
        let h: Headers = [("Host", "a"), ("X-One", "1"), ("x-one", "2")]
            .into_iter()
            .collect();
        let names: Vec<&str> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Host", "X-One", "x-one"]);
        assert_eq!(h.get("X-ONE"), Some("1"));
        assert_eq!(h.get_all("x-one").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(h.get_all_bytes("x-one").collect::<Vec<_>>(), [b"1", b"2"]);
    }

    #[test]
    fn insert_replaces_in_place_and_drops_duplicates() {
        let mut h: Headers = [("a", "1"), ("B", "2"), ("c", "3"), ("b", "4")]
            .into_iter()
            .collect();
        h.insert("b", "new");
        let pairs: Vec<(&str, &[u8])> = h.iter().collect();
        assert_eq!(
            pairs,
            [("a", &b"1"[..]), ("b", &b"new"[..]), ("c", &b"3"[..])]
        );
        h.insert("d", "4");
        assert_eq!(h.get("D"), Some("4"));
        assert_eq!(h.len(), 4);
    }

    #[test]
    fn remove_and_compaction_keep_content() {
        let mut h = Headers::new();
        for i in 0..200 {
            h.insert("x-churn", format!("value-{i}"));
        }
        h.append("keep", "me");
        assert_eq!(h.remove("x-churn"), 1);
        assert!(
            h.buf.len() <= 2 * h.byte_len() + 256,
            "buffer was compacted"
        );
        assert_eq!(h.iter().collect::<Vec<_>>(), [("keep", &b"me"[..])]);
        assert_eq!(h.remove("missing"), 0);
    }

    #[test]
    fn non_utf8_values_are_bytes_only() {
        let mut h = Headers::new();
        h.append("x-bin", [0xff, 0xfe]);
        assert_eq!(h.get("x-bin"), None);
        assert_eq!(h.get_bytes("x-bin"), Some(&[0xff, 0xfe][..]));
        assert_eq!(h.get_all("x-bin").count(), 0);
        assert_eq!(h.get_all_bytes("x-bin").count(), 1);
    }

    #[test]
    fn set_all_and_folding() {
        let mut h: Headers = [("a", "1"), ("b", "2"), ("A", "3")].into_iter().collect();
        assert_eq!(h.get_folded("a").as_deref(), Some("1, 3"));
        h.set_all("a", ["x", "y", "z"]);
        let pairs: Vec<(&str, &[u8])> = h.iter().collect();
        assert_eq!(
            pairs,
            [
                ("a", &b"x"[..]),
                ("b", &b"2"[..]),
                ("a", &b"y"[..]),
                ("a", &b"z"[..])
            ]
        );
        h.set_all("A", Vec::<&str>::new());
        assert_eq!(h.len(), 1);
        assert_eq!(h.get_folded("b").as_deref(), Some("2"));
        assert_eq!(h.get_folded("missing"), None);
    }
}
