//! Differential tests of the zero-copy wire layer against hickory-proto, the
//! oracle: random valid messages are built and encoded with hickory-proto
//! (which compresses names), then
//! - the view must report what hickory-proto decodes from the same bytes;
//! - every rewrite must decode with hickory-proto to exactly the message the
//!   same change makes on hickory-proto's side;
//! - arbitrary and mutated bytes never panic (the fuzz target's checks).

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Edns, Message as HMessage, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, NULL, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name as HName, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use proptest::prelude::*;

use dns64d::dns64::rules::{synthesized_ttl, validation_failed};
use dns64d::dns64::{self, Dns64, Prefix};
use dns64d::wire::rewrite::{self, RewriteError};
use dns64d::wire::{Message, Rr, Section, rtype};

#[path = "../fuzz/check.rs"]
mod check;

/// Names sharing suffixes, so hickory-proto's encoder compresses them.
const NAMES: [&str; 8] = [
    "example.com.",
    "www.example.com.",
    "api.svc.example.com.",
    "v4.cdn.example.net.",
    "cdn.example.net.",
    "ns1.example.com.",
    "mail.example.com.",
    "x.y.z.example.org.",
];

fn name(i: usize, case: u64) -> HName {
    let s: String = NAMES[i % NAMES.len()]
        .chars()
        .enumerate()
        .map(|(k, c)| {
            if case >> (k % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    HName::from_ascii(&s).unwrap()
}

/// A record description proptest can shrink: (kind, owner, target, ttl, n).
type Spec = (u8, usize, usize, u32, u32);

fn record((kind, owner, target, ttl, n): Spec) -> Record {
    let owner_name = name(owner, u64::from(n));
    let other = name(target, u64::from(n).rotate_left(7));
    let data = match kind % 11 {
        0..=2 => RData::A(A(Ipv4Addr::from(n))),
        3 => RData::AAAA(AAAA(Ipv6Addr::from(u128::from(n) << 64 | 1))),
        4 => RData::CNAME(CNAME(other)),
        5 => RData::MX(MX::new(n as u16, other)),
        6 => RData::TXT(TXT::new(vec![format!("t{n}")])),
        7 => RData::NS(NS(other)),
        8 => RData::SRV(SRV::new(1, 2, n as u16, other)),
        9 => RData::PTR(PTR(other)),
        _ => {
            // RRSIG covering A or AAAA; opaque to hickory-proto without its
            // DNSSEC feature, which suits the byte-level comparison.
            let covered: u16 = if n % 2 == 0 { 1 } else { 28 };
            let mut d = covered.to_be_bytes().to_vec();
            d.extend_from_slice(&[8, 2, 0, 0, 0, 60]);
            RData::Unknown {
                code: RecordType::RRSIG,
                rdata: NULL::with(d),
            }
        }
    };
    Record::from_rdata(owner_name, ttl, data)
}

fn soa(owner: usize, ttl: u32, minimum: u32) -> Record {
    let s = SOA::new(name(5, 0), name(6, 3), 7, 3600, 600, 86400, minimum);
    Record::from_rdata(name(owner, 0), ttl, RData::SOA(s))
}

prop_compose! {
    fn message()(
        id in any::<u16>(),
        flags in any::<u8>(),
        rcode in 0u8..4,
        q in (0usize..8, any::<u64>(), prop::bool::ANY),
        answers in prop::collection::vec((any::<u8>(), 0usize..8, 0usize..8, 0u32..100_000, any::<u32>()), 0..10),
        authority in prop::collection::vec((any::<u8>(), 0usize..8, 0usize..8, 0u32..100_000, any::<u32>()), 0..3),
        with_soa in prop::option::of((0usize..8, 0u32..5000, 0u32..5000)),
        additional in prop::collection::vec((any::<u8>(), 0usize..8, 0usize..8, 0u32..100_000, any::<u32>()), 0..5),
        edns in prop::option::of((512u16..4096, prop::bool::ANY, prop::option::of(any::<u16>()))),
    ) -> HMessage {
        let mut m = HMessage::new(id, MessageType::Response, OpCode::Query);
        m.metadata.authoritative = flags & 1 != 0;
        m.metadata.recursion_desired = flags & 2 != 0;
        m.metadata.recursion_available = flags & 4 != 0;
        m.metadata.authentic_data = flags & 8 != 0;
        m.metadata.checking_disabled = flags & 16 != 0;
        m.metadata.truncation = flags & 32 != 0;
        m.metadata.response_code = ResponseCode::from_low(rcode);
        let qtype = if q.2 { RecordType::A } else { RecordType::AAAA };
        m.add_query(Query::query(name(q.0, q.1), qtype));
        // CNAMEs from the question name make chains for synthesis.
        m.answers = answers.into_iter().map(record).collect();
        m.authorities = authority.into_iter().map(record).collect();
        if let Some((owner, ttl, minimum)) = with_soa {
            m.authorities.push(soa(owner, ttl, minimum));
        }
        m.additionals = additional.into_iter().map(record).collect();
        if let Some((payload, dnssec_ok, option)) = edns {
            let mut e = Edns::new();
            e.set_max_payload(payload);
            e.set_dnssec_ok(dnssec_ok);
            if let Some(code) = option {
                e.options_mut().insert(EdnsOption::Unknown(65001, code.to_be_bytes().to_vec()));
            }
            m.edns = Some(e);
        }
        m
    }
}

/// One line per record, case preserved, RDATA in full.
fn dump(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{}|{}|{:?}|{:?}", r.name, r.ttl, r.dns_class, r.data))
        .collect()
}

fn dump_msg(m: &HMessage) -> (String, Vec<String>, Vec<String>, Vec<String>, Vec<String>) {
    (
        format!("{:?}|{:?}", m.metadata, m.edns),
        m.queries
            .iter()
            .map(|q| format!("{}|{:?}|{:?}", q.name(), q.query_type(), q.query_class()))
            .collect(),
        dump(&m.answers),
        dump(&m.authorities),
        dump(&m.additionals),
    )
}

fn is_a_or_its_rrsig(r: &Record) -> bool {
    r.record_type() == RecordType::A
        || (r.record_type() == RecordType::RRSIG
            && matches!(&r.data, RData::Unknown { rdata, .. } if rdata.anything.get(..2) == Some(&[0, 1][..])))
}

fn same_name(a: &HName, b: &HName) -> bool {
    a.to_string().eq_ignore_ascii_case(&b.to_string())
}

/// The view's record against hickory-proto's.
fn same_record(v: &Rr<'_>, h: &Record) {
    assert_eq!(v.owner().to_string(), h.name.to_string());
    assert_eq!(v.rtype, u16::from(h.record_type()));
    assert_eq!(v.class, u16::from(h.dns_class));
    assert_eq!(v.ttl(), h.ttl);
    match &h.data {
        RData::A(a) => assert_eq!(v.ipv4(), Some(a.0)),
        RData::AAAA(a) => assert_eq!(v.ipv6(), Some(a.0)),
        RData::CNAME(c) => assert_eq!(v.rdata_name(0).unwrap().to_string(), c.0.to_string()),
        RData::NS(c) => assert_eq!(v.rdata_name(0).unwrap().to_string(), c.0.to_string()),
        RData::PTR(c) => assert_eq!(v.rdata_name(0).unwrap().to_string(), c.0.to_string()),
        RData::MX(mx) => {
            assert_eq!(
                v.rdata_name(0).unwrap().to_string(),
                mx.exchange.to_string()
            )
        }
        RData::SRV(srv) => {
            assert_eq!(v.rdata_name(0).unwrap().to_string(), srv.target.to_string())
        }
        RData::SOA(s) => {
            assert_eq!(v.rdata_name(0).unwrap().to_string(), s.mname.to_string());
            assert_eq!(v.rdata_name(1).unwrap().to_string(), s.rname.to_string());
            assert_eq!(v.soa_negative_ttl(), Some(h.ttl.min(s.minimum)));
        }
        RData::Unknown { rdata, .. } => assert_eq!(v.rdata(), &rdata.anything[..]),
        _ => {}
    }
}

/// The end of the CNAME chain from the question name, at most one step per
/// CNAME record (in a CNAME loop any stopping point is as good as another;
/// this is the one the view documents).
fn chain_end(m: &HMessage) -> HName {
    let mut current = m.queries[0].name().clone();
    let cnames = m
        .answers
        .iter()
        .filter(|r| r.record_type() == RecordType::CNAME)
        .count();
    for _ in 0..cnames {
        let next = m.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(c) if same_name(&r.name, &current) => Some(c.0.clone()),
            _ => None,
        });
        match next {
            Some(n) => current = n,
            None => break,
        }
    }
    current
}

fn prefixes() -> [Prefix; 2] {
    [
        "64:ff9b::/96".parse().unwrap(),
        "2001:db8:100::/40".parse().unwrap(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn view_reports_what_hickory_decodes(m in message()) {
        let bytes = m.to_vec().unwrap();
        let h = HMessage::from_vec(&bytes).unwrap();
        let v = Message::parse(&bytes).unwrap();
        prop_assert!(!v.has_exotic_pointers());
        let hd = v.header();
        prop_assert_eq!(hd.id(), h.metadata.id);
        prop_assert_eq!(hd.qr(), true);
        prop_assert_eq!(hd.aa(), h.metadata.authoritative);
        prop_assert_eq!(hd.tc(), h.metadata.truncation);
        prop_assert_eq!(hd.rd(), h.metadata.recursion_desired);
        prop_assert_eq!(hd.ra(), h.metadata.recursion_available);
        prop_assert_eq!(hd.ad(), h.metadata.authentic_data);
        prop_assert_eq!(hd.cd(), h.metadata.checking_disabled);
        prop_assert_eq!(v.rcode(), u16::from(h.metadata.response_code));
        let q = v.question().unwrap();
        prop_assert_eq!(q.name.to_string(), h.queries[0].name().to_string());
        prop_assert_eq!(q.qtype, u16::from(h.queries[0].query_type()));
        prop_assert_eq!(q.qclass, u16::from(h.queries[0].query_class()));
        for (s, hs) in [
            (Section::Answer, &h.answers),
            (Section::Authority, &h.authorities),
        ] {
            prop_assert_eq!(v.section(s).count(), hs.len());
            for (a, b) in v.section(s).zip(hs.iter()) {
                same_record(&a, b);
            }
        }
        let extra: Vec<_> = v.section(Section::Additional).filter(|r| r.rtype != rtype::OPT).collect();
        prop_assert_eq!(extra.len(), h.additionals.len());
        for (a, b) in extra.iter().zip(h.additionals.iter()) {
            same_record(a, b);
        }
        match (v.opt(), &h.edns) {
            (Some(o), Some(e)) => {
                prop_assert_eq!(o.payload(), e.max_payload());
                prop_assert_eq!(o.dnssec_ok(), e.flags().dnssec_ok);
                prop_assert_eq!(o.version(), e.version());
                prop_assert_eq!(o.options().count(), e.options().as_ref().len());
            }
            (None, None) => {}
            _ => prop_assert!(false, "EDNS presence differs"),
        }
        let end = v.chain_end().unwrap();
        prop_assert!(end.to_string().eq_ignore_ascii_case(&chain_end(&h).to_string()));
        let s = v.classify();
        prop_assert_eq!(usize::from(s.a), h.all_sections().filter(|r| r.record_type() == RecordType::A).count());
        prop_assert_eq!(usize::from(s.cname), h.answers.iter().filter(|r| r.record_type() == RecordType::CNAME).count());
    }

    #[test]
    fn stripping_equals_removing_a_and_its_rrsigs_in_hickory(m in message()) {
        let bytes = m.to_vec().unwrap();
        let v = Message::parse(&bytes).unwrap();
        let mut out = Vec::new();
        let removed = rewrite::strip_type(&v, rtype::A, &mut out).unwrap();
        let mut want = HMessage::from_vec(&bytes).unwrap();
        let before = want.all_sections().count();
        want.answers.retain(|r| !is_a_or_its_rrsig(r));
        want.authorities.retain(|r| !is_a_or_its_rrsig(r));
        want.additionals.retain(|r| !is_a_or_its_rrsig(r));
        prop_assert_eq!(removed, before - want.all_sections().count());
        let got = HMessage::from_vec(&out).unwrap();
        prop_assert_eq!(dump_msg(&got), dump_msg(&want));
        prop_assert!(out.len() <= bytes.len() || removed == 0);
    }

    #[test]
    fn synthesis_equals_the_aaaa_answer_built_with_hickory(m in message(), cap in 0u32..100_000) {
        let bytes = m.to_vec().unwrap();
        let v = Message::parse(&bytes).unwrap();
        let owner = v.chain_end().unwrap();
        let prefixes = prefixes();
        let mut out = Vec::new();
        let made = rewrite::synthesize_aaaa(&v, &owner, &prefixes, |t| synthesized_ttl(t, cap), |_, _| true, &mut out).unwrap();

        let h = HMessage::from_vec(&bytes).unwrap();
        let end = chain_end(&h);
        let mut want = HMessage::new(h.metadata.id, MessageType::Response, OpCode::Query);
        want.metadata = h.metadata;
        want.metadata.authoritative = false;
        want.metadata.authentic_data = false;
        want.metadata.truncation = false;
        want.add_query(Query::query(h.queries[0].name().clone(), RecordType::AAAA));
        want.answers = h.answers.iter().filter(|r| r.record_type() == RecordType::CNAME).cloned().collect();
        for p in &prefixes {
            for r in &h.answers {
                if let RData::A(a) = &r.data
                    && same_name(&r.name, &end)
                    && r.dns_class == DNSClass::IN
                {
                    let ttl = if r.ttl > i32::MAX as u32 { 0 } else { r.ttl };
                    let mut aaaa = Record::from_rdata(r.name.clone(), ttl.min(cap), RData::AAAA(AAAA(p.embed(a.0))));
                    aaaa.dns_class = r.dns_class;
                    want.answers.push(aaaa);
                }
            }
        }
        want.edns = h.edns.clone();
        let synthesized = want.answers.iter().filter(|r| r.record_type() == RecordType::AAAA).count();
        prop_assert_eq!(made, synthesized);
        let got = HMessage::from_vec(&out).unwrap();
        prop_assert_eq!(dump_msg(&got), dump_msg(&want));
    }

    #[test]
    fn truncation_keeps_a_prefix_of_whole_answers_that_fits(m in message(), frac in 0.0f64..1.2) {
        let bytes = m.to_vec().unwrap();
        let limit = 12 + (bytes.len() as f64 * frac) as usize;
        let h = HMessage::from_vec(&bytes).unwrap();
        let mut buf = bytes.clone();
        let cut = rewrite::truncate_udp(&mut buf, limit).unwrap();
        let got = HMessage::from_vec(&buf).unwrap();
        prop_assert_eq!(cut, bytes.len() > limit);
        if !cut {
            prop_assert_eq!(&buf, &bytes);
            return Ok(());
        }
        prop_assert!(buf.len() <= limit || got.answers.is_empty());
        prop_assert_eq!(&got.edns, &h.edns);
        prop_assert!(got.additionals.is_empty());
        let k = got.answers.len();
        prop_assert_eq!(dump(&got.answers), dump(&h.answers[..k]));
        let tc_needed = k < h.answers.len() || got.authorities.len() < h.authorities.len();
        prop_assert_eq!(got.metadata.truncation, h.metadata.truncation || tc_needed);
        if !got.authorities.is_empty() {
            prop_assert_eq!(dump(&got.authorities), dump(&h.authorities));
        }
        // Maximal: one more answer record would not have fitted.
        let v = Message::parse(&bytes).unwrap();
        let opt_len = v.opt().map_or(0, |o| o.end - o.at);
        if let Some(next) = v.section(Section::Answer).nth(k) {
            prop_assert!(next.end() + opt_len > limit);
        }
    }

    #[test]
    fn set_edns_equals_hickory_edns_with_the_extended_error(m in message(), payload in 512u16..4096, dnssec_ok in prop::bool::ANY, text in "[a-z ]{0,30}") {
        let bytes = m.to_vec().unwrap();
        let mut buf = bytes.clone();
        rewrite::set_edns(&mut buf, payload, dnssec_ok, Some((22, &text))).unwrap();
        let h = HMessage::from_vec(&bytes).unwrap();
        let got = HMessage::from_vec(&buf).unwrap();
        let e = got.edns.as_ref().unwrap();
        prop_assert_eq!(e.max_payload(), payload);
        prop_assert_eq!(e.flags().dnssec_ok, dnssec_ok);
        let mut ede = 22u16.to_be_bytes().to_vec();
        ede.extend_from_slice(text.as_bytes());
        let option = e.options().as_ref().iter().find(|(c, _)| u16::from(*c) == 15).map(|(_, o)| o.clone());
        prop_assert_eq!(option, Some(EdnsOption::Unknown(15, ede)));
        prop_assert_eq!(dump(&got.answers), dump(&h.answers));
        prop_assert_eq!(dump(&got.authorities), dump(&h.authorities));
        prop_assert_eq!(dump(&got.additionals), dump(&h.additionals));
    }

    #[test]
    fn extended_errors_equal_the_ede_options_hickory_decodes(
        m in message(),
        edes in prop::collection::vec((any::<u16>(), "[a-z ]{0,12}"), 0..3),
    ) {
        let mut m = m;
        let edns = m.edns.get_or_insert_with(Edns::new);
        for (code, text) in &edes {
            let mut data = code.to_be_bytes().to_vec();
            data.extend_from_slice(text.as_bytes());
            edns.options_mut().insert(EdnsOption::Unknown(15, data));
        }
        let bytes = m.to_vec().unwrap();
        let v = Message::parse(&bytes).unwrap();
        let h = HMessage::from_vec(&bytes).unwrap();
        let wire: Vec<(u16, Vec<u8>)> = v.extended_errors().map(|(c, t)| (c, t.to_vec())).collect();
        let hickory: Vec<(u16, Vec<u8>)> = dns64::extended_errors(&h).map(|(c, t)| (c, t.to_vec())).collect();
        prop_assert_eq!(&wire, &hickory);
        prop_assert_eq!(wire.len(), edes.len());
        // The fact both finishing paths read (§5.5) agrees.
        let rcode = v.rcode();
        prop_assert_eq!(
            validation_failed(rcode, wire.iter().map(|(c, _)| *c)),
            validation_failed(u16::from(h.metadata.response_code), hickory.iter().map(|(c, _)| *c))
        );
    }

    #[test]
    fn aaaa_synthesized_upstream_are_counted_alike_on_the_wire_and_in_hickory(
        m in message(),
        wkp in prop::collection::vec(any::<u32>(), 0..4),
    ) {
        let mut m = m;
        let owner = m.queries[0].name().clone();
        for v4 in wkp {
            let v6 = Prefix::new("64:ff9b::".parse().unwrap(), 96).unwrap().embed(Ipv4Addr::from(v4));
            m.answers.push(Record::from_rdata(owner.clone(), 60, RData::AAAA(AAAA(v6))));
        }
        let bytes = m.to_vec().unwrap();
        let cfg = dns64d::config::Config::from_toml("[upstream]\nservers = [\"127.0.0.1:53\"]\n[dns64]\nprefixes = [\"2001:db8:64::/96\"]\n").unwrap();
        let d = Dns64::new(&cfg.dns64);
        let v = Message::parse(&bytes).unwrap();
        let wire = v
            .section(Section::Answer)
            .filter_map(|r| r.ipv6())
            .filter(|&v6| d.is_upstream_synthesized(v6))
            .count();
        prop_assert_eq!(wire, d.upstream_synthesized(&HMessage::from_vec(&bytes).unwrap()));
    }

    #[test]
    fn ttl_ageing_equals_hickory_ttl_arithmetic(m in message(), elapsed in 0u32..50_000, cap in 0u32..100_000) {
        let bytes = m.to_vec().unwrap();
        let mut buf = bytes.clone();
        rewrite::adjust_ttls(&mut buf, elapsed, cap).unwrap();
        let mut want = HMessage::from_vec(&bytes).unwrap();
        for r in want.answers.iter_mut().chain(want.authorities.iter_mut()).chain(want.additionals.iter_mut()) {
            r.ttl = r.ttl.saturating_sub(elapsed).min(cap);
        }
        prop_assert_eq!(dump_msg(&HMessage::from_vec(&buf).unwrap()), dump_msg(&want));
    }

    #[test]
    fn question_case_is_restored_byte_for_byte(m in message(), case in any::<u64>()) {
        let bytes = m.to_vec().unwrap();
        let v = Message::parse(&bytes).unwrap();
        let q = v.question().unwrap();
        // The client's spelling of the same name.
        let client_name = HName::from_ascii(q.name.to_string().chars().enumerate().map(|(k, c)| {
            if case >> (k % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }
        }).collect::<String>()).unwrap();
        let mut client = client_name.to_bytes().unwrap();
        client.extend_from_slice(&q.qtype.to_be_bytes());
        client.extend_from_slice(&q.qclass.to_be_bytes());
        let mut buf = bytes.clone();
        rewrite::restore_question_case(&mut buf, &client).unwrap();
        prop_assert_eq!(&buf[12..12 + client.len()], &client[..]);
        let got = HMessage::from_vec(&buf).unwrap();
        prop_assert_eq!(got.queries[0].name().to_string(), client_name.to_string());
        prop_assert_eq!(dump(&got.answers).len(), m.answers.len());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..700)) {
        check::all(&data);
    }

    #[test]
    fn mutated_valid_messages_never_panic_and_rewrites_stay_valid(
        m in message(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = m.to_vec().unwrap();
        check::all(&bytes);
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        check::all(&bytes);
    }
}

/// Every fuzz finding (`fuzz/regressions/`) and the kept corpus
/// (`fuzz/corpus/wire/`) pass the fuzz target's checks in plain `cargo test`.
#[test]
fn fuzz_findings_and_corpus_pass_the_checks() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut seen = 0;
    for dir in ["regressions", "corpus/wire"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let data = std::fs::read(entry.path()).unwrap();
            check::all(&data);
            seen += 1;
        }
    }
    assert!(seen > 0, "no fuzz inputs found under {}", root.display());
}

#[test]
fn rewrite_errors_are_small_and_copy() {
    fn is_copy<T: Copy>() {}
    is_copy::<RewriteError>();
    assert!(std::mem::size_of::<RewriteError>() <= 2);
}
