//! Addons: the manager that dispatches events, the built-in list, and the host services
//! addons reach through their context.

mod builtin;
mod host;
mod manager;

pub use builtin::{builtin_plugins, builtin_plugins_after};
pub use host::{new_context, publish_options, shutdown_requested};
pub use manager::{
    wait_paused, AddonInfo, AddonManager, AddonPanic, ClientEvent, ClientHelloEvent,
    ConfigureEvent, Dispatch, HttpEvent, LifecycleEvent, ServerEvent, TlsEvent,
};
