//! SPEC §3.8 (`dns64.parallel_a`), §3.9 (per-name policies, `[[dns64.zone]]`)
//! and §5 (`dns64.order`).

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::support::{Dns64d, Q, Reply, assert_no_a, q, wkp, zone};

/// What a client can see of an answer, without the ID.
fn visible(reply: &Reply) -> String {
    let m = &reply.msg;
    format!(
        "rcode={:?} tc={} ad={} answers={:?} authorities={:?} additionals={:?}",
        m.metadata.response_code,
        m.metadata.truncation,
        m.metadata.authentic_data,
        m.answers,
        m.authorities,
        m.additionals
    )
}

#[tokio::test]
async fn parallel_a_gives_the_same_answers_as_sequential_lookups() {
    let sequential = Dns64d::start("").await;
    let parallel = Dns64d::start(
        r#"[dns64]
        parallel_a = true"#,
    )
    .await;
    let queries: Vec<Q> = [
        zone::A_ONLY,
        zone::DUAL,
        zone::MISSING,
        zone::CHAIN,
        zone::AAAA_SERVFAIL,
        zone::BROKEN,
        zone::SOA_MIN_LOWER,
        zone::NO_SOA,
        zone::TXT_ONLY,
        zone::MAPPED_ONLY,
        zone::LOOPBACK,
    ]
    .iter()
    .map(|name| q(name, RecordType::AAAA))
    .collect();
    for query in &queries {
        let s = sequential.udp(query).await;
        let p = parallel.udp(query).await;
        assert_eq!(visible(&p), visible(&s), "{query:?}");
    }
}

#[tokio::test]
async fn parallel_a_keeps_nxdomain_and_native_aaaa() {
    let d = Dns64d::start(
        r#"[dns64]
        parallel_a = true"#,
    )
    .await;
    let nx = d.udp(&q(zone::MISSING, RecordType::AAAA)).await;
    assert_eq!(nx.rcode(), ResponseCode::NXDomain);
    let native = d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(native.aaaa(), vec![zone::DUAL_AAAA]);
}

#[tokio::test]
async fn zone_policy_synthesize_drops_native_aaaa_and_synthesizes() {
    let d = Dns64d::start(
        r#"[[dns64.zone]]
        suffix = "dual.example."
        policy = "synthesize""#,
    )
    .await;
    let reply = d.udp(&q("DuAl.ExAmPlE.", RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), vec![wkp(zone::DUAL_A)]);
}

#[tokio::test]
async fn zone_policy_both_puts_synthesized_aaaa_first_by_default() {
    let d = Dns64d::start(
        r#"[[dns64.zone]]
        suffix = "dual.example."
        policy = "both""#,
    )
    .await;
    let reply = d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), vec![wkp(zone::DUAL_A), zone::DUAL_AAAA]);
}

#[tokio::test]
async fn zone_policy_both_with_native_first_order_puts_native_aaaa_first() {
    let d = Dns64d::start(
        r#"[dns64]
        order = "native-first"
        [[dns64.zone]]
        suffix = "dual.example."
        policy = "both""#,
    )
    .await;
    let reply = d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), vec![zone::DUAL_AAAA, wkp(zone::DUAL_A)]);
}

#[tokio::test]
async fn zone_policy_off_turns_off_synthesis_and_a_filtering() {
    let d = Dns64d::start(
        r#"[[dns64.zone]]
        suffix = "a-only.example."
        policy = "off""#,
    )
    .await;
    let aaaa = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    assert_eq!(aaaa.rcode(), ResponseCode::NoError);
    assert!(aaaa.msg.answers.is_empty(), "no synthesis: {:?}", aaaa.msg);
    let a = d.udp(&q(zone::A_ONLY, RecordType::A)).await;
    let expected: Vec<_> = zone::A_ONLY_ADDRS.iter().map(|(a, _)| *a).collect();
    assert_eq!(a.a(), expected, "no A filtering");
    // Other names keep the global behaviour.
    assert_no_a(&d.udp(&q(zone::DUAL, RecordType::A)).await);
}

#[tokio::test]
async fn the_longest_zone_suffix_wins() {
    let d = Dns64d::start(
        r#"[[dns64.zone]]
        suffix = "example."
        policy = "off"
        [[dns64.zone]]
        suffix = "dual.example."
        policy = "synthesize""#,
    )
    .await;
    let dual = d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(dual.aaaa(), vec![wkp(zone::DUAL_A)], "dual.example. wins");
    let a_only = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    assert!(
        a_only.aaaa().is_empty(),
        "example. is off: {:?}",
        a_only.msg
    );
}

#[tokio::test]
async fn zone_policy_native_is_the_rfc_behaviour() {
    let d = Dns64d::start(
        r#"[[dns64.zone]]
        suffix = "example."
        policy = "native""#,
    )
    .await;
    let dual = d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(dual.aaaa(), vec![zone::DUAL_AAAA]);
    let a_only = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    assert_eq!(a_only.aaaa().len(), zone::A_ONLY_ADDRS.len());
}
