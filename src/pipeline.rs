//! The path of one query, one call per step:
//! `wire` (parse) → `policy` (who, which rules) → `upstream` (ask) →
//! `dns64` | `filter` (synthesize, strip) → `reply` (echo, EDNS, truncate).
//!
//! Transport-agnostic: `listen` hands in bytes and a source address and
//! sends back whatever comes out.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query as HQuery, ResponseCode};
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::cache::{Cache, Key, Lookup};
use crate::config::Config;
use crate::dns64::{self, AaaaVerdict, Dns64};
use crate::error;
use crate::filter::{self, AFailure};
use crate::metrics::{self, DropReason, Metrics};
use crate::policy::{Policy, Rules, Treatment};
use crate::ratelimit::RateLimiter;
use crate::reply::Client;
use crate::types::{FilterA, Prefix, PtrMode, ZonePolicy};
use crate::upstream::{Reply, Resume, Upstream, UpstreamError};
use crate::wire::{self, Query, WireError, ede, rcode, rtype};

/// Which transport a query came in on: UDP replies are size-limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl From<Transport> for metrics::Proto {
    fn from(t: Transport) -> metrics::Proto {
        match t {
            Transport::Udp => metrics::Proto::Udp,
            Transport::Tcp => metrics::Proto::Tcp,
        }
    }
}

/// Everything a query needs, built once per config.
#[derive(Debug)]
pub struct Pipeline {
    policy: Policy,
    dns64: Dns64,
    upstream: Upstream,
    metrics: Arc<Metrics>,
    udp_payload: u16,
    negative_ttl: u32,
    send_ecs: bool,
    parallel_a: bool,
    /// Every prefix any rule uses: PTR and ipv4only.arpa answer for all.
    all_prefixes: Vec<Prefix>,
    query_log: QueryLog,
    cache: Option<Arc<Cache>>,
    rate_limit: Option<RateLimiter>,
    /// Clock origin for the rate limiter.
    epoch: Instant,
    /// See [`Pipeline::relay_sockets`].
    relay_sockets: usize,
}

/// RFC 1035 class IN; DNS64 applies to nothing else.
const CLASS_IN: u16 = 1;

/// TTL of the CNAME a PTR query inside a prefix gets (RFC 6147 §5.3.1): the
/// mapping is static, a modest TTL lets a prefix change propagate.
pub const PTR_CNAME_TTL: u32 = 600;

/// What the synchronous first stage decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Early {
    /// Send the reply written into the caller's buffer now.
    Reply,
    /// Send nothing.
    Drop,
    /// Plain forwarding, one upstream exchange and a patch: the caller may
    /// relay the packet itself ([`crate::upstream::relay`]) and finish with
    /// [`Pipeline::finish_relayed`], or run [`Pipeline::resolve_query`].
    Relay,
    /// Needs upstream: run [`Pipeline::resolve_query`].
    Resolve,
}

/// A packet the first stage answers or drops by itself.
struct Rejected {
    reply: Option<Vec<u8>>,
    qtype: u16,
    /// `None`: refused by `server.allow`.
    why: Option<WireError>,
}

/// A parsed, classified query.
struct Front<'a> {
    query: Query<'a>,
    client_ip: IpAddr,
    transport: Transport,
    rules: Rules<'a>,
    dns64: bool,
    key: Option<Key>,
}

impl Front<'_> {
    fn client(&self, our_payload: u16) -> Client<'_> {
        Client {
            query: &self.query,
            limit: (self.transport == Transport::Udp).then(|| self.query.udp_limit(our_payload)),
            our_payload,
        }
    }
}

/// One query on its way: the client's view and the bytes sent upstream
/// (the client's, minus an ECS option we must not pass on).
struct Ask<'a> {
    client: Client<'a>,
    bytes: &'a [u8],
    rules: Rules<'a>,
    trace: Trace,
    /// Exchanges already made elsewhere (the relay), by question: the
    /// first [`Pipeline::ask_upstream`] of that question takes its result.
    prefetch: Mutex<Vec<(Vec<u8>, Prefetched)>>,
}

/// The result of an exchange the relay made before handing a query to the
/// general path: the reply, or the attempts still to make.
#[derive(Debug)]
pub enum Prefetched {
    Reply(Reply),
    Resume(Resume),
}

/// Where a query goes once it is known to need upstream (RFC 6147 §5,
/// SPEC §3–§6); decided in one place for the relay and the general path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The upstream's reply, patched for the client.
    Forward,
    /// `ipv4only.arpa.` A or AAAA, answered locally.
    Ipv4only,
    /// PTR (possibly inside a prefix).
    Ptr,
    /// AAAA from a DNS64 client: synthesis.
    Aaaa,
    /// A from a DNS64 client under strip/rewrite.
    FilteredA,
    /// Any other type from a DNS64 client under strip/rewrite.
    Filtered,
}

/// Which exchange of a relayed query a reply answers.
#[derive(Debug, Clone, Copy)]
pub enum Stage<'a> {
    /// The client's own question.
    First,
    /// The A query synthesis needs (RFC 6147 §5.1.6), after this AAAA reply
    /// (NODATA) whose SOA caps the synthesized TTLs at `ttl_cap` (§5.1.7).
    A { aaaa: &'a [u8], ttl_cap: u32 },
}

