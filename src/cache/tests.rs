use super::*;
use crate::config::Config;
use hickory_proto::op::{Message, MessageType, OpCode, Query as HQuery, ResponseCode};
use hickory_proto::rr::rdata::{AAAA, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

fn cache(extra: &str) -> Cache {
    let c = Config::from_toml(&format!(
        "[upstream]\nservers=[\"127.0.0.1\"]\n[cache]\n{extra}"
    ))
    .unwrap();
    Cache::new(&c.cache)
}

fn query(name: &str) -> Vec<u8> {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.add_query(HQuery::query(
        Name::from_ascii(name).unwrap(),
        RecordType::AAAA,
    ));
    m.to_vec().unwrap()
}

fn answer(ttls: &[u32]) -> Vec<u8> {
    let name = Name::from_ascii("v4.example.").unwrap();
    let mut m = Message::new(7, MessageType::Response, OpCode::Query);
    m.add_query(HQuery::query(name.clone(), RecordType::AAAA));
    for (i, &t) in ttls.iter().enumerate() {
        m.add_answer(Record::from_rdata(
            name.clone(),
            t,
            RData::AAAA(AAAA([0x64, 0xff9b, 0, 0, 0, 0, 0xc000, i as u16].into())),
        ));
    }
    m.to_vec().unwrap()
}

fn nodata(soa_ttl: u32, minimum: u32) -> Vec<u8> {
    let name = Name::from_ascii("v4.example.").unwrap();
    let mut m = Message::new(7, MessageType::Response, OpCode::Query);
    m.add_query(HQuery::query(name, RecordType::AAAA));
    let soa = SOA::new(
        Name::from_ascii("ns.example.").unwrap(),
        Name::from_ascii("h.example.").unwrap(),
        1,
        1,
        1,
        1,
        minimum,
    );
    m.add_authority(Record::from_rdata(
        Name::from_ascii("example.").unwrap(),
        soa_ttl,
        RData::SOA(soa),
    ));
    m.to_vec().unwrap()
}

fn key(name: &str, class: u16) -> Key {
    let q = query(name);
    Key::new(&Query::parse(&q).unwrap(), class).unwrap()
}

#[test]
fn hit_after_insert_with_ttls_decremented_by_age() {
    let c = cache("");
    let t0 = Instant::now();
    c.insert(
        key("v4.example.", 1),
        &answer(&[300, 60]),
        t0,
        Tally::default(),
    );
    let Lookup::Fresh(e) = c.get(&key("V4.Example.", 1), t0 + Duration::from_secs(10)) else {
        panic!("miss")
    };
    let m = Message::from_vec(&e.render(t0 + Duration::from_secs(10), None)).unwrap();
    let ttls: Vec<u32> = m.answers.iter().map(|r| r.ttl).collect();
    assert_eq!(ttls, vec![290, 50]);
    assert!(
        matches!(
            c.get(&key("v4.example.", 1), t0 + Duration::from_secs(61)),
            Lookup::Stale(_)
        ),
        "lifetime is the smallest TTL"
    );
}

#[test]
fn an_entry_knows_where_its_opt_payload_size_is() {
    let c = cache("");
    let t0 = Instant::now();
    let mut with_opt = Message::from_vec(&answer(&[300])).unwrap();
    with_opt.set_edns(hickory_proto::op::Edns::new());
    c.insert(
        key("v4.example.", 1),
        &with_opt.to_vec().unwrap(),
        t0,
        Tally::default(),
    );
    c.insert(key("v4.example.", 2), &answer(&[300]), t0, Tally::default());
    let Lookup::Fresh(e) = c.get(&key("v4.example.", 1), t0) else {
        panic!("miss")
    };
    let rendered = e.render(t0, None);
    assert!(e.opt_class_at().is_some());
    assert_eq!(e.opt_class_at(), wire::opt_class_offset(&rendered));
    let Lookup::Fresh(e) = c.get(&key("v4.example.", 2), t0) else {
        panic!("miss")
    };
    assert_eq!(e.opt_class_at(), None);
}

#[test]
fn policy_classes_never_share_entries() {
    let c = cache("");
    let t0 = Instant::now();
    c.insert(key("v4.example.", 1), &answer(&[300]), t0, Tally::default());
    assert!(matches!(c.get(&key("v4.example.", 0), t0), Lookup::Miss));
    assert!(matches!(c.get(&key("v4.example.", 2), t0), Lookup::Miss));
}

#[test]
fn negative_answers_live_for_the_soa_negative_ttl_clamped() {
    let c = cache("negative_max_ttl = 100\n");
    let t0 = Instant::now();
    c.insert(
        key("v4.example.", 1),
        &nodata(900, 120),
        t0,
        Tally::default(),
    );
    assert!(matches!(
        c.get(&key("v4.example.", 1), t0 + Duration::from_secs(99)),
        Lookup::Fresh(_)
    ));
    assert!(matches!(
        c.get(&key("v4.example.", 1), t0 + Duration::from_secs(101)),
        Lookup::Stale(_)
    ));
}

#[test]
fn max_and_min_ttl_clamp_positive_lifetimes() {
    let c = cache("max_ttl = 50\nmin_ttl = 20\n");
    let t0 = Instant::now();
    c.insert(key("a.example.", 1), &answer(&[300]), t0, Tally::default());
    c.insert(key("b.example.", 1), &answer(&[5]), t0, Tally::default());
    assert!(matches!(
        c.get(&key("a.example.", 1), t0 + Duration::from_secs(51)),
        Lookup::Stale(_)
    ));
    assert!(matches!(
        c.get(&key("b.example.", 1), t0 + Duration::from_secs(19)),
        Lookup::Fresh(_)
    ));
}

#[test]
fn servfail_is_cached_only_briefly_and_stale_ends_after_stale_max_age() {
    let c = cache("servfail_ttl = 2\nstale_max_age = \"1m\"\n");
    let mut sf = answer(&[]);
    sf[3] = (sf[3] & 0xf0) | ResponseCode::ServFail.low();
    let t0 = Instant::now();
    c.insert(key("sf.example.", 1), &sf, t0, Tally::default());
    assert!(matches!(
        c.get(&key("sf.example.", 1), t0 + Duration::from_secs(1)),
        Lookup::Fresh(_)
    ));
    assert!(!matches!(
        c.get(&key("sf.example.", 1), t0 + Duration::from_secs(3)),
        Lookup::Fresh(_)
    ));
    c.insert(key("v4.example.", 1), &answer(&[10]), t0, Tally::default());
    assert!(matches!(
        c.get(&key("v4.example.", 1), t0 + Duration::from_secs(71)),
        Lookup::Miss
    ));
}

#[test]
fn stale_answers_carry_the_stale_ttl() {
    let c = cache("");
    let t0 = Instant::now();
    c.insert(key("v4.example.", 1), &answer(&[10]), t0, Tally::default());
    let Lookup::Stale(e) = c.get(&key("v4.example.", 1), t0 + Duration::from_secs(100)) else {
        panic!()
    };
    let m = Message::from_vec(&e.render(t0, Some(c.stale_ttl()))).unwrap();
    assert_eq!(m.answers[0].ttl, 30);
}

#[test]
fn a_flood_of_unique_names_stays_within_max_bytes() {
    let c = cache("max_bytes = 100000\nsize = 100000\n");
    let t0 = Instant::now();
    for i in 0..5000 {
        c.insert(
            key(&format!("n{i}.example."), 1),
            &answer(&[300]),
            t0,
            Tally::default(),
        );
    }
    assert!(c.weight() <= 100_000, "weight {}", c.weight());
    assert!(c.len() < 5000);
}

#[test]
fn truncated_answers_are_not_cached() {
    let c = cache("");
    let mut tc = answer(&[300]);
    tc[2] |= 0x02;
    c.insert(key("v4.example.", 1), &tc, Instant::now(), Tally::default());
    assert!(c.is_empty());
}
