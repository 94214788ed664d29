//! Answering the control endpoint: every connection may send any number of request lines;
//! each command runs on the blocking pool (an addon's command may block) and its response
//! goes back in order. Malformed input gets an error response, never a crash. At most
//! [`MAX_CONNECTIONS`] connections are served at once (more are told so and closed), and a
//! connection that sends nothing for [`IDLE_TIMEOUT`] is closed.

use std::{sync::Arc, time::Duration};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::{
    endpoint::Listener,
    protocol::{response_line, token_matches, Request, Response, MAX_LINE},
};
use crate::commands;

/// Connections served at once; more are refused with an error line.
pub const MAX_CONNECTIONS: usize = 32;
/// How long a connection may wait between two requests before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts serving one accepted connection, or refuses it when `MAX_CONNECTIONS` are open.
fn admit<S>(permits: &Arc<Semaphore>, stream: S, token: Option<Arc<str>>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match Arc::clone(permits).try_acquire_owned() {
        Ok(permit) => {
            tokio::spawn(connection(stream, token, permit));
        }
        Err(_) => {
            tokio::spawn(async move {
                let mut stream = stream;
                let busy = Err(format!(
                    "too many control connections ({MAX_CONNECTIONS} open); try again"
                ));
                let _ = stream.write_all(response_line(&busy).as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    }
}

/// Serves `listener` until the runtime stops. Call inside the proxy's runtime.
pub async fn serve(listener: Listener) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    match listener {
        #[cfg(unix)]
        Listener::Unix(listener) => {
            let listener = match listener
                .set_nonblocking(true)
                .and_then(|()| tokio::net::UnixListener::from_std(listener))
            {
                Ok(listener) => listener,
                Err(e) => return tracing::error!("control endpoint: {e}"),
            };
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => admit(&permits, stream, None),
                    Err(e) => accept_failed(e).await,
                }
            }
        }
        Listener::Tcp(listener, token) => {
            let listener = match listener
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(listener))
            {
                Ok(listener) => listener,
                Err(e) => return tracing::error!("control endpoint: {e}"),
            };
            let token: Arc<str> = token.into();
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => admit(&permits, stream, Some(Arc::clone(&token))),
                    Err(e) => accept_failed(e).await,
                }
            }
        }
    }
}

/// A failed accept (out of file descriptors, say): logged, then a pause before the next.
async fn accept_failed(error: std::io::Error) {
    tracing::warn!("control endpoint: accept failed: {error}");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
}

/// Answers one connection's requests until it closes (or idles for `IDLE_TIMEOUT`), holding
/// one of the connection permits. With a `token`, every request must carry it; a request
/// without it (or with a wrong one) is answered and the connection closed.
async fn connection(
    stream: impl AsyncRead + AsyncWrite + Unpin,
    token: Option<Arc<str>>,
    _permit: OwnedSemaphorePermit,
) {
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = (MAX_LINE + 1) as u64;
        let mut limited = (&mut reader).take(limit);
        let read = limited.read_until(b'\n', &mut line);
        match tokio::time::timeout(IDLE_TIMEOUT, read).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(_)) => {}
        }
        if line.len() > MAX_LINE {
            let error = Err(format!("request longer than {MAX_LINE} bytes"));
            let _ = write.write_all(response_line(&error).as_bytes()).await;
            return;
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let (response, close) = match Request::parse(text) {
            Err(why) => (Err(why), false),
            Ok(request) => match &token {
                Some(token) if !token_matches(request.token.as_deref(), token) => (
                    Err(
                        "missing or wrong token (see control-token in the proxy's confdir)"
                            .to_string(),
                    ),
                    true,
                ),
                _ => (run(request).await, false),
            },
        };
        if write
            .write_all(response_line(&response).as_bytes())
            .await
            .is_err()
            || close
        {
            return;
        }
    }
}

/// Runs a request's command on the blocking pool.
async fn run(request: Request) -> Response {
    let Request { command, args, .. } = request;
    let name = command.clone();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        commands::call(&command, &args)
    })
    .await
    .unwrap_or_else(|_| Err(format!("command {name} panicked")))
}
