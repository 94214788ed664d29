//! The flows commands can name: the paused ones (mitmproxy's intercepted flows), by id,
//! `@all`, `@marked`, `@unmarked` or a filter expression; and the open WebSocket flows, by id
//! or `@all` (for `inject.websocket`).

use std::sync::{Arc, Mutex, PoisonError};

use interpose_plugin_abi::{flow::Uuid, pause::host::Slot, CommandValue, HttpFlow, Resolution};

use crate::filter::Filter;

/// Every flow paused right now, with its pause.
static PAUSED: Mutex<Vec<(Uuid, Arc<Slot>)>> = Mutex::new(Vec::new());

/// Keeps a paused flow reachable by commands while it lives.
pub struct Registration(Uuid);

impl Drop for Registration {
    fn drop(&mut self) {
        let mut paused = PAUSED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(index) = paused.iter().position(|(id, _)| *id == self.0) {
            paused.swap_remove(index);
        }
    }
}

/// Makes the flow `id`, paused in `slot`, reachable by commands until the registration drops.
pub fn register(id: Uuid, slot: &Arc<Slot>) -> Registration {
    PAUSED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((id, Arc::clone(slot)));
    Registration(id)
}

fn paused() -> Vec<(Uuid, Arc<Slot>)> {
    PAUSED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

fn slot(id: Uuid) -> Option<Arc<Slot>> {
    paused().into_iter().find(|(i, _)| *i == id).map(|(_, s)| s)
}

/// Runs `f` on the paused flow `id`; `None` if no such flow is paused.
pub fn with_flow<R>(id: Uuid, f: impl FnOnce(&mut HttpFlow) -> R) -> Option<R> {
    slot(id)?.with_attached(f)
}

/// Lets the paused flow `id` go; `false` if no such flow is paused.
pub fn resolve(id: Uuid, resolution: Resolution) -> bool {
    match slot(id) {
        Some(slot) => {
            slot.resolve(resolution);
            true
        }
        None => false,
    }
}

/// The ids of the paused flows `spec` names (`@all`, `@marked`, `@unmarked`, a flow id, or a
/// filter expression), and of the open WebSocket flows it names (`@all` or an id), as a
/// command's flows argument.
pub fn resolve_spec(spec: &str) -> Result<Vec<Uuid>, String> {
    let mut ids = resolve_paused(spec)?;
    let open = crate::proxy::websocket::inject::open_ids();
    let named = |id: &Uuid| spec == "@all" || spec.parse::<Uuid>().is_ok_and(|s| s == *id);
    for id in open {
        if named(&id) && !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

fn resolve_paused(spec: &str) -> Result<Vec<Uuid>, String> {
    let flows = paused();
    let keep = |test: &dyn Fn(&HttpFlow) -> bool| -> Vec<Uuid> {
        flows
            .iter()
            .filter(|(_, slot)| slot.with_attached(|flow| test(flow)).unwrap_or(false))
            .map(|(id, _)| *id)
            .collect()
    };
    Ok(match spec {
        "@all" => keep(&|_| true),
        "@marked" => keep(&|flow| !flow.marked().is_empty()),
        "@unmarked" => keep(&|flow| flow.marked().is_empty()),
        "@focus" | "@shown" | "@hidden" => {
            return Err(format!(
                "{spec} needs a flow view, which headless Interpose has not"
            ))
        }
        _ => match spec.parse::<Uuid>() {
            Ok(id) => flows
                .iter()
                .filter(|(i, _)| *i == id)
                .map(|(i, _)| *i)
                .collect(),
            Err(_) => {
                let filter =
                    Filter::parse(spec).map_err(|e| format!("invalid flow filter: {e}"))?;
                keep(&|flow| filter.matches(flow))
            }
        },
    })
}

/// [`resolve_spec`] as a command argument value.
pub fn argument(spec: &str) -> Result<CommandValue, String> {
    let ids = resolve_spec(spec)?;
    Ok(CommandValue::StrList(
        ids.iter().map(|id| id.to_string().into()).collect(),
    ))
}
