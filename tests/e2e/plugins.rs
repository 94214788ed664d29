//! Loading plugins: from `--plugin` and the plugins folder, in order, and rejecting broken ones
//! without stopping.

use crate::harness::{plugin, send, temp_dir, Proxy, Upstream};

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
    let proxy = Proxy::builder()
        .reverse(upstream.addr)
        .plugin(&garbage)
        .plugin(&missing)
        .plugin(&not_a_plugin)
        .plugin(&old_abi)
        .plugin(&bad_layout)
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
