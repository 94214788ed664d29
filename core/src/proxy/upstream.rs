//! Connections to servers: a connector that opens TCP connections (refusing the proxy's own
//! listener), and pools of idle HTTP/1 connections and shared HTTP/2 sessions for reuse. The
//! flow driver fires the `server_*` events; a connection fires `server_disconnected` when it
//! is closed.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    fmt, io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use abi_stable::std_types::{RArc, ROption};
use arc_swap::ArcSwap;
use bytes::BytesMut;
use interpose_plugin_abi::{now, Client, HostPort, Request, Server, ServerConnectionHookData};
use tokio::{
    io::{AsyncRead, ReadBuf},
    net::TcpStream,
};

use super::{
    http1::Http1Io,
    tracker::{Tracker, TrackerGuard},
    upstream_h2::H2Session,
};
use crate::{
    addons::{AddonManager, ServerEvent},
    options::CoreOptions,
    tls::{self, HandshakeError, TlsDetails},
};

/// Why a server connection could not be opened.
#[derive(Debug)]
pub enum UpstreamError {
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
    /// The TCP connection took longer than `connect_timeout`.
    ConnectTimeout {
        /// The server.
        address: String,
        /// The limit.
        after: Duration,
    },
    /// The server is this proxy: forwarding would loop until the proxy runs out of sockets.
    Loop {
        /// The server.
        address: String,
    },
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Refused { address, reason } => {
                write!(f, "connection to {address} refused by an addon: {reason}")
            }
            UpstreamError::Connect { address, source } => {
                write!(f, "Cannot connect to {address}: {source}")
            }
            UpstreamError::ConnectTimeout { address, after } => write!(
                f,
                "Cannot connect to {address}: timed out after {}s",
                after.as_secs_f64()
            ),
            UpstreamError::Loop { address } => write!(
                f,
                "refusing to forward to {address}: that is this proxy itself (the request \
                 would loop)"
            ),
        }
    }
}

impl std::error::Error for UpstreamError {}

/// What makes two server connections interchangeable: a pooled connection is reused only
/// for the same key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// `http` or `https`.
    pub scheme: Box<str>,
    /// Host name or IP address, as the request names it.
    pub host: Box<str>,
    /// Port.
    pub port: u16,
    /// The TLS server name sent, if any.
    pub sni: Option<Box<str>>,
    /// The ALPN protocols offered (wire format), when they include `h2`: such a connection
    /// may be an HTTP/2 session. Offers without `h2` are interchangeable (`None`).
    pub alpn: Option<Box<[u8]>>,
    /// The upstream proxy the connection goes through, if any.
    pub via: Option<Box<str>>,
}

/// ALPN's name for HTTP/1.1.
pub const HTTP1: &[u8] = b"http/1.1";
/// ALPN's name for HTTP/2.
pub const H2: &[u8] = b"h2";

/// The ALPN protocols to offer a server. Interception mirrors the client's offers of `h2` and
/// `http/1.1`, in its order (`h2` only when `http2` is on, as mitmproxy does), then adds the
/// one it left out: the proxy translates, so an HTTP/1.1 client still reaches an HTTP/2-only
/// server and the other way round. Nothing when the client offered nothing. A reverse proxy
/// offers `h2` (if `http2`) and `http/1.1` whatever its clients speak.
pub fn server_alpn<P: AsRef<[u8]>>(client: &[P], http2: bool, reverse: bool) -> Vec<Vec<u8>> {
    if reverse {
        return if http2 {
            vec![H2.to_vec(), HTTP1.to_vec()]
        } else {
            vec![HTTP1.to_vec()]
        };
    }
    if client.is_empty() {
        return Vec::new();
    }
    let mut offers: Vec<Vec<u8>> = Vec::with_capacity(2);
    let wanted = client
        .iter()
        .map(AsRef::as_ref)
        .chain([HTTP1, H2])
        .filter(|p| (http2 && *p == H2) || *p == HTTP1);
    for protocol in wanted {
        if !offers.iter().any(|o| o == protocol) {
            offers.push(protocol.to_vec());
        }
    }
    offers
}

