//! The addon manager: every addon in call order, and per event the list of addons that
//! implement it, so that dispatch is a loop over plain function pointers. The event enums and
//! the registration are generated from the plugin ABI's one list of events.

use std::{
    fmt,
    sync::atomic::{AtomicBool, Ordering},
};

use abi_stable::std_types::{RErr, RString};
use interpose_plugin_abi::{
    ffi::{AddonPtr, ClientFn, EventTableRef, HttpFn, LifecycleFn, RawAddon, ServerFn},
    Client, Context, Event, HttpFlow, ServerConnectionHookData,
};

use super::host::new_context;
use crate::options::AddonErrors;

/// Where an addon came from, for logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddonInfo {
    /// The addon's name.
    pub name: String,
    /// The plugin that provided it, as logs name it (`plugin <crate name>`,
    /// `builtin <crate name>`).
    pub plugin: String,
}

/// An addon panicked in an event while `addon_errors` was `fail`: the remaining addons were
/// not called for that event, and the caller fails what the event was about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddonPanic {
    /// The addon's name.
    pub addon: String,
    /// The plugin that provided it, as in [`AddonInfo::plugin`].
    pub plugin: String,
    /// The event it panicked in.
    pub event: Event,
    /// The panic's message.
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

impl std::error::Error for AddonPanic {}

