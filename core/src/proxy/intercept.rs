//! HTTPS interception after CONNECT: the server's TLS first (mitmproxy's eager strategy,
//! offering the client's ALPN protocols), then the client's with a certificate for the name it
//! asked for, then HTTP/1 or HTTP/2 flows inside.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use abi_stable::std_types::{RArc, ROption};
use bytes::{Buf, Bytes, BytesMut};
use interpose_plugin_abi::{Client, Server, TlsData};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

use super::{
    client::{serve_http1, StopSignals},
    exchange::Route,
    flow::{record_tls, unconnected_server},
    http1::Http1Io,
    http2::serve_h2,
    messages::{Destination, FixedTarget},
    upstream::{server_alpn, PoolKey, ServerConn, H2, HTTP1},
    Shared,
};
use crate::{
    addons::TlsEvent,
    tls::{self, ClientHello, TlsDetails},
};

/// What the CONNECT handler hands over for interception.
pub struct Interception<S> {
    /// The client connection, its ClientHello still unread in the buffer.
    pub conn: Http1Io<S>,
    /// The TCP connection to the CONNECT target.
    pub server: Box<ServerConn>,
    /// The CONNECT target.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The client's ClientHello.
    pub hello: ClientHello,
}

/// Intercepts the TLS connection of a CONNECT tunnel and serves the HTTP/1 requests in it.
pub async fn serve_tls(
    shared: &Arc<Shared>,
    client: &RArc<Client>,
    interception: Interception<TcpStream>,
    signals: StopSignals,
) {
    let Interception {
        conn,
        mut server,
        host,
        port,
        hello,
    } = interception;
    let sni = hello.sni.clone();
    let server_name = sni.clone().unwrap_or_else(|| host.clone());
    // The server is offered what the client offered (h2 only if `http2`); whatever either
    // side chooses, the proxy translates. Clients may choose HTTP/2 (preferred when offered).
    let http2 = shared.options().http2;
    let alpn = server_alpn(&hello.alpn_protocols, http2, false);
    let client_alpn: Vec<Vec<u8>> = if http2 && hello.alpn_protocols.iter().any(|p| p == H2) {
        vec![H2.to_vec(), HTTP1.to_vec()]
    } else if hello.alpn_protocols.is_empty() {
        Vec::new()
    } else {
        vec![HTTP1.to_vec()]
    };

    let config = shared.tls.client_config(&alpn, true);
    tls_event(shared, TlsEvent::StartServer, client, &server.server, None);
    let mut server_seen = RArc::clone(&server.server);
    let upstream = match server.start_tls(config, &server_name).await {
        Ok(details) => {
            let mut with_tls = (*server.server).clone();
            record_tls(&mut with_tls.conn, &details);
            with_tls.alpn_offers = alpn.iter().map(|p| p.as_slice().into()).collect();
            server.server = RArc::new(with_tls);
            server_seen = RArc::clone(&server.server);
            tls_event(
                shared,
                TlsEvent::EstablishedServer,
                client,
                &server.server,
                None,
            );
            Some(server)
        }
        Err(e) => {
            // The client still gets its handshake; its requests then fail with this reason.
            tracing::info!("{e}");
            let message = e.to_string();
            tls_event(
                shared,
                TlsEvent::FailedServer,
                client,
                &server.server,
                Some(&message),
            );
            None
        }
    };

    let config = match shared
        .tls
        .server_config(sni.as_deref(), &host, &client_alpn)
    {
        Ok(config) => config,
        Err(e) => {
            tracing::warn!("no certificate for {server_name}: {e}");
            return;
        }
    };
    let hello_offers = &hello.alpn_protocols;
    let Some((stream, tls_client, details)) = accept_client(
        shared,
        client,
        conn,
        config,
        (sni.as_deref(), hello_offers),
        &server_seen,
    )
    .await
    else {
        return;
    };
    let mut tls_client = (*tls_client).clone();
    if let Ok(leaf) = shared.tls.store().certified_key(&server_name) {
        if let Some(cert) = leaf.cert.first() {
            tls_client.mitmcert = ROption::RSome(cert.as_ref().to_vec().into());
        }
    }
    let tls_client = RArc::new(tls_client);

    // Filed as the flows inside will look for it (see `FlowDriver::pool_key`).
    let preconnected = match upstream {
        Some(mut server) => {
            server.rekey(PoolKey {
                scheme: "https".into(),
                host: host.as_str().into(),
                port,
                sni: Some(server_name.as_str().into()),
                alpn: shared.server_alpn_key(&tls_client),
                via: shared.upstream_proxy().map(|p| p.authority.as_str().into()),
            });
            match Route::open(*server).await {
                Ok(route) => Some(route),
                Err(failure) => {
                    tracing::info!("{}", failure.message);
                    None
                }
            }
        }
        None => None,
    };
    let destination = Destination::Fixed(Arc::new(FixedTarget {
        scheme: "https",
        host,
        port,
        host_header: None,
    }));
    if details.alpn.as_deref() == Some(H2) {
        let Destination::Fixed(target) = destination else {
            unreachable!("interception serves a fixed destination")
        };
        serve_h2(Arc::clone(shared), tls_client, stream, target, preconnected).await;
        return;
    }
    let conn = Http1Io::new(stream, BytesMut::with_capacity(8 * 1024));
    // Interception does not nest: CONNECT inside the tunnel is refused there.
    let _ = serve_http1(
        shared,
        &tls_client,
        conn,
        destination,
        signals,
        preconnected,
    )
    .await;
}

