//! AAAA synthesis on hickory-proto messages (RFC 6147 §5.1.6, §5.1.7): the
//! slow finish's form; the relay's is `wire::rewrite::synthesize_aaaa`.
//! Both take their decisions from [`rules`](super::rules).

use std::net::Ipv4Addr;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::AAAA;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use ipnet::Ipv4Net;

use crate::policy::Rules;
use crate::types::{Order, Prefix, ZonePolicy};

use super::*;

impl Dns64 {
    /// True when `v4` may be synthesized under `prefix` (SPEC §2).
    pub fn may_map(&self, v4: Ipv4Addr, prefix: &Prefix) -> bool {
        self.mapped.iter().any(|n| n.contains(&v4))
            && !self.never_map.iter().any(|n| n.contains(&v4))
            && !(self.strict_rfc6052
                && prefix.is_well_known()
                && NON_GLOBAL
                    .iter()
                    .any(|&(net, len)| Ipv4Net::new(net, len).is_ok_and(|n| n.contains(&v4))))
    }

    /// One AAAA per usable A per prefix, prefixes in configured order.
    pub fn synthesize_records<'a>(
        &'a self,
        prefixes: &'a [Prefix],
        a_records: &'a [Record],
        ttl_cap: u32,
    ) -> impl Iterator<Item = Record> + 'a {
        prefixes.iter().flat_map(move |p| {
            a_records.iter().filter_map(move |r| match &r.data {
                RData::A(a) if self.may_map(a.0, p) => Some(Record::from_rdata(
                    r.name.clone(),
                    rules::synthesized_ttl(r.ttl, ttl_cap),
                    RData::AAAA(AAAA(p.embed(a.0))),
                )),
                _ => None,
            })
        })
    }

    /// Builds the synthesized answer from the AAAA response (if any) and the
    /// A response for `target` (§5.1.6, §5.1.7). `None` when there is nothing
    /// usable to synthesize: the caller returns the original AAAA response.
    pub fn synthesize(
        &self,
        rules: &Rules<'_>,
        qname: &Name,
        aaaa: Option<&Message>,
        a: &Message,
    ) -> Option<Message> {
        if !rules::a_response_is_usable(Some(u16::from(a.metadata.response_code))) {
            return None;
        }
        let ttl_cap = rules::ttl_cap(aaaa.and_then(negative_ttl));

        // Chain records: those the AAAA response carried, then any the A
        // response adds beyond them (with `parallel_a` the A response carries
        // the whole chain itself).
        let mut answers: Vec<Record> = aaaa.map(|m| chain_records(&m.answers)).unwrap_or_default();
        for r in chain_records(&a.answers) {
            if !answers
                .iter()
                .any(|x| x.name == r.name && x.record_type() == r.record_type())
            {
                answers.push(r);
            }
        }
        let owner = chain_end(qname, &answers);
        let a_records: Vec<Record> = a
            .answers
            .iter()
            .filter(|r| r.record_type() == RecordType::A && r.name == owner)
            .cloned()
            .collect();
        let synthesized: Vec<Record> = self
            .synthesize_records(rules.prefixes, &a_records, ttl_cap)
            .collect();
        if synthesized.is_empty() {
            return None;
        }
        // SPEC §5: under `both`, native AAAA join in the configured order.
        let native: Vec<Record> = match (rules.policy, aaaa) {
            (ZonePolicy::Both, Some(m)) => m
                .answers
                .iter()
                .filter(|r| self.is_native_aaaa(r))
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        match rules.order {
            Order::SynthesizedFirst => answers.extend(synthesized.into_iter().chain(native)),
            Order::NativeFirst => answers.extend(native.into_iter().chain(synthesized)),
        }

        let template = aaaa.unwrap_or(a);
        let mut out = Message::new(
            template.metadata.id,
            template.metadata.message_type,
            template.metadata.op_code,
        );
        out.metadata = template.metadata;
        out.metadata.response_code = ResponseCode::NoError;
        // §5.5: we made these records; nothing vouches for them.
        out.metadata.authentic_data = false;
        // A proxy that made the records is not the authority for them.
        out.metadata.authoritative = false;
        out.metadata.truncation = false;
        out.queries = template.queries.clone();
        out.answers = answers;
        out.edns = template.edns.clone();
        Some(out)
    }
}

/// The CNAME and DNAME records of a section (DNAME is opaque to hickory-proto,
/// so it is matched by type).
pub(super) fn chain_records(records: &[Record]) -> Vec<Record> {
    records
        .iter()
        .filter(|r| matches!(r.record_type(), RecordType::CNAME | RecordType::DNAME))
        .cloned()
        .collect()
}
