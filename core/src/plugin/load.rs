//! Loading plugin libraries: find each one's entry symbol, check its ABI version, then its
//! layout, and build its addons.
//!
//! The entry is found in the library's export table alone (read piecewise, never the whole
//! file). Each library is loaded through its own `abi_stable` header (not
//! `RootModule::load_from*`, which caches one module per root-module type), so any number of
//! plugins load side by side. Once a library's code has run it is never unloaded: its addons,
//! function pointers, thread-locals and threads live until the process exits.

use std::{
    env::consts::DLL_PREFIX,
    fs::File,
    path::{Path, PathBuf},
};

use abi_stable::{
    library::{AbiHeaderRef, LibraryError, RawLibrary, RootModule},
    sabi_types::{VersionNumber, VersionStrings},
    std_types::{RErr, ROk},
};
use interpose_plugin_abi::ffi::{PluginModuleRef, RawAddon, ENTRY_SYMBOL_PREFIX};
use object::{
    read::{
        elf::{FileHeader, Sym},
        macho::{FatArch, MachOFatFile32, MachOFatFile64},
        ReadCache, ReadCacheOps, ReadRef,
    },
    FileKind, Object, ObjectKind,
};

use super::LoadError;

/// A plugin that loaded, with the addons it handed over (in its order).
pub struct LoadedPlugin {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// The plugin crate's name.
    pub name: String,
    /// The plugin crate's version.
    pub version: String,
    /// Its addons.
    pub addons: Vec<RawAddon>,
}

/// Loads plugin libraries one after another, and refuses a second library of a plugin (by
/// crate name) that already loaded from another file.
#[derive(Default)]
pub struct PluginLoader {
    /// `(crate name, package name, file)` of every plugin loaded so far.
    loaded: Vec<(String, String, PathBuf)>,
}

impl PluginLoader {
    /// A loader that has loaded nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A loader that refuses plugins named as the built-in plugins `names` (package names):
    /// they are linked into the binary already.
    pub fn with_builtins<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let loaded = names
            .into_iter()
            .map(|name| {
                (
                    name.replace('-', "_"),
                    name.to_string(),
                    PathBuf::from("the interpose binary (a built-in plugin)"),
                )
            })
            .collect();
        PluginLoader { loaded }
    }

    /// Loads the plugin library at `path` and builds its addons. A bare file name
    /// (`libx.so`) is a file in the working directory, not a name for the dynamic loader to
    /// search for.
    pub fn load(&mut self, path: &Path) -> Result<LoadedPlugin, LoadError> {
        let path_buf = path.to_path_buf();
        let symbol = entry_symbol(path, &exported_entry_symbols(path)?)?;
        let crate_name = &symbol[ENTRY_SYMBOL_PREFIX.len()..];
        if let Some((_, name, first)) = self.loaded.iter().find(|(c, ..)| c == crate_name) {
            return Err(LoadError::Duplicate {
                path: path_buf,
                name: name.clone(),
                first: first.clone(),
            });
        }
        let plugin = load_entry(path, &symbol)?;
        self.loaded
            .push((crate_name.to_string(), plugin.name.clone(), path_buf));
        Ok(plugin)
    }
}

