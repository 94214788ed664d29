//! Client replay (mitmproxy's `ClientPlayback`): saved or copied requests sent to their
//! servers again, each as a new exchange through the addons, marked `is_replay = request`.
//! The queue is fed by `client_replay` files, the `replay.client*` commands and
//! `Context::replay_client`; the proxy drains it while it serves.

use std::{
    collections::VecDeque,
    future::pending,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, LazyLock, Mutex, PoisonError,
    },
};

use abi_stable::std_types::ROption;
use bytes::Bytes;
use interpose_plugin_abi::{
    flow::{why_not_replayable, ReplaySide},
    now, ErrorKind, Headers, HttpFlow, Response,
};
use tokio::sync::{Notify, Semaphore};

use super::{
    failure::Failure,
    flow::{BodyFrame, Downstream, FlowDriver},
    upstream::ClientPool,
    Shared,
};
use crate::flow::bytes_from_body;

/// The flows waiting for replay, and how many are being replayed.
struct Queue {
    pending: Mutex<VecDeque<HttpFlow>>,
    inflight: AtomicUsize,
    wake: Notify,
}

static QUEUE: LazyLock<Queue> = LazyLock::new(|| Queue {
    pending: Mutex::new(VecDeque::new()),
    inflight: AtomicUsize::new(0),
    wake: Notify::new(),
});

fn pending_flows() -> std::sync::MutexGuard<'static, VecDeque<HttpFlow>> {
    QUEUE.pending.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Queues a copy of `flow` for replay; `Err` says why it cannot be replayed.
pub fn enqueue(flow: &HttpFlow) -> Result<(), String> {
    if let Some(why) = why_not_replayable(flow) {
        return Err(why.to_string());
    }
    pending_flows().push_back(flow.clone());
    QUEUE.wake.notify_one();
    Ok(())
}

/// Flows queued or being replayed (mitmproxy's `replay.client.count`).
pub fn count() -> usize {
    pending_flows().len() + QUEUE.inflight.load(Ordering::Acquire)
}

/// Drops the queued flows (not those already sent); how many there were.
pub fn stop() -> usize {
    let mut pending = pending_flows();
    let dropped = pending.len();
    pending.clear();
    dropped
}

/// Replays queued flows until the proxy stops: `concurrency` at a time (0: no limit).
pub async fn run(shared: Arc<Shared>, concurrency: usize) {
    let permits = Arc::new(Semaphore::new(if concurrency == 0 {
        Semaphore::MAX_PERMITS
    } else {
        concurrency
    }));
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let flow = loop {
            // Counted in flight before it leaves the queue, so `count` never dips to 0
            // between the two.
            QUEUE.inflight.fetch_add(1, Ordering::AcqRel);
            if let Some(flow) = pending_flows().pop_front() {
                break flow;
            }
            QUEUE.inflight.fetch_sub(1, Ordering::AcqRel);
            QUEUE.wake.notified().await;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            replay(&shared, flow).await;
            QUEUE.inflight.fetch_sub(1, Ordering::AcqRel);
            drop(permit);
        });
    }
}

/// Sends `flow`'s request again, through the addons, with a connection of its own.
async fn replay(shared: &Shared, mut flow: HttpFlow) {
    let body = bytes_from_body(std::mem::take(&mut flow.request.content));
    flow.is_replay = ROption::RSome(ReplaySide::Request);
    flow.response = ROption::RNone;
    flow.error = ROption::RNone;
    flow.server_conn = ROption::RNone;
    flow.live = true;
    let at = now();
    flow.request.timestamp_start = at;
    flow.request.timestamp_end = ROption::RSome(at);
    tracing::debug!("[replay] {} {}", flow.request.method(), flow.request.url());
    let mut down = ReplayClient {
        length: body.len() as u64,
        body: Some(body),
    };
    let mut pool = ClientPool::default();
    FlowDriver::for_flow(shared, flow, &mut down, &mut pool)
        .run()
        .await;
}

/// The client side of a replayed flow: the saved request body in, the response dropped (the
/// addons and the capture have it).
struct ReplayClient {
    length: u64,
    body: Option<Bytes>,
}

impl Downstream for ReplayClient {
    fn request_length(&self) -> Option<u64> {
        Some(self.length)
    }

    async fn request_frame(&mut self) -> Result<Option<BodyFrame>, Failure> {
        Ok(self
            .body
            .take()
            .filter(|b| !b.is_empty())
            .map(BodyFrame::Data))
    }

    async fn request_body(&mut self, _len: u64) -> Result<Bytes, Failure> {
        Ok(self.body.take().unwrap_or_default())
    }

    async fn closed(&mut self) {
        // Nobody waits on the other end: a replay ends with its server exchange.
        pending::<()>().await;
    }

    async fn informational(&mut self, _response: &Response) -> Result<(), Failure> {
        Ok(())
    }

    async fn respond(&mut self, _response: Response) -> Result<(), Failure> {
        Ok(())
    }

    async fn start_response(
        &mut self,
        _response: &Response,
        _length: Option<u64>,
    ) -> Result<(), Failure> {
        Ok(())
    }

    async fn response_data(&mut self, _data: Bytes) -> Result<(), Failure> {
        Ok(())
    }

    async fn end_response(&mut self, _trailers: Option<&Headers>) -> Result<(), Failure> {
        Ok(())
    }

    async fn switch_protocols(&mut self, _response: &Response) -> Result<(), Failure> {
        Err(Failure::new(
            ErrorKind::Proxy,
            "a replayed request cannot switch protocols",
        ))
    }
}
