//! The fixture zone the fake upstream answers from.
//!
//! Every name a test relies on is a constant here, with a comment saying what it
//! holds and why: the assertions in the tests are derived from these records and
//! from SPEC.md, never from what dns64d happens to return.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::svcb::{Alpn, IpHint, SVCB, SvcParamKey, SvcParamValue};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, HTTPS, MX, NULL, PTR, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// Three A records with distinct TTLs (300, 200, 250); AAAA is NODATA with an SOA
/// whose negative TTL (3600) is above every A TTL, so synthesized TTLs show the A TTLs.
pub const A_ONLY: &str = "a-only.example.";
/// The A addresses of [`A_ONLY`] in upstream order, with their TTLs.
pub const A_ONLY_ADDRS: [(Ipv4Addr, u32); 3] = [
    (Ipv4Addr::new(192, 0, 2, 1), 300),
    (Ipv4Addr::new(192, 0, 2, 2), 200),
    (Ipv4Addr::new(198, 51, 100, 7), 250),
];

/// A 192.0.2.10, AAAA 2001:db8::10, TXT "dual".
pub const DUAL: &str = "dual.example.";
pub const DUAL_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
pub const DUAL_AAAA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);

/// AAAA 2001:db8::20 only; A is NODATA with the zone SOA.
pub const AAAA_ONLY: &str = "aaaa-only.example.";
pub const AAAA_ONLY_AAAA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x20);

/// AAAA ::ffff:192.0.2.30 only (inside the default `dns64.exclude`); A 192.0.2.30.
pub const MAPPED_ONLY: &str = "mapped-only.example.";
pub const MAPPED_ONLY_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 30);

/// AAAA 2001:db8::31 and ::ffff:192.0.2.31; A 192.0.2.31.
pub const PART_MAPPED: &str = "part-mapped.example.";
pub const PART_MAPPED_NATIVE: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x31);

/// CNAME chain.example. -> mid.example. -> a-only.example.
pub const CHAIN: &str = "chain.example.";
pub const CHAIN_MID: &str = "mid.example.";

/// DNAME dn.example. -> example.: a-only.dn.example. is answered with the DNAME,
/// a CNAME to a-only.example., and that name's data.
pub const DNAME_OWNER: &str = "dn.example.";
pub const VIA_DNAME: &str = "a-only.dn.example.";

/// Not in the zone: NXDOMAIN with the zone SOA.
pub const MISSING: &str = "missing.example.";

/// A 192.0.2.40 TTL 3600; AAAA NODATA with SOA TTL 900, MINIMUM 60: negative TTL 60.
pub const SOA_MIN_LOWER: &str = "soa-min-lower.example.";
pub const SOA_MIN_LOWER_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 40);
/// A 192.0.2.41 TTL 3600; AAAA NODATA with SOA TTL 45, MINIMUM 900: negative TTL 45.
pub const SOA_TTL_LOWER: &str = "soa-ttl-lower.example.";
pub const SOA_TTL_LOWER_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 41);
/// A 192.0.2.42 TTL 3600; AAAA NODATA with no SOA at all.
pub const NO_SOA: &str = "no-soa.example.";
pub const NO_SOA_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 42);

/// A 192.0.2.50; AAAA always answers SERVFAIL.
pub const AAAA_SERVFAIL: &str = "aaaa-servfail.example.";
pub const AAAA_SERVFAIL_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
/// AAAA 2001:db8::51; A always answers SERVFAIL.
pub const A_SERVFAIL: &str = "a-servfail.example.";
pub const A_SERVFAIL_AAAA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x51);
/// No records; A and AAAA both answer SERVFAIL.
pub const BROKEN: &str = "broken.example.";
/// TXT only: A and AAAA are both NODATA with the zone SOA.
pub const TXT_ONLY: &str = "txt-only.example.";

