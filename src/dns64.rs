//! DNS64: AAAA synthesis from A records (RFC 6147) with RFC 6052 address
//! embedding. Synchronous and I/O-free: the pipeline asks upstream, this
//! module decides what the answers mean and builds the synthesized answer.
//!
//! Data path position: `upstream → dns64 → filter → reply`, only for AAAA
//! queries from DNS64 clients.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::AAAA;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use ipnet::{Ipv4Net, Ipv6Net};
use serde::Serialize;

use crate::config::Dns64Config;

/// Prefix lengths RFC 6052 §2.2 defines an embedding for.
pub const PREFIX_LENGTHS: [u8; 6] = [32, 40, 48, 56, 64, 96];

/// Cap on the synthesized TTL when the AAAA response had no SOA (SPEC §3.6).
pub const NO_SOA_TTL_CAP: u32 = 600;

/// The well-known prefix 64:ff9b::/96 (RFC 6052 §2.1).
pub const WELL_KNOWN: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0);

/// RFC 1918 and RFC 6598 space that `strict_rfc6052` keeps out of the
/// well-known prefix (RFC 6052 §3.1).
const NON_GLOBAL: [(Ipv4Addr, u8); 4] = [
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    (Ipv4Addr::new(100, 64, 0, 0), 10),
];

/// A Pref64::/n: a validated NAT64 prefix of one of the six RFC 6052 lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    net: Ipv6Net,
}

impl Prefix {
    /// A prefix of length `len` (32, 40, 48, 56, 64 or 96) with no host bits set.
    pub fn new(addr: Ipv6Addr, len: u8) -> Result<Prefix, String> {
        if !PREFIX_LENGTHS.contains(&len) {
            return Err(format!(
                "prefix length /{len} is not one of 32, 40, 48, 56, 64, 96 (RFC 6052 §2.2)"
            ));
        }
        let net = Ipv6Net::new(addr, len).map_err(|e| e.to_string())?;
        if net.trunc().addr() != addr {
            return Err(format!("host bits are set after /{len}"));
        }
        // RFC 6052 §2.2: bits 64..71 ("u") MUST be zero.
        if addr.octets()[8] != 0 {
            return Err("bits 64-71 (the \"u\" octet) must be zero (RFC 6052 §2.2)".into());
        }
        Ok(Prefix { net })
    }

    /// Prefix length in bits.
    pub fn len(&self) -> u8 {
        self.net.prefix_len()
    }

    /// Never true: a prefix has one of six fixed lengths (for clippy's `len` lint).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The prefix as a network.
    pub fn net(&self) -> Ipv6Net {
        self.net
    }

    /// True for 64:ff9b::/96.
    pub fn is_well_known(&self) -> bool {
        self.net.prefix_len() == 96 && self.net.addr() == WELL_KNOWN
    }

    /// Byte positions of the four IPv4 octets (RFC 6052 §2.2): consecutive
    /// from the end of the prefix, skipping octet 8 (bits 64..71).
    fn positions(&self) -> [usize; 4] {
        let mut idx = usize::from(self.len() / 8);
        let mut out = [0; 4];
        for slot in &mut out {
            if idx == 8 {
                idx += 1;
            }
            *slot = idx;
            idx += 1;
        }
        out
    }

    /// Embeds `v4` under this prefix; the "u" octet and the suffix are zero.
    pub fn embed(&self, v4: Ipv4Addr) -> Ipv6Addr {
        let mut out = self.net.addr().octets();
        for (pos, byte) in self.positions().into_iter().zip(v4.octets()) {
            out[pos] = byte;
        }
        Ipv6Addr::from(out)
    }

    /// Extracts the embedded IPv4 address, or `None` when `v6` is outside the prefix.
    pub fn extract(&self, v6: Ipv6Addr) -> Option<Ipv4Addr> {
        if !self.net.contains(&v6) {
            return None;
        }
        let o = v6.octets();
        let [a, b, c, d] = self.positions().map(|p| o[p]);
        Some(Ipv4Addr::new(a, b, c, d))
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.net.fmt(f)
    }
}

impl FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Prefix, String> {
        let net: Ipv6Net = s
            .parse()
            .map_err(|_| "not an IPv6 prefix (expected e.g. 64:ff9b::/96)".to_owned())?;
        Prefix::new(net.addr(), net.prefix_len())
    }
}

impl Serialize for Prefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

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
    prefixes: Vec<Prefix>,
    exclude: Vec<Ipv6Net>,
    mapped: Vec<Ipv4Net>,
    never_map: Vec<Ipv4Net>,
    strict_rfc6052: bool,
    synthesize_on_error: bool,
}

