//! The README's "Write an addon" section, followed to the letter: its `Cargo.toml` and
//! `src/lib.rs` become a crate outside the workspace, built with plain `cargo build` and loaded
//! into the proxy.

use std::{path::Path, process::Command};

use crate::harness::{send, temp_dir, Proxy, Upstream};

/// The code block that follows `<!-- readme-addon: NAME -->` in the README.
fn readme_block(readme: &str, name: &str) -> String {
    let marker = format!("<!-- readme-addon: {name} -->");
    let after = readme
        .split_once(&marker)
        .unwrap_or_else(|| panic!("README has no {marker}"))
        .1;
    let start = after.find("```").expect("a code block follows the marker");
    let body = &after[start..];
    let body = &body[body.find('\n').expect("fence line") + 1..];
    body[..body.find("```").expect("closing fence")].to_string()
}

#[test]
fn an_addon_written_from_the_readme_builds_outside_the_workspace_and_loads() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let readme = std::fs::read_to_string(workspace.join("README.md")).unwrap();
    let crate_dir = temp_dir("readme-addon");
    let manifest = readme_block(&readme, "Cargo.toml").replace(
        "../interpose/plugin-abi",
        &workspace.join("plugin-abi").display().to_string(),
    );
    std::fs::write(crate_dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::create_dir_all(crate_dir.join("src")).unwrap();
    std::fs::write(
        crate_dir.join("src/lib.rs"),
        readme_block(&readme, "src/lib.rs"),
    )
    .unwrap();
    // Same dependency versions and build folder as the workspace: only the new crate compiles.
    std::fs::copy(workspace.join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    let target = workspace.join("target");
    let cargo = |command: &str, what: &str| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let output = Command::new(cargo)
            .args([command, "--quiet"])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(&crate_dir)
            .output()
            .expect("run cargo");
        assert!(
            output.status.success(),
            "the README's addon {what}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    cargo("build", "does not build");
    // Its own test, written with the README's testing helpers, passes.
    cargo("test", "test fails");
    let library = target.join("debug").join(format!(
        "{}my_addon{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));

    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&library)
        .start();
    proxy.wait_for_log("Loaded plugin my-addon 0.1.0");

    let reply = send(proxy.addr, "GET", "/page", b"").unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-seen-by"), Some("my-addon"));
    assert_eq!(upstream.seen()[0].header("x-tagged-by"), Some("my-addon"));

    let pong = send(proxy.addr, "GET", "/ping", b"").unwrap();
    assert_eq!(pong.text(), "pong");
    assert_eq!(upstream.seen().len(), 1, "/ping never reached the server");
    proxy.wait_for_log("tagger: request 2: GET http://");
}