/// One reply the relay got: `reply`, from `server`, answers `stage` of
/// `query` (the client's bytes, as received).
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    pub query: &'a [u8],
    pub stage: Stage<'a>,
    pub reply: &'a [u8],
    pub server: SocketAddr,
}

/// What a relayed reply led to ([`Pipeline::relayed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The client's answer is written.
    Answered,
    /// Synthesis needs the A records: relay the client's query with QTYPE
    /// A ([`wire::set_qtype`]), as [`Stage::A`].
    AskA { ttl_cap: u32 },
    /// Another shape: the general path ([`Pipeline::resolve_query_with`])
    /// finishes it from the replies so far.
    Slow,
}

/// What the sync part of the AAAA path found in the AAAA reply.
enum AaaaWire {
    /// The answer is written (native AAAA, NXDOMAIN).
    Done,
    /// NODATA: synthesis from the A records, TTLs capped at `ttl_cap`.
    NeedA { ttl_cap: u32 },
    /// A shape the wire path leaves to the decode → encode path.
    Other,
}

/// What the query log reports about a query beyond its question.
#[derive(Debug, Default)]
struct Trace {
    synthesized: AtomicBool,
    upstream: Mutex<Option<SocketAddr>>,
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
struct QueryLog {
    every: u64,
    seen: AtomicU64,
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

impl Ask<'_> {
    fn query(&self) -> &Query<'_> {
        self.client.query
    }
}

impl Pipeline {
    /// Builds the pipeline from a config.
    pub fn new(cfg: &Config, metrics: Arc<Metrics>) -> Pipeline {
        let policy = Policy::new(cfg);
        Pipeline {
            all_prefixes: policy.all_prefixes(),
            policy,
            dns64: Dns64::new(&cfg.dns64),
            upstream: Upstream::new(&cfg.upstream, &metrics),
            cache: cfg.cache.enabled.then(|| {
                let cache = Arc::new(Cache::new(&cfg.cache));
                let gauge = cache.clone();
                metrics.gauge(
                    crate::metrics::names::CACHE_ENTRIES,
                    Arc::new(move || gauge.len() as u64),
                );
                cache
            }),
            rate_limit: (cfg.server.rate_limit > 0)
                .then(|| RateLimiter::new(cfg.server.rate_limit, cfg.server.rate_limit_burst)),
            epoch: Instant::now(),
            relay_sockets: (cfg.upstream.socket_pool / cfg.server.workers.max(1)).clamp(
                usize::from(cfg.upstream.socket_pool > 0),
                crate::upstream::relay::MAX_SOCKETS,
            ),
            query_log: QueryLog {
                every: if cfg.log.queries {
                    u64::from(cfg.log.query_sample)
                } else {
                    0
                },
                seen: AtomicU64::new(0),
            },
            metrics,
            udp_payload: cfg.server.udp_payload,
            negative_ttl: cfg.filter.negative_ttl,
            send_ecs: cfg.upstream.send_ecs,
            parallel_a: cfg.dns64.parallel_a,
        }
    }

    /// The shared counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Serves one packet; `None` means send nothing.
    pub async fn handle(
        &self,
        packet: &[u8],
        src: IpAddr,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        match self.answer_now(packet, src, transport, &mut out) {
            Early::Reply => Some(out),
            Early::Drop => None,
            Early::Relay | Early::Resolve => Some(self.resolve_query(packet, src, transport).await),
        }
    }

