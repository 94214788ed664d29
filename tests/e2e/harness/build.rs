//! Building plugin and program crates of the workspace the way a user would (`cargo build -p
//! NAME`) and finding the shared library or executable cargo produced.

use std::{
    collections::HashMap,
    env::consts::{DLL_PREFIX, DLL_SUFFIX},
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
};

/// The shared library of workspace package `package`, built on first use.
pub fn plugin(package: &str) -> PathBuf {
    built(package, Artifact::Library)
}

/// The executable of workspace package `package` (a program, like the examples' flow file
/// reader), built on first use.
pub fn binary(package: &str) -> PathBuf {
    built(package, Artifact::Executable)
}

/// What a package is built for.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Artifact {
    Library,
    Executable,
}

fn built(package: &str, artifact: Artifact) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<(String, Artifact), PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    let key = (package.to_string(), artifact);
    if let Some(path) = built.get(&key) {
        return path.clone();
    }
    let path = build(package, artifact);
    built.insert(key, path.clone());
    path
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("core/ has a parent")
        .to_path_buf()
}

fn build(package: &str, artifact: Artifact) -> PathBuf {
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
    let artifacts = stdout
        .lines()
        .filter(|line| line.contains("\"reason\":\"compiler-artifact\""));
    match artifact {
        Artifact::Library => {
            let file_name = format!("{DLL_PREFIX}{}{DLL_SUFFIX}", package.replace('-', "_"));
            artifacts
                .flat_map(|line| line.split('"'))
                .find(|s| {
                    s.ends_with(&format!("/{file_name}")) || s.ends_with(&format!("\\{file_name}"))
                })
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    panic!("cargo build -p {package} reported no {file_name}:\n{stdout}")
                })
        }
        Artifact::Executable => artifacts
            .filter(|line| line.contains(&format!("\"name\":\"{package}\"")))
            .find_map(|line| line.split("\"executable\":\"").nth(1)?.split('"').next())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                panic!("cargo build -p {package} reported no executable:\n{stdout}")
            }),
    }
}
