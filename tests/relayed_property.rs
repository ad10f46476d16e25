//! Property: whatever bytes come back from upstream, the relay's finish
//! (`Pipeline::relayed`) never panics, for every route and stage; when it
//! answers, the answer carries the client's ID and question and holds no A
//! record for a DNS64 client under `strip` (checked for replies the relay
//! would accept: well-formed, with the question it sent). Inputs: arbitrary bytes, and
//! valid upstream replies (A, AAAA, CNAME, SOA in random sections) with
//! random octets overwritten, which reach much deeper than random bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query as HQuery};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use proptest::prelude::*;

use dns64d::config::Config;
use dns64d::metrics::Metrics;
use dns64d::pipeline::{Exchange, Pipeline, Stage, Step};
use dns64d::wire;

/// 127.0.0.1 is a DNS64 client, ::1 a plain one; strip is the default.
fn pipeline() -> Pipeline {
    let cfg = Config::from_toml(
        "[upstream]\nservers = [\"127.0.0.1:53\"]\n[dns64]\nclients = [\"127.0.0.0/8\"]\n",
    )
    .unwrap();
    Pipeline::new(&cfg, Arc::new(Metrics::default()))
}

const QNAME: &str = "www.example.";

/// A client query for `QNAME`/`qtype`, ID 0x5151, with EDNS.
fn client_query(qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(0x5151, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(HQuery::query(
        Name::from_ascii("wWw.ExAmPlE.").unwrap(),
        qtype,
    ));
    m.edns = Some(Edns::new());
    m.to_vec().unwrap()
}

#[derive(Debug, Clone)]
enum Rec {
    A(u32),
    Aaaa(u128),
    Cname,
    Soa,
}

/// A well-formed upstream reply to `qtype` holding `recs` (section 0..3).
fn reply(qtype: RecordType, recs: &[(Rec, u8)]) -> Vec<u8> {
    let name = Name::from_ascii(QNAME).unwrap();
    let mut m = Message::new(0x1234, MessageType::Response, OpCode::Query);
    m.add_query(HQuery::query(name.clone(), qtype));
    for (rec, section) in recs {
        let data = match rec {
            Rec::A(v4) => RData::A(A(Ipv4Addr::from(*v4))),
            Rec::Aaaa(v6) => RData::AAAA(AAAA(Ipv6Addr::from(*v6))),
            Rec::Cname => RData::CNAME(CNAME(Name::from_ascii("alias.example.").unwrap())),
            Rec::Soa => RData::SOA(SOA::new(
                Name::from_ascii("ns.example.").unwrap(),
                Name::from_ascii("host.example.").unwrap(),
                1,
                2,
                3,
                4,
                60,
            )),
        };
        let r = Record::from_rdata(name.clone(), 300, data);
        match section % 3 {
            0 => m.add_answer(r),
            1 => m.add_authority(r),
            _ => m.add_additional(r),
        };
    }
    m.edns = Some(Edns::new());
    m.to_vec().unwrap()
}

fn recs() -> impl Strategy<Value = Vec<(Rec, u8)>> {
    let rec = prop_oneof![
        any::<u32>().prop_map(Rec::A),
        any::<u128>().prop_map(Rec::Aaaa),
        Just(Rec::Cname),
        Just(Rec::Soa),
    ];
    prop::collection::vec((rec, 0u8..3), 0..6)
}

/// Runs every route and stage over `upstream` bytes; checks what is answered.
fn check(p: &Pipeline, upstream: &[u8], aaaa_reply: &[u8]) {
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, 53));
    let now = Instant::now();
    let v4: IpAddr = Ipv4Addr::LOCALHOST.into();
    let v6: IpAddr = Ipv6Addr::LOCALHOST.into();
    let cases = [
        (RecordType::A, v6, Stage::First),
        (RecordType::A, v4, Stage::First),
        (RecordType::MX, v4, Stage::First),
        (RecordType::AAAA, v4, Stage::First),
        (
            RecordType::AAAA,
            v4,
            Stage::A {
                aaaa: aaaa_reply,
                ttl_cap: 600,
            },
        ),
    ];
    for (qtype, src, stage) in cases {
        let query = client_query(qtype);
        let mut out = Vec::new();
        let x = Exchange {
            query: &query,
            stage,
            reply: upstream,
            server,
        };
        let answered = p.relayed(x, src, (now, now), &mut out) == Step::Answered;
        // What the relay would have accepted as the reply to what it sent
        // (the client's question, with QTYPE A at the synthesis stage).
        let mut sent = query.clone();
        if matches!(stage, Stage::A { .. }) {
            wire::set_qtype(&mut sent, 1);
        }
        let question = &sent[12..wire::question_end(&sent).unwrap()];
        if !answered || !wire::well_formed(upstream) || !wire::same_question(upstream, question) {
            continue;
        }
        assert_eq!(wire::id(&out), Some(0x5151), "client's ID");
        assert_eq!(
            out[12..12 + question.len()],
            query[12..12 + question.len()],
            "question echoed"
        );
        if src == v4 {
            let view = wire::message::Message::parse(&out)
                .unwrap_or_else(|e| panic!("answer to a DNS64 client does not parse: {e:?}"));
            let a = view.records().filter(|r| r.rtype == wire::rtype::A).count();
            assert_eq!(a, 0, "an A record reached a DNS64 client");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_upstream_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let p = pipeline();
        let nodata = reply(RecordType::AAAA, &[(Rec::Soa, 1)]);
        check(&p, &bytes, &nodata);
    }

    #[test]
    fn damaged_upstream_replies_never_panic_and_never_leak_a_records(
        recs in recs(),
        qtype in prop_oneof![Just(RecordType::A), Just(RecordType::AAAA), Just(RecordType::MX)],
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let p = pipeline();
        let mut bytes = reply(qtype, &recs);
        for (at, octet) in damage {
            let i = at.index(bytes.len());
            bytes[i] = octet;
        }
        let nodata = reply(RecordType::AAAA, &[(Rec::Soa, 1)]);
        check(&p, &bytes, &nodata);
    }
}