    /// The synchronous first stage, run for every packet in the receive loop:
    /// rejections, REFUSED and fresh cache hits are answered here (into
    /// `out`, a buffer the caller reuses) without a task, an allocation or
    /// an await. `Relay` and `Resolve` mean the query needs upstream (the
    /// packet is parsed again there: cheaper than carrying borrowed state
    /// across a task).
    pub fn answer_now(
        &self,
        packet: &[u8],
        src: IpAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Early {
        let started = Instant::now();
        let f = match self.front(packet, src, transport) {
            Ok(f) => f,
            Err(Rejected { reply, qtype, why }) => {
                self.metrics.request(transport.into(), src, qtype);
                if why == Some(WireError::TooShort) {
                    self.metrics.dropped(DropReason::TooShort);
                } else if reply.is_none() {
                    self.metrics.dropped(DropReason::Response);
                } else if why.is_none() {
                    self.metrics.refused();
                }
                return match reply {
                    Some(r) => {
                        self.metrics.response(reply_rcode(&r), started.elapsed());
                        *out = r;
                        Early::Reply
                    }
                    None => Early::Drop,
                };
            }
        };
        self.metrics.request(transport.into(), src, f.query.qtype);
        if let Some(limiter) = &self.rate_limit
            && !limiter.allow(f.client_ip, self.epoch.elapsed().as_millis() as u64)
        {
            self.metrics.dropped(DropReason::RateLimited);
            return Early::Drop;
        }
        let mut missed = false;
        if let (Some(cache), Some(key)) = (&self.cache, &f.key) {
            // One clock read serves the latency and the TTL arithmetic.
            let now = started;
            match cache.get(key, now) {
                Lookup::Fresh(e) => {
                    self.metrics.cache(true, false);
                    e.render_into(now, None, out);
                    f.client(self.udp_payload)
                        .forward_in_place(out, e.opt_class_at());
                    self.done(&f, out, started.elapsed(), &Trace::default());
                    return Early::Reply;
                }
                // Serve-stale needs the task's timer.
                Lookup::Stale(_) => return Early::Resolve,
                Lookup::Miss => missed = true,
            }
        }
        if self.relayable(&f) {
            if missed {
                self.metrics.cache(false, false);
            }
            return Early::Relay;
        }
        Early::Resolve
    }

    /// Where `query` goes, for a client of this DNS64 treatment.
    fn route(&self, dns64: bool, q: &Query<'_>, rules: &Rules<'_>) -> Route {
        let mode = rules.filter_a;
        if !dns64 {
            Route::Forward
        } else if dns64::is_ipv4only(q.qname()) && matches!(q.qtype, rtype::A | rtype::AAAA) {
            Route::Ipv4only
        } else if q.qtype == rtype::PTR && self.policy.ptr() != PtrMode::Off {
            Route::Ptr
        } else {
            match q.qtype {
                rtype::AAAA => Route::Aaaa,
                rtype::A if mode != FilterA::Pass => Route::FilteredA,
                _ if mode == FilterA::Pass => Route::Forward,
                _ => Route::Filtered,
            }
        }
    }

    /// True when the relay can run `f`: its first upstream question is the
    /// client's own bytes (no ECS option to take off, RFC 7871 §7.1.2), and
    /// its route finishes on the wire in the common shapes.
    fn relayable(&self, f: &Front<'_>) -> bool {
        let q = &f.query;
        let route = match self.route(f.dns64, q, &f.rules) {
            Route::Forward | Route::Filtered | Route::FilteredA => true,
            // §5.1.8 parallel A, and §5.5 DO+CD, stay on the general path.
            Route::Aaaa => !(self.parallel_a || q.dnssec_ok() && q.header().cd()),
            Route::Ipv4only | Route::Ptr => false,
        };
        let no_ecs = q.edns.is_none_or(|e| e.ecs.is_none());
        self.relay_sockets > 0 && f.transport == Transport::Udp && route && no_ecs
    }

    /// Upstream sockets per server for one receive loop's relay; 0 when
    /// `upstream.socket_pool = 0` asks for a fresh socket per query.
    pub fn relay_sockets(&self) -> usize {
        self.relay_sockets
    }

    /// Finishes what a relayed exchange (after [`Early::Relay`]) brought,
    /// taken at `now`. The shapes most answers have are answered
    /// into `out` (and cached) without an allocation; anything else is
    /// [`Step::Slow`].
    pub fn relayed(
        &self,
        x: Exchange<'_>,
        src: IpAddr,
        (started, now): (Instant, Instant),
        out: &mut Vec<u8>,
    ) -> Step {
        let Exchange {
            query,
            stage,
            reply,
            server,
        } = x;
        // The same packet the first stage accepted: the same verdict.
        let Ok(f) = self.front(query, src, Transport::Udp) else {
            return Step::Slow;
        };
        let client = f.client(self.udp_payload);
        let ask = Ask {
            client: Client {
                limit: None,
                ..client
            },
            bytes: query,
            rules: f.rules,
            trace: Trace::default(),
            prefetch: Mutex::default(),
        };
        let settled = match (stage, self.route(f.dns64, &f.query, &f.rules)) {
            (Stage::First, Route::Forward) => {
                out.clear();
                out.extend_from_slice(reply);
                true
            }
            (Stage::First, Route::Filtered) => filtered_on_the_wire(reply, out),
            (Stage::First, Route::FilteredA) => self.a_on_the_wire(&ask, reply, out),
            (Stage::First, Route::Aaaa) => match self.aaaa_wire(&ask, reply, out) {
                AaaaWire::Done => true,
                AaaaWire::NeedA { ttl_cap } => return Step::AskA { ttl_cap },
                AaaaWire::Other => false,
            },
            (Stage::A { aaaa, ttl_cap }, Route::Aaaa) => {
                self.synthesize_wire(&ask, aaaa, Some(reply), ttl_cap, out)
            }
            _ => false,
        };
        if !settled {
            return Step::Slow;
        }
        // As `resolve_query` ends: the full answer (client's ID and question
        // case, our payload) is what the cache keeps; the UDP limit after.
        let opt_class_at = wire::opt_class_offset(out);
        ask.client.forward_in_place(out, opt_class_at);
        if let (Some(cache), Some(key)) = (&self.cache, f.key.clone()) {
            cache.insert(key, out, now);
        }
        client.forward_in_place(out, opt_class_at);
        if self.query_log.every != 0 {
            *ask.trace.upstream.lock().unwrap_or_else(|e| e.into_inner()) = Some(server);
        }
        self.done(&f, out, now.saturating_duration_since(started), &ask.trace);
        Step::Answered
    }

    /// The second stage: everything that needs upstream (or a stale entry).
    pub async fn resolve_query(&self, packet: &[u8], src: IpAddr, transport: Transport) -> Vec<u8> {
        self.resolve_query_with(packet, src, transport, Vec::new(), Instant::now())
            .await
    }

    /// [`Pipeline::resolve_query`] for a query the relay started at
    /// `started`: the exchanges it made (`prefetch`, by question) are not
    /// made again, the cache lookup is not counted again, and the latency
    /// includes the relay's time.
    pub async fn resolve_query_with(
        &self,
        packet: &[u8],
        src: IpAddr,
        transport: Transport,
        prefetch: Vec<(Vec<u8>, Prefetched)>,
        started: Instant,
    ) -> Vec<u8> {
        let f = match self.front(packet, src, transport) {
            Ok(f) => f,
            // The first stage answered these already; same packet, same verdict.
            Err(r) => return r.reply.unwrap_or_default(),
        };
        let relayed = !prefetch.is_empty();
        let client = f.client(self.udp_payload);
        // RFC 7871 §7.1.2: ECS is ours to drop; SPEC §1: only when asked to keep it.
        let bytes: Cow<'_, [u8]> = match wire::without_ecs(&f.query) {
            Some(stripped) if !self.send_ecs => Cow::Owned(stripped),
            _ => Cow::Borrowed(packet),
        };
        // Resolution builds the full answer (it may be cached); the client's
        // transport limit applies at the end.
        let ask = Ask {
            client: Client {
                limit: None,
                ..client
            },
            bytes: &bytes,
            rules: f.rules,
            trace: Trace::default(),
            prefetch: Mutex::new(prefetch),
        };
        let out = client.forward(self.resolve(&ask, f.key.clone(), f.dns64, relayed).await);
        self.done(&f, &out, started.elapsed(), &ask.trace);
        out
    }

