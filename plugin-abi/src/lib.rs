//! The plugin ABI of Interpose: everything an addon author depends on.
//!
//! An Interpose plugin is a Rust `cdylib` that exports a list of *addons*. Each addon is a type
//! implementing [`Addon`]: one method per mitmproxy event (`request`, `response`, ...), each a
//! no-op unless you override it. The host loads the library, checks that it was built against a
//! compatible version of this crate (version number and type layout, through `abi_stable`), and
//! calls the events you implemented, concurrently from all of its worker threads.
//!
//! ```
//! use interpose_plugin_abi::prelude::*;
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! #[derive(Default)]
//! struct Counter {
//!     num: AtomicU64,
//! }
//!
//! #[addon]
//! impl Addon for Counter {
//!     fn request(&self, ctx: &Context, _flow: &mut HttpFlow) {
//!         let n = self.num.fetch_add(1, Ordering::Relaxed) + 1;
//!         info!(ctx, "We've seen {n} flows");
//!     }
//! }
//!
//! export_plugin!(addons = [Counter::default()]);
//! # fn main() {}
//! ```
//!
//! A plugin made only of free functions (mitmproxy's "abbreviated" style):
//!
//! ```
//! use interpose_plugin_abi::prelude::*;
//!
//! fn request(_ctx: &Context, flow: &mut HttpFlow) {
//!     flow.request.headers.insert("myheader", "value");
//! }
//!
//! export_plugin!(functions = [request]);
//! # fn main() {}
//! ```
//!
//! The flow types ([`HttpFlow`], [`Request`], [`Response`], [`Headers`], [`Body`], [`Client`],
//! [`Server`], and the TLS events' [`ClientHelloData`] and [`TlsData`]) are `#[repr(C)]` and
//! shared with the host as they are: no conversion happens between addons. Authors use them
//! through std types: plain data is a public field (`flow.request.headers`,
//! `response.status_code`, `request.port`), text and optional parts are methods returning
//! `&str` and `Option` (`request.host()`, `flow.response()`, `client.sni()`) with setters
//! taking `String`/`&str` (`set_host`, `set_response`). The fields behind those methods have
//! `abi_stable` types and are hidden from these docs. The function pointers, erased pointers
//! and the entry symbol live in the fenced [`ffi`] module, which authors never need to touch.
#![deny(missing_docs)]

// What `#[addon]` expands to names this crate by its path; the crate's own tests use it too.
#[cfg(test)]
extern crate self as interpose_plugin_abi;

pub mod addon;
pub mod body;
pub mod capture;
pub mod commands;
pub mod connection;
pub mod context;
pub mod cookies;
pub mod encoding;
mod events;
mod export;
pub mod ffi;
pub mod flow;
pub mod forms;
pub mod headers;
mod message;
pub mod multidict;
pub mod options;
pub mod pause;
pub mod state;
pub mod stream;
pub mod testing;
pub mod time;
pub mod tls;

#[doc(hidden)]
pub use abi_stable;
pub use addon::{Addon, Event, EventSet};
pub use body::Body;
pub use capture::{CaptureFormat, Filter};
pub use commands::{CommandArgs, CommandValue, ParamKind};
pub use connection::{
    Address, Client, Connection, HostPort, Server, ServerConnectionHookData, SocketAddress,
    TransportProtocol,
};
pub use context::{Context, Level};
pub use cookies::CookieAttrs;
pub use encoding::ContentError;
pub use flow::{
    ErrorKind, FlowError, HttpFlow, HttpVersion, Metadata, ReplaySide, Request, Response, Uuid,
    WebSocketData, WebSocketMessage, WebSocketMessageType,
};
pub use forms::MultipartError;
pub use headers::Headers;
pub use interpose_plugin_abi_macros::addon;
pub use multidict::MultiDict;
pub use options::{ConfigureData, OptionKind, OptionType, OptionValue, Size};
pub use pause::{Paused, Resolution};
pub use stream::Stream;
pub use time::now;
pub use tls::{ClientHelloData, TlsData};

/// The version of this crate, which is the version of the plugin ABI.
///
/// Which plugins load: a plugin built against version P of this crate loads into a host
/// implementing version H when P and H have the same major version and, for `0.x`, the same
/// minor version; the rest may differ either way (an older or newer patch release, and from
/// 1.0 on an older or newer minor release, loads). The layout of every type the plugin
/// exchanges with the host is then checked as well.
///
/// Any change to a type that crosses the boundary bumps the minor version (the major version
/// from 1.0 on), events and host functions appended to the prefix tables included: abi_stable's
/// layout check refuses a plugin whose tables are shorter than the host's. A patch release
/// changes no such type (new methods, fixes).
///
/// ```
/// use interpose_plugin_abi::ABI_VERSION;
///
/// let mut parts = ABI_VERSION.split('.').map(|part| part.parse::<u64>().unwrap());
/// let (major, minor) = (parts.next().unwrap(), parts.next().unwrap());
/// assert!(major >= 1 || minor >= 4); // 0.4.0 or later
/// ```
pub const ABI_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What an addon author usually needs: `use interpose_plugin_abi::prelude::*;`.
///
/// ```
/// use interpose_plugin_abi::{prelude::*, testing};
///
/// fn response(ctx: &Context, flow: &mut HttpFlow) {
///     if let Some(response) = flow.response_mut() {
///         response.headers.insert("x-seen-by", "interpose");
///         debug!(ctx, "tagged {}", flow.request.url());
///     }
/// }
///
/// let mut flow = testing::flow_with_response();
/// response(testing::TestContext::new().ctx(), &mut flow);
/// assert_eq!(flow.response().unwrap().headers.get("x-seen-by"), Some("interpose"));
/// ```
pub mod prelude {
    pub use crate::{
        addon, debug, error, export_plugin, info, warn, Addon, Body, Client, ClientHelloData,
        CommandArgs, CommandValue, ConfigureData, ContentError, Context, CookieAttrs, ErrorKind,
        Headers, HttpFlow, Level, MultiDict, ParamKind, Paused, Request, Resolution, Response,
        Server, ServerConnectionHookData, Size, Stream, TlsData,
    };
}
