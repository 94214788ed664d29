//! The options store: every declared option with its current value and where that value came
//! from, filled from defaults, `CONFDIR/config.yaml`, `--set` and dedicated flags, in that
//! order of precedence.

use std::{
    collections::{BTreeMap, HashSet},
    fmt::Write as _,
    path::{Path, PathBuf},
};

use super::{
    error::{OptionError, Origin},
    spec::{OptionSpec, RawValue, Value},
    yaml::parse_config,
};

/// One `name = value` assignment from a config file, `--set` or a flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The option's name.
    pub name: String,
    /// The value as given.
    pub value: RawValue,
    /// Where it was given.
    pub origin: Origin,
    /// For a list option: add to the list even if this is the first assignment of its source
    /// (`--plugin` adds to `plugins` from config.yaml and `--set`).
    pub append: bool,
}

impl Assignment {
    /// `name` set to `value` by `origin`.
    pub fn new(name: &str, value: RawValue, origin: Origin) -> Self {
        Assignment {
            name: name.to_string(),
            value,
            origin,
            append: false,
        }
    }

    /// A `--set` argument: `name=value`, or `name` alone.
    pub fn from_set_argument(argument: &str) -> Self {
        let (name, value) = match argument.split_once('=') {
            Some((name, value)) => (name, RawValue::Text(value.to_string())),
            None => (argument, RawValue::Missing),
        };
        Assignment::new(name.trim(), value, Origin::Set)
    }

    /// Adds to a list option instead of replacing it.
    pub fn appending(mut self) -> Self {
        self.append = true;
        self
    }
}

/// What the command line says about options: `--set` arguments and dedicated flags, each
/// in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandLine {
    /// `--set name=value` arguments.
    pub set: Vec<Assignment>,
    /// Dedicated flags (`--listen-port`, `--plugin`, `-q`, ...).
    pub flags: Vec<Assignment>,
}

/// The config file names read in `confdir`, in order, as mitmproxy reads them.
pub const CONFIG_FILES: [&str; 2] = ["config.yaml", "config.yml"];

#[derive(Debug, Clone)]
struct Entry {
    spec: OptionSpec,
    value: Value,
    origin: Origin,
}

/// Every declared option and its current value.
#[derive(Debug, Clone, Default)]
pub struct OptionStore {
    entries: BTreeMap<String, Entry>,
    /// Config file keys no option had when the file was read: plugins may declare them.
    pending: Vec<Assignment>,
    /// Config files read, for `--options`.
    config_files: Vec<PathBuf>,
}

impl OptionStore {
    /// A store with no options.
    pub fn empty() -> Self {
        OptionStore::default()
    }

    /// Builds the store a command line asks for: the core options at their defaults, then
    /// `CONFDIR/config.yaml` (CONFDIR from the command line or the default), then `--set`,
    /// then the flags. Unknown config file keys wait in [`OptionStore::pending`].
    pub fn build(command_line: &CommandLine) -> Result<OptionStore, OptionError> {
        let mut store = OptionStore::with_core_options();
        // The config file's folder comes from the command line; a trial run of the command
        // line also reports its mistakes before the file's.
        let mut trial = store.clone();
        trial.apply_or_defer(&command_line.set)?;
        trial.apply_or_defer(&command_line.flags)?;
        let confdir = trial.confdir();
        for name in CONFIG_FILES {
            store.load_config_file(&confdir.join(name))?;
        }
        // `--set` of an option no one has yet waits for the plugins, after the config
        // file's keys, so that the command line still wins.
        store.apply_or_defer(&command_line.set)?;
        // Some flags set built-in addons' options (`-w`, `--flow-detail`).
        store.apply_or_defer(&command_line.flags)?;
        Ok(store)
    }

    /// Adds an option at its default. Refused if the name is taken or the spec is
    /// inconsistent.
    pub fn declare(&mut self, spec: OptionSpec) -> Result<(), OptionError> {
        let refuse = |problem: String| OptionError::Spec {
            name: spec.name.clone(),
            problem,
        };
        if self.entries.contains_key(&spec.name) {
            return Err(refuse("an option of that name exists".into()));
        }
        spec.check().map_err(refuse)?;
        self.entries.insert(
            spec.name.clone(),
            Entry {
                value: spec.default.clone(),
                origin: Origin::Default,
                spec,
            },
        );
        Ok(())
    }

