//! Which files to load: the plugins folder in file-name order, then each of `plugins`.

use std::{
    ffi::OsStr,
    io,
    path::{Path, PathBuf},
};

/// File extensions of shared libraries on the platforms Interpose runs on.
const LIBRARY_EXTENSIONS: [&str; 3] = ["so", "dylib", "dll"];

/// The shared libraries directly inside `dir`, sorted by file name. A missing folder has no
/// plugins.
pub fn plugin_paths(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let is_library = path
            .extension()
            .and_then(OsStr::to_str)
            .is_some_and(|ext| LIBRARY_EXTENSIONS.contains(&ext));
        if is_library && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_libraries_in_name_order() {
        let dir = std::env::temp_dir().join(format!("interpose-discover-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["b.so", "a.so", "c.dylib", "notes.txt", "d.dll"] {
            std::fs::write(dir.join(name), b"x").unwrap();
        }
        std::fs::create_dir_all(dir.join("sub.so")).unwrap();
        let names: Vec<String> = plugin_paths(&dir)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.so", "b.so", "c.dylib", "d.dll"]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(plugin_paths(&dir).unwrap().is_empty());
    }
}
