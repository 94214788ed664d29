//! Serving one HTTP/1 client connection: each request becomes a flow that runs through the
//! addons (`requestheaders` → body → `request` → server → `responseheaders` → body →
//! `response`, or `error`).

use std::{fmt, net::SocketAddr, sync::Arc};

use abi_stable::std_types::{RArc, ROption, RStr};
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use interpose_plugin_abi::{now, Client, Connection, ErrorKind, FlowError, HttpFlow};
use tokio::{net::TcpStream, sync::watch};

use super::{
    messages::{
        request_from_parts, request_to_hyper, response_from_parts, response_to_hyper, ProxyBody,
        Refusal,
    },
    tracker::TrackerGuard,
    Shared,
};
use crate::{
    addons::{ClientEvent, HttpEvent},
    flow::{body_from_bytes, headers_from_hyper},
};

/// Serves a client connection until it closes or the proxy shuts down.
pub async fn serve_client(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
    guard: TrackerGuard,
) {
    let mut client = Client {
        conn: Connection::new(shared.ids.next_id()),
        mitmcert: ROption::RNone,
        proxy_mode: RStr::from_str(shared.mode_spec),
    };
    client.peername = peer.into();
    if let Ok(local) = stream.local_addr() {
        client.sockname = local.into();
    }
    client.timestamp_start = ROption::RSome(now());
    tracing::debug!("[{peer}] client connect");
    let _ = shared.addons.client(ClientEvent::Connected, &mut client);
    if let ROption::RSome(reason) = &client.error {
        tracing::info!("[{peer}] client refused by an addon: {reason}");
        client.timestamp_end = ROption::RSome(now());
        let _ = shared.addons.client(ClientEvent::Disconnected, &mut client);
        return;
    }

    let client = RArc::new(client);
    let service = {
        let (shared, client) = (Arc::clone(&shared), client.clone());
        service_fn(move |request| handle(Arc::clone(&shared), client.clone(), request))
    };
    let result = {
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => result,
            _ = stop.changed() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        }
        // The connection, and with it a flow still in flight, is dropped here: that flow's
        // `error` event comes before `client_disconnected`.
    };
    if let Err(e) = result {
        tracing::debug!("[{peer}] client connection ended: {e}");
    }
    tracing::debug!("[{peer}] client disconnect");
    if shared.addons.has_client(ClientEvent::Disconnected) {
        let mut client = (*client).clone();
        client.timestamp_end = ROption::RSome(now());
        let _ = shared.addons.client(ClientEvent::Disconnected, &mut client);
    }
    drop(guard);
}

/// A flow dropped on purpose (killed by an addon, or its client is gone): hyper closes the
/// client connection without a response.
#[derive(Debug)]
pub struct FlowAborted;

impl fmt::Display for FlowAborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("flow killed")
    }
}

impl std::error::Error for FlowAborted {}

async fn handle(
    shared: Arc<Shared>,
    client: RArc<Client>,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<ProxyBody>, FlowAborted> {
    let timestamp_start = now();
    let (parts, body) = request.into_parts();
    let request = match request_from_parts(&shared.mode, &parts, timestamp_start) {
        Ok(request) => request,
        Err(refusal) => return Ok(refusal.into_response()),
    };
    drop(parts);
    let mut live = LiveFlow {
        shared: &shared,
        flow: HttpFlow::new(shared.ids.next_id(), client, request),
        finished: false,
    };
    live.run(body).await
}

/// A flow in progress. If it is dropped before it finished (the client went away), the
/// addons still get its `error` event.
struct LiveFlow<'a> {
    shared: &'a Shared,
    flow: HttpFlow,
    /// Whether `response` or `error` has fired.
    finished: bool,
}

