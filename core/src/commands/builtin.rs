//! The proxy's own commands, as mitmproxy names them: `set`, `options.save`, `commands`,
//! `flow.resume`, `flow.kill`, `flow.mark`, `inject.websocket`, `replay.client.file`,
//! `replay.client.count`, `replay.client.stop`.

use std::fmt::Write;

use interpose_plugin_abi::{CommandArgs, CommandValue, ParamKind, Resolution};

use super::{add_builtin, flows, listing, Proxy};
use crate::options::{live, Assignment, OptionStore, Origin, RawValue, Value};

/// Registers the proxy's own commands (once, at startup).
pub fn register_builtins() {
    add_builtin(
        "set",
        "Set options while the proxy runs: `name=value` (or `name value...`); a bool alone is \
         true, an optional option without a value is unset",
        &[("assignments", ParamKind::StrList)],
        |proxy, args| set(proxy, list(&args[0])).map(|_| CommandValue::None),
    );
    add_builtin(
        "options.save",
        "Write the options that differ from their defaults to a config file",
        &[("path", ParamKind::Path)],
        |_, args| {
            let path = text(&args[0]);
            save(&live::current().store, path)?;
            Ok(CommandValue::None)
        },
    );
    add_builtin(
        "commands",
        "List every command with its arguments and help",
        &[],
        |_, _| Ok(CommandValue::Str(listing().into())),
    );
    add_builtin(
        "flow.resume",
        "Resume paused flows",
        &[("flows", ParamKind::Flows)],
        |_, args| resolve_all(args, Resolution::Resume),
    );
    add_builtin(
        "flow.kill",
        "Kill paused flows",
        &[("flows", ParamKind::Flows)],
        |_, args| resolve_all(args, Resolution::Kill),
    );
    add_builtin(
        "replay.client.file",
        "Load flows from a file and queue their requests for client replay",
        &[("path", ParamKind::Path)],
        |_, args| {
            let path = crate::options::expand_home(text(&args[0]));
            let flows = crate::readfile::load_flows(&path).map_err(|e| e.to_string())?;
            let mut queued = 0;
            for flow in &flows {
                match crate::proxy::replay::enqueue(flow) {
                    Ok(()) => queued += 1,
                    Err(why) => tracing::warn!("replay.client.file: flow {}: {why}", flow.id),
                }
            }
            Ok(CommandValue::Int(queued))
        },
    );
    add_builtin(
        "replay.client.count",
        "How many replayed requests are queued or in flight",
        &[],
        |_, _| Ok(CommandValue::Int(crate::proxy::replay::count() as i64)),
    );
    add_builtin(
        "replay.client.stop",
        "Drop the requests queued for client replay (those in flight finish)",
        &[],
        |_, _| {
            let dropped = crate::proxy::replay::stop();
            tracing::info!("Client replay queue cleared.");
            Ok(CommandValue::Int(dropped as i64))
        },
    );
    add_builtin(
        "inject.websocket",
        "Send a message on open WebSocket flows, to the client (true) or the server (false); \
         text unless the last argument is false",
        &[
            ("flows", ParamKind::Flows),
            ("to_client", ParamKind::Bool),
            ("message", ParamKind::StrList),
        ],
        |_, args| inject_websocket(args),
    );
    add_builtin(
        "flow.mark",
        "Mark paused flows (an empty marker unmarks them)",
        &[("flows", ParamKind::Flows), ("marker", ParamKind::Str)],
        |_, args| {
            let marker = text(&args[1]).to_string();
            let mut marked = 0;
            for id in CommandArgs::new(args).flows(0)? {
                if flows::with_flow(id, |flow| flow.set_marked(marker.clone())).is_some() {
                    marked += 1;
                }
            }
            Ok(CommandValue::Int(marked))
        },
    );
}

/// `inject.websocket FLOWS TO_CLIENT MESSAGE [IS_TEXT]`: sends a message on open WebSocket
/// flows; how many took it.
fn inject_websocket(args: &[CommandValue]) -> Result<CommandValue, String> {
    let args = CommandArgs::new(args);
    let to_client = args.bool(1)?;
    let rest = args.list(2)?;
    let (message, is_text) = match rest.as_slice() {
        [message] => (*message, true),
        [message, "true"] => (*message, true),
        [message, "false"] => (*message, false),
        [_, other] => return Err(format!("is_text must be true or false, got {other:?}")),
        _ => return Err("usage: inject.websocket FLOWS TO_CLIENT MESSAGE [IS_TEXT]".into()),
    };
    let ids = args.flows(0)?;
    if ids.is_empty() {
        return Err("no open WebSocket flow matches".into());
    }
    let mut sent = 0;
    for id in ids {
        let injection = crate::proxy::websocket::inject::Injection {
            to_client,
            content: message.as_bytes().to_vec(),
            is_text,
        };
        match crate::proxy::websocket::inject::inject(id, injection) {
            Ok(()) => sent += 1,
            Err(why) => tracing::warn!("inject.websocket: {why}"),
        }
    }
    Ok(CommandValue::Int(sent))
}

