//! Names dns64d answers for itself: `ipv4only.arpa.` (RFC 7050, RFC 8880)
//! and the PTR target of an address inside a NAT64 prefix (RFC 6147 §5.3.1).

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::AAAA;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::types::Prefix;

/// TTL of locally answered `ipv4only.arpa.` records: the answer only changes
/// with our config, and RFC 7050 §3 clients re-discover when it expires.
pub const IPV4ONLY_TTL: u32 = 3600;

/// The well-known IPv4 addresses of `ipv4only.arpa.` (RFC 7050 §2.2, RFC 8880 §2).
pub const IPV4ONLY_ADDRS: [Ipv4Addr; 2] =
    [Ipv4Addr::new(192, 0, 0, 170), Ipv4Addr::new(192, 0, 0, 171)];

/// True for `ipv4only.arpa.` in wire form, any case.
pub fn is_ipv4only(qname: &[u8]) -> bool {
    qname.eq_ignore_ascii_case(b"\x08ipv4only\x04arpa\x00")
}

/// The records `ipv4only.arpa.` answers with locally (RFC 8880 §7.1): A, or
/// AAAA synthesized under every prefix so clients discover them (RFC 7050).
pub fn ipv4only_records(owner: &Name, qtype: RecordType, prefixes: &[Prefix]) -> Vec<Record> {
    let a = |v4| {
        Record::from_rdata(
            owner.clone(),
            IPV4ONLY_TTL,
            RData::A(hickory_proto::rr::rdata::A(v4)),
        )
    };
    match qtype {
        RecordType::A => IPV4ONLY_ADDRS.iter().map(|&v4| a(v4)).collect(),
        RecordType::AAAA => prefixes
            .iter()
            .flat_map(|p| {
                IPV4ONLY_ADDRS.iter().map(|&v4| {
                    Record::from_rdata(owner.clone(), IPV4ONLY_TTL, RData::AAAA(AAAA(p.embed(v4))))
                })
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// RFC 6147 §5.3.1: the in-addr.arpa name for a full ip6.arpa name whose
/// address lies inside one of `prefixes`, or `None` (forward untouched).
/// Any prefix length works because the whole 128-bit address is rebuilt
/// from its 32 nibble labels before extraction.
pub fn ptr_target(qname: &Name, prefixes: &[Prefix]) -> Option<Name> {
    let labels: Vec<&[u8]> = qname.iter().collect();
    if labels.len() != 34
        || !labels[32].eq_ignore_ascii_case(b"ip6")
        || !labels[33].eq_ignore_ascii_case(b"arpa")
    {
        return None;
    }
    let mut addr: u128 = 0;
    // Least significant nibble first (RFC 3596 §2.5).
    for (i, label) in labels[..32].iter().enumerate() {
        let [c] = label else { return None };
        let nibble = (*c as char).to_digit(16)?;
        addr |= u128::from(nibble) << (4 * i);
    }
    let v6 = Ipv6Addr::from(addr);
    let v4 = prefixes.iter().find_map(|p| p.extract(v6))?;
    let [a, b, c, d] = v4.octets();
    Name::from_ascii(format!("{d}.{c}.{b}.{a}.in-addr.arpa.")).ok()
}
