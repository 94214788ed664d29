//! Reading flows from a file through the addons (mitmproxy's `ReadFile`, `-r FILE`): each
//! flow gets the events it would have had live (`requestheaders`, `request`, then
//! `responseheaders` and `response` if it has a response, `error` if it failed), so that
//! `interpose -n -r in.flow -w out.flow "~d example.com"` filters a capture and the dump
//! output prints it.

use std::{fs::File, io::BufReader, path::Path};

use abi_stable::std_types::ROption;
use interpose_plugin_abi::HttpFlow;

use crate::{
    addons::{AddonManager, HttpEvent},
    capture::flowfile::{FlowReader, ReadError},
    filter::Filter,
    proxy::Mode,
};

/// What reading a file did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReadSummary {
    /// Flows passed through the addons.
    pub loaded: u64,
    /// Flows left out by `readfile_filter`.
    pub filtered: u64,
    /// Flows of kinds Interpose does not handle (TCP, UDP, DNS).
    pub skipped: u64,
    /// Whether the file ended inside a flow (a writer killed mid-write).
    pub truncated: bool,
}

/// Why a file could not be read (wholly or in part).
#[derive(Debug)]
pub struct ReadFileError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub message: String,
    /// Flows passed through the addons before it went wrong.
    pub loaded: u64,
}

impl std::fmt::Display for ReadFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot read flows from {}: {}", self.path, self.message)?;
        if self.loaded > 0 {
            write!(f, " (after {} flows)", self.loaded)?;
        }
        Ok(())
    }
}

impl std::error::Error for ReadFileError {}

/// Reads the flow file at `path` and passes each flow matching `filter` through `addons`.
/// In reverse mode, flows are pointed at the reverse target first, as mitmproxy does.
pub fn read_flows(
    path: &Path,
    filter: Option<&Filter>,
    mode: &Mode,
    addons: &AddonManager,
) -> Result<ReadSummary, ReadFileError> {
    for_each_flow(path, |mut flow, summary| {
        if filter.is_some_and(|f| !f.matches(&flow)) {
            summary.filtered += 1;
            return;
        }
        if let Mode::Reverse(target) = mode {
            flow.request.host = target.host.as_str().into();
            flow.request.port = target.port;
            flow.request.scheme = target.scheme.into();
        }
        replay_events(&mut flow, addons);
        summary.loaded += 1;
    })
}

/// The HTTP flows of the flow file at `path`, as they were saved (for client replay).
pub fn load_flows(path: &Path) -> Result<Vec<HttpFlow>, ReadFileError> {
    let mut flows = Vec::new();
    for_each_flow(path, |flow, summary| {
        flows.push(flow);
        summary.loaded += 1;
    })?;
    Ok(flows)
}

/// Hands each HTTP flow of the file at `path` (`-`: standard input, as mitmdump reads it) to
/// `visit`, counting flows of other kinds as skipped; a file cut mid-flow (its writer killed)
/// yields the flows before the cut.
fn for_each_flow(
    path: &Path,
    mut visit: impl FnMut(HttpFlow, &mut ReadSummary),
) -> Result<ReadSummary, ReadFileError> {
    let error = |message: String, loaded: u64| ReadFileError {
        path: path.display().to_string(),
        message,
        loaded,
    };
    let file: Box<dyn std::io::Read> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(File::open(path).map_err(|e| error(e.to_string(), 0))?)
    };
    let mut summary = ReadSummary::default();
    for item in FlowReader::new(BufReader::with_capacity(256 * 1024, file)) {
        let flow = match item {
            Ok(flow) => flow,
            Err(ReadError::Unsupported { .. }) => {
                summary.skipped += 1;
                continue;
            }
            Err(ReadError::Truncated { offset }) => {
                // A writer stopped mid-record (kill -9): everything before it is whole.
                tracing::warn!(
                    "{} ends with an incomplete flow at byte {offset} (its writer was stopped \
                     mid-write); read the {} complete flows before it",
                    path.display(),
                    summary.loaded + summary.filtered
                );
                summary.truncated = true;
                break;
            }
            Err(e) => return Err(error(e.to_string(), summary.loaded)),
        };
        visit(flow, &mut summary);
    }
    Ok(summary)
}

/// Sends `flow` the events of its life, in order (mitmproxy's event sequence): a WebSocket
/// flow gets `websocket_start`, one `websocket_message` per message (the messages reappear
/// one by one, as they arrived) and `websocket_end` instead of `error`. A panicking addon
/// under `addon_errors=fail` ends the flow's events (the manager has logged it).
fn replay_events(flow: &mut HttpFlow, addons: &AddonManager) {
    let has_response = flow.response.is_some();
    let websocket = flow.websocket.is_some();
    let has_error = flow.error.is_some() && !websocket;
    let events = [
        (HttpEvent::RequestHeaders, true),
        (HttpEvent::Request, true),
        (HttpEvent::ResponseHeaders, has_response),
        (HttpEvent::Response, has_response),
        (HttpEvent::Error, has_error),
    ];
    for (event, happened) in events {
        if happened && addons.http(event, flow).is_err() {
            return;
        }
    }
    if websocket {
        let _ = replay_websocket(flow, addons);
    }
}

fn replay_websocket(
    flow: &mut HttpFlow,
    addons: &AddonManager,
) -> Result<(), crate::addons::AddonPanic> {
    let ROption::RSome(ws) = &mut flow.websocket else {
        return Ok(());
    };
    let messages = std::mem::take(&mut ws.messages);
    addons.http(HttpEvent::WebsocketStart, flow)?;
    for message in messages {
        if let ROption::RSome(ws) = &mut flow.websocket {
            ws.messages.push(message);
        }
        addons.http(HttpEvent::WebsocketMessage, flow)?;
    }
    addons.http(HttpEvent::WebsocketEnd, flow)
}
