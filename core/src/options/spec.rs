//! Option specs: what an option is (name, type, default, choices, help), the values options
//! hold, and how a value is read from text. Plain data, so that a plugin can describe its own
//! options the same way.

use std::{fmt, time::Duration};

/// The type of an option's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionType {
    /// `true` or `false`.
    Bool,
    /// A whole number from `min` to `max`, both included.
    Int {
        /// The smallest value accepted.
        min: u64,
        /// The largest value accepted.
        max: u64,
    },
    /// A byte count: plain bytes, or a whole number with a `b`, `k`, `m`, `g` or `t` suffix
    /// (powers of 1024, any case), as mitmproxy's sizes.
    Size,
    /// A number of seconds, whole or fractional.
    Duration,
    /// Text.
    Str,
    /// A list of texts; each assignment from one source adds an item.
    List,
}

/// A value an option holds. Sizes and integers are both [`Value::Int`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value: an optional option that is not set.
    None,
    /// A bool.
    Bool(bool),
    /// An integer or a size in bytes.
    Int(u64),
    /// A duration.
    Duration(Duration),
    /// Text.
    Str(String),
    /// A list of texts.
    List(Vec<String>),
}

impl Value {
    /// The bool, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The integer (or size), if this is one.
    pub fn as_int(&self) -> Option<u64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The duration, if this is one.
    pub fn as_duration(&self) -> Option<Duration> {
        match self {
            Value::Duration(d) => Some(*d),
            _ => None,
        }
    }

    /// The text, if this is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The list, if this is one.
    pub fn as_list(&self) -> Option<&[String]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    /// Whether this is [`Value::None`].
    pub fn is_none(&self) -> bool {
        matches!(self, Value::None)
    }
}

/// A value as a source wrote it, before it is checked against an option's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawValue {
    /// The name alone: `--set name` (true for a bool, empty for a list, none if optional).
    Missing,
    /// YAML's null (`name:`, `name: null`, `name: ~`).
    Null,
    /// One text value.
    Text(String),
    /// A YAML list.
    List(Vec<String>),
}

/// An extra check of a parsed value, returning what is wrong with it.
pub type Validator = fn(&Value) -> Result<(), String>;

/// The description of one option.
#[derive(Debug, Clone)]
pub struct OptionSpec {
    /// The name, in mitmproxy's snake_case (`listen_port`).
    pub name: String,
    /// The type of its value.
    pub ty: OptionType,
    /// Whether it may hold [`Value::None`] (given as an empty value or YAML null).
    pub optional: bool,
    /// The value it holds until something sets it.
    pub default: Value,
    /// For text and list options: the only texts accepted (empty: any).
    pub choices: Vec<String>,
    /// One or two sentences for `--options`.
    pub help: String,
    /// A check run on every parsed value (a regex compiles, a mode is one Interpose runs).
    pub validate: Option<Validator>,
}

impl OptionSpec {
    /// A required option of type `ty` with `default`.
    pub fn new(name: &str, ty: OptionType, default: Value, help: &str) -> Self {
        OptionSpec {
            name: name.to_string(),
            ty,
            optional: false,
            default,
            choices: Vec::new(),
            help: help.to_string(),
            validate: None,
        }
    }

    /// An optional option of type `ty`, unset by default.
    pub fn optional(name: &str, ty: OptionType, help: &str) -> Self {
        OptionSpec {
            optional: true,
            ..OptionSpec::new(name, ty, Value::None, help)
        }
    }

    /// Restricts the accepted texts to `choices`.
    pub fn with_choices(mut self, choices: &[&str]) -> Self {
        self.choices = choices.iter().map(|c| c.to_string()).collect();
        self
    }

    /// Adds a check run on every parsed value.
    pub fn with_validator(mut self, validate: Validator) -> Self {
        self.validate = Some(validate);
        self
    }

    /// What is inconsistent in this spec, if anything (a default of another type, choices on
    /// a type without text, a default outside the choices).
    pub fn check(&self) -> Result<(), String> {
        let valid_name = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_name {
            return Err("names are lower-case letters, digits and underscores".into());
        }
        if !self.choices.is_empty() && !matches!(self.ty, OptionType::Str | OptionType::List) {
            return Err("only text and list options have choices".into());
        }
        if let OptionType::Int { min, max } = self.ty {
            if min > max {
                return Err(format!("empty range {min} to {max}"));
            }
        }
        if self.default.is_none() && !self.optional {
            return Err("the default is none but the option is not optional".into());
        }
        let default = self.display(&self.default);
        self.accept(self.default.clone())
            .map(drop)
            .map_err(|problem| format!("default {default}: {problem}"))
    }

