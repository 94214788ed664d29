//! Built-in addon `serverplayback` (mitmproxy's ServerPlayback, `-S FILE`): requests that
//! match a saved flow are answered with its response instead of reaching the server.
//!
//! A request matches a saved one with the same scheme, method, path, query, body, host and
//! port (each of the last four can be ignored by option, query and form parameters one by
//! one), and the same values of the headers named in `server_replay_use_headers`. Each saved
//! response is used once, in the order saved, unless `server_replay_reuse`. Requests with no
//! match go to the server (`server_replay_extra=forward`), are killed, or get an empty
//! response with a status code. Replayed responses get their `Date`, `Expires`,
//! `Last-Modified` and cookie expiry dates moved forward by the time since they were saved
//! (`server_replay_refresh`).

mod refresh;

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, LazyLock, Mutex, PoisonError,
    },
};

use interpose_plugin_abi::{flow::ReplaySide, prelude::*, CommandValue, ConfigureData};

/// The options that change how requests are matched: a change rebuilds the table.
const MATCH_OPTIONS: [&str; 6] = [
    "server_replay_ignore_content",
    "server_replay_ignore_host",
    "server_replay_ignore_params",
    "server_replay_ignore_payload_params",
    "server_replay_ignore_port",
    "server_replay_use_headers",
];

/// How requests are matched, from the options.
#[derive(Default)]
struct Matching {
    ignore_content: bool,
    ignore_host: bool,
    ignore_port: bool,
    ignore_params: Vec<String>,
    ignore_payload_params: Vec<String>,
    use_headers: Vec<String>,
}

impl Matching {
    fn from_options(ctx: &Context) -> Matching {
        Matching {
            ignore_content: ctx.get_option("server_replay_ignore_content"),
            ignore_host: ctx.get_option("server_replay_ignore_host"),
            ignore_port: ctx.get_option("server_replay_ignore_port"),
            ignore_params: ctx.get_option("server_replay_ignore_params"),
            ignore_payload_params: ctx.get_option("server_replay_ignore_payload_params"),
            use_headers: ctx.get_option("server_replay_use_headers"),
        }
    }

    /// The key a request is filed and found under (mitmproxy's `_hash`, as bytes).
    fn key(&self, request: &Request) -> Vec<u8> {
        let mut key = Vec::with_capacity(128 + request.content.len());
        let mut push = |part: &[u8]| {
            key.extend_from_slice(&(part.len() as u64).to_le_bytes());
            key.extend_from_slice(part);
        };
        push(request.scheme.as_bytes());
        push(request.method().as_bytes());
        push(
            request
                .path()
                .split('?')
                .next()
                .unwrap_or_default()
                .as_bytes(),
        );
        if !self.ignore_content {
            let ignored = |name: &[u8]| {
                self.ignore_payload_params
                    .iter()
                    .any(|p| p.as_bytes() == name)
            };
            let form = if self.ignore_payload_params.is_empty() {
                None
            } else {
                let multipart = request.multipart_form();
                if !multipart.fields().is_empty() {
                    Some(multipart.fields().to_vec())
                } else {
                    let urlencoded = request.urlencoded_form();
                    (!urlencoded.fields().is_empty()).then(|| {
                        urlencoded
                            .fields()
                            .iter()
                            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                            .collect()
                    })
                }
            };
            match form {
                Some(fields) => {
                    for (name, value) in fields.iter().filter(|(n, _)| !ignored(n)) {
                        push(name);
                        push(value);
                    }
                }
                None => push(request.content.as_slice()),
            }
        }
        if !self.ignore_host {
            push(request.pretty_host().as_bytes());
        }
        if !self.ignore_port {
            push(&request.port.to_le_bytes());
        }
        for (name, value) in request.query().fields() {
            if !self.ignore_params.iter().any(|p| p == name) {
                push(name.as_bytes());
                push(value.as_bytes());
            }
        }
        for name in &self.use_headers {
            push(name.as_bytes());
            match request.headers.get_bytes(name) {
                Some(value) => push(value),
                None => push(b"\0none"),
            }
        }
        key
    }
}

