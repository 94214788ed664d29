//! The options of the running proxy: every option's current value, published as one snapshot
//! that addons read without a lock, the options addons declare, and changing values while
//! the proxy runs (the `set` command), with `configure` and its rollback.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex, PoisonError},
};

use arc_swap::ArcSwap;
use interpose_plugin_abi::options::{OptionDecl, OptionKind, OptionValue};

use super::{Assignment, OptionSpec, OptionStore, OptionType, Value};

/// One published state of the options.
pub struct Snapshot {
    /// The store, for values as text and for `--options`-style listings.
    pub store: OptionStore,
    /// Every option's value as addons read it.
    typed: HashMap<String, OptionValue>,
}

impl Snapshot {
    fn of(store: OptionStore) -> Snapshot {
        let typed = store
            .names()
            .filter_map(|name| Some((name.to_string(), to_abi(store.get(name)?))))
            .collect();
        Snapshot { store, typed }
    }

    /// The value of `name` as addons read it.
    pub fn typed(&self, name: &str) -> Option<&OptionValue> {
        self.typed.get(name)
    }
}

/// The published options (empty until the proxy publishes its store).
static CURRENT: LazyLock<ArcSwap<Snapshot>> =
    LazyLock::new(|| ArcSwap::from_pointee(Snapshot::of(OptionStore::empty())));

/// The store `set` changes (one change at a time).
static MASTER: Mutex<Option<OptionStore>> = Mutex::new(None);

/// Options declared by addons in `load`, with the addon that declared each, and the
/// declarations refused (a name taken), until the proxy takes them.
static DECLARED: Mutex<Declarations> = Mutex::new(Declarations {
    specs: Vec::new(),
    refused: Vec::new(),
});

struct Declarations {
    specs: Vec<(String, OptionSpec)>,
    refused: Vec<String>,
}

/// Makes `store` the options addons read (and `set` changes).
pub fn publish(store: &OptionStore) {
    CURRENT.store(Arc::new(Snapshot::of(store.clone())));
    *MASTER.lock().unwrap_or_else(PoisonError::into_inner) = Some(store.clone());
}

/// The current options.
pub fn current() -> arc_swap::Guard<Arc<Snapshot>> {
    CURRENT.load()
}

/// The store's value as the ABI carries it. Durations are their seconds as text.
fn to_abi(value: &Value) -> OptionValue {
    match value {
        Value::None => OptionValue::None,
        Value::Bool(b) => OptionValue::Bool(*b),
        Value::Int(n) => OptionValue::Int(i64::try_from(*n).unwrap_or(i64::MAX)),
        Value::Duration(d) => OptionValue::Str(d.as_secs_f64().to_string().into()),
        Value::Str(s) => OptionValue::Str(s.as_str().into()),
        Value::List(items) => {
            OptionValue::StrList(items.iter().map(|s| s.as_str().into()).collect())
        }
    }
}

/// The spec of an option an addon declares.
fn spec_of(decl: &OptionDecl<'_>) -> Result<OptionSpec, String> {
    let ty = match decl.kind {
        OptionKind::Bool => OptionType::Bool,
        OptionKind::Int => OptionType::Int {
            min: 0,
            max: i64::MAX as u64,
        },
        OptionKind::Size => OptionType::Size,
        OptionKind::Str => OptionType::Str,
        OptionKind::StrList => OptionType::List,
    };
    let default = match (&decl.default, decl.kind) {
        (OptionValue::None, _) if decl.optional => Value::None,
        (OptionValue::Bool(b), OptionKind::Bool) => Value::Bool(*b),
        (OptionValue::Int(n), OptionKind::Int | OptionKind::Size) if *n >= 0 => {
            Value::Int(*n as u64)
        }
        (OptionValue::Str(s), OptionKind::Str) => Value::Str(s.to_string()),
        (OptionValue::StrList(items), OptionKind::StrList) => {
            Value::List(items.iter().map(|s| s.to_string()).collect())
        }
        (other, kind) => return Err(format!("its default {other:?} is not a {kind:?} value")),
    };
    let mut spec = if decl.optional {
        let mut spec = OptionSpec::optional(decl.name.as_str(), ty, decl.help.as_str());
        spec.default = default;
        spec
    } else {
        OptionSpec::new(decl.name.as_str(), ty, default, decl.help.as_str())
    };
    let choices: Vec<&str> = decl.choices.iter().map(|c| c.as_str()).collect();
    if !choices.is_empty() {
        spec = spec.with_choices(&choices);
    }
    spec.check()?;
    Ok(spec)
}

/// Records an option addon `addon` declares; `Err` (also kept for the proxy to report at
/// startup) when the name is the proxy's or another addon's.
pub fn declare(addon: &str, decl: &OptionDecl<'_>) -> Result<(), String> {
    let name = decl.name.as_str();
    let mut declared = DECLARED.lock().unwrap_or_else(PoisonError::into_inner);
    let problem = if current().store.spec(name).is_some() {
        Some(format!("the proxy has an option called {name}"))
    } else if let Some((other, _)) = declared.specs.iter().find(|(_, s)| s.name == name) {
        Some(format!(
            "addon {other} declared an option called {name} already"
        ))
    } else {
        match spec_of(decl) {
            Ok(spec) => {
                declared.specs.push((addon.to_string(), spec));
                None
            }
            Err(why) => Some(format!("option {name}: {why}")),
        }
    };
    match problem {
        Some(why) => {
            declared
                .refused
                .push(format!("addon {addon} cannot declare option {name}: {why}"));
            Err(why)
        }
        None => Ok(()),
    }
}

