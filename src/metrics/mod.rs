//! Metrics: relaxed atomic counters the data path bumps, and the Prometheus
//! text rendering the control server serves.
//!
//! Every label comes from a closed set (transport, family, a fixed list of
//! query types, RCODEs, drop reasons, configured upstream servers and forwarding zones): never a
//! query name or a client address, so cardinality is fixed. Counting is one
//! relaxed `fetch_add` on an array slot: no locks, no maps on the hot path.
//! Metric names are constants here and listed in the README.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::wire::rtype;

mod render;

/// Metric names (SPEC §9, issue "Operations").
pub mod names {
    pub const REQUESTS: &str = "dns64d_requests_total";
    pub const RESPONSES: &str = "dns64d_responses_total";
    pub const REQUEST_DURATION: &str = "dns64d_request_duration_seconds";
    pub const SYNTHESIZED: &str = "dns64d_synthesized_total";
    pub const A_STRIPPED: &str = "dns64d_a_records_stripped_total";
    pub const UPSTREAM_SYNTHESIZED: &str = "dns64d_upstream_synthesized_total";
    pub const UPSTREAM_REQUESTS: &str = "dns64d_upstream_requests_total";
    pub const UPSTREAM_DURATION: &str = "dns64d_upstream_duration_seconds";
    pub const UPSTREAM_MISMATCHED: &str = "dns64d_upstream_mismatched_total";
    pub const UPSTREAM_TLS_CONNECTIONS: &str = "dns64d_upstream_tls_connections_total";
    pub const DROPPED: &str = "dns64d_dropped_total";
    pub const REFUSED: &str = "dns64d_refused_total";
    pub const INFLIGHT: &str = "dns64d_inflight_queries";
    pub const TCP_CONNECTIONS: &str = "dns64d_tcp_connections";
    pub const RELOADS: &str = "dns64d_config_reloads_total";
    pub const BUILD_INFO: &str = "dns64d_build_info";
    pub const CACHE_HITS: &str = "dns64d_cache_hits_total";
    pub const CACHE_MISSES: &str = "dns64d_cache_misses_total";
    pub const CACHE_STALE: &str = "dns64d_cache_stale_served_total";
    pub const PREFETCH: &str = "dns64d_prefetch_total";
    pub const CACHE_ENTRIES: &str = "dns64d_cache_entries";
    pub const NAT64_PREFIX_INFO: &str = "dns64d_nat64_prefix_info";
}

/// Where the NAT64 prefixes in use came from (`source` label of
/// `dns64d_nat64_prefix_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixSource {
    /// `dns64.prefixes`, no discovery.
    Configured,
    /// Learned by RFC 7050 discovery.
    Discovered,
    /// Discovery configured but nothing learned: the other entries of
    /// `dns64.prefixes`.
    Fallback,
}

impl PrefixSource {
    fn label(self) -> &'static str {
        match self {
            PrefixSource::Configured => "configured",
            PrefixSource::Discovered => "discovered",
            PrefixSource::Fallback => "fallback",
        }
    }
}

/// Query types with their own label; everything else is `other`.
const QTYPES: [(u16, &str); 13] = [
    (rtype::A, "A"),
    (rtype::AAAA, "AAAA"),
    (rtype::PTR, "PTR"),
    (rtype::CNAME, "CNAME"),
    (rtype::MX, "MX"),
    (rtype::NS, "NS"),
    (rtype::SOA, "SOA"),
    (16, "TXT"),
    (33, "SRV"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (rtype::ANY, "ANY"),
    (0, "other"),
];

/// RCODE labels (RFC 1035 §4.1.1, RFC 6891 BADVERS); the last is `other`.
/// The `proto` label of `dns64d_requests_total`: the transport a query
/// came in on. Metrics own their label sets (STYLE §10), so the counters
/// depend on no stage of the data path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
}

const RCODES: [&str; 8] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "other",
];

