//! Addons: the manager that dispatches events, the built-in list, and the host services
//! addons reach through their context.

mod builtin;
mod host;
mod manager;

pub use builtin::builtin_plugins;
pub use host::new_context;
pub use manager::{
    AddonInfo, AddonManager, AddonPanic, ClientEvent, ClientHelloEvent, HttpEvent, LifecycleEvent,
    ServerEvent, TlsEvent,
};
