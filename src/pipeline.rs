//! The path of one query, one call per step:
//! `wire` (parse) → `policy` (who) → `upstream` (ask) → `dns64` | `filter`
//! (synthesize, strip) → `reply` (echo, EDNS, truncate).
//!
//! Transport-agnostic: `listen` hands in bytes and a source address and
//! sends back whatever comes out.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query as HQuery};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::config::{Config, FilterA};
use crate::dns64::{AaaaVerdict, Dns64};
use crate::error;
use crate::filter::{self, AFailure};
use crate::metrics::Metrics;
use crate::policy::{Policy, Treatment};
use crate::reply::Client;
use crate::upstream::{Reply, Upstream, UpstreamError};
use crate::wire::{self, Query, ede, rcode, rtype};

/// Which transport a query came in on: UDP replies are size-limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
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
}

/// RFC 1035 class IN; DNS64 applies to nothing else.
const CLASS_IN: u16 = 1;

impl Pipeline {
    /// Builds the pipeline from a config.
    pub fn new(cfg: &Config, metrics: Arc<Metrics>) -> Pipeline {
        Pipeline {
            policy: Policy::new(cfg),
            dns64: Dns64::new(&cfg.dns64),
            upstream: Upstream::new(&cfg.upstream, metrics.clone()),
            metrics,
            udp_payload: cfg.server.udp_payload,
            negative_ttl: cfg.filter.negative_ttl,
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
        let query = match Query::parse(packet) {
            Ok(q) => q,
            Err(e) => {
                let out = error::reject(packet, e, self.udp_payload);
                let counter = if out.is_some() {
                    &self.metrics.malformed
                } else {
                    &self.metrics.dropped
                };
                self.metrics.count(counter);
                return out;
            }
        };
        let client = Client {
            query: &query,
            limit: (transport == Transport::Udp).then(|| query.udp_limit(self.udp_payload)),
            our_payload: self.udp_payload,
        };
        let out = match self.policy.classify(src) {
            Treatment::Refuse => {
                self.metrics.count(&self.metrics.refused);
                client.error(rcode::REFUSED, Some((ede::PROHIBITED, "")))
            }
            Treatment::Dns64 if query.qclass == CLASS_IN => self.for_dns64_client(&client).await,
            Treatment::Dns64 | Treatment::Plain => self.forward(&client).await,
        };
        if wire::Header::new(&out).is_some_and(|h| h.rcode() == rcode::SERVFAIL) {
            self.metrics.count(&self.metrics.servfail);
        }
        Some(out)
    }

    /// Plain forwarding: the upstream's reply with the client's ID.
    async fn forward(&self, client: &Client<'_>) -> Vec<u8> {
        match self.upstream.query(client.query.bytes()).await {
            Ok(reply) => client.forward(reply.bytes),
            Err(e) => self.unreachable(client, &e),
        }
    }

    /// SERVFAIL with RFC 8914 code 22 when no upstream gave any reply.
    fn unreachable(&self, client: &Client<'_>, e: &UpstreamError) -> Vec<u8> {
        client.error(
            rcode::SERVFAIL,
            Some((ede::NO_REACHABLE_AUTHORITY, &e.to_string())),
        )
    }

    async fn for_dns64_client(&self, client: &Client<'_>) -> Vec<u8> {
        let mode = self.policy.filter_a();
        match client.query.qtype {
            rtype::AAAA => self.aaaa(client, mode).await,
            rtype::A if mode != FilterA::Pass => self.filtered_a(client, mode).await,
            _ if mode == FilterA::Pass => self.forward(client).await,
            _ => match self.upstream.query(client.query.bytes()).await {
                Ok(reply) => self.filtered(client, reply, mode),
                Err(e) => self.unreachable(client, &e),
            },
        }
    }

    /// Any reply for a DNS64 client under strip/rewrite: untouched bytes when
    /// there is nothing to strip, else filtered and re-encoded.
    fn filtered(&self, client: &Client<'_>, reply: Reply, mode: FilterA) -> Vec<u8> {
        match Message::from_vec(&reply.bytes) {
            Ok(msg) if !msg.all_sections().any(|r| r.record_type() == RecordType::A) => {
                client.forward(reply.bytes)
            }
            Ok(msg) => self.finish(client, msg, mode),
            // Cannot prove it holds no A record: never pass it on.
            Err(_) => client.error(
                rcode::SERVFAIL,
                Some((ede::OTHER, "upstream reply unparseable")),
            ),
        }
    }

    /// Last step for every parsed answer to a DNS64 client: the A filter,
    /// then the reply encoding.
    fn finish(&self, client: &Client<'_>, mut msg: Message, mode: FilterA) -> Vec<u8> {
        let stripped = filter::enforce(&mut msg, mode, &self.dns64);
        self.metrics.add(&self.metrics.a_stripped, stripped as u64);
        client.encode(msg, None)
    }

    /// AAAA from a DNS64 client: RFC 6147 §5.1.
    async fn aaaa(&self, client: &Client<'_>, mode: FilterA) -> Vec<u8> {
        let query = client.query;
        // §5.5: DO=1 and CD=1: the client validates; no synthesis.
        if query.dnssec_ok() && query.header().cd() {
            return match self.upstream.query(query.bytes()).await {
                Ok(reply) => self.filtered(client, reply, mode),
                Err(e) => self.unreachable(client, &e),
            };
        }
        let Some(qname) = qname(query) else {
            return client.error(rcode::FORMERR, None);
        };
        let aaaa = self.upstream.query(query.bytes()).await;
        let aaaa_msg = aaaa
            .as_ref()
            .ok()
            .and_then(|r| Message::from_vec(&r.bytes).ok());
        let original = |msg: Option<Message>| match msg {
            Some(mut m) => {
                self.dns64.remove_excluded(&mut m);
                self.finish(client, m, mode)
            }
            None => match &aaaa {
                Err(e) => self.unreachable(client, e),
                Ok(_) => client.error(
                    rcode::SERVFAIL,
                    Some((ede::OTHER, "upstream reply unparseable")),
                ),
            },
        };
        let target = match self.dns64.after_aaaa(&qname, aaaa_msg.as_ref()) {
            AaaaVerdict::Return => return original(aaaa_msg),
            AaaaVerdict::Synthesize { target } => target,
        };
        let a_query = if target == qname {
            wire::with_qtype(query, rtype::A)
        } else {
            match build_query(query, &target, RecordType::A) {
                Some(q) => q,
                None => return original(aaaa_msg),
            }
        };
        let a_msg = match self.upstream.query(&a_query).await {
            Ok(r) => Message::from_vec(&r.bytes).ok(),
            Err(_) => None,
        };
        match a_msg.and_then(|a| self.dns64.synthesize(&qname, aaaa_msg.as_ref(), &a)) {
            Some(synth) => {
                self.metrics.count(&self.metrics.synthesized);
                self.finish(client, synth, mode)
            }
            // §5.1.6: nothing to synthesize from: the original answer stands.
            None => original(aaaa_msg),
        }
    }

    /// A from a DNS64 client under strip/rewrite (SPEC §4).
    async fn filtered_a(&self, client: &Client<'_>, mode: FilterA) -> Vec<u8> {
        let query = client.query;
        let Some(qname) = qname(query) else {
            return client.error(rcode::FORMERR, None);
        };
        let a = self.upstream.query(query.bytes()).await;
        if let Some(msg) = a.as_ref().ok().and_then(|r| answered(&r.bytes)) {
            return self.nodata_or_nxdomain(client, msg, &qname, mode);
        }
        // The A lookup failed: musl would fail the whole getaddrinfo on a
        // SERVFAIL, so the same name's AAAA lookup decides.
        let aaaa_query = wire::with_qtype(query, rtype::AAAA);
        let aaaa = self.upstream.query(&aaaa_query).await;
        let aaaa_msg = aaaa.as_ref().ok().and_then(|r| answered(&r.bytes));
        match (filter::after_a_failure(aaaa_msg.as_ref()), aaaa_msg) {
            (AFailure::NoData | AFailure::NxDomain, Some(mut msg)) => {
                msg.answers
                    .retain(|r| matches!(r.record_type(), RecordType::CNAME | RecordType::DNAME));
                msg.queries = vec![HQuery::query(qname.clone(), RecordType::A)];
                self.nodata_or_nxdomain(client, msg, &qname, mode)
            }
            _ => match a {
                Err(e) => self.unreachable(client, &e),
                Ok(_) => client.error(
                    rcode::SERVFAIL,
                    Some((
                        ede::NO_REACHABLE_AUTHORITY,
                        "upstream failed for A and AAAA",
                    )),
                ),
            },
        }
    }

    fn nodata_or_nxdomain(
        &self,
        client: &Client<'_>,
        mut msg: Message,
        qname: &Name,
        mode: FilterA,
    ) -> Vec<u8> {
        let stripped = filter::enforce(&mut msg, mode, &self.dns64);
        self.metrics.add(&self.metrics.a_stripped, stripped as u64);
        filter::ensure_nodata_soa(&mut msg, qname, self.negative_ttl);
        client.encode(msg, None)
    }
}

/// A reply that settles the question: NOERROR or NXDOMAIN, parseable.
fn answered(bytes: &[u8]) -> Option<Message> {
    Message::from_vec(bytes).ok().filter(|m| {
        matches!(
            u16::from(m.metadata.response_code),
            rcode::NOERROR | rcode::NXDOMAIN
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
