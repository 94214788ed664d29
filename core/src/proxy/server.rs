//! The listener: accepting clients, the `running` event, and graceful shutdown (requests in
//! flight get `shutdown_grace` to finish; then their flows end with an `error` of kind
//! shutdown, before any addon receives `done`).

use std::{
    fmt,
    future::Future,
    io,
    sync::{atomic::AtomicBool, atomic::Ordering, Arc},
    time::Duration,
};

use tokio::{
    net::TcpListener,
    sync::{watch, Semaphore},
};

use super::{
    budget::{release_free_memory, BodyBudget},
    client::{serve_client, StopSignals},
    live::LiveOptions,
    messages::Destination,
    mode::Mode,
    tracker::Tracker,
    upstream::Upstream,
    Shared,
};
use crate::{addons::LifecycleEvent, flow::IdGenerator, tls::TlsContext};

/// How often the proxy checks whether to hand freed memory back to the operating system.
const TRIM_INTERVAL: Duration = Duration::from_secs(2);
/// The least time between two warnings that `max_connections` is reached.
const CAPACITY_WARNING_INTERVAL: Duration = Duration::from_secs(60);
/// How long cut-short connections and closing server connections may take at shutdown.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Why the proxy could not serve.
#[derive(Debug)]
pub enum ServeError {
    /// The CA or the user certificates could not be loaded.
    Tls(crate::tls::TlsSetupError),
    /// The listening socket could not be bound.
    Bind {
        /// `host:port`.
        address: String,
        /// The socket error.
        source: io::Error,
    },
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Tls(e) => e.fmt(f),
            ServeError::Bind { address, source } => {
                write!(f, "cannot listen on {address}: {source}")
            }
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServeError::Tls(e) => Some(e),
            ServeError::Bind { source, .. } => Some(source),
        }
    }
}

/// Raises the soft limit of open files to the hard limit (each client may need a server
/// connection too); returns the limit in force.
fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `getrlimit` writes the current limits into the struct we own.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: `setrlimit` only reads the struct; raising the soft limit up to the hard
            // limit needs no privilege.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
        Some(limit.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    None
}

/// Half the open files the process may have (a client and its server connection each),
/// less a few for listeners, logs and plugins.
fn default_max_connections(open_files: Option<u64>) -> usize {
    let open_files = open_files.unwrap_or(1024).min(1 << 21);
    (open_files / 2).saturating_sub(32).max(16) as usize
}

/// Serves until `shutdown` completes, then lets in-flight requests finish (up to
/// `shutdown_grace`), ends the rest, and closes server connections. Fires `running` once
/// listening. The options are read from `live` as traffic flows: another handle to them
/// changes them while this runs ([`LiveOptions::apply`]); the addons are the ones `live` was
/// made for.
pub async fn serve(
    live: LiveOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    // Only options that cannot change while the proxy runs are read from this snapshot.
    let options = live.current();
    let addons = Arc::clone(live.addons());
    let tls = TlsContext::load(&options).map_err(ServeError::Tls)?;
    if tls.upstream().verifies() {
        // Read the system's trust store now (nothing is served yet) rather than inside the
        // first flow.
        if let Err(e) = tls.upstream().load_roots() {
            tracing::warn!("{e}");
        }
    }
    let address =
        interpose_plugin_abi::HostPort(&options.listen_host, options.listen_port).to_string();
    let listener = TcpListener::bind((options.listen_host.as_str(), options.listen_port))
        .await
        .map_err(|source| ServeError::Bind {
            address: address.clone(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { address, source })?;
    match &options.mode {
        Mode::Regular => tracing::info!("HTTP(S) proxy listening at {local}."),
        Mode::Upstream(proxy) => tracing::info!(
            "HTTP(S) proxy (through {}) listening at {local}.",
            proxy.authority
        ),
        Mode::Reverse(target) => tracing::info!(
            "Reverse proxy to {}://{} listening at {local}.",
            target.scheme,
            target.authority
        ),
    }

    let shared = Arc::new(Shared {
        upstream: Upstream::new(Arc::clone(live.cell()), local),
        budget: BodyBudget::default(),
        tls,
        mode_spec: Box::leak(options.mode.spec().into_boxed_str()),
        destination: Destination::for_mode(&options.mode, options.keep_host_header),
        addons: Arc::clone(&addons),
        ids: Arc::new(IdGenerator::new()),
        shutting_down: AtomicBool::new(false),
        options: Arc::clone(live.cell()),
        mode: options.mode.clone(),
        upstream_pool: options.upstream_pool,
    });
    addons.lifecycle(LifecycleEvent::Running);
    let replayer = tokio::spawn(super::replay::run(
        Arc::clone(&shared),
        options.client_replay_concurrency,
    ));

    let max_connections = options
        .max_connections
        .unwrap_or_else(|| default_max_connections(raise_open_files_limit()));
    let permits = Arc::new(Semaphore::new(max_connections));
    let mut capacity_warned: Option<std::time::Instant> = None;
    let mut accept_failures = 0u64;

    // After a burst of large bodies, hand the freed memory back.
    let trimmer = {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TRIM_INTERVAL);
            loop {
                tick.tick().await;
                if shared.budget.settled_after_use() {
                    tokio::task::spawn_blocking(release_free_memory);
                }
            }
        })
    };

    let (stop, stopped) = watch::channel(false);
    let (kill, killed) = watch::channel(false);
    let signals = StopSignals {
        stop: stopped,
        kill: killed,
    };
    let clients = Tracker::default();
    tokio::pin!(shutdown);
    loop {
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // Once per episode, and episodes closer than a minute count as one.
                if capacity_warned.is_none_or(|at| at.elapsed() >= CAPACITY_WARNING_INTERVAL) {
                    tracing::warn!(
                        "{max_connections} client connections open (max_connections): new ones \
                         wait until one closes"
                    );
                    capacity_warned = Some(std::time::Instant::now());
                }
                tokio::select! {
                    _ = &mut shutdown => break,
                    permit = Arc::clone(&permits).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                }
            }
        };
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if accept_failures > 0 {
                        tracing::info!("accepting connections again after {accept_failures} failures");
                        accept_failures = 0;
                    }
                    let _ = stream.set_nodelay(true);
                    let guard = clients.enter();
                    let shared = Arc::clone(&shared);
                    let signals = signals.clone();
                    tokio::spawn(async move {
                        serve_client(shared, stream, peer, signals, guard).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Usually out of file descriptors: say so once per episode, and back off
                    // instead of spinning.
                    if accept_failures == 0 {
                        tracing::warn!("cannot accept a connection: {e}; retrying");
                    }
                    accept_failures += 1;
                    drop(permit);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }

    drop(listener);
    trimmer.abort();
    // A replay still in flight ends like any flow at shutdown.
    replayer.abort();
    tracing::info!("Shutting down.");
    let _ = stop.send(true);
    let grace = live.current().shutdown_grace;
    if tokio::time::timeout(grace, clients.wait_idle())
        .await
        .is_err()
    {
        tracing::warn!(
            "{} client connections still busy after {}s; closing them",
            clients.active(),
            grace.as_secs_f64()
        );
        shared.shutting_down.store(true, Ordering::Relaxed);
        let _ = kill.send(true);
        let _ = tokio::time::timeout(CLOSE_GRACE, clients.wait_idle()).await;
    }
    // Whatever still runs after this (HTTP/2 streams) ends because of the shutdown.
    shared.shutting_down.store(true, Ordering::Relaxed);
    shared.upstream.close_idle();
    let _ = tokio::time::timeout(CLOSE_GRACE, shared.upstream.connections().wait_idle()).await;
    Ok(())
}
