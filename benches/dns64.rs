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

/// What counting costs a cache hit (the operations issue's "counting must not
/// slow the hot path"): the metric calls one hit makes, beside the rest of
/// the hit's user-space work measured in the same run.
fn counting(c: &mut Criterion) {
    use dns64d::cache::{Cache, Key, Lookup, Tally};
    use dns64d::metrics::{Metrics, Proto};
    use std::time::Instant;

    let cfg = Config::from_toml("[upstream]\nservers=[\"127.0.0.1\"]\n").unwrap();
    let cache = Cache::new(&cfg.cache);
    let q = aaaa_query();
    let (aaaa, a) = responses();
    let dns64 = Dns64::new(&cfg.dns64);
    let policy = Policy::new(&cfg);
    let rules = policy.rules(b"\x03api\x07service\x07example\x03com\x00");
    let qname = Name::from_ascii("api.service.example.com.").unwrap();
    let answer = dns64
        .synthesize(&rules, &qname, Some(&aaaa), &a)
        .unwrap()
        .to_vec()
        .unwrap();
    let now = Instant::now();
    cache.insert(
        Key::new(&Query::parse(&q).unwrap(), 1).unwrap(),
        &answer,
        now,
        Tally {
            synthesized: true,
            a_stripped: 0,
        },
    );
    let metrics = Metrics::default();
    let src: std::net::IpAddr = "fd00::1".parse().unwrap();

    let mut g = c.benchmark_group("cache_hit");
    g.bench_function("hit_without_counting", |b| {
        b.iter(|| {
            let query = Query::parse(black_box(&q)).unwrap();
            let key = Key::new(&query, 1).unwrap();
            match cache.get(&key, now) {
                Lookup::Fresh(e) => e.render(now, None).len(),
                _ => 0,
            }
        })
    });
    g.bench_function("counting_only", |b| {
        b.iter(|| {
            let started = Instant::now();
            metrics.request(Proto::Udp, black_box(src), 28);
            metrics.cache(true, false);
            metrics.answered(black_box(Tally {
                synthesized: true,
                a_stripped: 0,
            }));
            metrics.response(0, started.elapsed());
        })
    });
    g.finish();
}

criterion_group!(benches, bench, counting);
criterion_main!(benches);