/// A 10.1.2.3 (RFC 1918).
pub const PRIVATE: &str = "private.example.";
pub const PRIVATE_A: Ipv4Addr = Ipv4Addr::new(10, 1, 2, 3);
/// A 100.64.1.2 (RFC 6598).
pub const CGNAT: &str = "cgnat.example.";
pub const CGNAT_A: Ipv4Addr = Ipv4Addr::new(100, 64, 1, 2);
/// A 127.0.0.1.
pub const LOOPBACK: &str = "loopback.example.";
/// A 169.254.1.1.
pub const LINK_LOCAL: &str = "link-local.example.";
/// A 127.0.0.2, 192.0.2.60, 169.254.9.9, 224.0.0.1 in that order: one usable address.
pub const MIXED_SCOPE: &str = "mixed-scope.example.";
pub const MIXED_SCOPE_USABLE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 60);

/// A 192.0.2.33, the RFC 6052 §2.4 example address.
pub const RFC6052: &str = "rfc6052.example.";
pub const RFC6052_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 33);

/// 40 A records 192.0.2.100 .. 192.0.2.139 (TTL 300); AAAA NODATA. 40 synthesized
/// AAAA (28 bytes each) do not fit in 512 bytes; the 40 A (16 bytes each) do not either.
pub const MANY: &str = "many.example.";
pub const MANY_COUNT: u8 = 40;

/// MX 10 mail.mx.example.; the answer carries A 192.0.2.70 for mail.mx.example. as glue
/// in the additional section.
pub const MX: &str = "mx.example.";
pub const MX_TARGET: &str = "mail.mx.example.";
pub const MX_TARGET_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 70);

/// A 192.0.2.80 with an RRSIG; AAAA NODATA (SOA with RRSIG); every reply sets AD=1.
/// RRSIGs are sent only when the query has DO=1, as a validating resolver does.
pub const SIGNED: &str = "signed.example.";
pub const SIGNED_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);

/// 20 TXT records of 250 bytes: over 5000 bytes, so any UDP answer is truncated
/// and the records only come over TCP.
pub const BIG_TXT: &str = "big-txt.example.";
pub const BIG_TXT_COUNT: usize = 20;

/// HTTPS 1 . alpn=h2 ipv4hint=192.0.2.90 ipv6hint=2001:db8::90 (and the same as SVCB);
/// A 192.0.2.90.
pub const HINTED: &str = "hinted.example.";
pub const HINTED_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 90);
pub const HINTED_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x90);

/// PTR for 192.0.2.33 ([`RFC6052_A`]): 33.2.0.192.in-addr.arpa. -> rfc6052.example.
pub const RFC6052_PTR: &str = "33.2.0.192.in-addr.arpa.";

/// A 192.0.2.99 and AAAA 2001:db8::99; every answer also carries A 192.0.2.99
/// for ns.extra-a.example. in the additional section, as some resolvers add.
pub const EXTRA_A: &str = "extra-a.example.";
pub const EXTRA_A_AAAA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x99);

/// TXT "short" with TTL 1 and A 192.0.2.111 with TTL 1: expires from a cache
/// within a test's patience.
pub const SHORT_TTL: &str = "short-ttl.example.";
/// TXT only; its negative answers (MX, say) carry an SOA with TTL 1 and MINIMUM
/// 3600: negative TTL min(1, 3600) = 1 (RFC 2308 §5).
pub const SHORT_NODATA: &str = "short-nodata.example.";
/// Not in the zone: NXDOMAIN with an SOA of TTL 3600 and MINIMUM 1: negative
/// TTL min(3600, 1) = 1.
pub const SHORT_NXDOMAIN: &str = "short-nxdomain.example.";

/// The question name that replies with a forged question carry.
pub const FORGED_QNAME: &str = "forged.example.";
/// The address that forged replies (wrong ID, spoofed source) carry for A queries.
pub const FORGED_A: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 66);
/// The address that forged replies carry for AAAA queries.
pub const FORGED_AAAA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xbad, 0, 0, 0, 0, 0x66);

const ZONE_APEX: &str = "example.";
const ZONE_SOA_TTL: u32 = 3600;
const ZONE_SOA_MINIMUM: u32 = 3600;

/// What an answer looks like before it becomes a message.
pub struct Answer {
    pub nxdomain: bool,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    pub authentic_data: bool,
}

/// How a name answers a negative (NODATA / NXDOMAIN) query.
#[derive(Clone, Copy)]
enum Negative {
    Soa { ttl: u32, minimum: u32 },
    NoSoa,
}

