//! The memory budget for buffered bodies: one counter across all flows, so that many large
//! bodies at once are streamed instead of exhausting memory.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Bodies up to this size are not counted: a single one cannot hurt, and counting every small
/// body would put an atomic on every flow's path.
pub const UNCOUNTED: u64 = 64 * 1024;

/// Bytes of buffered bodies. The most there may be (`body_buffer_budget`) comes with each
/// reservation, from the reserving flow's options: it can change while the proxy runs.
#[derive(Debug, Default)]
pub struct BodyBudget {
    used: AtomicU64,
    /// Set when bodies were buffered since memory was last handed back.
    busy_since_trim: AtomicBool,
}

impl BodyBudget {
    /// Takes `bytes` from the budget, unless that would go over `limit` bytes in all.
    pub fn try_reserve(&self, bytes: u64, limit: u64) -> bool {
        let reserved = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= limit)
            })
            .is_ok();
        if reserved {
            self.note_large_body();
        }
        reserved
    }

    /// Notes a large body: buffered ones do when they reserve; streamed ones reserve nothing,
    /// but their buffers come and go too.
    pub fn note_large_body(&self) {
        if !self.busy_since_trim.load(Ordering::Relaxed) {
            self.busy_since_trim.store(true, Ordering::Relaxed);
        }
    }

    /// Whether large bodies came and went since the last call: the moment to hand freed
    /// memory back to the operating system.
    pub fn settled_after_use(&self) -> bool {
        self.used() == 0 && self.busy_since_trim.swap(false, Ordering::AcqRel)
    }

    /// Gives `bytes` back.
    pub fn release(&self, bytes: u64) {
        if bytes > 0 {
            self.used.fetch_sub(bytes, Ordering::AcqRel);
        }
    }

    /// Bytes in use.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

/// Hands memory freed by the allocator back to the operating system (glibc keeps freed
/// arenas otherwise: after a burst of large bodies the process would stay at its peak).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only walks glibc's own heap structures under their locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_limit_and_come_back() {
        let budget = BodyBudget::default();
        assert!(budget.try_reserve(60, 100));
        assert!(!budget.try_reserve(41, 100));
        assert!(budget.try_reserve(40, 100));
        assert_eq!(budget.used(), 100);
        budget.release(60);
        assert!(budget.try_reserve(50, 100));
        assert!(!budget.try_reserve(u64::MAX, 100));
        assert_eq!(budget.used(), 90);
        assert!(
            !budget.try_reserve(1, 80),
            "a lowered limit holds from the next reservation"
        );
        assert!(!budget.settled_after_use(), "bodies still held");
        budget.release(90);
        assert!(budget.settled_after_use());
        assert!(!budget.settled_after_use(), "once per spike");
    }
}