    /// Parses `raw` into a value of this option's type, then checks choices and the validator.
    /// The error says what was expected and what was given.
    pub fn parse(&self, raw: &RawValue) -> Result<Value, String> {
        let value = match raw {
            RawValue::Missing => match self.ty {
                OptionType::Bool => Value::Bool(true),
                OptionType::List => Value::List(Vec::new()),
                _ if self.optional => Value::None,
                _ => return Err(format!("needs a value: {}", self.expected())),
            },
            RawValue::Null => match self.ty {
                OptionType::List => Value::List(Vec::new()),
                _ if self.optional => Value::None,
                _ => return Err(format!("{}, got null", self.expected())),
            },
            RawValue::Text(text) => match self.ty {
                OptionType::List => Value::List(vec![text.clone()]),
                _ if self.optional && text.is_empty() => Value::None,
                _ => self.parse_text(text)?,
            },
            RawValue::List(items) => match (self.ty, items.as_slice()) {
                (OptionType::List, _) => Value::List(items.clone()),
                // mitmproxy has lists where Interpose has one value (`mode: [regular]`).
                (_, [one]) => return self.parse(&RawValue::Text(one.clone())),
                _ => {
                    return Err(format!(
                        "{}, got a list of {} items",
                        self.expected(),
                        items.len()
                    ))
                }
            },
        };
        self.accept(value)
    }

    /// Checks choices and the validator on a value already of the right type.
    fn accept(&self, value: Value) -> Result<Value, String> {
        let type_fits = match (&value, self.ty) {
            (Value::None, _) => self.optional,
            (Value::Bool(_), OptionType::Bool)
            | (Value::Int(_), OptionType::Size)
            | (Value::Duration(_), OptionType::Duration)
            | (Value::Str(_), OptionType::Str)
            | (Value::List(_), OptionType::List) => true,
            (Value::Int(n), OptionType::Int { min, max }) => (min..=max).contains(n),
            _ => false,
        };
        if !type_fits {
            return Err(self.expected());
        }
        let texts = match &value {
            Value::Str(text) => std::slice::from_ref(text),
            Value::List(items) => items.as_slice(),
            _ => &[],
        };
        if !self.choices.is_empty() {
            if let Some(bad) = texts.iter().find(|t| !self.choices.contains(t)) {
                return Err(format!("{}, got {bad:?}", self.expected()));
            }
        }
        if let Some(validate) = self.validate {
            validate(&value)?;
        }
        Ok(value)
    }

    fn parse_text(&self, text: &str) -> Result<Value, String> {
        let parsed = match self.ty {
            OptionType::Bool => match text.trim().to_ascii_lowercase().as_str() {
                // mitmproxy: `--set flag=` means true, as `--set flag` does.
                "" | "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                _ => None,
            },
            OptionType::Int { min, max } => text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .map(Value::Int),
            OptionType::Size => parse_size(text).map(Value::Int),
            OptionType::Duration => parse_duration(text).map(Value::Duration),
            OptionType::Str => Some(Value::Str(text.to_string())),
            OptionType::List => Some(Value::List(vec![text.to_string()])),
        };
        parsed.ok_or_else(|| format!("{}, got {text:?}", self.expected()))
    }

    /// What a value of this option looks like, as error messages say it.
    pub fn expected(&self) -> String {
        if !self.choices.is_empty() {
            let choices = self.choices.join(", ");
            return match self.ty {
                OptionType::List => format!("expected items among {choices}"),
                _ => format!("expected one of {choices}"),
            };
        }
        match self.ty {
            OptionType::Bool => "expected true or false".into(),
            OptionType::Int { min, max } if max == u64::MAX => {
                format!("expected an integer of at least {min}")
            }
            OptionType::Int { min, max } => format!("expected an integer from {min} to {max}"),
            OptionType::Size => "expected a size such as 512k or 1m".into(),
            OptionType::Duration => "expected a number of seconds such as 10 or 0.5".into(),
            OptionType::Str => "expected a text value".into(),
            OptionType::List => "expected a list of text values".into(),
        }
    }

    /// The type as `--options` shows it (`integer 0 to 65535`, `optional size`).
    pub fn type_name(&self) -> String {
        let base = match self.ty {
            OptionType::Bool => "bool".to_string(),
            OptionType::Int { min, max } if max == u64::MAX => format!("integer >= {min}"),
            OptionType::Int { min, max } => format!("integer {min} to {max}"),
            OptionType::Size => "size".to_string(),
            OptionType::Duration => "seconds".to_string(),
            OptionType::Str if !self.choices.is_empty() => {
                format!("one of {}", self.choices.join(", "))
            }
            OptionType::Str => "string".to_string(),
            OptionType::List if !self.choices.is_empty() => {
                format!("list of {}", self.choices.join(", "))
            }
            OptionType::List => "list of strings".to_string(),
        };
        if self.optional {
            format!("optional {base}")
        } else {
            base
        }
    }

