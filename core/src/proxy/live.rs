//! The running proxy's core options: replaced whole while traffic flows (mitmproxy's `set` at
//! run time), read without a lock. Which options may change without a restart is decided here.
//!
//! Readers take a snapshot: a flow takes one when it starts and keeps it to its end (so that
//! `stream_large_bodies`, `body_size_limit`, `body_buffer_budget` and the response timeouts
//! agree for its request and its response); a client connection reads the head timeouts once
//! per request; the CONNECT decision (`ignore_hosts`, `allow_hosts`) and the ALPN offer
//! (`http2`) read them once per tunnel or handshake. A snapshot is `ArcSwap::load` (no lock,
//! no allocation) or, when kept across awaits, `load_full` (one reference count).

use std::{
    fmt,
    sync::{Arc, Mutex},
};

use arc_swap::ArcSwap;

use crate::{
    addons::AddonManager,
    options::{CoreOptions, OptionError, OptionStore},
};

/// Why new options were not applied. The running options stay as they were.
#[derive(Debug)]
pub enum ApplyError {
    /// The store's values do not make valid core options.
    Options(OptionError),
    /// `option` has a new value that only a restart can take.
    RestartRequired {
        /// The option's name, as users set it.
        option: &'static str,
    },
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::Options(e) => e.fmt(f),
            ApplyError::RestartRequired { option } => {
                write!(f, "{option} cannot change while the proxy runs; restart it")
            }
        }
    }
}

impl std::error::Error for ApplyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ApplyError::Options(e) => Some(e),
            ApplyError::RestartRequired { .. } => None,
        }
    }
}

/// The core options of a proxy, replaceable while it serves. Cloning gives another handle to
/// the same options: [`serve`](super::serve) keeps one, a control endpoint keeps another and
/// calls [`LiveOptions::apply_store`] after each `set`.
///
/// Taking effect at run time (for what starts after the change; a flow in progress keeps the
/// values it started with): `stream_large_bodies`, `body_size_limit`, `body_buffer_budget`,
/// `ignore_hosts` and `allow_hosts` (next CONNECT), `http2` (next TLS handshake with a
/// client), `websocket` (next upgrade), `upstream_auth` (next request or tunnel), `addon_errors` (next panic), `connect_timeout`, `response_timeout`,
/// `body_read_timeout` (next flow; a client connection's own body reads from its next
/// request), `header_read_timeout` and `client_idle_timeout` (next request head),
/// `upstream_idle_max` and `upstream_idle_timeout` (next pool use), `shutdown_grace`.
///
/// Refused with [`ApplyError::RestartRequired`]: `client_replay_concurrency`,
/// `keep_host_header`, `listen_host`,
/// `listen_port`, `mode`,
/// `confdir` (the CA), `certs`, `ssl_insecure` (the upstream TLS configurations are built at
/// start), `plugins_dir`, `plugins`, `threads`, `upstream_pool`, `max_connections` and
/// `termlog_verbosity` (the logger's level is fixed when it is installed).
#[derive(Clone)]
pub struct LiveOptions {
    current: Arc<ArcSwap<CoreOptions>>,
    addons: Arc<AddonManager>,
    /// Orders concurrent `apply` calls, so that `addon_errors` and the options in force
    /// always come from the same call.
    applying: Arc<Mutex<()>>,
}

impl LiveOptions {
    /// Options in force from now on, for a proxy whose addons are `addons` (their
    /// `addon_errors` policy is set here and on every change).
    pub fn new(options: CoreOptions, addons: Arc<AddonManager>) -> Self {
        addons.set_addon_errors(options.addon_errors);
        LiveOptions {
            current: Arc::new(ArcSwap::from_pointee(options)),
            addons,
            applying: Arc::default(),
        }
    }

    /// The options in force now. A snapshot: later changes do not alter it.
    pub fn current(&self) -> Arc<CoreOptions> {
        self.current.load_full()
    }

    /// Makes `options` the ones in force, unless an option that needs a restart differs from
    /// the running value: then nothing changes and the error names the first such option.
    pub fn apply(&self, options: CoreOptions) -> Result<(), ApplyError> {
        let _applying = self.applying.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(option) = restart_required(&self.current.load(), &options) {
            return Err(ApplyError::RestartRequired { option });
        }
        self.addons.set_addon_errors(options.addon_errors);
        self.current.store(Arc::new(options));
        Ok(())
    }

    /// Builds the core options from `store` (after a `set`) and applies them as
    /// [`LiveOptions::apply`] does. On an error the caller should put the store's old value
    /// back: the proxy still runs with the old one.
    pub fn apply_store(&self, store: &OptionStore) -> Result<(), ApplyError> {
        self.apply(store.core_options().map_err(ApplyError::Options)?)
    }

