//! Why a plugin could not be loaded. Every variant names the file.

use std::{fmt, io, path::PathBuf};

/// A plugin file the loader rejected; the proxy starts without it.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Read {
        /// The plugin file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is not a shared library at all.
    NotALibrary {
        /// The plugin file.
        path: PathBuf,
    },
    /// The dynamic loader refused the library.
    Open {
        /// The plugin file.
        path: PathBuf,
        /// What the dynamic loader said.
        reason: String,
    },
    /// A shared library, but without an Interpose plugin entry symbol.
    NoEntrySymbol {
        /// The plugin file.
        path: PathBuf,
    },
    /// The library exports more than one plugin entry (it links other plugins in) and none
    /// is named after the file.
    SeveralEntrySymbols {
        /// The plugin file.
        path: PathBuf,
        /// The entry symbols found.
        symbols: Vec<String>,
        /// The entry named after the file.
        expected: String,
    },
    /// Another file of the same plugin (same crate name) loaded already.
    Duplicate {
        /// The plugin file refused.
        path: PathBuf,
        /// The plugin's name.
        name: String,
        /// The file it loaded from.
        first: PathBuf,
    },
    /// Built with `panic = "abort"`: its panics cannot be caught.
    PanicAbort {
        /// The plugin file.
        path: PathBuf,
    },
    /// Built with an `abi_stable` whose ABI differs from the host's.
    AbiStableMismatch {
        /// The plugin file.
        path: PathBuf,
    },
    /// Built against an incompatible version of `interpose-plugin-abi`.
    AbiVersion {
        /// The plugin file.
        path: PathBuf,
        /// The version the plugin was built against.
        plugin: String,
        /// The version this host implements.
        host: String,
    },
    /// The version numbers are compatible but the types' layouts are not.
    Layout {
        /// The plugin file.
        path: PathBuf,
        /// The first lines of abi_stable's report.
        detail: String,
    },
    /// The plugin's module or one of its addon constructors failed (or panicked).
    Init {
        /// The plugin file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl LoadError {
    /// The plugin file the error is about.
    pub fn path(&self) -> &PathBuf {
        match self {
            LoadError::Read { path, .. }
            | LoadError::NotALibrary { path }
            | LoadError::Open { path, .. }
            | LoadError::NoEntrySymbol { path }
            | LoadError::SeveralEntrySymbols { path, .. }
            | LoadError::Duplicate { path, .. }
            | LoadError::PanicAbort { path }
            | LoadError::AbiStableMismatch { path }
            | LoadError::AbiVersion { path, .. }
            | LoadError::Layout { path, .. }
            | LoadError::Init { path, .. } => path,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot load plugin {}: ", self.path().display())?;
        match self {
            LoadError::Read { source, .. } => write!(f, "cannot read the file: {source}"),
            LoadError::NotALibrary { .. } => f.write_str("not a shared library"),
            LoadError::Open { reason, .. } => write!(f, "the dynamic loader refused it: {reason}"),
            LoadError::NoEntrySymbol { .. } => f.write_str(
                "not an Interpose plugin (no `__interpose_plugin_entry__*` symbol; \
                 did the crate call `export_plugin!`?)",
            ),
            LoadError::SeveralEntrySymbols {
                symbols, expected, ..
            } => write!(
                f,
                "exports several plugin entries ({}) and none is named after the file \
                 ({expected}); keep the file name cargo gave the library (lib<crate>.so)",
                symbols.join(", ")
            ),
            LoadError::Duplicate { name, first, .. } => write!(
                f,
                "plugin {name} is already loaded from {}; a plugin loads once",
                first.display()
            ),
            LoadError::PanicAbort { .. } => f.write_str(
                "built with `panic = \"abort\"`, so a panic in it would abort the whole proxy; \
                 remove `panic = \"abort\"` from the plugin's profile and rebuild it \
                 (Interpose catches addon panics at the plugin boundary)",
            ),
            LoadError::AbiStableMismatch { .. } => f.write_str(
                "built with an abi_stable version whose ABI differs from this interpose's",
            ),
            LoadError::AbiVersion { plugin, host, .. } => write!(
                f,
                "built against interpose-plugin-abi {plugin}, but this interpose expects \
                 {host}; rebuild the plugin against {host}"
            ),
            LoadError::Layout { detail, .. } => write!(
                f,
                "its plugin ABI types do not match this interpose's (layout check failed: \
                 {detail}); rebuild the plugin against interpose-plugin-abi {}",
                interpose_plugin_abi::ABI_VERSION
            ),
            LoadError::Init { reason, .. } => write!(f, "{reason}"),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}
