//! What can go wrong setting up the control endpoint, naming the endpoint or file at fault.

use std::{io, path::PathBuf};

/// Why the control endpoint could not be set up.
#[derive(Debug)]
pub enum ControlError {
    /// The `control` value is neither a socket path nor `HOST:PORT`.
    Spec {
        /// The value as given.
        spec: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A TCP endpoint on an address other machines could reach.
    NotLoopback {
        /// The value as given.
        spec: String,
        /// The address that is not a loopback address.
        address: String,
    },
    /// Another proxy answers on this Unix socket.
    InUse {
        /// The socket's path.
        path: PathBuf,
    },
    /// Something other than a socket is at the path.
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The socket or port could not be bound.
    Bind {
        /// The endpoint, as `unix:PATH` or `tcp:HOST:PORT`.
        endpoint: String,
        /// The system's error.
        source: io::Error,
    },
    /// The token file could not be written.
    Token {
        /// The token file.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::Spec { spec, problem } => write!(f, "control: {spec:?}: {problem}"),
            ControlError::NotLoopback { spec, address } => write!(
                f,
                "control: {spec:?}: {address} is not a loopback address; the control endpoint \
                 listens on loopback only (127.0.0.1:PORT, [::1]:PORT, localhost:PORT) or on a \
                 Unix socket path"
            ),
            ControlError::InUse { path } => write!(
                f,
                "control: another proxy is listening on {} already",
                path.display()
            ),
            ControlError::NotASocket { path } => write!(
                f,
                "control: {} exists and is not a socket; not replacing it",
                path.display()
            ),
            ControlError::Bind { endpoint, source } => {
                write!(f, "control: cannot listen on {endpoint}: {source}")
            }
            ControlError::Token { path, source } => write!(
                f,
                "control: cannot write the token file {}: {source}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ControlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ControlError::Bind { source, .. } | ControlError::Token { source, .. } => Some(source),
            _ => None,
        }
    }
}
