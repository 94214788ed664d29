//! Options an addon declares (mitmproxy's `loader.add_option`) and reads back, typed, and the
//! `configure` event that tells it which options changed.
//!
//! Declare options in `load`; they join the proxy's own options, so `--set name=value`,
//! `config.yaml`, `--options` and the control endpoint's `set` work for them unchanged:
//!
//! ```
//! use interpose_plugin_abi::prelude::*;
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! #[derive(Default)]
//! struct AddHeader {
//!     num: AtomicU64,
//! }
//!
//! #[addon]
//! impl Addon for AddHeader {
//!     fn load(&self, ctx: &Context) {
//!         ctx.add_option("addheader", false, "Add a count header to responses");
//!     }
//!
//!     fn response(&self, ctx: &Context, flow: &mut HttpFlow) {
//!         if ctx.get_option::<bool>("addheader") {
//!             let n = self.num.fetch_add(1, Ordering::Relaxed) + 1;
//!             if let Some(response) = flow.response_mut() {
//!                 response.headers.insert("count", n.to_string());
//!             }
//!         }
//!     }
//! }
//!
//! # fn main() {
//! let tctx = interpose_plugin_abi::testing::TestContext::new();
//! let addon = AddHeader::default();
//! addon.load(tctx.ctx());
//! tctx.configure(&addon, &[("addheader", "true")]).unwrap();
//! let mut flow = interpose_plugin_abi::testing::flow_with_response();
//! addon.response(tctx.ctx(), &mut flow);
//! assert_eq!(flow.response().unwrap().headers.get("count"), Some("1"));
//! # }
//! ```
//!
//! Reading an option ([`Context::get_option`](crate::Context::get_option)) takes no lock and,
//! for bools, numbers and sizes, allocates nothing: read it in every event rather than caching
//! it, and a change made while the proxy runs takes effect at once.

use std::fmt;

use abi_stable::{
    std_types::{ROption, RSlice, RStr, RString, RVec},
    StableAbi,
};

/// The type of an option's value, as the host stores and parses it.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OptionKind {
    /// `true` or `false` (`--set name` alone means true).
    Bool,
    /// A whole number, 0 or more.
    Int,
    /// A byte count: `512`, `64k`, `3m`, `1g` (powers of 1024).
    Size,
    /// Text.
    Str,
    /// A list of texts (`--set name=a --set name=b`).
    StrList,
}

/// An option's value as it crosses the boundary.
#[repr(u8)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub enum OptionValue {
    /// Unset (an optional option without a value).
    None,
    /// A bool.
    Bool(bool),
    /// A number, or a size in bytes.
    Int(i64),
    /// Text.
    Str(RString),
    /// A list of texts.
    StrList(RVec<RString>),
}

impl OptionValue {
    /// The value as `--options` shows it: text as it is, a list comma-separated, unset empty.
    ///
    /// ```
    /// use interpose_plugin_abi::options::OptionValue;
    ///
    /// assert_eq!(OptionValue::Bool(true).to_string(), "true");
    /// assert_eq!(OptionValue::Int(3).to_string(), "3");
    /// assert_eq!(OptionValue::None.to_string(), "");
    /// ```
    pub fn text(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for OptionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionValue::None => Ok(()),
            OptionValue::Bool(b) => write!(f, "{b}"),
            OptionValue::Int(n) => write!(f, "{n}"),
            OptionValue::Str(s) => f.write_str(s),
            OptionValue::StrList(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    f.write_str(item)?;
                }
                Ok(())
            }
        }
    }
}

/// A byte count, for options of kind [`OptionKind::Size`] (`--set limit=3m`).
///
/// ```
/// use interpose_plugin_abi::options::Size;
///
/// assert_eq!(Size(3 * 1024 * 1024).0, 3_145_728);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Size(pub u64);

/// A Rust type an option can have: `bool`, `i64`, [`Size`], `String`, `Vec<String>`, and
/// `Option<T>` of those for an option that may be unset (mitmproxy's `Optional[...]`).
pub trait OptionType: Sized {
    /// The kind the host stores.
    const KIND: OptionKind;
    /// Whether the option may be unset.
    const OPTIONAL: bool = false;
    /// The value for the host.
    fn into_value(self) -> OptionValue;
    /// The Rust value of a host value of this kind; `None` for another kind.
    fn from_value(value: OptionValue) -> Option<Self>;
}

