//! NAT64 prefix discovery (RFC 7050): with `"discover"` in `dns64.prefixes`,
//! Pref64::/n is learned from the upstream's answer to `ipv4only.arpa. AAAA`,
//! as 464XLAT hosts (clatd, Android, iOS) learn it, instead of being written
//! into the config. A DNS64 upstream (a cloud resolver with DNS64 on, say)
//! synthesizes that answer from the well-known IPv4 addresses 192.0.0.170
//! and 192.0.0.171 (RFC 7050 §2.2, RFC 8880), so the prefix can be read back
//! out of it.
//!
//! Control path only: `app` asks at start-up and again when the answer's
//! TTL runs out (RFC 7050 §3: the Pref64 is valid for the TTL), bounded by
//! `dns64.discovery_min_interval` / `_max_interval`. The query goes straight
//! to the upstream servers, never through dns64d's own pipeline: dns64d
//! answers ipv4only.arpa itself from the prefixes it uses (RFC 8880 §7.1),
//! which would only teach it what it already believes.
//!
//! [`pref64`] is the RFC 7050 §3 heuristic on a reply's bytes, synchronous
//! and unit-tested; [`discover`] is the one exchange around it.

use std::net::Ipv6Addr;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use ipnet::Ipv6Net;

use crate::config::Dns64Config;
use crate::dns64::IPV4ONLY_ADDRS;
use crate::types::{PREFIX_LENGTHS, Prefix};
use crate::upstream::{UpstreamError, Upstreams};

/// The name RFC 7050 §2.2 reserves for discovery.
pub const IPV4ONLY_ARPA: &str = "ipv4only.arpa.";

/// What one discovery learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learned {
    /// Every Pref64::/n found, in answer order, each once.
    pub prefixes: Vec<Prefix>,
    /// The smallest TTL of the AAAA records they came from (RFC 7050 §3:
    /// how long the prefixes are valid).
    pub ttl: u32,
}

/// Why a discovery learned nothing.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// No upstream gave a reply.
    #[error("no upstream answered ipv4only.arpa. AAAA: {0}")]
    Upstream(#[from] UpstreamError),
    /// The reply is not a DNS message we can read.
    #[error("the upstream's reply to ipv4only.arpa. AAAA does not parse")]
    Unparseable,
    /// NXDOMAIN, SERVFAIL, REFUSED...
    #[error("the upstream answered ipv4only.arpa. AAAA with {0}")]
    Rcode(ResponseCode),
    /// No usable AAAA record (RFC 7050 §3: the network has no NAT64, or
    /// the upstream does no DNS64).
    #[error(
        "no AAAA record of ipv4only.arpa. holds 192.0.0.170 or 192.0.0.171 at an RFC 6052 \
         position: the upstream does no DNS64"
    )]
    NoPrefix,
}

/// The query: `ipv4only.arpa. IN AAAA`, RD=1, no EDNS (the upstream's
/// client code picks the ID).
pub fn query() -> Vec<u8> {
    let mut q = vec![0, 0, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["ipv4only", "arpa"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 28, 0, 1]);
    q
}

/// Asks `upstream` once (the group `ipv4only.arpa.` goes to: the default
/// one unless a `[[upstream.zone]]` covers it; its attempts and failover
/// apply) and reads the prefixes out of the reply.
pub async fn discover(upstream: &Upstreams) -> Result<Learned, DiscoveryError> {
    let reply = upstream.query(&query()).await?;
    pref64(&reply.bytes)
}

