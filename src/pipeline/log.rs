//! What a query leaves behind: the counters of its answer and, sampled,
//! one `log.queries` line (never per query above debug otherwise).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::*;

/// What the query log reports about a query beyond its question.
#[derive(Debug, Default)]
pub(super) struct Trace {
    pub(super) synthesized: AtomicBool,
    pub(super) upstream: Mutex<Option<SocketAddr>>,
}

impl Trace {
    fn synthesized(&self) -> bool {
        self.synthesized.load(Ordering::Relaxed)
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
        if trace.synthesized() {
            self.metrics.synthesized();
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