impl PoolKey {
    /// The `alpn` of a key for a connection offering `offers`.
    pub fn alpn_of(offers: &[Vec<u8>]) -> Option<Box<[u8]>> {
        if !offers.iter().any(|p| p == H2) {
            return None;
        }
        let mut wire = Vec::new();
        for offer in offers {
            wire.push(offer.len() as u8);
            wire.extend_from_slice(offer);
        }
        Some(wire.into())
    }

    /// The ALPN protocols a connection under this key offers: `alpn`'s, else `http/1.1`.
    pub fn alpn_offers(&self) -> Vec<Vec<u8>> {
        let Some(mut wire) = self.alpn.as_deref() else {
            return vec![HTTP1.to_vec()];
        };
        let mut offers = Vec::new();
        while let Some((&len, rest)) = wire.split_first() {
            let len = usize::from(len).min(rest.len());
            offers.push(rest[..len].to_vec());
            wire = &rest[len..];
        }
        offers
    }

    /// Whether a connection under this key may be an HTTP/2 session.
    pub fn offers_h2(&self) -> bool {
        self.alpn.is_some()
    }

    /// The key of the connection `request` goes out on.
    pub fn for_request(request: &Request) -> PoolKey {
        let https = request.scheme.eq_ignore_ascii_case("https");
        PoolKey {
            scheme: request.scheme.as_str().into(),
            host: request.host.as_str().into(),
            port: request.port,
            sni: https.then(|| request.host.as_str().into()),
            alpn: None,
            via: None,
        }
    }
}

/// Idle server connections kept by one client connection for itself (`upstream_pool=client`,
/// mitmproxy's behaviour): nobody else can be handed a response meant for this client, and
/// they close with it.
pub struct ClientPool {
    idle: Vec<IdleConnection>,
    /// Most idle connections kept.
    max: usize,
    /// HTTP/2 sessions, shared with the pools `take_one` made (the streams of one HTTP/2
    /// client connection see each other's sessions at once); made on first use.
    sessions: Option<Arc<Mutex<Vec<H2Session>>>>,
}

impl Default for ClientPool {
    fn default() -> Self {
        ClientPool::with_capacity(Self::MAX)
    }
}

impl ClientPool {
    /// Most server connections an HTTP/1 client keeps idle (it uses one at a time).
    const MAX: usize = 8;

    /// A pool keeping at most `max` idle connections (an HTTP/2 client runs many streams at
    /// once, each needing its own HTTP/1 server connection).
    pub fn with_capacity(max: usize) -> Self {
        ClientPool {
            idle: Vec::new(),
            max: max.max(1),
            sessions: None,
        }
    }

    /// A pool with the most recently used idle connection of this one, for one stream, and
    /// this one's HTTP/2 sessions.
    pub fn take_one(&mut self) -> ClientPool {
        let mut one = ClientPool::with_capacity(self.max);
        one.idle.extend(self.idle.pop());
        one.sessions = Some(Arc::clone(self.sessions.get_or_insert_with(Arc::default)));
        one
    }

    /// An open HTTP/2 session for `key`, if any (it stays in the pool: sessions are shared).
    pub fn session(&mut self, key: &PoolKey) -> Option<H2Session> {
        let sessions = self.sessions.as_ref()?;
        let mut sessions = sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(H2Session::is_open);
        sessions.iter().find(|s| s.key() == key).cloned()
    }

    /// Forgets `session` (it failed to take a stream): later flows get a new connection.
    pub fn drop_session(&mut self, session: &H2Session) {
        if let Some(sessions) = &self.sessions {
            let mut sessions = sessions.lock().unwrap_or_else(|e| e.into_inner());
            sessions.retain(|s| !s.same(session));
        }
    }

