//! Per-detector counters for `make profile-detectors` (cargo feature `profile`, off by default,
//! native only): how often each detector's pattern ran, how long it took and how many hits it
//! gave. The counters are process-wide; the numbers are for reading, never for a test.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use super::{Detectors, MAX_DETECTORS};

static RUNS: [AtomicU64; MAX_DETECTORS] = [const { AtomicU64::new(0) }; MAX_DETECTORS];
static NANOS: [AtomicU64; MAX_DETECTORS] = [const { AtomicU64::new(0) }; MAX_DETECTORS];
static HITS: [AtomicU64; MAX_DETECTORS] = [const { AtomicU64::new(0) }; MAX_DETECTORS];

pub(crate) fn start() -> Instant {
    Instant::now()
}

pub(crate) fn record(index: usize, started: Instant, hits: usize) {
    RUNS[index].fetch_add(1, Relaxed);
    NANOS[index].fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
    HITS[index].fetch_add(hits as u64, Relaxed);
}

/// One row per detector that ran: id, runs, nanoseconds, hits; the costliest first.
pub(crate) fn report(detectors: &Detectors) -> Vec<(String, u64, u64, u64)> {
    let mut rows: Vec<_> = detectors
        .list
        .iter()
        .enumerate()
        .map(|(i, d)| {
            (
                d.id.to_string(),
                RUNS[i].load(Relaxed),
                NANOS[i].load(Relaxed),
                HITS[i].load(Relaxed),
            )
        })
        .filter(|r| r.1 > 0)
        .collect();
    rows.sort_by(|a, b| b.2.cmp(&a.2));
    rows
}

pub(crate) fn reset() {
    for a in RUNS.iter().chain(&NANOS).chain(&HITS) {
        a.store(0, Relaxed);
    }
}