/// The saved flows, by key, each list in the order saved.
type Table = HashMap<Vec<u8>, VecDeque<HttpFlow>>;

/// The saved flows, shared by the addon and its commands.
#[derive(Default)]
struct State {
    table: Mutex<Table>,
    /// The matching options the table was filed with; requests are looked up the same way.
    matching: Mutex<Arc<Matching>>,
    /// Whether the table holds anything: requests skip the lock when it does not.
    active: AtomicBool,
    /// Whether `server_replay` was read (once, at startup, as mitmproxy does).
    configured: AtomicBool,
}

static STATE: LazyLock<State> = LazyLock::new(State::default);

/// The addon.
pub struct ServerPlayback;

impl State {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the table with `flows`, filed with the current matching options.
    fn load(&self, ctx: &Context, flows: Vec<HttpFlow>) {
        let matching = Arc::new(Matching::from_options(ctx));
        let mut table = Table::new();
        for flow in flows {
            table
                .entry(matching.key(&flow.request))
                .or_default()
                .push_back(flow);
        }
        self.active.store(!table.is_empty(), Ordering::Release);
        *self.table() = table;
        *self.matching.lock().unwrap_or_else(PoisonError::into_inner) = matching;
    }

    fn count(&self) -> usize {
        self.table().values().map(VecDeque::len).sum()
    }

    /// The saved flow to answer `request` with (mitmproxy's `next_flow`).
    fn next_flow(&self, ctx: &Context, request: &Request) -> Option<HttpFlow> {
        let matching = Arc::clone(&self.matching.lock().unwrap_or_else(PoisonError::into_inner));
        let key = matching.key(request);
        let reuse: bool =
            ctx.get_option("server_replay_reuse") || ctx.get_option::<bool>("server_replay_nopop");
        let mut table = self.table();
        let saved = table.get_mut(&key)?;
        let found = if reuse {
            saved.iter().find(|f| f.response().is_some()).cloned()
        } else {
            let mut found = None;
            while let Some(flow) = saved.pop_front() {
                if flow.response().is_some() {
                    found = Some(flow);
                    break;
                }
            }
            if saved.is_empty() {
                table.remove(&key);
            }
            found
        };
        self.active.store(!table.is_empty(), Ordering::Release);
        found
    }
}

#[addon]
impl Addon for ServerPlayback {
    fn load(&self, ctx: &Context) {
        ctx.add_option(
            "server_replay",
            Vec::<String>::new(),
            "Replay server responses from a saved file.",
        );
        ctx.add_choice_option(
            "server_replay_extra",
            "forward",
            &["forward", "kill", "204", "400", "404", "500"],
            "Behaviour for extra requests during replay for which no replayable response was \
             found. A numeric value returns an empty HTTP response with that status code.",
        );
        ctx.add_option(
            "server_replay_kill_extra",
            false,
            "Kill extra requests during replay. [Deprecated, prefer \
             server_replay_extra=kill]",
        );
        ctx.add_option(
            "server_replay_reuse",
            false,
            "Don't remove flows from server replay state after use, so that the same response \
             can be replayed many times.",
        );
        ctx.add_option(
            "server_replay_nopop",
            false,
            "Deprecated alias for server_replay_reuse.",
        );
        ctx.add_option(
            "server_replay_refresh",
            true,
            "Refresh server replay responses by adjusting date, expires and last-modified \
             headers, as well as adjusting cookie expiration.",
        );
        ctx.add_option(
            "server_replay_use_headers",
            Vec::<String>::new(),
            "Request headers that need to match while searching for a saved flow to replay.",
        );
        ctx.add_option(
            "server_replay_ignore_content",
            false,
            "Ignore request content while searching for a saved flow to replay.",
        );
        ctx.add_option(
            "server_replay_ignore_params",
            Vec::<String>::new(),
            "Request parameters to be ignored while searching for a saved flow to replay.",
        );
        ctx.add_option(
            "server_replay_ignore_payload_params",
            Vec::<String>::new(),
            "Request payload parameters (application/x-www-form-urlencoded or \
             multipart/form-data) to be ignored while searching for a saved flow to replay.",
        );
        ctx.add_option(
            "server_replay_ignore_host",
            false,
            "Ignore request destination host while searching for a saved flow to replay.",
        );
        ctx.add_option(
            "server_replay_ignore_port",
            false,
            "Ignore request destination port while searching for a saved flow to replay.",
        );
        ctx.add_command(
            "replay.server.count",
            "How many saved responses are left to replay",
            &[],
            |_, _| Ok(CommandValue::Int(STATE.count() as i64)),
        );
        ctx.add_command(
            "replay.server.stop",
            "Stop server replay: forget the saved responses",
            &[],
            |ctx, _| {
                STATE.load(ctx, Vec::new());
                Ok(CommandValue::None)
            },
        );
        ctx.add_command(
            "replay.server.file",
            "Replay server responses from the flows of a file (replacing those loaded)",
            &[("path", ParamKind::Path)],
            |ctx, args| {
                let flows = ctx.read_flows(args.str(0)?)?;
                let count = flows.len();
                STATE.load(ctx, flows);
                Ok(CommandValue::Int(count as i64))
            },
        );
    }

