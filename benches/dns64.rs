//! Micro-benchmarks of the per-query work, each beside a reference measured
//! in the same run (hickory-proto's full decode), so ratios survive a noisy
//! machine. Run: `cargo bench --bench dns64`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hickory_proto::op::{Message, MessageType, OpCode, Query as HQuery, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use dns64d::config::Config;
use dns64d::dns64::{Dns64, Prefix};
use dns64d::policy::Policy;
use dns64d::reply::Client;
use dns64d::wire::Query;

fn aaaa_query() -> Vec<u8> {
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(HQuery::query(
        Name::from_ascii("api.service.example.com.").unwrap(),
        RecordType::AAAA,
    ));
    let mut edns = hickory_proto::op::Edns::new();
    edns.set_max_payload(1232);
    m.edns = Some(edns);
    m.to_vec().unwrap()
}

fn responses() -> (Message, Message) {
    let name = Name::from_ascii("api.service.example.com.").unwrap();
    let mut aaaa = Message::new(1, MessageType::Response, OpCode::Query);
    aaaa.add_query(HQuery::query(name.clone(), RecordType::AAAA));
    let soa = SOA::new(
        Name::from_ascii("ns.example.com.").unwrap(),
        Name::from_ascii("h.example.com.").unwrap(),
        1,
        1,
        1,
        1,
        300,
    );
    aaaa.add_authority(Record::from_rdata(
        Name::from_ascii("example.com.").unwrap(),
        900,
        RData::SOA(soa),
    ));
    let mut a = Message::new(2, MessageType::Response, OpCode::Query);
    a.metadata.response_code = ResponseCode::NoError;
    a.add_query(HQuery::query(name.clone(), RecordType::A));
    for i in 1..=4u8 {
        a.add_answer(Record::from_rdata(
            name.clone(),
            60,
            RData::A(A([192, 0, 2, i].into())),
        ));
    }
    (aaaa, a)
}

fn bench(c: &mut Criterion) {
    let q = aaaa_query();
    let mut g = c.benchmark_group("parse_query");
    g.bench_function("wire_view", |b| {
        b.iter(|| Query::parse(black_box(&q)).unwrap().qtype)
    });
    g.bench_function("reference_hickory_decode", |b| {
        b.iter(|| Message::from_vec(black_box(&q)).unwrap().queries.len())
    });
    g.finish();

    let mut g = c.benchmark_group("embed");
    for p in ["2001:db8::/32", "2001:db8:100::/40", "64:ff9b::/96"] {
        let prefix: Prefix = p.parse().unwrap();
        g.bench_function(p, |b| {
            b.iter(|| prefix.embed(black_box([192, 0, 2, 33].into())))
        });
    }
    g.finish();

    let cfg = Config::from_toml("[upstream]\nservers=[\"127.0.0.1\"]\n").unwrap();
    let dns64 = Dns64::new(&cfg.dns64);
    let policy = Policy::new(&cfg);
    let rules = policy.rules(b"\x03api\x07service\x07example\x03com\x00");
    let (aaaa, a) = responses();
    let a_bytes = a.to_vec().unwrap();
    let qname = Name::from_ascii("api.service.example.com.").unwrap();
    let query = Query::parse(&q).unwrap();
    let client = Client {
        query: &query,
        limit: Some(1232),
        our_payload: 1232,
    };
    let mut g = c.benchmark_group("synthesize_4_a");
    g.bench_function("decode_synthesize_encode", |b| {
        b.iter(|| {
            let a = Message::from_vec(black_box(&a_bytes)).unwrap();
            let out = dns64.synthesize(&rules, &qname, Some(&aaaa), &a).unwrap();
            client.encode(out, None).len()
        })
    });
    g.bench_function("reference_decode_encode_only", |b| {
        b.iter(|| {
            Message::from_vec(black_box(&a_bytes))
                .unwrap()
                .to_vec()
                .unwrap()
                .len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
