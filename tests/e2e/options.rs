//! Options through the real binary: `--options`, `CONFDIR/config.yaml`, `--set` and flags in
//! that order of precedence, and the errors for unknown names, bad values and bad files.

use std::{collections::HashSet, path::PathBuf};

use crate::harness::{
    closed_port, plugin, send, temp_dir, Finished, Proxy, ProxyBuilder, Upstream,
};

/// A fresh confdir holding `config.yaml` with `text`.
fn confdir_with(text: &str) -> PathBuf {
    let dir = temp_dir("confdir");
    std::fs::write(dir.join("config.yaml"), text).unwrap();
    dir
}

/// `interpose ARGS --options`, which must succeed; its listing.
fn options(builder: ProxyBuilder) -> String {
    let run = builder.args(["--options"]).run();
    assert!(
        run.status.success(),
        "--options failed: {}\n{}",
        run.stderr,
        run.stdout
    );
    assert_eq!(run.stderr, "");
    run.stdout
}

/// The `value:` of `name` in an `--options` listing (with its origin, if not the default).
fn value_of(listing: &str, name: &str) -> String {
    let mut lines = listing.lines().skip_while(|line| *line != name);
    assert!(lines.next().is_some(), "{name} not listed:\n{listing}");
    lines
        .take_while(|line| line.starts_with(' '))
        .find_map(|line| line.trim().strip_prefix("value:"))
        .unwrap_or_else(|| panic!("{name} has no value line:\n{listing}"))
        .trim()
        .to_string()
}

/// A run that must fail without starting; its stderr.
fn failure(run: Finished) -> String {
    assert!(
        !run.status.success(),
        "expected a failure; stdout:\n{}",
        run.stdout
    );
    assert!(!run.stdout.contains("listening at"), "{}", run.stdout);
    run.stderr
}

#[test]
fn options_lists_every_option_with_its_default() {
    let listing = options(Proxy::builder());
    let names: Vec<&str> = listing
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with(' '))
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by name");
    for name in [
        "addon_errors",
        "allow_hosts",
        "body_size_limit",
        "certs",
        "confdir",
        "connect_timeout",
        "ignore_hosts",
        "listen_host",
        "listen_port",
        "mode",
        "plugins",
        "plugins_dir",
        "response_timeout",
        "shutdown_grace",
        "ssl_insecure",
        "stream_large_bodies",
        "termlog_verbosity",
        "threads",
        "upstream_idle_max",
        "upstream_idle_timeout",
    ] {
        assert!(names.contains(&name), "{name} missing:\n{listing}");
    }
    assert!(
        listing.contains(
            "listen_port\n    type:    integer 0 to 65535\n    default: 8080\n    value:   8080\n"
        ),
        "{listing}"
    );
    assert_eq!(value_of(&listing, "listen_host"), "127.0.0.1");
    assert_eq!(value_of(&listing, "confdir"), "~/.interpose");
    assert_eq!(value_of(&listing, "connect_timeout"), "10");
    assert_eq!(value_of(&listing, "body_size_limit"), "none");
    assert_eq!(value_of(&listing, "addon_errors"), "continue");
    assert_eq!(value_of(&listing, "termlog_verbosity"), "info");
}

#[test]
fn config_yaml_in_the_home_confdir_is_read() {
    let home = temp_dir("home-with-config");
    let confdir = home.join(".interpose");
    std::fs::create_dir_all(&confdir).unwrap();
    std::fs::write(
        confdir.join("config.yaml"),
        "# as mitmproxy writes it\nlisten_host: 0.0.0.0\nupstream_idle_max: 7\n\
         body_size_limit: 3m\nmode: [regular]\n",
    )
    .unwrap();
    let listing = options(Proxy::builder().home(&home));
    let file = confdir.join("config.yaml");
    assert_eq!(
        value_of(&listing, "upstream_idle_max"),
        format!("7  (from {} line 3)", file.display())
    );
    assert!(value_of(&listing, "listen_host").starts_with("0.0.0.0  (from "));
    assert!(value_of(&listing, "body_size_limit").starts_with("3m  (from "));
    assert!(value_of(&listing, "mode").starts_with("regular  (from "));
}