    /// Parse, classify, pick the rules and the cache key. No side effects.
    fn front<'p>(
        &'p self,
        packet: &'p [u8],
        src: IpAddr,
        transport: Transport,
    ) -> Result<Front<'p>, Rejected> {
        let query = Query::parse(packet).map_err(|e| Rejected {
            reply: error::reject(packet, e, self.udp_payload),
            qtype: 0,
            why: Some(e),
        })?;
        let client_ip = self.policy.client_ip(src, &query);
        let treatment = self.policy.classify(client_ip);
        if treatment == Treatment::Refuse {
            let client = Client {
                query: &query,
                limit: None,
                our_payload: self.udp_payload,
            };
            return Err(Rejected {
                reply: Some(client.error(rcode::REFUSED, Some((ede::PROHIBITED, "")))),
                qtype: query.qtype,
                why: None,
            });
        }
        let rules = self.policy.rules(query.qname());
        let dns64 = treatment == Treatment::Dns64
            && query.qclass == CLASS_IN
            && rules.policy != ZonePolicy::Off;
        // Answers may depend on a forwarded ECS: those are not cached.
        let ecs_forwarded = self.send_ecs && query.edns.is_some_and(|e| e.ecs.is_some());
        let key = match &self.cache {
            Some(_) if !ecs_forwarded => {
                Key::new(&query, if dns64 { 1 + rules.zone_index } else { 0 })
            }
            _ => None,
        };
        Ok(Front {
            query,
            client_ip,
            transport,
            rules,
            dns64,
            key,
        })
    }

    /// Counts the answer and writes the sampled query log line.
    fn done(&self, f: &Front<'_>, out: &[u8], took: std::time::Duration, trace: &Trace) {
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

    /// The full (untruncated) answer: from the cache, else resolved and
    /// cached; an expired entry stands in when resolution fails (RFC 8767).
    async fn resolve(
        &self,
        ask: &Ask<'_>,
        key: Option<Key>,
        dns64: bool,
        relayed: bool,
    ) -> Vec<u8> {
        let now = Instant::now();
        let (cache, key) = match (&self.cache, key) {
            (Some(c), Some(k)) => (c, k),
            _ if dns64 => return self.for_dns64_client(ask).await,
            _ => return self.forward(ask).await,
        };
        // A fresh entry may have arrived since the first stage looked.
        let stale = match cache.get(&key, now) {
            Lookup::Fresh(e) => {
                if !relayed {
                    self.metrics.cache(true, false);
                }
                return e.render(now, None);
            }
            Lookup::Stale(e) => Some(e),
            Lookup::Miss => None,
        };
        if !relayed {
            self.metrics.cache(false, false);
        }
        let work = async {
            if dns64 {
                self.for_dns64_client(ask).await
            } else {
                self.forward(ask).await
            }
        };
        let full = match &stale {
            // RFC 8767 §5: with a stale answer at hand, the client need not
            // wait out every upstream timeout (glibc gives up after 5 s).
            Some(e) => {
                tokio::pin!(work);
                tokio::select! {
                    full = &mut work => full,
                    _ = tokio::time::sleep(cache.stale_answer_after()) => {
                        self.metrics.cache(true, true);
                        return e.render(now, Some(cache.stale_ttl()));
                    }
                }
            }
            None => work.await,
        };
        match stale {
            Some(e) if reply_rcode(&full) == rcode::SERVFAIL => {
                self.metrics.cache(true, true);
                e.render(now, Some(cache.stale_ttl()))
            }
            _ => {
                cache.insert(key, &full, now);
                full
            }
        }
    }

    /// Asks upstream, noting which server answered for the query log.
    async fn ask_upstream(&self, ask: &Ask<'_>, bytes: &[u8]) -> Result<Reply, UpstreamError> {
        let prefetched = {
            let mut p = ask.prefetch.lock().unwrap_or_else(|e| e.into_inner());
            p.iter()
                .position(|(question, _)| wire::same_question(bytes, question))
                .map(|i| p.swap_remove(i).1)
        };
        let r = match prefetched {
            Some(Prefetched::Reply(reply)) => Ok(reply),
            Some(Prefetched::Resume(resume)) => self.upstream.query_from(bytes, resume).await,
            None => self.upstream.query(bytes).await,
        };
        if let Ok(reply) = &r {
            *ask.trace.upstream.lock().unwrap_or_else(|e| e.into_inner()) = Some(reply.server);
        }
        r
    }

    /// The upstream pool (the readiness prober uses it).
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// Plain forwarding: the upstream's reply with the client's ID.
    async fn forward(&self, ask: &Ask<'_>) -> Vec<u8> {
        match self.ask_upstream(ask, ask.bytes).await {
            Ok(reply) => ask.client.forward(reply.bytes),
            Err(e) => self.unreachable(ask, &e),
        }
    }

    /// SERVFAIL with RFC 8914 code 22 when no upstream gave any reply.
    fn unreachable(&self, ask: &Ask<'_>, e: &UpstreamError) -> Vec<u8> {
        ask.client.error(
            rcode::SERVFAIL,
            Some((ede::NO_REACHABLE_AUTHORITY, &e.to_string())),
        )
    }

    async fn for_dns64_client(&self, ask: &Ask<'_>) -> Vec<u8> {
        let route = self.route(true, ask.query(), &ask.rules);
        if route == Route::Ptr
            && let Some(out) = self.ptr(ask).await
        {
            return out;
        }
        match route {
            Route::Ipv4only => self.ipv4only(ask),
            Route::Aaaa => self.aaaa(ask).await,
            Route::FilteredA => self.filtered_a(ask).await,
            // A PTR outside every prefix is any other query.
            Route::Forward | Route::Ptr if ask.rules.filter_a == FilterA::Pass => {
                self.forward(ask).await
            }
            Route::Forward | Route::Ptr | Route::Filtered => {
                match self.ask_upstream(ask, ask.bytes).await {
                    Ok(reply) => self.filtered(ask, reply),
                    Err(e) => self.unreachable(ask, &e),
                }
            }
        }
    }

    /// Any reply for a DNS64 client under strip/rewrite: untouched bytes when
    /// there is nothing to strip (proved on the wire view, without a
    /// decode), else filtered and re-encoded.
    fn filtered(&self, ask: &Ask<'_>, reply: Reply) -> Vec<u8> {
        if nothing_to_filter(&reply.bytes) {
            return ask.client.forward(reply.bytes);
        }
        match Message::from_vec(&reply.bytes) {
            Ok(msg) if !needs_filter(&msg) => ask.client.forward(reply.bytes),
            Ok(msg) => self.finish(ask, msg),
            // Cannot prove it holds no A record: never pass it on.
            Err(_) => ask.client.error(
                rcode::SERVFAIL,
                Some((ede::OTHER, "upstream reply unparseable")),
            ),
        }
    }

    /// Last step for every parsed answer to a DNS64 client: the A filter,
    /// the NODATA SOA where records were removed, then the reply encoding.
    fn finish(&self, ask: &Ask<'_>, mut msg: Message) -> Vec<u8> {
        let stripped = filter::enforce(
            &mut msg,
            ask.rules.filter_a,
            ask.rules.prefixes,
            &self.dns64,
        );
        self.metrics.a_stripped(stripped);
        let qtype = RecordType::from(ask.query().qtype);
        if (stripped > 0 || qtype == RecordType::AAAA)
            && let Some(qname) = qname(ask.query())
        {
            filter::ensure_nodata_soa(&mut msg, &qname, qtype, self.negative_ttl);
        }
        ask.client.encode(msg, None)
    }

    /// AAAA from a DNS64 client: RFC 6147 §5.1, with the zone policy.
    async fn aaaa(&self, ask: &Ask<'_>) -> Vec<u8> {
        let query = ask.query();
        // §5.5: DO=1 and CD=1: the client validates; no synthesis.
        if query.dnssec_ok() && query.header().cd() {
            return match self.ask_upstream(ask, ask.bytes).await {
                Ok(reply) => self.filtered(ask, reply),
                Err(e) => self.unreachable(ask, &e),
            };
        }
        let Some(qname) = qname(query) else {
            return ask.client.error(rcode::FORMERR, None);
        };
        let a_query = wire::with_qtype(query, ask.bytes, rtype::A);
        // §5.1.8: asking A alongside AAAA saves a round trip; the answer is
        // the same as the sequential one because synthesis merges the chain
        // the A response carries itself.
        let (aaaa, early_a) = if self.parallel_a {
            let (aaaa, a) = tokio::join!(
                self.ask_upstream(ask, ask.bytes),
                self.ask_upstream(ask, &a_query)
            );
            (aaaa, a.ok())
        } else {
            (self.ask_upstream(ask, ask.bytes).await, None)
        };
        if let Ok(reply) = &aaaa
            && let Some(out) = self
                .aaaa_on_the_wire(ask, &reply.bytes, &a_query, early_a.as_ref())
                .await
        {
            return out;
        }
        let early_a = early_a.and_then(|r| answered(&r.bytes));
        let aaaa_msg = aaaa
            .as_ref()
            .ok()
            .and_then(|r| Message::from_vec(&r.bytes).ok());
        let policy = ask.rules.policy;
        let original = |msg: Option<Message>| match msg {
            Some(mut m) => {
                self.dns64.remove_unwanted_aaaa(policy, &mut m);
                self.finish(ask, m)
            }
            None => match &aaaa {
                Err(e) => self.unreachable(ask, e),
                Ok(_) => ask.client.error(
                    rcode::SERVFAIL,
                    Some((ede::OTHER, "upstream reply unparseable")),
                ),
            },
        };
        let target = match self.dns64.after_aaaa(policy, &qname, aaaa_msg.as_ref()) {
            AaaaVerdict::Return => return original(aaaa_msg),
            AaaaVerdict::Synthesize { target } => target,
        };
        let a_msg = match early_a.filter(|m| m.metadata.response_code == ResponseCode::NoError) {
            Some(m) => Some(m),
            None => {
                let a_query = if target == qname {
                    Some(a_query)
                } else {
                    build_query(query, &target, RecordType::A)
                };
                match a_query {
                    Some(bytes) => self
                        .upstream
                        .query(&bytes)
                        .await
                        .ok()
                        .and_then(|r| Message::from_vec(&r.bytes).ok()),
                    None => None,
                }
            }
        };
        match a_msg.and_then(|a| {
            self.dns64
                .synthesize(&ask.rules, &qname, aaaa_msg.as_ref(), &a)
        }) {
            Some(synth) => {
                ask.trace.synthesized.store(true, Ordering::Relaxed);
                self.finish(ask, synth)
            }
            // §5.1.6: nothing to synthesize from: the original answer stands.
            None => original(aaaa_msg),
        }
    }

    /// The zero-copy form of RFC 6147 §5.1 for the shapes most answers have:
    /// no CNAME/DNAME chain, no A, HTTPS or SVCB records to filter, no
    /// excluded AAAA. Native AAAA and NXDOMAIN (with its CNAME chain, if
    /// any) pass through as the upstream's bytes; NODATA
    /// is answered from the A response's bytes by [`wire::rewrite::synthesize_aaaa`]
    /// (or, with nothing to synthesize, by the NODATA itself). `None`: some
    /// other shape; the decode → mutate → encode path answers it identically.
    async fn aaaa_on_the_wire(
        &self,
        ask: &Ask<'_>,
        aaaa: &[u8],
        a_query: &[u8],
        early_a: Option<&Reply>,
    ) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let ttl_cap = match self.aaaa_wire(ask, aaaa, &mut out) {
            AaaaWire::Done => return Some(out),
            AaaaWire::Other => return None,
            AaaaWire::NeedA { ttl_cap } => ttl_cap,
        };
        let asked;
        let a = match early_a {
            Some(r) => Some(r.bytes.as_slice()),
            None => match self.ask_upstream(ask, a_query).await {
                Ok(r) => {
                    asked = r.bytes;
                    Some(asked.as_slice())
                }
                Err(_) => None,
            },
        };
        self.synthesize_wire(ask, aaaa, a, ttl_cap, &mut out)
            .then_some(out)
    }

    /// The part of [`Pipeline::aaaa_on_the_wire`] before the A query:
    /// native AAAA and NXDOMAIN are written into `out`.
    fn aaaa_wire(&self, ask: &Ask<'_>, aaaa: &[u8], out: &mut Vec<u8>) -> AaaaWire {
        // A pointer into the header would be renamed by the RA and ID
        // patches: such a reply is re-encoded on the general path.
        let Some(view) = wire::Message::parse(aaaa)
            .ok()
            .filter(|v| !v.has_exotic_pointers())
        else {
            return AaaaWire::Other;
        };
        let s = view.classify();
        let plain = s.rcode == rcode::NOERROR && s.cname == 0;
        // §5.1.2 / SPEC §3.4: NXDOMAIN is returned as is, chain included.
        let nxdomain = s.rcode == rcode::NXDOMAIN && s.aaaa == 0;
        if !(plain || nxdomain)
            || s.a > 0
            || s.a_rrsig > 0
            || view
                .records()
                .any(|r| matches!(r.rtype, DNAME | SVCB | HTTPS))
        {
            return AaaaWire::Other;
        }
        if s.aaaa > 0 {
            let native_only = ask.rules.policy == ZonePolicy::Native
                && !view
                    .section(wire::Section::Answer)
                    .any(|r| r.ipv6().is_some_and(|v6| self.dns64.is_excluded(v6)));
            if !native_only {
                return AaaaWire::Other;
            }
        }
        if nxdomain || s.aaaa > 0 {
            copy_with_ra(aaaa, out);
            return AaaaWire::Done;
        }
        // NODATA: §5.1.6 synthesis from the A records, §5.1.7 TTL.
        AaaaWire::NeedA {
            ttl_cap: s.negative_ttl.unwrap_or(dns64::NO_SOA_TTL_CAP),
        }
    }

    /// The part of [`Pipeline::aaaa_on_the_wire`] after the A query (`a`:
    /// its reply; `None`: it failed): the synthesized answer, or the NODATA
    /// when there is nothing to synthesize (§5.1.6 item 5), into `out`.
    /// False: a shape left to the decode → encode path.
    fn synthesize_wire(
        &self,
        ask: &Ask<'_>,
        aaaa: &[u8],
        a: Option<&[u8]>,
        ttl_cap: u32,
        out: &mut Vec<u8>,
    ) -> bool {
        let a_view = a.and_then(|a| wire::Message::parse(a).ok());
        let Some(a_view) = a_view.filter(|v| v.rcode() == rcode::NOERROR) else {
            copy_with_ra(aaaa, out);
            return true;
        };
        let Some(owner) = a_view.chain_end() else {
            return false;
        };
        let allow = |v4, p: &Prefix| self.dns64.may_map(v4, p);
        match wire::rewrite::synthesize_aaaa(
            &a_view,
            &owner,
            ask.rules.prefixes,
            ttl_cap,
            allow,
            out,
        ) {
            Ok(0) => {
                copy_with_ra(aaaa, out);
                true
            }
            Ok(_) => {
                ask.trace.synthesized.store(true, Ordering::Relaxed);
                set_ra(out);
                true
            }
            Err(_) => false,
        }
    }

    /// A from a DNS64 client under strip/rewrite (SPEC §4).
    async fn filtered_a(&self, ask: &Ask<'_>) -> Vec<u8> {
        let query = ask.query();
        let Some(qname) = qname(query) else {
            return ask.client.error(rcode::FORMERR, None);
        };
        let a = self.ask_upstream(ask, ask.bytes).await;
        let mut out = Vec::new();
        if let Ok(reply) = &a
            && self.a_on_the_wire(ask, &reply.bytes, &mut out)
        {
            return out;
        }
        if let Some(msg) = a.as_ref().ok().and_then(|r| answered(&r.bytes)) {
            return self.finish(ask, msg);
        }
        // The A lookup failed: musl would fail the whole getaddrinfo on a
        // SERVFAIL, so the same name's AAAA lookup decides.
        let aaaa_query = wire::with_qtype(query, ask.bytes, rtype::AAAA);
        let aaaa = self.ask_upstream(ask, &aaaa_query).await;
        let aaaa_msg = aaaa.as_ref().ok().and_then(|r| answered(&r.bytes));
        match (filter::after_a_failure(aaaa_msg.as_ref()), aaaa_msg) {
            (AFailure::NoData | AFailure::NxDomain, Some(mut msg)) => {
                msg.answers
                    .retain(|r| matches!(r.record_type(), RecordType::CNAME | RecordType::DNAME));
                msg.queries = vec![HQuery::query(qname.clone(), RecordType::A)];
                self.finish(ask, msg)
            }
            _ => match a {
                Err(e) => self.unreachable(ask, &e),
                Ok(_) => ask.client.error(
                    rcode::SERVFAIL,
                    Some((
                        ede::NO_REACHABLE_AUTHORITY,
                        "upstream failed for A and AAAA",
                    )),
                ),
            },
        }
    }

    /// The zero-copy form of `strip` for an A answer (SPEC §4): nothing to
    /// strip → the upstream's bytes; A records → NODATA with our SOA in one
    /// pass. `None`: another shape (an SOA beside A records, HTTPS/SVCB,
    /// `rewrite`, an error RCODE); the general path answers it.
    fn a_on_the_wire(&self, ask: &Ask<'_>, a: &[u8], out: &mut Vec<u8>) -> bool {
        let Some(view) = wire::Message::parse(a)
            .ok()
            .filter(|v| !v.has_exotic_pointers())
        else {
            return false;
        };
        let s = view.classify();
        if !matches!(s.rcode, rcode::NOERROR | rcode::NXDOMAIN)
            || view.records().any(|r| matches!(r.rtype, SVCB | HTTPS))
        {
            return false;
        }
        if s.a == 0 && s.a_rrsig == 0 {
            copy_with_ra(a, out);
            return true;
        }
        if ask.rules.filter_a != FilterA::Strip
            || s.rcode != rcode::NOERROR
            || s.negative_ttl.is_some()
        {
            return false;
        }
        if filter::nodata_from_a_answer(&view, self.negative_ttl, out).is_err() {
            return false;
        }
        self.metrics.a_stripped(usize::from(s.a));
        set_ra(out);
        true
    }

    /// `ipv4only.arpa.` answered locally (RFC 8880 §7.1): A, or AAAA under
    /// every prefix; A records still pass the A filter.
    fn ipv4only(&self, ask: &Ask<'_>) -> Vec<u8> {
        let Some(qname) = qname(ask.query()) else {
            return ask.client.error(rcode::FORMERR, None);
        };
        let qtype = RecordType::from(ask.query().qtype);
        let mut msg = local_response(&qname, qtype);
        msg.answers = dns64::ipv4only_records(&qname, qtype, &self.all_prefixes);
        self.finish(ask, msg)
    }

    /// PTR for an ip6.arpa name inside a prefix (RFC 6147 §5.3.1): a CNAME
    /// to the in-addr.arpa name of the embedded IPv4 address, followed
    /// upstream under `follow`. `None`: not ours, forward as usual.
    async fn ptr(&self, ask: &Ask<'_>) -> Option<Vec<u8>> {
        let qname = qname(ask.query())?;
        let target = dns64::ptr_target(&qname, &self.all_prefixes)?;
        let mut msg = local_response(&qname, RecordType::PTR);
        msg.answers.push(Record::from_rdata(
            qname.clone(),
            PTR_CNAME_TTL,
            RData::CNAME(CNAME(target.clone())),
        ));
        if self.policy.ptr() == PtrMode::Follow {
            let followed = match build_query(ask.query(), &target, RecordType::PTR) {
                Some(bytes) => self.ask_upstream(ask, &bytes).await,
                None => return Some(ask.client.error(rcode::SERVFAIL, None)),
            };
            let reply = match followed {
                Ok(r) => Message::from_vec(&r.bytes).ok(),
                Err(e) => return Some(self.unreachable(ask, &e)),
            };
            let Some(reply) = reply else {
                return Some(ask.client.error(
                    rcode::SERVFAIL,
                    Some((ede::OTHER, "upstream reply unparseable")),
                ));
            };
            msg.metadata.response_code = reply.metadata.response_code;
            msg.answers.extend(reply.answers);
            msg.authorities = reply.authorities;
        }
        Some(self.finish(ask, msg))
    }
}