impl Dns64 {
    /// Builds the rules from the typed config.
    pub fn new(cfg: &Dns64Config) -> Dns64 {
        Dns64 {
            prefixes: cfg.prefixes.clone(),
            exclude: cfg.exclude.clone(),
            mapped: cfg.mapped.clone(),
            never_map: cfg.never_map.clone(),
            strict_rfc6052: cfg.strict_rfc6052,
            synthesize_on_error: cfg.synthesize_on_error,
        }
    }

    /// The configured prefixes, in order.
    pub fn prefixes(&self) -> &[Prefix] {
        &self.prefixes
    }

    /// Decides from the upstream AAAA response (`None`: it timed out or failed,
    /// which RFC 6147 §5.1.3 treats as empty).
    pub fn after_aaaa(&self, qname: &Name, resp: Option<&Message>) -> AaaaVerdict {
        let Some(resp) = resp else {
            return AaaaVerdict::Synthesize {
                target: qname.clone(),
            };
        };
        match resp.metadata.response_code {
            // §5.1.2: NXDOMAIN is final.
            ResponseCode::NXDomain => AaaaVerdict::Return,
            ResponseCode::NoError => {
                if resp.answers.iter().any(|r| self.is_native_aaaa(r)) {
                    AaaaVerdict::Return
                } else {
                    // §5.1.5: synthesize for the last name of the chain.
                    AaaaVerdict::Synthesize {
                        target: chain_end(qname, &resp.answers),
                    }
                }
            }
            // §5.1.2: any other rcode is treated like an empty answer,
            // unless the operator wants synthesis only for NODATA.
            _ if self.synthesize_on_error => AaaaVerdict::Synthesize {
                target: qname.clone(),
            },
            _ => AaaaVerdict::Return,
        }
    }

    /// True for an AAAA record outside `dns64.exclude` (§5.1.4).
    fn is_native_aaaa(&self, r: &Record) -> bool {
        match &r.data {
            RData::AAAA(AAAA(v6)) => !self.exclude.iter().any(|n| n.contains(v6)),
            _ => false,
        }
    }