    /// The shared cell itself, for the parts of the engine that read it.
    pub(super) fn cell(&self) -> &Arc<ArcSwap<CoreOptions>> {
        &self.current
    }

    /// The addons these options were made for.
    pub(super) fn addons(&self) -> &Arc<AddonManager> {
        &self.addons
    }
}

/// The first option that differs between `running` and `new` and cannot change while the
/// proxy runs. Every field is named (no `..`): a new option does not compile until it is
/// classified.
fn restart_required(running: &CoreOptions, new: &CoreOptions) -> Option<&'static str> {
    let CoreOptions {
        listen_host,
        listen_port,
        mode,
        confdir,
        certs,
        ssl_insecure,
        plugins_dir,
        plugins,
        threads,
        upstream_pool,
        max_connections,
        termlog_verbosity,
        client_replay_concurrency,
        keep_host_header,
        // Read by flows, connections and the pools as they go.
        stream_large_bodies: _,
        body_size_limit: _,
        body_buffer_budget: _,
        ignore_hosts: _,
        allow_hosts: _,
        http2: _,
        websocket: _,
        upstream_auth: _,
        addon_errors: _,
        connect_timeout: _,
        response_timeout: _,
        upstream_idle_max: _,
        upstream_idle_timeout: _,
        shutdown_grace: _,
        header_read_timeout: _,
        client_idle_timeout: _,
        body_read_timeout: _,
    } = new;
    let changed = [
        ("listen_host", *listen_host != running.listen_host),
        ("listen_port", *listen_port != running.listen_port),
        ("mode", *mode != running.mode),
        ("confdir", *confdir != running.confdir),
        ("certs", *certs != running.certs),
        ("ssl_insecure", *ssl_insecure != running.ssl_insecure),
        ("plugins_dir", *plugins_dir != running.plugins_dir),
        ("plugins", *plugins != running.plugins),
        ("threads", *threads != running.threads),
        ("upstream_pool", *upstream_pool != running.upstream_pool),
        (
            "client_replay_concurrency",
            *client_replay_concurrency != running.client_replay_concurrency,
        ),
        (
            "keep_host_header",
            *keep_host_header != running.keep_host_header,
        ),
        (
            "max_connections",
            *max_connections != running.max_connections,
        ),
        (
            "termlog_verbosity",
            *termlog_verbosity != running.termlog_verbosity,
        ),
    ];
    changed
        .into_iter()
        .find(|(_, changed)| *changed)
        .map(|(option, _)| option)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpListener, TcpStream},
    };

    use super::*;
    use crate::options::{AddonErrors, Assignment, HostPatterns};

    fn live() -> LiveOptions {
        LiveOptions::new(
            CoreOptions::default(),
            Arc::new(AddonManager::new(Vec::new())),
        )
    }

    #[test]
    fn options_read_as_they_go_apply_at_once() {
        let live = live();
        let before = live.current();
        let changed = CoreOptions {
            stream_large_bodies: Some(1 << 20),
            body_size_limit: Some(10),
            ignore_hosts: HostPatterns::new(&["example\\.com"]).unwrap(),
            http2: false,
            addon_errors: AddonErrors::Fail,
            connect_timeout: Duration::from_secs(1),
            response_timeout: None,
            upstream_idle_max: 1,
            body_buffer_budget: 1,
            shutdown_grace: Duration::ZERO,
            ..CoreOptions::default()
        };
        live.apply(changed).unwrap();
        let now = live.current();
        assert_eq!(now.stream_large_bodies, Some(1 << 20));
        assert_eq!(now.body_size_limit, Some(10));
        assert!(now.is_ignored("example.com", 443));
        assert!(!now.http2);
        assert_eq!(now.response_timeout, None);
        assert_eq!(live.addons.addon_errors(), AddonErrors::Fail);
        assert_eq!(before.body_size_limit, None, "a snapshot keeps its values");
    }

    #[test]
    fn options_that_need_a_restart_are_refused_by_name() {
        let cases: [(&str, CoreOptions); 6] = [
            (
                "listen_port",
                CoreOptions {
                    listen_port: 9090,
                    ..CoreOptions::default()
                },
            ),
            (
                "listen_host",
                CoreOptions {
                    listen_host: "0.0.0.0".into(),
                    ..CoreOptions::default()
                },
            ),
            (
                "mode",
                CoreOptions {
                    mode: "reverse:http://example.com".parse().unwrap(),
                    ..CoreOptions::default()
                },
            ),
            (
                "confdir",
                CoreOptions {
                    confdir: "/elsewhere".into(),
                    ..CoreOptions::default()
                },
            ),
            (
                "threads",
                CoreOptions {
                    threads: Some(2),
                    ..CoreOptions::default()
                },
            ),
            (
                "ssl_insecure",
                CoreOptions {
                    ssl_insecure: true,
                    ..CoreOptions::default()
                },
            ),
        ];
        for (name, options) in cases {
            let live = live();
            let error = live
                .apply(CoreOptions {
                    body_size_limit: Some(1),
                    addon_errors: AddonErrors::Fail,
                    ..options
                })
                .unwrap_err();
            assert!(
                matches!(error, ApplyError::RestartRequired { option } if option == name),
                "{name}: {error:?}"
            );
            assert_eq!(
                error.to_string(),
                format!("{name} cannot change while the proxy runs; restart it")
            );
            assert_eq!(
                live.current().body_size_limit,
                None,
                "{name}: nothing applied"
            );
            assert_eq!(live.addons.addon_errors(), AddonErrors::Continue, "{name}");
        }
    }

    #[test]
    fn the_same_restart_only_values_are_no_change() {
        let live = live();
        live.apply(CoreOptions::default()).unwrap();
        assert!(restart_required(&CoreOptions::default(), &CoreOptions::default()).is_none());
    }

    #[test]
    fn a_store_after_set_applies_or_names_what_needs_a_restart() {
        let mut store = OptionStore::with_core_options();
        let live = LiveOptions::new(
            store.core_options().unwrap(),
            Arc::new(AddonManager::new(Vec::new())),
        );
        let set = |store: &mut OptionStore, argument: &str| {
            store
                .apply(&[Assignment::from_set_argument(argument)])
                .unwrap();
        };
        set(&mut store, "stream_large_bodies=1m");
        set(&mut store, "addon_errors=fail");
        live.apply_store(&store).unwrap();
        assert_eq!(live.current().stream_large_bodies, Some(1 << 20));
        assert_eq!(live.addons.addon_errors(), AddonErrors::Fail);

        set(&mut store, "listen_port=9999");
        let error = live.apply_store(&store).unwrap_err();
        assert_eq!(
            error.to_string(),
            "listen_port cannot change while the proxy runs; restart it"
        );
    }

    /// An upstream answering every request with 1000 bytes, then closing.
    async fn thousand_byte_server() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut chunk = [0; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let mut answer =
                        b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n"
                            .to_vec();
                    answer.resize(answer.len() + 1000, b'x');
                    let _ = stream.write_all(&answer).await;
                });
            }
        });
        port
    }

    /// The status of a GET through the proxy at `proxy` to the server at `server`.
    async fn status_through(proxy: u16, server: u16) -> u16 {
        let mut stream = None;
        // The proxy may not listen yet.
        for _ in 0..100 {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", proxy)).await {
                stream = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut stream = stream.expect("the proxy listens");
        let request = format!(
            "GET http://127.0.0.1:{server}/ HTTP/1.1\r\nhost: 127.0.0.1:{server}\r\n\
             connection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        answer
            .get(9..12)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {answer:?}"))
    }

    #[tokio::test]
    async fn a_running_proxy_takes_a_new_body_size_limit_from_the_next_flow() {
        let server = thousand_byte_server().await;
        // A free port for the proxy (`serve` binds it itself).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let confdir =
            std::env::temp_dir().join(format!("interpose-live-options-{}", std::process::id()));
        let live = LiveOptions::new(
            CoreOptions {
                listen_port: port,
                confdir: confdir.clone(),
                ..CoreOptions::default()
            },
            Arc::new(AddonManager::new(Vec::new())),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let proxy = tokio::spawn(crate::proxy::serve(live.clone(), async {
            let _ = stopped.await;
        }));

        assert_eq!(status_through(port, server).await, 200);
        let limited = CoreOptions {
            body_size_limit: Some(100),
            ..(*live.current()).clone()
        };
        live.apply(limited).unwrap();
        assert_eq!(
            status_through(port, server).await,
            502,
            "a 1000-byte response is over the new limit"
        );
        let refused = CoreOptions {
            listen_port: port.wrapping_add(1),
            body_size_limit: None,
            ..(*live.current()).clone()
        };
        assert!(live.apply(refused).is_err());
        assert_eq!(status_through(port, server).await, 502, "still limited");
        let unlimited = CoreOptions {
            body_size_limit: None,
            ..(*live.current()).clone()
        };
        live.apply(unlimited).unwrap();
        assert_eq!(status_through(port, server).await, 200);

        let _ = stop.send(());
        proxy.await.unwrap().unwrap();
        let _ = std::fs::remove_dir_all(confdir);
    }
}
