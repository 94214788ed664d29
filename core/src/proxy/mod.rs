//! The proxy engine: listening, modes, HTTP/1 client connections, and server connections.

mod http1;
mod messages;
mod mode;
mod server;
mod tracker;
mod upstream;

pub use mode::{Mode, ModeError, ReverseTarget};
pub use server::{serve, ServeError};
pub use upstream::UpstreamError;

use std::sync::Arc;

use crate::{addons::AddonManager, flow::IdGenerator};

/// What every connection task shares.
pub(crate) struct Shared {
    addons: Arc<AddonManager>,
    mode: Mode,
    /// `mode` as text, for `Client::proxy_mode` (leaked once: it lives as long as the proxy).
    mode_spec: &'static str,
    ids: Arc<IdGenerator>,
    upstream: upstream::Upstream,
}