    /// `value` written so that it parses back to itself (sizes with the largest exact suffix,
    /// seconds as a plain number).
    pub fn display(&self, value: &Value) -> String {
        DisplayValue { ty: self.ty, value }.to_string()
    }
}

struct DisplayValue<'a> {
    ty: OptionType,
    value: &'a Value,
}

impl fmt::Display for DisplayValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value {
            Value::None => f.write_str("none"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(n) if self.ty == OptionType::Size => f.write_str(&format_size(*n)),
            Value::Int(n) => write!(f, "{n}"),
            Value::Duration(d) => write!(f, "{}", d.as_secs_f64()),
            Value::Str(s) if s.is_empty() => f.write_str("\"\""),
            Value::Str(s) => f.write_str(s),
            Value::List(items) => write!(f, "[{}]", items.join(", ")),
        }
    }
}

/// Size suffixes, smallest first, as mitmproxy's `human.parse_size` has them.
const SIZE_UNITS: [(char, u64); 5] = [
    ('b', 1),
    ('k', 1 << 10),
    ('m', 1 << 20),
    ('g', 1 << 30),
    ('t', 1 << 40),
];

/// Parses a size as mitmproxy does (the plugin ABI's, which addons' size options use too).
pub use interpose_plugin_abi::options::parse_size;

/// `bytes` with the largest suffix that divides it exactly (`1m`, `1536k`, `100`).
pub fn format_size(bytes: u64) -> String {
    SIZE_UNITS
        .iter()
        .rev()
        .filter(|(_, multiplier)| *multiplier > 1)
        .find(|(_, multiplier)| bytes != 0 && bytes % multiplier == 0)
        .map(|(suffix, multiplier)| format!("{}{suffix}", bytes / multiplier))
        .unwrap_or_else(|| bytes.to_string())
}