#[test]
fn config_yaml_options_reach_the_proxy() {
    let upstream = Upstream::start();
    let confdir = confdir_with(&format!(
        "mode:\n  - reverse:http://{}\nupstream_idle_max: 0\n",
        upstream.addr
    ));
    let proxy = Proxy::builder().confdir(&confdir).start();
    for path in ["/one", "/two"] {
        let reply = send(proxy.addr, "GET", path, b"").unwrap();
        assert_eq!(reply.text(), format!("upstream saw GET {path}"));
    }
    let connections: HashSet<_> = upstream.seen().iter().map(|s| s.peer).collect();
    assert_eq!(
        connections.len(),
        2,
        "upstream_idle_max 0 keeps no idle connection"
    );
}

#[test]
fn set_beats_config_yaml_and_flags_beat_set() {
    let confdir = confdir_with("threads: 2\nlisten_host: 127.0.0.2\nshutdown_grace: 1.5\n");
    let listing = options(Proxy::builder().confdir(&confdir).args([
        "--set",
        "threads=3",
        "--set",
        "listen_host=127.0.0.3",
        "--listen-host",
        "127.0.0.4",
    ]));
    assert_eq!(value_of(&listing, "threads"), "3  (from --set)");
    assert_eq!(
        value_of(&listing, "listen_host"),
        "127.0.0.4  (from --listen-host)"
    );
    assert_eq!(
        value_of(&listing, "shutdown_grace"),
        format!(
            "1.5  (from {} line 3)",
            confdir.join("config.yaml").display()
        )
    );

    // And in a running proxy: the file's mode points at a closed port, `--set` at the
    // upstream.
    let upstream = Upstream::start();
    let closed = closed_port();
    let confdir = confdir_with(&format!("mode: reverse:http://{closed}\n"));
    let proxy = Proxy::builder()
        .confdir(&confdir)
        .args([
            "--set".to_string(),
            format!("mode=reverse:http://{}", upstream.addr),
        ])
        .start();
    let reply = send(proxy.addr, "GET", "/set-wins", b"").unwrap();
    assert_eq!(reply.text(), "upstream saw GET /set-wins");
}

#[test]
fn confdir_comes_from_set_too() {
    let confdir = confdir_with("upstream_idle_timeout: 2\n");
    let listing = options(Proxy::builder().args([format!("--set=confdir={}", confdir.display())]));
    assert!(value_of(&listing, "upstream_idle_timeout").starts_with("2  (from "));
    assert_eq!(
        value_of(&listing, "confdir"),
        format!("{}  (from --set)", confdir.display())
    );
}

#[test]
fn list_options_accumulate() {
    let confdir = confdir_with("plugins: [/from/config.so]\nignore_hosts: [from-config]\n");
    let listing = options(Proxy::builder().confdir(&confdir).args([
        "--set",
        "ignore_hosts=one",
        "--set",
        "ignore_hosts=two",
        "--plugin",
        "/from/flag.so",
    ]));
    assert_eq!(
        value_of(&listing, "ignore_hosts"),
        "[one, two]  (from --set)"
    );
    assert_eq!(
        value_of(&listing, "plugins"),
        "[/from/config.so, /from/flag.so]  (from --plugin)"
    );
}

#[test]
fn quiet_and_verbose_set_the_log_verbosity() {
    let quiet = options(Proxy::builder().args(["-q"]));
    assert_eq!(
        value_of(&quiet, "termlog_verbosity"),
        "error  (from -q/--quiet)"
    );
    let verbose = options(Proxy::builder().args(["--set", "termlog_verbosity=warn", "-v"]));
    assert_eq!(
        value_of(&verbose, "termlog_verbosity"),
        "debug  (from -v/--verbose)"
    );
}

#[test]
fn unknown_option_names_get_a_suggestion() {
    let stderr = failure(Proxy::builder().args(["--set", "listen_prot=8081"]).run());
    assert_eq!(
        stderr.trim(),
        r#"interpose: --set: unknown option "listen_prot" (did you mean listen_port?)"#
    );
    let stderr = failure(Proxy::builder().args(["--set", "nonsense=1"]).run());
    assert!(
        stderr.contains("`interpose --options` lists every option"),
        "{stderr}"
    );
}

