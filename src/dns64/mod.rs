//! DNS64: AAAA synthesis from A records (RFC 6147) with RFC 6052 address
//! embedding. Synchronous and I/O-free: the pipeline asks upstream, this
//! module decides what the answers mean and builds the synthesized answer.
//!
//! Data path position: `upstream → dns64 → filter → reply`, only for AAAA
//! queries from DNS64 clients.
//!
//! Files: [`rules`] (every RFC 6147 §5.1 decision, one function each, used
//! by both finishing paths), `synthesis` (the hickory-proto form), `ptr`
//! (PTR targets, `ipv4only.arpa.`); RFC 6052 embedding is
//! [`Prefix`](crate::types::Prefix); the wire form of synthesis is
//! `wire::rewrite::synthesize_aaaa`.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::AAAA;
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use ipnet::{Ipv4Net, Ipv6Net};

use crate::config::Dns64Config;
use crate::types::ZonePolicy;
// Re-exported: RFC 6052 embedding is DNS64's vocabulary; it lives in the
// leaf `types` so config, policy and wire can use it without a circle.
pub use crate::types::{PREFIX_LENGTHS, Prefix, WELL_KNOWN};

mod ptr;
pub mod rules;
mod synthesis;
#[cfg(test)]
mod tests;

pub use ptr::{IPV4ONLY_ADDRS, IPV4ONLY_TTL, ipv4only_records, is_ipv4only, ptr_target};

/// Cap on the synthesized TTL when the AAAA response had no SOA (SPEC §3.6).
pub const NO_SOA_TTL_CAP: u32 = 600;

/// RFC 1918 and RFC 6598 space that `strict_rfc6052` keeps out of the
/// well-known prefix (RFC 6052 §3.1).
const NON_GLOBAL: [(Ipv4Addr, u8); 4] = [
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    (Ipv4Addr::new(100, 64, 0, 0), 10),
];

/// What the AAAA response means for a DNS64 client (RFC 6147 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AaaaVerdict {
    /// Give the client this response (after removing excluded AAAA).
    Return,
    /// Ask for the A records of `target` (the end of any CNAME chain) and synthesize.
    Synthesize { target: Name },
}

/// Synthesis rules built from `[dns64]`.
#[derive(Debug, Clone)]
pub struct Dns64 {
    exclude: Vec<Ipv6Net>,
    mapped: Vec<Ipv4Net>,
    never_map: Vec<Ipv4Net>,
    strict_rfc6052: bool,
    synthesize_on_error: bool,
    /// Every configured prefix (global and per zone): an upstream AAAA
    /// inside one was synthesized already ([`rules::is_upstream_synthesized`]).
    prefixes: Vec<Prefix>,
}

impl Dns64 {
    /// Builds the rules from the typed config.
    pub fn new(cfg: &Dns64Config) -> Dns64 {
        Dns64 {
            exclude: cfg.exclude.clone(),
            mapped: cfg.mapped.clone(),
            never_map: cfg.never_map.clone(),
            strict_rfc6052: cfg.strict_rfc6052,
            synthesize_on_error: cfg.synthesize_on_error,
            prefixes: cfg
                .prefixes
                .iter()
                .chain(
                    cfg.zone
                        .iter()
                        .filter_map(|z| z.prefixes.as_ref())
                        .flatten(),
                )
                .copied()
                .collect(),
        }
    }

    /// Decides from the upstream AAAA response (`None`: it timed out or
    /// failed), by [`rules::after_aaaa`]; the A records to ask for are those
    /// of the end of the CNAME chain (§5.1.5).
    pub fn after_aaaa(
        &self,
        policy: ZonePolicy,
        qname: &Name,
        resp: Option<&Message>,
    ) -> AaaaVerdict {
        let facts = resp.map(|m| {
            let rcode = u16::from(m.metadata.response_code);
            rules::AaaaFacts {
                rcode,
                native_aaaa: m.answers.iter().filter(|r| self.is_native_aaaa(r)).count(),
                validation_failed: rules::validation_failed(
                    rcode,
                    extended_errors(m).map(|(code, _)| code),
                ),
            }
        });
        match self.decide_after_aaaa(facts, policy) {
            rules::AfterAaaa::Return => AaaaVerdict::Return,
            rules::AfterAaaa::Synthesize => AaaaVerdict::Synthesize {
                target: match resp {
                    Some(m) if m.metadata.response_code == ResponseCode::NoError => {
                        chain_end(qname, &m.answers)
                    }
                    _ => qname.clone(),
                },
            },
        }
    }

