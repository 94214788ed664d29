//! The [`Addon`] trait authors implement, and the names of the events it can handle.

use crate::{
    connection::{Client, ServerConnectionHookData},
    context::Context,
    flow::HttpFlow,
};

macro_rules! events {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// An event the host can send to an addon, named as mitmproxy names it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Event {
            $($(#[$doc])* $variant,)*
        }

        impl Event {
            /// Every event, in the order of the event table.
            pub const ALL: &'static [Event] = &[$(Event::$variant,)*];

            /// The event's name (`request`, `client_connected`, ...).
            pub const fn name(self) -> &'static str {
                match self {
                    $(Event::$variant => $name,)*
                }
            }

            /// The event called `name`, if there is one.
            pub const fn from_name(name: &str) -> Option<Event> {
                $(if const_str_eq(name, $name) {
                    return Some(Event::$variant);
                })*
                None
            }
        }
    };
}

events! {
    /// The addon was loaded (mitmproxy's `load`).
    Load = "load",
    /// The proxy is up and every addon is loaded.
    Running = "running",
    /// The proxy is shutting down; the last event an addon sees.
    Done = "done",
    /// A client connected; setting `client.error` refuses it.
    ClientConnected = "client_connected",
    /// A client connection closed.
    ClientDisconnected = "client_disconnected",
    /// The proxy is about to connect to a server; setting `server.error` aborts.
    ServerConnect = "server_connect",
    /// The proxy connected to a server.
    ServerConnected = "server_connected",
    /// A server connection closed.
    ServerDisconnected = "server_disconnected",
    /// Connecting to a server failed (instead of `server_connected`).
    ServerConnectError = "server_connect_error",
    /// The request head was read; the body is still empty.
    RequestHeaders = "requestheaders",
    /// The whole request was read.
    Request = "request",
    /// The response head was read; the body is still empty.
    ResponseHeaders = "responseheaders",
    /// The whole response was read.
    Response = "response",
    /// The flow failed (instead of `response`).
    Error = "error",
    /// A CONNECT request was received.
    HttpConnect = "http_connect",
}

const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// A set of events, one bit each: which events an addon implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventSet(u64);

impl EventSet {
    /// No event.
    pub const NONE: EventSet = EventSet(0);
    /// Every event (what an addon without `#[addon]` declares).
    pub const ALL: EventSet = EventSet(u64::MAX);

    /// This set plus `event`.
    pub const fn with(self, event: Event) -> EventSet {
        EventSet(self.0 | 1 << event as u8)
    }

    /// This set plus the event called `name`; names that are not events are ignored (they are
    /// the addon's other methods).
    pub const fn with_name(self, name: &str) -> EventSet {
        match Event::from_name(name) {
            Some(event) => self.with(event),
            None => self,
        }
    }

    /// Whether `event` is in the set.
    pub const fn contains(self, event: Event) -> bool {
        self.0 & (1 << event as u8) != 0
    }
}

/// An addon: one object reacting to the proxy's events, like a mitmproxy addon class.
///
/// Every event method does nothing unless you override it. Put `#[addon]` on the `impl`
/// block so that the host only calls the events you implemented (without it, it calls all of
/// them, which is correct but slower).
///
/// The host calls an addon from all of its worker threads at once, for different flows, so
/// addons are `Send + Sync`: keep state in atomics or locks. Within one flow, events come in
/// order and addons are called in load order. Events run on the proxy's threads: a slow event
/// handler delays its own flow, so hand long work to a thread of your own.
///
/// A panic in an event is caught at the plugin boundary: the host logs it with the addon's
/// name and the event, and goes on with the next addon.
pub trait Addon: Send + Sync + 'static {
    /// The events this addon implements; written by `#[addon]`.
    #[doc(hidden)]
    const EVENTS: EventSet = EventSet::ALL;

    /// The name the host uses in logs: by default the type's name in lower case.
    fn name(&self) -> String {
        let full = std::any::type_name::<Self>();
        let base = full.split('<').next().unwrap_or(full);
        base.rsplit("::").next().unwrap_or(base).to_lowercase()
    }

    /// The addon was loaded (mitmproxy's `load`).
    fn load(&self, ctx: &Context) {
        let _ = ctx;
    }

    /// The proxy is up and running: every addon is loaded.
    fn running(&self, ctx: &Context) {
        let _ = ctx;
    }

    /// The proxy is shutting down; this is the last event the addon sees.
    fn done(&self, ctx: &Context) {
        let _ = ctx;
    }

    /// A client connected. Calling `client.kill(..)` refuses the connection.
    fn client_connected(&self, ctx: &Context, client: &mut Client) {
        let _ = (ctx, client);
    }

    /// A client connection closed.
    fn client_disconnected(&self, ctx: &Context, client: &Client) {
        let _ = (ctx, client);
    }

    /// The proxy is about to connect to a server. Calling `data.server.kill(..)` aborts the
    /// connection and fails the flow.
    fn server_connect(&self, ctx: &Context, data: &mut ServerConnectionHookData<'_>) {
        let _ = (ctx, data);
    }

    /// The proxy connected to a server.
    fn server_connected(&self, ctx: &Context, data: &ServerConnectionHookData<'_>) {
        let _ = (ctx, data);
    }

    /// A server connection closed.
    fn server_disconnected(&self, ctx: &Context, data: &ServerConnectionHookData<'_>) {
        let _ = (ctx, data);
    }

    /// Connecting to a server failed; `data.server.error` says why.
    fn server_connect_error(&self, ctx: &Context, data: &ServerConnectionHookData<'_>) {
        let _ = (ctx, data);
    }

    /// The request head was read; the body is still empty. Setting `flow.response` answers
    /// without contacting the server.
    fn requestheaders(&self, ctx: &Context, flow: &mut HttpFlow) {
        let _ = (ctx, flow);
    }

    /// The whole request was read. Setting `flow.response` answers without contacting the
    /// server; changing `flow.request.host`/`port`/`scheme` sends it elsewhere.
    fn request(&self, ctx: &Context, flow: &mut HttpFlow) {
        let _ = (ctx, flow);
    }

    /// The response head was read; the body is still empty.
    fn responseheaders(&self, ctx: &Context, flow: &mut HttpFlow) {
        let _ = (ctx, flow);
    }

    /// The whole response was read; changes are sent to the client.
    fn response(&self, ctx: &Context, flow: &mut HttpFlow) {
        let _ = (ctx, flow);
    }

    /// The flow failed (server unreachable, protocol error, killed). Every flow gets either
    /// `response` or `error`, never both.
    fn error(&self, ctx: &Context, flow: &mut HttpFlow) {
        let _ = (ctx, flow);
    }

    /// A CONNECT request was received.
    fn http_connect(&self, ctx: &Context, flow: &mut HttpFlow) {
        let _ = (ctx, flow);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for event in Event::ALL {
            assert_eq!(Event::from_name(event.name()), Some(*event));
        }
        assert_eq!(Event::from_name("name"), None);
        assert!(Event::ALL.len() < 64);
    }

    #[test]
    fn event_set() {
        let set = EventSet::NONE.with_name("request").with_name("name");
        assert!(set.contains(Event::Request));
        assert!(!set.contains(Event::Response));
        assert!(EventSet::ALL.contains(Event::Error));
    }
}