/// Why a packet got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Shorter than a DNS header.
    TooShort,
    /// QR=1: answering responses invites loops.
    Response,
    /// `server.max_inflight` reached.
    Overloaded,
    /// `server.max_tcp_connections` reached.
    TcpLimit,
    /// Over `server.rate_limit`.
    RateLimited,
    /// The kernel refused to send the answer (no buffer room after retries,
    /// unreachable destination).
    SendFailed,
}

const DROPS: [&str; 6] = [
    "too_short",
    "response",
    "overloaded",
    "tcp_connection_limit",
    "rate_limited",
    "send_failed",
];

/// Outcome of one upstream exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamResult {
    /// A reply that settles the question (any RCODE but SERVFAIL/REFUSED).
    Ok,
    /// SERVFAIL or REFUSED.
    ErrorRcode,
    /// No acceptable reply in time.
    Timeout,
    /// Socket error.
    Io,
}

const UPSTREAM_RESULTS: [&str; 4] = ["ok", "error_rcode", "timeout", "io_error"];

/// Upper bounds of the latency histograms, in seconds.
const BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Upper bounds of [`BUCKETS`] in nanoseconds: an integer compare per bucket.
const BUCKETS_NS: [u64; 13] = [
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
];

/// A fixed-bucket latency histogram: two relaxed adds per observation (the
/// bucket, with a last one for "above every bound", and the sum); the count
/// is the buckets' total, computed at scrape time.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    #[inline]
    pub fn observe(&self, d: Duration) {
        let ns = d.as_nanos().min(u128::from(u64::MAX)) as u64;
        let i = BUCKETS_NS.partition_point(|&b| b < ns);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(ns / 1000, Ordering::Relaxed);
    }
}

/// Counters of one upstream server; the upstream pool holds an `Arc` so it
/// never looks anything up per query.
#[derive(Debug, Default)]
pub struct ServerStats {
    results: [AtomicU64; UPSTREAM_RESULTS.len()],
    mismatched: AtomicU64,
    duration: Histogram,
    /// DNS-over-TLS server: connections opened, and attempts that failed
    /// (TCP connect or handshake, certificate checks included).
    tls: AtomicBool,
    tls_opened: AtomicU64,
    tls_failed: AtomicU64,
}

impl ServerStats {
    /// Records one exchange.
    pub fn exchange(&self, result: UpstreamResult, d: Duration) {
        self.results[result as usize].fetch_add(1, Ordering::Relaxed);
        self.duration.observe(d);
    }

