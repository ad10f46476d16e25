//! The slow finish: a task per query for everything the relay does not
//! finish (TCP, parallel A, serve-stale, ECS, the rare shapes): upstream,
//! then decode → mutate → encode with hickory-proto, then the cache.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Instant;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query as HQuery, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::cache::{Key, Lookup};
use crate::dns64::{self, AaaaVerdict, rules};
use crate::filter::{self, AFailure};
use crate::reply::Client;
use crate::types::FilterA;
use crate::upstream::{Reply, UpstreamError};
use crate::wire::{self, Query, ede, rcode, rtype};

use super::*;

impl Pipeline {
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

    /// Resolves `packet` past its cache entry and stores the answer: the
    /// background half of [`Pipeline::prefetch`]. A failed refresh leaves
    /// the old entry to expire (and be served stale) as it would have.
    pub(super) async fn refresh(&self, packet: &[u8], src: IpAddr, transport: Transport) {
        let Ok(f) = self.front(packet, src, transport) else {
            return;
        };
        let (Some(cache), Some(key)) = (&self.cache, f.key.clone()) else {
            return;
        };
        let client = f.client(self.udp_payload);
        // As in `resolve_query_with`: the same upstream query a miss sends.
        let bytes: Cow<'_, [u8]> = match wire::without_ecs(&f.query) {
            Some(stripped) if !self.send_ecs => Cow::Owned(stripped),
            _ => Cow::Borrowed(packet),
        };
        let ask = Ask {
            client: Client {
                limit: None,
                ..client
            },
            bytes: &bytes,
            rules: f.rules,
            trace: Trace::default(),
            prefetch: Mutex::default(),
        };
        let full = if f.dns64 {
            self.for_dns64_client(&ask).await
        } else {
            self.forward(&ask).await
        };
        if reply_rcode(&full) != rcode::SERVFAIL {
            cache.insert(key, &full, Instant::now(), ask.trace.tally());
        }
    }

    /// The full (untruncated) answer: from the cache, else resolved and
    /// cached; an expired entry stands in when resolution fails (RFC 8767).
    pub(super) async fn resolve(
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
                ask.trace.set(e.tally());
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
                        ask.trace.set(e.tally());
                        return self.stale(ask, e.render(now, Some(cache.stale_ttl())));
                    }
                }
            }
            None => work.await,
        };
        match stale {
            Some(e) if reply_rcode(&full) == rcode::SERVFAIL => {
                self.metrics.cache(true, true);
                ask.trace.set(e.tally());
                self.stale(ask, e.render(now, Some(cache.stale_ttl())))
            }
            _ => {
                cache.insert(key, &full, now, ask.trace.tally());
                full
            }
        }
    }

    /// A stale answer (RFC 8767 §4) marked with RFC 8914 code 3 (Stale
    /// Answer) for a client that speaks EDNS, so it can tell. Off the hot
    /// path: serve-stale runs as a task. An answer the mark does not fit
    /// (`set_edns` fails before it inserts) goes unmarked.
    fn stale(&self, ask: &Ask<'_>, mut out: Vec<u8>) -> Vec<u8> {
        if let Some(e) = ask.query().edns {
            let mark = Some((ede::STALE_ANSWER, ""));
            let _ = wire::rewrite::set_edns(&mut out, self.udp_payload, e.dnssec_ok, mark);
        }
        out
    }

    /// Asks upstream, noting which server answered for the query log.
    pub(super) async fn ask_upstream(
        &self,
        ask: &Ask<'_>,
        bytes: &[u8],
    ) -> Result<Reply, UpstreamError> {
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

    /// Plain forwarding: the upstream's reply with the client's ID.
    pub(super) async fn forward(&self, ask: &Ask<'_>) -> Vec<u8> {
        match self.ask_upstream(ask, ask.bytes).await {
            Ok(reply) => ask.client.forward(reply.bytes),
            Err(e) => self.unreachable(ask, &e),
        }
    }

    /// SERVFAIL with RFC 8914 code 22 when no upstream gave any reply.
    pub(super) fn unreachable(&self, ask: &Ask<'_>, e: &UpstreamError) -> Vec<u8> {
        ask.client.error(
            rcode::SERVFAIL,
            Some((ede::NO_REACHABLE_AUTHORITY, &e.to_string())),
        )
    }

    pub(super) async fn for_dns64_client(&self, ask: &Ask<'_>) -> Vec<u8> {
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
    pub(super) fn filtered(&self, ask: &Ask<'_>, reply: Reply) -> Vec<u8> {
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
    pub(super) fn finish(&self, ask: &Ask<'_>, msg: Message) -> Vec<u8> {
        self.finish_with(ask, msg, None)
    }

    /// [`Pipeline::finish`] carrying `ede`, an upstream's extended error
    /// to pass on (the encoding makes our own OPT).
    fn finish_with(&self, ask: &Ask<'_>, mut msg: Message, ede: Option<(u16, &str)>) -> Vec<u8> {
        let stripped = filter::enforce(
            &mut msg,
            ask.rules.filter_a,
            ask.rules.prefixes,
            &self.dns64,
        );
        ask.trace.stripped(stripped);
        let qtype = RecordType::from(ask.query().qtype);
        if let Some(qname) = qname(ask.query()) {
            filter::ensure_nodata_soa(&mut msg, &qname, qtype, stripped, self.negative_ttl);
        }
        // RFC 8914 §4.18: as the wire path marks the NODATA it builds.
        let left = msg
            .answers
            .iter()
            .filter(|r| r.record_type() == qtype)
            .count();
        let rcode = u16::from(msg.metadata.response_code);
        let filtered = rules::filtered_ede(ask.query().qtype, rcode, stripped, left);
        ask.client
            .encode(msg, ede.or(filtered.then_some((ede::FILTERED, ""))))
    }

    /// AAAA from a DNS64 client: RFC 6147 §5.1, with the zone policy.
    pub(super) async fn aaaa(&self, ask: &Ask<'_>) -> Vec<u8> {
        let query = ask.query();
        // §5.5: DO=1 and CD=1: the client validates; no synthesis.
        if !rules::may_synthesize(query.dnssec_ok(), query.header().cd()) {
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
        let (aaaa, mut early_a) = if self.parallel_a {
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
                .aaaa_on_the_wire(ask, &reply.bytes, &a_query, &mut early_a)
                .await
        {
            return out;
        }
        let early_a = early_a.and_then(|r| answered(&r.bytes));
        let aaaa_msg = aaaa
            .as_ref()
            .ok()
            .and_then(|r| Message::from_vec(&r.bytes).ok());
        if aaaa_msg
            .as_ref()
            .is_some_and(|m| self.dns64.upstream_synthesized(m) > 0)
        {
            ask.trace
                .upstream_synthesized
                .store(true, Ordering::Relaxed);
        }
        let policy = ask.rules.policy;
        let original = |msg: Option<Message>| match msg {
            Some(mut m) => {
                self.dns64.remove_unwanted_aaaa(policy, &mut m);
                // §5.5: a validator's SERVFAIL keeps its extended error.
                let rcode = u16::from(m.metadata.response_code);
                let bogus = dns64::extended_errors(&m)
                    .find(|&(code, _)| rules::validation_failed(rcode, [code]))
                    .map(|(code, text)| (code, String::from_utf8_lossy(text).into_owned()));
                let ede = bogus.as_ref().map(|(code, text)| (*code, text.as_str()));
                self.finish_with(ask, m, ede)
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
    /// The A reply it asks for is left in `early_a`, so that path does not
    /// ask again.
    pub(super) async fn aaaa_on_the_wire(
        &self,
        ask: &Ask<'_>,
        aaaa: &[u8],
        a_query: &[u8],
        early_a: &mut Option<Reply>,
    ) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let ttl_cap = match self.aaaa_wire(ask, aaaa, &mut out) {
            AaaaWire::Done => return Some(out),
            AaaaWire::Other => return None,
            AaaaWire::NeedA { ttl_cap } => ttl_cap,
        };
        if early_a.is_none() {
            *early_a = self.ask_upstream(ask, a_query).await.ok();
        }
        let a = early_a.as_ref().map(|r| r.bytes.as_slice());
        self.synthesize_wire(ask, aaaa, a, ttl_cap, &mut out)
            .then_some(out)
    }

    /// A from a DNS64 client under strip/rewrite (SPEC §4).
    pub(super) async fn filtered_a(&self, ask: &Ask<'_>) -> Vec<u8> {
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
}

/// True when a reply holds something the A filter changes.
pub(super) fn needs_filter(msg: &Message) -> bool {
    msg.all_sections().any(|r| {
        matches!(
            r.record_type(),
            RecordType::A | RecordType::RRSIG | RecordType::HTTPS | RecordType::SVCB
        )
    })
}

/// A reply that settles the question: NOERROR or NXDOMAIN, parseable.
pub(super) fn answered(bytes: &[u8]) -> Option<Message> {
    Message::from_vec(bytes).ok().filter(|m| {
        matches!(
            m.metadata.response_code,
            ResponseCode::NoError | ResponseCode::NXDomain
        )
    })
}

/// QNAME as a hickory-proto name (case preserved).
pub(super) fn qname(query: &Query<'_>) -> Option<Name> {
    let mut decoder = BinDecoder::new(query.qname());
    Name::read(&mut decoder).ok()
}

/// A new query for `name`/`rtype` carrying the client's RD, CD and DO
/// (RFC 6147 §5.1.5: the A query for the end of a CNAME chain).
pub(super) fn build_query(client: &Query<'_>, name: &Name, rtype: RecordType) -> Option<Vec<u8>> {
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
