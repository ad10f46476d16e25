//! SPEC §3 when the upstream did part of the work: a resolver that does DNS64
//! itself (AWS Route 53 Resolver on a subnet with DNS64 on, issue #19 item 2),
//! a validating resolver's DNSSEC failure (RFC 6147 §5.5, RFC 8914, item 3),
//! and the extended errors dns64d adds itself (3 Stale Answer, 17 Filtered).
//! UDP is finished by the relay on the wire view, TCP by the general path;
//! each behaviour is checked on both (the cache is off so the second query
//! is resolved, not a hit).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use dns64d::metrics::names;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::AAAA;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::support::{Action, Dns64d, Q, Reply, assert_no_a, q, under96, wkp, zone};

const NO_CACHE: &str = "[cache]\nenabled = false";

/// A network-specific prefix that is not the well-known one.
const NSP: [u16; 6] = [0x2001, 0xdb8, 0x64, 0, 0, 0];

fn a_only_addrs() -> Vec<Ipv4Addr> {
    zone::A_ONLY_ADDRS.iter().map(|(a, _)| *a).collect()
}

/// From now on the upstream answers `name` AAAA with `addrs`, TTL 60.
fn upstream_answers_aaaa(d: &Dns64d, name: &str, addrs: &[Ipv6Addr]) {
    let owner = Name::from_ascii(name).unwrap();
    let records = addrs
        .iter()
        .map(|&v6| Record::from_rdata(owner.clone(), 60, RData::AAAA(AAAA(v6))))
        .collect();
    d.upstream.set_answer(name, RecordType::AAAA, records);
}

/// The same query over UDP (relay) and TCP (general path).
async fn over_both(d: &Dns64d, query: &Q) -> [Reply; 2] {
    [d.udp(query).await, d.tcp(query).await]
}

// ---- Item 2: AAAA synthesized upstream are not native ----

#[tokio::test]
async fn aaaa_synthesized_upstream_under_the_well_known_prefix_are_replaced_by_ours() {
    let d = Dns64d::start(&format!(
        "[dns64]\nprefixes = [\"2001:db8:64::/96\"]\n{NO_CACHE}"
    ))
    .await;
    let upstream: Vec<Ipv6Addr> = a_only_addrs().into_iter().map(wkp).collect();
    upstream_answers_aaaa(&d, zone::A_ONLY, &upstream);
    let ours: Vec<Ipv6Addr> = a_only_addrs()
        .into_iter()
        .map(|a| under96(NSP, a))
        .collect();
    for reply in over_both(&d, &q(zone::A_ONLY, RecordType::AAAA)).await {
        assert_eq!(reply.rcode(), ResponseCode::NoError);
        assert_eq!(
            reply.aaaa(),
            ours,
            "synthesized from A under our prefix only"
        );
    }
    assert_eq!(d.upstream.asked(zone::A_ONLY, RecordType::A).len(), 2);
    assert_eq!(d.counter(names::UPSTREAM_SYNTHESIZED), 2);
}

#[tokio::test]
async fn aaaa_synthesized_upstream_under_our_prefix_are_not_synthesized_twice() {
    let d = Dns64d::start(NO_CACHE).await;
    let upstream: Vec<Ipv6Addr> = a_only_addrs().into_iter().map(wkp).collect();
    upstream_answers_aaaa(&d, zone::A_ONLY, &upstream);
    for reply in over_both(&d, &q(zone::A_ONLY, RecordType::AAAA)).await {
        assert_eq!(reply.aaaa(), upstream, "each address once");
        // Ours, made from the A records: their TTLs (§5.1.7), not the 60 s
        // of the upstream's AAAA.
        let ttls: Vec<u32> = reply.msg.answers.iter().map(|r| r.ttl).collect();
        let a_ttls: Vec<u32> = zone::A_ONLY_ADDRS.iter().map(|(_, t)| *t).collect();
        assert_eq!(ttls, a_ttls);
    }
    assert_eq!(d.upstream.asked(zone::A_ONLY, RecordType::A).len(), 2);
    assert_eq!(d.counter(names::UPSTREAM_SYNTHESIZED), 2);
}

#[tokio::test]
async fn native_policy_returns_native_aaaa_without_those_synthesized_upstream() {
    let d = Dns64d::start(NO_CACHE).await;
    upstream_answers_aaaa(&d, zone::DUAL, &[wkp(zone::DUAL_A), zone::DUAL_AAAA]);
    for reply in over_both(&d, &q(zone::DUAL, RecordType::AAAA)).await {
        assert_eq!(reply.aaaa(), vec![zone::DUAL_AAAA]);
    }
    // §5.1.1: a native AAAA is there, so no A query.
    assert!(d.upstream.asked(zone::DUAL, RecordType::A).is_empty());
    assert_eq!(d.counter(names::UPSTREAM_SYNTHESIZED), 2);
}

