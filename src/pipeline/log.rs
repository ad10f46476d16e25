//! What a query leaves behind: the counters of its answer and, sampled,
//! one `log.queries` line (never per query above debug otherwise).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::cache::Tally;

use super::*;

/// What the query log reports about a query beyond its question.
#[derive(Debug, Default)]
pub(super) struct Trace {
    pub(super) synthesized: AtomicBool,
    /// The upstream's AAAA response held AAAA synthesized by a DNS64 in
    /// front of us (not native, `dns64d_upstream_synthesized_total`).
    pub(super) upstream_synthesized: AtomicBool,
    /// A records the filter removed from this answer.
    a_stripped: AtomicU32,
    pub(super) upstream: Mutex<Option<SocketAddr>>,
}

impl Trace {
    /// The trace of an answer served from the cache: it counts as the
    /// resolution it repeats.
    pub(super) fn of(tally: Tally) -> Trace {
        let t = Trace::default();
        t.set(tally);
        t
    }

    fn synthesized(&self) -> bool {
        self.synthesized.load(Ordering::Relaxed)
    }

    /// Notes `n` A records removed from the answer.
    pub(super) fn stripped(&self, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.a_stripped.fetch_add(n, Ordering::Relaxed);
    }

    /// What the answer counts for, to keep with it in the cache.
    pub(super) fn tally(&self) -> Tally {
        Tally {
            synthesized: self.synthesized(),
            a_stripped: u16::try_from(self.a_stripped.load(Ordering::Relaxed)).unwrap_or(u16::MAX),
        }
    }

    /// Replaces the figures with those of a cached answer.
    pub(super) fn set(&self, tally: Tally) {
        self.synthesized.store(tally.synthesized, Ordering::Relaxed);
        self.a_stripped
            .store(u32::from(tally.a_stripped), Ordering::Relaxed);
    }

    fn upstream(&self) -> Option<SocketAddr> {
        *self.upstream.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `log.queries` with `log.query_sample`: log one query in N.
#[derive(Debug)]
pub(super) struct QueryLog {
    pub(super) every: u64,
    pub(super) seen: AtomicU64,
}

impl QueryLog {
    fn sampled(&self) -> bool {
        self.every != 0
            && self
                .seen
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(self.every)
    }
}

impl Pipeline {
    /// Counts the answer and writes the sampled query log line.
    pub(super) fn done(&self, f: &Front<'_>, out: &[u8], took: std::time::Duration, trace: &Trace) {
        let rcode = reply_rcode(out);
        self.metrics.response(rcode, took);
        self.metrics.answered(trace.tally());
        if trace.upstream_synthesized.load(Ordering::Relaxed) {
            self.metrics.upstream_synthesized();
        }
        if self.query_log.sampled() {
            tracing::info!(
                client = %f.client_ip,
                name = %qname(&f.query).map_or_else(|| "?".into(), |n| n.to_ascii()),
                qtype = f.query.qtype,
                rcode,
                synthesized = trace.synthesized(),
                upstream = ?trace.upstream(),
                latency_us = took.as_micros() as u64,
                "query"
            );
        }
    }
}
