//! Cookie headers: parsing and writing `Cookie` and `Set-Cookie` values as permissively as
//! mitmproxy's `net.http.cookies` (duplicates, odd quoting and the comma-joined `Set-Cookie`
//! form are kept or read; values are quoted only where they need it).
//!
//! ```
//! use interpose_plugin_abi::{prelude::*, testing};
//!
//! let mut flow = testing::flow();
//! flow.request.headers.insert("Cookie", "session=abc; theme=dark");
//! let mut cookies = flow.request.cookies();
//! assert_eq!(cookies.get("session").map(String::as_str), Some("abc"));
//! cookies.remove("theme");
//! flow.request.set_cookies(&cookies);
//! assert_eq!(flow.request.headers.get("cookie"), Some("session=abc"));
//! ```

use std::fmt;

/// The attributes of one `Set-Cookie` cookie (`Path`, `Expires`, `HttpOnly`, ...), in order
/// (mitmproxy's `CookieAttrs`): names are compared ASCII case-insensitively, a flag such as
/// `HttpOnly` has the value `None`, and [`CookieAttrs::get`] gives the *last* value of a
/// repeated attribute, as mitmproxy does.
///
/// ```
/// use interpose_plugin_abi::CookieAttrs;
///
/// let mut attrs: CookieAttrs = [("Path", Some("/")), ("HttpOnly", None)].into_iter().collect();
/// assert_eq!(attrs.get("path"), Some(Some("/")));
/// assert_eq!(attrs.get("httponly"), Some(None));
/// attrs.set("Max-Age", Some("60"));
/// attrs.remove("HTTPONLY");
/// assert_eq!(attrs.to_string(), "Path=/; Max-Age=60");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct CookieAttrs {
    fields: Vec<(String, Option<String>)>,
}

impl CookieAttrs {
    /// No attribute; allocates nothing.
    ///
    /// See the example on [`CookieAttrs::get_all`].
    pub const fn new() -> Self {
        CookieAttrs { fields: Vec::new() }
    }

    /// The last value of attribute `name` (any case): `Some(None)` for a flag, `None` when
    /// absent.
    ///
    /// See the example on [`CookieAttrs`].
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// Every value of attribute `name` (any case), in order.
    ///
    /// ```
    /// use interpose_plugin_abi::CookieAttrs;
    ///
    /// let mut attrs = CookieAttrs::new();
    /// assert!(attrs.is_empty());
    /// attrs.append("Path", Some("/a"));
    /// attrs.append("Secure", None);
    /// attrs.append("path", Some("/b"));
    /// assert_eq!(attrs.get_all("PATH").collect::<Vec<_>>(), [Some("/a"), Some("/b")]);
    /// assert!(attrs.contains("secure"));
    /// attrs.set_all("Path", [Some("/".to_string())]);
    /// assert_eq!(attrs.len(), 2);
    /// assert_eq!(attrs.iter().collect::<Vec<_>>(), [("Path", Some("/")), ("Secure", None)]);
    /// ```
    pub fn get_all<'a>(
        &'a self,
        name: &'a str,
    ) -> impl DoubleEndedIterator<Item = Option<&'a str>> + 'a {
        self.fields
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// Whether attribute `name` (any case) is present.
    ///
    /// See the example on [`CookieAttrs::get_all`].
    pub fn contains(&self, name: &str) -> bool {
        self.fields
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    /// Sets attribute `name` to `value` (`None` for a flag), at the position of its first
    /// occurrence (which keeps its name's case), removing the others; appended when absent.
    ///
    /// See the example on [`CookieAttrs`].
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        self.set_all(name, [value.map(str::to_string)]);
    }

    /// Replaces the values of attribute `name` (mitmproxy's `set_all`): existing occurrences
    /// take the new values in order, in place; occurrences left over are removed, and values
    /// left over are appended.
    ///
    /// See the example on [`CookieAttrs::get_all`].
    pub fn set_all(&mut self, name: &str, values: impl IntoIterator<Item = Option<String>>) {
        crate::multidict::set_all_fields(
            &mut self.fields,
            |n| n.eq_ignore_ascii_case(name),
            || name.to_string(),
            values,
        );
    }

    /// Adds an attribute at the end, keeping others of the same name.
    ///
    /// See the example on [`CookieAttrs::get_all`].
    #[doc(alias = "add")]
    pub fn append(&mut self, name: &str, value: Option<&str>) {
        self.fields
            .push((name.to_string(), value.map(str::to_string)));
    }

    /// Removes attribute `name` (any case); returns how many there were.
    ///
    /// See the example on [`CookieAttrs`].
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.fields.len();
        self.fields.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        before - self.fields.len()
    }

    /// Every attribute in order, as `(name, value)`.
    ///
    /// See the example on [`CookieAttrs::get_all`].
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, Option<&str>)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }

    /// Number of attributes (a repeated one counts once per occurrence).
    ///
    /// See the example on [`CookieAttrs::get_all`].
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there is no attribute.
    ///
    /// See the example on [`CookieAttrs::get_all`].
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl fmt::Debug for CookieAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The attributes as they appear in a `Set-Cookie` header: `Path=/; HttpOnly`.
impl fmt::Display for CookieAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_pairs(self.iter(), SET_COOKIE_UNQUOTED))
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, Option<V>)> for CookieAttrs {
    fn from_iter<I: IntoIterator<Item = (N, Option<V>)>>(iter: I) -> Self {
        CookieAttrs {
            fields: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.map(Into::into)))
                .collect(),
        }
    }
}

