//! The command line, with mitmdump's flag names where they exist. Every flag is an assignment
//! to an option; the options store parses and checks the values.

use clap::{Args, Parser, Subcommand};

use crate::options::{Assignment, CommandLine, Origin, RawValue};

/// Interpose: an intercepting HTTP proxy whose addons are compiled Rust plugins.
#[derive(Debug, Parser)]
#[command(name = "interpose", version, about, long_about = None)]
// No `help` subcommand: `interpose help` stays a filter expression, as before `ctl`.
#[command(args_conflicts_with_subcommands = true, disable_help_subcommand = true)]
pub struct Cli {
    /// A subcommand instead of running the proxy.
    #[command(subcommand)]
    pub action: Option<Action>,

    /// Print every option (type, default, current value, help) and exit.
    #[arg(long = "options")]
    pub options: bool,

    /// Set an option: NAME=VALUE (repeatable; repeating a list option adds items).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,

    /// Proxy mode: `regular` (explicit HTTP proxy) or `reverse:http://HOST[:PORT]` [default:
    /// regular].
    #[arg(short = 'm', long = "mode", value_name = "MODE")]
    pub mode: Option<String>,

    /// Address to bind the proxy to [default: 127.0.0.1].
    #[arg(long = "listen-host", value_name = "HOST")]
    pub listen_host: Option<String>,

    /// Port to bind the proxy to; 0 picks a free port [default: 8080].
    #[arg(short = 'p', long = "listen-port", value_name = "PORT")]
    pub listen_port: Option<String>,

    /// Load the plugin library at PATH, after the plugins folder (repeatable, in order).
    #[arg(long = "plugin", value_name = "PATH")]
    pub plugins: Vec<String>,

    /// Folder whose plugin libraries (.so, .dylib, .dll) load at startup, in file-name order
    /// [default: CONFDIR/plugins].
    #[arg(long = "plugins-dir", value_name = "DIR")]
    pub plugins_dir: Option<String>,

    /// Worker threads serving connections [default: one per CPU core].
    #[arg(long = "threads", value_name = "N")]
    pub threads: Option<String>,

    /// Tunnel CONNECT targets matching this regex on host:port without intercepting them
    /// (repeatable).
    #[arg(long = "ignore-hosts", value_name = "REGEX")]
    pub ignore_hosts: Vec<String>,

    /// Intercept only CONNECT targets matching this regex on host:port (repeatable).
    #[arg(long = "allow-hosts", value_name = "REGEX")]
    pub allow_hosts: Vec<String>,

    /// Present this certificate to clients, as [DOMAIN=]PATH: a PEM file with the private key
    /// and the chain; DOMAIN may be a wildcard (*.example.com) and is * when left out
    /// (repeatable).
    #[arg(long = "certs", value_name = "SPEC")]
    pub certs: Vec<String>,

    /// Do not verify upstream servers' TLS certificates.
    #[arg(short = 'k', long = "ssl-insecure")]
    pub ssl_insecure: bool,

    /// Configuration folder, where config.yaml is read [default: ~/.interpose].
    #[arg(long = "confdir", value_name = "DIR")]
    pub confdir: Option<String>,

    /// Quiet: print errors only, and no flows (flow_detail 0).
    #[arg(short = 'q', long = "quiet", conflicts_with = "verbose")]
    pub quiet: bool,

    /// Verbose: also print debug lines (connections, server errors), and flows with their
    /// headers (flow_detail 2).
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,

    /// How much of each flow to print: 0 nothing, 1 one line each way, 2 + headers, 3 +
    /// bodies cut short, 4 + whole bodies [default: 1].
    #[arg(long = "flow-detail", value_name = "LEVEL")]
    pub flow_detail: Option<String>,

    /// Show URLs with the Host header's name instead of the address connected to.
    #[arg(long = "showhost")]
    pub showhost: bool,

    /// Keep the cookies servers set and add them to later requests matching FILTER
    /// (stickycookie).
    #[arg(long = "stickycookie", value_name = "FILTER")]
    pub stickycookie: Option<String>,

    /// Keep the Authorization clients send and add it to later requests to the same host
    /// matching FILTER (stickyauth).
    #[arg(long = "stickyauth", value_name = "FILTER")]
    pub stickyauth: Option<String>,