    /// [`rules::after_aaaa`] with this config's `synthesize_on_error`: the
    /// one call both finishing paths make on an AAAA response's facts.
    pub fn decide_after_aaaa(
        &self,
        aaaa: Option<rules::AaaaFacts>,
        policy: ZonePolicy,
    ) -> rules::AfterAaaa {
        rules::after_aaaa(aaaa, policy, self.synthesize_on_error)
    }

    /// True for an AAAA address that a DNS64 upstream of us made (inside one
    /// of our prefixes or 64:ff9b::/96): not native, and removed like an
    /// excluded one ([`rules::is_upstream_synthesized`]).
    pub fn is_upstream_synthesized(&self, v6: Ipv6Addr) -> bool {
        rules::is_upstream_synthesized(v6, &self.prefixes)
    }

    /// True for a native AAAA address (§5.1.1): neither excluded (§5.1.4)
    /// nor synthesized upstream.
    pub fn is_native(&self, v6: Ipv6Addr) -> bool {
        !self.is_excluded(v6) && !self.is_upstream_synthesized(v6)
    }

    /// AAAA answers of `msg` that a DNS64 upstream synthesized.
    pub fn upstream_synthesized(&self, msg: &Message) -> usize {
        msg.answers
            .iter()
            .filter(
                |r| matches!(&r.data, RData::AAAA(AAAA(v6)) if self.is_upstream_synthesized(*v6)),
            )
            .count()
    }

    /// True for an address in `dns64.exclude` (§5.1.4).
    pub fn is_excluded(&self, v6: Ipv6Addr) -> bool {
        self.exclude.iter().any(|n| n.contains(&v6))
    }

    /// True for a native AAAA record ([`Dns64::is_native`]).
    fn is_native_aaaa(&self, r: &Record) -> bool {
        match &r.data {
            RData::AAAA(AAAA(v6)) => self.is_native(*v6),
            _ => false,
        }
    }

    /// Removes the AAAA records a client under `policy` must not see from a
    /// returned upstream answer: excluded ones (§5.1.4) and those synthesized
    /// upstream, or all of them under `synthesize` (translate-all).
    pub fn remove_unwanted_aaaa(&self, policy: ZonePolicy, msg: &mut Message) {
        msg.answers.retain(|r| {
            r.record_type() != RecordType::AAAA
                || (policy != ZonePolicy::Synthesize && self.is_native_aaaa(r))
        });
    }
}

/// The RFC 8914 Extended DNS Errors of a decoded message: `(INFO-CODE,
/// EXTRA-TEXT)` (hickory-proto keeps option 15 as an unknown option).
pub fn extended_errors(msg: &Message) -> impl Iterator<Item = (u16, &[u8])> {
    msg.edns
        .iter()
        .flat_map(|e| e.options().options.iter())
        .filter_map(|(_, o)| match o {
            EdnsOption::Unknown(crate::wire::EDE_OPTION, data) if data.len() >= 2 => {
                Some((u16::from_be_bytes([data[0], data[1]]), &data[2..]))
            }
            _ => None,
        })
}

/// RFC 2308 §3 negative TTL: min(SOA TTL, SOA MINIMUM) of the authority SOA.
pub fn negative_ttl(msg: &Message) -> Option<u32> {
    msg.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
        _ => None,
    })
}

/// Follows CNAME records from `name`; bounded by the number of records so a
/// CNAME loop in a reply cannot spin.
pub fn chain_end(name: &Name, records: &[Record]) -> Name {
    let mut current = name.clone();
    for _ in 0..records.len() {
        let next = records.iter().find_map(|r| match &r.data {
            RData::CNAME(c) if r.name == current => Some(c.0.clone()),
            _ => None,
        });
        match next {
            Some(n) => current = n,
            None => break,
        }
    }
    current
}