/// Serves a reverse-mode client that speaks TLS (its ClientHello is in `conn`'s buffer): the
/// proxy completes the handshake with a certificate for the name the client asked for (else
/// the target's), then serves HTTP/1 or HTTP/2 inside, to the reverse target.
pub async fn serve_reverse_tls(
    shared: &Arc<Shared>,
    client: &RArc<Client>,
    conn: Http1Io<TcpStream>,
    hello: ClientHello,
    target: Arc<FixedTarget>,
    signals: StopSignals,
) {
    let sni = hello.sni.clone();
    let mut alpn = Vec::new();
    if shared.options().http2 && hello.alpn_protocols.iter().any(|p| p == H2) {
        alpn.push(H2.to_vec());
    }
    if !hello.alpn_protocols.is_empty() {
        alpn.push(HTTP1.to_vec());
    }
    let config = match shared
        .tls
        .server_config(sni.as_deref(), &target.host, &alpn)
    {
        Ok(config) => config,
        Err(e) => {
            tracing::warn!("no certificate for {}: {e}", target.host);
            return;
        }
    };
    // No server connection exists yet: the events name the reverse target.
    let mut server = unconnected_server(shared, &target.host, target.port);
    server.tls = target.scheme == "https";
    let Some((stream, tls_client, details)) = accept_client(
        shared,
        client,
        conn,
        config,
        (sni.as_deref(), &hello.alpn_protocols),
        &server,
    )
    .await
    else {
        return;
    };
    if details.alpn.as_deref() == Some(H2) {
        serve_h2(Arc::clone(shared), tls_client, stream, target, None).await;
        return;
    }
    let conn = Http1Io::new(stream, BytesMut::with_capacity(8 * 1024));
    let destination = Destination::Fixed(target);
    let _ = serve_http1(shared, &tls_client, conn, destination, signals, None).await;
}

/// The client's handshake over `conn` (its ClientHello, with `hello`'s SNI and ALPN offers,
/// still in the buffer), with the `tls_start_client` / `tls_established_client` /
/// `tls_failed_client` events: the TLS stream, the client with its TLS fields filled in, and
/// what was negotiated.
async fn accept_client(
    shared: &Shared,
    client: &RArc<Client>,
    conn: Http1Io<TcpStream>,
    config: Arc<rustls::ServerConfig>,
    hello: (Option<&str>, &[Vec<u8>]),
    server: &Server,
) -> Option<(
    tokio_rustls::server::TlsStream<Prefixed<TcpStream>>,
    RArc<Client>,
    TlsDetails,
)> {
    let Http1Io { io: tcp, buf, .. } = conn;
    tls_event(shared, TlsEvent::StartClient, client, server, None);
    let (sni, offers) = hello;
    let stream = match tls::accept(config, Prefixed::new(buf.freeze(), tcp), sni).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::info!("[{}] {e}", client.peername);
            let message = e.to_string();
            tls_event(
                shared,
                TlsEvent::FailedClient,
                client,
                server,
                Some(&message),
            );
            return None;
        }
    };
    let details = TlsDetails::of_client(&stream);
    let mut tls_client = (**client).clone();
    record_tls(&mut tls_client.conn, &details);
    tls_client.alpn_offers = offers.iter().map(|p| p.as_slice().into()).collect();
    let tls_client = RArc::new(tls_client);
    tls_event(
        shared,
        TlsEvent::EstablishedClient,
        &tls_client,
        server,
        None,
    );
    Some((stream, tls_client, details))
}

/// Fires a TLS handshake event, if any addon listens.
pub fn tls_event(
    shared: &Shared,
    event: TlsEvent,
    client: &Client,
    server: &Server,
    error: Option<&str>,
) {
    if !shared.addons.has_tls(event) {
        return;
    }
    let mut data = TlsData {
        client,
        server,
        is_client: event.is_client(),
        error: error.map(Into::into).into(),
    };
    // A panic is logged by the manager; the handshake goes on either way.
    let _ = shared.addons.tls(event, &mut data);
}

/// A stream that first yields bytes already read from it (the peeked ClientHello).
pub struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `inner`, with `prefix` read first.
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Prefixed { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn prefixed_streams_yield_the_prefix_first() {
        let (mut near, far) = tokio::io::duplex(64);
        let mut stream = Prefixed::new(Bytes::from_static(b"hello "), far);
        near.write_all(b"world").await.unwrap();
        drop(near);
        let mut all = String::new();
        stream.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "hello world");
    }
}