/// Bytes up to the first of `stops` from `start`, and where that stop is (the length when
/// there is none; one past it when `start` is already at the end).
fn read_until(s: &[u8], start: usize, stops: &[u8]) -> (String, usize) {
    if start >= s.len() {
        return (String::new(), start + 1);
    }
    let end = s[start..]
        .iter()
        .position(|b| stops.contains(b))
        .map_or(s.len(), |p| start + p);
    (text(&s[start..end]), end)
}

/// A double-quoted string starting at the quote at `start`, backslash escapes undone; returns
/// it and the offset after the closing quote.
fn read_quoted(s: &[u8], start: usize) -> (String, usize) {
    let mut out = Vec::new();
    let mut escaping = false;
    let mut i = start;
    for (j, &b) in s.iter().enumerate().skip(start + 1) {
        i = j;
        if escaping {
            out.push(b);
            escaping = false;
        } else if b == b'"' {
            break;
        } else if b == b'\\' {
            escaping = true;
        } else {
            out.push(b);
        }
    }
    (text(&out), i + 1)
}

fn read_value(s: &[u8], start: usize, stops: &[u8]) -> (String, usize) {
    match s.get(start) {
        None => (String::new(), start),
        Some(b'"') => read_quoted(s, start),
        Some(_) => read_until(s, start, stops),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Parses one `Cookie` header value into `(name, value)` pairs, in order, duplicates kept
/// (mitmproxy's `parse_cookie_header`): pairs are separated by `;`, leading spaces of names
/// are dropped, quoted values are unquoted, and a pair without `=` has an empty value.
///
/// ```
/// use interpose_plugin_abi::cookies::parse_cookie_header;
///
/// assert_eq!(
///     parse_cookie_header(r#"a=1; b="x;y"; flag"#),
///     [("a".into(), "1".into()), ("b".into(), "x;y".into()), ("flag".into(), String::new())]
/// );
/// ```
pub fn parse_cookie_header(line: &str) -> Vec<(String, String)> {
    let s = line.as_bytes();
    let mut pairs = Vec::new();
    let mut off = 0;
    loop {
        let (lhs, next) = read_until(s, off, b";=");
        off = next;
        let lhs = lhs.trim_start().to_string();
        let mut rhs = String::new();
        if s.get(off) == Some(&b'=') {
            (rhs, off) = read_value(s, off + 1, b";");
        }
        if !rhs.is_empty() || !lhs.is_empty() {
            pairs.push((lhs, rhs));
        }
        off += 1;
        if off >= s.len() {
            break;
        }
    }
    pairs
}

/// The attributes whose values are never quoted when written.
const SET_COOKIE_UNQUOTED: &[&str] = &["expires", "path"];

/// Whether a value must be quoted: it holds `"`, `,`, `;`, `\`, a space, a control or a
/// non-ASCII character.
fn needs_quotes(value: &str) -> bool {
    value
        .chars()
        .any(|c| matches!(c, '"' | ',' | ';' | '\\') || !('\x21'..='\x7e').contains(&c))
}

fn format_pairs<'a>(
    pairs: impl Iterator<Item = (&'a str, Option<&'a str>)>,
    unquoted: &[&str],
) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(k);
        let Some(v) = v else { continue };
        out.push('=');
        if !unquoted.iter().any(|u| u.eq_ignore_ascii_case(k)) && needs_quotes(v) {
            out.push('"');
            for c in v.chars() {
                if matches!(c, '"' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        } else {
            out.push_str(v);
        }
    }
    out
}

/// Writes `(name, value)` pairs as one `Cookie` header value, joined with `; `, values quoted
/// where needed (mitmproxy's `format_cookie_header`).
///
/// ```
/// use interpose_plugin_abi::cookies::format_cookie_header;
///
/// let cookies = [("a".to_string(), "1".to_string()), ("b".to_string(), "x y".to_string())];
/// assert_eq!(format_cookie_header(&cookies), r#"a=1; b="x y""#);
/// ```
pub fn format_cookie_header(pairs: &[(String, String)]) -> String {
    format_pairs(
        pairs.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))),
        &[],
    )
}

