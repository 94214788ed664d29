//! The built-in addons, in call order (mitmproxy's `default_addons()`): order is behaviour.
//!
//! Each built-in is a crate in `plugins/` that also builds as a loadable plugin; the host
//! links it in and calls its module directly, through the same ABI as any plugin.
//!
//! As in mitmproxy, where user scripts sit between the built-ins that shape traffic and
//! the ones that record it, some built-ins run before the loaded plugins and the capture
//! addons after them: what is saved and shown is the flow as the plugins left it.

use interpose_plugin_abi::ffi::PluginModuleRef;

/// The built-in plugins whose addons run before any loaded plugin, in order.
pub fn builtin_plugins() -> Vec<PluginModuleRef> {
    vec![
        block::interpose_plugin(),
        proxyauth::interpose_plugin(),
        anticache::interpose_plugin(),
        anticomp::interpose_plugin(),
        disable_h2c::interpose_plugin(),
    ]
}

/// The built-in plugins whose addons run after the loaded plugins, in order: server replay
/// (`server_replay`), rewriting by
/// spec (`map_remote`, `map_local`, `modify_body`, `modify_headers`: mitmproxy runs them
/// after the scripts), sticky auth and cookies, pausing flows (`intercept`), saving (`save_stream_file`, `hardump`), then the
/// dump output.
pub fn builtin_plugins_after() -> Vec<PluginModuleRef> {
    vec![
        serverplayback::interpose_plugin(),
        modify::interpose_plugin(),
        sticky::interpose_plugin(),
        intercept::interpose_plugin(),
        save::interpose_plugin(),
        savehar::interpose_plugin(),
        dumper::interpose_plugin(),
    ]
}
