//! Commands (mitmproxy's command manager): the ones addons register and the proxy's own
//! (`set`, `options.save`, `commands`, `flow.resume`, `flow.kill`, `flow.mark`), called by
//! name with text arguments from addons and from the control endpoint, with typed and checked
//! arguments and clear errors (the closest name for an unknown command, the signature for
//! wrong arguments).

mod builtin;
pub mod flows;

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{Arc, OnceLock, PoisonError, RwLock},
};

use interpose_plugin_abi::{
    commands::{parse_args, CommandHandler, ParamKind},
    CommandValue, Context,
};

use crate::{addons::AddonManager, options::suggest};

pub use builtin::register_builtins;

/// A command's function: an addon's (through the plugin ABI) or the proxy's own.
enum Handler {
    /// An addon's, called with the addon's context.
    Addon {
        handler: CommandHandler,
        ctx: &'static Context,
    },
    /// The proxy's own.
    Builtin(Box<BuiltinFn>),
}

/// The function of one of the proxy's own commands.
type BuiltinFn = dyn Fn(&Proxy, &[CommandValue]) -> Result<CommandValue, String> + Send + Sync;

/// One registered command.
struct Command {
    /// Who offers it (an addon's name, or `interpose`).
    owner: String,
    help: String,
    params: Vec<(String, ParamKind)>,
    handler: Handler,
}

impl Command {
    /// `name param:type ...`, as `commands` lists it and errors show it.
    fn signature(&self, name: &str) -> String {
        let mut out = name.to_string();
        for (param, kind) in &self.params {
            let _ = write!(out, " {param}:{}", kind.name());
        }
        out
    }
}

/// What the proxy's own commands work on.
pub struct Proxy {
    /// The addons (`configure` after `set`).
    pub addons: Arc<AddonManager>,
    /// Applies changed options to the proxy itself; refuses options that need a restart.
    pub apply: Box<ApplyFn>,
}

/// Applies a changed option store to the proxy itself.
pub type ApplyFn = dyn Fn(&crate::options::OptionStore) -> Result<(), String> + Send + Sync;

static COMMANDS: RwLock<BTreeMap<String, Arc<Command>>> = RwLock::new(BTreeMap::new());
static PROXY: OnceLock<Proxy> = OnceLock::new();

/// Registers an addon's command; refused when the name is taken.
pub fn add_addon_command(
    owner: &str,
    ctx: &'static Context,
    name: &str,
    help: &str,
    params: Vec<(String, ParamKind)>,
    handler: CommandHandler,
) -> Result<(), String> {
    add(
        name,
        Command {
            owner: owner.to_string(),
            help: help.to_string(),
            params,
            handler: Handler::Addon { handler, ctx },
        },
    )
}

/// Registers one of the proxy's own commands.
fn add_builtin(
    name: &str,
    help: &str,
    params: &[(&str, ParamKind)],
    f: impl Fn(&Proxy, &[CommandValue]) -> Result<CommandValue, String> + Send + Sync + 'static,
) {
    let command = Command {
        owner: "interpose".to_string(),
        help: help.to_string(),
        params: params.iter().map(|(n, k)| (n.to_string(), *k)).collect(),
        handler: Handler::Builtin(Box::new(f)),
    };
    if let Err(why) = add(name, command) {
        tracing::error!("{why}");
    }
}

fn add(name: &str, command: Command) -> Result<(), String> {
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(format!(
            "{name:?} is not a command name (no spaces, not empty)"
        ));
    }
    let mut commands = COMMANDS.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(existing) = commands.get(name) {
        return Err(format!(
            "command {name} of {} is taken already by {}",
            command.owner, existing.owner
        ));
    }
    commands.insert(name.to_string(), Arc::new(command));
    Ok(())
}

/// Gives the proxy's own commands what they work on (once, at startup).
pub fn install(proxy: Proxy) {
    let _ = PROXY.set(proxy);
}

/// Calls command `name` with `args` as text (mitmproxy's `call_strings`); `Ok` is the result
/// as text.
pub fn call(name: &str, args: &[&str]) -> Result<String, String> {
    let command = COMMANDS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(name)
        .cloned();
    let Some(command) = command else {
        let names = COMMANDS.read().unwrap_or_else(PoisonError::into_inner);
        let close = suggest(name, names.keys().map(String::as_str));
        return Err(match close.first() {
            Some(best) => format!("Unknown command: {name} (did you mean {best}?)"),
            None => format!("Unknown command: {name}"),
        });
    };
    let kinds: Vec<ParamKind> = command.params.iter().map(|(_, k)| *k).collect();
    let mut values = parse_args(&kinds, args)
        .map_err(|why| format!("{why}; usage: {}", command.signature(name)))?;
    for (index, kind) in kinds.iter().enumerate() {
        if *kind == ParamKind::Flows {
            values[index] = flows::argument(args[index])
                .map_err(|why| format!("{why}; usage: {}", command.signature(name)))?;
        }
    }
    let result = match &command.handler {
        Handler::Addon { handler, ctx } => handler.call(ctx, &values),
        Handler::Builtin(f) => match PROXY.get() {
            Some(proxy) => f(proxy, &values),
            None => Err("the proxy is not running".to_string()),
        },
    }?;
    Ok(result.text())
}

/// Every command as `commands` lists it: signature, owner and help, sorted by name.
pub fn listing() -> String {
    let commands = COMMANDS.read().unwrap_or_else(PoisonError::into_inner);
    let mut out = String::new();
    for (name, command) in commands.iter() {
        let _ = writeln!(
            out,
            "{}\n    {} ({})",
            command.signature(name),
            command.help,
            command.owner
        );
    }
    out
}

#[cfg(test)]
mod tests;