/// The RFC 7050 §3 heuristic on the reply to [`query`].
///
/// Each AAAA record owned by `ipv4only.arpa.` is searched for 192.0.0.170
/// and 192.0.0.171 at the bit positions RFC 6052 §2.2 gives for /32, /40,
/// /48, /56, /64 and /96, with the "u" octet (bits 64–71) zero. A record in
/// which a well-known address sits at more than one position is resolved
/// with the other well-known address (RFC 7050 §3): the position another
/// record confirms with it wins; a record that stays ambiguous is not used.
/// Other records (a CNAME, RRSIGs) are ignored.
pub fn pref64(reply: &[u8]) -> Result<Learned, DiscoveryError> {
    let msg = Message::from_vec(reply).map_err(|_| DiscoveryError::Unparseable)?;
    let rcode = msg.metadata.response_code;
    if rcode != ResponseCode::NoError {
        return Err(DiscoveryError::Rcode(rcode));
    }
    let owner = Name::from_ascii(IPV4ONLY_ARPA).expect("constant");
    // Per AAAA record: its TTL and its candidate (prefix, which WKA).
    let found: Vec<(u32, Vec<(Prefix, usize)>)> = msg
        .answers
        .iter()
        .filter(|r| r.record_type() == RecordType::AAAA && r.name == owner)
        .filter_map(|r| match &r.data {
            RData::AAAA(a) => Some((r.ttl, candidates(a.0))),
            _ => None,
        })
        .collect();
    let mut prefixes: Vec<Prefix> = Vec::new();
    let mut ttl = u32::MAX;
    for (i, (record_ttl, cands)) in found.iter().enumerate() {
        let chosen = match cands.as_slice() {
            [] => None,
            [one] => Some(one.0),
            several => {
                // Confirmed: another record has the same prefix with the other WKA.
                let confirmed: Vec<Prefix> = several
                    .iter()
                    .filter(|(p, wka)| {
                        found.iter().enumerate().any(|(j, (_, other))| {
                            j != i && other.iter().any(|(q, w)| q == p && w != wka)
                        })
                    })
                    .map(|(p, _)| *p)
                    .collect();
                match confirmed.as_slice() {
                    [one] => Some(*one),
                    _ => None,
                }
            }
        };
        if let Some(p) = chosen {
            ttl = ttl.min(*record_ttl);
            if !prefixes.contains(&p) {
                prefixes.push(p);
            }
        }
    }
    if prefixes.is_empty() {
        return Err(DiscoveryError::NoPrefix);
    }
    Ok(Learned { prefixes, ttl })
}

/// Every (prefix, index into [`IPV4ONLY_ADDRS`]) under which `v6` embeds a
/// well-known address.
fn candidates(v6: Ipv6Addr) -> Vec<(Prefix, usize)> {
    // RFC 6052 §2.2: bits 64–71 are zero in every embedding.
    if v6.octets()[8] != 0 {
        return Vec::new();
    }
    PREFIX_LENGTHS
        .iter()
        .filter_map(|&len| {
            let net = Ipv6Net::new(v6, len).ok()?.trunc();
            let p = Prefix::new(net.addr(), len).ok()?;
            let v4 = p.extract(v6)?;
            let wka = IPV4ONLY_ADDRS.iter().position(|&w| w == v4)?;
            Some((p, wka))
        })
        .collect()
}

