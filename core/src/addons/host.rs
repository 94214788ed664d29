//! What the host provides to addons through their [`Context`]: logging into the proxy's log.

use std::ffi::c_void;

use abi_stable::{prefix_type::WithMetadata, std_types::RStr};
use interpose_plugin_abi::{
    ffi::{HostRef, HostVTable},
    Context, Level,
};

use crate::logging::{ADDON_LOG_LEVEL, ADDON_TARGET};

/// The host's per-addon data behind `Context::host_data`.
struct AddonIdentity {
    name: String,
}

static HOST: WithMetadata<HostVTable> = WithMetadata::new(HostVTable { log: host_log });

extern "C" fn host_log(ctx: &Context, level: Level, message: RStr<'_>) {
    // SAFETY: every context handed to addons is made by `new_context`, whose `host_data` is a
    // leaked `AddonIdentity`, valid for the rest of the process.
    let addon = unsafe { &*(ctx.host_data() as *const AddonIdentity) };
    let (addon, message) = (addon.name.as_str(), message.as_str());
    match level {
        Level::Error => tracing::error!(target: ADDON_TARGET, addon, "{message}"),
        Level::Warn => tracing::warn!(target: ADDON_TARGET, addon, "{message}"),
        Level::Info => tracing::info!(target: ADDON_TARGET, addon, "{message}"),
        Level::Debug => tracing::debug!(target: ADDON_TARGET, addon, "{message}"),
    }
}

/// A context for the addon called `name`, living as long as the process (addons are never
/// unloaded).
pub fn new_context(name: &str) -> &'static Context {
    let identity: &'static AddonIdentity = Box::leak(Box::new(AddonIdentity {
        name: name.to_string(),
    }));
    // SAFETY: `host_log` accepts this context from any thread, and the identity it points to
    // is leaked, so it outlives every use of the context.
    let ctx = unsafe {
        Context::new(
            HostRef(HOST.static_as_prefix()),
            identity as *const AddonIdentity as *const c_void,
            &ADDON_LOG_LEVEL,
        )
    };
    Box::leak(Box::new(ctx))
}
