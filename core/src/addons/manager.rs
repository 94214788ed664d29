//! The addon manager: every addon in call order, and per event the list of addons that
//! implement it, so that dispatch is a loop over plain function pointers.

use std::fmt;

use abi_stable::std_types::RErr;
use interpose_plugin_abi::{
    ffi::{AddonPtr, ClientFn, EventStatus, HttpFn, LifecycleFn, RawAddon, ServerFn},
    Client, Context, Event, HttpFlow, ServerConnectionHookData,
};

use super::host::new_context;

/// Where an addon came from, for logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddonInfo {
    /// The addon's name.
    pub name: String,
    /// The plugin that provided it (crate name), or `builtin: <name>` for built-ins.
    pub plugin: String,
}

/// An addon panicked in an event (reported when `addon_errors=fail`).
#[derive(Debug, Clone)]
pub struct AddonPanic {
    /// The addon's name.
    pub addon: String,
    /// Its plugin.
    pub plugin: String,
    /// The event.
    pub event: Event,
    /// The panic message.
    pub message: String,
}

impl fmt::Display for AddonPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "addon '{}' ({}) panicked in {}: {}",
            self.addon,
            self.plugin,
            self.event.name(),
            self.message
        )
    }
}

/// Events without a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifecycleEvent {
    /// `load`
    Load,
    /// `running`
    Running,
    /// `done`
    Done,
}

/// Events about a client connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// `client_connected`
    Connected,
    /// `client_disconnected`
    Disconnected,
}

/// Events about a server connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// `server_connect`
    Connect,
    /// `server_connected`
    Connected,
    /// `server_disconnected`
    Disconnected,
    /// `server_connect_error`
    ConnectError,
}

/// Events about an HTTP flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpEvent {
    /// `requestheaders`
    RequestHeaders,
    /// `request`
    Request,
    /// `responseheaders`
    ResponseHeaders,
    /// `response`
    Response,
    /// `error`
    Error,
    /// `http_connect`
    HttpConnect,
}

macro_rules! event_names {
    ($($ty:ident { $($variant:ident => $event:ident),* })*) => {$(
        impl $ty {
            /// The plugin ABI's name for this event.
            pub fn event(self) -> Event {
                match self {
                    $($ty::$variant => Event::$event,)*
                }
            }
        }
    )*};
}

event_names! {
    LifecycleEvent { Load => Load, Running => Running, Done => Done }
    ClientEvent { Connected => ClientConnected, Disconnected => ClientDisconnected }
    ServerEvent {
        Connect => ServerConnect,
        Connected => ServerConnected,
        Disconnected => ServerDisconnected,
        ConnectError => ServerConnectError
    }
    HttpEvent {
        RequestHeaders => RequestHeaders,
        Request => Request,
        ResponseHeaders => ResponseHeaders,
        Response => Response,
        Error => Error,
        HttpConnect => HttpConnect
    }
}

/// One addon's function for one event, with what it is called with.
#[derive(Clone, Copy)]
struct Handler<F> {
    call: F,
    state: AddonPtr,
    ctx: &'static Context,
    addon: u32,
}

/// The handlers of one event, in addon order.
struct Handlers<F>(Vec<Handler<F>>);

impl<F> Default for Handlers<F> {
    fn default() -> Self {
        Handlers(Vec::new())
    }
}

/// All loaded addons and, per event, the ones that implement it.
pub struct AddonManager {
    addons: Vec<AddonInfo>,
    lifecycle: [Handlers<LifecycleFn>; 3],
    client: [Handlers<ClientFn>; 2],
    server: [Handlers<ServerFn>; 4],
    http: [Handlers<HttpFn>; 6],
}

// SAFETY: the only non-thread-safe parts are the erased addon pointers; they point to values
// of types implementing `Addon: Send + Sync`, and event functions only take `&` to them.
unsafe impl Send for AddonManager {}
// SAFETY: as for `Send`; the manager itself is immutable once built.
unsafe impl Sync for AddonManager {}

impl AddonManager {
    /// Builds the manager from addons in call order, each with the name of its plugin.
    pub fn new(addons: impl IntoIterator<Item = (String, RawAddon)>) -> Self {
        let mut manager = AddonManager {
            addons: Vec::new(),
            lifecycle: Default::default(),
            client: Default::default(),
            server: Default::default(),
            http: Default::default(),
        };
        for (plugin, raw) in addons {
            manager.add(plugin, raw);
        }
        manager
    }

