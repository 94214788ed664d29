//! The proxy engine: listening, modes, client connections (HTTP/1, CONNECT tunnels,
//! upgrades), the protocol-neutral flow driver, and server connections.

mod budget;
mod client;
mod connect;
mod exchange;
mod failure;
mod flow;
pub(crate) mod http1;
mod http2;
mod intercept;
mod live;
pub(crate) mod messages;
mod mode;
pub(crate) mod replay;
mod server;
mod tracker;
mod upstream;
mod upstream_h2;
pub(crate) mod websocket;

pub use failure::Failure;
pub use live::{ApplyError, LiveOptions};
pub use mode::{Mode, ModeError, ReverseTarget};
pub use server::{serve, ServeError};
pub use upstream::UpstreamError;

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use arc_swap::{ArcSwap, Guard};

use crate::{
    addons::AddonManager,
    flow::IdGenerator,
    options::{CoreOptions, UpstreamPool},
};

/// What every connection task shares.
pub(crate) struct Shared {
    addons: Arc<AddonManager>,
    /// The options in force, replaced while the proxy runs (see [`LiveOptions`]).
    options: Arc<ArcSwap<CoreOptions>>,
    /// `mode`, which cannot change while the proxy runs: read without a snapshot.
    mode: Mode,
    /// `upstream_pool`, which cannot change while the proxy runs either.
    upstream_pool: UpstreamPool,
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
    /// The options in force, for a read that ends before the next await.
    fn options(&self) -> Guard<Arc<CoreOptions>> {
        self.options.load()
    }

    /// The options in force, to keep across awaits: a flow keeps one snapshot from start to
    /// end.
    fn options_snapshot(&self) -> Arc<CoreOptions> {
        self.options.load_full()
    }

    /// The next proxy every server connection goes through (upstream mode).
    fn upstream_proxy(&self) -> Option<&ReverseTarget> {
        match &self.mode {
            Mode::Upstream(proxy) => Some(proxy),
            _ => None,
        }
    }

    /// Returns an idle server connection to the pool `upstream_pool` names: the client's own,
    /// or the shared one.
    fn park(&self, pool: &mut upstream::ClientPool, conn: upstream::ServerConn) {
        match self.upstream_pool {
            UpstreamPool::Client => pool.release(conn),
            UpstreamPool::Shared => self.upstream.release(conn),
        }
    }

    /// Keeps an HTTP/2 session for later flows in the pool `upstream_pool` names.
    fn keep_session(&self, pool: &mut upstream::ClientPool, session: upstream_h2::H2Session) {
        match self.upstream_pool {
            UpstreamPool::Client => pool.keep_session(session),
            UpstreamPool::Shared => self.upstream.keep_session(session),
        }
    }

    /// Forgets an HTTP/2 session that failed to take a stream, in the pool `upstream_pool`
    /// names.
    fn drop_session(&self, pool: &mut upstream::ClientPool, session: &upstream_h2::H2Session) {
        match self.upstream_pool {
            UpstreamPool::Client => pool.drop_session(session),
            UpstreamPool::Shared => self.upstream.drop_session(session),
        }
    }

    /// Files a route for later flows: an idle connection or a session.
    fn park_route(&self, pool: &mut upstream::ClientPool, route: exchange::Route) {
        match route {
            exchange::Route::Http1(conn) => self.park(pool, conn),
            exchange::Route::Http2(session) => self.keep_session(pool, session),
        }
    }

    /// A way to the server for `key` from the pool `upstream_pool` names: the HTTP/2 session
    /// if `key` may have one, else an idle connection.
    fn checkout(
        &self,
        pool: &mut upstream::ClientPool,
        key: &upstream::PoolKey,
    ) -> Option<exchange::Route> {
        if key.offers_h2() {
            let session = match self.upstream_pool {
                UpstreamPool::Client => pool.session(key),
                UpstreamPool::Shared => self.upstream.session(key),
            };
            if let Some(session) = session {
                return Some(exchange::Route::Http2(session));
            }
        }
        let conn = match self.upstream_pool {
            UpstreamPool::Client => pool.checkout(key, self.options().upstream_idle_timeout),
            UpstreamPool::Shared => self.upstream.checkout(key),
        };
        conn.map(exchange::Route::Http1)
    }

    /// The `alpn` of the pool key for an https flow of `client`: the protocols offered to
    /// its server when they include `h2` (see [`upstream::server_alpn`]).
    fn server_alpn_key(&self, client: &interpose_plugin_abi::Client) -> Option<Box<[u8]>> {
        if !self.options().http2 {
            return None;
        }
        let reverse = matches!(self.mode, Mode::Reverse(_));
        let offers = upstream::server_alpn(&client.alpn_offers, true, reverse);
        upstream::PoolKey::alpn_of(&offers)
    }

    /// Whether flows still running are being ended by shutdown.
    fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}
