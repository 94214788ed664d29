//! The flow file writer: records queue up from the proxy's workers and a thread of its own
//! appends them to the file in batches, so that the disk never sits on the hot path.
//!
//! - **Bounded.** The queue holds at most [`QUEUE_BYTES`]. When the disk cannot keep up,
//!   workers wait for room (the traffic slows to the disk's pace; nothing is dropped) and the
//!   waits are counted, so the addon can say so.
//! - **Batched.** Records are copied back to back into one buffer; the writer wakes every
//!   10 ms, or when a megabyte is queued, swaps the buffer for its spare and writes it: no
//!   allocation, context switch or system call per flow.
//! - **Whole records.** A batch is written in order; if a write fails (disk full, file
//!   removed...), the file is cut back to the end of the last complete record, so that the
//!   file stays readable, and the batch's flows are counted as not saved. Later batches are
//!   tried again: when space comes back, saving resumes.
//! - **Closed cleanly.** [`Writer::close`] writes what is queued, syncs and closes the file.

use std::{
    fs::{File, OpenOptions},
    io::{Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex},
    thread::JoinHandle,
    time::Duration,
};

/// Bytes of encoded flows waiting for the disk, at most.
pub const QUEUE_BYTES: usize = 32 * 1024 * 1024;

/// Queued bytes that wake the writer before its next round.
const BATCH_BYTES: usize = 1024 * 1024;

/// How long the writer waits between rounds: the most a finished flow waits for the disk
/// (and what `kill -9` can cost).
const FLUSH_INTERVAL: Duration = Duration::from_millis(10);

/// What the writer has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Flows written to the file.
    pub saved: u64,
    /// Flows that could not be written (a write error).
    pub lost: u64,
    /// Times a worker waited because the queue was full.
    pub waits: u64,
    /// The newest write error not yet reported, with the number of flows it cost.
    pub unreported: Option<(String, u64)>,
}

#[derive(Default)]
struct Queue {
    /// Encoded records waiting, back to back.
    buffer: Vec<u8>,
    /// How many records `buffer` holds.
    records: u64,
    closing: bool,
    counters: Counters,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when records arrive or closing starts.
    not_empty: Condvar,
    /// Signalled when the writer took records out.
    not_full: Condvar,
}

/// A flow file open for writing, and its writer thread.
pub struct Writer {
    path: PathBuf,
    /// Queued bytes at which `push` waits.
    limit: usize,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    /// Opens `spec` (a path; `+path` appends) and starts the writer thread, with a queue of
    /// [`QUEUE_BYTES`].
    pub fn open(spec: &str) -> std::io::Result<Writer> {
        Writer::with_queue_limit(spec, QUEUE_BYTES)
    }

    /// As [`Writer::open`], with a queue of at most `limit` bytes.
    pub fn with_queue_limit(spec: &str, limit: usize) -> std::io::Result<Writer> {
        let (path, append) = match spec.strip_prefix('+') {
            Some(path) => (path, true),
            None => (spec, false),
        };
        let path = PathBuf::from(path);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut options = OpenOptions::new();
        options.create(true);
        if append {
            options.append(true);
        } else {
            options.write(true).truncate(true);
        }
        let file = options.open(&path)?;
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("interpose-save".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || write_loop(file, &shared)
            })?;
        Ok(Writer {
            path,
            limit,
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one encoded flow (copied into the queue's buffer), waiting while the queue is
    /// full.
    pub fn push(&self, record: &[u8]) {
        let mut queue = lock(&self.shared.queue);
        if queue.buffer.len() >= self.limit && !queue.closing {
            queue.counters.waits += 1;
            while queue.buffer.len() >= self.limit && !queue.closing {
                queue = self
                    .shared
                    .not_full
                    .wait(queue)
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
        if queue.closing {
            queue.counters.lost += 1;
            return;
        }
        let before = queue.buffer.len();
        queue.buffer.extend_from_slice(record);
        queue.records += 1;
        // The writer wakes on its own every `FLUSH_INTERVAL`; waking it for every record
        // would cost a context switch per flow. Only a batch's worth of bytes wakes it early.
        let batch_ready = before < BATCH_BYTES && queue.buffer.len() >= BATCH_BYTES;
        drop(queue);
        if batch_ready {
            self.shared.not_empty.notify_one();
        }
    }

    /// The counters, taking the unreported error out.
    pub fn take_counters(&self) -> Counters {
        let mut queue = lock(&self.shared.queue);
        let counters = queue.counters.clone();
        queue.counters.unreported = None;
        counters
    }

    /// Writes everything queued, syncs and closes the file; returns the final counters.
    pub fn close(&self) -> Counters {
        lock(&self.shared.queue).closing = true;
        self.shared.not_empty.notify_all();
        self.shared.not_full.notify_all();
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
        self.take_counters()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes batches off the queue and appends them, until closing with an empty queue.
fn write_loop(mut file: File, shared: &Shared) {
    // Where the last complete record ends: what a failed write is cut back to.
    let mut good_end = file.seek(SeekFrom::End(0)).unwrap_or(0);
    // The buffer being written; swapped with the queue's, so both are reused.
    let mut batch = Vec::new();
    loop {
        let (records, closing) = {
            let mut queue = lock(&shared.queue);
            if queue.buffer.len() < BATCH_BYTES && !queue.closing {
                queue = shared
                    .not_empty
                    .wait_timeout(queue, FLUSH_INTERVAL)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            std::mem::swap(&mut batch, &mut queue.buffer);
            (std::mem::take(&mut queue.records), queue.closing)
        };
        if records > 0 {
            shared.not_full.notify_all();
            let result = file.write_all(&batch);
            let mut queue = lock(&shared.queue);
            match result {
                Ok(()) => {
                    good_end += batch.len() as u64;
                    queue.counters.saved += records;
                }
                Err(e) => {
                    // Keep the file readable: drop the partial batch.
                    let _ = file.set_len(good_end);
                    let _ = file.seek(SeekFrom::Start(good_end));
                    queue.counters.lost += records;
                    let lost = queue.counters.unreported.take().map_or(0, |(_, n)| n);
                    queue.counters.unreported = Some((e.to_string(), lost + records));
                }
            }
        }
        batch.clear();
        // Hand a big buffer back to the allocator after a spike.
        if batch.capacity() > 4 * BATCH_BYTES {
            batch = Vec::new();
        }
        if closing && lock(&shared.queue).records == 0 {
            break;
        }
    }
    let _ = file.sync_all();
}
