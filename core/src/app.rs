//! Putting the pieces together: load addons, run the proxy until Ctrl-C or SIGTERM, and send
//! `load`, `running` and `done` to every addon.

use std::{path::PathBuf, sync::Arc};

use abi_stable::std_types::{RErr, ROk};
use interpose_plugin_abi::{ffi::RawAddon, Level};

use crate::{
    addons::{builtin_plugins, AddonManager, LifecycleEvent},
    logging,
    options::CoreOptions,
    plugin::{load_plugin, plugin_paths},
    proxy::{serve, Mode, ServeError},
};

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind.
    pub listen_host: String,
    /// Port to bind.
    pub listen_port: u16,
    /// Proxy mode.
    pub mode: Mode,
    /// Most verbose log level printed.
    pub log_level: Level,
    /// Folder of plugins loaded at startup.
    pub plugins_dir: Option<PathBuf>,
    /// Plugins named on the command line, loaded after the folder's.
    pub plugins: Vec<PathBuf>,
    /// Worker threads; `None` for one per CPU core.
    pub threads: Option<usize>,
}

/// Why the proxy stopped with an error.
#[derive(Debug)]
pub enum RunError {
    /// The async runtime could not start.
    Runtime(std::io::Error),
    /// The proxy could not serve.
    Serve(ServeError),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Runtime(e) => write!(f, "cannot start the async runtime: {e}"),
            RunError::Serve(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RunError {}

/// Runs the proxy with `config` until Ctrl-C or SIGTERM.
pub fn run(config: Config) -> Result<(), RunError> {
    logging::init(config.log_level);
    let addons = Arc::new(load_addons(&config));
    addons.lifecycle(LifecycleEvent::Load);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = config.threads {
        runtime.worker_threads(threads);
    }
    let runtime = runtime.enable_all().build().map_err(RunError::Runtime)?;
    let proxy = Arc::new(CoreOptions {
        listen_host: config.listen_host,
        listen_port: config.listen_port,
        mode: config.mode,
        ..CoreOptions::default()
    });
    let result = runtime.block_on(serve(proxy, Arc::clone(&addons), shutdown_signal()));
    addons.lifecycle(LifecycleEvent::Done);
    result.map_err(RunError::Serve)
}

/// Built-in addons first, then each plugin's addons in load order: the plugins folder in
/// file-name order, then `--plugin` in the order given. A plugin that fails to load is
/// reported and skipped.
pub fn load_addons(config: &Config) -> AddonManager {
    let mut addons: Vec<(String, RawAddon)> = Vec::new();
    for module in builtin_plugins() {
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

    let mut paths = Vec::new();
    if let Some(dir) = &config.plugins_dir {
        match plugin_paths(dir) {
            Ok(found) => paths.extend(found),
            Err(e) => tracing::error!("cannot read the plugins folder {}: {e}", dir.display()),
        }
    }
    paths.extend(config.plugins.iter().cloned());

    let mut loaded: Vec<PathBuf> = Vec::new();
    for path in paths {
        let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if loaded.contains(&canonical) {
            tracing::warn!("plugin {} is already loaded; skipping it", path.display());
            continue;
        }
        match load_plugin(&path) {
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
    AddonManager::new(addons)
}

/// Completes on Ctrl-C or (on Unix) SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