/// Sorts the plugin ABI's list of events by kind and writes, from it, the host's event enum
/// of each kind and `AddonManager::register`.
macro_rules! host_events {
    ([] $($entries:tt)*) => {
        host_events!(@split [] [] [] [] $($entries)*);
    };
    (@split [$($l:tt)*] [$($c:tt)*] [$($s:tt)*] [$($h:tt)*]
        ($(#[$doc:meta])* $name:ident, $variant:ident, lifecycle, $host:ident) $($rest:tt)*) => {
        host_events!(@split [$($l)* ($name $variant $host)] [$($c)*] [$($s)*] [$($h)*] $($rest)*);
    };
    (@split [$($l:tt)*] [$($c:tt)*] [$($s:tt)*] [$($h:tt)*]
        ($(#[$doc:meta])* $name:ident, $variant:ident, client_mut, $host:ident) $($rest:tt)*) => {
        host_events!(@split [$($l)*] [$($c)* ($name $variant $host)] [$($s)*] [$($h)*] $($rest)*);
    };
    (@split [$($l:tt)*] [$($c:tt)*] [$($s:tt)*] [$($h:tt)*]
        ($(#[$doc:meta])* $name:ident, $variant:ident, client, $host:ident) $($rest:tt)*) => {
        host_events!(@split [$($l)*] [$($c)* ($name $variant $host)] [$($s)*] [$($h)*] $($rest)*);
    };
    (@split [$($l:tt)*] [$($c:tt)*] [$($s:tt)*] [$($h:tt)*]
        ($(#[$doc:meta])* $name:ident, $variant:ident, server_mut, $host:ident) $($rest:tt)*) => {
        host_events!(@split [$($l)*] [$($c)*] [$($s)* ($name $variant $host)] [$($h)*] $($rest)*);
    };
    (@split [$($l:tt)*] [$($c:tt)*] [$($s:tt)*] [$($h:tt)*]
        ($(#[$doc:meta])* $name:ident, $variant:ident, server, $host:ident) $($rest:tt)*) => {
        host_events!(@split [$($l)*] [$($c)*] [$($s)* ($name $variant $host)] [$($h)*] $($rest)*);
    };
    (@split [$($l:tt)*] [$($c:tt)*] [$($s:tt)*] [$($h:tt)*]
        ($(#[$doc:meta])* $name:ident, $variant:ident, http, $host:ident) $($rest:tt)*) => {
        host_events!(@split [$($l)*] [$($c)*] [$($s)*] [$($h)* ($name $variant $host)] $($rest)*);
    };
    (@split [$($l:tt)*] [$($c:tt)*] [$($s:tt)*] [$($h:tt)*]) => {
        host_events!(@enum LifecycleEvent "Events without a payload." $($l)*);
        host_events!(@enum ClientEvent "Events about a client connection." $($c)*);
        host_events!(@enum ServerEvent "Events about a server connection." $($s)*);
        host_events!(@enum HttpEvent "Events about an HTTP flow." $($h)*);
        host_events!(@register [$($l)*] [$($c)*] [$($s)*] [$($h)*]);
    };
    (@register
        [$(($l:ident $lv:ident $lh:ident))*]
        [$(($c:ident $cv:ident $ch:ident))*]
        [$(($s:ident $sv:ident $sh:ident))*]
        [$(($h:ident $hv:ident $hh:ident))*]) => {
        impl AddonManager {
            /// Adds the addon's handlers to the list of every event its table implements.
            fn register(
                &mut self,
                table: EventTableRef,
                state: AddonPtr,
                ctx: &'static Context,
                addon: u32,
            ) {
                $(if let Some(call) = table.$l() {
                    self.lifecycle[LifecycleEvent::$lh as usize].0.push(Handler { call, state, ctx, addon });
                })*
                $(if let Some(call) = table.$c() {
                    self.client[ClientEvent::$ch as usize].0.push(Handler { call, state, ctx, addon });
                })*
                $(if let Some(call) = table.$s() {
                    self.server[ServerEvent::$sh as usize].0.push(Handler { call, state, ctx, addon });
                })*
                $(if let Some(call) = table.$h() {
                    self.http[HttpEvent::$hh as usize].0.push(Handler { call, state, ctx, addon });
                })*
            }
        }
    };
    (@enum $enum:ident $doc:literal $(($name:ident $variant:ident $host:ident))*) => {
        #[doc = $doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $enum {
            $(
                #[doc = ::core::concat!("`", ::core::stringify!($name), "`")]
                $host,
            )*
        }

        impl $enum {
            /// Every event of this kind, in event-table order.
            pub const ALL: &'static [$enum] = &[$($enum::$host),*];

            /// The plugin ABI's name for this event.
            pub fn event(self) -> Event {
                match self {
                    $($enum::$host => Event::$variant,)*
                }
            }
        }
    };
}

interpose_plugin_abi::for_each_event!(host_events);

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
    lifecycle: [Handlers<LifecycleFn>; LifecycleEvent::ALL.len()],
    client: [Handlers<ClientFn>; ClientEvent::ALL.len()],
    server: [Handlers<ServerFn>; ServerEvent::ALL.len()],
    http: [Handlers<HttpFn>; HttpEvent::ALL.len()],
    /// `addon_errors`: whether a panic stops the event (`fail`) instead of going on.
    fail_on_panic: AtomicBool,
}

// SAFETY: the only non-thread-safe parts are the erased addon pointers; they point to values
// of types implementing `Addon: Send + Sync`, and event functions only take `&` to them.
unsafe impl Send for AddonManager {}
// SAFETY: as for `Send`; the lists are immutable once built, the policy is an atomic.
unsafe impl Sync for AddonManager {}

impl AddonManager {
    /// Builds the manager from addons in call order, each with the name of its plugin, with
    /// `addon_errors` at its default (`continue`).
    pub fn new(addons: impl IntoIterator<Item = (String, RawAddon)>) -> Self {
        let mut manager = AddonManager {
            addons: Vec::new(),
            lifecycle: Default::default(),
            client: Default::default(),
            server: Default::default(),
            http: Default::default(),
            fail_on_panic: AtomicBool::new(AddonErrors::default() == AddonErrors::Fail),
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
        self.register(raw.events, raw.state, ctx, index);
        self.addons.push(AddonInfo { name, plugin });
    }

    /// Every addon in call order.
    pub fn addons(&self) -> &[AddonInfo] {
        &self.addons
    }

    /// Sets what a panicking addon does (`addon_errors`); takes effect for the next panic,
    /// on every thread.
    pub fn set_addon_errors(&self, policy: AddonErrors) {
        self.fail_on_panic
            .store(policy == AddonErrors::Fail, Ordering::Relaxed);
    }

    /// The current `addon_errors` policy.
    pub fn addon_errors(&self) -> AddonErrors {
        if self.fail_on_panic.load(Ordering::Relaxed) {
            AddonErrors::Fail
        } else {
            AddonErrors::Continue
        }
    }

    /// Whether any addon implements the client connection event (lets callers skip building
    /// payloads).
    pub fn has_client(&self, event: ClientEvent) -> bool {
        !self.client[event as usize].0.is_empty()
    }

    /// Whether any addon implements the server connection event.
    pub fn has_server(&self, event: ServerEvent) -> bool {
        !self.server[event as usize].0.is_empty()
    }

    /// Whether any addon implements the HTTP event.
    pub fn has_http(&self, event: HttpEvent) -> bool {
        !self.http[event as usize].0.is_empty()
    }

    /// Sends a lifecycle event to every addon implementing it. A panic is logged and the
    /// next addon runs, whatever `addon_errors` says: there is no flow to fail.
    pub fn lifecycle(&self, event: LifecycleEvent) {
        for h in &self.lifecycle[event as usize].0 {
            if let RErr(message) = (h.call)(h.state, h.ctx) {
                self.report(h.addon, event.event(), message, false);
            }
        }
    }

    /// Sends a client connection event to every addon implementing it, in order.
    ///
    /// On a panic with `addon_errors=fail`, the remaining addons are skipped and the panic
    /// comes back; otherwise it is logged and the next addon runs.
    pub fn client(&self, event: ClientEvent, client: &mut Client) -> Result<(), AddonPanic> {
        for h in &self.client[event as usize].0 {
            if let RErr(message) = (h.call)(h.state, h.ctx, client) {
                self.panicked(h.addon, event.event(), message)?;
            }
        }
        Ok(())
    }

    /// Sends a server connection event to every addon implementing it, in order; panics as
    /// for [`AddonManager::client`].
    pub fn server(
        &self,
        event: ServerEvent,
        data: &mut ServerConnectionHookData<'_>,
    ) -> Result<(), AddonPanic> {
        for h in &self.server[event as usize].0 {
            if let RErr(message) = (h.call)(h.state, h.ctx, data) {
                self.panicked(h.addon, event.event(), message)?;
            }
        }
        Ok(())
    }

    /// Sends an HTTP event to every addon implementing it, in order; panics as for
    /// [`AddonManager::client`].
    #[inline]
    pub fn http(&self, event: HttpEvent, flow: &mut HttpFlow) -> Result<(), AddonPanic> {
        for h in &self.http[event as usize].0 {
            if let RErr(message) = (h.call)(h.state, h.ctx, flow) {
                self.panicked(h.addon, event.event(), message)?;
            }
        }
        Ok(())
    }

    /// Logs a caught panic and applies `addon_errors`.
    #[cold]
    #[inline(never)]
    fn panicked(&self, addon: u32, event: Event, message: RString) -> Result<(), AddonPanic> {
        let fail = self.fail_on_panic.load(Ordering::Relaxed);
        match self.report(addon, event, message, fail) {
            Some(panic) => Err(panic),
            None => Ok(()),
        }
    }

    /// Logs a caught panic; with `stop`, returns it for the caller to fail the event's
    /// subject.
    #[cold]
    fn report(&self, addon: u32, event: Event, message: RString, stop: bool) -> Option<AddonPanic> {
        let info = &self.addons[addon as usize];
        let panic = AddonPanic {
            addon: info.name.clone(),
            plugin: info.plugin.clone(),
            event,
            message: message.into_string(),
        };
        if stop {
            tracing::error!(
                "Addon error: {panic}; skipping the remaining addons for this event \
                 (addon_errors=fail)"
            );
            Some(panic)
        } else {
            tracing::error!("Addon error: {panic}; continuing without it for this event");
            None
        }
    }
}

impl fmt::Debug for AddonManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddonManager")
            .field("addons", &self.addons)
            .field("addon_errors", &self.addon_errors())
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
        assert_eq!(manager.addon_errors(), AddonErrors::Continue);
        assert_eq!(manager.http(HttpEvent::Request, &mut flow), Ok(()));
        assert_eq!(manager.http(HttpEvent::Response, &mut flow), Ok(()));
        assert_eq!(*LOG.lock().unwrap(), ["a:request", "b:request"]);
        assert_eq!(flow.metadata.get("last"), Some("b"));
        assert_eq!(manager.http[HttpEvent::Response as usize].0.len(), 0);
        assert_eq!(manager.addons().len(), 3);
        assert_eq!(manager.addons()[1].name, "panics");
    }

    #[test]
    fn under_fail_a_panic_stops_the_event_and_comes_back() {
        static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let manager = AddonManager::new([
            ("plugin p".to_string(), RawAddon::new(Panics)),
            (
                "plugin p".to_string(),
                RawAddon::new(Journal {
                    name: "after",
                    log: &LOG,
                }),
            ),
        ]);
        manager.set_addon_errors(AddonErrors::Fail);
        let mut flow = testing::flow();
        let panic = manager
            .http(HttpEvent::Request, &mut flow)
            .expect_err("the panic comes back");
        assert_eq!(
            panic,
            AddonPanic {
                addon: "panics".to_string(),
                plugin: "plugin p".to_string(),
                event: Event::Request,
                message: "boom".to_string(),
            }
        );
        assert_eq!(
            panic.to_string(),
            "addon 'panics' (plugin p) panicked in request: boom"
        );
        assert!(LOG.lock().unwrap().is_empty(), "the next addon was skipped");

        manager.set_addon_errors(AddonErrors::Continue);
        assert_eq!(manager.http(HttpEvent::Request, &mut flow), Ok(()));
        assert_eq!(*LOG.lock().unwrap(), ["after:request"]);
    }

    /// Implements `http_connect` and `client_disconnected` only.
    struct ConnectGate;

    #[addon]
    impl Addon for ConnectGate {
        fn http_connect(&self, _ctx: &Context, flow: &mut HttpFlow) {
            flow.response = abi_stable::std_types::ROption::RSome(
                interpose_plugin_abi::Response::make(407, "", &[]),
            );
        }

        fn client_disconnected(&self, _ctx: &Context, _client: &Client) {}
    }

    #[test]
    fn http_connect_is_an_http_event() {
        let manager = AddonManager::new([("p".to_string(), RawAddon::new(ConnectGate))]);
        assert!(manager.has_http(HttpEvent::HttpConnect));
        assert!(!manager.has_http(HttpEvent::Request));
        assert!(manager.has_client(ClientEvent::Disconnected));
        assert!(!manager.has_client(ClientEvent::Connected));
        assert!(!manager.has_server(ServerEvent::Connect));
        let mut flow = testing::flow();
        manager.http(HttpEvent::HttpConnect, &mut flow).unwrap();
        assert_eq!(
            flow.response.as_ref().into_option().map(|r| r.status_code),
            Some(407)
        );
        assert_eq!(HttpEvent::HttpConnect.event(), Event::HttpConnect);
    }

    #[test]
    fn the_host_enums_cover_every_event_once() {
        let mut events: Vec<Event> = LifecycleEvent::ALL.iter().map(|e| e.event()).collect();
        events.extend(ClientEvent::ALL.iter().map(|e| e.event()));
        events.extend(ServerEvent::ALL.iter().map(|e| e.event()));
        events.extend(HttpEvent::ALL.iter().map(|e| e.event()));
        events.sort_by_key(|e| *e as u8);
        assert_eq!(events, Event::ALL);
        assert_eq!(ClientEvent::Connected.event(), Event::ClientConnected);
        assert_eq!(ServerEvent::ConnectError.event(), Event::ServerConnectError);
    }
}
