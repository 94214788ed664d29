//! Plugins: finding compiled addon libraries, loading them, and why a load failed.

mod discover;
mod error;
mod load;

pub use discover::plugin_paths;
pub use error::LoadError;
pub use load::{LoadedPlugin, PluginLoader};
