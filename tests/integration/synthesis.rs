//! SPEC §2 (address synthesis) and §3 (AAAA queries from DNS64 clients), over the wire.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};

use crate::support::client::TEST_OPTION;
use crate::support::{Action, Dns64d, q, under96, wkp, zone};

fn wkp_all(addrs: &[Ipv4Addr]) -> Vec<Ipv6Addr> {
    addrs.iter().copied().map(wkp).collect()
}

fn a_only_addrs() -> Vec<Ipv4Addr> {
    zone::A_ONLY_ADDRS.iter().map(|(a, _)| *a).collect()
}

// ---- §2 Address synthesis ----

#[tokio::test]
async fn aaaa_for_an_a_only_name_is_synthesized_under_the_well_known_prefix() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    assert_eq!(reply.aaaa(), wkp_all(&a_only_addrs()));
    for record in reply.answers_of(RecordType::AAAA) {
        assert_eq!(record.name, Name::from_ascii(zone::A_ONLY).unwrap());
    }
    assert_eq!(d.upstream.asked(zone::A_ONLY, RecordType::A).len(), 1);
}

#[tokio::test]
async fn every_prefix_length_embeds_the_address_as_in_the_rfc6052_table() {
    // RFC 6052 §2.4: 192.0.2.33 under each prefix length, and the well-known prefix.
    let d = Dns64d::start(
        r#"[dns64]
        prefixes = ["2001:db8::/32", "2001:db8:100::/40", "2001:db8:122::/48",
                    "2001:db8:122:300::/56", "2001:db8:122:344::/64", "2001:db8:122:344::/96",
                    "64:ff9b::/96"]"#,
    )
    .await;
    let reply = d.udp(&q(zone::RFC6052, RecordType::AAAA)).await;
    let expected: Vec<Ipv6Addr> = [
        "2001:db8:c000:221::",
        "2001:db8:1c0:2:21::",
        "2001:db8:122:c000:2:2100::",
        "2001:db8:122:3c0:0:221::",
        "2001:db8:122:344:c0:2:2100:0",
        "2001:db8:122:344::192.0.2.33",
        "64:ff9b::192.0.2.33",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    assert_eq!(reply.aaaa(), expected);
}

#[tokio::test]
async fn several_prefixes_give_one_aaaa_per_a_record_per_prefix_in_configured_order() {
    let d = Dns64d::start(
        r#"[dns64]
        prefixes = ["2001:db8:64::/96", "64:ff9b::/96"]"#,
    )
    .await;
    let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    let got = reply.aaaa();
    let nsp = |a| under96([0x2001, 0xdb8, 0x64, 0, 0, 0], a);
    let mut expected_set: Vec<Ipv6Addr> = a_only_addrs()
        .into_iter()
        .flat_map(|a| [nsp(a), wkp(a)])
        .collect();
    let mut got_set = got.clone();
    expected_set.sort();
    got_set.sort();
    assert_eq!(got_set, expected_set, "one AAAA per A per prefix");
    let pos = |x: Ipv6Addr| got.iter().position(|g| *g == x).unwrap();
    let addrs = a_only_addrs();
    for a in &addrs {
        assert!(
            pos(nsp(*a)) < pos(wkp(*a)),
            "configured prefix order kept for {a}: {got:?}"
        );
    }
    for pair in addrs.windows(2) {
        assert!(pos(nsp(pair[0])) < pos(nsp(pair[1])), "upstream order kept");
        assert!(pos(wkp(pair[0])) < pos(wkp(pair[1])), "upstream order kept");
    }
}

#[tokio::test]
async fn loopback_link_local_and_multicast_a_records_are_never_synthesized() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::MIXED_SCOPE, RecordType::AAAA)).await;
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    assert_eq!(reply.aaaa(), vec![wkp(zone::MIXED_SCOPE_USABLE)]);
}

