//! Loading plugins: from `--plugin` and the plugins folder, in order, and rejecting broken ones
//! (and second copies) without stopping; plugins depending on plugins; plugins built with
//! `panic = "abort"` refused at build time.

use std::{
    env::consts::{DLL_PREFIX, DLL_SUFFIX},
    path::Path,
    process::Command,
};

use crate::harness::{plugin, send, temp_dir, Proxy, Upstream};

/// `lib<stem>.so` (or the platform's equivalent).
fn library_name(stem: &str) -> String {
    format!("{DLL_PREFIX}{stem}{DLL_SUFFIX}")
}

#[test]
fn anatomy_and_anatomy2_plugins_work_from_the_command_line() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("anatomy"))
        .plugin(&plugin("anatomy2"))
        .start();
    proxy.wait_for_log("Loaded plugin anatomy 0.1.0");
    proxy.wait_for_log("Loaded plugin anatomy2 0.1.0");
    for _ in 0..3 {
        assert_eq!(send(proxy.addr, "GET", "/", b"").unwrap().status, 200);
    }
    proxy.wait_for_log("We've seen 3 flows");
    for n in 1..=3 {
        assert_eq!(proxy.lines_with(&format!("We've seen {n} flows")).len(), 1);
    }
    let seen = upstream.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s.header("myheader") == Some("value")));
}

#[test]
fn plugins_folder_loads_by_file_name_then_command_line_plugins() {
    let upstream = Upstream::start();
    let dir = temp_dir("plugins-folder");
    std::fs::copy(plugin("anatomy"), dir.join("b-anatomy.so")).unwrap();
    std::fs::copy(plugin("event-log"), dir.join("a-event-log.so")).unwrap();
    std::fs::write(dir.join("README.txt"), "not a library, not loaded").unwrap();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugins_dir(&dir)
        .plugin(&plugin("anatomy2"))
        .start();
    let loaded = proxy.wait_for_count("Loaded plugin", 3);
    assert!(loaded[0].contains("event-log"), "{loaded:?}");
    assert!(loaded[1].contains("anatomy"), "{loaded:?}");
    assert!(loaded[2].contains("anatomy2"), "{loaded:?}");
    assert!(proxy.lines_with("README").is_empty());

    assert_eq!(send(proxy.addr, "GET", "/x", b"").unwrap().status, 200);
    proxy.wait_for_log("We've seen 1 flows");
    let log = proxy.log();
    let position = |needle: &str| log.iter().position(|l| l.contains(needle)).unwrap();
    assert!(
        position("event request /x") < position("We've seen 1 flows"),
        "addons run in load order:\n{}",
        proxy.dump()
    );
    assert_eq!(upstream.seen()[0].header("myheader"), Some("value"));
}

#[test]
fn broken_plugins_are_rejected_with_one_clear_line_each() {
    let upstream = Upstream::start();
    let dir = temp_dir("broken");
    let garbage = dir.join("garbage.so");
    std::fs::write(&garbage, "#!/bin/sh\necho this is not a library\n").unwrap();
    let missing = dir.join("missing.so");
    let not_a_plugin = plugin("not-a-plugin");
    let old_abi = plugin("abi-old-version");
    let bad_layout = plugin("abi-layout-mismatch");
    let panic_abort = plugin("abi-panic-abort");
    // A plugin linking another plugin crate in, renamed: neither entry is named after it.
    let renamed = dir.join("renamed.so");
    std::fs::copy(plugin("plugin-user"), &renamed).unwrap();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&garbage)
        .plugin(&missing)
        .plugin(&not_a_plugin)
        .plugin(&old_abi)
        .plugin(&bad_layout)
        .plugin(&panic_abort)
        .plugin(&renamed)
        .plugin(&plugin("anatomy"))
        .start();

    let expect = |path: &std::path::Path, reason: &str| {
        let lines = proxy.lines_with(&format!("cannot load plugin {}", path.display()));
        assert_eq!(
            lines.len(),
            1,
            "one line for {}:\n{}",
            path.display(),
            proxy.dump()
        );
        assert!(lines[0].contains(reason), "{:?} lacks {reason:?}", lines[0]);
        assert!(lines[0].contains("error"), "{:?} is an error", lines[0]);
    };
    expect(&garbage, "not a shared library");
    expect(&missing, "cannot read the file");
    expect(&not_a_plugin, "not an Interpose plugin");
    expect(
        &old_abi,
        &format!(
            "built against interpose-plugin-abi 0.2.0, but this interpose expects {}",
            interpose_plugin_abi::ABI_VERSION
        ),
    );
    expect(&bad_layout, "layout check failed");
    expect(
        &panic_abort,
        "built with `panic = \"abort\"`, so a panic in it would abort the whole proxy; remove \
         `panic = \"abort\"` from the plugin's profile",
    );
    assert!(proxy.lines_with("must not be called").is_empty());
    expect(
        &renamed,
        "exports several plugin entries (__interpose_plugin_entry__",
    );
    expect(&renamed, "none is named after the file");

    // The proxy started anyway, with the plugin that is fine.
    proxy.wait_for_log("Loaded plugin anatomy");
    assert_eq!(send(proxy.addr, "GET", "/", b"").unwrap().status, 200);
    proxy.wait_for_log("We've seen 1 flows");
}