    fn add(&mut self, plugin: String, raw: RawAddon) {
        let index = u32::try_from(self.addons.len()).expect("fewer than 2^32 addons");
        let name = raw.name.to_string();
        let ctx = new_context(&name);
        let table = raw.events;
        let state = raw.state;
        macro_rules! register {
            ($($list:ident[$slot:expr] <- $field:ident),* $(,)?) => {$(
                if let Some(call) = table.$field() {
                    self.$list[$slot as usize].0.push(Handler { call, state, ctx, addon: index });
                }
            )*};
        }
        register! {
            lifecycle[LifecycleEvent::Load] <- load,
            lifecycle[LifecycleEvent::Running] <- running,
            lifecycle[LifecycleEvent::Done] <- done,
            client[ClientEvent::Connected] <- client_connected,
            client[ClientEvent::Disconnected] <- client_disconnected,
            server[ServerEvent::Connect] <- server_connect,
            server[ServerEvent::Connected] <- server_connected,
            server[ServerEvent::Disconnected] <- server_disconnected,
            server[ServerEvent::ConnectError] <- server_connect_error,
            http[HttpEvent::RequestHeaders] <- requestheaders,
            http[HttpEvent::Request] <- request,
            http[HttpEvent::ResponseHeaders] <- responseheaders,
            http[HttpEvent::Response] <- response,
            http[HttpEvent::Error] <- error,
            http[HttpEvent::HttpConnect] <- http_connect,
        }
        self.addons.push(AddonInfo { name, plugin });
    }

    /// Every addon in call order.
    pub fn addons(&self) -> &[AddonInfo] {
        &self.addons
    }

    /// Whether any addon implements the HTTP event (lets callers skip building payloads).
    pub fn has_client(&self, event: ClientEvent) -> bool {
        !self.client[event as usize].0.is_empty()
    }

    /// Whether any addon implements the server connection event.
    pub fn has_server(&self, event: ServerEvent) -> bool {
        !self.server[event as usize].0.is_empty()
    }

    /// Sends a lifecycle event to every addon implementing it.
    pub fn lifecycle(&self, event: LifecycleEvent) {
        for h in &self.lifecycle[event as usize].0 {
            self.check((h.call)(h.state, h.ctx), h.addon, event.event());
        }
    }

    /// Sends a client connection event to every addon implementing it.
    pub fn client(&self, event: ClientEvent, client: &mut Client) -> Result<(), AddonPanic> {
        for h in &self.client[event as usize].0 {
            self.check((h.call)(h.state, h.ctx, client), h.addon, event.event());
        }
        Ok(())
    }

    /// Sends a server connection event to every addon implementing it.
    pub fn server(
        &self,
        event: ServerEvent,
        data: &mut ServerConnectionHookData<'_>,
    ) -> Result<(), AddonPanic> {
        for h in &self.server[event as usize].0 {
            self.check((h.call)(h.state, h.ctx, data), h.addon, event.event());
        }
        Ok(())
    }

    /// Sends an HTTP event to every addon implementing it, in order.
    #[inline]
    pub fn http(&self, event: HttpEvent, flow: &mut HttpFlow) -> Result<(), AddonPanic> {
        for h in &self.http[event as usize].0 {
            self.check((h.call)(h.state, h.ctx, flow), h.addon, event.event());
        }
        Ok(())
    }

    #[inline]
    fn check(&self, status: EventStatus, addon: u32, event: Event) {
        if let RErr(message) = status {
            self.report_panic(addon, event, &message);
        }
    }

    #[cold]
    fn report_panic(&self, addon: u32, event: Event, message: &str) {
        let info = &self.addons[addon as usize];
        tracing::error!(
            "Addon error: addon '{}' ({}) panicked in {}: {}; continuing without it for this event",
            info.name,
            info.plugin,
            event.name(),
            message
        );
    }
}

impl fmt::Debug for AddonManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddonManager")
            .field("addons", &self.addons)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::{addon, testing, Addon};
    use std::sync::Mutex;

    /// Appends `name:event` to a shared journal.
    struct Journal {
        name: &'static str,
        log: &'static Mutex<Vec<String>>,
    }

    #[addon]
    impl Addon for Journal {
        fn request(&self, _ctx: &Context, flow: &mut HttpFlow) {
            self.log
                .lock()
                .unwrap()
                .push(format!("{}:request", self.name));
            flow.metadata.insert("last", self.name);
        }
    }

    struct Panics;

    #[addon]
    impl Addon for Panics {
        fn request(&self, _ctx: &Context, _flow: &mut HttpFlow) {
            panic!("boom");
        }
    }

    #[test]
    fn calls_implementing_addons_in_order_and_survives_panics() {
        static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let manager = AddonManager::new([
            (
                "p".to_string(),
                RawAddon::new(Journal {
                    name: "a",
                    log: &LOG,
                }),
            ),
            ("p".to_string(), RawAddon::new(Panics)),
            (
                "p".to_string(),
                RawAddon::new(Journal {
                    name: "b",
                    log: &LOG,
                }),
            ),
        ]);
        let mut flow = testing::flow();
        manager.http(HttpEvent::Request, &mut flow).unwrap();
        manager.http(HttpEvent::Response, &mut flow).unwrap();
        assert_eq!(*LOG.lock().unwrap(), ["a:request", "b:request"]);
        assert_eq!(flow.metadata.get("last"), Some("b"));
        assert_eq!(manager.http[HttpEvent::Response as usize].0.len(), 0);
        assert_eq!(manager.addons().len(), 3);
        assert_eq!(manager.addons()[1].name, "panics");
    }
}