#[tokio::test]
async fn a_name_whose_only_a_record_is_never_mapped_gets_nodata() {
    let d = Dns64d::start("").await;
    for name in [zone::LOOPBACK, zone::LINK_LOCAL] {
        let reply = d.udp(&q(name, RecordType::AAAA)).await;
        assert_eq!(reply.rcode(), ResponseCode::NoError, "{name}");
        assert!(reply.msg.answers.is_empty(), "{name}: {:?}", reply.msg);
        assert!(
            reply.soa().is_some(),
            "{name}: the original NODATA with its SOA"
        );
    }
}

#[tokio::test]
async fn a_addresses_outside_dns64_mapped_are_dropped() {
    let d = Dns64d::start(
        r#"[dns64]
        mapped = ["192.0.2.0/24"]"#,
    )
    .await;
    let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    // 198.51.100.7 is outside 192.0.2.0/24.
    assert_eq!(
        reply.aaaa(),
        wkp_all(&[zone::A_ONLY_ADDRS[0].0, zone::A_ONLY_ADDRS[1].0])
    );
    let reply = d.udp(&q(zone::PRIVATE, RecordType::AAAA)).await;
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    assert!(reply.msg.answers.is_empty(), "{:?}", reply.msg);
}

#[tokio::test]
async fn a_configured_never_map_range_is_not_synthesized() {
    let d = Dns64d::start(
        r#"[dns64]
        never_map = ["198.51.100.0/24"]"#,
    )
    .await;
    let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    assert_eq!(
        reply.aaaa(),
        wkp_all(&[zone::A_ONLY_ADDRS[0].0, zone::A_ONLY_ADDRS[1].0])
    );
}

#[tokio::test]
async fn private_ipv4_is_synthesized_under_the_well_known_prefix_by_default() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::PRIVATE, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), vec![wkp(zone::PRIVATE_A)]);
}

#[tokio::test]
async fn strict_rfc6052_refuses_the_well_known_prefix_for_rfc1918_and_rfc6598_addresses() {
    let d = Dns64d::start(
        r#"[dns64]
        strict_rfc6052 = true"#,
    )
    .await;
    for name in [zone::PRIVATE, zone::CGNAT] {
        let reply = d.udp(&q(name, RecordType::AAAA)).await;
        assert_eq!(reply.rcode(), ResponseCode::NoError, "{name}");
        assert!(reply.aaaa().is_empty(), "{name}: {:?}", reply.msg);
    }
    // Global addresses are unaffected.
    let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), wkp_all(&a_only_addrs()));
}

#[tokio::test]
async fn strict_rfc6052_still_synthesizes_private_ipv4_under_a_network_specific_prefix() {
    let d = Dns64d::start(
        r#"[dns64]
        strict_rfc6052 = true
        prefixes = ["64:ff9b::/96", "2001:db8:64::/96"]"#,
    )
    .await;
    let reply = d.udp(&q(zone::PRIVATE, RecordType::AAAA)).await;
    assert_eq!(
        reply.aaaa(),
        vec![under96([0x2001, 0xdb8, 0x64, 0, 0, 0], zone::PRIVATE_A)]
    );
}

// ---- §3 AAAA queries from DNS64 clients ----

#[tokio::test]
async fn aaaa_query_is_forwarded_with_the_clients_rd_and_cd_bits() {
    let d = Dns64d::start("").await;
    d.udp(&q(zone::DUAL, RecordType::AAAA).rd(true).cd()).await;
    d.udp(&q(zone::AAAA_ONLY, RecordType::AAAA).rd(false)).await;
    let dual = &d.upstream.asked(zone::DUAL, RecordType::AAAA)[0]
        .message
        .metadata;
    assert!(dual.recursion_desired && dual.checking_disabled);
    let only = &d.upstream.asked(zone::AAAA_ONLY, RecordType::AAAA)[0]
        .message
        .metadata;
    assert!(!only.recursion_desired && !only.checking_disabled);
}

