//! Connections to servers: opening them (firing the `server_*` events), sending requests, and
//! keeping idle HTTP/1.1 connections for reuse by any later flow to the same server.

use std::{
    collections::{HashMap, VecDeque},
    fmt, io,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use abi_stable::std_types::{RArc, ROption};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Incoming, client::conn::http1::SendRequest};
use hyper_util::rt::TokioIo;
use interpose_plugin_abi::{
    now, Address, Client, Connection, HostPort, Server, ServerConnectionHookData,
};
use tokio::net::TcpStream;

use super::tracker::Tracker;
use crate::{
    addons::{AddonManager, ServerEvent},
    flow::IdGenerator,
};

/// How long connecting to a server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections older than this are closed instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many idle connections are kept per server.
const MAX_IDLE_PER_SERVER: usize = 256;

/// Why a request could not be sent to, or answered by, its server.
#[derive(Debug)]
pub enum UpstreamError {
    /// The scheme needs a transport Interpose does not speak yet.
    UnsupportedScheme {
        /// The request's scheme.
        scheme: String,
    },
    /// An addon refused the connection in `server_connect`.
    Refused {
        /// The server.
        address: String,
        /// The reason the addon gave.
        reason: String,
    },
    /// The TCP connection failed.
    Connect {
        /// The server.
        address: String,
        /// The socket error.
        source: io::Error,
    },
    /// The TCP connection took longer than the connect timeout.
    ConnectTimeout {
        /// The server.
        address: String,
    },
    /// The server is this proxy: forwarding would loop until the proxy runs out of sockets.
    Loop {
        /// The server.
        address: String,
    },
    /// The server closed or reset the connection, or answered with something that is not
    /// HTTP.
    Exchange {
        /// The server.
        address: String,
        /// hyper's description, with its cause.
        detail: String,
    },
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::UnsupportedScheme { scheme } => write!(
                f,
                "cannot forward {scheme}:// requests: TLS to upstream servers is not supported yet"
            ),
            UpstreamError::Refused { address, reason } => {
                write!(f, "connection to {address} refused by an addon: {reason}")
            }
            UpstreamError::Connect { address, source } => {
                write!(f, "Cannot connect to {address}: {source}")
            }
            UpstreamError::ConnectTimeout { address } => write!(
                f,
                "Cannot connect to {address}: timed out after {}s",
                CONNECT_TIMEOUT.as_secs()
            ),
            UpstreamError::Loop { address } => write!(
                f,
                "refusing to forward to {address}: that is this proxy itself (the request \
                 would loop)"
            ),
            UpstreamError::Exchange { address, detail } => {
                write!(f, "server {address} failed: {detail}")
            }
        }
    }
}

impl std::error::Error for UpstreamError {}

/// hyper's error with its chain of causes, on one line.
fn describe(error: &hyper::Error) -> String {
    let mut text = if error.is_incomplete_message() {
        "connection closed before a complete response".to_string()
    } else if error.is_parse() {
        format!("invalid HTTP response ({error})")
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    host: Box<str>,
    port: u16,
}

impl fmt::Display for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        HostPort(&self.host, self.port).fmt(f)
    }
}

struct IdleConnection {
    sender: SendRequest<Full<Bytes>>,
    server: RArc<Server>,
    since: Instant,
}

/// A server connection lent to one flow; [`Lease::release`] returns it for reuse.
pub struct Lease {
    key: PoolKey,
    sender: SendRequest<Full<Bytes>>,
    server: RArc<Server>,
}

impl Lease {
    /// The server this connection goes to.
    pub fn server(&self) -> &RArc<Server> {
        &self.server
    }
}

/// Opens server connections and pools idle ones.
pub struct Upstream {
    /// Per server, idle connections oldest first.
    idle: Mutex<HashMap<PoolKey, VecDeque<IdleConnection>>>,
    addons: Arc<AddonManager>,
    ids: Arc<IdGenerator>,
    connections: Tracker,
    /// The proxy's own listening address, never to be connected to.
    listening: SocketAddr,
}

impl Upstream {
    /// A pool with no connections yet, for the proxy listening at `listening`.
    pub fn new(addons: Arc<AddonManager>, ids: Arc<IdGenerator>, listening: SocketAddr) -> Self {
        Upstream {
            idle: Mutex::new(HashMap::new()),
            addons,
            ids,
            connections: Tracker::default(),
            listening,
        }
    }

    /// Whether a connection from `local` to `peer` reached this proxy's own listener.
    fn is_self(&self, local: SocketAddr, peer: SocketAddr) -> bool {
        let own = self.listening;
        peer.port() == own.port()
            && (peer.ip() == own.ip()
                || (own.ip().is_unspecified()
                    && (peer.ip().is_loopback() || peer.ip() == local.ip())))
    }

    /// Server connections still open (pooled or in use).
    pub fn connections(&self) -> &Tracker {
        &self.connections
    }

