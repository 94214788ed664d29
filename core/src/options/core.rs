//! The typed view of the core's options that the engine reads: one snapshot, built from the
//! options store, shared by every connection.

use std::{path::PathBuf, time::Duration};

use interpose_plugin_abi::Level;

use crate::{proxy::Mode, tls::CertSpec};

/// What a panic inside an addon does to its flow (`addon_errors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddonErrors {
    /// Log the panic and go on with the next addon (mitmproxy's behaviour).
    #[default]
    Continue,
    /// End the flow closed: `error` of kind addon, 502 before the response head.
    Fail,
}

/// Who may reuse an idle server connection (`upstream_pool`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamPool {
    /// Only the client connection that opened it (mitmproxy's behaviour).
    #[default]
    Client,
    /// Any client connection (nginx's behaviour; for reverse mode's own servers).
    Shared,
}

/// Host patterns of `ignore_hosts` / `allow_hosts`: regular expressions matched (anywhere, as
/// Python's `re.search`) against `host:port`.
#[derive(Debug, Clone, Default)]
pub struct HostPatterns {
    patterns: Vec<regex::Regex>,
}

impl HostPatterns {
    /// Compiles each pattern; the error names the pattern that does not compile.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, String> {
        let patterns = patterns
            .iter()
            .map(|p| {
                regex::RegexBuilder::new(p.as_ref())
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| format!("invalid host pattern {:?}: {e}", p.as_ref()))
            })
            .collect::<Result<_, _>>()?;
        Ok(HostPatterns { patterns })
    }

    /// Whether there is no pattern.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern matches `host:port` (IPv6 hosts in brackets).
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        let target = interpose_plugin_abi::HostPort(host, port).to_string();
        self.patterns.iter().any(|p| p.is_match(&target))
    }
}

/// Every core setting the engine reads, typed. Built once from the options store.
#[derive(Debug, Clone)]
pub struct CoreOptions {
    /// `listen_host`: address to bind.
    pub listen_host: String,
    /// `listen_port`: port to bind (0 picks a free one).
    pub listen_port: u16,
    /// `mode`: the proxy mode.
    pub mode: Mode,
    /// `confdir`: Interpose's configuration folder (config.yaml, plugins, CA).
    pub confdir: PathBuf,
    /// `stream_large_bodies`: bodies larger than this are streamed, not buffered.
    pub stream_large_bodies: Option<u64>,
    /// `body_size_limit`: larger bodies fail the flow (413 for requests, 502 for responses).
    pub body_size_limit: Option<u64>,
    /// `ignore_hosts`: CONNECT targets tunnelled byte for byte.
    pub ignore_hosts: HostPatterns,
    /// `allow_hosts`: when set, only these CONNECT targets are intercepted.
    pub allow_hosts: HostPatterns,
    /// `certs`: the user's certificates, presented instead of generated leaves.
    pub certs: Vec<CertSpec>,
    /// `ssl_insecure`: do not verify upstream certificates.
    pub ssl_insecure: bool,
    /// `http2`: offer HTTP/2 to clients inside intercepted TLS.
    pub http2: bool,
    /// `websocket`: relay WebSocket messages through the addons (else splice the bytes).
    pub websocket: bool,
    /// `client_replay_concurrency`: replayed requests in flight at once (0: no limit).
    pub client_replay_concurrency: usize,
    /// `keep_host_header`: reverse mode keeps the client's `Host`.
    pub keep_host_header: bool,
    /// `upstream_auth`, as the value of the (Proxy-)Authorization header it makes.
    pub upstream_auth: Option<String>,
    /// `plugins_dir`: folder of plugins loaded at startup.
    pub plugins_dir: Option<PathBuf>,
    /// `plugins`: plugin files loaded after the folder's, in order.
    pub plugins: Vec<PathBuf>,
    /// `threads`: worker threads; `None` for one per core.
    pub threads: Option<usize>,
    /// `addon_errors`: what a panicking addon does to its flow.
    pub addon_errors: AddonErrors,
    /// `connect_timeout`: how long connecting to a server may take.
    pub connect_timeout: Duration,
    /// `response_timeout`: how long a server may take to start its response.
    pub response_timeout: Option<Duration>,
    /// `upstream_idle_max`: idle connections kept per server.
    pub upstream_idle_max: usize,
    /// `upstream_idle_timeout`: idle server connections older than this are closed.
    pub upstream_idle_timeout: Duration,
    /// `shutdown_grace`: how long in-flight requests get to finish at shutdown.
    pub shutdown_grace: Duration,
    /// `upstream_pool`: who may reuse an idle server connection (`auto` resolved by mode).
    pub upstream_pool: UpstreamPool,
    /// `body_buffer_budget`: bytes of buffered bodies (over 64 KiB each) across all flows.
    pub body_buffer_budget: u64,
    /// `header_read_timeout`: how long a started request head may take.
    pub header_read_timeout: Duration,
    /// `client_idle_timeout`: how long an idle keep-alive client connection stays open.
    pub client_idle_timeout: Duration,
    /// `body_read_timeout`: how long a body may go without a byte arriving.
    pub body_read_timeout: Duration,
    /// `max_connections`: most client connections at once (`None`: from the descriptor limit).
    pub max_connections: Option<usize>,
    /// `termlog_verbosity`: the least severe log level printed.
    pub termlog_verbosity: Level,
}

impl Default for CoreOptions {
    fn default() -> Self {
        CoreOptions {
            listen_host: "127.0.0.1".into(),
            listen_port: 8080,
            mode: Mode::Regular,
            confdir: PathBuf::from("~/.interpose"),
            stream_large_bodies: None,
            body_size_limit: None,
            ignore_hosts: HostPatterns::default(),
            allow_hosts: HostPatterns::default(),
            certs: Vec::new(),
            ssl_insecure: false,
            http2: true,
            websocket: true,
            client_replay_concurrency: 1,
            upstream_auth: None,
            keep_host_header: false,
            plugins_dir: None,
            plugins: Vec::new(),
            threads: None,
            addon_errors: AddonErrors::Continue,
            connect_timeout: Duration::from_secs(10),
            response_timeout: Some(Duration::from_secs(120)),
            upstream_idle_max: 256,
            upstream_idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
            termlog_verbosity: Level::Info,
            upstream_pool: UpstreamPool::Client,
            body_buffer_budget: 1 << 30,
            header_read_timeout: Duration::from_secs(30),
            client_idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(60),
            max_connections: None,
        }
    }
}

impl CoreOptions {
    /// Whether a CONNECT to `host:port` is tunnelled byte for byte instead of intercepted
    /// (mitmproxy's semantics: `ignore_hosts` matches, or `allow_hosts` is set and does not).
    pub fn is_ignored(&self, host: &str, port: u16) -> bool {
        if !self.allow_hosts.is_empty() {
            return !self.allow_hosts.matches(host, port);
        }
        self.ignore_hosts.matches(host, port)
    }
}
