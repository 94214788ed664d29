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
//! shared with the host as they are: no conversion happens between addons. The function
//! pointers, erased pointers and the entry symbol live in the fenced [`ffi`] module, which
//! authors never need to touch.
#![deny(missing_docs)]

// What `#[addon]` expands to names this crate by its path; the crate's own tests use it too.
#[cfg(test)]
extern crate self as interpose_plugin_abi;

pub mod addon;
pub mod body;
pub mod capture;
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
pub mod stream;
pub mod testing;
pub mod time;
pub mod tls;

#[doc(hidden)]
pub use abi_stable;
pub use addon::{Addon, Event, EventSet};
pub use body::Body;
pub use capture::{CaptureFormat, Filter};
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
pub use stream::Stream;
pub use time::now;
pub use tls::{ClientHelloData, TlsData};

/// The version of this crate, which is the version of the plugin ABI.
///
/// A plugin is loaded when its major version (for `0.x`: its minor version) matches the host's
/// and the layout of every type it exchanges with the host is compatible. Additions that keep
/// old plugins working (new events appended to the event table) bump the patch version;
/// anything else bumps the minor version.
pub const ABI_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What an addon author usually needs: `use interpose_plugin_abi::prelude::*;`.
///
/// Optional fields of the flow types are `abi_stable`'s `ROption` (`RSome(x)` / `RNone`;
/// `.into_option()` and `Option::into()` convert), and strings are `RString`, so both come
/// with the prelude.
pub mod prelude {
    pub use crate::{
        addon, debug, error, export_plugin, info, warn, Addon, Body, Client, ClientHelloData,
        ContentError, Context, CookieAttrs, ErrorKind, Headers, HttpFlow, Level, MultiDict,
        Request, Response, Server, ServerConnectionHookData, Stream, TlsData,
    };
    pub use abi_stable::std_types::{
        ROption::{self, RNone, RSome},
        RString,
    };
}