    fn configure(&self, ctx: &Context, data: &mut ConfigureData) {
        if ctx.get_option::<bool>("server_replay_kill_extra") {
            warn!(
                ctx,
                "server_replay_kill_extra has been deprecated, please update your config to use \
                 server_replay_extra='kill'."
            );
        }
        if ctx.get_option::<bool>("server_replay_nopop") {
            error!(
                ctx,
                "server_replay_nopop has been renamed to server_replay_reuse, please update your \
                 config."
            );
        }
        let files: Vec<String> = ctx.get_option("server_replay");
        if !files.is_empty() && !STATE.configured.swap(true, Ordering::AcqRel) {
            let mut flows = Vec::new();
            for file in &files {
                match ctx.read_flows(file) {
                    Ok(read) => flows.extend(read),
                    Err(why) => {
                        STATE.configured.store(false, Ordering::Release);
                        data.reject(why);
                        return;
                    }
                }
            }
            info!(ctx, "{} flows loaded for server replay", flows.len());
            STATE.load(ctx, flows);
        } else if MATCH_OPTIONS.iter().any(|name| data.contains(name)) {
            let flows: Vec<HttpFlow> = STATE.table().drain().flat_map(|(_, list)| list).collect();
            STATE.load(ctx, flows);
        }
    }

    fn request(&self, ctx: &Context, flow: &mut HttpFlow) {
        if !STATE.active.load(Ordering::Acquire) || flow.response().is_some() {
            return;
        }
        if let Some(saved) = STATE.next_flow(ctx, &flow.request) {
            let Some(mut response) = saved.response().cloned() else {
                return;
            };
            if ctx.get_option::<bool>("server_replay_refresh") {
                refresh::refresh(&mut response, interpose_plugin_abi::now());
            }
            flow.set_response(response);
            flow.set_is_replay(Some(ReplaySide::Response));
            return;
        }
        let extra: String = ctx.get_option("server_replay_extra");
        if ctx.get_option::<bool>("server_replay_kill_extra") || extra == "kill" {
            warn!(
                ctx,
                "server_playback: killed non-replay request {}",
                flow.request.url()
            );
            flow.kill();
        } else if let Ok(status) = extra.parse::<u16>() {
            warn!(
                ctx,
                "server_playback: returned {status} non-replay request {}",
                flow.request.url()
            );
            flow.set_response(Response::make(status, "", &[]));
            flow.set_is_replay(Some(ReplaySide::Response));
        }
    }
}

export_plugin!(addons = [ServerPlayback]);

#[cfg(test)]
mod tests;