    /// Credentials for the next proxy (upstream mode) or the server (reverse mode),
    /// "username:password" (upstream_auth).
    #[arg(long = "upstream-auth", value_name = "USER:PASS")]
    pub upstream_auth: Option<String>,

    /// Require proxy authentication: "username:pass", or "any" (proxyauth).
    #[arg(long = "proxyauth", value_name = "SPEC")]
    pub proxyauth: Option<String>,

    /// Header modify pattern "[/flow-filter]/header-name/[@]header-value" (repeatable;
    /// modify_headers).
    #[arg(short = 'H', long = "modify-headers", value_name = "PATTERN")]
    pub modify_headers: Vec<String>,

    /// Body replacement pattern "[/flow-filter]/regex/[@]replacement" (repeatable;
    /// modify_body).
    #[arg(short = 'B', long = "modify-body", value_name = "PATTERN")]
    pub modify_body: Vec<String>,

    /// Local file mapping pattern "[/flow-filter]/url-regex/file-or-directory-path"
    /// (repeatable; map_local).
    #[arg(long = "map-local", value_name = "PATTERN")]
    pub map_local: Vec<String>,

    /// URL mapping pattern "[/flow-filter]/url-regex/replacement" (repeatable; map_remote).
    #[arg(short = 'M', long = "map-remote", value_name = "PATTERN")]
    pub map_remote: Vec<String>,

    /// Strip the request headers that let servers answer 304 Not Modified (anticache).
    #[arg(long = "anticache")]
    pub anticache: bool,

    /// Ask servers for uncompressed responses (anticomp).
    #[arg(long = "anticomp")]
    pub anticomp: bool,

    /// Save every finished flow to PATH in mitmproxy's flow format (+PATH appends).
    #[arg(short = 'w', long = "save-stream-file", value_name = "PATH")]
    pub save_stream_file: Option<String>,

    /// Read flows from PATH (a mitmproxy flow file) and pass them through the addons.
    #[arg(short = 'r', long = "rfile", value_name = "PATH")]
    pub rfile: Option<String>,

    /// Replay the requests of the flows in PATH to their servers (repeatable); the proxy
    /// exits when they are done, unless --keepserving.
    #[arg(short = 'C', long = "client-replay", value_name = "PATH")]
    pub client_replay: Vec<String>,

    /// Answer requests with the saved responses of the flows in PATH (repeatable); the proxy
    /// exits when they are used up, unless --keepserving.
    #[arg(short = 'S', long = "server-replay", value_name = "PATH")]
    pub server_replay: Vec<String>,

    /// Keep serving after client replay (-C), server replay (-S) or reading flows (-r) is
    /// done.
    #[arg(long = "keepserving")]
    pub keepserving: bool,

    /// Start no proxy server (with -r: read the file, then exit).
    #[arg(short = 'n', long = "no-server")]
    pub no_server: bool,

    /// A filter expression (mitmproxy's filter language): only matching flows are shown,
    /// saved (-w, hardump) and read (-r). Several words are joined with spaces.
    #[arg(value_name = "FILTER", trailing_var_arg = true)]
    pub filter: Vec<String>,
}

/// What `interpose` does instead of running the proxy.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Call a command on a running proxy through its control endpoint (`--set control=...`),
    /// e.g. `interpose ctl set anticache=true`, `interpose ctl commands`.
    Ctl(CtlArgs),
}

/// `interpose ctl [--control ENDPOINT] [--confdir DIR] COMMAND [ARGS...]`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The proxy's control endpoint: a Unix socket path or HOST:PORT [default: the control
    /// option in CONFDIR/config.yaml].
    #[arg(long = "control", value_name = "ENDPOINT")]
    pub control: Option<String>,

    /// The proxy's configuration folder: its config.yaml, and the token of a TCP endpoint
    /// [default: ~/.interpose].
    #[arg(long = "confdir", value_name = "DIR")]
    pub confdir: Option<String>,

    /// The command (`interpose ctl commands` lists them).
    #[arg(value_name = "COMMAND")]
    pub command: String,

    /// The command's arguments, as text.
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,
}