/// One cookie of a `Set-Cookie` header: name, value (`None` when the header had no `=`) and
/// attributes.
///
/// See the example on [`parse_set_cookie_header`].
pub type SetCookie = (String, Option<String>, CookieAttrs);

/// Parses one `Set-Cookie` header value (mitmproxy's `parse_set_cookie_header`): usually one
/// cookie, but the old comma-joined form gives several. `Expires` values keep their comma
/// (`Wed, 21 Oct 2015 ...`), attribute values are not interpreted.
///
/// ```
/// use interpose_plugin_abi::cookies::parse_set_cookie_header;
///
/// let cookies = parse_set_cookie_header("id=a3f; Expires=Wed, 21 Oct 2015 07:28:00 GMT; HttpOnly");
/// let (name, value, attrs) = &cookies[0];
/// assert_eq!((name.as_str(), value.as_deref()), ("id", Some("a3f")));
/// assert_eq!(attrs.get("expires"), Some(Some("Wed, 21 Oct 2015 07:28:00 GMT")));
/// assert_eq!(attrs.get("httponly"), Some(None));
/// assert_eq!(parse_set_cookie_header("a=1, b=2").len(), 2);
/// ```
pub fn parse_set_cookie_header(line: &str) -> Vec<SetCookie> {
    let s = line.as_bytes();
    let mut cookies: Vec<Vec<(String, Option<String>)>> = Vec::new();
    let mut pairs = Vec::new();
    let mut off = 0;
    loop {
        let (lhs, next) = read_until(s, off, b";=,");
        off = next;
        let lhs = lhs.trim_start().to_string();
        if s.get(off) == Some(&b'=') {
            let (mut rhs, next) = read_value(s, off + 1, b";,");
            off = next;
            // An Expires date has a comma in it: when the value read so far is only the day
            // name, read the rest too (mitmproxy's heuristic).
            if lhs.eq_ignore_ascii_case("expires") && rhs.chars().count() <= 3 {
                let (trail, next) = read_value(s, off + 1, b";,");
                off = next;
                rhs = format!("{rhs},{trail}");
            }
            pairs.push((lhs, Some(rhs)));
        } else if !lhs.is_empty() {
            pairs.push((lhs, None));
        }
        if s.get(off) == Some(&b',') {
            cookies.push(std::mem::take(&mut pairs));
        }
        off += 1;
        if off >= s.len() {
            break;
        }
    }
    if !pairs.is_empty() || cookies.is_empty() {
        cookies.push(pairs);
    }
    cookies
        .into_iter()
        .filter(|pairs| !pairs.is_empty())
        .map(|pairs| {
            let mut pairs = pairs.into_iter();
            let (name, value) = pairs.next().expect("non-empty");
            (
                name,
                value,
                CookieAttrs {
                    fields: pairs.collect(),
                },
            )
        })
        .collect()
}