/// When to ask again after a discovery whose answer had `ttl` (after a
/// failure: `None`, the minimum interval).
pub fn next_interval(cfg: &Dns64Config, ttl: Option<u32>) -> Duration {
    let (min, max) = (cfg.discovery_min_interval, cfg.discovery_max_interval);
    match ttl {
        Some(t) => Duration::from_secs(u64::from(t)).clamp(min, max),
        None => min,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode, Query};
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::{AAAA, CNAME};

    fn reply(rcode: ResponseCode, aaaa: &[(&str, u32)]) -> Vec<u8> {
        let owner = Name::from_ascii(IPV4ONLY_ARPA).unwrap();
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        m.add_query(Query::query(owner.clone(), RecordType::AAAA));
        for (a, ttl) in aaaa {
            m.add_answer(Record::from_rdata(
                owner.clone(),
                *ttl,
                RData::AAAA(AAAA(a.parse().unwrap())),
            ));
        }
        m.to_vec().unwrap()
    }

    fn learned(bytes: &[u8]) -> (Vec<String>, u32) {
        let l = pref64(bytes).unwrap();
        (l.prefixes.iter().map(|p| p.to_string()).collect(), l.ttl)
    }

    #[test]
    fn the_query_is_ipv4only_arpa_aaaa_with_rd() {
        let m = Message::from_vec(&query()).unwrap();
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.queries[0].name.to_ascii(), IPV4ONLY_ARPA);
        assert_eq!(m.queries[0].query_type, RecordType::AAAA);
    }

    #[test]
    fn the_well_known_prefix_is_read_from_both_well_known_addresses() {
        let r = reply(
            ResponseCode::NoError,
            &[("64:ff9b::c000:aa", 300), ("64:ff9b::c000:ab", 200)],
        );
        assert_eq!(learned(&r), (vec!["64:ff9b::/96".into()], 200));
    }

    #[test]
    fn every_rfc6052_length_is_found_at_its_own_position() {
        // The RFC 6052 §2.4 prefixes, with 192.0.0.170 embedded by hand.
        for (addr, prefix) in [
            ("2001:db8:c000:aa::", "2001:db8::/32"),
            ("2001:db8:1c0:0:aa::", "2001:db8:100::/40"),
            ("2001:db8:122:c000:0:aa00::", "2001:db8:122::/48"),
            ("2001:db8:122:3c0:0:aa:0:0", "2001:db8:122:300::/56"),
            ("2001:db8:122:344:c0:0:aa00:0", "2001:db8:122:344::/64"),
            ("2001:db8:122:344::c000:aa", "2001:db8:122:344::/96"),
        ] {
            let r = reply(ResponseCode::NoError, &[(addr, 60)]);
            assert_eq!(learned(&r).0, vec![prefix.to_string()], "{addr}");
        }
    }

    #[test]
    fn an_address_with_the_wka_at_two_positions_is_settled_by_the_other_wka() {
        // 192.0.0.170 sits at both the /32 and the /96 position of the
        // first address; the second confirms /96 with 192.0.0.171.
        let r = reply(
            ResponseCode::NoError,
            &[
                ("2001:db8:c000:aa::c000:aa", 60),
                ("2001:db8:c000:aa::c000:ab", 60),
            ],
        );
        assert_eq!(learned(&r).0, vec!["2001:db8:c000:aa::/96".to_string()]);
        // Alone, the first address is ambiguous and teaches nothing.
        let alone = reply(ResponseCode::NoError, &[("2001:db8:c000:aa::c000:aa", 60)]);
        assert!(matches!(pref64(&alone), Err(DiscoveryError::NoPrefix)));
    }

    #[test]
    fn several_nat64_prefixes_are_all_learned_in_answer_order() {
        let r = reply(
            ResponseCode::NoError,
            &[
                ("2001:db8:64::c000:aa", 600),
                ("64:ff9b::c000:aa", 900),
                ("2001:db8:64::c000:ab", 600),
            ],
        );
        assert_eq!(
            learned(&r),
            (
                vec!["2001:db8:64::/96".to_string(), "64:ff9b::/96".to_string()],
                600
            )
        );
    }

    #[test]
    fn addresses_without_a_well_known_address_or_with_the_u_octet_set_teach_nothing() {
        for addr in [
            "2001:db8::1",
            "2001:db8::c000:ac",
            "2001:db8:0:0:100::c000:aa",
        ] {
            let r = reply(ResponseCode::NoError, &[(addr, 60)]);
            assert!(
                matches!(pref64(&r), Err(DiscoveryError::NoPrefix)),
                "{addr}"
            );
        }
    }

    #[test]
    fn nodata_nxdomain_and_garbage_are_errors() {
        assert!(matches!(
            pref64(&reply(ResponseCode::NoError, &[])),
            Err(DiscoveryError::NoPrefix)
        ));
        assert!(matches!(
            pref64(&reply(ResponseCode::NXDomain, &[])),
            Err(DiscoveryError::Rcode(ResponseCode::NXDomain))
        ));
        assert!(matches!(
            pref64(&[0, 1, 0x81]),
            Err(DiscoveryError::Unparseable)
        ));
    }

    #[test]
    fn records_owned_by_another_name_are_ignored() {
        let owner = Name::from_ascii(IPV4ONLY_ARPA).unwrap();
        let other = Name::from_ascii("elsewhere.example.").unwrap();
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(owner.clone(), RecordType::AAAA));
        m.add_answer(Record::from_rdata(
            owner,
            60,
            RData::CNAME(CNAME(other.clone())),
        ));
        m.add_answer(Record::from_rdata(
            other,
            60,
            RData::AAAA(AAAA("64:ff9b::c000:aa".parse().unwrap())),
        ));
        assert!(matches!(
            pref64(&m.to_vec().unwrap()),
            Err(DiscoveryError::NoPrefix)
        ));
    }

    #[test]
    fn the_next_discovery_follows_the_ttl_within_the_bounds() {
        let cfg = crate::config::Config::from_toml(
            "[upstream]\nservers=[\"127.0.0.1\"]\n[dns64]\nprefixes=[\"discover\"]\n\
             discovery_min_interval=\"10s\"\ndiscovery_max_interval=\"1h\"\n",
        )
        .unwrap()
        .dns64;
        assert_eq!(next_interval(&cfg, Some(0)), Duration::from_secs(10));
        assert_eq!(next_interval(&cfg, Some(600)), Duration::from_secs(600));
        assert_eq!(next_interval(&cfg, Some(86_400)), Duration::from_secs(3600));
        assert_eq!(next_interval(&cfg, None), Duration::from_secs(10));
    }
}