impl Cli {
    /// The option assignments this command line makes: `--set` arguments, then the
    /// dedicated flags (which win).
    pub fn command_line(&self) -> CommandLine {
        let mut flags = Vec::new();
        let mut one = |name: &str, flag: &'static str, value: &Option<String>| {
            if let Some(value) = value {
                flags.push(Assignment::new(
                    name,
                    RawValue::Text(value.clone()),
                    Origin::Flag(flag),
                ));
            }
        };
        one("mode", "-m/--mode", &self.mode);
        one("listen_host", "--listen-host", &self.listen_host);
        one("listen_port", "-p/--listen-port", &self.listen_port);
        one("plugins_dir", "--plugins-dir", &self.plugins_dir);
        one("threads", "--threads", &self.threads);
        one("confdir", "--confdir", &self.confdir);
        one("flow_detail", "--flow-detail", &self.flow_detail);
        one(
            "save_stream_file",
            "-w/--save-stream-file",
            &self.save_stream_file,
        );
        one("rfile", "-r/--rfile", &self.rfile);
        one("proxyauth", "--proxyauth", &self.proxyauth);
        one("upstream_auth", "--upstream-auth", &self.upstream_auth);
        one("stickycookie", "--stickycookie", &self.stickycookie);
        one("stickyauth", "--stickyauth", &self.stickyauth);
        if !self.filter.is_empty() {
            let expression = Some(self.filter.join(" "));
            one("dumper_filter", "filter expression", &expression);
            one("save_stream_filter", "filter expression", &expression);
            one("readfile_filter", "filter expression", &expression);
        }
        let mut many = |name: &str, flag: &'static str, values: &[String], append: bool| {
            for value in values {
                let assignment =
                    Assignment::new(name, RawValue::Text(value.clone()), Origin::Flag(flag));
                flags.push(if append {
                    assignment.appending()
                } else {
                    assignment
                });
            }
        };
        many("plugins", "--plugin", &self.plugins, true);
        many("ignore_hosts", "--ignore-hosts", &self.ignore_hosts, false);
        many("allow_hosts", "--allow-hosts", &self.allow_hosts, false);
        many("certs", "--certs", &self.certs, false);
        many(
            "client_replay",
            "-C/--client-replay",
            &self.client_replay,
            false,
        );
        many(
            "modify_headers",
            "-H/--modify-headers",
            &self.modify_headers,
            false,
        );
        many("modify_body", "-B/--modify-body", &self.modify_body, false);
        many("map_remote", "-M/--map-remote", &self.map_remote, false);
        many("map_local", "--map-local", &self.map_local, false);
        many(
            "server_replay",
            "-S/--server-replay",
            &self.server_replay,
            false,
        );
        let mut switch = |on: bool, name: &str, flag: &'static str, value: &str| {
            if on {
                flags.push(Assignment::new(
                    name,
                    RawValue::Text(value.to_string()),
                    Origin::Flag(flag),
                ));
            }
        };
        switch(
            self.ssl_insecure,
            "ssl_insecure",
            "-k/--ssl-insecure",
            "true",
        );
        switch(self.keepserving, "keepserving", "--keepserving", "true");
        switch(self.quiet, "termlog_verbosity", "-q/--quiet", "error");
        switch(self.verbose, "termlog_verbosity", "-v/--verbose", "debug");
        // As mitmdump: -q also hides flows, -v shows their headers (an explicit
        // --flow-detail, assigned earlier, is overridden as in mitmdump).
        switch(self.quiet, "flow_detail", "-q/--quiet", "0");
        switch(self.verbose, "flow_detail", "-v/--verbose", "2");
        switch(self.showhost, "showhost", "--showhost", "true");
        switch(self.anticache, "anticache", "--anticache", "true");
        switch(self.anticomp, "anticomp", "--anticomp", "true");
        switch(self.no_server, "server", "-n/--no-server", "false");
        CommandLine {
            set: self
                .set
                .iter()
                .map(|a| Assignment::from_set_argument(a))
                .collect(),
            flags,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use interpose_plugin_abi::Level;

    use super::*;
    use crate::{
        options::{CoreOptions, OptionStore},
        proxy::Mode,
    };

    /// The snapshot a command line gives, with no config file (confdir points nowhere).
    fn core(args: &[&str]) -> CoreOptions {
        let mut argv = vec!["interpose", "--confdir", "/nonexistent/interpose-cli-test"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).unwrap();
        OptionStore::build(&cli.command_line())
            .unwrap()
            .core_options()
            .unwrap()
    }

    #[test]
    fn mitmdump_style_flags() {
        let options = core(&[
            "--mode",
            "reverse:http://127.0.0.1:9000",
            "-p",
            "8081",
            "-q",
            "--plugin",
            "a.so",
            "--plugin",
            "b.so",
            "--threads",
            "2",
            "--ignore-hosts",
            "one",
            "--ignore-hosts",
            "two",
            "-k",
            "--certs",
            concat!("a.example=", env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
            "--certs",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        ]);
        assert_eq!(options.listen_port, 8081);
        assert_eq!(options.listen_host, "127.0.0.1");
        assert_eq!(options.termlog_verbosity, Level::Error);
        assert_eq!(
            options.plugins,
            [PathBuf::from("a.so"), PathBuf::from("b.so")]
        );
        assert_eq!(options.mode.spec(), "reverse:http://127.0.0.1:9000");
        assert_eq!(options.threads, Some(2));
        assert!(options.is_ignored("one", 443) && options.is_ignored("two", 443));
        assert!(options.ssl_insecure);
        let domains: Vec<_> = options.certs.iter().map(|c| c.domain.as_deref()).collect();
        assert_eq!(domains, [Some("a.example"), None]);
        assert_eq!(core(&["-v"]).termlog_verbosity, Level::Debug);
    }

    #[test]
    fn defaults_and_errors() {
        let options = core(&[]);
        assert_eq!(
            (options.listen_host.as_str(), options.listen_port),
            ("127.0.0.1", 8080)
        );
        assert_eq!(options.mode, Mode::Regular);
        assert_eq!(options.termlog_verbosity, Level::Info);
        assert_eq!(options.threads, None);
        assert_eq!(
            options.plugins_dir,
            Some(PathBuf::from("/nonexistent/interpose-cli-test/plugins"))
        );
        assert!(Cli::try_parse_from(["interpose", "-q", "-v"]).is_err());

        let error = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            OptionStore::build(&cli.command_line())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error(&["interpose", "--threads", "0"]),
            r#"--threads: threads: expected an integer from 1 to 65535, got "0""#
        );
        assert!(error(&["interpose", "--mode", "transparent"]).contains("not supported yet"));
        assert_eq!(
            error(&["interpose", "-p", "http"]),
            r#"-p/--listen-port: listen_port: expected an integer from 0 to 65535, got "http""#
        );
    }

    #[test]
    fn ctl_is_a_subcommand_and_the_proxy_command_line_is_unchanged() {
        let cli = Cli::try_parse_from([
            "interpose",
            "ctl",
            "--control",
            "/tmp/s",
            "set",
            "listen_port=-1",
            "--x",
        ])
        .unwrap();
        let Some(Action::Ctl(ctl)) = cli.action else {
            panic!("no ctl")
        };
        assert_eq!(ctl.control.as_deref(), Some("/tmp/s"));
        assert_eq!(ctl.command, "set");
        assert_eq!(ctl.args, ["listen_port=-1", "--x"]);
        let cli = Cli::try_parse_from(["interpose", "-q", "~d", "example.com"]).unwrap();
        assert!(cli.action.is_none() && cli.quiet);
        assert_eq!(cli.filter, ["~d", "example.com"]);
        let cli = Cli::try_parse_from(["interpose", "help"]).unwrap();
        assert_eq!(cli.filter, ["help"]);
        let cli = Cli::try_parse_from(["interpose", "~u", "ctl"]).unwrap();
        assert_eq!(cli.filter, ["~u", "ctl"]);
        assert!(Cli::try_parse_from(["interpose", "ctl"]).is_err());
        // After a proxy flag, words are the filter expression, as before.
        let cli = Cli::try_parse_from(["interpose", "-p", "1", "ctl", "commands"]).unwrap();
        assert!(cli.action.is_none());
        assert_eq!(cli.filter, ["ctl", "commands"]);
    }

    #[test]
    fn flags_beat_set() {
        let options = core(&[
            "--set",
            "listen_host=10.0.0.1",
            "--listen-host",
            "10.0.0.2",
            "--set",
            "termlog_verbosity=debug",
            "-q",
            "--set",
            "ignore_hosts=from-set",
            "--set",
            "plugins=from-set.so",
            "--plugin",
            "flag.so",
        ]);
        assert_eq!(options.listen_host, "10.0.0.2");
        assert_eq!(options.termlog_verbosity, Level::Error);
        assert!(options.is_ignored("from-set", 1));
        assert_eq!(
            options.plugins,
            [PathBuf::from("from-set.so"), PathBuf::from("flag.so")]
        );
    }
}