#[derive(Default)]
pub struct Zone {
    records: Vec<Record>,
    negative: HashMap<Name, Negative>,
    signed: Vec<Name>,
    /// Additional-section records sent with every answer for a name.
    extra: Vec<(Name, Record)>,
    /// DNAME owner and target (RFC 6672).
    dnames: Vec<(Name, Name)>,
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("fixture names are valid")
}

impl Zone {
    /// The fixture zone described by the constants above.
    pub fn fixture() -> Self {
        let mut z = Zone::default();
        for (addr, ttl) in A_ONLY_ADDRS {
            z.a(A_ONLY, ttl, addr);
        }
        z.a(DUAL, 300, DUAL_A);
        z.aaaa(DUAL, 300, DUAL_AAAA);
        z.add(DUAL, 300, RData::TXT(TXT::new(vec!["dual".into()])));
        z.aaaa(AAAA_ONLY, 300, AAAA_ONLY_AAAA);
        z.a(MAPPED_ONLY, 300, MAPPED_ONLY_A);
        z.aaaa(MAPPED_ONLY, 300, MAPPED_ONLY_A.to_ipv6_mapped());
        z.a(PART_MAPPED, 300, Ipv4Addr::new(192, 0, 2, 31));
        z.aaaa(PART_MAPPED, 300, PART_MAPPED_NATIVE);
        z.aaaa(
            PART_MAPPED,
            300,
            Ipv4Addr::new(192, 0, 2, 31).to_ipv6_mapped(),
        );
        z.add(CHAIN, 300, RData::CNAME(CNAME(name(CHAIN_MID))));
        z.add(CHAIN_MID, 300, RData::CNAME(CNAME(name(A_ONLY))));
        z.dnames.push((name(DNAME_OWNER), name(ZONE_APEX)));
        z.a(SOA_MIN_LOWER, 3600, SOA_MIN_LOWER_A);
        z.negative(SOA_MIN_LOWER, 900, 60);
        z.a(SOA_TTL_LOWER, 3600, SOA_TTL_LOWER_A);
        z.negative(SOA_TTL_LOWER, 45, 900);
        z.a(NO_SOA, 3600, NO_SOA_A);
        z.negative.insert(name(NO_SOA), Negative::NoSoa);
        z.a(AAAA_SERVFAIL, 300, AAAA_SERVFAIL_A);
        z.aaaa(A_SERVFAIL, 300, A_SERVFAIL_AAAA);
        z.add(TXT_ONLY, 300, RData::TXT(TXT::new(vec!["txt".into()])));
        z.add(BROKEN, 300, RData::TXT(TXT::new(vec!["broken".into()])));
        z.a(PRIVATE, 300, PRIVATE_A);
        z.a(CGNAT, 300, CGNAT_A);
        z.a(LOOPBACK, 300, Ipv4Addr::LOCALHOST);
        z.a(LINK_LOCAL, 300, Ipv4Addr::new(169, 254, 1, 1));
        z.a(MIXED_SCOPE, 300, Ipv4Addr::new(127, 0, 0, 2));
        z.a(MIXED_SCOPE, 300, MIXED_SCOPE_USABLE);
        z.a(MIXED_SCOPE, 300, Ipv4Addr::new(169, 254, 9, 9));
        z.a(MIXED_SCOPE, 300, Ipv4Addr::new(224, 0, 0, 1));
        z.a(RFC6052, 300, RFC6052_A);
        for i in 0..MANY_COUNT {
            z.a(MANY, 300, Ipv4Addr::new(192, 0, 2, 100 + i));
        }
        z.add(MX, 300, RData::MX(MX::new(10, name(MX_TARGET))));
        z.a(MX_TARGET, 300, MX_TARGET_A);
        for i in 0..BIG_TXT_COUNT {
            let text = format!("{i:02}{}", "x".repeat(248));
            z.add(BIG_TXT, 300, RData::TXT(TXT::new(vec![text])));
        }
        z.a(HINTED, 300, HINTED_V4);
        let svcb = SVCB::new(
            1,
            Name::root(),
            vec![
                (
                    SvcParamKey::Alpn,
                    SvcParamValue::Alpn(Alpn(vec!["h2".into()])),
                ),
                (
                    SvcParamKey::Ipv4Hint,
                    SvcParamValue::Ipv4Hint(IpHint(vec![A(HINTED_V4)])),
                ),
                (
                    SvcParamKey::Ipv6Hint,
                    SvcParamValue::Ipv6Hint(IpHint(vec![AAAA(HINTED_V6)])),
                ),
            ],
        );
        z.add(HINTED, 300, RData::HTTPS(HTTPS(svcb.clone())));
        z.add(HINTED, 300, RData::SVCB(svcb));
        z.add(RFC6052_PTR, 300, RData::PTR(PTR(name(RFC6052))));
        z.a(EXTRA_A, 300, Ipv4Addr::new(192, 0, 2, 99));
        z.aaaa(EXTRA_A, 300, EXTRA_A_AAAA);
        z.extra.push((
            name(EXTRA_A),
            Record::from_rdata(
                name("ns.extra-a.example."),
                300,
                RData::A(A(Ipv4Addr::new(192, 0, 2, 99))),
            ),
        ));
        z.a(SIGNED, 300, SIGNED_A);
        z.signed.push(name(SIGNED));
        z.add(SHORT_TTL, 1, RData::TXT(TXT::new(vec!["short".into()])));
        z.a(SHORT_TTL, 1, Ipv4Addr::new(192, 0, 2, 111));
        z.add(
            SHORT_NODATA,
            300,
            RData::TXT(TXT::new(vec!["nodata".into()])),
        );
        z.negative(SHORT_NODATA, 1, 3600);
        z.negative(SHORT_NXDOMAIN, 3600, 1);
        z
    }

