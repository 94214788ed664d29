//! The addon manager: every addon in call order, and per event the list of addons that
//! implement it, so that dispatch is a loop over plain function pointers. The event enums and
//! the registration are generated from the plugin ABI's one list of events.

use std::{
    fmt,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use abi_stable::std_types::{RErr, RString};
use interpose_plugin_abi::{
    ffi::{
        AddonPtr, ClientFn, ClientHelloFn, ConfigureFn, EventTableRef, HttpFn, LifecycleFn,
        RawAddon, ServerFn, TlsFn,
    },
    pause::host::{let_go, take_pending, Slot, Wait},
    Client, ClientHelloData, ConfigureData, Context, Event, EventSet, HttpFlow, Resolution,
    ServerConnectionHookData, TlsData,
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
        host_events!(@split [] [] [] [] [] [] [] $($entries)*);
    };
    (@split [$($l:tt)*] [$($c:tt)*] [$($s:tt)*] [$($h:tt)*] [$($ch:tt)*] [$($t:tt)*] [$($cf:tt)*]
        ($(#[$doc:meta])* $name:ident, $variant:ident, lifecycle, $host:ident) $($rest:tt)*) => {
        host_events!(@split [$($l)* ($name $variant $host)] [$($c)*] [$($s)*] [$($h)*] [$($ch)*] [$($t)*] [$($cf)*] $($rest)*);
    };
    (@split [$($l:tt)*] [$($c:tt)*] [$($s:tt)*] [$($h:tt)*] [$($ch:tt)*] [$($t:tt)*] [$($cf:tt)*]
        ($(#[$doc:meta])* $name:ident, $variant:ident, client_mut, $host:ident) $($rest:tt)*) => {
        host_events!(@split [$($l)*] [$($c)* ($name $variant $host)] [$($s)*] [$($h)*] [$($ch)*] [$($t)*] [$($cf)*] $($rest)*);
    };
    (@split [$($l:tt)*] [$($c:tt)*] [$($s:tt)*] [$($h:tt)*] [$($ch:tt)*] [$($t:tt)*] [$($cf:tt)*]
        ($(#[$doc:meta])* $name:ident, $variant:ident, client, $host:ident) $($rest:tt)*) => {
        host_events!(@split [$($l)*] [$($c)* ($name $variant $host)] [$($s)*] [$($h)*] [$($ch)*] [$($t)*] [$($cf)*] $($rest)*);
    };
    (@split [$($l:tt)*] [$($c:tt)*] [$($s:tt)*] [$($h:tt)*] [$($ch:tt)*] [$($t:tt)*] [$($cf:tt)*]
        ($(#[$doc:meta])* $name:ident, $variant:ident, server_mut, $host:ident) $($rest:tt)*) => {
        host_events!(@split [$($l)*] [$($c)*] [$($s)* ($name $variant $host)] [$($h)*] [$($ch)*] [$($t)*] [$($cf)*] $($rest)*);
    };
    (@split [$($l:tt)*] [$($c:tt)*] [$($s:tt)*] [$($h:tt)*] [$($ch:tt)*] [$($t:tt)*] [$($cf:tt)*]
        ($(#[$doc:meta])* $name:ident, $variant:ident, server, $host:ident) $($rest:tt)*) => {
        host_events!(@split [$($l)*] [$($c)*] [$($s)* ($name $variant $host)] [$($h)*] [$($ch)*] [$($t)*] [$($cf)*] $($rest)*);
    };
    (@split [$($l:tt)*] [$($c:tt)*] [$($s:tt)*] [$($h:tt)*] [$($ch:tt)*] [$($t:tt)*] [$($cf:tt)*]
        ($(#[$doc:meta])* $name:ident, $variant:ident, http, $host:ident) $($rest:tt)*) => {
        host_events!(@split [$($l)*] [$($c)*] [$($s)*] [$($h)* ($name $variant $host)] [$($ch)*] [$($t)*] [$($cf)*] $($rest)*);
    };
    (@split [$($l:tt)*] [$($c:tt)*] [$($s:tt)*] [$($h:tt)*] [$($ch:tt)*] [$($t:tt)*] [$($cf:tt)*]
        ($(#[$doc:meta])* $name:ident, $variant:ident, clienthello, $host:ident) $($rest:tt)*) => {
        host_events!(@split [$($l)*] [$($c)*] [$($s)*] [$($h)*] [$($ch)* ($name $variant $host)] [$($t)*] [$($cf)*] $($rest)*);
    };
    (@split [$($l:tt)*] [$($c:tt)*] [$($s:tt)*] [$($h:tt)*] [$($ch:tt)*] [$($t:tt)*] [$($cf:tt)*]
        ($(#[$doc:meta])* $name:ident, $variant:ident, tls_mut, $host:ident) $($rest:tt)*) => {
        host_events!(@split [$($l)*] [$($c)*] [$($s)*] [$($h)*] [$($ch)*] [$($t)* ($name $variant $host)] [$($cf)*] $($rest)*);
    };
    (@split [$($l:tt)*] [$($c:tt)*] [$($s:tt)*] [$($h:tt)*] [$($ch:tt)*] [$($t:tt)*] [$($cf:tt)*]
        ($(#[$doc:meta])* $name:ident, $variant:ident, configure, $host:ident) $($rest:tt)*) => {
        host_events!(@split [$($l)*] [$($c)*] [$($s)*] [$($h)*] [$($ch)*] [$($t)*] [$($cf)* ($name $variant $host)] $($rest)*);
    };
    (@split [$($l:tt)*] [$($c:tt)*] [$($s:tt)*] [$($h:tt)*] [$($ch:tt)*] [$($t:tt)*] [$($cf:tt)*]
        ($(#[$doc:meta])* $name:ident, $variant:ident, tls, $host:ident) $($rest:tt)*) => {
        host_events!(@split [$($l)*] [$($c)*] [$($s)*] [$($h)*] [$($ch)*] [$($t)* ($name $variant $host)] [$($cf)*] $($rest)*);
    };
    (@split [$($l:tt)*] [$($c:tt)*] [$($s:tt)*] [$($h:tt)*] [$($ch:tt)*] [$($t:tt)*] [$($cf:tt)*]) => {
        host_events!(@enum ConfigureEvent "The `configure` event (one of its kind)." $($cf)*);
        host_events!(@enum LifecycleEvent "Events without a payload." $($l)*);
        host_events!(@enum ClientEvent "Events about a client connection." $($c)*);
        host_events!(@enum ServerEvent "Events about a server connection." $($s)*);
        host_events!(@enum HttpEvent "Events about an HTTP flow." $($h)*);
        host_events!(@enum ClientHelloEvent
            "The TLS ClientHello event (one of its kind; see `AddonManager::tls_clienthello`)."
            $($ch)*);
        host_events!(@enum TlsEvent "Events about a TLS handshake with the client or the server."
            $($t)*);
        host_events!(@register [$($l)*] [$($c)*] [$($s)*] [$($h)*] [$($ch)*] [$($t)*] [$($cf)*]);
    };
    (@register
        [$(($l:ident $lv:ident $lh:ident))*]
        [$(($c:ident $cv:ident $ch:ident))*]
        [$(($s:ident $sv:ident $sh:ident))*]
        [$(($h:ident $hv:ident $hh:ident))*]
        [$(($g:ident $gv:ident $gh:ident))*]
        [$(($t:ident $tv:ident $th:ident))*]
        [$(($f:ident $fv:ident $fh:ident))*]) => {
        impl AddonManager {
            /// Adds the addon's handlers to the list of every event its table implements.
            fn register(
                &mut self,
                table: EventTableRef,
                state: AddonPtr,
                ctx: &'static Context,
                addon: u32,
                blocking: EventSet,
            ) {
                $(if let Some(call) = table.$l() {
                    let blocking = blocking.contains(Event::$lv);
                    self.lifecycle[LifecycleEvent::$lh as usize].0.push(Handler { call, state, ctx, addon, blocking });
                })*
                $(if let Some(call) = table.$c() {
                    let blocking = blocking.contains(Event::$cv);
                    self.client[ClientEvent::$ch as usize].0.push(Handler { call, state, ctx, addon, blocking });
                })*
                $(if let Some(call) = table.$s() {
                    let blocking = blocking.contains(Event::$sv);
                    self.server[ServerEvent::$sh as usize].0.push(Handler { call, state, ctx, addon, blocking });
                })*
                $(if let Some(call) = table.$h() {
                    let blocking = blocking.contains(Event::$hv);
                    self.http[HttpEvent::$hh as usize].0.push(Handler { call, state, ctx, addon, blocking });
                })*
                $(if let Some(call) = table.$g() {
                    let blocking = blocking.contains(Event::$gv);
                    self.clienthello[ClientHelloEvent::$gh as usize].0.push(Handler { call, state, ctx, addon, blocking });
                })*
                $(if let Some(call) = table.$t() {
                    let blocking = blocking.contains(Event::$tv);
                    self.tls[TlsEvent::$th as usize].0.push(Handler { call, state, ctx, addon, blocking });
                })*
                $(if let Some(call) = table.$f() {
                    let blocking = blocking.contains(Event::$fv);
                    self.configure[ConfigureEvent::$fh as usize].0.push(Handler { call, state, ctx, addon, blocking });
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

impl TlsEvent {
    /// Whether the handshake is with the client (`tls_*_client`) rather than the server.
    pub fn is_client(self) -> bool {
        match self {
            TlsEvent::StartClient | TlsEvent::EstablishedClient | TlsEvent::FailedClient => true,
            TlsEvent::StartServer | TlsEvent::EstablishedServer | TlsEvent::FailedServer => false,
        }
    }
}

/// One addon's function for one event, with what it is called with.
#[derive(Clone, Copy)]
struct Handler<F> {
    call: F,
    state: AddonPtr,
    ctx: &'static Context,
    addon: u32,
    /// Whether the addon marked this event as blocking: it runs where waiting holds up no
    /// other flow.
    blocking: bool,
}

impl<F> Handler<F> {
    /// Calls the handler through `call`, on a blocking-capable thread if it blocks.
    #[inline]
    fn run<R>(&self, call: impl FnOnce() -> R) -> R {
        if self.blocking {
            run_blocking(call)
        } else {
            call()
        }
    }
}

/// Runs `call`, which may block, without holding up the other tasks of the runtime's worker
/// it is on (they move to another worker meanwhile). Outside a multi-threaded runtime it
/// simply runs.
#[cold]
fn run_blocking<R>(call: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(call)
        }
        _ => call(),
    }
}

/// Where an HTTP event's dispatch stopped.
pub enum Dispatch {
    /// Every addon ran.
    Done,
    /// An addon paused the flow: wait for the pause (see [`wait_paused`]), then go on from
    /// addon `next`.
    Paused {
        /// The pause to wait for.
        slot: Arc<Slot>,
        /// The index of the next handler to run.
        next: usize,
    },
}

/// Waits, without blocking the thread, until the pause `slot` of `flow` is resolved; kills
/// the flow if that is the resolution. Dropping the future (the client left, shutdown)
/// detaches the flow from the addon's handle first.
///
/// The flow is reachable from the addon's handle while this runs: callers must not touch it
/// meanwhile, which the exclusive borrow ensures.
pub async fn wait_paused(slot: Arc<Slot>, flow: &mut HttpFlow) -> Resolution {
    // Commands (`flow.resume`...) reach the flow while it waits.
    let registration = crate::commands::flows::register(flow.id, &slot);
    // SAFETY: `flow` is borrowed mutably for as long as `wait` lives and not used meanwhile;
    // `wait` is dropped (detaching the flow) before the borrow ends, whether this future
    // completes or is dropped.
    let wait = unsafe { Wait::attach(slot, flow) };
    let resolution = wait.resolved().await;
    drop(wait);
    drop(registration);
    if resolution == Resolution::Kill {
        flow.kill();
    }
    resolution
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
    clienthello: [Handlers<ClientHelloFn>; ClientHelloEvent::ALL.len()],
    tls: [Handlers<TlsFn>; TlsEvent::ALL.len()],
    configure: [Handlers<ConfigureFn>; ConfigureEvent::ALL.len()],
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
            clienthello: Default::default(),
            tls: Default::default(),
            configure: Default::default(),
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
        let ctx = new_context(&name, &plugin);
        let blocking = EventSet::from_bits(raw.blocking);
        self.register(raw.events, raw.state, ctx, index, blocking);
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

    /// Whether any addon implements `tls_clienthello` (lets the engine skip building
    /// [`ClientHelloData`]).
    pub fn has_tls_clienthello(&self) -> bool {
        !self.clienthello[ClientHelloEvent::ClientHello as usize]
            .0
            .is_empty()
    }

    /// Whether any addon implements the TLS handshake event.
    pub fn has_tls(&self, event: TlsEvent) -> bool {
        !self.tls[event as usize].0.is_empty()
    }

    /// Sends a lifecycle event to every addon implementing it. A panic is logged and the
    /// next addon runs, whatever `addon_errors` says: there is no flow to fail.
    pub fn lifecycle(&self, event: LifecycleEvent) {
        for h in &self.lifecycle[event as usize].0 {
            if let RErr(message) = h.run(|| (h.call)(h.state, h.ctx)) {
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
            if let RErr(message) = h.run(|| (h.call)(h.state, h.ctx, client)) {
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
            if let RErr(message) = h.run(|| (h.call)(h.state, h.ctx, data)) {
                self.panicked(h.addon, event.event(), message)?;
            }
        }
        Ok(())
    }

    /// Sends an HTTP event to the addons implementing it, in order, from handler `from`,
    /// until one pauses the flow; panics as for [`AddonManager::client`] (a pause the
    /// panicking addon took is let go).
    #[inline]
    pub fn http_from(
        &self,
        event: HttpEvent,
        flow: &mut HttpFlow,
        from: usize,
    ) -> Result<Dispatch, AddonPanic> {
        let handlers = &self.http[event as usize].0;
        for (index, h) in handlers.iter().enumerate().skip(from) {
            let status = h.run(|| (h.call)(h.state, h.ctx, flow));
            let paused = if flow.intercepted {
                take_pending()
            } else {
                None
            };
            if let RErr(message) = status {
                if let Err(panic) = self.panicked(h.addon, event.event(), message) {
                    if let Some(slot) = paused {
                        let_go(slot, flow);
                    }
                    return Err(panic);
                }
            }
            match paused {
                Some(slot) => {
                    return Ok(Dispatch::Paused {
                        slot,
                        next: index + 1,
                    })
                }
                // Set by hand, not through `Context::intercept`: nothing would resume it.
                None if flow.intercepted => flow.intercepted = false,
                None => {}
            }
        }
        Ok(Dispatch::Done)
    }

    /// Sends an HTTP event to every addon implementing it, in order, waiting (without
    /// blocking the thread) for the flow whenever an addon pauses it; a kill ends the event.
    /// Panics as for [`AddonManager::client`].
    pub async fn http_async(
        &self,
        event: HttpEvent,
        flow: &mut HttpFlow,
    ) -> Result<(), AddonPanic> {
        let mut from = 0;
        while let Dispatch::Paused { slot, next } = self.http_from(event, flow, from)? {
            if wait_paused(slot, flow).await == Resolution::Kill {
                break;
            }
            from = next;
        }
        Ok(())
    }

    /// Like [`AddonManager::http_async`], blocking the thread while the flow is paused (for
    /// callers outside the runtime: reading a flow file).
    pub fn http(&self, event: HttpEvent, flow: &mut HttpFlow) -> Result<(), AddonPanic> {
        let mut from = 0;
        while let Dispatch::Paused { slot, next } = self.http_from(event, flow, from)? {
            // SAFETY: `flow` is not used until `wait` is dropped.
            let wait = unsafe { Wait::attach(slot, flow) };
            let resolution = wait.wait_blocking();
            drop(wait);
            if resolution == Resolution::Kill {
                flow.kill();
                break;
            }
            from = next;
        }
        Ok(())
    }

    /// Sends an HTTP event where nothing can wait (the `error` of a flow that is going
    /// away): a pause is let go at once.
    pub fn http_now(&self, event: HttpEvent, flow: &mut HttpFlow) -> Result<(), AddonPanic> {
        let mut from = 0;
        while let Dispatch::Paused { slot, next } = self.http_from(event, flow, from)? {
            let_go(slot, flow);
            from = next;
        }
        Ok(())
    }

    /// Sends `tls_clienthello` to every addon implementing it, in order; panics as for
    /// [`AddonManager::client`]. The engine then reads `data.ignore_connection` and
    /// `data.establish_server_tls_first`.
    pub fn tls_clienthello(&self, data: &mut ClientHelloData<'_>) -> Result<(), AddonPanic> {
        for h in &self.clienthello[ClientHelloEvent::ClientHello as usize].0 {
            if let RErr(message) = h.run(|| (h.call)(h.state, h.ctx, data)) {
                self.panicked(h.addon, Event::TlsClientHello, message)?;
            }
        }
        Ok(())
    }

    /// Sends a TLS handshake event to every addon implementing it, in order; panics as for
    /// [`AddonManager::client`]. Sets `data.is_client` to the event's side; `data.error`
    /// should be set for `tls_failed_*` only.
    pub fn tls(&self, event: TlsEvent, data: &mut TlsData<'_>) -> Result<(), AddonPanic> {
        data.is_client = event.is_client();
        for h in &self.tls[event as usize].0 {
            if let RErr(message) = h.run(|| (h.call)(h.state, h.ctx, data)) {
                self.panicked(h.addon, event.event(), message)?;
            }
        }
        Ok(())
    }

    /// Sends `configure` with the names of the options that changed to every addon that
    /// implements it, in order, until one refuses the values: then its message comes back
    /// (naming the addon) and the later addons are not asked. A panic counts as a refusal.
    pub fn configure<'a>(&self, updated: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
        let mut data = ConfigureData::new(updated);
        for h in &self.configure[ConfigureEvent::Configure as usize].0 {
            if let RErr(message) = h.run(|| (h.call)(h.state, h.ctx, &mut data)) {
                let info = &self.addons[h.addon as usize];
                return Err(format!(
                    "addon '{}' ({}) panicked in configure: {message}",
                    info.name, info.plugin
                ));
            }
            if let Some(why) = data.rejection() {
                return Err(why.to_string());
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
    use abi_stable::std_types::ROption::{RNone, RSome};
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
        events.extend(ClientHelloEvent::ALL.iter().map(|e| e.event()));
        events.extend(TlsEvent::ALL.iter().map(|e| e.event()));
        events.extend(ConfigureEvent::ALL.iter().map(|e| e.event()));
        events.sort_by_key(|e| *e as u8);
        assert_eq!(events, Event::ALL);
        assert_eq!(ClientEvent::Connected.event(), Event::ClientConnected);
        assert_eq!(ServerEvent::ConnectError.event(), Event::ServerConnectError);
        assert_eq!(ClientHelloEvent::ClientHello.event(), Event::TlsClientHello);
        assert_eq!(TlsEvent::FailedServer.event(), Event::TlsFailedServer);
        for event in TlsEvent::ALL {
            assert_eq!(
                event.is_client(),
                event.event().name().ends_with("_client"),
                "{event:?}"
            );
        }
    }

    /// Implements `tls_clienthello` only: passes `pass.example` through.
    struct Passthrough;

    #[addon]
    impl Addon for Passthrough {
        fn tls_clienthello(&self, _ctx: &Context, data: &mut ClientHelloData<'_>) {
            if data.sni() == Some("pass.example") {
                data.ignore_connection = true;
            }
        }
    }

    /// Panics in `tls_clienthello` and `tls_failed_server`; records the others.
    struct TlsJournal {
        log: &'static Mutex<Vec<String>>,
    }

    #[addon]
    impl Addon for TlsJournal {
        fn tls_clienthello(&self, _ctx: &Context, _data: &mut ClientHelloData<'_>) {
            panic!("hello boom");
        }

        fn tls_start_server(&self, _ctx: &Context, data: &mut TlsData<'_>) {
            self.log
                .lock()
                .unwrap()
                .push(format!("start_server {}", data.is_client));
        }

        fn tls_established_client(&self, _ctx: &Context, data: &TlsData<'_>) {
            let sni = data.conn().sni.as_ref().map(|s| s.as_str()).unwrap_or("-");
            self.log
                .lock()
                .unwrap()
                .push(format!("established_client {} {sni}", data.is_client));
        }

        fn tls_failed_server(&self, _ctx: &Context, data: &TlsData<'_>) {
            panic!("failed: {}", data.error().unwrap_or("-"));
        }
    }

    #[test]
    fn tls_clienthello_lets_an_addon_pass_a_connection_through() {
        let manager = AddonManager::new([("p".to_string(), RawAddon::new(Passthrough))]);
        assert!(manager.has_tls_clienthello());
        assert!(TlsEvent::ALL.iter().all(|e| !manager.has_tls(*e)));
        assert!(!manager.has_http(HttpEvent::Request));

        let (client, server) = (testing::client(), testing::server());
        let mut data = testing::client_hello(&client, &server);
        manager.tls_clienthello(&mut data).unwrap();
        assert!(!data.ignore_connection, "example.com is intercepted");
        data.sni = RSome("pass.example".into());
        manager.tls_clienthello(&mut data).unwrap();
        assert!(data.ignore_connection);
        assert!(!data.establish_server_tls_first);

        let nobody = AddonManager::new([("p".to_string(), RawAddon::new(ConnectGate))]);
        assert!(!nobody.has_tls_clienthello());
        assert_eq!(nobody.tls_clienthello(&mut data), Ok(()));
    }

    #[test]
    fn tls_events_dispatch_with_their_side_and_report_panics() {
        static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let manager = AddonManager::new([
            (
                "plugin t".to_string(),
                RawAddon::new(TlsJournal { log: &LOG }),
            ),
            ("plugin p".to_string(), RawAddon::new(Passthrough)),
        ]);
        assert!(manager.has_tls(TlsEvent::StartServer));
        assert!(manager.has_tls(TlsEvent::EstablishedClient));
        assert!(manager.has_tls(TlsEvent::FailedServer));
        assert!(!manager.has_tls(TlsEvent::StartClient));
        assert!(!manager.has_tls(TlsEvent::FailedClient));

        let (mut client, server) = (testing::client(), testing::server());
        client.conn.sni = RSome("example.com".into());
        let mut data = TlsData {
            client: &client,
            server: &server,
            is_client: true,
            error: RNone,
        };
        // The manager sets the side from the event.
        manager.tls(TlsEvent::StartServer, &mut data).unwrap();
        manager.tls(TlsEvent::EstablishedClient, &mut data).unwrap();
        assert_eq!(
            *LOG.lock().unwrap(),
            ["start_server false", "established_client true example.com"]
        );

        // Under `continue`, a panic is logged and the next addon still runs.
        let mut hello = testing::client_hello(&client, &server);
        hello.sni = RSome("pass.example".into());
        assert_eq!(manager.tls_clienthello(&mut hello), Ok(()));
        assert!(hello.ignore_connection, "the addon after the panic ran");
        data.error = RSome("certificate verify failed".into());
        assert_eq!(manager.tls(TlsEvent::FailedServer, &mut data), Ok(()));

        // Under `fail`, the panic comes back and the next addon is skipped.
        manager.set_addon_errors(AddonErrors::Fail);
        hello.ignore_connection = false;
        let panic = manager
            .tls_clienthello(&mut hello)
            .expect_err("the panic comes back");
        assert_eq!(
            panic,
            AddonPanic {
                addon: "tlsjournal".to_string(),
                plugin: "plugin t".to_string(),
                event: Event::TlsClientHello,
                message: "hello boom".to_string(),
            }
        );
        assert!(!hello.ignore_connection, "the next addon was skipped");
        let panic = manager
            .tls(TlsEvent::FailedServer, &mut data)
            .expect_err("the panic comes back");
        assert_eq!(panic.event, Event::TlsFailedServer);
        assert_eq!(
            panic.to_string(),
            "addon 'tlsjournal' (plugin t) panicked in tls_failed_server: \
             failed: certificate verify failed"
        );
    }
}
