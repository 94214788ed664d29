//! Unique ids for flows and connections, formatted like mitmproxy's uuid4 strings.
//!
//! An id is a process-wide counter mixed with a random per-process key through a bijective
//! mixer: unique within a run, unpredictable across runs, and free of locks and syscalls.

use std::{
    collections::hash_map::RandomState,
    hash::{BuildHasher, Hasher},
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use interpose_plugin_abi::Uuid;

/// Hands out version-4-shaped UUIDs.
#[derive(Debug)]
pub struct IdGenerator {
    key: [u64; 2],
    counter: AtomicU64,
}

impl IdGenerator {
    /// A generator with a fresh random key.
    pub fn new() -> Self {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        hasher.write_u32(std::process::id());
        let a = hasher.finish();
        hasher.write_u64(a);
        IdGenerator {
            key: [a, hasher.finish()],
            counter: AtomicU64::new(0),
        }
    }

    /// The next id.
    pub fn next_id(&self) -> Uuid {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let hi = mix(n ^ self.key[0]);
        let lo = mix(n.wrapping_add(self.key[1]) ^ hi);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&hi.to_be_bytes());
        bytes[8..].copy_from_slice(&lo.to_be_bytes());
        bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
        bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
        Uuid(bytes)
    }
}

impl Default for IdGenerator {
    fn default() -> Self {
        IdGenerator::new()
    }
}

/// splitmix64's finalizer: a bijection on u64, so distinct counters give distinct `hi`.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_uuid4s() {
        let ids = IdGenerator::new();
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let id = ids.next_id();
            let text = id.to_string();
            assert_eq!(text.len(), 36);
            assert_eq!(&text[14..15], "4");
            assert!(matches!(&text[19..20], "8" | "9" | "a" | "b"));
            assert!(seen.insert(id));
        }
    }
}