/// Adds the options addons declared to `store` (at their defaults). `Err` lists the
/// declarations refused, one per line.
pub fn take_declared(store: &mut OptionStore) -> Result<(), String> {
    let mut declared = DECLARED.lock().unwrap_or_else(PoisonError::into_inner);
    if !declared.refused.is_empty() {
        return Err(std::mem::take(&mut declared.refused).join("\n"));
    }
    for (addon, spec) in std::mem::take(&mut declared.specs) {
        let name = spec.name.clone();
        store
            .declare(spec)
            .map_err(|e| format!("addon {addon} cannot declare option {name}: {e}"))?;
    }
    Ok(())
}

/// What a `set` changed.
#[derive(Debug, PartialEq, Eq)]
pub struct Change {
    /// The options whose values changed, sorted.
    pub updated: Vec<String>,
}

/// Changes option values while the proxy runs (the `set` command): `apply` gets the new
/// store to apply to the proxy itself (it refuses options that need a restart), then the
/// values are published and `configure` runs with the names that changed. A refusal from
/// either puts every old value back (and runs `configure` again with them) and comes back as
/// the error.
pub fn set(
    assignments: &[Assignment],
    apply: &dyn Fn(&OptionStore) -> Result<(), String>,
    configure: &dyn Fn(&[&str]) -> Result<(), String>,
) -> Result<Change, String> {
    thread_local! {
        /// Whether this thread is inside a `set` (its `configure`, say).
        static SETTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if SETTING.with(|s| s.replace(true)) {
        return Err("options cannot be set while they are being set (from configure)".into());
    }
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            SETTING.with(|s| s.set(false));
        }
    }
    let _done = Done;
    let mut master = MASTER.lock().unwrap_or_else(PoisonError::into_inner);
    let old = master.clone().unwrap_or_else(OptionStore::empty);
    let mut new = old.clone();
    new.apply(assignments).map_err(|e| e.to_string())?;
    let updated: Vec<String> = new
        .names()
        .filter(|name| old.get(name) != new.get(name))
        .map(str::to_string)
        .collect();
    if updated.is_empty() {
        return Ok(Change { updated });
    }
    apply(&new)?;
    CURRENT.store(Arc::new(Snapshot::of(new.clone())));
    let names: Vec<&str> = updated.iter().map(String::as_str).collect();
    if let Err(why) = configure(&names) {
        CURRENT.store(Arc::new(Snapshot::of(old.clone())));
        let _ = apply(&old);
        let _ = configure(&names);
        return Err(why);
    }
    *master = Some(new);
    Ok(Change { updated })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{Origin, RawValue};
    use abi_stable::std_types::{RSlice, RStr};

    fn decl<'a>(name: &'a str, default: OptionValue) -> OptionDecl<'a> {
        OptionDecl {
            name: RStr::from_str(name),
            kind: OptionKind::Bool,
            optional: false,
            default,
            help: RStr::from_str("help"),
            choices: RSlice::from_slice(&[]),
        }
    }

    #[test]
    fn values_convert_for_addons() {
        assert_eq!(to_abi(&Value::Int(5)), OptionValue::Int(5));
        assert_eq!(to_abi(&Value::None), OptionValue::None);
        assert_eq!(
            to_abi(&Value::List(vec!["a".into()])),
            OptionValue::StrList(vec!["a".into()].into())
        );
    }

    #[test]
    fn a_declaration_with_a_default_of_another_kind_is_refused() {
        assert!(spec_of(&decl("x", OptionValue::Int(1))).is_err());
        let spec = spec_of(&decl("x", OptionValue::Bool(true))).unwrap();
        assert_eq!(spec.default, Value::Bool(true));
    }

    #[test]
    fn set_publishes_configures_and_rolls_back() {
        // One test for the process-wide state.
        let mut store = OptionStore::with_core_options();
        store
            .declare(OptionSpec::new(
                "flag",
                OptionType::Bool,
                Value::Bool(false),
                "",
            ))
            .unwrap();
        publish(&store);
        let on = Assignment::new("flag", RawValue::Text("true".into()), Origin::Command);
        let change = set(std::slice::from_ref(&on), &|_| Ok(()), &|names| {
            assert_eq!(names, ["flag"]);
            assert_eq!(current().typed("flag"), Some(&OptionValue::Bool(true)));
            Ok(())
        })
        .unwrap();
        assert_eq!(change.updated, ["flag"]);
        // Setting the same value changes nothing and asks nobody.
        let change = set(&[on], &|_| panic!("not applied"), &|_| {
            panic!("not configured")
        });
        assert_eq!(change.unwrap().updated, Vec::<String>::new());

        let off = Assignment::new("flag", RawValue::Text("false".into()), Origin::Command);
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let refused = set(&[off], &|_| Ok(()), &|_| {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if n == 0 {
                Err("no".to_string())
            } else {
                // The rollback: the old value is back.
                assert_eq!(current().typed("flag"), Some(&OptionValue::Bool(true)));
                Ok(())
            }
        });
        assert_eq!(refused, Err("no".to_string()));
        assert_eq!(calls.into_inner(), 2);
        assert_eq!(current().typed("flag"), Some(&OptionValue::Bool(true)));
        let bad = Assignment::new("flag", RawValue::Text("maybe".into()), Origin::Command);
        assert!(set(&[bad], &|_| Ok(()), &|_| Ok(())).is_err());
    }
}
