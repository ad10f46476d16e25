//! Property: for random upstream answers (A, AAAA, CNAME and RRSIGs over A,
//! in random sections and orders), every `filter.a` mode and every zone
//! policy, the answer a DNS64 client is sent holds no A record under `strip`
//! or `rewrite`, and every synthesized AAAA decodes back to an A record the
//! upstream returned. The steps are the pipeline's own: `dns64` decides and
//! synthesizes, `filter` enforces, `reply` encodes; the bytes are decoded
//! again with hickory-proto as the oracle.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Message, MessageType, OpCode, Query as HQuery, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NULL};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use proptest::prelude::*;

use dns64d::config::{Config, FilterA};
use dns64d::dns64::{AaaaVerdict, Dns64, Prefix};
use dns64d::filter;
use dns64d::policy::{Policy, to_wire};
use dns64d::reply::Client;
use dns64d::wire::Query;

const NAMES: [&str; 4] = [
    "www.zone.example.",
    "c1.zone.example.",
    "c2.zone.example.",
    "other.example.",
];

#[derive(Debug, Clone)]
enum Kind {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(usize),
    RrsigOverA,
}

fn record(owner: usize, kind: &Kind) -> Record {
    let name = Name::from_ascii(NAMES[owner]).unwrap();
    let data = match kind {
        Kind::A(v4) => RData::A(A(*v4)),
        Kind::Aaaa(v6) => RData::AAAA(AAAA(*v6)),
        Kind::Cname(t) => RData::CNAME(CNAME(Name::from_ascii(NAMES[*t]).unwrap())),
        Kind::RrsigOverA => RData::Unknown {
            code: RecordType::RRSIG,
            rdata: NULL::with(vec![0, 1, 8, 3, 0, 0, 0, 60]),
        },
    };
    Record::from_rdata(name, 60, data)
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => any::<[u8; 4]>().prop_map(|o| Kind::A(Ipv4Addr::from(o))),
        2 => prop_oneof![
            any::<[u8; 16]>().prop_map(Ipv6Addr::from),
            any::<[u8; 4]>().prop_map(|o| Ipv4Addr::from(o).to_ipv6_mapped()),
        ].prop_map(Kind::Aaaa),
        2 => (0..NAMES.len()).prop_map(Kind::Cname),
        1 => Just(Kind::RrsigOverA),
    ]
}

/// (section 0..3, owner, kind)
fn records() -> impl Strategy<Value = Vec<(u8, usize, Kind)>> {
    prop::collection::vec((0u8..3, 0..NAMES.len(), kind()), 0..12)
}

fn response(qtype: RecordType, rcode: ResponseCode, recs: &[(u8, usize, Kind)]) -> Message {
    let mut m = Message::new(1, MessageType::Response, OpCode::Query);
    m.metadata.response_code = rcode;
    m.add_query(HQuery::query(Name::from_ascii(NAMES[0]).unwrap(), qtype));
    for (section, owner, kind) in recs {
        let r = record(*owner, kind);
        match section {
            0 => m.answers.push(r),
            1 => m.authorities.push(r),
            _ => m.additionals.push(r),
        }
    }
    m
}

fn rcode() -> impl Strategy<Value = ResponseCode> {
    prop_oneof![
        6 => Just(ResponseCode::NoError),
        1 => Just(ResponseCode::NXDomain),
        1 => Just(ResponseCode::ServFail),
    ]
}

fn config(mode: &str, policy: &str) -> Config {
    Config::from_toml(&format!(
        "[upstream]\nservers = [\"127.0.0.1\"]\n[filter]\na = \"{mode}\"\n\
         [dns64]\nprefixes = [\"64:ff9b::/96\", \"2001:db8:100::/40\"]\nmapped = [\"0.0.0.0/0\"]\nnever_map = []\n\
         [[dns64.zone]]\nsuffix = \"zone.example.\"\npolicy = \"{policy}\"\n"
    ))
    .unwrap()
}

fn aaaa_query_bytes() -> Vec<u8> {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(HQuery::query(
        Name::from_ascii(NAMES[0]).unwrap(),
        RecordType::AAAA,
    ));
    m.to_vec().unwrap()
}

/// Runs the AAAA path as the pipeline does and returns the decoded reply.
fn answer(cfg: &Config, aaaa: &Message, a: &Message) -> Message {
    let dns64 = Dns64::new(&cfg.dns64);
    let policy = Policy::new(cfg);
    let qname = Name::from_ascii(NAMES[0]).unwrap();
    let rules = policy.rules(&to_wire(NAMES[0]));
    let mut out = match dns64.after_aaaa(rules.policy, &qname, Some(aaaa)) {
        AaaaVerdict::Synthesize { .. } => dns64.synthesize(&rules, &qname, Some(aaaa), a),
        AaaaVerdict::Return => None,
    }
    .unwrap_or_else(|| {
        let mut m = aaaa.clone();
        dns64.remove_unwanted_aaaa(rules.policy, &mut m);
        m
    });
    filter::enforce(&mut out, rules.filter_a, rules.prefixes, &dns64);
    let q = aaaa_query_bytes();
    let query = Query::parse(&q).unwrap();
    let client = Client {
        query: &query,
        limit: None,
        our_payload: 1232,
    };
    Message::from_vec(&client.encode(out, None)).expect("the reply decodes")
}

fn holds_a(m: &Message) -> bool {
    m.all_sections().any(|r| {
        r.record_type() == RecordType::A
            || matches!(&r.data, RData::Unknown { code: RecordType::RRSIG, rdata } if rdata.anything.get(..2) == Some(&[0, 1][..]))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_a_record_reaches_a_dns64_client_and_every_synthesized_aaaa_maps_back(
        aaaa_recs in records(),
        a_recs in records(),
        aaaa_rcode in rcode(),
        mode in prop_oneof![Just("pass"), Just("strip"), Just("rewrite")],
        policy in prop_oneof![Just("native"), Just("synthesize"), Just("both")],
    ) {
        let cfg = config(mode, policy);
        let aaaa = response(RecordType::AAAA, aaaa_rcode, &aaaa_recs);
        let a = response(RecordType::A, ResponseCode::NoError, &a_recs);
        let out = answer(&cfg, &aaaa, &a);

        if cfg.filter.a != FilterA::Pass {
            prop_assert!(!holds_a(&out), "an A record reached a DNS64 client: {out:?}");
        }
        // Every AAAA the client got is either one upstream sent, or decodes
        // under a configured prefix to an A address upstream sent.
        let prefixes: Vec<Prefix> = cfg.dns64.prefixes.to_vec();
        let upstream_a: Vec<Ipv4Addr> = a.all_sections().chain(aaaa.all_sections()).filter_map(|r| match &r.data {
            RData::A(v4) => Some(v4.0),
            _ => None,
        }).collect();
        let upstream_aaaa: Vec<Ipv6Addr> = aaaa.all_sections().filter_map(|r| match &r.data {
            RData::AAAA(v6) => Some(v6.0),
            _ => None,
        }).collect();
        for r in out.all_sections() {
            if let RData::AAAA(v6) = &r.data {
                let made = !upstream_aaaa.contains(&v6.0);
                if made {
                    let back = prefixes.iter().find_map(|p| p.extract(v6.0));
                    prop_assert!(back.is_some_and(|v4| upstream_a.contains(&v4)),
                        "synthesized {} does not map back to an upstream A", v6.0);
                }
            }
        }
    }
}
