//! Counting live connections so that shutdown can wait for them to finish.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use tokio::sync::Notify;

#[derive(Default)]
struct Inner {
    active: AtomicUsize,
    idle: Notify,
}

/// Counts live tasks of one kind (client connections, server connections).
#[derive(Clone, Default)]
pub struct Tracker {
    inner: Arc<Inner>,
}

/// Held by a live task; dropping it ends the task's count.
pub struct TrackerGuard {
    inner: Arc<Inner>,
}

impl Tracker {
    /// Counts one more live task until the guard is dropped.
    pub fn enter(&self) -> TrackerGuard {
        self.inner.active.fetch_add(1, Ordering::AcqRel);
        TrackerGuard {
            inner: Arc::clone(&self.inner),
        }
    }

    /// How many tasks are live.
    pub fn active(&self) -> usize {
        self.inner.active.load(Ordering::Acquire)
    }

    /// Waits until no task is live.
    pub async fn wait_idle(&self) {
        loop {
            // Created before the check, so a guard dropped in between still wakes us.
            let idle = self.inner.idle.notified();
            if self.active() == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for TrackerGuard {
    fn drop(&mut self) {
        if self.inner.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn waits_for_the_last_guard() {
        let tracker = Tracker::default();
        tracker.wait_idle().await;
        let guard = tracker.enter();
        let second = tracker.enter();
        assert_eq!(tracker.active(), 2);
        drop(second);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(guard);
        });
        tokio::time::timeout(Duration::from_secs(5), tracker.wait_idle())
            .await
            .expect("became idle");
        assert_eq!(tracker.active(), 0);
    }
}