    fn add(&mut self, owner: &str, ttl: u32, rdata: RData) {
        self.records
            .push(Record::from_rdata(name(owner), ttl, rdata));
    }

    fn a(&mut self, owner: &str, ttl: u32, addr: Ipv4Addr) {
        self.add(owner, ttl, RData::A(A(addr)));
    }

    fn aaaa(&mut self, owner: &str, ttl: u32, addr: Ipv6Addr) {
        self.add(owner, ttl, RData::AAAA(AAAA(addr)));
    }

    fn negative(&mut self, owner: &str, ttl: u32, minimum: u32) {
        self.negative
            .insert(name(owner), Negative::Soa { ttl, minimum });
    }

    fn exists(&self, qname: &Name) -> bool {
        self.records.iter().any(|r| &r.name == qname)
    }

    fn soa(&self, qname: &Name) -> Vec<Record> {
        let negative = self.negative.get(qname).copied().unwrap_or(Negative::Soa {
            ttl: ZONE_SOA_TTL,
            minimum: ZONE_SOA_MINIMUM,
        });
        match negative {
            Negative::NoSoa => Vec::new(),
            Negative::Soa { ttl, minimum } => vec![Record::from_rdata(
                name(ZONE_APEX),
                ttl,
                RData::SOA(SOA::new(
                    name("ns.example."),
                    name("hostmaster.example."),
                    2026112601,
                    7200,
                    900,
                    1209600,
                    minimum,
                )),
            )],
        }
    }