/// Parses a number of seconds (`10`, `0.5`): finite, not negative.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let seconds = text.trim().parse::<f64>().ok()?;
    if !seconds.is_finite() {
        return None;
    }
    Duration::try_from_secs_f64(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> RawValue {
        RawValue::Text(s.to_string())
    }

    #[test]
    fn sizes_parse_as_mitmproxy_reads_them() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("1234"), Some(1234));
        assert_eq!(parse_size("100b"), Some(100));
        assert_eq!(parse_size("512k"), Some(512 * 1024));
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("3M"), Some(3 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("1t"), Some(1 << 40));
        assert_eq!(parse_size(" 7K "), Some(7 << 10));
        for bad in [
            "",
            "k",
            "1.5m",
            "1kb",
            "1 mb",
            "-1",
            "-1k",
            "m1",
            "1x",
            "ten",
            "99999999999t",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sizes_display_with_the_largest_exact_suffix() {
        for (bytes, shown) in [
            (0, "0"),
            (100, "100"),
            (1024, "1k"),
            (1536 * 1024, "1536k"),
            (1 << 20, "1m"),
            (3 << 30, "3g"),
        ] {
            assert_eq!(format_size(bytes), shown);
            assert_eq!(parse_size(shown), Some(bytes));
        }
    }

    #[test]
    fn durations_are_seconds() {
        assert_eq!(parse_duration("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("0.25"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in ["", "-1", "ten", "inf", "NaN", "1s", "1e400"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn each_type_parses_and_says_what_it_expected() {
        let port = OptionSpec::new(
            "listen_port",
            OptionType::Int { min: 0, max: 65535 },
            Value::Int(8080),
            "",
        );
        assert_eq!(port.parse(&text("8081")), Ok(Value::Int(8081)));
        assert_eq!(
            port.parse(&text("abc")),
            Err(r#"expected an integer from 0 to 65535, got "abc""#.into())
        );
        assert!(port.parse(&text("65536")).is_err());
        assert_eq!(
            port.parse(&RawValue::Missing),
            Err("needs a value: expected an integer from 0 to 65535".into())
        );
        assert_eq!(
            port.parse(&RawValue::Null),
            Err("expected an integer from 0 to 65535, got null".into())
        );

        let flag = OptionSpec::new("ssl_insecure", OptionType::Bool, Value::Bool(false), "");
        assert_eq!(flag.parse(&RawValue::Missing), Ok(Value::Bool(true)));
        assert_eq!(flag.parse(&text("")), Ok(Value::Bool(true)));
        assert_eq!(flag.parse(&text("False")), Ok(Value::Bool(false)));
        assert_eq!(
            flag.parse(&text("yes")),
            Err(r#"expected true or false, got "yes""#.into())
        );

        let size = OptionSpec::optional("body_size_limit", OptionType::Size, "");
        assert_eq!(size.parse(&text("1m")), Ok(Value::Int(1 << 20)));
        assert_eq!(size.parse(&text("")), Ok(Value::None));
        assert_eq!(size.parse(&RawValue::Null), Ok(Value::None));
        assert_eq!(
            size.parse(&text("1.5m")),
            Err(r#"expected a size such as 512k or 1m, got "1.5m""#.into())
        );
        assert_eq!(size.type_name(), "optional size");
        assert_eq!(size.display(&Value::Int(3 << 20)), "3m");

        let timeout = OptionSpec::new(
            "connect_timeout",
            OptionType::Duration,
            Value::Duration(Duration::from_secs(10)),
            "",
        );
        assert_eq!(
            timeout.parse(&text("1.5")),
            Ok(Value::Duration(Duration::from_millis(1500)))
        );
        assert_eq!(
            timeout.parse(&text("soon")),
            Err(r#"expected a number of seconds such as 10 or 0.5, got "soon""#.into())
        );
        assert_eq!(
            timeout.display(&Value::Duration(Duration::from_secs(10))),
            "10"
        );

        let host = OptionSpec::new("listen_host", OptionType::Str, Value::Str("h".into()), "");
        assert_eq!(host.parse(&text("")), Ok(Value::Str(String::new())));
        assert!(host.parse(&RawValue::Missing).is_err());
        let name = OptionSpec::optional("name", OptionType::Str, "");
        assert_eq!(name.parse(&RawValue::Missing), Ok(Value::None));
        assert_eq!(name.parse(&text("x")), Ok(Value::Str("x".into())));

        let hosts = OptionSpec::new("ignore_hosts", OptionType::List, Value::List(vec![]), "");
        assert_eq!(hosts.parse(&text("a")), Ok(Value::List(vec!["a".into()])));
        assert_eq!(hosts.parse(&RawValue::Missing), Ok(Value::List(vec![])));
        assert_eq!(hosts.parse(&RawValue::Null), Ok(Value::List(vec![])));
        let two = RawValue::List(vec!["a".into(), "b".into()]);
        assert_eq!(
            hosts.parse(&two),
            Ok(Value::List(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            port.parse(&two),
            Err("expected an integer from 0 to 65535, got a list of 2 items".into())
        );
        assert_eq!(
            port.parse(&RawValue::List(vec!["9".into()])),
            Ok(Value::Int(9))
        );

        let choice = OptionSpec::new(
            "addon_errors",
            OptionType::Str,
            Value::Str("continue".into()),
            "",
        )
        .with_choices(&["continue", "fail"]);
        assert_eq!(choice.parse(&text("fail")), Ok(Value::Str("fail".into())));
        assert_eq!(
            choice.parse(&text("stop")),
            Err(r#"expected one of continue, fail, got "stop""#.into())
        );
        assert_eq!(choice.type_name(), "one of continue, fail");
    }

    #[test]
    fn validators_run_on_parsed_values() {
        fn even(value: &Value) -> Result<(), String> {
            match value.as_int() {
                Some(n) if n % 2 == 1 => Err(format!("{n} is odd")),
                _ => Ok(()),
            }
        }
        let spec = OptionSpec::new(
            "even",
            OptionType::Int { min: 0, max: 10 },
            Value::Int(2),
            "",
        )
        .with_validator(even);
        assert_eq!(spec.parse(&text("4")), Ok(Value::Int(4)));
        assert_eq!(spec.parse(&text("3")), Err("3 is odd".into()));
        assert_eq!(spec.check(), Ok(()));
    }

    #[test]
    fn inconsistent_specs_are_refused() {
        let mistyped = OptionSpec::new("x", OptionType::Bool, Value::Int(1), "");
        assert!(mistyped.check().is_err());
        let outside = OptionSpec::new("x", OptionType::Str, Value::Str("c".into()), "")
            .with_choices(&["a", "b"]);
        assert!(outside
            .check()
            .unwrap_err()
            .contains("expected one of a, b"));
        let required_none = OptionSpec::new("x", OptionType::Size, Value::None, "");
        assert!(required_none.check().is_err());
        let bad_name = OptionSpec::new("Listen-Port", OptionType::Bool, Value::Bool(true), "");
        assert!(bad_name.check().is_err());
        let bad_range = OptionSpec::new("x", OptionType::Int { min: 5, max: 1 }, Value::Int(5), "");
        assert!(bad_range.check().is_err());
    }
}