/// The RCODE of a reply we built (extended RCODEs count by their low bits).
fn reply_rcode(reply: &[u8]) -> u16 {
    wire::Header::new(reply).map_or(rcode::SERVFAIL, |h| h.rcode())
}

/// Sets RA: every answer on the DNS64 path is ours to vouch for recursion
/// (SPEC §7), as the decode → encode path does.
fn set_ra(reply: &mut [u8]) {
    if let Some(b) = reply.get_mut(3) {
        *b |= 0x80;
    }
}

/// `reply` into `out`, with RA set.
fn copy_with_ra(reply: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(reply);
    set_ra(out);
}

/// True when a reply for a DNS64 client under strip/rewrite holds nothing
/// the A filter changes (proved on the wire view, without a decode), and
/// no compression pointer into octets the reply patches (header) could
/// rename a record.
fn nothing_to_filter(reply: &[u8]) -> bool {
    wire::Message::parse(reply).is_ok_and(|view| {
        !view.has_exotic_pointers()
            && !view
                .records()
                .any(|r| matches!(r.rtype, rtype::A | rtype::RRSIG | HTTPS | SVCB))
    })
}

/// [`Pipeline::filtered`]'s wire path: the reply as it is, into `out`.
fn filtered_on_the_wire(reply: &[u8], out: &mut Vec<u8>) -> bool {
    if !nothing_to_filter(reply) {
        return false;
    }
    out.clear();
    out.extend_from_slice(reply);
    true
}