    /// Keeps an HTTP/2 session for later flows, unless an open one for its key is kept
    /// already (this one then closes when its streams end).
    pub fn keep_session(&mut self, session: H2Session) {
        let sessions = self.sessions.get_or_insert_with(Arc::default);
        let mut sessions = sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(H2Session::is_open);
        if !sessions.iter().any(|s| s.key() == session.key()) {
            sessions.push(session);
        }
    }

    /// The most recently used idle connection for `key` that can still be used.
    pub fn checkout(&mut self, key: &PoolKey, idle_timeout: Duration) -> Option<ServerConn> {
        while let Some(index) = self.idle.iter().rposition(|c| c.conn.key == *key) {
            let candidate = self.idle.remove(index);
            let mut conn = candidate.conn;
            if candidate.since.elapsed() < idle_timeout && conn.is_reusable() {
                return Some(conn);
            }
        }
        None
    }

    /// Takes over the idle connections of `other`.
    pub fn absorb(&mut self, other: ClientPool) {
        for idle in other.idle {
            if self.idle.len() >= self.max {
                self.idle.remove(0);
            }
            self.idle.push(idle);
        }
    }

    /// Keeps a connection whose exchange completed.
    pub fn release(&mut self, conn: ServerConn) {
        if self.idle.len() >= self.max {
            self.idle.remove(0);
        }
        self.idle.push(IdleConnection {
            conn,
            since: Instant::now(),
        });
    }
}

impl fmt::Display for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        HostPort(&self.host, self.port).fmt(f)
    }
}

/// A server connection's byte stream: plain TCP, or TLS over it.
pub enum ServerStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// Taken apart (only while a TLS handshake is under way).
    Closed,
}

macro_rules! delegate_stream {
    ($self:ident, $stream:ident => $call:expr, $closed:expr) => {
        match $self.get_mut() {
            ServerStream::Plain($stream) => {
                let $stream = Pin::new($stream);
                $call
            }
            ServerStream::Tls($stream) => {
                let $stream = Pin::new($stream.as_mut());
                $call
            }
            ServerStream::Closed => $closed,
        }
    };
}

fn closed_stream() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "server connection closed")
}

impl AsyncRead for ServerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate_stream!(self, s => s.poll_read(cx, buf), Poll::Ready(Err(closed_stream())))
    }
}

impl tokio::io::AsyncWrite for ServerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate_stream!(self, s => s.poll_write(cx, buf), Poll::Ready(Err(closed_stream())))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate_stream!(self, s => s.poll_write_vectored(cx, bufs), Poll::Ready(Err(closed_stream())))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ServerStream::Plain(s) => s.is_write_vectored(),
            ServerStream::Tls(s) => s.is_write_vectored(),
            ServerStream::Closed => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate_stream!(self, s => s.poll_flush(cx), Poll::Ready(Ok(())))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate_stream!(self, s => s.poll_shutdown(cx), Poll::Ready(Ok(())))
    }
}

/// Who hears of a server connection closing.
struct DisconnectNotice {
    addons: Arc<AddonManager>,
    client: RArc<Client>,
}

/// An open HTTP/1 connection to a server.
pub struct ServerConn {
    /// The byte stream and its read buffer.
    pub io: Http1Io<ServerStream>,
    /// The connection as addons see it.
    pub server: RArc<Server>,
    key: PoolKey,
    notice: Option<DisconnectNotice>,
    /// This connection's local address in the proxy's set of its own sockets.
    own: Option<(SocketAddr, Arc<Mutex<HashSet<SocketAddr>>>)>,
    _guard: TrackerGuard,
}

impl ServerConn {
    /// Whether an idle connection can carry another request: still open, and the server sent
    /// nothing unasked (a late or stray response is never handed to the next flow).
    fn is_reusable(&mut self) -> bool {
        if !self.io.buf.is_empty() || self.io.eof {
            return false;
        }
        let mut probe = [0u8; 1];
        let mut buf = ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(Waker::noop());
        matches!(
            Pin::new(&mut self.io.io).poll_read(&mut cx, &mut buf),
            Poll::Pending
        )
    }
}