    /// Records a reply dropped for a wrong ID or question.
    pub fn mismatched(&self) {
        self.mismatched.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks the server as reached over TLS (its connection counters are exported).
    pub fn set_tls(&self) {
        self.tls.store(true, Ordering::Relaxed);
    }

    /// Records a TLS connection opened (`ok`) or failed to open.
    pub fn tls_connection(&self, ok: bool) {
        let c = if ok {
            &self.tls_opened
        } else {
            &self.tls_failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every counter. One instance lives for the whole process (reloads keep it).
#[derive(Debug, Default)]
pub struct Metrics {
    /// [transport][family][qtype]
    requests: [[[AtomicU64; QTYPES.len()]; 2]; 2],
    responses: [AtomicU64; RCODES.len()],
    request_duration: Histogram,
    synthesized: AtomicU64,
    a_stripped: AtomicU64,
    upstream_synthesized: AtomicU64,
    dropped: [AtomicU64; DROPS.len()],
    refused: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    /// Per forwarding zone (`.` for `upstream.servers`) and server: the
    /// same address in two zones is two groups with separate health.
    servers: Mutex<Vec<(String, SocketAddr, Arc<ServerStats>)>>,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    cache_stale: AtomicU64,
    prefetch: AtomicU64,
    /// Gauges read at scrape time.
    gauges: Gauges,
    /// The global NAT64 prefixes in use (a handful, set per config or
    /// discovery: control path) and their source.
    nat64_prefixes: Mutex<(Vec<String>, Option<PrefixSource>)>,
}

/// A gauge: a function read at scrape time.
pub type GaugeFn = Arc<dyn Fn() -> u64 + Send + Sync>;

#[derive(Default)]
struct Gauges(Mutex<Vec<(&'static str, GaugeFn)>>);

impl std::fmt::Debug for Gauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gauges")
    }
}

impl Metrics {
    /// Counts a query as it arrives.
    #[inline]
    pub fn request(&self, proto: Proto, client: IpAddr, qtype: u16) {
        let t = usize::from(proto == Proto::Tcp);
        let f = usize::from(client.is_ipv6() && client.to_canonical().is_ipv6());
        let q = QTYPES
            .iter()
            .position(|&(c, _)| c == qtype)
            .unwrap_or(QTYPES.len() - 1);
        self.requests[t][f][q].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an answer sent, by RCODE, with the time it took.
    #[inline]
    pub fn response(&self, rcode: u16, took: Duration) {
        let i = match rcode {
            0..=5 => rcode as usize,
            16 => 6,
            _ => 7,
        };
        self.responses[i].fetch_add(1, Ordering::Relaxed);
        self.request_duration.observe(took);
    }

    /// Counts what an answer sent to a client carries (synthesized AAAA,
    /// A records removed), whether resolved or served from the cache: the
    /// figures are per answer, as CoreDNS's dns64 plugin counts them.
    #[inline]
    pub fn answered(&self, tally: crate::cache::Tally) {
        if tally.synthesized {
            self.synthesized.fetch_add(1, Ordering::Relaxed);
        }
        if tally.a_stripped > 0 {
            self.a_stripped
                .fetch_add(u64::from(tally.a_stripped), Ordering::Relaxed);
        }
    }

    /// An upstream AAAA response that held AAAA records already synthesized
    /// (inside a NAT64 prefix), which dns64d took as not native.
    #[inline]
    pub fn upstream_synthesized(&self) {
        self.upstream_synthesized.fetch_add(1, Ordering::Relaxed);
    }

    /// A packet that gets no answer.
    #[inline]
    pub fn dropped(&self, why: DropReason) {
        self.dropped[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A client outside `server.allow`.
    #[inline]
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Cache outcome of one lookup.
    #[inline]
    pub fn cache(&self, hit: bool, stale: bool) {
        let c = match (hit, stale) {
            (true, false) => &self.cache_hits,
            (true, true) => &self.cache_stale,
            (false, _) => &self.cache_misses,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A background refresh of a popular entry near expiry started.
    pub fn prefetch(&self) {
        self.prefetch.fetch_add(1, Ordering::Relaxed);
    }

    /// A config reload, successful or not.
    pub fn reload(&self, ok: bool) {
        let c = if ok {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The stats slot of an upstream server of forwarding zone `zone`
    /// (`.` for the default group; control path: once per config).
    pub fn server(&self, zone: &str, addr: SocketAddr) -> Arc<ServerStats> {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, s)) = servers.iter().find(|(z, a, _)| *a == addr && z == zone) {
            return s.clone();
        }
        let s = Arc::new(ServerStats::default());
        servers.push((zone.to_owned(), addr, s.clone()));
        s
    }

    /// Registers a gauge computed at scrape time (in-flight queries, cache size...).
    pub fn gauge(&self, name: &'static str, read: GaugeFn) {
        let mut gauges = self.gauges.0.lock().unwrap_or_else(|e| e.into_inner());
        gauges.retain(|(n, _)| *n != name);
        gauges.push((name, read));
    }

    /// Records the global NAT64 prefixes now in use and their source.
    pub fn set_nat64_prefixes(&self, prefixes: Vec<String>, source: PrefixSource) {
        *self
            .nat64_prefixes
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = (prefixes, Some(source));
    }
}

#[cfg(test)]
mod tests;