/// DNAME (RFC 6672), SVCB and HTTPS (RFC 9460) type codes.
const DNAME: u16 = 39;
const SVCB: u16 = 64;
const HTTPS: u16 = 65;

/// True when a reply holds something the A filter changes.
fn needs_filter(msg: &Message) -> bool {
    msg.all_sections().any(|r| {
        matches!(
            r.record_type(),
            RecordType::A | RecordType::RRSIG | RecordType::HTTPS | RecordType::SVCB
        )
    })
}

/// An empty NOERROR response to `qname`/`qtype`, for answers dns64d makes.
fn local_response(qname: &Name, qtype: RecordType) -> Message {
    let mut msg = Message::new(0, MessageType::Response, OpCode::Query);
    msg.add_query(HQuery::query(qname.clone(), qtype));
    msg
}

/// A reply that settles the question: NOERROR or NXDOMAIN, parseable.
fn answered(bytes: &[u8]) -> Option<Message> {
    Message::from_vec(bytes).ok().filter(|m| {
        matches!(
            m.metadata.response_code,
            ResponseCode::NoError | ResponseCode::NXDomain
        )
    })
}

/// QNAME as a hickory-proto name (case preserved).
fn qname(query: &Query<'_>) -> Option<Name> {
    let mut decoder = BinDecoder::new(query.qname());
    Name::read(&mut decoder).ok()
}

/// A new query for `name`/`rtype` carrying the client's RD, CD and DO
/// (RFC 6147 §5.1.5: the A query for the end of a CNAME chain).
fn build_query(client: &Query<'_>, name: &Name, rtype: RecordType) -> Option<Vec<u8>> {
    let h = client.header();
    let mut m = Message::new(0, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = h.rd();
    m.metadata.checking_disabled = h.cd();
    m.add_query(HQuery::query(name.clone(), rtype));
    if let Some(e) = client.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(e.payload.max(512));
        edns.set_dnssec_ok(e.dnssec_ok);
        m.edns = Some(edns);
    }
    m.to_vec().ok()
}