#[test]
fn wrong_values_say_what_was_expected() {
    let stderr = failure(Proxy::builder().args(["--set", "listen_port=abc"]).run());
    assert_eq!(
        stderr.trim(),
        r#"interpose: --set: listen_port: expected an integer from 0 to 65535, got "abc""#
    );
    let stderr = failure(Proxy::builder().args(["-p", "http"]).run());
    assert!(
        stderr.contains(r#"-p/--listen-port: listen_port: expected an integer from 0 to 65535"#),
        "{stderr}"
    );
    let stderr = failure(
        Proxy::builder()
            .args(["--set", "body_size_limit=1.5m"])
            .run(),
    );
    assert!(
        stderr.contains(r#"body_size_limit: expected a size such as 512k or 1m, got "1.5m""#),
        "{stderr}"
    );
    let confdir = confdir_with("listen_port: 8081\nconnect_timeout: soon\n");
    let stderr = failure(Proxy::builder().confdir(&confdir).run());
    assert_eq!(
        stderr.trim(),
        format!(
            "interpose: {} line 2: connect_timeout: expected a number of seconds such as 10 or \
             0.5, got \"soon\"",
            confdir.join("config.yaml").display()
        )
    );
}

#[test]
fn a_malformed_config_yaml_names_the_file_and_line() {
    let confdir = confdir_with("listen_port: 8081\nignore_hosts: [one, two\nthreads: 2\n");
    let stderr = failure(Proxy::builder().confdir(&confdir).run());
    let file = confdir.join("config.yaml");
    assert!(
        stderr.starts_with(&format!("interpose: {} line ", file.display())),
        "{stderr}"
    );
    assert!(stderr.contains("invalid YAML"), "{stderr}");
}

#[test]
fn unknown_config_yaml_keys_are_reported_once_plugins_have_loaded() {
    let confdir = confdir_with("listen_port: 0\nlisten_prot: 8081\n");
    let file = confdir.join("config.yaml");
    // `--options` lists the key as waiting for plugins.
    let listing = options(Proxy::builder().confdir(&confdir));
    assert!(
        listing.contains(&format!(
            "{} line 2: listen_prot is not a core option",
            file.display()
        )),
        "{listing}"
    );

    let run = Proxy::builder()
        .confdir(&confdir)
        .plugin(&plugin("anatomy"))
        .run();
    assert!(
        run.stdout.contains("Loaded plugin anatomy"),
        "plugins load first:\n{}",
        run.stdout
    );
    let stderr = failure(run);
    assert_eq!(
        stderr.trim(),
        format!(
            "interpose: {} line 2: unknown option \"listen_prot\" (did you mean listen_port?)",
            file.display()
        )
    );
}

#[test]
fn confdir_in_config_yaml_is_refused() {
    let confdir = confdir_with("confdir: /elsewhere\n");
    let stderr = failure(Proxy::builder().confdir(&confdir).run());
    assert!(
        stderr.contains("line 1: confdir: cannot be set"),
        "{stderr}"
    );
}

#[test]
fn options_lists_the_options_plugins_declare_with_their_values() {
    let run = Proxy::builder()
        .plugin(&crate::harness::plugin("options-configure"))
        .args(["--set", "addheader=42", "--options"])
        .run();
    assert!(run.status.success(), "{}{}", run.stdout, run.stderr);
    let at = run.stdout.find("addheader\n").expect("addheader listed");
    let entry = &run.stdout[at..];
    assert!(
        entry.starts_with(
            "addheader\n    type:    optional integer\n    default: none\n    value:   42  (from --set)\n"
        ) || entry.contains("value:   42  (from --set)"),
        "{entry}"
    );
    assert!(run.stdout.contains("Add a header to responses"));
}

#[test]
fn built_in_addons_check_their_own_options_at_startup() {
    let run = Proxy::builder().args(["--flow-detail", "9"]).run();
    assert!(!run.status.success());
    assert!(
        run.stderr
            .contains("option error: flow_detail: expected an integer from 0 to 4"),
        "{}",
        run.stderr
    );
    let run = Proxy::builder().set("save_stream_filter", "~zz").run();
    assert!(!run.status.success());
    assert!(
        run.stderr.contains("save_stream_filter: ") && run.stderr.contains("~zz"),
        "{}",
        run.stderr
    );
    // Their options are listed like the proxy's.
    let listing = options(Proxy::builder().args(["--flow-detail", "3"]));
    assert!(listing.contains("flow_detail\n"), "{listing}");
    assert!(
        listing.contains("value:   3  (from --flow-detail)"),
        "{listing}"
    );
}
