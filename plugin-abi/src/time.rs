//! Timestamps as mitmproxy keeps them: seconds since the Unix epoch, as `f64`.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time in seconds since the Unix epoch (the unit of every `timestamp_*` field).
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
