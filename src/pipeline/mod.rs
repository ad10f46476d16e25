//! The path of one query, one call per step:
//! `wire` (parse) → `policy` (who, which rules) → `upstream` (ask) →
//! `dns64` | `filter` (synthesize, strip) → `reply` (echo, EDNS, truncate).
//!
//! Transport-agnostic: `listen` hands in bytes and a source address and
//! sends back whatever comes out.

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::cache::{Cache, Key, Lookup};
use crate::config::Config;
use crate::dns64::Dns64;
use crate::error;
use crate::metrics::{self, DropReason, Metrics};
use crate::policy::{Policy, Rules, Treatment};
use crate::ratelimit::RateLimiter;
use crate::reply::Client;
use crate::types::{Prefix, ZonePolicy};
use crate::upstream::{Reply, Resume, Upstream, Upstreams};
use crate::wire::{self, Query, WireError, ede, rcode};

mod fast;
mod local;
mod log;
mod route;
mod slow;

use fast::*;
pub use fast::{Exchange, Stage, Step};
use log::*;
use route::*;
use slow::*;

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
    /// The default group and one per `[[upstream.zone]]`.
    upstream: Upstreams,
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
    /// Send the reply written into the caller's buffer now, then call
    /// [`Pipeline::prefetch`]: the fresh hit found a popular entry near
    /// expiry (`cache.prefetch`).
    Prefetch,
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

impl Ask<'_> {
    fn query(&self) -> &Query<'_> {
        self.client.query
    }
}

impl Pipeline {
    /// Builds the pipeline from a config.
    pub fn new(cfg: &Config, metrics: Arc<Metrics>) -> Pipeline {
        Pipeline::keeping(cfg, metrics, None)
    }

    /// [`Pipeline::new`] that serves from `cache` (the running pipeline's,
    /// kept across a reload that changes no answer) instead of a new one.
    pub fn keeping(cfg: &Config, metrics: Arc<Metrics>, cache: Option<Arc<Cache>>) -> Pipeline {
        let policy = Policy::new(cfg);
        let all_prefixes = policy.all_prefixes();
        Pipeline {
            policy,
            dns64: Dns64::new(&cfg.dns64),
            upstream: Upstreams::new(&cfg.upstream, &metrics),
            cache: cfg.cache.enabled.then(|| {
                let cache = cache.unwrap_or_else(|| {
                    let fresh = Cache::new(&cfg.cache);
                    Arc::new(match cfg.dns64.rotate {
                        true => fresh.rotating(all_prefixes.clone()),
                        false => fresh,
                    })
                });
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
            // The relay speaks UDP only: with a TLS server among the
            // default servers, every forwarded query runs as a task (a
            // zone's servers are asked by tasks anyway).
            relay_sockets: if cfg.upstream.tls_names.is_empty() {
                (cfg.upstream.socket_pool / cfg.server.workers.max(1)).clamp(
                    usize::from(cfg.upstream.socket_pool > 0),
                    crate::upstream::relay::MAX_SOCKETS,
                )
            } else {
                0
            },
            query_log: QueryLog {
                every: if cfg.log.queries {
                    u64::from(cfg.log.query_sample)
                } else {
                    0
                },
                seen: AtomicU64::new(0),
            },
            all_prefixes,
            metrics,
            udp_payload: cfg.server.udp_payload,
            negative_ttl: cfg.filter.negative_ttl,
            send_ecs: cfg.upstream.send_ecs,
            parallel_a: cfg.dns64.parallel_a,
        }
    }

    /// Refreshes the cache entry of `packet`'s question in the background
    /// (after [`Early::Prefetch`]): resolved as a miss would be, stored on
    /// success, and no answer sent. Off the hot path: this copy of the
    /// packet and the task are the only allocations, once per entry.
    pub fn prefetch(self: &Arc<Self>, packet: &[u8], src: IpAddr, transport: Transport) {
        let Some(cache) = self.cache.clone() else {
            return;
        };
        /// Frees the in-flight slot however the task ends.
        struct Slot(Arc<Cache>);
        impl Drop for Slot {
            fn drop(&mut self) {
                self.0.prefetch_done();
            }
        }
        let slot = Slot(cache);
        self.metrics.prefetch();
        let (pipeline, packet) = (self.clone(), packet.to_vec());
        tokio::spawn(async move {
            pipeline.refresh(&packet, src, transport).await;
            drop(slot);
        });
    }

    /// The shared counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Serves one packet; `None` means send nothing.
    pub async fn handle(
        self: &Arc<Self>,
        packet: &[u8],
        src: IpAddr,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        match self.answer_now(packet, src, transport, &mut out) {
            Early::Reply => Some(out),
            Early::Prefetch => {
                self.prefetch(packet, src, transport);
                Some(out)
            }
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
                    self.done(&f, out, started.elapsed(), &Trace::of(e.tally()));
                    if cache.should_prefetch(&e, now) {
                        return Early::Prefetch;
                    }
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

    /// Upstream sockets per server for one receive loop's relay; 0 when
    /// `upstream.socket_pool = 0` asks for a fresh socket per query.
    pub fn relay_sockets(&self) -> usize {
        self.relay_sockets
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

    /// The answer cache, when `cache.enabled`.
    pub fn cache(&self) -> Option<&Arc<Cache>> {
        self.cache.as_ref()
    }

    /// The default upstream group, the one the receive loops' relays serve.
    pub fn upstream(&self) -> &Upstream {
        self.upstream.default_group()
    }

    /// Every upstream group (the readiness prober and discovery use them).
    pub fn upstreams(&self) -> &Upstreams {
        &self.upstream
    }
}

/// The RCODE of a reply we built (extended RCODEs count by their low bits).
fn reply_rcode(reply: &[u8]) -> u16 {
    wire::Header::new(reply).map_or(rcode::SERVFAIL, |h| h.rcode())
}
