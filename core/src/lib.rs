//! Interpose's engine: the proxy, the plugin loader and the addon manager behind the
//! `interpose` binary.

pub mod addons;
pub mod app;
pub mod capture;
pub mod cli;
pub mod commands;
pub mod control;
pub mod filter;
pub mod flow;
pub mod logging;
pub mod options;
pub mod plugin;
pub mod proxy;
pub mod readfile;
pub mod tls;

#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;

pub use app::{run, RunError};
pub use cli::Cli;
pub use options::{CoreOptions, OptionStore};
