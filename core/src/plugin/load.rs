//! Loading one plugin library: find its entry symbol, check its ABI version, then its layout,
//! and build its addons.
//!
//! Each library is loaded through its own `abi_stable` header (not `RootModule::load_from*`,
//! which caches one module per root-module type), so any number of plugins load side by side.
//! Libraries are never unloaded: their addons and function pointers live until the process
//! exits.

use std::path::{Path, PathBuf};

use abi_stable::{
    library::{AbiHeaderRef, LibraryError, RawLibrary, RootModule},
    sabi_types::{VersionNumber, VersionStrings},
    std_types::{RErr, ROk},
};
use interpose_plugin_abi::ffi::{PluginModuleRef, RawAddon, ENTRY_SYMBOL_PREFIX};

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

/// Loads the plugin library at `path` and builds its addons.
pub fn load_plugin(path: &Path) -> Result<LoadedPlugin, LoadError> {
    let path_buf = path.to_path_buf();
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path_buf.clone(),
        source,
    })?;
    if !is_shared_library(&bytes) {
        return Err(LoadError::NotALibrary { path: path_buf });
    }
    let candidates = entry_symbol_candidates(&bytes);
    drop(bytes);
    if candidates.is_empty() {
        return Err(LoadError::NoEntrySymbol { path: path_buf });
    }

    let library = RawLibrary::load_at(path).map_err(|e| LoadError::Open {
        path: path_buf.clone(),
        reason: dynamic_loader_reason(&e),
    })?;
    let mut entries = Vec::new();
    for symbol in &candidates {
        let name = format!("{symbol}\0");
        // SAFETY: a symbol named with our entry prefix is the `LibHeader` static written by
        // `export_plugin!`; reading it as `AbiHeaderRef` (a pointer to the header, whose
        // first field is the frozen `AbiHeader`) is how abi_stable itself reads headers, and
        // `upgrade` checks the header before anything else is read.
        if let Ok(header) = unsafe { library.get::<AbiHeaderRef>(name.as_bytes()) } {
            entries.push((symbol.clone(), *header));
        }
    }
    let header = match entries.len() {
        0 => return Err(LoadError::NoEntrySymbol { path: path_buf }),
        1 => entries[0].1,
        _ => {
            return Err(LoadError::SeveralEntrySymbols {
                path: path_buf,
                symbols: entries.into_iter().map(|(symbol, _)| symbol).collect(),
            })
        }
    };

    let header = header.upgrade().map_err(|e| match e {
        LibraryError::InvalidAbiHeader(_) => LoadError::AbiStableMismatch {
            path: path_buf.clone(),
        },
        other => init_error(&path_buf, "its abi_stable header is unusable", &other),
    })?;
    check_abi_version(&path_buf, header.version_strings())?;
    let module = header
        .init_root_module::<PluginModuleRef>()
        .map_err(|e| match e {
            LibraryError::IncompatibleVersionNumber {
                expected_version,
                actual_version,
                ..
            } => LoadError::AbiVersion {
                path: path_buf.clone(),
                plugin: actual_version.to_string(),
                host: expected_version.to_string(),
            },
            LibraryError::AbiInstability(report) => {
                let report = report.to_string();
                tracing::debug!("layout report for {}:\n{report}", path_buf.display());
                LoadError::Layout {
                    path: path_buf.clone(),
                    detail: layout_errors(&report).unwrap_or_else(|| summarize(&report)),
                }
            }
            other => init_error(&path_buf, "its module failed to initialize", &other),
        })?;

    let addons = match (module.new_addons())() {
        ROk(addons) => addons.into_vec(),
        RErr(message) => {
            return Err(LoadError::Init {
                path: path_buf,
                reason: format!("creating its addons panicked: {message}"),
            })
        }
    };
    // The addons' code and vtables live in the library: keep it loaded for good.
    std::mem::forget(library);
    Ok(LoadedPlugin {
        path: path_buf,
        name: module.name().to_string(),
        version: module.version().to_string(),
        addons,
    })
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

/// Whether a plugin built against `plugin` works with a host implementing `host`: same
/// major version, and for `0.x` the same minor version (patch releases only append to the
/// prefix tables). A version that does not parse is incompatible.
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

/// Whether `bytes` start like an ELF, Mach-O or PE file.
fn is_shared_library(bytes: &[u8]) -> bool {
    const MAGICS: [&[u8]; 7] = [
        b"\x7fELF",
        b"\xfe\xed\xfa\xce",
        b"\xce\xfa\xed\xfe",
        b"\xfe\xed\xfa\xcf",
        b"\xcf\xfa\xed\xfe",
        b"\xca\xfe\xba\xbe",
        b"MZ",
    ];
    MAGICS.iter().any(|magic| bytes.starts_with(magic))
}

/// Every distinct `__interpose_plugin_entry__<name>` string in the file: the names the
/// library may export its entry under. Scanning the bytes works for ELF, Mach-O and PE alike;
/// candidates that are not exported symbols are discarded by the dynamic loader's lookup.
fn entry_symbol_candidates(bytes: &[u8]) -> Vec<String> {
    let prefix = ENTRY_SYMBOL_PREFIX.as_bytes();
    let mut found: Vec<String> = Vec::new();
    let mut at = 0;
    while let Some(offset) = find(&bytes[at..], prefix) {
        let start = at + offset;
        let name_start = start + prefix.len();
        let name_len = bytes[name_start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        if name_len > 0 {
            let symbol = String::from_utf8_lossy(&bytes[start..name_start + name_len]);
            if !found.iter().any(|s| *s == symbol) {
                found.push(symbol.into_owned());
            }
        }
        at = name_start + name_len;
    }
    found
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = needle[0];
    let mut i = 0;
    while i + needle.len() <= haystack.len() {
        match haystack[i..].iter().position(|b| *b == first) {
            None => return None,
            Some(skip) => i += skip,
        }
        if haystack[i..].starts_with(needle) {
            return Some(i);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_entry_candidates_once_each() {
        let mut file = b"\x7fELF....\0".to_vec();
        file.extend_from_slice(b"__interpose_plugin_entry__counter\0junk");
        file.extend_from_slice(b"__interpose_plugin_entry__\0");
        file.extend_from_slice(b"x__interpose_plugin_entry__counter\0");
        file.extend_from_slice(b"__interpose_plugin_entry__add_header2.");
        assert_eq!(
            entry_symbol_candidates(&file),
            [
                "__interpose_plugin_entry__counter",
                "__interpose_plugin_entry__add_header2"
            ]
        );
        assert!(is_shared_library(&file));
        assert!(!is_shared_library(b"#!/bin/sh\n"));
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
        assert!(compatible("1.2.0", "1.5.0"));
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