impl LiveFlow<'_> {
    async fn run(&mut self, body: Incoming) -> Result<hyper::Response<ProxyBody>, FlowAborted> {
        self.event(HttpEvent::RequestHeaders)?;
        match body.collect().await {
            Ok(collected) => {
                let request = &mut self.flow.request;
                if let Some(trailers) = collected.trailers() {
                    request.trailers = ROption::RSome(headers_from_hyper(trailers));
                }
                request.content = body_from_bytes(collected.to_bytes());
                request.timestamp_end = ROption::RSome(now());
            }
            Err(e) => {
                self.fail(
                    ErrorKind::Client,
                    format!("Client disconnected while sending the request: {e}"),
                );
                return Err(FlowAborted);
            }
        }
        self.event(HttpEvent::Request)?;

        if self.flow.response.is_none() {
            if let Err(refusal) = self.forward().await? {
                return Ok(self.refuse(refusal));
            }
        } else {
            // An addon answered: there is no server exchange, but addons still see the
            // response's events.
            self.event(HttpEvent::ResponseHeaders)?;
        }

        let _ = self.shared.addons.http(HttpEvent::Response, &mut self.flow);
        self.finished = true;
        if self.flow.killed() {
            return Err(FlowAborted);
        }
        let response = match std::mem::replace(&mut self.flow.response, ROption::RNone) {
            ROption::RSome(response) => response,
            ROption::RNone => {
                return Ok(Refusal::new(
                    StatusCode::BAD_GATEWAY,
                    "an addon removed the response in its `response` event",
                )
                .into_response())
            }
        };
        Ok(response_to_hyper(response, &self.flow.request.method)
            .unwrap_or_else(Refusal::into_response))
    }

    /// Sends the request to its server and reads the response into the flow. The outer
    /// error aborts the flow; the inner one is answered with an error response.
    async fn forward(&mut self) -> Result<Result<(), Refusal>, FlowAborted> {
        let outgoing = match request_to_hyper(&self.flow.request) {
            Ok(outgoing) => outgoing,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let request = &self.flow.request;
        let sent = self
            .shared
            .upstream
            .send(
                &self.flow.client_conn,
                &request.scheme,
                &request.host,
                request.port,
                outgoing,
            )
            .await;
        let (response, lease) = match sent {
            Ok(sent) => sent,
            Err(e) => return Ok(Err(Refusal::new(StatusCode::BAD_GATEWAY, e.to_string()))),
        };
        self.flow.server_conn = ROption::RSome(lease.server().clone());
        let (parts, body) = response.into_parts();
        self.flow.response = ROption::RSome(response_from_parts(&parts, now()));
        drop(parts);
        self.event(HttpEvent::ResponseHeaders)?;

        let collected = match body.collect().await {
            Ok(collected) => collected,
            Err(e) => {
                let server = self.flow.request.host.clone();
                return Ok(Err(Refusal::new(
                    StatusCode::BAD_GATEWAY,
                    format!("server {server} failed while sending the response body: {e}"),
                )));
            }
        };
        self.shared.upstream.release(lease);
        if let ROption::RSome(response) = &mut self.flow.response {
            if let Some(trailers) = collected.trailers() {
                response.trailers = ROption::RSome(headers_from_hyper(trailers));
            }
            response.content = body_from_bytes(collected.to_bytes());
            response.timestamp_end = ROption::RSome(now());
        }
        Ok(Ok(()))
    }

    /// Runs an event before `response`; a flow killed there gets `error` and is dropped.
    fn event(&mut self, event: HttpEvent) -> Result<(), FlowAborted> {
        let _ = self.shared.addons.http(event, &mut self.flow);
        if self.flow.killed() {
            let _ = self.shared.addons.http(HttpEvent::Error, &mut self.flow);
            self.finished = true;
            return Err(FlowAborted);
        }
        Ok(())
    }

    /// Records `message` as the flow's error and runs the `error` event.
    fn fail(&mut self, kind: ErrorKind, message: String) {
        self.flow.error = ROption::RSome(FlowError::new(kind, message));
        self.flow.live = false;
        let _ = self.shared.addons.http(HttpEvent::Error, &mut self.flow);
        self.finished = true;
    }

    /// Fails the flow with the refusal's message and answers the client with it.
    fn refuse(&mut self, refusal: Refusal) -> hyper::Response<ProxyBody> {
        tracing::debug!(
            "{} {}: {}",
            self.flow.request.method,
            self.flow.request.url(),
            refusal.message
        );
        self.fail(ErrorKind::Server, refusal.message.clone());
        refusal.into_response()
    }
}

impl Drop for LiveFlow<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.fail(ErrorKind::Client, "Client disconnected.".to_string());
        }
    }
}