#[tokio::test]
async fn both_policy_does_not_rank_aaaa_synthesized_upstream_as_native() {
    let d = Dns64d::start(&format!(
        "[dns64]\norder = \"native-first\"\n[[dns64.zone]]\nsuffix = \"dual.example.\"\npolicy = \"both\"\n{NO_CACHE}"
    ))
    .await;
    upstream_answers_aaaa(&d, zone::DUAL, &[wkp(zone::DUAL_A), zone::DUAL_AAAA]);
    for reply in over_both(&d, &q(zone::DUAL, RecordType::AAAA)).await {
        // Taken as native, the upstream's copy would come first and twice.
        assert_eq!(reply.aaaa(), vec![zone::DUAL_AAAA, wkp(zone::DUAL_A)]);
    }
}

#[tokio::test]
async fn aaaa_synthesized_upstream_with_no_usable_a_leave_a_nodata_without_them() {
    let d = Dns64d::start(NO_CACHE).await;
    upstream_answers_aaaa(&d, zone::A_SERVFAIL, &[wkp(Ipv4Addr::new(192, 0, 2, 51))]);
    for reply in over_both(&d, &q(zone::A_SERVFAIL, RecordType::AAAA)).await {
        // §5.1.6 item 5: the AAAA response stands, minus what is not native
        // (as §5.1.4 removes excluded AAAA): NODATA with an SOA.
        assert_eq!(reply.rcode(), ResponseCode::NoError);
        assert!(reply.aaaa().is_empty(), "{:?}", reply.msg);
        assert!(reply.soa().is_some(), "NODATA carries an SOA");
    }
}

// ---- Item 3: DNSSEC validation failures are not synthesized for ----

#[tokio::test]
async fn a_dnssec_bogus_servfail_is_passed_through_with_its_ede_and_not_synthesized() {
    let d = Dns64d::start(NO_CACHE).await;
    let bogus = Action::RcodeWithEde(ResponseCode::ServFail, 6);
    d.upstream.on(zone::A_ONLY, Some(RecordType::AAAA), bogus);
    for reply in over_both(&d, &q(zone::A_ONLY, RecordType::AAAA).edns(1232)).await {
        assert_eq!(reply.rcode(), ResponseCode::ServFail);
        assert!(reply.aaaa().is_empty());
        assert!(reply.ede_codes().contains(&6), "{:?}", reply.msg.edns);
    }
    // §5.5: no A query for a name whose data failed validation.
    assert!(d.upstream.asked(zone::A_ONLY, RecordType::A).is_empty());
}

#[tokio::test]
async fn a_servfail_with_an_ede_that_is_not_about_dnssec_is_still_synthesized_for() {
    let d = Dns64d::start(NO_CACHE).await;
    let unreachable = Action::RcodeWithEde(ResponseCode::ServFail, 22);
    d.upstream
        .on(zone::A_ONLY, Some(RecordType::AAAA), unreachable);
    let want: Vec<Ipv6Addr> = a_only_addrs().into_iter().map(wkp).collect();
    for reply in over_both(&d, &q(zone::A_ONLY, RecordType::AAAA).edns(1232)).await {
        assert_eq!(reply.rcode(), ResponseCode::NoError);
        assert_eq!(reply.aaaa(), want, "§5.1.2: synthesize_on_error");
    }
}

// ---- Our own extended errors ----

#[tokio::test]
async fn a_stale_answer_carries_ede_3_stale_answer() {
    let d =
        Dns64d::start("[upstream]\ntimeout = \"150ms\"\nattempts = 1\n[cache]\nmax_ttl = 1").await;
    let query = q(zone::A_ONLY, RecordType::AAAA).edns(1232);
    let fresh = d.udp(&query).await;
    assert!(!fresh.ede_codes().contains(&3), "{:?}", fresh.msg.edns);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    d.upstream.on_all(None, Action::Drop);
    let stale = d.udp(&query).await;
    assert_eq!(stale.rcode(), ResponseCode::NoError);
    // A stale answer is a cache render, rotated like any hit (`dns64.rotate`).
    assert_eq!(
        crate::support::sorted(stale.aaaa()),
        crate::support::sorted(fresh.aaaa())
    );
    assert_eq!(stale.ede_codes(), vec![3], "RFC 8914 §4.4");
    assert_eq!(d.counter(names::CACHE_STALE), 1);
}

#[tokio::test]
async fn an_a_answer_emptied_by_the_filter_carries_ede_17_filtered() {
    // `strip` is built on the wire view, `rewrite` by the general path.
    for mode in ["strip", "rewrite"] {
        let d = Dns64d::start(&format!("[filter]\na = \"{mode}\"\n{NO_CACHE}")).await;
        for reply in over_both(&d, &q(zone::A_ONLY, RecordType::A).edns(1232)).await {
            assert_eq!(reply.rcode(), ResponseCode::NoError);
            assert_no_a(&reply);
            assert_eq!(reply.ede_codes(), vec![17], "{mode}: RFC 8914 §4.18");
        }
        // An answer the filter did not touch is not marked.
        let aaaa = d.udp(&q(zone::AAAA_ONLY, RecordType::A).edns(1232)).await;
        assert!(aaaa.ede_codes().is_empty(), "{mode}: {:?}", aaaa.msg.edns);
    }
}
