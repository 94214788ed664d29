//! The proxy engine: listening, modes, client connections (HTTP/1, CONNECT tunnels,
//! upgrades), the protocol-neutral flow driver, and server connections.

mod budget;
mod client;
mod connect;
mod failure;
mod flow;
pub(crate) mod http1;
mod http2;
mod intercept;
pub(crate) mod messages;
mod mode;
mod server;
mod tracker;
mod upstream;

pub use failure::Failure;
pub use mode::{Mode, ModeError, ReverseTarget};
pub use server::{serve, ServeError};
pub use upstream::UpstreamError;

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use crate::{
    addons::AddonManager,
    flow::IdGenerator,
    options::{CoreOptions, UpstreamPool},
};

/// What every connection task shares.
pub(crate) struct Shared {
    addons: Arc<AddonManager>,
    options: Arc<CoreOptions>,
    /// `mode` as text, for `Client::proxy_mode` (leaked once: it lives as long as the proxy).
    mode_spec: &'static str,
    /// Where requests go, per the mode.
    destination: messages::Destination,
    ids: Arc<IdGenerator>,
    upstream: upstream::Upstream,
    /// Certificates and TLS configurations, both sides.
    tls: crate::tls::TlsContext,
    /// Memory for buffered bodies across all flows.
    budget: budget::BodyBudget,
    /// Set once in-flight flows are being cut short.
    shutting_down: AtomicBool,
}

impl Shared {
    /// The next proxy every server connection goes through (upstream mode).
    fn upstream_proxy(&self) -> Option<&ReverseTarget> {
        match &self.options.mode {
            Mode::Upstream(proxy) => Some(proxy),
            _ => None,
        }
    }

    /// Returns an idle server connection to the pool `upstream_pool` names: the client's own,
    /// or the shared one.
    fn park(&self, pool: &mut upstream::ClientPool, conn: upstream::ServerConn) {
        match self.options.upstream_pool {
            UpstreamPool::Client => pool.release(conn),
            UpstreamPool::Shared => self.upstream.release(conn),
        }
    }

    /// An idle server connection for `key` from the pool `upstream_pool` names.
    fn checkout(
        &self,
        pool: &mut upstream::ClientPool,
        key: &upstream::PoolKey,
    ) -> Option<upstream::ServerConn> {
        match self.options.upstream_pool {
            UpstreamPool::Client => pool.checkout(key, self.options.upstream_idle_timeout),
            UpstreamPool::Shared => self.upstream.checkout(key),
        }
    }

    /// Whether flows still running are being ended by shutdown.
    fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}