    /// Answers `qtype` for `qname` as a recursive resolver would: CNAMEs are followed
    /// inside the zone, MX targets get A/AAAA glue, signed names get RRSIGs when `dnssec_ok`.
    /// Records owned by `qname` keep the letter case of `qname`.
    pub fn lookup(&self, qname: &Name, qtype: RecordType, dnssec_ok: bool) -> Answer {
        let mut out = Answer {
            nxdomain: false,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            authentic_data: false,
        };
        let mut current = qname.clone();
        let mut signed = false;
        for _ in 0..8 {
            signed |= self.signed.contains(&current);
            if let Some((owner, target)) = self
                .dnames
                .iter()
                .find(|(owner, _)| owner.zone_of(&current) && owner != &current)
            {
                let rewritten = below(&current, owner).append_domain(target).expect("fits");
                out.answers.push(dname_record(owner, target));
                out.answers.push(Record::from_rdata(
                    current.clone(),
                    300,
                    RData::CNAME(CNAME(rewritten.clone())),
                ));
                current = rewritten;
                continue;
            }
            if !self.exists(&current) {
                out.nxdomain = true;
                out.authorities = self.soa(&current);
                break;
            }
            let owned: Vec<&Record> = self.records.iter().filter(|r| r.name == current).collect();
            let cname = owned.iter().find(|r| r.record_type() == RecordType::CNAME);
            if let (Some(cname), false) = (cname, qtype == RecordType::CNAME) {
                out.answers.push(self.owned_by(cname, &current));
                let RData::CNAME(CNAME(target)) = &cname.data else {
                    unreachable!("filtered on CNAME")
                };
                current = target.clone();
                continue;
            }
            let matching: Vec<Record> = owned
                .iter()
                .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
                .map(|r| self.owned_by(r, &current))
                .collect();
            if matching.is_empty() {
                out.authorities = self.soa(&current);
                if signed && dnssec_ok {
                    let soas = out.authorities.clone();
                    out.authorities.extend(soas.iter().map(rrsig_for));
                }
            } else {
                if signed && dnssec_ok {
                    let sig = rrsig_for(&matching[0]);
                    out.answers.extend(matching.iter().cloned());
                    out.answers.push(sig);
                } else {
                    out.answers.extend(matching.iter().cloned());
                }
                for record in &matching {
                    if let RData::MX(mx) = &record.data {
                        out.additionals.extend(
                            self.records
                                .iter()
                                .filter(|r| {
                                    r.name == mx.exchange
                                        && matches!(
                                            r.record_type(),
                                            RecordType::A | RecordType::AAAA
                                        )
                                })
                                .cloned(),
                        );
                    }
                }
            }
            break;
        }
        out.additionals.extend(
            self.extra
                .iter()
                .filter(|(owner, _)| owner == qname)
                .map(|(_, record)| record.clone()),
        );
        out.authentic_data = signed;
        out
    }

    /// A copy of `record` whose owner is spelled like `spelling` (same name, maybe other case).
    fn owned_by(&self, record: &Record, spelling: &Name) -> Record {
        let mut record = (*record).clone();
        record.name = spelling.clone();
        record
    }
}

/// The labels of `name` below `owner` (`a.b.owner.` -> `a.b`).
fn below(name: &Name, owner: &Name) -> Name {
    let keep = name.iter().count() - owner.iter().count();
    Name::from_labels(name.iter().take(keep)).expect("valid labels")
}

/// A DNAME record (RFC 6672 §2.1: the target name, uncompressed). hickory-proto
/// has no DNAME type, so the RDATA is written by hand.
fn dname_record(owner: &Name, target: &Name) -> Record {
    let mut rdata = Vec::new();
    for label in target.iter() {
        rdata.push(u8::try_from(label.len()).expect("label fits"));
        rdata.extend_from_slice(label);
    }
    rdata.push(0);
    Record::from_rdata(
        owner.clone(),
        300,
        RData::Unknown {
            code: RecordType::DNAME,
            rdata: NULL::with(rdata),
        },
    )
}

/// A stand-in RRSIG covering `record`'s RRset: type covered, algorithm 13, labels, original
/// TTL, then filler. Nobody validates it; tests only look at the type covered.
fn rrsig_for(record: &Record) -> Record {
    let mut rdata = Vec::new();
    rdata.extend_from_slice(&u16::from(record.record_type()).to_be_bytes());
    rdata.push(13);
    rdata.push(record.name.num_labels());
    rdata.extend_from_slice(&record.ttl.to_be_bytes());
    rdata.extend_from_slice(&[0x5a; 32]);
    Record::from_rdata(
        record.name.clone(),
        record.ttl,
        RData::Unknown {
            code: RecordType::RRSIG,
            rdata: NULL::with(rdata),
        },
    )
}

/// The type an RRSIG record covers, if `record` is an RRSIG.
pub fn rrsig_type_covered(record: &Record) -> Option<RecordType> {
    match &record.data {
        RData::Unknown {
            code: RecordType::RRSIG,
            rdata,
        } if rdata.anything.len() >= 2 => Some(RecordType::from(u16::from_be_bytes([
            rdata.anything[0],
            rdata.anything[1],
        ]))),
        _ if record.record_type() == RecordType::RRSIG => Some(RecordType::Unknown(0)),
        _ => None,
    }
}
