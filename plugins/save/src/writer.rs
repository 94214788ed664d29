//! The flow file writer: records queue up from the proxy's workers and a thread of its own
//! appends them to the file in batches, so that the disk never sits on the hot path.
//!
//! - **Bounded.** The queue holds at most [`QUEUE_BYTES`]. When the disk cannot keep up,
//!   workers wait for room (the traffic slows to the disk's pace; nothing is dropped) and the
//!   waits are counted, so the addon can say so.
//! - **Whole records.** A batch is written with one `write_all`; if it fails (disk full, file
//!   removed...), the file is cut back to the end of the last complete record, so that the
//!   file stays readable, and the batch's flows are counted as not saved. Later batches are
//!   tried again: when space comes back, saving resumes.
//! - **Closed cleanly.** [`Writer::close`] writes what is queued, syncs and closes the file.

use std::{
    collections::VecDeque,
    fs::{File, OpenOptions},
    io::{Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex},
    thread::JoinHandle,
    time::Duration,
};

/// Bytes of encoded flows waiting for the disk, at most.
pub const QUEUE_BYTES: usize = 64 * 1024 * 1024;

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
    records: VecDeque<Vec<u8>>,
    bytes: usize,
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
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    /// Opens `spec` (a path; `+path` appends) and starts the writer thread.
    pub fn open(spec: &str) -> std::io::Result<Writer> {
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
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one encoded flow, waiting while the queue is full.
    pub fn push(&self, record: Vec<u8>) {
        let mut queue = lock(&self.shared.queue);
        if queue.bytes >= QUEUE_BYTES && !queue.closing {
            queue.counters.waits += 1;
            while queue.bytes >= QUEUE_BYTES && !queue.closing {
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
        queue.bytes += record.len();
        queue.records.push_back(record);
        drop(queue);
        self.shared.not_empty.notify_one();
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
    let mut batch = Vec::new();
    loop {
        let (records, closing) = {
            let mut queue = lock(&shared.queue);
            while queue.records.is_empty() && !queue.closing {
                queue = shared
                    .not_empty
                    .wait_timeout(queue, Duration::from_secs(1))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            let records = std::mem::take(&mut queue.records);
            queue.bytes = 0;
            (records, queue.closing)
        };
        shared.not_full.notify_all();
        if !records.is_empty() {
            batch.clear();
            for record in &records {
                batch.extend_from_slice(record);
            }
            let result = file.write_all(&batch).and_then(|()| file.flush());
            let mut queue = lock(&shared.queue);
            match result {
                Ok(()) => {
                    good_end += batch.len() as u64;
                    queue.counters.saved += records.len() as u64;
                }
                Err(e) => {
                    // Keep the file readable: drop the partial batch.
                    let _ = file.set_len(good_end);
                    let _ = file.seek(SeekFrom::Start(good_end));
                    queue.counters.lost += records.len() as u64;
                    let lost = queue.counters.unreported.take().map_or(0, |(_, n)| n);
                    queue.counters.unreported = Some((e.to_string(), lost + records.len() as u64));
                }
            }
            drop(queue);
            // Hand the big buffer back to the allocator after a spike.
            if batch.capacity() > 4 * 1024 * 1024 {
                batch = Vec::new();
            }
        }
        if closing && lock(&shared.queue).records.is_empty() {
            break;
        }
    }
    let _ = file.sync_all();
}