/// Writes one cookie as a `Set-Cookie` header value (mitmproxy's `format_set_cookie_header`
/// for one cookie): `name=value` then the attributes, joined with `; `; values are quoted
/// where needed, except those of `Expires` and `Path`.
///
/// ```
/// use interpose_plugin_abi::{cookies::format_set_cookie_header, CookieAttrs};
///
/// let attrs: CookieAttrs = [("Path", Some("/a b")), ("Secure", None)].into_iter().collect();
/// assert_eq!(format_set_cookie_header("n", Some("v 1"), &attrs), r#"n="v 1"; Path=/a b; Secure"#);
/// ```
pub fn format_set_cookie_header(name: &str, value: Option<&str>, attrs: &CookieAttrs) -> String {
    format_pairs(
        std::iter::once((name, value)).chain(attrs.iter()),
        SET_COOKIE_UNQUOTED,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
        v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn cookie_header_parsing() {
        assert_eq!(pairs(&parse_cookie_header("")), []);
        assert_eq!(pairs(&parse_cookie_header("one=uno")), [("one", "uno")]);
        assert_eq!(
            pairs(&parse_cookie_header("one=uno; two=due;;  three= tre ")),
            [("one", "uno"), ("two", "due"), ("three", " tre ")]
        );
        assert_eq!(
            pairs(&parse_cookie_header(r#"one="uno; \"x\""; two=due"#)),
            [("one", "uno; \"x\""), ("two", "due")]
        );
        assert_eq!(
            pairs(&parse_cookie_header("one; two=; =three")),
            [("one", ""), ("two", ""), ("", "three")]
        );
        assert_eq!(
            pairs(&parse_cookie_header("a=1; a=2")),
            [("a", "1"), ("a", "2")]
        );
    }

    #[test]
    fn cookie_header_round_trip() {
        for line in [
            "one=uno; two=due",
            r#"one="uno two"; two=due"#,
            r#"a="\"q\"""#,
        ] {
            assert_eq!(format_cookie_header(&parse_cookie_header(line)), line);
        }
    }

    #[test]
    fn set_cookie_parsing() {
        let c = parse_set_cookie_header(
            "SSID=Ap4P; Domain=foo.com; Path=/; Expires=Wed, 13 Jan 2021 22:23:01 GMT; Secure; HttpOnly",
        );
        assert_eq!(c.len(), 1);
        let (name, value, attrs) = &c[0];
        assert_eq!((name.as_str(), value.as_deref()), ("SSID", Some("Ap4P")));
        let got: Vec<_> = attrs.iter().collect();
        assert_eq!(
            got,
            [
                ("Domain", Some("foo.com")),
                ("Path", Some("/")),
                ("Expires", Some("Wed, 13 Jan 2021 22:23:01 GMT")),
                ("Secure", None),
                ("HttpOnly", None)
            ]
        );

        // Comma-joined cookies, the second with an Expires.
        let c = parse_set_cookie_header("a=1; Path=/, b=2; expires=Sun, 01 Jan 2040 00:00:00 GMT");
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].0, "b");
        assert_eq!(
            c[1].2.get("Expires"),
            Some(Some("Sun, 01 Jan 2040 00:00:00 GMT"))
        );

        // No `=`: a name without value; repeated attributes, the last wins.
        let c = parse_set_cookie_header("flag; Path=/a; path=/b");
        assert_eq!(c[0].1, None);
        assert_eq!(c[0].2.get("PATH"), Some(Some("/b")));
        assert!(parse_set_cookie_header("").is_empty());
        assert_eq!(
            parse_set_cookie_header(r#"q="a,b"; x"#)[0].1.as_deref(),
            Some("a,b")
        );
    }

    #[test]
    fn set_cookie_round_trip() {
        for line in [
            "SSID=Ap4P; Domain=foo.com; Path=/; Expires=Wed, 13 Jan 2021 22:23:01 GMT; Secure; HttpOnly",
            r#"n="a b"; Path=/x y"#,
            "flag; Max-Age=0",
        ] {
            let c = parse_set_cookie_header(line);
            let (name, value, attrs) = &c[0];
            assert_eq!(format_set_cookie_header(name, value.as_deref(), attrs), line);
        }
    }

    #[test]
    fn attrs_editing() {
        let mut attrs: CookieAttrs = [("Path", Some("/")), ("path", Some("/x")), ("Secure", None)]
            .into_iter()
            .collect();
        assert_eq!(attrs.get_all("PATH").count(), 2);
        attrs.set("PATH", Some("/y"));
        assert_eq!(attrs.to_string(), "Path=/y; Secure");
        attrs.append("Domain", Some("a"));
        attrs.set_all("domain", [None, Some("b".to_string())]);
        assert_eq!(attrs.to_string(), "Path=/y; Secure; Domain; domain=b");
        assert_eq!(attrs.remove("Domain"), 2);
        assert!(attrs.contains("secure") && attrs.len() == 2 && !attrs.is_empty());
    }
}