impl OptionType for bool {
    const KIND: OptionKind = OptionKind::Bool;
    fn into_value(self) -> OptionValue {
        OptionValue::Bool(self)
    }
    fn from_value(value: OptionValue) -> Option<Self> {
        match value {
            OptionValue::Bool(b) => Some(b),
            _ => None,
        }
    }
}

impl OptionType for i64 {
    const KIND: OptionKind = OptionKind::Int;
    fn into_value(self) -> OptionValue {
        OptionValue::Int(self)
    }
    fn from_value(value: OptionValue) -> Option<Self> {
        match value {
            OptionValue::Int(n) => Some(n),
            _ => None,
        }
    }
}

impl OptionType for Size {
    const KIND: OptionKind = OptionKind::Size;
    fn into_value(self) -> OptionValue {
        OptionValue::Int(i64::try_from(self.0).unwrap_or(i64::MAX))
    }
    fn from_value(value: OptionValue) -> Option<Self> {
        match value {
            OptionValue::Int(n) => u64::try_from(n).ok().map(Size),
            _ => None,
        }
    }
}

impl OptionType for String {
    const KIND: OptionKind = OptionKind::Str;
    fn into_value(self) -> OptionValue {
        OptionValue::Str(self.into())
    }
    fn from_value(value: OptionValue) -> Option<Self> {
        match value {
            OptionValue::Str(s) => Some(s.into_string()),
            _ => None,
        }
    }
}

impl OptionType for Vec<String> {
    const KIND: OptionKind = OptionKind::StrList;
    fn into_value(self) -> OptionValue {
        OptionValue::StrList(self.into_iter().map(RString::from).collect())
    }
    fn from_value(value: OptionValue) -> Option<Self> {
        match value {
            OptionValue::StrList(items) => {
                Some(items.into_iter().map(|s| s.into_string()).collect())
            }
            _ => None,
        }
    }
}

impl<T: OptionType> OptionType for Option<T> {
    const KIND: OptionKind = T::KIND;
    const OPTIONAL: bool = true;
    fn into_value(self) -> OptionValue {
        match self {
            Some(value) => value.into_value(),
            None => OptionValue::None,
        }
    }
    fn from_value(value: OptionValue) -> Option<Self> {
        match value {
            OptionValue::None => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// An option declaration as it crosses the boundary (made by
/// [`Context::add_option`](crate::Context::add_option)).
#[repr(C)]
#[derive(StableAbi)]
pub struct OptionDecl<'a> {
    /// The option's name (`addheader`).
    pub name: RStr<'a>,
    /// Its kind.
    pub kind: OptionKind,
    /// Whether it may be unset.
    pub optional: bool,
    /// Its default value.
    pub default: OptionValue,
    /// One line of help, as `--options` shows it.
    pub help: RStr<'a>,
    /// The values allowed (empty: any value of the kind).
    pub choices: RSlice<'a, RStr<'a>>,
}

/// What the `configure` event receives: the names of the options that changed, and a way to
/// refuse the new values (mitmproxy's `configure(updated)` raising `OptionsError`).
///
/// At startup `configure` fires once, after `load`, with every option; later, whenever
/// options change (the control endpoint's `set`), with the names that changed. A refusal at
/// startup stops the proxy with the message; at run time the change is undone everywhere and
/// the caller of `set` gets the message.
///
/// ```
/// use interpose_plugin_abi::{prelude::*, testing::TestContext};
///
/// struct Limit;
///
/// #[addon]
/// impl Addon for Limit {
///     fn load(&self, ctx: &Context) {
///         ctx.add_option::<Option<i64>>("addheader", None, "Add a header to responses");
///     }
///
///     fn configure(&self, ctx: &Context, data: &mut ConfigureData) {
///         if data.contains("addheader") {
///             if let Some(n) = ctx.get_option::<Option<i64>>("addheader") {
///                 if n > 100 {
///                     data.reject("addheader must be <= 100");
///                 }
///             }
///         }
///     }
/// }
///
/// let tctx = TestContext::new();
/// Limit.load(tctx.ctx());
/// assert!(tctx.configure(&Limit, &[("addheader", "42")]).is_ok());
/// assert_eq!(
///     tctx.configure(&Limit, &[("addheader", "101")]),
///     Err("addheader must be <= 100".to_string())
/// );
/// // The refused value was not kept.
/// assert_eq!(tctx.ctx().get_option::<Option<i64>>("addheader"), Some(42));
/// ```
#[repr(C)]
#[derive(StableAbi, Debug, Default)]
pub struct ConfigureData {
    updated: RVec<RString>,
    error: ROption<RString>,
}

impl ConfigureData {
    /// The payload for options `updated` (made by the host).
    #[doc(hidden)]
    pub fn new<'a>(updated: impl IntoIterator<Item = &'a str>) -> ConfigureData {
        ConfigureData {
            updated: updated.into_iter().map(RString::from).collect(),
            error: ROption::RNone,
        }
    }

    /// The names of the options that changed (every option at startup). See the example on
    /// [`ConfigureData`].
    pub fn updated(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.updated.iter().map(RString::as_str)
    }

    /// Whether the option called `name` changed. See the example on [`ConfigureData`].
    pub fn contains(&self, name: &str) -> bool {
        self.updated.iter().any(|n| n == name)
    }

    /// Refuses the new values, saying why (the first refusal is kept). See the example on
    /// [`ConfigureData`].
    pub fn reject(&mut self, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = ROption::RSome(RString::from(message.into()));
        }
    }

