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

use tokio::{net::TcpListener, sync::watch};

use super::{
    client::{serve_client, StopSignals},
    messages::Destination,
    mode::Mode,
    tracker::Tracker,
    upstream::Upstream,
    Shared,
};
use crate::{
    addons::{AddonManager, LifecycleEvent},
    flow::IdGenerator,
    options::CoreOptions,
};

/// How long cut-short connections and closing server connections may take at shutdown.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Why the proxy could not serve.
#[derive(Debug)]
pub enum ServeError {
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
            ServeError::Bind { address, source } => {
                write!(f, "cannot listen on {address}: {source}")
            }
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServeError::Bind { source, .. } => Some(source),
        }
    }
}

/// Serves until `shutdown` completes, then lets in-flight requests finish (up to
/// `shutdown_grace`), ends the rest, and closes server connections. Fires `running` once
/// listening.
pub async fn serve(
    options: Arc<CoreOptions>,
    addons: Arc<AddonManager>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
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
        Mode::Reverse(target) => tracing::info!(
            "Reverse proxy to {}://{} listening at {local}.",
            target.scheme,
            target.authority
        ),
    }

    let shared = Arc::new(Shared {
        upstream: Upstream::new(&options, local),
        mode_spec: Box::leak(options.mode.spec().into_boxed_str()),
        destination: Destination::for_mode(&options.mode),
        addons: Arc::clone(&addons),
        ids: Arc::new(IdGenerator::new()),
        shutting_down: AtomicBool::new(false),
        options: Arc::clone(&options),
    });
    addons.lifecycle(LifecycleEvent::Running);

    let (stop, stopped) = watch::channel(false);
    let (kill, killed) = watch::channel(false);
    let signals = StopSignals {
        stop: stopped,
        kill: killed,
    };
    let clients = Tracker::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let guard = clients.enter();
                    tokio::spawn(serve_client(
                        Arc::clone(&shared),
                        stream,
                        peer,
                        signals.clone(),
                        guard,
                    ));
                }
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }

    drop(listener);
    tracing::info!("Shutting down.");
    let _ = stop.send(true);
    let grace = options.shutdown_grace;
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
    shared.upstream.close_idle();
    let _ = tokio::time::timeout(CLOSE_GRACE, shared.upstream.connections().wait_idle()).await;
    Ok(())
}