#[tokio::test]
async fn aaaa_query_is_forwarded_with_the_clients_do_bit_and_edns_options() {
    let d = Dns64d::start("").await;
    let query = q(zone::DUAL, RecordType::AAAA)
        .dnssec_ok()
        .option(TEST_OPTION, b"dns64d-test");
    d.udp(&query).await;
    let seen = &d.upstream.asked(zone::DUAL, RecordType::AAAA)[0];
    let edns = seen.message.edns.as_ref().expect("OPT forwarded");
    assert!(edns.flags().dnssec_ok, "DO kept");
    let kept = edns.options().options.iter().any(|(code, option)| {
        u16::from(*code) == TEST_OPTION
            && matches!(option, hickory_proto::rr::rdata::opt::EdnsOption::Unknown(_, d) if d == b"dns64d-test")
    });
    assert!(kept, "EDNS option kept: {edns:?}");
}

#[tokio::test]
async fn upstream_queries_use_dns64ds_own_ids_and_source_ports() {
    let d = Dns64d::start("").await;
    let ids = [0x0101u16, 0x0202, 0x0303, 0x0404];
    let names = [
        zone::DUAL,
        zone::AAAA_ONLY,
        zone::PART_MAPPED,
        zone::TXT_ONLY,
    ];
    for (id, name) in ids.iter().zip(names) {
        d.udp(&q(name, RecordType::TXT).id(*id)).await;
    }
    let seen = d.upstream.seen();
    assert_eq!(seen.len(), 4);
    let upstream_ids: Vec<u16> = seen.iter().map(|s| s.id()).collect();
    assert_ne!(upstream_ids, ids.to_vec(), "client IDs passed upstream");
    let mut ports: Vec<u16> = seen.iter().map(|s| s.source.port()).collect();
    ports.dedup();
    assert!(
        ports.len() > 1,
        "every query from one source port: {ports:?}"
    );
}

#[tokio::test]
async fn native_aaaa_is_returned_without_an_a_query() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), vec![zone::DUAL_AAAA]);
    assert!(d.upstream.asked(zone::DUAL, RecordType::A).is_empty());
}

#[tokio::test]
async fn excluded_aaaa_is_removed_and_native_aaaa_kept() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::PART_MAPPED, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), vec![zone::PART_MAPPED_NATIVE]);
}

#[tokio::test]
async fn an_answer_with_only_excluded_aaaa_is_replaced_by_synthesis() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::MAPPED_ONLY, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), vec![wkp(zone::MAPPED_ONLY_A)]);
}

#[tokio::test]
async fn aaaa_servfail_is_answered_by_synthesis() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::AAAA_SERVFAIL, RecordType::AAAA)).await;
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    assert_eq!(reply.aaaa(), vec![wkp(zone::AAAA_SERVFAIL_A)]);
}

#[tokio::test]
async fn synthesize_on_error_false_returns_the_aaaa_servfail() {
    let d = Dns64d::start(
        r#"[dns64]
        synthesize_on_error = false"#,
    )
    .await;
    let reply = d.udp(&q(zone::AAAA_SERVFAIL, RecordType::AAAA)).await;
    assert_eq!(reply.rcode(), ResponseCode::ServFail);
    assert!(reply.msg.answers.is_empty());
    // NODATA is still synthesized.
    let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), wkp_all(&a_only_addrs()));
}

