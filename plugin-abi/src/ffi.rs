//! The fenced `#[repr(C)]` layer between host and plugins. Authors never use it directly:
//! [`export_plugin!`](crate::export_plugin) writes the entry symbol and every shim.
//!
//! A plugin library exports one `abi_stable` [`LibHeader`] under a symbol named
//! [`ENTRY_SYMBOL_PREFIX`] + the crate name, so that several plugins can also be linked into
//! one binary as rlibs without their symbols colliding. The header carries this crate's
//! version and the layout of [`PluginModule`], which the host checks before touching
//! anything else. The module hands over the plugin's addons as [`RawAddon`]s: an erased
//! pointer to the addon plus its [`EventTable`], one optional function pointer per event.
//!
//! Evolution rules (pinned by the layout test in this crate): [`EventTable`], [`HostVTable`]
//! and [`PluginModule`] are prefix types, so new events, host functions and module fields are
//! appended after the last field; old plugins then simply lack them. Any other change to a
//! type that crosses the boundary is a new ABI version.

use std::{
    any::Any,
    ffi::c_void,
    marker::PhantomData,
    panic::{catch_unwind, AssertUnwindSafe},
};

pub use abi_stable::library::{
    __call_root_module_loader, CheckTypeLayout, LibHeader, RootModule, RootModuleResult,
};
use abi_stable::{
    declare_root_module_statics, package_version_strings,
    prefix_type::WithMetadata,
    sabi_types::VersionStrings,
    std_types::{RErr, ROk, ROption, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

use crate::{
    addon::{Addon, Event},
    capture::CaptureFormat,
    commands::{CommandDecl, CommandValue},
    connection::{Client, ServerConnectionHookData},
    context::{Context, Level},
    flow::{HttpFlow, Uuid},
    options::{ConfigureData, OptionDecl, OptionValue},
    pause::{PausedPtr, Resolution},
    tls::{ClientHelloData, TlsData},
};

/// Every plugin's entry symbol starts with this; the crate name follows.
pub const ENTRY_SYMBOL_PREFIX: &str = "__interpose_plugin_entry__";

/// An addon object, erased (a `Box<T>` leaked by [`RawAddon::new`]).
pub type AddonPtr = *const c_void;

/// What every event function returns: `Err` carries the message of a panic caught in the
/// addon.
pub type EventStatus = RResult<(), RString>;

/// Events of kind `lifecycle` (`load`, `running`, `done`).
pub type LifecycleFn = extern "C" fn(AddonPtr, &Context) -> EventStatus;
/// Events of kinds `client_mut` and `client` (`client_connected`, ...).
pub type ClientFn = extern "C" fn(AddonPtr, &Context, &mut Client) -> EventStatus;
/// Events of kinds `server_mut` and `server` (`server_connect`, ...).
pub type ServerFn =
    extern "C" fn(AddonPtr, &Context, &mut ServerConnectionHookData<'_>) -> EventStatus;
/// Events of kind `http` (`requestheaders`, `request`, ...).
pub type HttpFn = extern "C" fn(AddonPtr, &Context, &mut HttpFlow) -> EventStatus;
/// Events of kind `clienthello` (`tls_clienthello`).
pub type ClientHelloFn = extern "C" fn(AddonPtr, &Context, &mut ClientHelloData<'_>) -> EventStatus;
/// Events of kinds `tls_mut` and `tls` (`tls_start_client`, `tls_established_client`, ...).
pub type TlsFn = extern "C" fn(AddonPtr, &Context, &mut TlsData<'_>) -> EventStatus;
/// Events of kind `configure` (`configure`).
pub type ConfigureFn = extern "C" fn(AddonPtr, &Context, &mut ConfigureData) -> EventStatus;

/// Writes `EventTable` from the list of events: the fields' function types are spelled out
/// per kind, because `abi_stable` only understands literal function pointer types, and the
/// last field ends the prefix.
macro_rules! event_table {
    ([] $($entries:tt)*) => {
        event_table!(@types [] $($entries)*);
    };
    (@types [$($done:tt)*]) => {
        event_table!(@fields [] $($done)*);
    };
    (@types [$($done:tt)*] ($(#[$doc:meta])* $name:ident, $variant:ident, lifecycle, $host:ident) $($rest:tt)*) => {
        event_table!(@types [$($done)* {$name [extern "C" fn(AddonPtr, &Context) -> EventStatus]}] $($rest)*);
    };
    (@types [$($done:tt)*] ($(#[$doc:meta])* $name:ident, $variant:ident, client_mut, $host:ident) $($rest:tt)*) => {
        event_table!(@types [$($done)* {$name [extern "C" fn(AddonPtr, &Context, &mut Client) -> EventStatus]}] $($rest)*);
    };
    (@types [$($done:tt)*] ($(#[$doc:meta])* $name:ident, $variant:ident, client, $host:ident) $($rest:tt)*) => {
        event_table!(@types [$($done)* {$name [extern "C" fn(AddonPtr, &Context, &mut Client) -> EventStatus]}] $($rest)*);
    };
    (@types [$($done:tt)*] ($(#[$doc:meta])* $name:ident, $variant:ident, server_mut, $host:ident) $($rest:tt)*) => {
        event_table!(@types [$($done)* {$name [extern "C" fn(AddonPtr, &Context, &mut ServerConnectionHookData<'_>) -> EventStatus]}] $($rest)*);
    };
    (@types [$($done:tt)*] ($(#[$doc:meta])* $name:ident, $variant:ident, server, $host:ident) $($rest:tt)*) => {
        event_table!(@types [$($done)* {$name [extern "C" fn(AddonPtr, &Context, &mut ServerConnectionHookData<'_>) -> EventStatus]}] $($rest)*);
    };
    (@types [$($done:tt)*] ($(#[$doc:meta])* $name:ident, $variant:ident, http, $host:ident) $($rest:tt)*) => {
        event_table!(@types [$($done)* {$name [extern "C" fn(AddonPtr, &Context, &mut HttpFlow) -> EventStatus]}] $($rest)*);
    };
    (@types [$($done:tt)*] ($(#[$doc:meta])* $name:ident, $variant:ident, clienthello, $host:ident) $($rest:tt)*) => {
        event_table!(@types [$($done)* {$name [extern "C" fn(AddonPtr, &Context, &mut ClientHelloData<'_>) -> EventStatus]}] $($rest)*);
    };
    (@types [$($done:tt)*] ($(#[$doc:meta])* $name:ident, $variant:ident, tls_mut, $host:ident) $($rest:tt)*) => {
        event_table!(@types [$($done)* {$name [extern "C" fn(AddonPtr, &Context, &mut TlsData<'_>) -> EventStatus]}] $($rest)*);
    };
    (@types [$($done:tt)*] ($(#[$doc:meta])* $name:ident, $variant:ident, configure, $host:ident) $($rest:tt)*) => {
        event_table!(@types [$($done)* {$name [extern "C" fn(AddonPtr, &Context, &mut ConfigureData) -> EventStatus]}] $($rest)*);
    };
    (@types [$($done:tt)*] ($(#[$doc:meta])* $name:ident, $variant:ident, tls, $host:ident) $($rest:tt)*) => {
        event_table!(@types [$($done)* {$name [extern "C" fn(AddonPtr, &Context, &mut TlsData<'_>) -> EventStatus]}] $($rest)*);
    };
    (@fields [$($done:tt)*] {$name:ident [$($ty:tt)*]}) => {
        event_table!(@emit
            $($done)*
            #[doc = ::core::concat!("`", ::core::stringify!($name), "`")]
            #[sabi(last_prefix_field)]
            pub $name: Option<$($ty)*>,
        );
    };
    (@fields [$($done:tt)*] {$name:ident [$($ty:tt)*]} $($rest:tt)+) => {
        event_table!(@fields [
            $($done)*
            #[doc = ::core::concat!("`", ::core::stringify!($name), "`")]
            pub $name: Option<$($ty)*>,
        ] $($rest)+);
    };
    (@emit $($fields:tt)*) => {
        /// One optional function pointer per event; `None` for events the addon does not
        /// implement. Generated from [`for_each_event!`](crate::for_each_event), in its order.
        ///
        /// The field types spell out the function types of [`LifecycleFn`], [`ClientFn`],
        /// [`ServerFn`], [`HttpFn`], [`ClientHelloFn`] and [`TlsFn`]. Events are appended at
        /// the end only.
        #[repr(C)]
        #[derive(StableAbi)]
        #[sabi(kind(Prefix(prefix_ref = EventTableRef)))]
        #[sabi(missing_field(default))]
        pub struct EventTable {
            $($fields)*
        }
    };
}

crate::for_each_event!(event_table);

/// One addon as a plugin hands it to the host.
#[repr(C)]
#[derive(StableAbi)]
pub struct RawAddon {
    /// The name used in logs.
    pub name: RString,
    /// The addon object, passed back to every event function.
    pub state: AddonPtr,
    /// The addon's event functions.
    pub events: EventTableRef,
    /// The events the host runs on a blocking thread instead of a worker, one bit per event
    /// in event-table order ([`Addon::BLOCKING`]).
    pub blocking: u64,
}

impl RawAddon {
    /// Erases `addon`, leaking it: addons live as long as the process.
    pub fn new<T: Addon>(addon: T) -> RawAddon {
        RawAddon {
            name: addon.name().into(),
            state: Box::into_raw(Box::new(addon)) as AddonPtr,
            events: Shims::<T>::TABLE,
            blocking: T::BLOCKING.bits(),
        }
    }
}

/// What the host provides to addons; each function receives the calling addon's [`Context`]
/// (or an object the host made for it).
///
/// Append new functions at the end only, with `#[sabi(missing_field(option))]`: every
/// function up to the last prefix field is there in every host of this minor version.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = HostRef)))]
#[sabi(missing_field(panic))]
pub struct HostVTable {
    /// Writes a line to the host's log.
    pub log: extern "C" fn(&Context, Level, RStr<'_>),
    /// The current value of the option called by the name, as text (`RNone` when the option
    /// is unset or there is no such option).
    pub option: extern "C" fn(&Context, RStr<'_>) -> ROption<RString>,
    /// Compiles a flow filter expression (mitmproxy's filter language); `Err` says what is
    /// wrong and where.
    pub filter_compile: extern "C" fn(&Context, RStr<'_>) -> RResult<FilterPtr, RString>,
    /// Whether a compiled filter matches a flow.
    pub filter_matches: extern "C" fn(FilterPtr, &HttpFlow) -> bool,
    /// Frees a compiled filter.
    pub filter_free: extern "C" fn(FilterPtr),
    /// Appends a flow, encoded in a capture format, to the buffer.
    pub encode_flow:
        extern "C" fn(&Context, &HttpFlow, CaptureFormat, &mut RVec<u8>) -> RResult<(), RString>,
    /// Pauses the flow of the running event; the host waits for the pause's resolution
    /// before the next addon sees the flow. Since 0.4.0.
    pub intercept: extern "C" fn(&Context, &mut HttpFlow) -> PausedPtr,
    /// Runs the function with the paused flow (and the data pointer), under the pause's
    /// lock; does not call it when the flow is gone or resolved. Since 0.4.0.
    pub paused_with: extern "C" fn(PausedPtr, FlowCallback, *mut c_void),
    /// Resolves a pause (resume or kill); the first resolution wins. Since 0.4.0.
    pub paused_resolve: extern "C" fn(PausedPtr, Resolution),
    /// Drops the addon's reference to a pause. Since 0.4.0.
    pub paused_release: extern "C" fn(PausedPtr),
    /// Asks the proxy to shut down, as Ctrl-C does (mitmproxy's `ctx.master.shutdown()`).
    /// Since 0.4.0.
    pub shutdown: extern "C" fn(&Context),
    /// Declares an option of the calling addon (in `load`); `Err` says why it was refused
    /// (a name taken by another addon or the proxy, a default that is not of the kind).
    /// Since 0.4.0.
    pub add_option: extern "C" fn(&Context, &OptionDecl<'_>) -> RResult<(), RString>,
    /// Writes the current value of the option called by the name into the last argument;
    /// `false` when there is no such option. Since 0.4.0.
    pub get_option: extern "C" fn(&Context, RStr<'_>, &mut OptionValue) -> bool,
    /// Registers a command of the calling addon; the host takes the handler. Since 0.4.0.
    pub add_command: extern "C" fn(&Context, CommandDecl<'_>) -> RResult<(), RString>,
    /// Calls a command by name with arguments as text (mitmproxy's `call_strings`); `Ok` is
    /// the result as text. Since 0.4.0.
    pub call_command:
        extern "C" fn(&Context, RStr<'_>, RSlice<'_, RStr<'_>>) -> RResult<RString, RString>,
    /// Runs the function with the flow of that id, if the proxy holds it (a paused flow), under
    /// its lock; `false` when it does not. Since 0.4.0.
    pub flow_with: extern "C" fn(&Context, Uuid, FlowCallback, *mut c_void) -> bool,
    /// Queues a message for the live WebSocket flow of that id: to the client (`true`) or
    /// to the server, text (`true`) or binary; `Err` when there is no such open WebSocket
    /// or its queue is full. Since 0.5.0.
    pub inject_websocket:
        extern "C" fn(&Context, Uuid, bool, RSlice<'_, u8>, bool) -> RResult<(), RString>,
    /// Queues a copy of the flow for client replay (mitmproxy's `replay.client`); `Err` says
    /// why the flow cannot be replayed (live, paused, WebSocket, no request body). Since
    /// 0.5.0.
    pub replay_client: extern "C" fn(&Context, &HttpFlow) -> RResult<(), RString>,
    /// Reads the HTTP flows of a flow file (mitmproxy's format, any version the host reads)
    /// into the vector; `Err` says why the file could not be read. Since 0.5.0.
    #[sabi(last_prefix_field)]
    pub read_flows: extern "C" fn(&Context, RStr<'_>, &mut RVec<HttpFlow>) -> RResult<(), RString>,
}

/// A command's result as it crosses the boundary.
pub type CommandResult = RResult<CommandValue, RString>;

/// A function the host calls with a paused flow and the caller's data pointer.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy)]
pub struct FlowCallback(pub extern "C" fn(*mut c_void, &mut HttpFlow));

/// A filter the host compiled, erased (only the host's filter functions interpret it).
pub type FilterPtr = *const c_void;

/// What the plugin's `new_addons` returns: its addons, or why it could not build them.
pub type NewAddonsResult = RResult<RVec<RawAddon>, RString>;

/// The root module of a plugin library.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// The plugin crate's name.
    pub name: RStr<'static>,
    /// The plugin crate's version.
    pub version: RStr<'static>,
    /// Builds the plugin's addons, in order. Called once per load.
    #[sabi(last_prefix_field)]
    pub new_addons: extern "C" fn() -> NewAddonsResult,
    /// Whether the plugin was built with `panic = "unwind"`, so that the shims can catch its
    /// panics; the host refuses a plugin that says `false`. Since 0.4.0, after the prefix mark:
    /// a module without it (written by hand) is taken as unknown and loaded.
    #[sabi(missing_field(option))]
    pub panic_unwind: bool,
}

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "interpose_plugin";
    const NAME: &'static str = "interpose-plugin-abi";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

impl PluginModuleRef {
    /// Wraps a module that lives for the whole program.
    pub const fn from_static(module: &'static WithMetadata<PluginModule>) -> Self {
        PluginModuleRef(module.static_as_prefix())
    }
}

/// A `PluginModule` with the metadata prefix types need, for `static` declarations.
pub type StaticPluginModule = WithMetadata<PluginModule>;

/// Runs `f`, turning a panic into `Err(message)` so it never unwinds into the host.
#[inline]
pub fn guard(f: impl FnOnce()) -> EventStatus {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => ROk(()),
        Err(payload) => RErr(panic_message(payload.as_ref()).into()),
    }
}

/// Runs a plugin's addon constructors, turning a panic into `Err(message)`.
pub fn guard_new_addons(make: impl FnOnce() -> RVec<RawAddon>) -> NewAddonsResult {
    match catch_unwind(AssertUnwindSafe(make)) {
        Ok(addons) => ROk(addons),
        Err(payload) => RErr(panic_message(payload.as_ref()).into()),
    }
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-text payload".to_string()
    }
}

/// The `extern "C"` event functions and the event table of addon type `T`.
pub struct Shims<T>(PhantomData<T>);

/// The `extern "C"` function of one event, by kind: it turns the erased pointer back into
/// `&T` and calls the event method inside [`guard`].
macro_rules! shim {
    (lifecycle $name:ident) => {
        extern "C" fn $name(this: AddonPtr, ctx: &Context) -> EventStatus {
            // SAFETY: see `Shims::addon`.
            let addon = unsafe { Self::addon(this) };
            guard(|| addon.$name(ctx))
        }
    };
    (client_mut $name:ident) => {
        shim!(@with $name client: &mut Client);
    };
    (client $name:ident) => {
        shim!(@with $name client: &mut Client);
    };
    (server_mut $name:ident) => {
        shim!(@with $name data: &mut ServerConnectionHookData<'_>);
    };
    (server $name:ident) => {
        shim!(@with $name data: &mut ServerConnectionHookData<'_>);
    };
    (http $name:ident) => {
        shim!(@with $name flow: &mut HttpFlow);
    };
    (clienthello $name:ident) => {
        shim!(@with $name data: &mut ClientHelloData<'_>);
    };
    (tls_mut $name:ident) => {
        shim!(@with $name data: &mut TlsData<'_>);
    };
    (tls $name:ident) => {
        shim!(@with $name data: &mut TlsData<'_>);
    };
    (configure $name:ident) => {
        shim!(@with $name data: &mut ConfigureData);
    };
    (@with $name:ident $arg:ident: $ty:ty) => {
        extern "C" fn $name(this: AddonPtr, ctx: &Context, $arg: $ty) -> EventStatus {
            // SAFETY: see `Shims::addon`.
            let addon = unsafe { Self::addon(this) };
            guard(|| addon.$name(ctx, $arg))
        }
    };
}

macro_rules! shims {
    ([] $(($(#[$doc:meta])* $name:ident, $variant:ident, $kind:ident, $host:ident))*) => {
        impl<T: Addon> Shims<T> {
            /// The addon behind an erased pointer.
            ///
            /// # Safety
            ///
            /// `this` must be the pointer `RawAddon::new::<T>` leaked; the tables holding the
            /// shims of `T` are only ever paired with such pointers.
            unsafe fn addon<'a>(this: AddonPtr) -> &'a T {
                // SAFETY: the caller's contract; addons are leaked, so never freed.
                unsafe { &*(this as *const T) }
            }

            $(shim!($kind $name);)*

            const TABLE_WITH_METADATA: &'static WithMetadata<EventTable> =
                &WithMetadata::new(EventTable {
                    $($name: if T::EVENTS.contains(Event::$variant) {
                        Some(Self::$name)
                    } else {
                        None
                    },)*
                });

            /// The event table of `T`: a pointer only for the events `T` implements.
            pub const TABLE: EventTableRef =
                EventTableRef(Self::TABLE_WITH_METADATA.static_as_prefix());
        }
    };
}

crate::for_each_event!(shims);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{addon, testing};

    struct Gate;

    #[addon]
    impl Addon for Gate {
        fn http_connect(&self, _ctx: &Context, flow: &mut HttpFlow) {
            if flow.request.path == "/panic" {
                panic!("gate broke");
            }
            flow.comment = "gated".into();
        }
    }

    struct Everything;

    impl Addon for Everything {}

    #[test]
    fn tables_hold_only_the_implemented_events_and_shims_catch_panics() {
        let gate = RawAddon::new(Gate);
        let table = gate.events;
        assert!(table.request().is_none() && table.load().is_none());
        let call = table.http_connect().expect("implemented");
        let tctx = testing::TestContext::new();
        let mut flow = testing::flow();
        assert_eq!(call(gate.state, tctx.ctx(), &mut flow), ROk(()));
        assert_eq!(flow.comment, "gated");
        flow.request.path = "/panic".into();
        assert_eq!(
            call(gate.state, tctx.ctx(), &mut flow),
            RErr("gate broke".into())
        );

        // Without #[addon], every event has a function.
        let all = RawAddon::new(Everything).events;
        assert!(all.load().is_some() && all.client_disconnected().is_some());
        assert!(all.server_connect().is_some() && all.http_connect().is_some());
        assert!(all.tls_clienthello().is_some() && all.tls_failed_server().is_some());
    }
}
