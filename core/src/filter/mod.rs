//! mitmproxy's flow filter language (`~d example.com & !~c 200`): parsing an expression into
//! a [`Filter`] once, then matching flows against it.
//!
//! # The language
//!
//! An expression is made of atoms joined by `!` (not, binds tightest), `&` (and), `|` (or) and
//! parentheses. Atoms written next to each other are and-ed, more loosely than `|`:
//! `~q ~s | ~e` means `~q & (~s | ~e)`.
//!
//! An atom is an operator (`~q`), an operator with a regex (`~d example\.com`), `~c` with a
//! status code (`~c 404`), or a bare regex, which means `~u` with that regex. An operator name
//! must end at a space, the end of the expression, `)`, `&` or `|`, so `~hq` is always `~hq`,
//! never `~h q`.
//!
//! A regex is either an unquoted run of characters other than whitespace, `(`, `)`, `~`, `'`
//! and `"`, or a string in `"…"` or `'…'` in which a backslash escapes the next character
//! (`\t`, `\n`, `\r` and `\f` stand for those whitespace characters, any other escaped
//! character for itself: write `"a\\.b"` for the regex `a\.b`). Inside an unquoted regex,
//! `!`, `&` and `|` are plain characters (`~u a|b` is one regex), but it cannot start with
//! one of them.
//!
//! | operator | matches an HTTP flow whose… |
//! |---|---|
//! | `~all` | (every flow) |
//! | `~a` | response Content-Type is a JavaScript, CSS, image or font type |
//! | `~b rex` / `~bq rex` / `~bs rex` | request or response body / request body / response body (decoded, see [`crate::flow::content::decoded`]), or a WebSocket message from either side / the client / the server |
//! | `~c int` | response status code is the number |
//! | `~d rex` | request host or the host of its `Host` header |
//! | `~dst rex` | server address, as `host:port` |
//! | `~e` | has an error |
//! | `~h rex` / `~hq rex` / `~hs rex` | request or response / request / response headers, as `Name: value\r\n` lines (multi-line mode) |
//! | `~http` | (every flow); `~tcp`, `~udp` and `~dns` match none |
//! | `~m rex` | request method |
//! | `~marked` / `~marker rex` | is marked / the mark |
//! | `~meta rex` | metadata as `key: value` lines (multi-line mode) |
//! | `~comment rex` | comment (multi-line mode) |
//! | `~q` / `~s` | has no response / has a response |
//! | `~replay` / `~replayq` / `~replays` | was replayed / its request was / its response was |
//! | `~src rex` | client address, as `ip:port` |
//! | `~t rex` / `~tq rex` / `~ts rex` | a Content-Type header of the request or response / request / response |
//! | `~u rex` | URL, with the host and port of the `Host` header when there is one |
//! | `~websocket` | was upgraded to WebSocket |
//!
//! Regexes search anywhere in the value (unanchored) and ignore case unless the filter was
//! parsed case-sensitively ([`Filter::parse_with`], or the `MITMPROXY_CASE_SENSITIVE_FILTERS=1`
//! environment variable for [`Filter::parse`]). Bodies are searched with `.` matching newlines.
//!
//! # Differences from mitmproxy
//!
//! - Regexes use the `regex` crate's syntax, not Python's `re`: look-around (`(?=…)`,
//!   `(?!…)`, `(?<=…)`), backreferences (`\1`) and `\Z` are not supported and make the
//!   expression invalid; `\p{…}` classes other than the Perl ones (`\w`, `\d`, `\s`) are not
//!   compiled in. Matching is Unicode-aware on all operators, so `.` does not match a byte
//!   that is not part of valid UTF-8 (write `(?-u:.)` for any byte).
//! - Parsing is a little more lenient where mitmproxy rejects an expression: `(~q)`, `~q&~s`,
//!   and juxtaposition inside parentheses are accepted, with the obvious meaning.
//! - It is stricter where mitmproxy silently reads something unexpected: a trailing `&` or
//!   `|`, a regex that starts with `!`, `&` or `|` (quote it), and `~c 200x` are errors, not
//!   regexes or a `~c 200` followed by the URL regex `x`.
//!
//! ```
//! use interpose::filter::Filter;
//! use interpose_plugin_abi::testing;
//!
//! let filter = Filter::parse("~d example.com & ~c 200").unwrap();
//! assert!(filter.matches(&testing::flow_with_response()));
//! assert!(!filter.matches(&testing::flow()));
//!
//! let error = Filter::parse("~q & ~zz").unwrap_err();
//! assert_eq!(error.position, 5);
//! ```

use std::{fmt, sync::Arc, sync::OnceLock};

use interpose_plugin_abi::HttpFlow;

mod matcher;
mod parser;
#[cfg(test)]
mod tests;

/// A compiled filter expression.
///
/// Cloning is cheap (the compiled form is shared), and one filter can match flows on many
/// threads at once.
#[derive(Clone, Debug)]
pub struct Filter {
    expression: Arc<str>,
    root: Arc<matcher::Node>,
}

impl Filter {
    /// Compiles `expr` with case-insensitive regexes (mitmproxy's default), or case-sensitive
    /// ones when the environment variable `MITMPROXY_CASE_SENSITIVE_FILTERS` is `1` (read once
    /// per process).
    pub fn parse(expr: &str) -> Result<Filter, FilterError> {
        Filter::parse_with(expr, case_sensitive_by_default())
    }

    /// Compiles `expr`, with case-sensitive regexes if `case_sensitive`.
    pub fn parse_with(expr: &str, case_sensitive: bool) -> Result<Filter, FilterError> {
        let root = parser::parse(expr, case_sensitive)?;
        Ok(Filter {
            expression: expr.into(),
            root: Arc::new(root),
        })
    }

    /// Whether `flow` matches the filter.
    pub fn matches(&self, flow: &HttpFlow) -> bool {
        self.root.eval(flow)
    }

    /// The expression the filter was compiled from.
    pub fn expression(&self) -> &str {
        &self.expression
    }
}

fn case_sensitive_by_default() -> bool {
    static CASE_SENSITIVE: OnceLock<bool> = OnceLock::new();
    *CASE_SENSITIVE.get_or_init(|| {
        std::env::var_os("MITMPROXY_CASE_SENSITIVE_FILTERS").is_some_and(|v| v == "1")
    })
}

/// Why an expression is not a valid filter, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError {
    /// Character (not byte) offset into the expression of the offending part; the length of
    /// the expression when it ends too early.
    pub position: usize,
    /// What is wrong, e.g. `unknown operator ~zz`.
    pub message: String,
    /// The whole expression.
    pub expression: String,
}

impl fmt::Display for FilterError {
    /// `invalid filter expression: MESSAGE at column N`, then the expression and a caret under
    /// the column, each on its own line indented by two spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid filter expression: {} at column {}",
            self.message,
            self.position + 1
        )?;
        // Line breaks and tabs in the expression would throw the caret off: show them as
        // spaces.
        let shown: String = self
            .expression
            .chars()
            .map(|c| if c.is_whitespace() { ' ' } else { c })
            .collect();
        writeln!(f, "  {shown}")?;
        write!(f, "  {:width$}^", "", width = self.position)
    }
}

impl std::error::Error for FilterError {}
