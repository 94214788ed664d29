//! What the host provides to addons through their [`Context`]: logging into the proxy's log,
//! option values, flow filters and capture formats.

use std::{
    ffi::c_void,
    hash::{Hash, Hasher},
    sync::{LazyLock, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::Notify;

use abi_stable::{
    prefix_type::WithMetadata,
    std_types::{RErr, ROk, ROption, RResult, RSlice, RStr, RString, RVec},
};
use interpose_plugin_abi::{
    commands::CommandDecl,
    ffi::{FilterPtr, FlowCallback, HostRef, HostVTable},
    flow::Uuid,
    options::{OptionDecl, OptionValue},
    pause::host as pause,
    CaptureFormat, Context, HttpFlow, Level,
};

use crate::{
    capture::{flowfile, har},
    commands,
    filter::Filter,
    logging::{ADDON_LOG_LEVEL, ADDON_TARGET},
    options::{live, OptionStore},
};

/// Identical lines an addon repeats within this window are counted instead of printed.
const REPEAT_WINDOW: Duration = Duration::from_secs(1);

/// The host's per-addon data behind `Context::host_data`.
struct AddonIdentity {
    name: String,
    /// `'name' (plugin crate)`, for messages about the addon.
    label: String,
    repeats: Mutex<Repeats>,
}

/// The addon's last printed line, to fold repeats of it.
#[derive(Default)]
struct Repeats {
    /// Hash of the last printed line (level and text).
    last: u64,
    /// When it was printed.
    printed_at: Option<Instant>,
    /// Identical lines since, not printed.
    suppressed: u64,
}

impl AddonIdentity {
    /// Whether to print `message` now; also how many repeats of the previous line to report
    /// first.
    fn admit(&self, level: Level, message: &str) -> Option<u64> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (level as u8, message).hash(&mut hasher);
        let key = hasher.finish();
        let mut repeats = self.repeats.lock().unwrap_or_else(|e| e.into_inner());
        if repeats.last == key
            && repeats
                .printed_at
                .is_some_and(|t| t.elapsed() < REPEAT_WINDOW)
        {
            repeats.suppressed += 1;
            return None;
        }
        repeats.last = key;
        repeats.printed_at = Some(Instant::now());
        Some(std::mem::take(&mut repeats.suppressed))
    }
}

static HOST: WithMetadata<HostVTable> = WithMetadata::new(HostVTable {
    log: host_log,
    option: host_option,
    filter_compile: host_filter_compile,
    filter_matches: host_filter_matches,
    filter_free: host_filter_free,
    encode_flow: host_encode_flow,
    intercept: pause::intercept,
    paused_with: pause::with,
    paused_resolve: pause::resolve,
    paused_release: pause::release,
    shutdown: host_shutdown,
    add_option: host_add_option,
    get_option: host_get_option,
    add_command: host_add_command,
    call_command: host_call_command,
    flow_with: host_flow_with,
    inject_websocket: host_inject_websocket,
    replay_client: host_replay_client,
    read_flows: host_read_flows,
});

extern "C" fn host_read_flows(
    _ctx: &Context,
    path: RStr<'_>,
    out: &mut RVec<HttpFlow>,
) -> RResult<(), RString> {
    match crate::readfile::load_flows(&crate::options::expand_home(path.as_str())) {
        Ok(flows) => {
            out.extend(flows);
            ROk(())
        }
        Err(e) => RErr(e.to_string().into()),
    }
}

extern "C" fn host_replay_client(_ctx: &Context, flow: &HttpFlow) -> RResult<(), RString> {
    crate::proxy::replay::enqueue(flow)
        .map_err(RString::from)
        .into()
}

extern "C" fn host_inject_websocket(
    _ctx: &Context,
    id: Uuid,
    to_client: bool,
    content: RSlice<'_, u8>,
    is_text: bool,
) -> RResult<(), RString> {
    let injection = crate::proxy::websocket::inject::Injection {
        to_client,
        content: content.to_vec(),
        is_text,
    };
    crate::proxy::websocket::inject::inject(id, injection)
        .map_err(RString::from)
        .into()
}

extern "C" fn host_add_option(ctx: &Context, decl: &OptionDecl<'_>) -> RResult<(), RString> {
    live::declare(&identity(ctx).label, decl)
        .map_err(RString::from)
        .into()
}

extern "C" fn host_get_option(_ctx: &Context, name: RStr<'_>, out: &mut OptionValue) -> bool {
    match live::current().typed(name.as_str()) {
        Some(value) => {
            *out = value.clone();
            true
        }
        None => false,
    }
}

extern "C" fn host_add_command(ctx: &Context, decl: CommandDecl<'_>) -> RResult<(), RString> {
    let CommandDecl {
        name,
        help,
        params,
        handler,
    } = decl;
    let params = params
        .iter()
        .map(|p| (p.name.to_string(), p.kind))
        .collect();
    let identity = identity(ctx);
    // SAFETY: every context handed to addons is leaked by `new_context`: it lives as long as
    // the process.
    let ctx: &'static Context = unsafe { &*(ctx as *const Context) };
    commands::add_addon_command(
        &identity.label,
        ctx,
        name.as_str(),
        help.as_str(),
        params,
        handler,
    )
    .map_err(RString::from)
    .into()
}

extern "C" fn host_call_command(
    _ctx: &Context,
    name: RStr<'_>,
    args: RSlice<'_, RStr<'_>>,
) -> RResult<RString, RString> {
    let args: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
    commands::call(name.as_str(), &args)
        .map(RString::from)
        .map_err(RString::from)
        .into()
}

extern "C" fn host_flow_with(
    _ctx: &Context,
    id: Uuid,
    call: FlowCallback,
    data: *mut c_void,
) -> bool {
    commands::flows::with_flow(id, |flow| (call.0)(data, flow)).is_some()
}

/// Set when an addon asks the proxy to shut down ([`Context::shutdown`]).
static SHUTDOWN: LazyLock<Notify> = LazyLock::new(Notify::new);

extern "C" fn host_shutdown(ctx: &Context) {
    tracing::info!(
        "addon '{}' asked the proxy to shut down",
        identity(ctx).name
    );
    request_shutdown();
}

/// Asks the proxy to shut down, as an addon's `ctx.shutdown()` does.
pub fn request_shutdown() {
    // `notify_one` keeps a permit when nobody waits yet.
    SHUTDOWN.notify_one();
}

/// Completes when an addon asks the proxy to shut down.
pub async fn shutdown_requested() {
    SHUTDOWN.notified().await;
}

/// The identity behind a context the host made.
fn identity(ctx: &Context) -> &AddonIdentity {
    // SAFETY: every context handed to addons is made by `new_context`, whose `host_data` is a
    // leaked `AddonIdentity`, valid for the rest of the process.
    unsafe { &*(ctx.host_data() as *const AddonIdentity) }
}

/// Makes `store`'s values the ones addons read (`Context::option`, `Context::get_option`).
pub fn publish_options(store: &OptionStore) {
    live::publish(store);
}

extern "C" fn host_option(_ctx: &Context, name: RStr<'_>) -> ROption<RString> {
    live::current()
        .store
        .value_text(name.as_str())
        .map(RString::from)
        .into()
}

extern "C" fn host_filter_compile(
    _ctx: &Context,
    expression: RStr<'_>,
) -> RResult<FilterPtr, RString> {
    match Filter::parse(expression.as_str()) {
        Ok(filter) => ROk(Box::into_raw(Box::new(filter)) as FilterPtr),
        Err(e) => RErr(e.to_string().into()),
    }
}

extern "C" fn host_filter_matches(filter: FilterPtr, flow: &HttpFlow) -> bool {
    // SAFETY: addons only hold pointers `host_filter_compile` made, until they free them.
    let filter = unsafe { &*(filter as *const Filter) };
    filter.matches(flow)
}

extern "C" fn host_filter_free(filter: FilterPtr) {
    // SAFETY: as in `host_filter_matches`; the addon frees each filter once (in `Drop`).
    drop(unsafe { Box::from_raw(filter as *mut Filter) });
}

extern "C" fn host_encode_flow(
    _ctx: &Context,
    flow: &HttpFlow,
    format: CaptureFormat,
    out: &mut RVec<u8>,
) -> RResult<(), RString> {
    // Encode straight into the addon's buffer: for a built-in addon (linked into this
    // binary) the `RVec` and `Vec` conversions move the allocation without copying; for a
    // loaded plugin, `into_vec` copies what the buffer held (usually nothing).
    let mut buffer = std::mem::take(out).into_vec();
    match format {
        CaptureFormat::FlowFile => flowfile::write_flow(flow, &mut buffer),
        CaptureFormat::HarEntry => {
            let mut entry = String::new();
            har::har_entry(flow, &mut entry);
            buffer.extend_from_slice(entry.as_bytes());
        }
    }
    *out = RVec::from(buffer);
    ROk(())
}

extern "C" fn host_log(ctx: &Context, level: Level, message: RStr<'_>) {
    let identity = identity(ctx);
    let message = message.as_str();
    let Some(repeated) = identity.admit(level, message) else {
        return;
    };
    let addon = identity.name.as_str();
    if repeated > 0 {
        tracing::info!(
            target: ADDON_TARGET,
            addon,
            "(the previous line repeated {repeated} more times)"
        );
    }
    match level {
        Level::Error => tracing::error!(target: ADDON_TARGET, addon, "{message}"),
        Level::Warn => tracing::warn!(target: ADDON_TARGET, addon, "{message}"),
        Level::Info => tracing::info!(target: ADDON_TARGET, addon, "{message}"),
        Level::Debug => tracing::debug!(target: ADDON_TARGET, addon, "{message}"),
    }
}

/// A context for the addon called `name` of `plugin` (as logs name it: `plugin x`, `builtin
/// x`), living as long as the process (addons are never unloaded).
pub fn new_context(name: &str, plugin: &str) -> &'static Context {
    let identity: &'static AddonIdentity = Box::leak(Box::new(AddonIdentity {
        name: name.to_string(),
        label: format!("'{name}' ({plugin})"),
        repeats: Mutex::default(),
    }));
    // SAFETY: `host_log` accepts this context from any thread, and the identity it points to
    // is leaked, so it outlives every use of the context.
    let ctx = unsafe {
        Context::new(
            HostRef(HOST.static_as_prefix()),
            identity as *const AddonIdentity as *const c_void,
            &ADDON_LOG_LEVEL,
        )
    };
    Box::leak(Box::new(ctx))
}
