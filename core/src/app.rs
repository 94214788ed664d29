//! Putting the pieces together: load addons, run the proxy until Ctrl-C or SIGTERM, and send
//! `load`, `running` and `done` to every addon.

use std::{path::PathBuf, sync::Arc};

use abi_stable::std_types::{RErr, ROk};
use interpose_plugin_abi::ffi::{PluginModuleRef, RawAddon};

use crate::{
    addons::{
        builtin_plugins, builtin_plugins_after, publish_options, shutdown_requested, AddonManager,
        LifecycleEvent,
    },
    commands,
    control::{self, Control, ControlError, Endpoint},
    filter::Filter,
    logging,
    options::{expand_home, live, CoreOptions, OptionError, OptionStore},
    plugin::{plugin_paths, PluginLoader},
    proxy::{serve, LiveOptions, ServeError},
    readfile::{read_flows, ReadFileError},
};

/// Why the proxy stopped with an error.
#[derive(Debug)]
pub enum RunError {
    /// An option is wrong, or a config file key names no option once plugins have loaded.
    Options(OptionError),
    /// The async runtime could not start.
    Runtime(std::io::Error),
    /// The proxy could not serve.
    Serve(ServeError),
    /// The flow file given with `-r` could not be read (wholly or in part).
    ReadFile(ReadFileError),
    /// An addon's option could not be declared, or an addon refused the options' values in
    /// `configure`.
    AddonOptions(String),
    /// The control endpoint could not be set up.
    Control(ControlError),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Options(e) => e.fmt(f),
            RunError::Runtime(e) => write!(f, "cannot start the async runtime: {e}"),
            RunError::Serve(e) => e.fmt(f),
            RunError::ReadFile(e) => e.fmt(f),
            RunError::AddonOptions(e) => write!(f, "option error: {e}"),
            RunError::Control(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RunError {}

/// Runs the proxy with the options in `store` until Ctrl-C or SIGTERM. Config file keys that
/// no option had are checked once plugins have loaded: any left is an error (after `done`).
pub fn run(mut store: OptionStore) -> Result<(), RunError> {
    let options = store.core_options().map_err(RunError::Options)?;
    logging::init(options.termlog_verbosity);
    let addons = Arc::new(load_plugins(&store, &options));
    // The `set` command applies changed options to the running proxy through a clone.
    let live = LiveOptions::new(options.clone(), Arc::clone(&addons));
    // The options addons declared in `load` join the store; then the config file's keys and
    // the `--set`s that named them get their values, and every addon sees all options once.
    let declared = live::take_declared(&mut store).map_err(RunError::AddonOptions);
    if let Err(e) = declared {
        addons.lifecycle(LifecycleEvent::Done);
        return Err(e);
    }
    if let Err(e) = store.resolve_pending() {
        addons.lifecycle(LifecycleEvent::Done);
        return Err(RunError::Options(e));
    }
    publish_options(&store);
    let names: Vec<&str> = store.names().collect();
    if let Err(why) = addons.configure(names) {
        addons.lifecycle(LifecycleEvent::Done);
        return Err(RunError::AddonOptions(why));
    }
    let control_spec = store.value_text("control");
    commands::install(commands::Proxy {
        addons: Arc::clone(&addons),
        apply: Box::new({
            let live = live.clone();
            let control_spec = control_spec.clone();
            move |store: &OptionStore| {
                if store.value_text("control") != control_spec {
                    // Never let a client believe it moved or closed the endpoint.
                    return Err("control is read at startup: restart the proxy to change it".into());
                }
                live.apply_store(store).map_err(|e| e.to_string())
            }
        }),
    });
    let server = store
        .get("server")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    if !server {
        // -n: no proxy; read the file (if any) through the addons, then stop.
        addons.lifecycle(LifecycleEvent::Running);
        let read = read_rfile(&store, &options, &addons);
        addons.lifecycle(LifecycleEvent::Done);
        return read;
    }
    if let Err(e) = read_rfile(&store, &options, &addons) {
        addons.lifecycle(LifecycleEvent::Done);
        return Err(e);
    }
    if let Err(e) = queue_client_replay(&store) {
        addons.lifecycle(LifecycleEvent::Done);
        return Err(e);
    }
    // As mitmdump: with -r, -C or -S, the proxy stops once they are done (the file read,
    // the requests replayed, the saved responses used up), unless --keepserving.
    let stop_when_done = store.get("keepserving").and_then(|v| v.as_bool()) != Some(true)
        && (store.value_text("rfile").is_some()
            || !store.list("client_replay").is_empty()
            || !store.list("server_replay").is_empty());
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = options.threads {
        runtime.worker_threads(threads);
    }
    let runtime = runtime.enable_all().build().map_err(RunError::Runtime)?;
    // The signal handlers are installed before the proxy listens: a SIGTERM that arrives
    // right after the "listening" line still shuts it down cleanly.
    let shutdown = {
        let _context = runtime.enter();
        let signal = shutdown_signal();
        async move {
            tokio::select! {
                () = signal => {}
                () = shutdown_requested() => {}
                () = replays_done(), if stop_when_done => {
                    tracing::info!("replays and rfile done; stopping (--keepserving keeps serving)");
                }
            }
        }
    };
    let control = match open_control(control_spec.as_deref(), &options, &runtime) {
        Ok(control) => control,
        Err(e) => {
            addons.lifecycle(LifecycleEvent::Done);
            return Err(e);
        }
    };
    let result = runtime.block_on(serve(live, shutdown));
    // Tasks still running (HTTP/2 streams, say) end here, their flows' `error` events
    // included, so that `done` is the last event every addon sees.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    // The socket file goes before `done`: no client reaches a proxy that is stopping.
    drop(control);
    addons.lifecycle(LifecycleEvent::Done);
    result.map_err(RunError::Serve)
}

/// Binds the control endpoint `spec` (if set) and serves it on `runtime`.
fn open_control(
    spec: Option<&str>,
    options: &CoreOptions,
    runtime: &tokio::runtime::Runtime,
) -> Result<Option<Control>, RunError> {
    let Some(spec) = spec else {
        return Ok(None);
    };
    let endpoint = Endpoint::parse(spec).map_err(RunError::Control)?;
    let mut control = Control::open(&endpoint, &options.confdir).map_err(RunError::Control)?;
    tracing::info!("control endpoint: {}", control.endpoint());
    if let Some(listener) = control.take_listener() {
        let _context = runtime.enter();
        runtime.spawn(control::server::serve(listener));
    }
    Ok(Some(control))
}

/// Publishes the options and the proxy's own commands, loads the addons and sends them
/// `load` (where they declare their options and commands).
fn load_plugins(store: &OptionStore, options: &CoreOptions) -> AddonManager {
    publish_options(store);
    commands::register_builtins();
    let addons = load_addons(options);
    addons.lifecycle(LifecycleEvent::Load);
    addons
}

/// What `--options` prints: every option (the proxy's and those the plugins declare, which
/// loads them, as mitmproxy's `--options` loads scripts), with its value and where the value
/// came from.
pub fn describe_options(mut store: OptionStore) -> Result<String, RunError> {
    let options = store.core_options().map_err(RunError::Options)?;
    let addons = load_plugins(&store, &options);
    let result = live::take_declared(&mut store)
        .map_err(RunError::AddonOptions)
        .and_then(|()| store.resolve_known_pending().map_err(RunError::Options))
        .map(|()| store.describe());
    addons.lifecycle(LifecycleEvent::Done);
    result
}

/// Reads the `rfile` flow file, if one is set, through the addons (filtered by
/// `readfile_filter`).
fn read_rfile(
    store: &OptionStore,
    options: &CoreOptions,
    addons: &AddonManager,
) -> Result<(), RunError> {
    let Some(path) = store.value_text("rfile") else {
        return Ok(());
    };
    let filter = match store.value_text("readfile_filter") {
        // The option's validator parsed it already.
        Some(expr) => Filter::parse(&expr).ok(),
        None => None,
    };
    let summary = read_flows(&expand_home(&path), filter.as_ref(), &options.mode, addons)
        .map_err(RunError::ReadFile)?;
    if summary.skipped > 0 {
        tracing::warn!(
            "{path}: {} TCP, UDP or DNS flows skipped (Interpose reads HTTP flows)",
            summary.skipped
        );
    }
    tracing::debug!("read {} flows from {path}", summary.loaded);
    Ok(())
}

/// Queues the flows of the `client_replay` files for replay.
fn queue_client_replay(store: &OptionStore) -> Result<(), RunError> {
    for path in store.list("client_replay") {
        let flows = crate::readfile::load_flows(&expand_home(path)).map_err(RunError::ReadFile)?;
        let mut queued = 0;
        for flow in &flows {
            match crate::proxy::replay::enqueue(flow) {
                Ok(()) => queued += 1,
                Err(why) => tracing::warn!("{path}: flow {}: {why}", flow.id),
            }
        }
        tracing::info!("{path}: {queued} flows queued for client replay");
    }
    Ok(())
}

/// Completes once no replayed request is queued or in flight and no saved response is left
/// to replay (checked every 100 ms, as mitmproxy's keepserving does).
async fn replays_done() {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let server_left =
            commands::call("replay.server.count", &[]).is_ok_and(|count| count.trim() != "0");
        if crate::proxy::replay::count() == 0 && !server_left {
            return;
        }
    }
}

/// The addons of built-in plugins `modules`, labelled for logs.
fn builtin_addons(modules: Vec<PluginModuleRef>, addons: &mut Vec<(String, RawAddon)>) {
    for module in modules {
        match (module.new_addons())() {
            ROk(list) => {
                let label = format!("builtin {}", module.name());
                addons.extend(list.into_iter().map(|addon| (label.clone(), addon)));
            }
            RErr(message) => tracing::error!(
                "built-in plugin {} failed to create its addons: {message}",
                module.name()
            ),
        }
    }
}

/// Built-in addons that shape traffic first, then each plugin's addons in load order (the
/// plugins folder in file-name order, then the `plugins` option: config.yaml, `--set`,
/// `--plugin`), then the built-in addons that record flows. A plugin that fails to load is
/// reported and skipped.
pub fn load_addons(options: &CoreOptions) -> AddonManager {
    let mut addons: Vec<(String, RawAddon)> = Vec::new();
    builtin_addons(builtin_plugins(), &mut addons);

    let mut paths = Vec::new();
    if let Some(dir) = &options.plugins_dir {
        match plugin_paths(dir) {
            Ok(found) => paths.extend(found),
            Err(e) => tracing::error!("cannot read the plugins folder {}: {e}", dir.display()),
        }
    }
    paths.extend(options.plugins.iter().cloned());

    let builtins: Vec<String> = builtin_plugins()
        .into_iter()
        .chain(builtin_plugins_after())
        .map(|module| module.name().to_string())
        .collect();
    let mut loader = PluginLoader::with_builtins(builtins.iter().map(String::as_str));
    let mut loaded: Vec<PathBuf> = Vec::new();
    for path in paths {
        let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if loaded.contains(&canonical) {
            tracing::warn!("plugin {} is already loaded; skipping it", path.display());
            continue;
        }
        match loader.load(&path) {
            Ok(plugin) => {
                let names: Vec<String> = plugin.addons.iter().map(|a| a.name.to_string()).collect();
                tracing::info!(
                    "Loaded plugin {} {} from {}: {}",
                    plugin.name,
                    plugin.version,
                    plugin.path.display(),
                    if names.is_empty() {
                        "no addons".to_string()
                    } else {
                        format!("addons {}", names.join(", "))
                    }
                );
                let label = format!("plugin {}", plugin.name);
                addons.extend(plugin.addons.into_iter().map(|a| (label.clone(), a)));
                loaded.push(canonical);
            }
            Err(e) => tracing::error!("{e}"),
        }
    }
    builtin_addons(builtin_plugins_after(), &mut addons);
    AddonManager::new(addons)
}

/// Completes on Ctrl-C or (on Unix) SIGTERM. The handlers are installed when this is called
/// (inside the runtime), not when the future is first polled.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (mut interrupt, mut terminate) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let interrupted = async {
                match interrupt.as_mut() {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let terminated = async {
                match terminate.as_mut() {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = interrupted => {},
                () = terminated => {},
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