#[test]
fn a_plugin_named_twice_loads_once() {
    let dir = temp_dir("twice");
    std::fs::copy(plugin("anatomy"), dir.join("anatomy.so")).unwrap();
    let proxy = Proxy::builder()
        .plugins_dir(&dir)
        .plugin(&dir.join("anatomy.so"))
        .start();
    proxy.wait_for_log("is already loaded");
    assert_eq!(proxy.lines_with("Loaded plugin anatomy").len(), 1);
}

#[test]
fn concurrent_keep_alive_load_through_both_example_plugins() {
    const CLIENTS: usize = 8;
    const REQUESTS: usize = 50;
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("anatomy2"))
        .plugin(&plugin("anatomy"))
        .start();
    let addr = proxy.addr;
    let workers: Vec<_> = (0..CLIENTS)
        .map(|c| {
            std::thread::spawn(move || {
                let mut client = crate::harness::Connection::open(addr);
                for r in 0..REQUESTS {
                    let path = format!("/load/{c}/{r}");
                    let reply = client.send("GET", &path, &[], b"").unwrap();
                    assert_eq!(reply.status, 200);
                    assert_eq!(reply.text(), format!("upstream saw GET {path}"));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("client thread");
    }
    let total = CLIENTS * REQUESTS;
    proxy.wait_for_log(&format!("We've seen {total} flows"));
    let seen = upstream.seen();
    assert_eq!(seen.len(), total);
    assert!(seen.iter().all(|s| s.header("myheader") == Some("value")));
}

#[test]
fn a_bare_file_name_is_a_file_in_the_working_directory() {
    let upstream = Upstream::start();
    let dir = temp_dir("bare-name");
    // A name the dynamic loader's own search (LD_LIBRARY_PATH includes cargo's target
    // folders under `cargo test`) cannot find.
    let name = library_name("bare_anatomy");
    std::fs::copy(plugin("anatomy"), dir.join(&name)).unwrap();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .current_dir(&dir)
        .plugin(Path::new(&name))
        .start();
    proxy.wait_for_log(&format!("Loaded plugin anatomy 0.1.0 from {name}"));
    assert_eq!(send(proxy.addr, "GET", "/", b"").unwrap().status, 200);
    proxy.wait_for_log("We've seen 1 flows");
}

#[test]
fn the_same_plugin_from_another_file_is_refused_naming_both() {
    let upstream = Upstream::start();
    let folder = temp_dir("dup-folder");
    let (a, b) = (temp_dir("dup-a"), temp_dir("dup-b"));
    let name = library_name("anatomy");
    let first = folder.join("anatomy.so");
    for path in [&first, &a.join(&name), &b.join(&name)] {
        std::fs::copy(plugin("anatomy"), path).unwrap();
    }
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugins_dir(&folder)
        .plugin(&a.join(&name))
        .plugin(&b.join(&name))
        .start();
    for copy in [a.join(&name), b.join(&name)] {
        let line = proxy.wait_for_log(&format!("cannot load plugin {}", copy.display()));
        assert!(
            line.contains(&format!(
                "plugin anatomy is already loaded from {}",
                first.display()
            )) && line.contains("error"),
            "{line}"
        );
    }
    assert_eq!(proxy.lines_with("Loaded plugin anatomy").len(), 1);
    assert_eq!(send(proxy.addr, "GET", "/", b"").unwrap().status, 200);
    proxy.wait_for_log("We've seen 1 flows");
    assert_eq!(
        proxy.lines_with("We've seen 1 flows").len(),
        1,
        "one anatomy counts"
    );
}

#[test]
fn a_built_in_plugin_loaded_again_from_a_file_is_refused() {
    let upstream = Upstream::start();
    // The built-in `save` as a loadable library, built in a folder of its own: building a
    // crate the proxy links in into the shared target folder would put a second `save` rlib
    // beside the one `interpose` was built with (its doctests then find two).
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let target = workspace.join("target/e2e-builtin");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args(["build", "--quiet", "-p", "save"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(workspace)
        .output()
        .expect("run cargo");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let save = target.join("debug").join(library_name("save"));
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&save)
        .start();
    let line = proxy.wait_for_log(&format!("cannot load plugin {}", save.display()));
    assert!(
        line.contains(
            "plugin save is already loaded from the interpose binary (a built-in plugin)"
        ),
        "{line}"
    );
    assert_eq!(send(proxy.addr, "GET", "/", b"").unwrap().status, 200);
}

#[test]
fn a_plugin_depending_on_another_plugin_crate_loads_its_own_entry() {
    let upstream = Upstream::start();
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&plugin("plugin-user"))
        .plugin(&plugin("plugin-base"))
        .start();
    let user = proxy.wait_for_log("Loaded plugin plugin-user 0.1.0");
    assert!(user.ends_with("addons base-tag, user-tag"), "{user}");
    let base = proxy.wait_for_log("Loaded plugin plugin-base 0.1.0");
    assert!(base.ends_with("addons base-tag"), "{base}");
    assert_eq!(send(proxy.addr, "GET", "/", b"").unwrap().status, 200);
    let seen = &upstream.seen()[0];
    assert_eq!(seen.header("x-user"), Some("1"));
    assert_eq!(seen.header("x-base"), Some("1"));
}

#[test]
fn a_huge_plugin_file_is_not_read_into_memory() {
    let dir = temp_dir("huge");
    let path = dir.join(library_name("anatomy"));
    std::fs::copy(plugin("anatomy"), &path).unwrap();
    // A gigabyte of (sparse) zeros after the library: the dynamic loader maps only its
    // segments, and finding the entry reads only the export table.
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_len(1 << 30).unwrap();
    let proxy = Proxy::builder().plugin(&path).start();
    proxy.wait_for_log("Loaded plugin anatomy 0.1.0");
    let peak = proxy.peak_rss();
    assert!(
        peak < 256 << 20,
        "peak RSS {} MiB: the file was read whole",
        peak >> 20
    );
}

#[test]
fn a_plugin_whose_addon_constructor_panics_is_reported_and_stays_loaded() {
    let upstream = Upstream::start();
    let panicky = plugin("panic-new");
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&panicky)
        .plugin(&plugin("anatomy"))
        .start();
    let line = proxy.wait_for_log(&format!("cannot load plugin {}", panicky.display()));
    assert!(
        line.contains("creating its addons panicked: fixture panic in the addon constructor"),
        "{line}"
    );
    proxy.wait_for_log("Loaded plugin anatomy");
    // Its code stays mapped (a mapping of the file at offset 0 may also be the plugin's
    // backtrace printer reading its debug info: the executable one is the loaded code).
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", proxy.pid())).unwrap();
    let canonical = std::fs::canonicalize(&panicky)
        .unwrap()
        .display()
        .to_string();
    assert!(
        maps.lines().any(|l| l.ends_with(&canonical)
            && l.split_whitespace().nth(1).is_some_and(|p| p.contains('x'))),
        "{canonical} was unloaded:\n{maps}"
    );
    for n in 1..=3 {
        assert_eq!(send(proxy.addr, "GET", "/", b"").unwrap().status, 200);
        proxy.wait_for_log(&format!("We've seen {n} flows"));
    }
}

#[test]
fn a_plugin_built_with_panic_abort_does_not_compile() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let crate_dir = temp_dir("panic-abort");
    std::fs::write(
        crate_dir.join("Cargo.toml"),
        format!(
            r#"[package]
name = "abort-plugin"
version = "0.1.0"
edition = "2021"

[lib]
crate-type = ["cdylib"]

[dependencies]
interpose-plugin-abi = {{ path = "{}" }}

[profile.dev]
panic = "abort"

[workspace]
"#,
            workspace.join("plugin-abi").display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(crate_dir.join("src")).unwrap();
    std::fs::write(
        crate_dir.join("src/lib.rs"),
        "use interpose_plugin_abi::prelude::*;\n\n\
         fn request(_ctx: &Context, _flow: &mut HttpFlow) {}\n\n\
         export_plugin!(functions = [request]);\n",
    )
    .unwrap();
    std::fs::copy(workspace.join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    // Its own build folder (everything is built with `panic = "abort"` there), kept between
    // runs.
    let output = Command::new(cargo)
        .args(["build", "--quiet"])
        .env("CARGO_TARGET_DIR", workspace.join("target/e2e-panic-abort"))
        .current_dir(&crate_dir)
        .output()
        .expect("run cargo");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "it built:\n{stderr}");
    assert!(
        stderr.contains(
            "an Interpose plugin cannot be built with `panic = \"abort\"`: a panic in an addon \
             would abort the whole proxy. Remove `panic = \"abort\"` from the plugin's profile"
        ),
        "{stderr}"
    );
}

#[test]
fn two_addons_declaring_one_option_name_stop_the_proxy_naming_both() {
    let run = Proxy::builder()
        .plugin(&plugin("options-simple"))
        .plugin(&plugin("options-configure"))
        .run();
    assert!(!run.status.success(), "{}{}", run.stdout, run.stderr);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains(
            "option error: addon 'addheader' (plugin options-configure) cannot declare option \
             addheader: addon 'addheader' (plugin options-simple) declared an option called \
             addheader already"
        ),
        "{all}"
    );
    assert!(!all.contains("listening at"), "{all}");
}
