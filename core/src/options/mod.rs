//! Options: the one store of every setting (typed specs, defaults, config.yaml, `--set`,
//! flags) and the typed snapshot the engine reads.

mod core;
mod error;
pub mod live;
mod registry;
mod spec;
mod store;
pub(crate) mod yaml;

pub use self::core::{AddonErrors, CoreOptions, HostPatterns, UpstreamPool};
pub use error::{OptionError, Origin};
pub use registry::{core_specs, expand_home};
pub use spec::{
    format_size, parse_duration, parse_size, OptionSpec, OptionType, RawValue, Validator, Value,
};
pub use store::{suggest, Assignment, CommandLine, OptionStore, CONFIG_FILES};
