//! End-to-end tests: the real `interpose` binary, plugins built with `cargo build -p`, an
//! upstream server started by the test, and real HTTP clients (hyper's client, curl, raw
//! sockets for malformed input). Every proxy listens on a free port.
//!
//! Contents:
//! - [`forwarding`]: reverse and regular mode, headers and bodies, keep-alive and upstream
//!   connection reuse, requests the proxy refuses.
//! - [`plugins`]: loading from `--plugin` and the plugins folder, addon order, broken plugins,
//!   second copies, plugins depending on plugins, `panic = "abort"` refused.
//! - [`events`]: event order, short-circuit, kill, panicking addons, upstream failures,
//!   shutdown.
//! - [`options`]: `--options`, config.yaml, `--set` and flags in order of precedence, and
//!   the errors for unknown names, bad values and bad files.
//! - [`readme`]: the README's addon, built outside the workspace and loaded.
//! - [`tunnel`]: CONNECT tunnels (plain and `--ignore-hosts`), refused CONNECT targets, and
//!   WebSocket through reverse mode, a CONNECT tunnel and an absolute-form upgrade.
//! - [`bodies`]: streamed bodies in bounded memory, `body_size_limit`, trailers, and
//!   header-field case and order on the wire.
//! - [`hardening`]: stray server responses, loops back into the proxy, the body memory
//!   budget, timeouts, the connection cap, ambiguous framing, folded log repeats.
//! - [`tls`]: HTTPS interception with the CA made on first run, upstream verification and
//!   `--ssl-insecure`, reverse mode to https.
//! - [`h2_servers`]: HTTP/2 to servers that chose `h2`: HTTP/2 and HTTP/1.1 clients, bodies
//!   buffered and streamed, streams multiplexed on one server connection, reverse mode.
//! - [`mitmproxy`]: flow files read and written by mitmproxy 11.0.2 itself (needs
//!   `tests/mitmproxy/setup.sh`).
//! - [`examples`]: the example plugins using the proxy's filters and flow files
//!   (`filter-flows`, `io-write-flow-file`) and the `io-read-saved-flows` program on a `-w`
//!   capture.
//! - [`pausing`]: flows paused and resumed from another thread, killed while paused, left
//!   by their client, paused at shutdown; `#[blocking]` handlers; the `nonblocking` and
//!   `shutdown` examples.
//! - [`twins`]: the Rust twins of mitmproxy's example addons (`examples/anatomy`,
//!   `http-add-header`, `http-trailers`, `secret_leak_detector`...), each checked for what
//!   the Python original does.
//! - [`control`]: the control endpoint and `interpose ctl`: commands, `set` while traffic
//!   flows, paused flows marked and resumed, the socket's mode, the TCP token, off by default.
//! - [`steering`]: addons rerouting flows (in `request` and `server_connect`), chunk hooks on
//!   streamed requests and responses, and `addon_errors=fail`.
//! - [`twins13`]: the twins of mitmproxy's option and command examples
//!   (`examples/options-simple`, `options-configure`, `commands-simple`, `commands-flows`,
//!   `commands-paths`): `--set` and config.yaml, a refused value, commands through
//!   `interpose ctl`.

mod bodies;
mod capture;
mod control;
mod events;
mod examples;
mod forwarding;
mod h2_servers;
mod hardening;
mod harness;
mod mitmproxy;
mod modify;
mod options;
mod pausing;
mod plugins;
mod readme;
mod replay;
mod steering;
mod tls;
mod tunnel;
mod twins;
mod twins13;
mod websocket;