    /// The current value of `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries.get(name).map(|e| &e.value)
    }

    /// The spec of `name`.
    pub fn spec(&self, name: &str) -> Option<&OptionSpec> {
        self.entries.get(name).map(|e| &e.spec)
    }

    /// Where the current value of `name` came from.
    pub fn origin(&self, name: &str) -> Option<&Origin> {
        self.entries.get(name).map(|e| &e.origin)
    }

    /// Every option's name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Applies one source's assignments in order. Within one source, the first assignment to a
    /// list option replaces the list and later ones add to it (`--set ignore_hosts=a --set
    /// ignore_hosts=b`); other options keep the last value given.
    pub fn apply(&mut self, assignments: &[Assignment]) -> Result<(), OptionError> {
        let mut touched: HashSet<&str> = HashSet::new();
        for assignment in assignments {
            let first = touched.insert(&assignment.name);
            self.assign(assignment, !first || assignment.append)?;
        }
        Ok(())
    }

    /// Like [`OptionStore::apply`], but an assignment to an option no one has declared yet
    /// waits in [`OptionStore::pending`] (plugins may declare it).
    pub fn apply_or_defer(&mut self, assignments: &[Assignment]) -> Result<(), OptionError> {
        let mut touched: HashSet<&str> = HashSet::new();
        for assignment in assignments {
            let first = touched.insert(&assignment.name);
            if self.entries.contains_key(&assignment.name) {
                self.assign(assignment, !first || assignment.append)?;
            } else {
                let mut deferred = assignment.clone();
                deferred.append = !first || assignment.append;
                self.pending.push(deferred);
            }
        }
        Ok(())
    }

    /// Sets one option; `append` adds to a list option instead of replacing it.
    pub fn assign(&mut self, assignment: &Assignment, append: bool) -> Result<(), OptionError> {
        let Some(entry) = self.entries.get_mut(&assignment.name) else {
            return Err(self.unknown(&assignment.name, assignment.origin.clone()));
        };
        let value =
            entry
                .spec
                .parse(&assignment.value)
                .map_err(|problem| OptionError::Invalid {
                    name: assignment.name.clone(),
                    origin: assignment.origin.clone(),
                    problem,
                })?;
        entry.value = match (append, &mut entry.value, value) {
            (true, Value::List(items), Value::List(more)) => {
                items.extend(more);
                Value::List(std::mem::take(items))
            }
            (_, _, value) => value,
        };
        entry.origin = assignment.origin.clone();
        Ok(())
    }

    /// Reads a config file if it exists. Keys no option has yet are kept for
    /// [`OptionStore::resolve_pending`]; a bad value or bad YAML is an error naming the file
    /// and line. Returns whether the file exists.
    pub fn load_config_file(&mut self, path: &Path) -> Result<bool, OptionError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(OptionError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        self.load_config_text(path, &text)?;
        Ok(true)
    }

    /// Applies the text of config file `path` (see [`OptionStore::load_config_file`]).
    pub fn load_config_text(&mut self, path: &Path, text: &str) -> Result<(), OptionError> {
        let entries = parse_config(text).map_err(|e| OptionError::Syntax {
            path: path.to_path_buf(),
            line: e.line,
            problem: e.problem,
        })?;
        self.config_files.push(path.to_path_buf());
        for entry in entries {
            let origin = Origin::ConfigFile {
                path: path.to_path_buf(),
                line: entry.line,
            };
            if entry.name == "confdir" {
                // The file is found through confdir: a value in it could not take effect.
                return Err(OptionError::Invalid {
                    name: entry.name,
                    origin,
                    problem: "cannot be set in the config file it locates; use --confdir or \
                              --set confdir=DIR"
                        .into(),
                });
            }
            let assignment = Assignment::new(&entry.name, entry.value, origin);
            if self.entries.contains_key(&entry.name) {
                self.assign(&assignment, false)?;
            } else {
                self.pending.push(assignment);
            }
        }
        Ok(())
    }

    /// Config file keys no option had when the file was read.
    pub fn pending(&self) -> &[Assignment] {
        &self.pending
    }

    /// Applies the pending config file keys whose options exist now (declared by plugins);
    /// a key that still names no option is an error with the closest names.
    pub fn resolve_pending(&mut self) -> Result<(), OptionError> {
        for assignment in std::mem::take(&mut self.pending) {
            let append = assignment.append;
            self.assign(&assignment, append)?;
        }
        Ok(())
    }

    /// Applies the pending assignments whose options exist now, and keeps the others pending
    /// (for `--options`, which lists them instead of failing); a value of the wrong type is
    /// still an error.
    pub fn resolve_known_pending(&mut self) -> Result<(), OptionError> {
        for assignment in std::mem::take(&mut self.pending) {
            if self.entries.contains_key(&assignment.name) {
                let append = assignment.append;
                self.assign(&assignment, append)?;
            } else {
                self.pending.push(assignment);
            }
        }
        Ok(())
    }

    /// The error for `name`, which no option has, with the closest names.
    fn unknown(&self, name: &str, origin: Origin) -> OptionError {
        OptionError::Unknown {
            name: name.to_string(),
            origin,
            suggestions: suggest(name, self.names()),
        }
    }

    /// The current value of `name` as text, as addons read it: strings as they are, other
    /// values as `--options` shows them, `None` when unset or unknown.
    pub fn value_text(&self, name: &str) -> Option<String> {
        let entry = self.entries.get(name)?;
        match &entry.value {
            Value::None => None,
            Value::Str(s) => Some(s.clone()),
            value => Some(entry.spec.display(value)),
        }
    }

    /// Every option, sorted by name: type, default, current value (with its origin) and help.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (name, entry) in &self.entries {
            let spec = &entry.spec;
            if !out.is_empty() {
                out.push('\n');
            }
            let _ = writeln!(out, "{name}");
            let _ = writeln!(out, "    type:    {}", spec.type_name());
            let _ = writeln!(out, "    default: {}", spec.display(&spec.default));
            let _ = write!(out, "    value:   {}", spec.display(&entry.value));
            if entry.origin != Origin::Default {
                let _ = write!(out, "  (from {})", entry.origin);
            }
            let _ = writeln!(out, "\n    {}", spec.help);
        }
        if !self.config_files.is_empty() {
            let files: Vec<String> = self
                .config_files
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            let _ = writeln!(out, "\nRead {}.", files.join(", "));
        }
        for pending in &self.pending {
            let _ = writeln!(
                out,
                "{}: {} is not a core option; a plugin must declare it.",
                pending.origin, pending.name
            );
        }
        out
    }
}

