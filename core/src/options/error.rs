//! Why an option could not be set: each error names where the assignment came from.

use std::{fmt, io, path::PathBuf};

/// Where an option's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The option's default.
    Default,
    /// A key in a config file.
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// The key's line, from 1.
        line: usize,
    },
    /// `--set name=value`.
    Set,
    /// A dedicated flag, as `-p/--listen-port`.
    Flag(&'static str),
    /// The `set` command, while the proxy runs (the control endpoint or an addon).
    Command,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::ConfigFile { path, line } => write!(f, "{} line {line}", path.display()),
            Origin::Set => f.write_str("--set"),
            Origin::Flag(flag) => f.write_str(flag),
            Origin::Command => f.write_str("the set command"),
        }
    }
}

/// Why options could not be read or set.
#[derive(Debug)]
pub enum OptionError {
    /// No option has this name.
    Unknown {
        /// The name given.
        name: String,
        /// Where it was given.
        origin: Origin,
        /// Known names close to it, closest first.
        suggestions: Vec<String>,
    },
    /// The value does not fit the option's type, choices or check.
    Invalid {
        /// The option.
        name: String,
        /// Where the value was given.
        origin: Origin,
        /// What was expected and what was given.
        problem: String,
    },
    /// A config file exists but cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A config file is not YAML, or not a mapping of option names to values.
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line of the problem, from 1.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// A declared option is inconsistent, or its name is taken.
    Spec {
        /// The option.
        name: String,
        /// What is wrong.
        problem: String,
    },
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionError::Unknown {
                name,
                origin,
                suggestions,
            } => {
                write!(f, "{origin}: unknown option {name:?}")?;
                match suggestions.as_slice() {
                    [] => write!(f, " (`interpose --options` lists every option)"),
                    [one] => write!(f, " (did you mean {one}?)"),
                    [first @ .., last] => {
                        write!(f, " (did you mean {} or {last}?)", first.join(", "))
                    }
                }
            }
            OptionError::Invalid {
                name,
                origin,
                problem,
            } => write!(f, "{origin}: {name}: {problem}"),
            OptionError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            OptionError::Syntax {
                path,
                line,
                problem,
            } => write!(f, "{} line {line}: {problem}", path.display()),
            OptionError::Spec { name, problem } => {
                write!(f, "option {name} cannot be declared: {problem}")
            }
        }
    }
}

impl std::error::Error for OptionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OptionError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}