/// Loads the library at `path` through its entry `symbol` and builds its addons.
fn load_entry(path: &Path, symbol: &str) -> Result<LoadedPlugin, LoadError> {
    let path_buf = path.to_path_buf();
    // Relative paths are made absolute: the dynamic loader would search its library path
    // for a bare file name instead of looking in the working directory.
    let open_path = std::path::absolute(path).unwrap_or_else(|_| path_buf.clone());
    let library = RawLibrary::load_at(&open_path).map_err(|e| LoadError::Open {
        path: path_buf.clone(),
        reason: dynamic_loader_reason(&e),
    })?;
    let name = format!("{symbol}\0");
    // SAFETY: a symbol named with our entry prefix is the `LibHeader` static written by
    // `export_plugin!`; reading it as `AbiHeaderRef` (a pointer to the header, whose first
    // field is the frozen `AbiHeader`) is how abi_stable itself reads headers, and `upgrade`
    // checks the header before anything else is read.
    let header = match unsafe { library.get::<AbiHeaderRef>(name.as_bytes()) } {
        Ok(header) => *header,
        Err(_) => return Err(LoadError::NoEntrySymbol { path: path_buf }),
    };

    let header = header.upgrade().map_err(|e| match e {
        LibraryError::InvalidAbiHeader(_) => LoadError::AbiStableMismatch {
            path: path_buf.clone(),
        },
        other => init_error(&path_buf, "its abi_stable header is unusable", &other),
    })?;
    check_abi_version(&path_buf, header.version_strings())?;
    let module = match header.init_root_module::<PluginModuleRef>() {
        Ok(module) => module,
        // Version and layout are checked before any of the plugin's code runs: the library
        // can still be unloaded.
        Err(LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        }) => {
            return Err(LoadError::AbiVersion {
                path: path_buf,
                plugin: actual_version.to_string(),
                host: expected_version.to_string(),
            })
        }
        Err(LibraryError::AbiInstability(report)) => {
            let report = report.to_string();
            tracing::debug!("layout report for {}:\n{report}", path_buf.display());
            return Err(LoadError::Layout {
                detail: layout_errors(&report).unwrap_or_else(|| summarize(&report)),
                path: path_buf,
            });
        }
        Err(other) => {
            // Its module constructor ran (and failed): see below.
            std::mem::forget(library);
            return Err(init_error(
                &path_buf,
                "its module failed to initialize",
                &other,
            ));
        }
    };
    // The plugin's code has run and runs again below (its addon constructors), and may
    // leave thread-locals with destructors, threads or callbacks behind even when it fails
    // or panics; unloading it then would leave them pointing into unmapped code. And the
    // addons' code and vtables live in the library. So it stays loaded for good.
    std::mem::forget(library);

    if module.panic_unwind() == Some(false) {
        return Err(LoadError::PanicAbort { path: path_buf });
    }
    let addons = match (module.new_addons())() {
        ROk(addons) => addons.into_vec(),
        RErr(message) => {
            return Err(LoadError::Init {
                path: path_buf,
                reason: format!("creating its addons panicked: {message}"),
            })
        }
    };
    Ok(LoadedPlugin {
        path: path_buf,
        name: module.name().to_string(),
        version: module.version().to_string(),
        addons,
    })
}

/// The entry to load among the library's plugin entries `symbols`: the only one, or, when a
/// plugin links other plugin crates in (whose entries the library exports too), the one of
/// the crate the file is named after (`lib<crate>.so`, `<crate>.dll`).
fn entry_symbol(path: &Path, symbols: &[String]) -> Result<String, LoadError> {
    match symbols {
        [] => Err(LoadError::NoEntrySymbol {
            path: path.to_path_buf(),
        }),
        [only] => Ok(only.clone()),
        several => {
            let own = format!("{ENTRY_SYMBOL_PREFIX}{}", crate_name_of_file(path));
            match several.iter().find(|s| **s == own) {
                Some(symbol) => Ok(symbol.clone()),
                None => Err(LoadError::SeveralEntrySymbols {
                    path: path.to_path_buf(),
                    symbols: several.to_vec(),
                    expected: own,
                }),
            }
        }
    }
}

/// The crate name a library file is named after: `libmy_addon.so` (cargo's name for crate
/// `my-addon` on Unix) and `my_addon.dll` give `my_addon`.
fn crate_name_of_file(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem.strip_prefix(DLL_PREFIX).unwrap_or(&stem);
    stem.replace('-', "_")
}