fn list(value: &CommandValue) -> Vec<&str> {
    match value {
        CommandValue::StrList(items) => items.iter().map(|s| s.as_str()).collect(),
        _ => Vec::new(),
    }
}

fn text(value: &CommandValue) -> &str {
    match value {
        CommandValue::Str(s) => s.as_str(),
        _ => "",
    }
}

/// Resumes or kills the flows of the first (flows) argument; how many there were.
fn resolve_all(args: &[CommandValue], resolution: Resolution) -> Result<CommandValue, String> {
    let done = CommandArgs::new(args)
        .flows(0)?
        .into_iter()
        .filter(|id| flows::resolve(*id, resolution))
        .count();
    Ok(CommandValue::Int(done as i64))
}

/// The `set` command: `name=value` words, or one name followed by its values.
fn set(proxy: &Proxy, words: Vec<&str>) -> Result<(), String> {
    let assignments = assignments(&words)?;
    let addons = &proxy.addons;
    let change = live::set(&assignments, &*proxy.apply, &|names| {
        addons.configure(names.iter().copied())
    })?;
    if !change.updated.is_empty() {
        tracing::info!("options changed: {}", change.updated.join(", "));
    }
    Ok(())
}

/// The assignments `set`'s words make.
fn assignments(words: &[&str]) -> Result<Vec<Assignment>, String> {
    let Some(first) = words.first() else {
        return Err("set needs an option: set name=value".to_string());
    };
    if !first.contains('=') {
        // `set name value...` (mitmproxy's form); no value: a bool becomes true, an optional
        // option is unset, a list is emptied.
        let value = match &words[1..] {
            [] => RawValue::Missing,
            [one] => RawValue::Text(one.to_string()),
            many => RawValue::List(many.iter().map(|s| s.to_string()).collect()),
        };
        return Ok(vec![Assignment::new(first, value, Origin::Command)]);
    }
    words
        .iter()
        .map(|word| match word.split_once('=') {
            Some((name, value)) => Ok(Assignment::new(
                name,
                RawValue::Text(value.to_string()),
                Origin::Command,
            )),
            None => Err(format!("expected name=value, got {word:?}")),
        })
        .collect()
}

/// Writes the options that differ from their defaults, as `config.yaml` reads them.
fn save(store: &OptionStore, path: &str) -> Result<(), String> {
    let mut out = String::new();
    for name in store.names() {
        let (Some(spec), Some(value)) = (store.spec(name), store.get(name)) else {
            continue;
        };
        if *value == spec.default {
            continue;
        }
        match value {
            Value::None => {
                let _ = writeln!(out, "{name}: null");
            }
            Value::List(items) => {
                let _ = writeln!(out, "{name}:");
                for item in items {
                    let _ = writeln!(out, "- {}", quote(item));
                }
            }
            Value::Str(s) => {
                let _ = writeln!(out, "{name}: {}", quote(s));
            }
            other => {
                let _ = writeln!(out, "{name}: {}", spec.display(other));
            }
        }
    }
    std::fs::write(path, out).map_err(|e| format!("cannot write {path}: {e}"))
}

/// A YAML double-quoted scalar.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_words_make_assignments() {
        let a = assignments(&["anticache=true", "x=1"]).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].name, "anticache");
        assert_eq!(a[0].value, RawValue::Text("true".into()));
        let b = assignments(&["ignore_hosts", "a", "b"]).unwrap();
        assert_eq!(
            b[0].value,
            RawValue::List(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(assignments(&["flag"]).unwrap()[0].value, RawValue::Missing);
        assert!(assignments(&[]).is_err());
        assert!(assignments(&["a=1", "b"]).is_err());
    }

    #[test]
    fn saved_options_read_back() {
        let mut store = OptionStore::with_core_options();
        store
            .apply(&[
                Assignment::new("listen_port", RawValue::Text("9999".into()), Origin::Set),
                Assignment::new("ignore_hosts", RawValue::Text("a\"b".into()), Origin::Set),
                Assignment::new("body_size_limit", RawValue::Text("3m".into()), Origin::Set),
            ])
            .unwrap();
        let dir = std::env::temp_dir().join(format!("interpose-save-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.yaml");
        save(&store, path.to_str().unwrap()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("listen_port: 9999\n"), "{text}");
        assert!(text.contains("body_size_limit: 3m\n"), "{text}");
        let mut back = OptionStore::with_core_options();
        back.load_config_text(&path, &text).unwrap();
        for name in ["listen_port", "ignore_hosts", "body_size_limit"] {
            assert_eq!(back.get(name), store.get(name), "{name}");
        }
        assert_eq!(back.get("listen_host"), store.get("listen_host"));
    }
}
