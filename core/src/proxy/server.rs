//! The listener: accepting clients, the `running` event, and graceful shutdown.

use std::{fmt, future::Future, io, sync::Arc, time::Duration};

use tokio::{net::TcpListener, sync::watch};

use super::{http1::serve_client, mode::Mode, tracker::Tracker, upstream::Upstream, Shared};
use crate::{
    addons::{AddonManager, LifecycleEvent},
    flow::IdGenerator,
    options::CoreOptions,
};

/// How long closing server connections may take at shutdown.
const SERVER_CLOSE_GRACE: Duration = Duration::from_secs(1);

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
/// `shutdown_grace`) and closes server connections. Fires `running` once listening.
pub async fn serve(
    options: Arc<CoreOptions>,
    addons: Arc<AddonManager>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let address = format!("{}:{}", options.listen_host, options.listen_port);
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

    let ids = Arc::new(IdGenerator::new());
    let shared = Arc::new(Shared {
        upstream: Upstream::new(
            Arc::clone(&addons),
            Arc::clone(&ids),
            local,
            Arc::clone(&options),
        ),
        mode_spec: Box::leak(options.mode.spec().into_boxed_str()),
        mode: options.mode.clone(),
        addons: Arc::clone(&addons),
        ids,
    });
    addons.lifecycle(LifecycleEvent::Running);

    let (stop, stopped) = watch::channel(false);
    let clients = Tracker::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let guard = clients.enter();
                    tokio::spawn(serve_client(Arc::clone(&shared), stream, peer, stopped.clone(), guard));
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
    if tokio::time::timeout(options.shutdown_grace, clients.wait_idle())
        .await
        .is_err()
    {
        tracing::warn!(
            "{} client connections still busy after {}s; closing them",
            clients.active(),
            options.shutdown_grace.as_secs_f64()
        );
    }
    shared.upstream.close_idle();
    let _ = tokio::time::timeout(
        SERVER_CLOSE_GRACE,
        shared.upstream.connections().wait_idle(),
    )
    .await;
    Ok(())
}