    /// Why an addon refused the values, if one did. See the example on [`ConfigureData`].
    pub fn rejection(&self) -> Option<&str> {
        self.error.as_ref().map(RString::as_str).into_option()
    }
}

/// Reads an option value of `kind` from text as `--set` gives it (for hosts without a store
/// of their own, such as `TestContext`): bools `true`/`false` (empty is true), numbers,
/// sizes with `k`/`m`/`g`/`t` suffixes (powers of 1024), text, a list item; an empty text
/// unsets an optional option.
#[doc(hidden)]
pub fn parse_value(
    kind: OptionKind,
    optional: bool,
    choices: &[&str],
    text: &str,
) -> Result<OptionValue, String> {
    if optional && text.is_empty() {
        return Ok(OptionValue::None);
    }
    let value = match kind {
        OptionKind::Bool => match text.trim().to_ascii_lowercase().as_str() {
            "" | "true" => OptionValue::Bool(true),
            "false" => OptionValue::Bool(false),
            _ => return Err(format!("expected true or false, got {text:?}")),
        },
        OptionKind::Int => match text.trim().parse::<i64>() {
            Ok(n) if n >= 0 => OptionValue::Int(n),
            _ => return Err(format!("expected an integer of at least 0, got {text:?}")),
        },
        OptionKind::Size => match parse_size(text) {
            Some(n) => OptionValue::Int(i64::try_from(n).unwrap_or(i64::MAX)),
            None => return Err(format!("expected a size such as 512k or 1m, got {text:?}")),
        },
        OptionKind::Str => OptionValue::Str(text.into()),
        OptionKind::StrList => OptionValue::StrList(RVec::from(vec![RString::from(text)])),
    };
    if let OptionValue::Str(s) = &value {
        if !choices.is_empty() && !choices.contains(&s.as_str()) {
            return Err(format!(
                "expected one of {}, got {text:?}",
                choices.join(", ")
            ));
        }
    }
    Ok(value)
}

/// Reads a size as mitmproxy does (`--set body_size_limit=3m`): a whole number of bytes, or a
/// whole number followed by `b`, `k`, `m`, `g` or `t` (powers of 1024, any case). `None` if it
/// is not one, or does not fit in 64 bits.
///
/// ```
/// use interpose_plugin_abi::options::parse_size;
///
/// assert_eq!(parse_size("512"), Some(512));
/// assert_eq!(parse_size("3m"), Some(3 << 20));
/// assert_eq!(parse_size("2 K"), Some(2048));
/// assert_eq!(parse_size("1x"), None);
/// ```
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Ok(bytes) = text.parse::<u64>() {
        return Some(bytes);
    }
    let shift = match text.chars().last()?.to_ascii_lowercase() {
        'b' => 0,
        'k' => 10,
        'm' => 20,
        'g' => 30,
        't' => 40,
        _ => return None,
    };
    let number = text[..text.len() - 1].trim_end().parse::<u64>().ok()?;
    number.checked_mul(1 << shift)
}
