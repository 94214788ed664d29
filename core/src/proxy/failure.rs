//! Typed flow failures and the one place that decides how the proxy answers each kind.

use std::fmt;

use http::StatusCode;
use interpose_plugin_abi::{ErrorKind, FlowError, Response};

/// Why a flow could not complete: a kind (who is to blame) and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Where the failure came from.
    pub kind: ErrorKind,
    /// What went wrong.
    pub message: String,
    /// Whether the client is to blame for a timeout (408) rather than the server (504).
    pub client_timeout: bool,
}

/// The message of a flow cut short by shutdown.
pub const SHUTDOWN_MESSAGE: &str = "Proxy shutting down.";
/// The message of a flow whose client went away (mitmproxy's wording).
pub const CLIENT_GONE_MESSAGE: &str = "Client disconnected.";

impl Failure {
    /// A failure of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            client_timeout: false,
        }
    }

    /// The client sent something invalid.
    pub fn client(message: impl Into<String>) -> Self {
        Failure::new(ErrorKind::Client, message)
    }

    /// The client stopped sending in the middle of a request.
    pub fn client_timeout(message: impl Into<String>) -> Self {
        Failure {
            client_timeout: true,
            ..Failure::new(ErrorKind::Timeout, message)
        }
    }

    /// The client went away.
    pub fn client_gone() -> Self {
        Failure::new(ErrorKind::Client, CLIENT_GONE_MESSAGE)
    }

    /// The server failed.
    pub fn server(message: impl Into<String>) -> Self {
        Failure::new(ErrorKind::Server, message)
    }

    /// The proxy itself failed (or an addon made the flow unsendable).
    pub fn proxy(message: impl Into<String>) -> Self {
        Failure::new(ErrorKind::Proxy, message)
    }

    /// The flow was killed.
    pub fn killed() -> Self {
        Failure::new(ErrorKind::Killed, FlowError::KILLED_MESSAGE)
    }

    /// The status the proxy answers with, or `None` when the client connection is closed
    /// without an answer. `request_side`: the failure happened before the request was sent
    /// on (it decides 413 against 502 for a body over the limit).
    pub fn status(&self, request_side: bool) -> Option<StatusCode> {
        match self.kind {
            ErrorKind::Client => Some(StatusCode::BAD_REQUEST),
            ErrorKind::TooLarge if request_side => Some(StatusCode::PAYLOAD_TOO_LARGE),
            ErrorKind::Server | ErrorKind::Addon | ErrorKind::Proxy | ErrorKind::TooLarge => {
                Some(StatusCode::BAD_GATEWAY)
            }
            ErrorKind::Timeout if self.client_timeout => Some(StatusCode::REQUEST_TIMEOUT),
            ErrorKind::Timeout => Some(StatusCode::GATEWAY_TIMEOUT),
            ErrorKind::Killed | ErrorKind::Shutdown => None,
        }
    }

    /// The flow error addons see.
    pub fn to_flow_error(&self) -> FlowError {
        FlowError::new(self.kind, self.message.as_str())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The response the proxy writes itself: `status`, a one-line text body
/// `<code> <reason>: <message>`.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    let text = format!(
        "{} {}: {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        message
    );
    Response::make(
        status.as_u16(),
        text,
        &[("content-type", "text/plain; charset=utf-8")],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_come_from_the_kind() {
        let cases = [
            (ErrorKind::Client, true, Some(400)),
            (ErrorKind::TooLarge, true, Some(413)),
            (ErrorKind::TooLarge, false, Some(502)),
            (ErrorKind::Server, false, Some(502)),
            (ErrorKind::Addon, true, Some(502)),
            (ErrorKind::Timeout, false, Some(504)),
            (ErrorKind::Killed, true, None),
            (ErrorKind::Shutdown, false, None),
        ];
        for (kind, request_side, status) in cases {
            let got = Failure::new(kind, "x").status(request_side);
            assert_eq!(got.map(|s| s.as_u16()), status, "{kind:?}");
        }
        assert_eq!(
            Failure::client_timeout("slow").status(true),
            Some(StatusCode::REQUEST_TIMEOUT)
        );
        let response = error_response(StatusCode::BAD_GATEWAY, "no route");
        assert_eq!(&response.content[..], b"502 Bad Gateway: no route\n");
    }
}