/// The names closest to `name` by edit distance (up to three, sorted), if any is close enough
/// to be a likely typo.
pub fn suggest<'a>(name: &str, names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let limit = (name.chars().count() / 3).clamp(1, 4);
    let close: Vec<(usize, &str)> = names
        .map(|known| (edit_distance(name, known), known))
        .filter(|(distance, _)| *distance <= limit)
        .collect();
    let Some(best) = close.iter().map(|(distance, _)| *distance).min() else {
        return Vec::new();
    };
    let mut closest: Vec<String> = close
        .into_iter()
        .filter(|(distance, _)| *distance == best)
        .map(|(_, known)| known.to_string())
        .collect();
    closest.sort();
    closest.truncate(3);
    closest
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
/// neighbouring characters each cost 1 (`listen_prot` is one swap from `listen_port`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: distance between a[..i] and b[..j]; only three rows are alive at a time.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::options::spec::OptionType;

    fn set(argument: &str) -> Assignment {
        Assignment::from_set_argument(argument)
    }

    fn flag(name: &str, value: &str, flag: &'static str) -> Assignment {
        Assignment::new(name, RawValue::Text(value.into()), Origin::Flag(flag))
    }

    fn list(items: &[&str]) -> Value {
        Value::List(items.iter().map(|s| s.to_string()).collect())
    }

    fn config(store: &mut OptionStore, text: &str) -> Result<(), OptionError> {
        store.load_config_text(Path::new("/conf/config.yaml"), text)
    }

    #[test]
    fn edit_distance_counts_swaps_as_one() {
        assert_eq!(edit_distance("listen_prot", "listen_port"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn suggestions_are_the_closest_names() {
        let store = OptionStore::with_core_options();
        assert_eq!(suggest("listen_prot", store.names()), ["listen_port"]);
        assert_eq!(suggest("listen_hots", store.names()), ["listen_host"]);
        assert_eq!(suggest("ignore_host", store.names()), ["ignore_hosts"]);
        assert!(suggest("zzz", store.names()).is_empty());

        let error = store.clone().apply(&[set("listen_prot=1")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"--set: unknown option "listen_prot" (did you mean listen_port?)"#
        );
        let error = store
            .clone()
            .apply(&[set("nothing_like_it=1")])
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"--set: unknown option "nothing_like_it" (`interpose --options` lists every option)"#
        );
    }

    #[test]
    fn wrong_values_say_what_was_expected_and_where() {
        let mut store = OptionStore::with_core_options();
        let error = store.apply(&[set("listen_port=abc")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"--set: listen_port: expected an integer from 0 to 65535, got "abc""#
        );
        let error = store
            .apply(&[flag("body_size_limit", "lots", "--body-size-limit")])
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"--body-size-limit: body_size_limit: expected a size such as 512k or 1m, got "lots""#
        );
        let error = config(&mut store, "a: 1\nconnect_timeout: soon\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "/conf/config.yaml line 2: connect_timeout: expected a number of seconds such as 10 \
             or 0.5, got \"soon\""
        );
        let error = config(&mut store, "ignore_hosts: ['(']\n").unwrap_err();
        assert!(
            error.to_string().contains("invalid host pattern \"(\""),
            "{error}"
        );
        let error = config(&mut store, "listen_port: [\n").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("/conf/config.yaml line 2: invalid YAML"),
            "{error}"
        );
    }

    #[test]
    fn later_sources_win() {
        let mut store = OptionStore::with_core_options();
        config(
            &mut store,
            "listen_port: 1000\nlisten_host: 10.0.0.1\nthreads: 3\nupstream_idle_max: 9\n",
        )
        .unwrap();
        store
            .apply(&[set("listen_port=2000"), set("listen_host=10.0.0.2")])
            .unwrap();
        store
            .apply(&[flag("listen_port", "3000", "-p/--listen-port")])
            .unwrap();
        assert_eq!(store.get("listen_port"), Some(&Value::Int(3000)));
        assert_eq!(
            store.origin("listen_port"),
            Some(&Origin::Flag("-p/--listen-port"))
        );
        assert_eq!(
            store.get("listen_host"),
            Some(&Value::Str("10.0.0.2".into()))
        );
        assert_eq!(store.origin("listen_host"), Some(&Origin::Set));
        assert_eq!(store.get("threads"), Some(&Value::Int(3)));
        assert_eq!(
            store.origin("threads"),
            Some(&Origin::ConfigFile {
                path: "/conf/config.yaml".into(),
                line: 3
            })
        );
        assert_eq!(store.get("upstream_idle_max"), Some(&Value::Int(9)));
        assert_eq!(store.origin("ssl_insecure"), Some(&Origin::Default));
    }

    #[test]
    fn list_options_accumulate_within_a_source_and_replace_across_sources() {
        let mut store = OptionStore::with_core_options();
        config(&mut store, "ignore_hosts: [from-file]\nplugins: [a.so]\n").unwrap();
        assert_eq!(store.get("ignore_hosts"), Some(&list(&["from-file"])));
        store
            .apply(&[set("ignore_hosts=one"), set("ignore_hosts=two")])
            .unwrap();
        assert_eq!(store.get("ignore_hosts"), Some(&list(&["one", "two"])));
        store
            .apply(&[
                flag("plugins", "b.so", "--plugin").appending(),
                flag("plugins", "c.so", "--plugin").appending(),
            ])
            .unwrap();
        assert_eq!(store.get("plugins"), Some(&list(&["a.so", "b.so", "c.so"])));
        // A bare `--set list` empties it, as in mitmproxy.
        store.apply(&[set("ignore_hosts")]).unwrap();
        assert_eq!(store.get("ignore_hosts"), Some(&list(&[])));
        // Other options keep the last value.
        store
            .apply(&[set("listen_port=1"), set("listen_port=2")])
            .unwrap();
        assert_eq!(store.get("listen_port"), Some(&Value::Int(2)));
    }

    #[test]
    fn unknown_config_keys_wait_for_plugins() {
        let mut store = OptionStore::with_core_options();
        config(&mut store, "listen_port: 1\nanticache: true\n").unwrap();
        assert_eq!(store.get("listen_port"), Some(&Value::Int(1)));
        assert_eq!(store.pending().len(), 1);
        assert!(store
            .describe()
            .contains("line 2: anticache is not a core option"));
        let error = store.clone().resolve_pending().unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"/conf/config.yaml line 2: unknown option "anticache" (`interpose --options` lists every option)"#
        );

        // Once something declares the option, the pending value applies.
        store
            .declare(OptionSpec::new(
                "anticache",
                OptionType::Bool,
                Value::Bool(false),
                "Strip caching headers.",
            ))
            .unwrap();
        store.resolve_pending().unwrap();
        assert_eq!(store.get("anticache"), Some(&Value::Bool(true)));
        assert!(store.pending().is_empty());
    }

    #[test]
    fn a_typo_in_config_yaml_gets_a_suggestion_after_loading() {
        let mut store = OptionStore::with_core_options();
        config(&mut store, "listen_prot: 1\n").unwrap();
        let error = store.resolve_pending().unwrap_err();
        assert!(
            error.to_string().ends_with("(did you mean listen_port?)"),
            "{error}"
        );
    }

    #[test]
    fn confdir_is_not_read_from_config_yaml() {
        let mut store = OptionStore::with_core_options();
        let error = config(&mut store, "confdir: /elsewhere\n").unwrap_err();
        assert!(error.to_string().contains("use --confdir"), "{error}");
    }

    #[test]
    fn declaring_twice_or_inconsistently_is_refused() {
        let mut store = OptionStore::with_core_options();
        let taken = OptionSpec::new("listen_port", OptionType::Bool, Value::Bool(true), "");
        assert!(store.declare(taken).is_err());
        let odd = OptionSpec::new("odd", OptionType::Duration, Value::Int(1), "");
        assert!(store.declare(odd).is_err());
        let fine = OptionSpec::optional("fine", OptionType::Duration, "");
        store.declare(fine).unwrap();
        store.apply(&[set("fine=2")]).unwrap();
        assert_eq!(
            store.get("fine"),
            Some(&Value::Duration(Duration::from_secs(2)))
        );
    }

    #[test]
    fn confdir_and_config_yaml_from_the_command_line() {
        let dir = std::env::temp_dir().join(format!("interpose-options-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.yaml"),
            "listen_port: 1111\nlisten_host: 0.0.0.0\nbody_size_limit: 2m\n",
        )
        .unwrap();
        let command_line = CommandLine {
            set: vec![
                set(&format!("confdir={}", dir.display())),
                set("listen_port=2222"),
            ],
            flags: vec![flag("listen_host", "::1", "--listen-host")],
        };
        let store = OptionStore::build(&command_line).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(store.get("listen_port"), Some(&Value::Int(2222)));
        assert_eq!(store.get("listen_host"), Some(&Value::Str("::1".into())));
        assert_eq!(store.get("body_size_limit"), Some(&Value::Int(2 << 20)));
        let described = store.describe();
        assert!(described.contains("value:   2m  (from "), "{described}");
        assert!(described.contains("config.yaml line 3)"), "{described}");
    }

    #[test]
    fn command_line_mistakes_are_reported_before_reading_the_file() {
        let command_line = CommandLine {
            set: vec![set("confdir=/nonexistent/interpose"), set("threads=two")],
            flags: vec![],
        };
        let error = OptionStore::build(&command_line).unwrap_err();
        assert!(error.to_string().contains("threads"), "{error}");
    }

    #[test]
    fn set_of_an_unknown_option_waits_for_plugins_and_still_beats_the_config_file() {
        let dir = std::env::temp_dir().join(format!("interpose-defer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.yaml"), "addheader: 1\n").unwrap();
        let command_line = CommandLine {
            set: vec![
                set(&format!("confdir={}", dir.display())),
                set("addheader=2"),
                set("thread=3"),
            ],
            flags: vec![],
        };
        let mut store = OptionStore::build(&command_line).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(store.pending().len(), 3);
        // A plugin declares `addheader`; `thread` stays unknown.
        store
            .declare(OptionSpec::optional(
                "addheader",
                OptionType::Int { min: 0, max: 100 },
                "",
            ))
            .unwrap();
        let error = store.resolve_pending().unwrap_err();
        assert!(
            error.to_string().contains("did you mean threads?"),
            "{error}"
        );
        assert_eq!(store.get("addheader"), Some(&Value::Int(2)), "--set wins");
    }
}
