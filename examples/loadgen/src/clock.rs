//! The generator's time base: nanoseconds since the process started.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static START: OnceLock<Instant> = OnceLock::new();

/// Fixes the start of the run; call first thing in `main`.
pub(crate) fn init() {
    START.get_or_init(Instant::now);
}

/// The run's start.
pub(crate) fn start() -> Instant {
    *START.get_or_init(Instant::now)
}

/// Nanoseconds since the run's start.
pub(crate) fn now_ns() -> u64 {
    start().elapsed().as_nanos() as u64
}

/// The instant `ns` nanoseconds after the run's start.
pub(crate) fn at_ns(ns: u64) -> Instant {
    start() + Duration::from_nanos(ns)
}

/// Seconds between two readings of [`now_ns`].
pub(crate) fn secs_between(from_ns: u64, to_ns: u64) -> f64 {
    to_ns.saturating_sub(from_ns) as f64 / 1e9
}
