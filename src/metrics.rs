//! Counters the data path bumps: relaxed atomics, nothing else on the hot
//! path. The exporter (Prometheus text on `server.metrics`) is the control
//! path's job and reads these.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Every counter the data path keeps. Names match the exported metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Queries received over UDP.
    pub queries_udp: AtomicU64,
    /// Queries received over TCP.
    pub queries_tcp: AtomicU64,
    /// Packets dropped: shorter than a header, or QR=1.
    pub dropped: AtomicU64,
    /// Queries refused by `server.allow`.
    pub refused: AtomicU64,
    /// FORMERR / NOTIMP / BADVERS answers to malformed queries.
    pub malformed: AtomicU64,
    /// Queries shed because `server.max_inflight` was reached.
    pub overloaded: AtomicU64,
    /// TCP connections refused because `server.max_tcp_connections` was reached.
    pub tcp_rejected: AtomicU64,
    /// Answers that carry synthesized AAAA records.
    pub synthesized: AtomicU64,
    /// A records removed by `filter.a`.
    pub a_stripped: AtomicU64,
    /// SERVFAIL answers sent.
    pub servfail: AtomicU64,
    /// Upstream attempts that failed (timeout, I/O, SERVFAIL, REFUSED).
    pub upstream_errors: AtomicU64,
    /// Upstream replies dropped for a wrong ID or question.
    pub upstream_mismatched: AtomicU64,
    /// Upstream exchanges and their total time in microseconds.
    pub upstream_exchanges: AtomicU64,
    pub upstream_micros: AtomicU64,
}

impl Metrics {
    /// Adds one.
    #[inline]
    pub fn count(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Records one upstream exchange.
    pub fn upstream_latency(&self, d: Duration) {
        self.upstream_exchanges.fetch_add(1, Ordering::Relaxed);
        self.upstream_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}
