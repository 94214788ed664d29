//! The control endpoint (`--set control=...`): a local socket on which `interpose ctl` (or any
//! program speaking its JSON lines) calls commands while the proxy runs. Off by default.
//!
//! [`endpoint`] parses the option and binds the socket (a Unix socket of mode 0600, or a
//! loopback TCP port with a token file), [`protocol`] is the wire format, [`server`] answers
//! requests, [`client`] is `interpose ctl`.

pub mod client;
pub mod endpoint;
mod error;
pub mod protocol;
pub mod server;

pub use endpoint::{Control, Endpoint};
pub use error::ControlError;

/// The file in `confdir` holding the token a TCP endpoint's clients must present.
pub const TOKEN_FILE: &str = "control-token";