impl ServerConn {
    /// Upgrades a plain connection to TLS with `config`, verifying the server as `host`.
    pub async fn start_tls(
        &mut self,
        config: Arc<rustls::ClientConfig>,
        host: &str,
    ) -> Result<TlsDetails, HandshakeError> {
        let ServerStream::Plain(tcp) = std::mem::replace(&mut self.io.io, ServerStream::Closed)
        else {
            return Err(HandshakeError::not_plain(host));
        };
        let stream = tls::connect(config, host, tcp).await?;
        let details = TlsDetails::of_server(&stream, Some(host));
        self.io.io = ServerStream::Tls(Box::new(stream));
        Ok(details)
    }

    /// Asks the next proxy on this connection to open a tunnel to `host:port` (upstream
    /// mode); `Err` says why it did not.
    /// `auth` is the `Proxy-Authorization` value to send (`upstream_auth`).
    pub async fn connect_through_proxy(
        &mut self,
        host: &str,
        port: u16,
        auth: Option<&str>,
    ) -> Result<(), String> {
        let authority = HostPort(host, port).to_string();
        let auth = auth
            .map(|value| format!("Proxy-Authorization: {value}\r\n"))
            .unwrap_or_default();
        let head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{auth}\r\n");
        self.io
            .write_parts(&mut [bytes::Bytes::from(head)])
            .await
            .map_err(|e| e.to_string())?;
        let answer = self
            .io
            .read_response_head()
            .await
            .map_err(|e| e.to_string())?;
        if (200..300).contains(&answer.status) {
            Ok(())
        } else {
            Err(format!("it answered {} {}", answer.status, answer.reason))
        }
    }

    /// Files the connection under `key` in the pools from now on.
    pub fn rekey(&mut self, key: PoolKey) {
        self.key = key;
    }

    /// The key the connection is filed under.
    pub fn key(&self) -> &PoolKey {
        &self.key
    }

    /// Takes the byte stream out (for another protocol to drive); the connection keeps its
    /// identity, and closing it still fires `server_disconnected`.
    pub fn take_stream(&mut self) -> ServerStream {
        std::mem::replace(&mut self.io.io, ServerStream::Closed)
    }

    /// Whether the server chose HTTP/2 in the TLS handshake.
    pub fn chose_h2(&self) -> bool {
        self.server
            .conn
            .alpn
            .as_ref()
            .into_option()
            .map(|a| a.as_slice())
            == Some(H2)
    }
}

impl Drop for ServerConn {
    fn drop(&mut self) {
        if let Some((local, own)) = self.own.take() {
            own.lock().unwrap_or_else(|e| e.into_inner()).remove(&local);
        }
        let Some(notice) = self.notice.take() else {
            return;
        };
        tracing::debug!("server disconnect {}", self.key);
        if notice.addons.has_server(ServerEvent::Disconnected) {
            let mut server = (*self.server).clone();
            server.timestamp_end = ROption::RSome(now());
            let mut data = ServerConnectionHookData {
                client: &notice.client,
                server: &mut server,
            };
            let _ = notice.addons.server(ServerEvent::Disconnected, &mut data);
        }
    }
}

/// An IP address with IPv4-mapped IPv6 addresses written as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn canonical_socket(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical(address.ip()), address.port())
}

struct IdleConnection {
    conn: ServerConn,
    since: Instant,
}

/// Opens server connections and pools idle ones.
pub struct Upstream {
    /// Per key, idle connections oldest first.
    idle: Mutex<HashMap<PoolKey, VecDeque<IdleConnection>>>,
    /// Per key, the HTTP/2 session flows share.
    sessions: Mutex<HashMap<PoolKey, H2Session>>,
    connections: Tracker,
    /// The proxy's own listening address, never to be connected to.
    listening: SocketAddr,
    /// The local addresses of open server connections, to recognise them coming back in.
    own_sockets: Arc<Mutex<HashSet<SocketAddr>>>,
    /// The options in force: `connect_timeout`, `body_read_timeout`, `upstream_idle_timeout`
    /// and `upstream_idle_max` are read at each use.
    options: Arc<ArcSwap<CoreOptions>>,
}