/// Every distinct `__interpose_plugin_entry__<name>` symbol the library at `path` exports.
/// Only the headers and the export table are read (the dynamic symbol table on ELF), through
/// a cache of the parts read: never the whole file.
fn exported_entry_symbols(path: &Path) -> Result<Vec<String>, LoadError> {
    let file = File::open(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let cache = ReadCache::new(file);
    let not_a_library = || LoadError::NotALibrary {
        path: path.to_path_buf(),
    };
    let mut names = Vec::new();
    match FileKind::parse(&cache).map_err(|_| not_a_library())? {
        FileKind::Elf32 => {
            elf_exports::<object::elf::FileHeader32<object::Endianness>, _>(&cache, &mut names)
        }
        FileKind::Elf64 => {
            elf_exports::<object::elf::FileHeader64<object::Endianness>, _>(&cache, &mut names)
        }
        FileKind::MachOFat32 => match MachOFatFile32::parse(&cache) {
            Ok(fat) => fat_exports(&cache, fat.arches(), &mut names),
            Err(_) => Err(()),
        },
        FileKind::MachOFat64 => match MachOFatFile64::parse(&cache) {
            Ok(fat) => fat_exports(&cache, fat.arches(), &mut names),
            Err(_) => Err(()),
        },
        FileKind::MachO32 | FileKind::MachO64 | FileKind::Pe32 | FileKind::Pe64 => {
            object_exports(&cache, &mut names)
        }
        _ => Err(()),
    }
    .map_err(|()| not_a_library())?;
    let mut found: Vec<String> = Vec::new();
    for name in names {
        // Mach-O prefixes C symbol names with `_`.
        let name = name
            .strip_prefix(b"_")
            .filter(|n| n.starts_with(ENTRY_SYMBOL_PREFIX.as_bytes()))
            .unwrap_or(&name);
        let Some(crate_name) = name.strip_prefix(ENTRY_SYMBOL_PREFIX.as_bytes()) else {
            continue;
        };
        if crate_name.is_empty() {
            continue;
        }
        let symbol = String::from_utf8_lossy(name).into_owned();
        if !found.contains(&symbol) {
            found.push(symbol);
        }
    }
    Ok(found)
}

/// The names of the symbols an ELF file defines in its dynamic symbol table (what it
/// exports): its section headers, `.dynsym` and the names in `.dynstr` are all that is read.
fn elf_exports<'data, Elf: FileHeader<Endian = object::Endianness>, R: ReadRef<'data>>(
    data: R,
    names: &mut Vec<Vec<u8>>,
) -> Result<(), ()> {
    let header = Elf::parse(data).map_err(drop)?;
    let endian = header.endian().map_err(drop)?;
    if header.e_type(endian) != object::elf::ET_DYN {
        return Err(());
    }
    let sections = header.sections(endian, data).map_err(drop)?;
    let symbols = sections
        .symbols(endian, data, object::elf::SHT_DYNSYM)
        .map_err(drop)?;
    for symbol in symbols.iter() {
        if symbol.is_undefined(endian) || symbol.st_bind() == object::elf::STB_LOCAL {
            continue;
        }
        if let Ok(name) = symbol.name(endian, symbols.strings()) {
            names.push(name.to_vec());
        }
    }
    Ok(())
}

/// The names a Mach-O or PE library exports.
fn object_exports<'data, R: ReadRef<'data>>(data: R, names: &mut Vec<Vec<u8>>) -> Result<(), ()> {
    let file = object::File::parse(data).map_err(drop)?;
    if file.kind() != ObjectKind::Dynamic {
        return Err(());
    }
    for export in file.exports().map_err(drop)? {
        if let Some(name) = export.map_err(drop)?.name().into_name() {
            names.push(name.to_vec());
        }
    }
    Ok(())
}

/// The names every architecture of a universal (fat) Mach-O library exports.
fn fat_exports<Fat: FatArch, R: ReadCacheOps>(
    cache: &ReadCache<R>,
    arches: &[Fat],
    names: &mut Vec<Vec<u8>>,
) -> Result<(), ()> {
    for arch in arches {
        let member = cache.range(arch.offset().into(), arch.size().into());
        object_exports(member, names)?;
    }
    Ok(())
}

/// Refuses a plugin built against another `interpose-plugin-abi` than the host's (same major
/// version; for `0.x`, same minor), in one line, before the layout check. abi_stable's own
/// version check lets a newer `0.x` minor through, and its layout check then reports the
/// mismatch once for every type.
fn check_abi_version(path: &Path, plugin: VersionStrings) -> Result<(), LoadError> {
    let host = PluginModuleRef::VERSION_STRINGS;
    if versions_compatible(host, plugin) {
        return Ok(());
    }
    Err(LoadError::AbiVersion {
        path: path.to_path_buf(),
        plugin: plugin.version.to_string(),
        host: host.version.to_string(),
    })
}

/// Whether a plugin built against `plugin` works with a host implementing `host`: the same
/// major version and, for `0.x`, the same minor version; the rest may differ either way
/// (patch releases, and minor ones from 1.0 on, only append to the prefix tables, which both
/// sides read up to what they share). A version that does not parse is incompatible.
fn versions_compatible(host: VersionStrings, plugin: VersionStrings) -> bool {
    match (VersionNumber::new(host), VersionNumber::new(plugin)) {
        (Ok(host), Ok(plugin)) => host.is_loosely_compatible(plugin),
        _ => false,
    }
}

fn init_error(path: &Path, what: &str, error: &LibraryError) -> LoadError {
    LoadError::Init {
        path: path.to_path_buf(),
        reason: format!("{what}: {}", summarize(&error.to_string())),
    }
}

/// The dynamic loader's message without abi_stable's multi-line framing.
fn dynamic_loader_reason(error: &LibraryError) -> String {
    match error {
        LibraryError::OpenError { err, .. } => err.to_string(),
        other => summarize(&other.to_string()),
    }
}

/// The first few non-empty lines of a multi-line report, on one line.
fn summarize(report: &str) -> String {
    const MAX_CHARS: usize = 300;
    let mut line = report
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(4)
        .collect::<Vec<_>>()
        .join(" ");
    if line.chars().count() > MAX_CHARS {
        line = line.chars().take(MAX_CHARS).collect::<String>() + "...";
    }
    line
}

/// The `Error:` entries of abi_stable's layout report, as `kind (expected X, found Y)`.
fn layout_errors(report: &str) -> Option<String> {
    let lines: Vec<&str> = report.lines().map(str::trim).collect();
    let value_after = |from: usize, label: &str| {
        let at = from + lines[from..].iter().position(|l| *l == label)?;
        lines[at + 1..].iter().find(|l| !l.is_empty()).copied()
    };
    let errors: Vec<String> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            let kind = line.strip_prefix("Error:")?;
            Some(
                match (value_after(i, "Expected:"), value_after(i, "Found:")) {
                    (Some(expected), Some(found)) => {
                        format!("{kind} (expected {expected}, found {found})")
                    }
                    _ => kind.to_string(),
                },
            )
        })
        .collect();
    (!errors.is_empty()).then(|| summarize(&errors.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_named_after_the_file_wins() {
        let entry = |file: &str, symbols: &[&str]| {
            let symbols: Vec<String> = symbols.iter().map(|s| s.to_string()).collect();
            entry_symbol(Path::new(file), &symbols).map_err(|e| e.to_string())
        };
        let base = "__interpose_plugin_entry__plugin_base";
        let user = "__interpose_plugin_entry__plugin_user";
        assert_eq!(entry("dir/anything.so", &[base]).unwrap(), base);
        let own = format!("dir/{DLL_PREFIX}plugin-user.so");
        assert_eq!(entry(&own, &[base, user]).unwrap(), user);
        let own = format!("dir/{DLL_PREFIX}plugin_base.so");
        assert_eq!(entry(&own, &[base, user]).unwrap(), base);
        let renamed = entry("dir/renamed.so", &[base, user]).unwrap_err();
        assert!(
            renamed.contains(&format!("({base}, {user})"))
                && renamed.contains("__interpose_plugin_entry__renamed"),
            "{renamed}"
        );
        assert!(entry("dir/x.so", &[])
            .unwrap_err()
            .contains("not an Interpose plugin"));
    }

    #[test]
    fn files_that_are_not_libraries_are_refused() {
        let dir = std::env::temp_dir().join(format!("interpose-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let check = |name: &str, start: &[u8], len: u64| {
            let path = dir.join(name);
            std::fs::write(&path, start).unwrap();
            // Sparse: a gigabyte that takes no disk space, and that reading whole would take
            // a gigabyte of memory.
            File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(len)
                .unwrap();
            let error = exported_entry_symbols(&path).unwrap_err();
            assert!(
                matches!(error, LoadError::NotALibrary { .. }),
                "{name}: {error}"
            );
        };
        check("script.so", b"#!/bin/sh\necho not a library\n", 30);
        check("empty.so", b"", 0);
        check("huge.so", b"#!/bin/sh\n", 1 << 30);
        check(
            "huge-elf.so",
            b"\x7fELF\x02\x01\x01\0garbage header",
            1 << 30,
        );
        check("truncated-elf.so", b"\x7fELF\x02\x01\x01", 7);
        let missing = exported_entry_symbols(&dir.join("missing.so")).unwrap_err();
        assert!(matches!(missing, LoadError::Read { .. }), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn version_rule() {
        let compatible = |host: &'static str, plugin: &'static str| {
            versions_compatible(VersionStrings::new(host), VersionStrings::new(plugin))
        };
        assert!(compatible("0.2.0", "0.2.0"));
        assert!(compatible("0.2.0", "0.2.3"));
        assert!(compatible("0.2.3", "0.2.0"));
        assert!(
            !compatible("0.1.0", "0.2.0"),
            "a newer minor is refused up front"
        );
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(!compatible("0.2.0", "0.0.1"));
        assert!(compatible("0.3.1", "0.3.0"), "an older patch loads");
        assert!(compatible("0.3.0", "0.3.1"), "a newer patch loads");
        assert!(compatible("1.2.0", "1.5.0"));
        assert!(compatible("1.5.0", "1.2.0"));
        assert!(compatible("1.5.3", "1.5.0"));
        assert!(!compatible("1.0.0", "2.0.0"));
        assert!(!compatible("0.2.0", "not a version"));
        assert!(
            !versions_compatible(
                PluginModuleRef::VERSION_STRINGS,
                VersionStrings::new("0.2.0")
            ),
            "plugins built before the TLS events (0.3.0) are refused by version"
        );
    }

    #[test]
    fn layout_report_errors_are_extracted() {
        let report = "Compared <this>:\n  --- Type Layout ---\n\nError:mismatched package\n\
                      Expected:\n    interpose-plugin-abi\nFound:\n    other\n\n";
        assert_eq!(
            layout_errors(report).as_deref(),
            Some("mismatched package (expected interpose-plugin-abi, found other)")
        );
        assert_eq!(layout_errors("no errors here"), None);
    }

    #[test]
    fn summary_is_one_bounded_line() {
        let report = "\n  first\n\n second \nthird\nfourth\nfifth";
        assert_eq!(summarize(report), "first second third fourth");
        assert!(summarize(&"x".repeat(1000)).ends_with("..."));
    }
}