    /// Closes every idle connection.
    pub fn close_idle(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Sends `request` to `scheme://host:port`, on an idle connection if there is one that
    /// still works, else on a new one. Returns the response head (the body still streams on
    /// the connection) and the connection to release once the body is read.
    pub async fn send(
        &self,
        client: &RArc<Client>,
        scheme: &str,
        host: &str,
        port: u16,
        mut request: hyper::Request<Full<Bytes>>,
    ) -> Result<(hyper::Response<Incoming>, Lease), UpstreamError> {
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(UpstreamError::UnsupportedScheme {
                scheme: scheme.to_string(),
            });
        }
        let key = PoolKey {
            host: host.into(),
            port,
        };
        loop {
            let (mut lease, reused) = match self.checkout(&key).await {
                Some(lease) => (lease, true),
                None => (self.connect(client, key.clone()).await?, false),
            };
            match lease.sender.try_send_request(request).await {
                Ok(response) => return Ok((response, lease)),
                Err(mut failed) => match failed.take_message() {
                    // A pooled connection the server had closed: nothing was sent, retry.
                    Some(unsent) if reused => request = unsent,
                    _ => {
                        return Err(UpstreamError::Exchange {
                            address: key.to_string(),
                            detail: describe(failed.error()),
                        })
                    }
                },
            }
        }
    }

    /// Returns a connection whose response was read completely to the pool.
    pub fn release(&self, lease: Lease) {
        if lease.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(lease.key).or_default();
        let now = Instant::now();
        // Oldest first: expired connections are at the front. Closed ones elsewhere are
        // dropped when checkout reaches them.
        while list
            .front()
            .is_some_and(|c| now.duration_since(c.since) >= IDLE_TIMEOUT || c.sender.is_closed())
            || list.len() >= MAX_IDLE_PER_SERVER
        {
            list.pop_front();
        }
        list.push_back(IdleConnection {
            sender: lease.sender,
            server: lease.server,
            since: now,
        });
    }

    /// The most recently used idle connection to `key` that is still open.
    async fn checkout(&self, key: &PoolKey) -> Option<Lease> {
        loop {
            let candidate = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                idle.get_mut(key)?.pop_back()?
            };
            if candidate.sender.is_closed() || candidate.since.elapsed() >= IDLE_TIMEOUT {
                continue;
            }
            let mut sender = candidate.sender;
            // The connection task may still be finishing the previous response.
            if sender.ready().await.is_ok() {
                return Some(Lease {
                    key: key.clone(),
                    sender,
                    server: candidate.server,
                });
            }
        }
    }

    /// Opens a new connection to `key`, with the `server_connect` / `server_connected` /
    /// `server_connect_error` events.
    async fn connect(&self, client: &RArc<Client>, key: PoolKey) -> Result<Lease, UpstreamError> {
        let address = key.to_string();
        let mut server = Server {
            conn: Connection::new(self.ids.next_id()),
            address: ROption::RSome(Address {
                host: key.host.as_ref().into(),
                port: key.port,
            }),
            timestamp_tcp_setup: ROption::RNone,
            via: ROption::RNone,
        };
        server.timestamp_start = ROption::RSome(now());
        self.fire(ServerEvent::Connect, client, &mut server);
        if let ROption::RSome(reason) = &server.error {
            let error = UpstreamError::Refused {
                address,
                reason: reason.to_string(),
            };
            self.fail_connect(client, &mut server, &error);
            return Err(error);
        }

        let stream =
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((&*key.host, key.port)))
                .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(source)) => {
                    let error = UpstreamError::Connect { address, source };
                    self.fail_connect(client, &mut server, &error);
                    return Err(error);
                }
                Err(_elapsed) => {
                    let error = UpstreamError::ConnectTimeout { address };
                    self.fail_connect(client, &mut server, &error);
                    return Err(error);
                }
            };
        let _ = stream.set_nodelay(true);
        if let (Ok(local), Ok(peer)) = (stream.local_addr(), stream.peer_addr()) {
            server.sockname = local.into();
            server.peername = peer.into();
            if self.is_self(local, peer) {
                let error = UpstreamError::Loop { address };
                self.fail_connect(client, &mut server, &error);
                return Err(error);
            }
        }
        server.timestamp_tcp_setup = ROption::RSome(now());
        tracing::debug!("server connect {address}");
        self.fire(ServerEvent::Connected, client, &mut server);

        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| UpstreamError::Exchange {
                address: address.clone(),
                detail: describe(&e),
            })?;
        let server = RArc::new(server);
        let guard = self.connections.enter();
        let addons = Arc::clone(&self.addons);
        let (client, closed_server) = (client.clone(), server.clone());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("server connection {address} ended: {}", describe(&e));
            }
            tracing::debug!("server disconnect {address}");
            if addons.has_server(ServerEvent::Disconnected) {
                let mut server = (*closed_server).clone();
                server.timestamp_end = ROption::RSome(now());
                let mut data = ServerConnectionHookData {
                    client: &client,
                    server: &mut server,
                };
                let _ = addons.server(ServerEvent::Disconnected, &mut data);
            }
            drop(guard);
        });
        Ok(Lease {
            key,
            sender,
            server,
        })
    }

    fn fail_connect(&self, client: &Client, server: &mut Server, error: &UpstreamError) {
        server.error = ROption::RSome(error.to_string().into());
        server.timestamp_end = ROption::RSome(now());
        self.fire(ServerEvent::ConnectError, client, server);
    }

    fn fire(&self, event: ServerEvent, client: &Client, server: &mut Server) {
        if self.addons.has_server(event) {
            let _ = self
                .addons
                .server(event, &mut ServerConnectionHookData { client, server });
        }
    }
}
