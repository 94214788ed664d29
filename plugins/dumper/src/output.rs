//! Lines to stdout from a thread of their own, so that a slow terminal or pipe never holds up
//! the proxy's workers: events queue their text, the writer thread writes it in batches.
//!
//! The queue is bounded. When stdout cannot keep up and the queue is full, flows are not
//! shown (the proxy does not wait for the terminal): they are counted, and the writer says
//! how many it skipped once it catches up, and at the end.

use std::{
    io::Write,
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc::{self, Receiver, SyncSender, TrySendError},
        Arc, Mutex,
    },
    thread::JoinHandle,
};

/// Texts waiting for the writer, at most.
const QUEUE: usize = 16 * 1024;

enum Message {
    Text(String),
    /// Write everything queued, then acknowledge.
    Flush(mpsc::Sender<()>),
}

/// The writer thread and its queue.
pub struct Output {
    queue: SyncSender<Message>,
    skipped: Arc<AtomicU64>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Output {
    /// Starts the writer thread over `sink`.
    pub fn start(sink: Box<dyn Write + Send>) -> Output {
        let (queue, receiver) = mpsc::sync_channel(QUEUE);
        let skipped = Arc::new(AtomicU64::new(0));
        let thread = std::thread::Builder::new()
            .name("interpose-dumper".into())
            .spawn({
                let skipped = Arc::clone(&skipped);
                move || write_loop(receiver, sink, &skipped)
            })
            .ok();
        Output {
            queue,
            skipped,
            thread: Mutex::new(thread),
        }
    }

    /// Queues `text`; counts it as skipped when the queue is full.
    pub fn send(&self, text: String) {
        match self.queue.try_send(Message::Text(text)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.skipped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Waits until everything queued so far is written.
    pub fn flush(&self) {
        let (ack, done) = mpsc::channel();
        if self.queue.send(Message::Flush(ack)).is_ok() {
            let _ = done.recv();
        }
    }

    /// Flows not shown because stdout was too slow.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.flush();
        if let Ok(mut thread) = self.thread.lock() {
            drop(thread.take());
        }
    }
}

/// Writes queued texts, a batch per wake-up, and reports skipped flows when it catches up.
fn write_loop(receiver: Receiver<Message>, mut sink: Box<dyn Write + Send>, skipped: &AtomicU64) {
    let mut reported = 0;
    let mut batch = String::new();
    while let Ok(first) = receiver.recv() {
        let mut acks = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Text(text) => batch.push_str(&text),
                Message::Flush(ack) => acks.push(ack),
            }
            if batch.len() > 256 * 1024 {
                break;
            }
            next = receiver.try_recv().ok();
        }
        let now = skipped.load(Ordering::Relaxed);
        if now > reported {
            batch.push_str(&format!(
                "({} flows not shown: the output was slower than the traffic)\n",
                now - reported
            ));
            reported = now;
        }
        // A closed stdout (a pipe whose reader left) is not the proxy's problem.
        let _ = sink.write_all(batch.as_bytes());
        let _ = sink.flush();
        batch.clear();
        for ack in acks {
            let _ = ack.send(());
        }
    }
}
