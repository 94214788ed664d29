//! The memory budget for buffered bodies: one counter across all flows, so that many large
//! bodies at once are streamed instead of exhausting memory.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bodies up to this size are not counted: a single one cannot hurt, and counting every small
/// body would put an atomic on every flow's path.
pub const UNCOUNTED: u64 = 64 * 1024;

/// Bytes of buffered bodies, and the most there may be.
#[derive(Debug)]
pub struct BodyBudget {
    used: AtomicU64,
    limit: u64,
}

impl BodyBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        BodyBudget {
            used: AtomicU64::new(0),
            limit,
        }
    }

    /// Takes `bytes` from the budget, unless that would go over it.
    pub fn try_reserve(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_limit_and_come_back() {
        let budget = BodyBudget::new(100);
        assert!(budget.try_reserve(60));
        assert!(!budget.try_reserve(41));
        assert!(budget.try_reserve(40));
        assert_eq!(budget.used(), 100);
        budget.release(60);
        assert!(budget.try_reserve(50));
        assert!(!budget.try_reserve(u64::MAX));
        assert_eq!(budget.used(), 90);
    }
}
