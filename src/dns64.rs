//! DNS64: AAAA synthesis from A records (RFC 6147) with RFC 6052 address
//! embedding. Synchronous and I/O-free: the pipeline asks upstream, this
//! module decides what the answers mean and builds the synthesized answer.
//!
//! Data path position: `upstream → dns64 → filter → reply`, only for AAAA
//! queries from DNS64 clients.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::AAAA;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use ipnet::{Ipv4Net, Ipv6Net};

use crate::config::Dns64Config;
use crate::policy::Rules;
// Re-exported: RFC 6052 embedding is DNS64's vocabulary; it lives in the
// leaf `types` so config, policy and wire can use it without a circle.
use crate::types::{Order, ZonePolicy};
pub use crate::types::{PREFIX_LENGTHS, Prefix, WELL_KNOWN};

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
        }
    }

    /// Decides from the upstream AAAA response (`None`: it timed out or failed,
    /// which RFC 6147 §5.1.3 treats as empty).
    pub fn after_aaaa(
        &self,
        policy: ZonePolicy,
        qname: &Name,
        resp: Option<&Message>,
    ) -> AaaaVerdict {
        let Some(resp) = resp else {
            return AaaaVerdict::Synthesize {
                target: qname.clone(),
            };
        };
        match resp.metadata.response_code {
            // §5.1.2: NXDOMAIN is final.
            ResponseCode::NXDomain => AaaaVerdict::Return,
            // `synthesize` and `both` want the A records whatever AAAA says.
            ResponseCode::NoError
                if policy == ZonePolicy::Native
                    && resp.answers.iter().any(|r| self.is_native_aaaa(r)) =>
            {
                AaaaVerdict::Return
            }
            // §5.1.5: synthesize for the last name of the chain.
            ResponseCode::NoError => AaaaVerdict::Synthesize {
                target: chain_end(qname, &resp.answers),
            },
            // §5.1.2: any other rcode is treated like an empty answer,
            // unless the operator wants synthesis only for NODATA.
            _ if self.synthesize_on_error => AaaaVerdict::Synthesize {
                target: qname.clone(),
            },
            _ => AaaaVerdict::Return,
        }
    }

    /// True for an address in `dns64.exclude` (§5.1.4).
    pub fn is_excluded(&self, v6: Ipv6Addr) -> bool {
        self.exclude.iter().any(|n| n.contains(&v6))
    }

    /// True for an AAAA record outside `dns64.exclude` (§5.1.4).
    fn is_native_aaaa(&self, r: &Record) -> bool {
        match &r.data {
            RData::AAAA(AAAA(v6)) => !self.exclude.iter().any(|n| n.contains(v6)),
            _ => false,
        }
    }

    /// Removes the AAAA records a client under `policy` must not see from a
    /// returned upstream answer: excluded ones (§5.1.4), or all of them under
    /// `synthesize` (translate-all).
    pub fn remove_unwanted_aaaa(&self, policy: ZonePolicy, msg: &mut Message) {
        msg.answers.retain(|r| {
            r.record_type() != RecordType::AAAA
                || (policy != ZonePolicy::Synthesize && self.is_native_aaaa(r))
        });
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
        prefixes: &'a [Prefix],
        a_records: &'a [Record],
        ttl_cap: u32,
    ) -> impl Iterator<Item = Record> + 'a {
        prefixes.iter().flat_map(move |p| {
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
    pub fn synthesize(
        &self,
        rules: &Rules<'_>,
        qname: &Name,
        aaaa: Option<&Message>,
        a: &Message,
    ) -> Option<Message> {
        if a.metadata.response_code != ResponseCode::NoError {
            return None;
        }
        let ttl_cap = aaaa.and_then(negative_ttl).unwrap_or(NO_SOA_TTL_CAP);

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
    use crate::policy::{Policy, to_wire};
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

    /// Synthesis rules plus the policy that picks per-name rules.
    struct T {
        d: Dns64,
        p: Policy,
    }

    impl T {
        fn synthesize(&self, q: &Name, aaaa: Option<&Message>, a: &Message) -> Option<Message> {
            self.d
                .synthesize(&self.p.rules(&to_wire(&q.to_ascii())), q, aaaa, a)
        }
        fn after_aaaa(&self, q: &Name, resp: Option<&Message>) -> AaaaVerdict {
            self.d
                .after_aaaa(self.p.rules(&to_wire(&q.to_ascii())).policy, q, resp)
        }
        fn may_map(&self, v4: Ipv4Addr, p: &Prefix) -> bool {
            self.d.may_map(v4, p)
        }
    }

    fn rules(extra: &str) -> T {
        let c = Config::from_toml(&format!(
            "[upstream]\nservers=[\"127.0.0.1\"]\n[dns64]\n{extra}"
        ))
        .unwrap();
        T {
            d: Dns64::new(&c.dns64),
            p: Policy::new(&c),
        }
    }

    fn aaaa(owner: &str, ip: &str) -> Record {
        Record::from_rdata(name(owner), 60, RData::AAAA(AAAA(ip.parse().unwrap())))
    }

    /// The answer section's RDATA as text, in order.
    fn rdata(m: Message) -> Vec<String> {
        m.answers.iter().map(|r| r.data.to_string()).collect()
    }

    const BOTH: &str = "[[dns64.zone]]\nsuffix = \"both.example.\"\npolicy = \"both\"\n[[dns64.zone]]\nsuffix = \"all.example.\"\npolicy = \"synthesize\"\n";

    #[test]
    fn both_policy_orders_synthesized_first_by_default_and_native_first_on_request() {
        let native = response(
            ResponseCode::NoError,
            vec![aaaa("x.both.example.", "2001:db8::1")],
            vec![],
        );
        let a_resp = response(
            ResponseCode::NoError,
            vec![a("x.both.example.", 60, "192.0.2.1")],
            vec![],
        );
        let q = name("x.both.example.");
        let t = rules(BOTH);
        assert!(
            matches!(
                t.after_aaaa(&q, Some(&native)),
                AaaaVerdict::Synthesize { .. }
            ),
            "both asks for A"
        );
        let got = rdata(t.synthesize(&q, Some(&native), &a_resp).unwrap());
        assert_eq!(got, vec!["64:ff9b::c000:201", "2001:db8::1"]);
        let t = rules(&format!("order = \"native-first\"\n{BOTH}"));
        let got = rdata(t.synthesize(&q, Some(&native), &a_resp).unwrap());
        assert_eq!(got, vec!["2001:db8::1", "64:ff9b::c000:201"]);
    }

    #[test]
    fn synthesize_policy_drops_native_aaaa() {
        let q = name("x.all.example.");
        let native = response(
            ResponseCode::NoError,
            vec![aaaa("x.all.example.", "2001:db8::1")],
            vec![],
        );
        let a_resp = response(
            ResponseCode::NoError,
            vec![a("x.all.example.", 60, "192.0.2.1")],
            vec![],
        );
        let t = rules(BOTH);
        assert!(matches!(
            t.after_aaaa(&q, Some(&native)),
            AaaaVerdict::Synthesize { .. }
        ));
        let got = rdata(t.synthesize(&q, Some(&native), &a_resp).unwrap());
        assert_eq!(got, vec!["64:ff9b::c000:201"]);
        let mut orig = native.clone();
        t.d.remove_unwanted_aaaa(ZonePolicy::Synthesize, &mut orig);
        assert!(orig.answers.is_empty());
    }

    /// The reverse name of `v6`, nibble by nibble (RFC 3596 §2.5).
    fn reverse(v6: Ipv6Addr) -> Name {
        let hex: Vec<String> = format!("{:032x}", u128::from(v6))
            .chars()
            .rev()
            .map(|c| c.to_string())
            .collect();
        Name::from_ascii(format!("{}.ip6.arpa.", hex.join("."))).unwrap()
    }

    #[test]
    fn ptr_of_a_synthesized_address_points_at_the_ipv4_reverse_name_for_every_prefix_length() {
        let v4: Ipv4Addr = "192.0.2.33".parse().unwrap();
        for (prefix, _) in RFC6052_TABLE {
            let pre = p(prefix);
            let target = ptr_target(&reverse(pre.embed(v4)), &[pre]).unwrap();
            assert_eq!(target, name("33.2.0.192.in-addr.arpa."), "{prefix}");
        }
    }

    #[test]
    fn ptr_outside_every_prefix_or_malformed_is_not_ours() {
        let wkp = [p("64:ff9b::/96")];
        assert_eq!(
            ptr_target(&reverse("2001:db8::1".parse().unwrap()), &wkp),
            None
        );
        assert_eq!(
            ptr_target(&name("1.0.0.2.ip6.arpa."), &wkp),
            None,
            "too few nibbles"
        );
        let bad = reverse(p("64:ff9b::/96").embed([192, 0, 2, 1].into()))
            .to_ascii()
            .replacen('1', "g", 1);
        assert_eq!(ptr_target(&name(&bad), &wkp), None, "non-hex label");
    }

    #[test]
    fn ipv4only_arpa_answers_under_every_prefix() {
        let owner = name("ipv4only.arpa.");
        let prefixes = [p("64:ff9b::/96"), p("2001:db8::/32")];
        let got: Vec<String> = ipv4only_records(&owner, RecordType::AAAA, &prefixes)
            .iter()
            .map(|r| r.data.to_string())
            .collect();
        assert_eq!(
            got,
            vec![
                "64:ff9b::c000:aa",
                "64:ff9b::c000:ab",
                "2001:db8:c000:aa::",
                "2001:db8:c000:ab::"
            ]
        );
        assert_eq!(ipv4only_records(&owner, RecordType::A, &prefixes).len(), 2);
        assert!(is_ipv4only(b"\x08IPv4only\x04ARPA\x00"));
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
