//! Latency histograms (HdrHistogram, microseconds) and their percentiles.

use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// A latency histogram shared by many tasks (the generator runs on one thread, so the
/// lock is never contended). Receivers do not lock it per frame: they collect samples in
/// a [`Samples`] and add them a batch at a time.
#[derive(Debug)]
pub(crate) struct Latency {
    hist: Mutex<Histogram<u64>>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            // 1 µs to one hour, 3 significant digits.
            hist: Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("bounds")),
        }
    }
}

impl Latency {
    /// Records one latency given in nanoseconds.
    pub(crate) fn record_ns(&self, ns: u64) {
        let us = (ns / 1000).clamp(1, 3_600_000_000);
        if let Ok(mut hist) = self.hist.lock() {
            let _ = hist.record(us);
        }
    }

    /// Records latencies given in microseconds, under one lock.
    pub(crate) fn record_us(&self, samples: &[u32]) {
        if let Ok(mut hist) = self.hist.lock() {
            for &us in samples {
                let _ = hist.record(u64::from(us).clamp(1, 3_600_000_000));
            }
        }
    }

    /// Percentiles in milliseconds, as figures named `{prefix}_p50_ms` and so on.
    pub(crate) fn figures(&self, prefix: &str) -> Vec<(String, Value)> {
        let Ok(hist) = self.hist.lock() else {
            return Vec::new();
        };
        let ms = |us: u64| -> Value {
            if hist.is_empty() {
                Value::Null
            } else {
                json!((us as f64 / 1000.0 * 1000.0).round() / 1000.0)
            }
        };
        vec![
            (format!("{prefix}_p50_ms"), ms(hist.value_at_quantile(0.50))),
            (format!("{prefix}_p90_ms"), ms(hist.value_at_quantile(0.90))),
            (format!("{prefix}_p99_ms"), ms(hist.value_at_quantile(0.99))),
            (
                format!("{prefix}_p999_ms"),
                ms(hist.value_at_quantile(0.999)),
            ),
            (format!("{prefix}_max_ms"), ms(hist.max())),
        ]
    }
}

/// Latencies (µs) one receiver has seen and not yet added to the shared histogram:
/// flushed when full and when the receiver ends, so the histogram's lock is taken once
/// per [`Samples::CAPACITY`] frames instead of once per frame.
///
/// Why not a histogram per receiver: at 1 µs–1 h and 3 significant digits one
/// `Histogram<u64>` is ~190 KB, and a group burst has 10,000 receivers (1.9 GB, and every
/// record a cache miss in a different array). This buffer is 2 KiB, allocated at the
/// first push.
#[derive(Debug, Default)]
pub(crate) struct Samples {
    us: Vec<u32>,
}

impl Samples {
    /// Samples kept before a flush.
    pub(crate) const CAPACITY: usize = 512;

    /// Adds one latency in nanoseconds; flushes into `shared` when full.
    #[inline]
    pub(crate) fn push_ns(&mut self, ns: u64, shared: &Latency) {
        if self.us.len() == self.us.capacity() {
            if self.us.is_empty() {
                self.us.reserve_exact(Self::CAPACITY);
            } else {
                self.flush(shared);
            }
        }
        self.us.push((ns / 1000).min(u64::from(u32::MAX)) as u32);
    }

    /// Adds what is kept to `shared`.
    pub(crate) fn flush(&mut self, shared: &Latency) {
        if !self.us.is_empty() {
            shared.record_us(&self.us);
            self.us.clear();
        }
    }
}

/// A rate per second, rounded to one decimal (`null` for an empty span).
pub(crate) fn rate(count: u64, secs: f64) -> Value {
    if secs > 0.0 {
        json!((count as f64 / secs * 10.0).round() / 10.0)
    } else {
        Value::Null
    }
}

/// Rounds to three decimals.
pub(crate) fn round3(x: f64) -> Value {
    json!((x * 1000.0).round() / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_reach_the_histogram_in_batches() {
        let shared = Latency::default();
        let mut samples = Samples::default();
        for i in 0..(Samples::CAPACITY as u64 * 2 + 10) {
            samples.push_ns(1_000_000 + i, &shared);
        }
        let count = |l: &Latency| l.hist.lock().unwrap().len();
        assert_eq!(count(&shared), Samples::CAPACITY as u64 * 2);
        samples.flush(&shared);
        assert_eq!(count(&shared), Samples::CAPACITY as u64 * 2 + 10);
        let figures = shared.figures("x");
        assert_eq!(figures[0].1, json!(1.0));
    }
}
