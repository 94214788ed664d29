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
//! Evolution rules (pinned by the layout test in this crate): [`EventTable`] and
//! [`HostVTable`] are prefix types, so new events and host functions are appended after the
//! last field; old plugins then simply lack them. Any other change to a type that crosses
//! the boundary is a new ABI version.

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
    std_types::{RErr, ROk, RResult, RStr, RString, RVec},
    StableAbi,
};

use crate::{
    addon::{Addon, Event},
    connection::{Client, ServerConnectionHookData},
    context::{Context, Level},
    flow::HttpFlow,
};

/// Every plugin's entry symbol starts with this; the crate name follows.
pub const ENTRY_SYMBOL_PREFIX: &str = "__interpose_plugin_entry__";

/// An addon object, erased (a `Box<T>` leaked by [`RawAddon::new`]).
pub type AddonPtr = *const c_void;

/// What every event function returns: `Err` carries the message of a panic caught in the
/// addon.
pub type EventStatus = RResult<(), RString>;

/// `load`, `running`, `done`.
pub type LifecycleFn = extern "C" fn(AddonPtr, &Context) -> EventStatus;
/// `client_connected`, `client_disconnected`.
pub type ClientFn = extern "C" fn(AddonPtr, &Context, &mut Client) -> EventStatus;
/// `server_connect`, `server_connected`, `server_disconnected`, `server_connect_error`.
pub type ServerFn =
    extern "C" fn(AddonPtr, &Context, &mut ServerConnectionHookData<'_>) -> EventStatus;
/// `requestheaders`, `request`, `responseheaders`, `response`, `error`.
pub type HttpFn = extern "C" fn(AddonPtr, &Context, &mut HttpFlow) -> EventStatus;

/// One optional function pointer per event; `None` for events the addon does not implement.
///
/// The field types spell out the function types of [`LifecycleFn`], [`ClientFn`],
/// [`ServerFn`] and [`HttpFn`] because `abi_stable` only understands literal function pointer
/// types. Append new events at the end only.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = EventTableRef)))]
#[sabi(missing_field(default))]
pub struct EventTable {
    /// `load`
    pub load: Option<extern "C" fn(AddonPtr, &Context) -> EventStatus>,
    /// `running`
    pub running: Option<extern "C" fn(AddonPtr, &Context) -> EventStatus>,
    /// `done`
    pub done: Option<extern "C" fn(AddonPtr, &Context) -> EventStatus>,
    /// `client_connected`
    pub client_connected: Option<extern "C" fn(AddonPtr, &Context, &mut Client) -> EventStatus>,
    /// `client_disconnected`
    pub client_disconnected: Option<extern "C" fn(AddonPtr, &Context, &mut Client) -> EventStatus>,
    /// `server_connect`
    pub server_connect:
        Option<extern "C" fn(AddonPtr, &Context, &mut ServerConnectionHookData<'_>) -> EventStatus>,
    /// `server_connected`
    pub server_connected:
        Option<extern "C" fn(AddonPtr, &Context, &mut ServerConnectionHookData<'_>) -> EventStatus>,
    /// `server_disconnected`
    pub server_disconnected:
        Option<extern "C" fn(AddonPtr, &Context, &mut ServerConnectionHookData<'_>) -> EventStatus>,
    /// `server_connect_error`
    pub server_connect_error:
        Option<extern "C" fn(AddonPtr, &Context, &mut ServerConnectionHookData<'_>) -> EventStatus>,
    /// `requestheaders`
    pub requestheaders: Option<extern "C" fn(AddonPtr, &Context, &mut HttpFlow) -> EventStatus>,
    /// `request`
    pub request: Option<extern "C" fn(AddonPtr, &Context, &mut HttpFlow) -> EventStatus>,
    /// `responseheaders`
    pub responseheaders: Option<extern "C" fn(AddonPtr, &Context, &mut HttpFlow) -> EventStatus>,
    /// `response`
    pub response: Option<extern "C" fn(AddonPtr, &Context, &mut HttpFlow) -> EventStatus>,
    /// `error`
    #[sabi(last_prefix_field)]
    pub error: Option<extern "C" fn(AddonPtr, &Context, &mut HttpFlow) -> EventStatus>,
    /// `http_connect`
    pub http_connect: Option<extern "C" fn(AddonPtr, &Context, &mut HttpFlow) -> EventStatus>,
}

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
}

impl RawAddon {
    /// Erases `addon`, leaking it: addons live as long as the process.
    pub fn new<T: Addon>(addon: T) -> RawAddon {
        RawAddon {
            name: addon.name().into(),
            state: Box::into_raw(Box::new(addon)) as AddonPtr,
            events: Shims::<T>::TABLE,
        }
    }
}

/// What the host provides to addons; each function receives the calling addon's [`Context`].
///
/// Append new functions at the end only.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = HostRef)))]
#[sabi(missing_field(panic))]
pub struct HostVTable {
    /// Writes a line to the host's log.
    #[sabi(last_prefix_field)]
    pub log: extern "C" fn(&Context, Level, RStr<'_>),
}

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

macro_rules! shims {
    ($($event:ident: $ty:ty = |$addon:ident, $ctx:ident $(, $arg:ident: $arg_ty:ty)?| $call:expr;)*) => {
        impl<T: Addon> Shims<T> {
            $(
                extern "C" fn $event(this: AddonPtr, $ctx: &Context $(, $arg: $arg_ty)?) -> EventStatus {
                    // SAFETY: `this` is the pointer `RawAddon::new::<T>` leaked, and the table
                    // holding this function is only ever paired with it.
                    let $addon = unsafe { &*(this as *const T) };
                    guard(|| $call)
                }
            )*

            const TABLE_WITH_METADATA: &'static WithMetadata<EventTable> =
                &WithMetadata::new(EventTable {
                    $($event: if T::EVENTS.contains(event_of(stringify!($event))) {
                        Some(Self::$event as $ty)
                    } else {
                        None
                    },)*
                });

            /// The event table of `T`: a pointer only for the events `T` implements.
            pub const TABLE: EventTableRef = EventTableRef(Self::TABLE_WITH_METADATA.static_as_prefix());
        }
    };
}

const fn event_of(name: &str) -> Event {
    match Event::from_name(name) {
        Some(event) => event,
        None => panic!("shim without an event"),
    }
}

shims! {
    load: LifecycleFn = |addon, ctx| addon.load(ctx);
    running: LifecycleFn = |addon, ctx| addon.running(ctx);
    done: LifecycleFn = |addon, ctx| addon.done(ctx);
    client_connected: ClientFn = |addon, ctx, client: &mut Client| addon.client_connected(ctx, client);
    client_disconnected: ClientFn = |addon, ctx, client: &mut Client| addon.client_disconnected(ctx, client);
    server_connect: ServerFn = |addon, ctx, data: &mut ServerConnectionHookData<'_>| addon.server_connect(ctx, data);
    server_connected: ServerFn = |addon, ctx, data: &mut ServerConnectionHookData<'_>| addon.server_connected(ctx, data);
    server_disconnected: ServerFn = |addon, ctx, data: &mut ServerConnectionHookData<'_>| addon.server_disconnected(ctx, data);
    server_connect_error: ServerFn = |addon, ctx, data: &mut ServerConnectionHookData<'_>| addon.server_connect_error(ctx, data);
    requestheaders: HttpFn = |addon, ctx, flow: &mut HttpFlow| addon.requestheaders(ctx, flow);
    request: HttpFn = |addon, ctx, flow: &mut HttpFlow| addon.request(ctx, flow);
    responseheaders: HttpFn = |addon, ctx, flow: &mut HttpFlow| addon.responseheaders(ctx, flow);
    response: HttpFn = |addon, ctx, flow: &mut HttpFlow| addon.response(ctx, flow);
    error: HttpFn = |addon, ctx, flow: &mut HttpFlow| addon.error(ctx, flow);
    http_connect: HttpFn = |addon, ctx, flow: &mut HttpFlow| addon.http_connect(ctx, flow);
}
