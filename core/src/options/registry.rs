//! The core's options, under mitmproxy's names where mitmproxy has the option, and the typed
//! [`CoreOptions`] snapshot built from them.

use std::{path::PathBuf, time::Duration};

use interpose_plugin_abi::Level;

use super::{
    core::{AddonErrors, CoreOptions, HostPatterns, UpstreamPool},
    error::{OptionError, Origin},
    spec::{OptionSpec, OptionType, Value},
    store::OptionStore,
};
use crate::{proxy::Mode, tls::CertSpec};

/// `termlog_verbosity` choices, least verbose first.
const VERBOSITIES: [&str; 4] = ["error", "warn", "info", "debug"];

/// Every option of the core, in no particular order (the store sorts them).
pub fn core_specs() -> Vec<OptionSpec> {
    use OptionType::{Bool, Duration as Seconds, Int, List, Size, Str};
    let text = |s: &str| Value::Str(s.to_string());
    let seconds = |s: u64| Value::Duration(Duration::from_secs(s));
    vec![
        OptionSpec::new(
            "listen_host",
            Str,
            text("127.0.0.1"),
            "Address to bind the proxy to. Loopback by default: use 0.0.0.0 or :: to accept \
             other machines.",
        )
        .with_validator(non_empty_host),
        OptionSpec::new(
            "listen_port",
            Int { min: 0, max: 65535 },
            Value::Int(8080),
            "Port to bind the proxy to; 0 picks a free one.",
        ),
        OptionSpec::new(
            "mode",
            Str,
            text("regular"),
            "Proxy mode: regular (an explicit HTTP proxy) or reverse:http://HOST[:PORT] (a \
             reverse proxy in front of one server). config.yaml may give it as a one-item list, \
             as mitmproxy does.",
        )
        .with_validator(runnable_mode),
        OptionSpec::new(
            "confdir",
            Str,
            text("~/.interpose"),
            "Folder of config.yaml and the default plugins folder. Set it on the command line \
             (--confdir or --set confdir=DIR): it says where config.yaml is.",
        ),
        OptionSpec::optional(
            "stream_large_bodies",
            Size,
            "Bodies larger than this are streamed to the other side instead of buffered; \
             addons do not see their content. A size: bytes, or a number with a b, k, m, g or \
             t suffix (powers of 1024), e.g. 3m.",
        ),
        OptionSpec::optional(
            "body_size_limit",
            Size,
            "Bodies larger than this fail their flow (413 for a request, 502 for a response). \
             A size: bytes, or a number with a b, k, m, g or t suffix, e.g. 3m.",
        ),
        OptionSpec::new(
            "ignore_hosts",
            List,
            Value::List(Vec::new()),
            "Regular expressions matched against host:port of CONNECT targets: matching \
             connections are tunnelled without interception.",
        )
        .with_validator(host_patterns),
        OptionSpec::new(
            "allow_hosts",
            List,
            Value::List(Vec::new()),
            "The opposite of ignore_hosts: when set, only CONNECT targets matching one of \
             these regular expressions are intercepted.",
        )
        .with_validator(host_patterns),
        OptionSpec::new(
            "certs",
            List,
            Value::List(Vec::new()),
            "Certificates to present to clients instead of generated ones, as [domain=]PATH: \
             a PEM file holding the private key and the chain, leaf first. A certificate is \
             used for its own names and for domain, which may be a wildcard (*.example.com) \
             and is * (every host) when left out.",
        )
        .with_validator(cert_specs),
        OptionSpec::new(
            "ssl_insecure",
            Bool,
            Value::Bool(false),
            "Do not verify the TLS certificates of upstream servers.",
        ),
        OptionSpec::new(
            "websocket",
            Bool,
            Value::Bool(true),
            "Relay WebSocket connections message by message, with the websocket_* events; \
             off, an upgraded connection is passed through byte for byte.",
        ),
        OptionSpec::new(
            "http2",
            Bool,
            Value::Bool(true),
            "Offer HTTP/2 (ALPN h2) to clients inside intercepted TLS and to servers; a server \
             that chooses it gets the flows over one multiplexed connection.",
        ),
        OptionSpec::optional(
            "plugins_dir",
            Str,
            "Folder whose plugin libraries (.so, .dylib, .dll) load at startup, in file-name \
             order; none means CONFDIR/plugins.",
        ),
        OptionSpec::new(
            "plugins",
            List,
            Value::List(Vec::new()),
            "Plugin libraries to load after the plugins folder's, in order; --plugin adds to \
             this list.",
        ),
        OptionSpec::optional(
            "threads",
            Int { min: 1, max: 65535 },
            "Worker threads serving connections; none for one per CPU core.",
        ),
        OptionSpec::new(
            "addon_errors",
            Str,
            text("continue"),
            "What a panicking addon does to its flow: continue (log the panic and go on with \
             the next addon, as mitmproxy does) or fail (end the flow with an error).",
        )
        .with_choices(&["continue", "fail"]),
        OptionSpec::new(
            "connect_timeout",
            Seconds,
            seconds(10),
            "Seconds a connection to a server may take to open.",
        )
        .with_validator(positive),
        OptionSpec::new(
            "response_timeout",
            Seconds,
            seconds(120),
            "Seconds a server may take to start its response; then 504.",
        )
        .with_validator(positive),
        OptionSpec::new(
            "upstream_idle_max",
            Int {
                min: 0,
                max: u64::from(u32::MAX),
            },
            Value::Int(256),
            "Idle connections kept open per server for reuse by later requests.",
        ),
        OptionSpec::new(
            "upstream_idle_timeout",
            Seconds,
            seconds(60),
            "Seconds an idle server connection is kept for reuse.",
        ),
        OptionSpec::new(
            "upstream_pool",
            Str,
            text("auto"),
            "Who may reuse an idle server connection: client (only the client connection that \
             opened it, as mitmproxy), shared (any client, as nginx), or auto (client in regular \
             mode, shared in reverse mode, where the server is the operator's own).",
        )
        .with_choices(&["auto", "client", "shared"]),
        OptionSpec::new(
            "body_buffer_budget",
            Size,
            Value::Int(default_body_buffer_budget()),
            "Memory for buffered bodies over 64k across all flows; a body that would go over it \
             is streamed instead of buffered. The default is a quarter of the machine's memory. \
             A size, e.g. 512m.",
        ),
        OptionSpec::new(
            "header_read_timeout",
            Seconds,
            seconds(30),
            "Seconds a client may take to send a request head once it started; then 408.",
        )
        .with_validator(positive),
        OptionSpec::new(
            "client_idle_timeout",
            Seconds,
            seconds(60),
            "Seconds an idle keep-alive client connection stays open between requests.",
        )
        .with_validator(positive),
        OptionSpec::new(
            "body_read_timeout",
            Seconds,
            seconds(60),
            "Seconds a request or response body may go without a byte arriving; then the flow \
             fails (408 for a client, 504 or a closed connection for a server).",
        )
        .with_validator(positive),
        OptionSpec::optional(
            "max_connections",
            Int {
                min: 1,
                max: u64::from(u32::MAX),
            },
            "Most client connections served at once; accepting pauses at the limit. None: half \
             the file descriptors the process may open.",
        ),
        OptionSpec::new(
            "shutdown_grace",
            Seconds,
            seconds(5),
            "Seconds requests in flight get to finish once the proxy is asked to stop.",
        ),
        OptionSpec::new(
            "termlog_verbosity",
            Str,
            text("info"),
            "Least severe log level printed (-q is error, -v is debug).",
        )
        .with_choices(&VERBOSITIES),
        // Reading flows (the built-in addons declare their own options: flow_detail,
        // dumper_filter, showhost, content_view_lines_cutoff, save_stream_file,
        // save_stream_filter, hardump, intercept), under mitmproxy's names.
        OptionSpec::optional(
            "rfile",
            Str,
            "Read flows from this file (a mitmproxy flow file) at startup and pass them \
             through the addons.",
        ),
        OptionSpec::optional(
            "readfile_filter",
            Str,
            "Only flows matching this filter expression are read from rfile.",
        )
        .with_validator(filter_expression),
        OptionSpec::optional(
            "control",
            Str,
            "Listen for commands while the proxy runs (interpose ctl): a path for a Unix \
             socket only you may use (mode 0600), or HOST:PORT on a loopback address, whose \
             clients must present the token written to CONFDIR/control-token. Unset (the \
             default): off. Read at startup.",
        )
        .with_validator(control_endpoint),
        OptionSpec::new(
            "keep_host_header",
            Bool,
            Value::Bool(false),
            "Reverse proxy: keep the client's Host header instead of rewriting it to the target.",
        ),
        OptionSpec::optional(
            "upstream_auth",
            Str,
            "Credentials for the next proxy (upstream mode, Proxy-Authorization on its CONNECTs \
             and requests) or the server (reverse mode, Authorization), as \"username:password\" \
             (HTTP Basic). They are added on the wire only: addons and captures do not see them.",
        )
        .with_validator(upstream_auth),
        OptionSpec::new(
            "client_replay",
            List,
            Value::List(Vec::new()),
            "Replay the requests of the flows in these files (mitmproxy flow files) to their \
             servers, through the addons, at startup; the proxy then exits unless keepserving.",
        ),
        OptionSpec::new(
            "client_replay_concurrency",
            Int { min: 0, max: 1024 },
            Value::Int(1),
            "How many replayed requests may be in flight at once (0: no limit).",
        ),
        OptionSpec::new(
            "keepserving",
            Bool,
            Value::Bool(false),
            "Keep serving after client replay and rfile are done (without it the proxy \
             exits then, as mitmdump does).",
        ),
        OptionSpec::new(
            "server",
            Bool,
            Value::Bool(true),
            "Start a proxy server (-n turns it off: read flows with -r, then exit).",
        ),
    ]
}

