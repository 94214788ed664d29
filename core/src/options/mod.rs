//! Options: the one store of every setting (typed specs, defaults, config.yaml, `--set`,
//! flags) and the typed snapshot the engine reads.

mod core;

pub use self::core::{AddonErrors, CoreOptions, HostPatterns};