impl Upstream {
    /// A pool with no connections yet, for the proxy listening at `listening`.
    pub fn new(options: Arc<ArcSwap<CoreOptions>>, listening: SocketAddr) -> Self {
        Upstream {
            idle: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            connections: Tracker::default(),
            listening,
            own_sockets: Arc::default(),
            options,
        }
    }

    /// Server connections still open (pooled or in use).
    pub fn connections(&self) -> &Tracker {
        &self.connections
    }

    /// Closes every idle connection.
    pub fn close_idle(&self) {
        let drained: Vec<_> = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.drain().collect()
        };
        drop(drained);
        // A session closes once its last stream ends.
        let sessions: Vec<_> = {
            let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            sessions.drain().collect()
        };
        drop(sessions);
    }

    /// The open HTTP/2 session for `key`, if any (it stays in the pool: sessions are shared).
    pub fn session(&self, key: &PoolKey) -> Option<H2Session> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        match sessions.get(key) {
            Some(session) if session.is_open() => Some(session.clone()),
            Some(_) => {
                sessions.remove(key);
                None
            }
            None => None,
        }
    }

    /// Forgets `session` (it failed to take a stream): later flows get a new connection.
    pub fn drop_session(&self, session: &H2Session) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.get(session.key()).is_some_and(|s| s.same(session)) {
            sessions.remove(session.key());
        }
    }

    /// Keeps an HTTP/2 session for later flows, unless an open one for its key is kept
    /// already (this one then closes when its streams end).
    pub fn keep_session(&self, session: H2Session) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        match sessions.get(session.key()) {
            Some(kept) if kept.is_open() => {}
            _ => {
                sessions.insert(session.key().clone(), session);
            }
        }
    }

    /// The most recently used idle connection for `key` that can still be used.
    pub fn checkout(&self, key: &PoolKey) -> Option<ServerConn> {
        let idle_timeout = self.options.load().upstream_idle_timeout;
        loop {
            let candidate = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                idle.get_mut(key)?.pop_back()?
            };
            let mut conn = candidate.conn;
            if candidate.since.elapsed() < idle_timeout && conn.is_reusable() {
                return Some(conn);
            }
        }
    }

    /// Returns a connection whose exchange completed to the pool.
    pub fn release(&self, conn: ServerConn) {
        let now = Instant::now();
        let (idle_timeout, idle_max) = {
            let options = self.options.load();
            (options.upstream_idle_timeout, options.upstream_idle_max)
        };
        let mut expired = Vec::new();
        {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            let list = idle.entry(conn.key.clone()).or_default();
            // Oldest first: expired connections are at the front.
            while list
                .front()
                .is_some_and(|c| now.duration_since(c.since) >= idle_timeout)
                || (list.len() >= idle_max && !list.is_empty())
            {
                expired.extend(list.pop_front());
            }
            if idle_max > 0 {
                list.push_back(IdleConnection { conn, since: now });
            } else {
                expired.push(IdleConnection { conn, since: now });
            }
        }
        // Dropped outside the lock: closing fires `server_disconnected`.
        drop(expired);
    }

    /// Opens a TCP connection to `host:port`, refusing this proxy's own listener.
    pub async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, UpstreamError> {
        let address = || HostPort(host, port).to_string();
        let connect_timeout = self.options.load().connect_timeout;
        let stream =
            match tokio::time::timeout(connect_timeout, TcpStream::connect((host, port))).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(source)) => {
                    return Err(UpstreamError::Connect {
                        address: address(),
                        source,
                    })
                }
                Err(_elapsed) => {
                    return Err(UpstreamError::ConnectTimeout {
                        address: address(),
                        after: connect_timeout,
                    })
                }
            };
        let _ = stream.set_nodelay(true);
        if let (Ok(local), Ok(peer)) = (stream.local_addr(), stream.peer_addr()) {
            if self.is_self(local, peer) {
                return Err(UpstreamError::Loop { address: address() });
            }
        }
        Ok(stream)
    }

    /// Wraps a connected stream as a server connection that fires `server_disconnected`
    /// (if `addons` is given) when closed.
    pub fn wrap(
        &self,
        stream: TcpStream,
        key: PoolKey,
        server: RArc<Server>,
        addons: Option<(Arc<AddonManager>, RArc<Client>)>,
    ) -> ServerConn {
        let local = stream.local_addr().ok().map(canonical_socket);
        if let Some(local) = local {
            self.own_sockets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(local);
        }
        let mut io = Http1Io::new(
            ServerStream::Plain(stream),
            BytesMut::with_capacity(8 * 1024),
        );
        io.body_timeout = Some(self.options.load().body_read_timeout);
        ServerConn {
            io,
            own: local.map(|local| (local, Arc::clone(&self.own_sockets))),
            server,
            key,
            notice: addons.map(|(addons, client)| DisconnectNotice { addons, client }),
            _guard: self.connections.enter(),
        }
    }

    /// Whether a connection from `local` to `peer` reached this proxy's own listener, in any
    /// spelling of the address (IPv4-mapped IPv6, a wildcard listener reached through loopback
    /// or one of the machine's own addresses).
    fn is_self(&self, local: SocketAddr, peer: SocketAddr) -> bool {
        let own = self.listening;
        if peer.port() != own.port() {
            return false;
        }
        let (own, peer, local) = (
            canonical(own.ip()),
            canonical(peer.ip()),
            canonical(local.ip()),
        );
        peer == own || (own.is_unspecified() && (peer.is_loopback() || peer == local))
    }

    /// Whether `peer`, a client that just sent a request, is one of this proxy's own server
    /// connections: the request came back around (through another name, a port forward, a
    /// second proxy on this machine).
    pub fn is_own_connection(&self, peer: SocketAddr) -> bool {
        let own = self.own_sockets.lock().unwrap_or_else(|e| e.into_inner());
        own.contains(&canonical_socket(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::{Connection, Uuid};
    use tokio::{io::AsyncWriteExt, net::TcpListener};

    fn key_of(url: &str) -> PoolKey {
        PoolKey::for_request(&Request::make("GET", url, "").unwrap())
    }

    fn server(n: u8) -> RArc<Server> {
        RArc::new(Server {
            conn: Connection::new(Uuid([n; 16])),
            address: ROption::RNone,
            timestamp_tcp_setup: ROption::RNone,
            via: ROption::RNone,
        })
    }

    #[test]
    fn servers_are_offered_the_clients_protocols_then_the_rest() {
        let h2 = || H2.to_vec();
        let h1 = || HTTP1.to_vec();
        assert_eq!(server_alpn(&[h2(), h1()], true, false), [h2(), h1()]);
        assert_eq!(server_alpn(&[h1(), h2()], true, false), [h1(), h2()]);
        assert_eq!(server_alpn(&[h1()], true, false), [h1(), h2()]);
        assert_eq!(
            server_alpn(&[b"spdy/3".to_vec(), h2()], true, false),
            [h2(), h1()]
        );
        assert_eq!(server_alpn(&[h2(), h1()], false, false), [h1()]);
        assert!(server_alpn::<Vec<u8>>(&[], true, false).is_empty());
        assert_eq!(server_alpn::<Vec<u8>>(&[], true, true), [h2(), h1()]);
        assert_eq!(server_alpn::<Vec<u8>>(&[], false, true), [h1()]);
        let key = PoolKey::alpn_of(&[h2(), h1()]).expect("h2 offered");
        let mut pool_key = key_of("https://a/");
        pool_key.alpn = Some(key);
        assert_eq!(pool_key.alpn_offers(), [h2(), h1()]);
        assert!(PoolKey::alpn_of(&[h1()]).is_none());
        assert_eq!(key_of("https://a/").alpn_offers(), [h1()]);
    }

    #[test]
    fn pool_keys_tell_apart_what_is_not_interchangeable() {
        assert_eq!(key_of("http://a:81/x"), key_of("http://a:81/y?z"));
        assert_ne!(key_of("http://a:81/"), key_of("http://a:82/"));
        assert_ne!(key_of("http://a/"), key_of("http://b/"));
        assert_ne!(key_of("http://a:443/"), key_of("https://a:443/"));
        let mut tls = key_of("https://a/");
        tls.sni = Some("other".into());
        assert_ne!(tls, key_of("https://a/"));
        assert_eq!(key_of("http://[::1]:8080/").to_string(), "[::1]:8080");
    }

    fn cell(options: CoreOptions) -> Arc<ArcSwap<CoreOptions>> {
        Arc::new(ArcSwap::from_pointee(options))
    }

    #[tokio::test]
    async fn idle_connections_are_reused_newest_first_and_never_after_stray_bytes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = Upstream::new(cell(CoreOptions::default()), "127.0.0.1:1".parse().unwrap());
        let key = key_of(&format!("http://127.0.0.1:{port}/"));
        let mut peers = Vec::new();
        for n in [1, 2] {
            let stream = upstream.connect("127.0.0.1", port).await.unwrap();
            peers.push(listener.accept().await.unwrap().0);
            upstream.release(upstream.wrap(stream, key.clone(), server(n), None));
        }
        assert_eq!(upstream.connections().active(), 2);
        let newest = upstream.checkout(&key).expect("an idle connection");
        assert_eq!(newest.server.conn.id, Uuid([2; 16]));

        // The server writes on the other idle connection although nothing was asked: a late
        // response that must never reach the next flow.
        peers[0]
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            upstream.checkout(&key).is_none(),
            "the stray connection is discarded"
        );
        assert_eq!(upstream.connections().active(), 1, "and closed");

        // A connection the server closed is not reused either.
        upstream.release(newest);
        drop(peers.pop());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(upstream.checkout(&key).is_none());
    }

    #[tokio::test]
    async fn the_pool_keeps_at_most_upstream_idle_max_per_key() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let options = CoreOptions {
            upstream_idle_max: 2,
            ..CoreOptions::default()
        };
        let options = cell(options);
        let upstream = Upstream::new(Arc::clone(&options), "127.0.0.1:1".parse().unwrap());
        let key = key_of(&format!("http://127.0.0.1:{port}/"));
        let mut peers = Vec::new();
        for n in 1..=3 {
            let stream = upstream.connect("127.0.0.1", port).await.unwrap();
            peers.push(listener.accept().await.unwrap().0);
            upstream.release(upstream.wrap(stream, key.clone(), server(n), None));
        }
        assert_eq!(upstream.connections().active(), 2, "the oldest was closed");

        // Changed while the proxy runs: the next release keeps to the new number.
        options.store(Arc::new(CoreOptions {
            upstream_idle_max: 1,
            ..CoreOptions::default()
        }));
        let stream = upstream.connect("127.0.0.1", port).await.unwrap();
        peers.push(listener.accept().await.unwrap().0);
        upstream.release(upstream.wrap(stream, key.clone(), server(4), None));
        assert_eq!(upstream.connections().active(), 1);
    }

    #[tokio::test]
    async fn connecting_to_the_proxy_itself_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let own = listener.local_addr().unwrap();
        let upstream = Upstream::new(cell(CoreOptions::default()), own);
        let error = upstream.connect("127.0.0.1", own.port()).await.unwrap_err();
        assert!(matches!(error, UpstreamError::Loop { .. }), "{error}");
    }
}
