//! Plugins: finding compiled addon libraries, loading them, and why a load failed.

mod discover;
mod error;
mod load;

pub use discover::{default_plugins_dir, plugin_paths};
pub use error::LoadError;
pub use load::{load_plugin, LoadedPlugin};