/// A filter expression in mitmproxy's filter language.
fn filter_expression(value: &Value) -> Result<(), String> {
    match value.as_str() {
        Some(expr) => crate::filter::Filter::parse(expr)
            .map(drop)
            .map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

/// A `control` value: a socket path or a port on a loopback address.
fn control_endpoint(value: &Value) -> Result<(), String> {
    match value.as_str() {
        Some(spec) => crate::control::Endpoint::parse(spec)
            .map(drop)
            .map_err(|e| {
                let message = e.to_string();
                // The store names the option already.
                match message.strip_prefix("control: ") {
                    Some(rest) => rest.to_string(),
                    None => message,
                }
            }),
        None => Ok(()),
    }
}

/// A quarter of the machine's memory (1 GiB where it cannot be read).
fn default_body_buffer_budget() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
    total.map_or(1 << 30, |bytes| bytes / 4)
}

fn non_empty_host(value: &Value) -> Result<(), String> {
    match value.as_str() {
        Some("") => Err("all interfaces is spelt 0.0.0.0 or :: here, not an empty value".into()),
        _ => Ok(()),
    }
}

fn runnable_mode(value: &Value) -> Result<(), String> {
    let spec = value.as_str().unwrap_or_default();
    spec.parse::<Mode>().map(drop).map_err(|e| e.to_string())
}

/// An `upstream_auth` value: `username:password`.
fn upstream_auth(value: &Value) -> Result<(), String> {
    match value.as_str() {
        Some(spec) if !spec.contains(':') => {
            Err("Invalid upstream auth specification: username:password".to_string())
        }
        _ => Ok(()),
    }
}

fn host_patterns(value: &Value) -> Result<(), String> {
    HostPatterns::new(value.as_list().unwrap_or_default()).map(drop)
}

fn cert_specs(value: &Value) -> Result<(), String> {
    for spec in value.as_list().unwrap_or_default() {
        let spec: CertSpec = spec.parse()?;
        if !spec.path.is_file() {
            return Err(format!(
                "certificate file {} does not exist",
                spec.path.display()
            ));
        }
    }
    Ok(())
}

fn positive(value: &Value) -> Result<(), String> {
    match value.as_duration() {
        Some(Duration::ZERO) => Err("must be more than 0 seconds".into()),
        _ => Ok(()),
    }
}

/// `~` and `~/...` with the home folder (the plugin ABI's, which command path arguments use
/// too).
pub use interpose_plugin_abi::commands::expand_home;

impl OptionStore {
    /// A store with every core option at its default.
    pub fn with_core_options() -> Self {
        let mut store = OptionStore::empty();
        for spec in core_specs() {
            if let Err(e) = store.declare(spec) {
                // The core's own table is checked by a unit test.
                unreachable!("{e}");
            }
        }
        store
    }

    /// `confdir`, with `~` expanded.
    pub fn confdir(&self) -> PathBuf {
        expand_home(self.text("confdir").unwrap_or("~/.interpose"))
    }

    /// The typed snapshot of the core options that the engine reads. Paths have `~`
    /// expanded; `plugins_dir` defaults to `CONFDIR/plugins`.
    pub fn core_options(&self) -> Result<CoreOptions, OptionError> {
        let invalid = |name: &str, problem: String| OptionError::Invalid {
            name: name.to_string(),
            origin: self.origin(name).cloned().unwrap_or(Origin::Default),
            problem,
        };
        let confdir = self.confdir();
        let plugins_dir = match self.text("plugins_dir") {
            Some(dir) => expand_home(dir),
            None => confdir.join("plugins"),
        };
        let mode = self.text("mode").unwrap_or("regular");
        Ok(CoreOptions {
            listen_host: self.text("listen_host").unwrap_or_default().to_string(),
            listen_port: self.int("listen_port").map_or(8080, |p| p as u16),
            mode: mode
                .parse()
                .map_err(|e: crate::proxy::ModeError| invalid("mode", e.to_string()))?,
            confdir,
            stream_large_bodies: self.int("stream_large_bodies"),
            body_size_limit: self.int("body_size_limit"),
            ignore_hosts: HostPatterns::new(self.list("ignore_hosts"))
                .map_err(|e| invalid("ignore_hosts", e))?,
            allow_hosts: HostPatterns::new(self.list("allow_hosts"))
                .map_err(|e| invalid("allow_hosts", e))?,
            certs: self
                .list("certs")
                .iter()
                .map(|spec| spec.parse())
                .collect::<Result<_, _>>()
                .map_err(|e| invalid("certs", e))?,
            ssl_insecure: self.get("ssl_insecure").and_then(Value::as_bool) == Some(true),
            http2: self.get("http2").and_then(Value::as_bool) != Some(false),
            websocket: self.get("websocket").and_then(Value::as_bool) != Some(false),
            client_replay_concurrency: self.int("client_replay_concurrency").unwrap_or(1) as usize,
            keep_host_header: self.get("keep_host_header").and_then(Value::as_bool) == Some(true),
            upstream_auth: self
                .get("upstream_auth")
                .and_then(Value::as_str)
                .map(|spec| {
                    let mut encoded = String::from("Basic ");
                    crate::capture::pem::base64_encode(spec.as_bytes(), &mut encoded);
                    encoded
                }),
            plugins_dir: Some(plugins_dir),
            plugins: self
                .list("plugins")
                .iter()
                .map(|p| expand_home(p))
                .collect(),
            threads: self.int("threads").map(|n| n as usize),
            addon_errors: match self.text("addon_errors") {
                Some("fail") => AddonErrors::Fail,
                _ => AddonErrors::Continue,
            },
            connect_timeout: self.duration("connect_timeout").unwrap_or_default(),
            response_timeout: self.duration("response_timeout"),
            upstream_idle_max: self.int("upstream_idle_max").unwrap_or_default() as usize,
            upstream_idle_timeout: self.duration("upstream_idle_timeout").unwrap_or_default(),
            shutdown_grace: self.duration("shutdown_grace").unwrap_or_default(),
            upstream_pool: match (self.text("upstream_pool"), mode.starts_with("reverse")) {
                (Some("client"), _) | (Some("auto") | None, false) => UpstreamPool::Client,
                _ => UpstreamPool::Shared,
            },
            body_buffer_budget: self.int("body_buffer_budget").unwrap_or(u64::MAX),
            header_read_timeout: self.duration("header_read_timeout").unwrap_or_default(),
            client_idle_timeout: self.duration("client_idle_timeout").unwrap_or_default(),
            body_read_timeout: self.duration("body_read_timeout").unwrap_or_default(),
            max_connections: self.int("max_connections").map(|n| n as usize),
            termlog_verbosity: match self.text("termlog_verbosity") {
                Some("error") => Level::Error,
                Some("warn") => Level::Warn,
                Some("debug") => Level::Debug,
                _ => Level::Info,
            },
        })
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    fn int(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(Value::as_int)
    }

    fn duration(&self, name: &str) -> Option<Duration> {
        self.get(name).and_then(Value::as_duration)
    }

    /// The items of list option `name` (empty when unset or not a list).
    pub fn list(&self, name: &str) -> &[String] {
        self.get(name).and_then(Value::as_list).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{spec::RawValue, store::Assignment};

    #[test]
    fn the_core_table_is_consistent() {
        let specs = core_specs();
        for spec in &specs {
            spec.check()
                .unwrap_or_else(|e| panic!("{}: {e}", spec.name));
            assert!(!spec.help.is_empty(), "{} has no help", spec.name);
        }
        let store = OptionStore::with_core_options();
        assert_eq!(store.names().count(), specs.len(), "names are unique");
    }

    #[test]
    fn defaults_give_the_default_snapshot() {
        let core = OptionStore::with_core_options().core_options().unwrap();
        let default = CoreOptions::default();
        assert_eq!(core.listen_host, default.listen_host);
        assert_eq!(core.listen_port, default.listen_port);
        assert_eq!(core.mode, default.mode);
        assert_eq!(core.confdir, expand_home("~/.interpose"));
        assert_eq!(core.plugins_dir, Some(core.confdir.join("plugins")));
        assert_eq!(core.stream_large_bodies, None);
        assert_eq!(core.body_size_limit, None);
        assert!(core.ignore_hosts.is_empty() && core.allow_hosts.is_empty());
        assert!(!core.ssl_insecure);
        assert!(core.certs.is_empty());
        assert!(core.plugins.is_empty());
        assert_eq!(core.threads, None);
        assert_eq!(core.addon_errors, AddonErrors::Continue);
        assert_eq!(core.connect_timeout, default.connect_timeout);
        assert_eq!(core.response_timeout, default.response_timeout);
        assert_eq!(core.upstream_idle_max, default.upstream_idle_max);
        assert_eq!(
            core.upstream_pool,
            UpstreamPool::Client,
            "auto in regular mode"
        );
        assert_eq!(core.header_read_timeout, default.header_read_timeout);
        assert_eq!(core.client_idle_timeout, default.client_idle_timeout);
        assert_eq!(core.body_read_timeout, default.body_read_timeout);
        assert_eq!(core.max_connections, None);
        assert!(
            core.body_buffer_budget >= 64 << 20,
            "a quarter of the machine's memory"
        );
        assert_eq!(core.upstream_idle_timeout, default.upstream_idle_timeout);
        assert_eq!(core.shutdown_grace, default.shutdown_grace);
        assert_eq!(core.termlog_verbosity, Level::Info);
    }

    #[test]
    fn every_core_option_reaches_the_snapshot() {
        let mut store = OptionStore::with_core_options();
        let sets: Vec<Assignment> = [
            "listen_host=0.0.0.0",
            "listen_port=9",
            "mode=reverse:http://127.0.0.1:9000",
            "confdir=/etc/interpose",
            "stream_large_bodies=1m",
            "body_size_limit=2k",
            "ignore_hosts=^example\\.com:443$",
            "allow_hosts=internal",
            "ssl_insecure",
            concat!(
                "certs=*.example.com=",
                env!("CARGO_MANIFEST_DIR"),
                "/Cargo.toml"
            ),
            "plugins=a.so",
            "plugins=~/b.so",
            "threads=2",
            "addon_errors=fail",
            "connect_timeout=2.5",
            "response_timeout=30",
            "upstream_idle_max=0",
            "upstream_idle_timeout=1",
            "shutdown_grace=0",
            "termlog_verbosity=debug",
            "upstream_pool=client",
            "body_buffer_budget=64m",
            "header_read_timeout=3",
            "client_idle_timeout=4",
            "body_read_timeout=5",
            "max_connections=100",
        ]
        .iter()
        .map(|a| Assignment::from_set_argument(a))
        .collect();
        store.apply(&sets).unwrap();
        let core = store.core_options().unwrap();
        assert_eq!(core.listen_host, "0.0.0.0");
        assert_eq!(core.listen_port, 9);
        assert_eq!(core.mode.spec(), "reverse:http://127.0.0.1:9000");
        assert_eq!(core.confdir, PathBuf::from("/etc/interpose"));
        assert_eq!(
            core.plugins_dir,
            Some(PathBuf::from("/etc/interpose/plugins"))
        );
        assert_eq!(core.stream_large_bodies, Some(1 << 20));
        assert_eq!(core.body_size_limit, Some(2048));
        assert!(core.is_ignored("example.com", 443));
        assert!(core.is_ignored("example.com", 80), "not in allow_hosts");
        assert!(!core.is_ignored("internal.example", 443));
        assert!(core.ssl_insecure);
        assert_eq!(
            core.certs,
            [crate::tls::CertSpec {
                domain: Some("*.example.com".into()),
                path: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")),
            }]
        );
        assert_eq!(core.plugins, [PathBuf::from("a.so"), expand_home("~/b.so")]);
        assert_eq!(core.threads, Some(2));
        assert_eq!(core.addon_errors, AddonErrors::Fail);
        assert_eq!(core.connect_timeout, Duration::from_millis(2500));
        assert_eq!(core.response_timeout, Some(Duration::from_secs(30)));
        assert_eq!(core.upstream_idle_max, 0);
        assert_eq!(core.upstream_idle_timeout, Duration::from_secs(1));
        assert_eq!(core.shutdown_grace, Duration::ZERO);
        assert_eq!(core.termlog_verbosity, Level::Debug);
        assert_eq!(
            core.upstream_pool,
            UpstreamPool::Client,
            "asked for, in reverse mode"
        );
        assert_eq!(core.body_buffer_budget, 64 << 20);
        assert_eq!(core.header_read_timeout, Duration::from_secs(3));
        assert_eq!(core.client_idle_timeout, Duration::from_secs(4));
        assert_eq!(core.body_read_timeout, Duration::from_secs(5));
        assert_eq!(core.max_connections, Some(100));
        store
            .apply(&[Assignment::from_set_argument("upstream_pool=auto")])
            .unwrap();
        assert_eq!(
            store.core_options().unwrap().upstream_pool,
            UpstreamPool::Shared,
            "auto is shared in reverse mode"
        );

        store
            .apply(&[Assignment::from_set_argument("plugins_dir=/p")])
            .unwrap();
        assert_eq!(
            store.core_options().unwrap().plugins_dir,
            Some(PathBuf::from("/p"))
        );
    }

    #[test]
    fn core_checks_refuse_what_cannot_run() {
        let mut store = OptionStore::with_core_options();
        for (argument, problem) in [
            ("mode=socks5", "not supported yet"),
            ("mode=bogus", "unknown mode"),
            ("ignore_hosts=(", "invalid host pattern"),
            ("connect_timeout=0", "more than 0"),
            ("threads=0", "from 1 to 65535"),
            ("listen_host=", "0.0.0.0 or ::"),
            (
                "certs=/nonexistent/c.pem",
                "/nonexistent/c.pem does not exist",
            ),
            ("certs==c.pem", "empty domain"),
            ("termlog_verbosity=loud", "one of error, warn, info, debug"),
        ] {
            let error = store
                .apply(&[Assignment::from_set_argument(argument)])
                .unwrap_err();
            assert!(error.to_string().contains(problem), "{argument}: {error}");
        }
        // mitmproxy writes `mode` as a list.
        store
            .assign(
                &Assignment::new(
                    "mode",
                    RawValue::List(vec!["reverse:http://h:1".into()]),
                    Origin::Set,
                ),
                false,
            )
            .unwrap();
        assert_eq!(
            store.get("mode"),
            Some(&Value::Str("reverse:http://h:1".into()))
        );
    }

    #[test]
    fn home_expansion() {
        let home = expand_home("~");
        assert_eq!(expand_home("~/x/y"), home.join("x/y"));
        assert_eq!(expand_home("/abs"), PathBuf::from("/abs"));
        assert_eq!(expand_home("rel/~"), PathBuf::from("rel/~"));
        assert_eq!(expand_home("~user/x"), PathBuf::from("~user/x"));
    }
}
