//! The built-in addons, in call order (mitmproxy's `default_addons()`): order is behaviour.
//!
//! Each built-in is a crate in `plugins/` that also builds as a loadable plugin; the host
//! links it in and calls its module directly, through the same ABI as any plugin.

use interpose_plugin_abi::ffi::PluginModuleRef;

/// The built-in plugins' modules, in the order their addons run (before any loaded plugin).
pub fn builtin_plugins() -> Vec<PluginModuleRef> {
    vec![disable_h2c::interpose_plugin()]
}