    /// Removes excluded AAAA records from the answer section (§5.1.4).
    pub fn remove_excluded(&self, msg: &mut Message) {
        msg.answers
            .retain(|r| r.record_type() != RecordType::AAAA || self.is_native_aaaa(r));
    }

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
        a_records: &'a [Record],
        ttl_cap: u32,
    ) -> impl Iterator<Item = Record> + 'a {
        self.prefixes.iter().flat_map(move |p| {
            a_records.iter().filter_map(move |r| match &r.data {
                RData::A(a) if self.may_map(a.0, p) => Some(Record::from_rdata(
                    r.name.clone(),
                    r.ttl.min(ttl_cap),
                    RData::AAAA(AAAA(p.embed(a.0))),
                )),
                _ => None,
            })
        })
    }

    /// Builds the synthesized answer from the AAAA response (if any) and the
    /// A response for `target` (§5.1.6, §5.1.7). `None` when there is nothing
    /// usable to synthesize: the caller returns the original AAAA response.
    pub fn synthesize(&self, qname: &Name, aaaa: Option<&Message>, a: &Message) -> Option<Message> {
        if a.metadata.response_code != ResponseCode::NoError {
            return None;
        }
        let ttl_cap = aaaa.and_then(negative_ttl).unwrap_or(NO_SOA_TTL_CAP);

        // Chain records: those the AAAA response carried, then any the A
        // response adds beyond them.
        let mut answers: Vec<Record> = aaaa.map(|m| chain_records(&m.answers)).unwrap_or_default();
        let start = chain_end(qname, &answers);
        for r in chain_records(&a.answers) {
            if !answers
                .iter()
                .any(|x| x.name == r.name && x.record_type() == r.record_type())
            {
                answers.push(r);
            }
        }
        let owner = chain_end(&start, &answers);
        let a_records: Vec<Record> = a
            .answers
            .iter()
            .filter(|r| r.record_type() == RecordType::A && r.name == owner)
            .cloned()
            .collect();
        let before = answers.len();
        answers.extend(self.synthesize_records(&a_records, ttl_cap));
        if answers.len() == before {
            return None;
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

/// The CNAME and DNAME records of a section (DNAME is opaque to hickory-proto,
/// so it is matched by type).
fn chain_records(records: &[Record]) -> Vec<Record> {
    records
        .iter()
        .filter(|r| matches!(r.record_type(), RecordType::CNAME | RecordType::DNAME))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use hickory_proto::op::{MessageType, OpCode};
    use hickory_proto::rr::rdata::{A, CNAME, SOA};

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    /// RFC 6052 §2.4, the table itself (192.0.2.33 under each length).
    const RFC6052_TABLE: [(&str, &str); 7] = [
        ("2001:db8::/32", "2001:db8:c000:221::"),
        ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
        ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
        ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
        ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
        ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
        ("64:ff9b::/96", "64:ff9b::192.0.2.33"),
    ];

    #[test]
    fn embedding_matches_the_rfc6052_table_for_every_prefix_length() {
        let v4: Ipv4Addr = "192.0.2.33".parse().unwrap();
        for (prefix, expected) in RFC6052_TABLE {
            let want: Ipv6Addr = expected.parse().unwrap();
            assert_eq!(p(prefix).embed(v4), want, "{prefix}");
        }
    }

    #[test]
    fn extraction_inverts_the_rfc6052_table() {
        let v4: Ipv4Addr = "192.0.2.33".parse().unwrap();
        for (prefix, expected) in RFC6052_TABLE {
            assert_eq!(
                p(prefix).extract(expected.parse().unwrap()),
                Some(v4),
                "{prefix}"
            );
        }
        assert_eq!(
            p("64:ff9b::/96").extract("2001:db8::1".parse().unwrap()),
            None
        );
    }

    #[test]
    fn u_octet_stays_zero_for_every_length() {
        let v4 = Ipv4Addr::new(255, 255, 255, 255);
        for (prefix, _) in RFC6052_TABLE {
            assert_eq!(p(prefix).embed(v4).octets()[8], 0, "{prefix}");
        }
    }

    #[test]
    fn prefix_lengths_outside_rfc6052_are_rejected() {
        assert!("2001:db8::/44".parse::<Prefix>().is_err());
        assert!("2001:db8::/128".parse::<Prefix>().is_err());
        assert!("2001:db8::1/96".parse::<Prefix>().is_err(), "host bits");
        assert!(
            "2001:db8:0:0:ff00::/96".parse::<Prefix>().is_err(),
            "u octet"
        );
    }

    fn rules(extra: &str) -> Dns64 {
        let c = Config::from_toml(&format!(
            "[upstream]\nservers=[\"127.0.0.1\"]\n[dns64]\n{extra}"
        ))
        .unwrap();
        Dns64::new(&c.dns64)
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn response(rcode: ResponseCode, answers: Vec<Record>, authorities: Vec<Record>) -> Message {
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        m.answers = answers;
        m.authorities = authorities;
        m
    }

    fn a(owner: &str, ttl: u32, ip: &str) -> Record {
        Record::from_rdata(name(owner), ttl, RData::A(A(ip.parse().unwrap())))
    }

    fn soa(ttl: u32, minimum: u32) -> Record {
        let s = SOA::new(name("ns.example."), name("h.example."), 1, 1, 1, 1, minimum);
        Record::from_rdata(name("example."), ttl, RData::SOA(s))
    }

    #[test]
    fn never_map_and_mapped_limit_what_is_synthesized() {
        let d = rules("mapped = [\"192.0.2.0/24\", \"127.0.0.0/8\"]\n");
        let wkp = p("64:ff9b::/96");
        assert!(d.may_map("192.0.2.1".parse().unwrap(), &wkp));
        assert!(
            !d.may_map("198.51.100.1".parse().unwrap(), &wkp),
            "outside mapped"
        );
        assert!(
            !d.may_map("127.0.0.1".parse().unwrap(), &wkp),
            "never_map wins"
        );
    }

    #[test]
    fn strict_rfc6052_refuses_private_space_under_the_well_known_prefix_only() {
        let d = rules("strict_rfc6052 = true\n");
        let ten: Ipv4Addr = "10.1.2.3".parse().unwrap();
        let cgn: Ipv4Addr = "100.64.0.1".parse().unwrap();
        assert!(!d.may_map(ten, &p("64:ff9b::/96")));
        assert!(!d.may_map(cgn, &p("64:ff9b::/96")));
        assert!(d.may_map(ten, &p("2001:db8:64::/96")));
        assert!(
            rules("").may_map(ten, &p("64:ff9b::/96")),
            "lenient by default"
        );
    }

    #[test]
    fn synthesized_ttl_is_min_of_a_ttl_and_soa_negative_ttl() {
        let d = rules("");
        let q = name("v4.example.");
        // SOA TTL 900, MINIMUM 120: negative TTL 120.
        let aaaa = response(ResponseCode::NoError, vec![], vec![soa(900, 120)]);
        let a_resp = response(
            ResponseCode::NoError,
            vec![
                a("v4.example.", 300, "192.0.2.1"),
                a("v4.example.", 60, "192.0.2.2"),
            ],
            vec![],
        );
        let out = d.synthesize(&q, Some(&aaaa), &a_resp).unwrap();
        let ttls: Vec<u32> = out.answers.iter().map(|r| r.ttl).collect();
        assert_eq!(ttls, vec![120, 60]);
    }

    #[test]
    fn synthesized_ttl_is_capped_at_600_without_an_soa() {
        let d = rules("");
        let a_resp = response(
            ResponseCode::NoError,
            vec![a("v4.example.", 3600, "192.0.2.1")],
            vec![],
        );
        let out = d.synthesize(&name("v4.example."), None, &a_resp).unwrap();
        assert_eq!(out.answers[0].ttl, 600);
    }

    #[test]
    fn several_prefixes_yield_one_aaaa_per_prefix_in_configured_order() {
        let d = rules("prefixes = [\"2001:db8:122:344::/96\", \"64:ff9b::/96\"]\n");
        let a_resp = response(
            ResponseCode::NoError,
            vec![a("v4.example.", 60, "192.0.2.33")],
            vec![],
        );
        let out = d.synthesize(&name("v4.example."), None, &a_resp).unwrap();
        let got: Vec<String> = out.answers.iter().map(|r| r.data.to_string()).collect();
        assert_eq!(got, vec!["2001:db8:122:344::c000:221", "64:ff9b::c000:221"]);
    }

    #[test]
    fn cname_chain_is_kept_and_synthesis_uses_its_last_name() {
        let d = rules("");
        let cname = Record::from_rdata(
            name("www.example."),
            100,
            RData::CNAME(CNAME(name("v4.example."))),
        );
        let aaaa = response(
            ResponseCode::NoError,
            vec![cname.clone()],
            vec![soa(60, 60)],
        );
        assert_eq!(
            d.after_aaaa(&name("www.example."), Some(&aaaa)),
            AaaaVerdict::Synthesize {
                target: name("v4.example.")
            }
        );
        let a_resp = response(
            ResponseCode::NoError,
            vec![a("v4.example.", 300, "192.0.2.1")],
            vec![],
        );
        let out = d
            .synthesize(&name("www.example."), Some(&aaaa), &a_resp)
            .unwrap();
        assert_eq!(out.answers.len(), 2);
        assert_eq!(out.answers[0], cname);
        assert_eq!(out.answers[1].name, name("v4.example."));
    }

    #[test]
    fn nxdomain_is_returned_and_errors_synthesize_only_when_allowed() {
        let q = name("x.example.");
        let nx = response(ResponseCode::NXDomain, vec![], vec![]);
        let sf = response(ResponseCode::ServFail, vec![], vec![]);
        assert_eq!(rules("").after_aaaa(&q, Some(&nx)), AaaaVerdict::Return);
        assert!(matches!(
            rules("").after_aaaa(&q, Some(&sf)),
            AaaaVerdict::Synthesize { .. }
        ));
        assert_eq!(
            rules("synthesize_on_error = false\n").after_aaaa(&q, Some(&sf)),
            AaaaVerdict::Return
        );
        assert!(matches!(
            rules("").after_aaaa(&q, None),
            AaaaVerdict::Synthesize { .. }
        ));
    }

    #[test]
    fn only_excluded_aaaa_counts_as_no_native_aaaa() {
        let d = rules("");
        let mapped = Record::from_rdata(
            name("m.example."),
            60,
            RData::AAAA(AAAA("::ffff:192.0.2.1".parse().unwrap())),
        );
        let resp = response(ResponseCode::NoError, vec![mapped], vec![]);
        assert!(matches!(
            d.after_aaaa(&name("m.example."), Some(&resp)),
            AaaaVerdict::Synthesize { .. }
        ));
    }

    #[test]
    fn a_answer_with_only_unmapped_addresses_synthesizes_nothing() {
        let d = rules("");
        let a_resp = response(
            ResponseCode::NoError,
            vec![a("lo.example.", 60, "127.0.0.1")],
            vec![],
        );
        assert!(d.synthesize(&name("lo.example."), None, &a_resp).is_none());
    }

    #[test]
    fn synthesized_answer_clears_ad() {
        let d = rules("");
        let mut aaaa = response(ResponseCode::NoError, vec![], vec![soa(60, 60)]);
        aaaa.metadata.authentic_data = true;
        let a_resp = response(
            ResponseCode::NoError,
            vec![a("v4.example.", 60, "192.0.2.1")],
            vec![],
        );
        let out = d
            .synthesize(&name("v4.example."), Some(&aaaa), &a_resp)
            .unwrap();
        assert!(!out.metadata.authentic_data);
    }
}