#[tokio::test]
async fn an_aaaa_query_that_times_out_counts_as_empty_and_is_synthesized() {
    let d = Dns64d::start("").await;
    d.upstream
        .on(zone::A_ONLY, Some(RecordType::AAAA), Action::Drop);
    let started = Instant::now();
    let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    assert_eq!(reply.aaaa(), wkp_all(&a_only_addrs()));
    // Every AAAA attempt times out, then one A round trip: bounded by timeout × attempts.
    let bound = Duration::from_millis(crate::support::BASE_UPSTREAM_TIMEOUT_MS * 2 + 400);
    assert!(started.elapsed() < bound, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_cname_chain_is_returned_with_aaaa_synthesized_for_its_last_name() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::CHAIN, RecordType::AAAA)).await;
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    let cnames: Vec<(String, String)> = reply
        .answers_of(RecordType::CNAME)
        .iter()
        .map(|r| match &r.data {
            RData::CNAME(c) => (
                r.name.to_lowercase().to_ascii(),
                c.0.to_lowercase().to_ascii(),
            ),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        cnames,
        vec![
            (zone::CHAIN.to_string(), zone::CHAIN_MID.to_string()),
            (zone::CHAIN_MID.to_string(), zone::A_ONLY.to_string())
        ]
    );
    assert_eq!(reply.aaaa(), wkp_all(&a_only_addrs()));
    for record in reply.answers_of(RecordType::AAAA) {
        assert_eq!(record.name, Name::from_ascii(zone::A_ONLY).unwrap());
    }
    // The chain comes first, then the addresses.
    assert_eq!(reply.msg.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(reply.msg.answers[1].record_type(), RecordType::CNAME);
    assert_eq!(d.upstream.asked(zone::A_ONLY, RecordType::A).len(), 1);
    assert!(
        d.upstream.asked(zone::CHAIN, RecordType::A).is_empty(),
        "A asked for the last name of the chain, not the first"
    );
}

#[tokio::test]
async fn a_dname_chain_is_returned_with_aaaa_synthesized_for_its_last_name() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::VIA_DNAME, RecordType::AAAA)).await;
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    assert_eq!(reply.answers_of(RecordType::DNAME).len(), 1, "DNAME kept");
    assert_eq!(reply.answers_of(RecordType::CNAME).len(), 1, "CNAME kept");
    assert_eq!(reply.aaaa(), wkp_all(&a_only_addrs()));
    for record in reply.answers_of(RecordType::AAAA) {
        assert_eq!(record.name, Name::from_ascii(zone::A_ONLY).unwrap());
    }
    assert_eq!(d.upstream.asked(zone::A_ONLY, RecordType::A).len(), 1);
}

#[tokio::test]
async fn nxdomain_for_aaaa_is_returned_without_an_a_query() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::MISSING, RecordType::AAAA)).await;
    assert_eq!(reply.rcode(), ResponseCode::NXDomain);
    assert!(reply.msg.answers.is_empty());
    assert!(reply.soa().is_some(), "upstream SOA kept");
    assert!(d.upstream.asked(zone::MISSING, RecordType::A).is_empty());
}

#[tokio::test]
async fn nxdomain_at_the_end_of_a_cname_chain_is_returned_with_the_chain_and_no_a_query() {
    let d = Dns64d::start("").await;
    d.upstream.on(
        zone::CHAIN,
        Some(RecordType::AAAA),
        Action::RcodeWithRecords(ResponseCode::NXDomain),
    );
    let reply = d.udp(&q(zone::CHAIN, RecordType::AAAA)).await;
    assert_eq!(reply.rcode(), ResponseCode::NXDomain);
    assert_eq!(reply.answers_of(RecordType::CNAME).len(), 2, "chain kept");
    assert!(reply.aaaa().is_empty());
    assert!(reply.msg.recursion_available, "RA set");
    assert!(d.upstream.asked(zone::A_ONLY, RecordType::A).is_empty());
    assert!(d.upstream.asked(zone::CHAIN, RecordType::A).is_empty());
}

#[tokio::test]
async fn a_failed_a_lookup_returns_the_original_aaaa_nodata() {
    let d = Dns64d::start("").await;
    d.upstream.on(
        zone::SOA_MIN_LOWER,
        Some(RecordType::A),
        Action::Rcode(ResponseCode::ServFail),
    );
    let reply = d.udp(&q(zone::SOA_MIN_LOWER, RecordType::AAAA)).await;
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    assert!(reply.msg.answers.is_empty());
    assert_eq!(reply.soa(), Some((900, 60)), "the original SOA");
}

