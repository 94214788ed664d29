//! Building plugin crates of the workspace the way a user would (`cargo build -p NAME`) and
//! finding the shared library cargo produced.

use std::{
    collections::HashMap,
    env::consts::{DLL_PREFIX, DLL_SUFFIX},
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
};

/// The shared library of workspace package `package`, built on first use.
pub fn plugin(package: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(path) = built.get(package) {
        return path.clone();
    }
    let path = build(package);
    built.insert(package.to_string(), path.clone());
    path
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("core/ has a parent")
        .to_path_buf()
}

fn build(package: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args(["build", "--quiet", "-p", package, "--message-format=json"])
        .current_dir(workspace_root())
        .output()
        .expect("run cargo build");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo build -p {package} failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let file_name = format!("{DLL_PREFIX}{}{DLL_SUFFIX}", package.replace('-', "_"));
    stdout
        .lines()
        .filter(|line| line.contains("\"reason\":\"compiler-artifact\""))
        .flat_map(|line| line.split('"'))
        .find(|s| s.ends_with(&format!("/{file_name}")) || s.ends_with(&format!("\\{file_name}")))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("cargo build -p {package} reported no {file_name}:\n{stdout}"))
}