#[tokio::test]
async fn a_timed_out_a_lookup_returns_the_original_aaaa_nodata() {
    let d = Dns64d::start("").await;
    d.upstream
        .on(zone::SOA_MIN_LOWER, Some(RecordType::A), Action::Drop);
    let reply = d.udp(&q(zone::SOA_MIN_LOWER, RecordType::AAAA)).await;
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    assert!(reply.msg.answers.is_empty());
    assert_eq!(reply.soa(), Some((900, 60)), "the original SOA");
}

#[tokio::test]
async fn a_failed_a_lookup_after_aaaa_servfail_returns_servfail() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::BROKEN, RecordType::AAAA)).await;
    assert_eq!(reply.rcode(), ResponseCode::ServFail);
    assert!(reply.msg.answers.is_empty());
}

#[tokio::test]
async fn a_name_with_neither_a_nor_aaaa_returns_the_original_nodata() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::TXT_ONLY, RecordType::AAAA)).await;
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    assert!(reply.msg.answers.is_empty());
    assert!(reply.soa().is_some());
}

#[tokio::test]
async fn synthesized_ttl_is_the_a_ttl_when_below_the_negative_ttl() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    let ttls: Vec<u32> = reply
        .answers_of(RecordType::AAAA)
        .iter()
        .map(|r| r.ttl)
        .collect();
    let expected: Vec<u32> = zone::A_ONLY_ADDRS.iter().map(|(_, ttl)| *ttl).collect();
    assert_eq!(ttls, expected);
}

#[tokio::test]
async fn synthesized_ttl_is_capped_by_the_soa_minimum_when_it_is_below_the_soa_ttl() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::SOA_MIN_LOWER, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), vec![wkp(zone::SOA_MIN_LOWER_A)]);
    assert_eq!(reply.msg.answers[0].ttl, 60, "min(3600, min(900, 60))");
}

#[tokio::test]
async fn synthesized_ttl_is_capped_by_the_soa_ttl_when_it_is_below_the_soa_minimum() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::SOA_TTL_LOWER, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), vec![wkp(zone::SOA_TTL_LOWER_A)]);
    assert_eq!(reply.msg.answers[0].ttl, 45, "min(3600, min(45, 900))");
}

#[tokio::test]
async fn synthesized_ttl_is_capped_at_600_seconds_without_an_soa() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::NO_SOA, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), vec![wkp(zone::NO_SOA_A)]);
    assert_eq!(reply.msg.answers[0].ttl, 600, "min(3600, 600)");
}

#[tokio::test]
async fn do_and_cd_together_pass_the_aaaa_answer_through_without_synthesis() {
    let d = Dns64d::start("").await;
    let reply = d
        .udp(&q(zone::SIGNED, RecordType::AAAA).dnssec_ok().cd())
        .await;
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    assert!(reply.aaaa().is_empty(), "no synthesis: {:?}", reply.msg);
    assert!(reply.msg.metadata.authentic_data, "upstream AD untouched");
    assert!(reply.soa().is_some(), "upstream SOA untouched");
    let signatures = reply
        .msg
        .authorities
        .iter()
        .filter(|r| r.record_type() == RecordType::RRSIG)
        .count();
    assert_eq!(signatures, 1, "upstream RRSIG untouched");
}

#[tokio::test]
async fn a_synthesized_answer_to_a_do_query_has_ad_clear_and_no_rrsig() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::SIGNED, RecordType::AAAA).dnssec_ok()).await;
    assert_eq!(reply.aaaa(), vec![wkp(zone::SIGNED_A)]);
    assert!(!reply.msg.metadata.authentic_data, "AD must be 0");
    let signatures: Vec<_> = reply.answers_of(RecordType::RRSIG);
    assert!(
        signatures.is_empty(),
        "RRSIG in a made-up answer: {signatures:?}"
    );
}

#[tokio::test]
async fn cd_without_do_still_gets_synthesis() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::SIGNED, RecordType::AAAA).cd()).await;
    assert_eq!(reply.aaaa(), vec![wkp(zone::SIGNED_A)]);
    assert!(!reply.msg.metadata.authentic_data);
}
