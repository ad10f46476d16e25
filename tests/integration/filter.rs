//! SPEC §4: A records for DNS64 clients (`filter.a`), and plain forwarding for
//! everyone else (§1). The central promise: while `filter.a` is `strip` or `rewrite`,
//! no DNS64 client receives an A record in any section, whichever way it asks.

use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};

use crate::support::client::aaaa_in;
use crate::support::{Action, BASE_UPSTREAM_TIMEOUT_MS, Dns64d, assert_no_a, q, wkp, zone};

/// Asserts a NOERROR reply with an empty answer section and an SOA in authority.
#[track_caller]
fn assert_nodata(reply: &crate::support::Reply) {
    assert_eq!(reply.rcode(), ResponseCode::NoError, "{:?}", reply.msg);
    assert!(reply.msg.answers.is_empty(), "{:?}", reply.msg);
    assert!(
        reply.soa().is_some(),
        "NODATA carries an SOA: {:?}",
        reply.msg
    );
}

#[tokio::test]
async fn pass_answers_a_queries_as_upstream_does() {
    let d = Dns64d::start(
        r#"[filter]
        a = "pass""#,
    )
    .await;
    let reply = d.udp(&q(zone::A_ONLY, RecordType::A)).await;
    let expected: Vec<_> = zone::A_ONLY_ADDRS.iter().map(|(a, _)| *a).collect();
    assert_eq!(reply.a(), expected);
}

#[tokio::test]
async fn strip_is_the_default_and_turns_an_a_answer_into_nodata() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::A_ONLY, RecordType::A)).await;
    assert_no_a(&reply);
    assert_nodata(&reply);
    assert_eq!(
        d.upstream.asked(zone::A_ONLY, RecordType::A).len(),
        1,
        "the A query is still forwarded"
    );
}

#[tokio::test]
async fn a_stripped_answer_carries_an_soa_with_filter_negative_ttl() {
    let d = Dns64d::start(
        r#"[filter]
        negative_ttl = 17"#,
    )
    .await;
    let reply = d.udp(&q(zone::A_ONLY, RecordType::A)).await;
    assert_nodata(&reply);
    let (ttl, minimum) = reply.soa().unwrap();
    assert_eq!(
        ttl.min(minimum),
        17,
        "negative TTL (RFC 2308 §3) of the SOA"
    );
}

#[tokio::test]
async fn an_a_nodata_from_upstream_keeps_the_upstream_soa() {
    let d = Dns64d::start(
        r#"[filter]
        negative_ttl = 17"#,
    )
    .await;
    let reply = d.udp(&q(zone::AAAA_ONLY, RecordType::A)).await;
    assert_nodata(&reply);
    assert_eq!(reply.soa(), Some((3600, 3600)), "the upstream SOA");
}

#[tokio::test]
async fn strip_keeps_nxdomain_for_a_queries() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::MISSING, RecordType::A)).await;
    assert_eq!(reply.rcode(), ResponseCode::NXDomain);
    assert_eq!(d.upstream.asked(zone::MISSING, RecordType::A).len(), 1);
}

#[tokio::test]
async fn strip_keeps_the_cnames_of_a_chain_and_removes_its_a_records() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::CHAIN, RecordType::A)).await;
    assert_no_a(&reply);
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    assert_eq!(reply.answers_of(RecordType::CNAME).len(), 2);
}

#[tokio::test]
async fn strip_removes_a_glue_from_an_mx_answer() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::MX, RecordType::MX)).await;
    assert_no_a(&reply);
    assert_eq!(reply.answers_of(RecordType::MX).len(), 1);
}

#[tokio::test]
async fn rewrite_turns_a_glue_into_synthesized_aaaa() {
    let d = Dns64d::start(
        r#"[filter]
        a = "rewrite""#,
    )
    .await;
    let reply = d.udp(&q(zone::MX, RecordType::MX)).await;
    assert_no_a(&reply);
    assert_eq!(reply.answers_of(RecordType::MX).len(), 1);
    assert_eq!(
        aaaa_in(&reply.msg.additionals),
        vec![wkp(zone::MX_TARGET_A)]
    );
    let glue = reply
        .msg
        .additionals
        .iter()
        .find(|r| r.record_type() == RecordType::AAAA)
        .unwrap();
    assert_eq!(glue.name, Name::from_ascii(zone::MX_TARGET).unwrap());
}

#[tokio::test]
async fn rewrite_strips_a_answers_like_strip() {
    let d = Dns64d::start(
        r#"[filter]
        a = "rewrite""#,
    )
    .await;
    let reply = d.udp(&q(zone::A_ONLY, RecordType::A)).await;
    assert_no_a(&reply);
    assert_nodata(&reply);
}

#[tokio::test]
async fn strip_removes_a_records_from_any_answers() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::DUAL, RecordType::ANY)).await;
    assert_no_a(&reply);
    assert_eq!(reply.aaaa(), vec![zone::DUAL_AAAA], "AAAA kept");
    assert_eq!(reply.answers_of(RecordType::TXT).len(), 1, "TXT kept");
}

#[tokio::test]
async fn strip_removes_a_records_and_their_rrsigs_for_dnssec_clients() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::SIGNED, RecordType::A).dnssec_ok()).await;
    assert_no_a(&reply);
    assert_eq!(reply.rcode(), ResponseCode::NoError);
}

#[tokio::test]
async fn strip_applies_to_do_and_cd_queries_too() {
    let d = Dns64d::start("").await;
    let reply = d
        .udp(&q(zone::SIGNED, RecordType::A).dnssec_ok().cd())
        .await;
    assert_no_a(&reply);
    assert_eq!(reply.rcode(), ResponseCode::NoError);
}

#[tokio::test]
async fn strip_applies_over_tcp() {
    let d = Dns64d::start("").await;
    let reply = d.tcp(&q(zone::A_ONLY, RecordType::A)).await;
    assert_no_a(&reply);
    assert_nodata(&reply);
    let reply = d.tcp(&q(zone::MANY, RecordType::A)).await;
    assert_no_a(&reply);
}

#[tokio::test]
async fn strip_applies_to_an_a_answer_that_upstream_truncated() {
    // 40 A records do not fit 512 bytes: upstream says TC over UDP, dns64d must
    // get them over TCP (or not at all) and still hand out none.
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::MANY, RecordType::A)).await;
    assert_no_a(&reply);
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    let reply = d.udp(&q(zone::MANY, RecordType::A).edns(1232)).await;
    assert_no_a(&reply);
}

#[tokio::test]
async fn strip_applies_to_repeated_and_cached_answers() {
    let d = Dns64d::start("").await;
    // The AAAA lookup makes dns64d fetch (and perhaps cache) the A records.
    d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    for _ in 0..3 {
        assert_no_a(&d.udp(&q(zone::A_ONLY, RecordType::A)).await);
        assert_no_a(&d.tcp(&q(zone::A_ONLY, RecordType::A)).await);
    }
}

#[tokio::test]
async fn strip_removes_a_records_sent_along_with_an_error_rcode() {
    let d = Dns64d::start("").await;
    for rcode in [ResponseCode::ServFail, ResponseCode::Refused] {
        d.upstream.on(
            zone::A_ONLY,
            Some(RecordType::A),
            Action::RcodeWithRecords(rcode),
        );
        assert_no_a(&d.udp(&q(zone::A_ONLY, RecordType::A)).await);
        assert_no_a(&d.udp(&q(zone::A_ONLY, RecordType::ANY)).await);
    }
}

#[tokio::test]
async fn strip_removes_additional_a_records_from_native_aaaa_answers() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::EXTRA_A, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), vec![zone::EXTRA_A_AAAA]);
    assert_no_a(&reply);
}

#[tokio::test]
async fn strip_removes_additional_a_records_from_do_and_cd_pass_through_answers() {
    let d = Dns64d::start("").await;
    let reply = d
        .udp(&q(zone::EXTRA_A, RecordType::AAAA).dnssec_ok().cd())
        .await;
    assert_eq!(reply.aaaa(), vec![zone::EXTRA_A_AAAA]);
    assert_no_a(&reply);
}

#[tokio::test]
async fn strip_removes_additional_a_records_from_other_query_types() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::EXTRA_A, RecordType::TXT)).await;
    assert_no_a(&reply);
    let reply = d.tcp(&q(zone::EXTRA_A, RecordType::MX)).await;
    assert_no_a(&reply);
}

#[tokio::test]
async fn an_a_query_that_fails_upstream_while_aaaa_works_is_nodata_not_servfail() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::A_SERVFAIL, RecordType::A)).await;
    assert_no_a(&reply);
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    assert!(reply.msg.answers.is_empty());
}

#[tokio::test]
async fn an_a_query_that_times_out_while_aaaa_works_is_nodata_not_servfail() {
    let d = Dns64d::start("").await;
    d.upstream.on(zone::DUAL, Some(RecordType::A), Action::Drop);
    let started = Instant::now();
    let reply = d.udp(&q(zone::DUAL, RecordType::A)).await;
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    assert!(reply.msg.answers.is_empty());
    let bound = Duration::from_millis(BASE_UPSTREAM_TIMEOUT_MS * 2 + 400);
    assert!(started.elapsed() < bound, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn an_a_query_that_fails_for_a_name_with_aaaa_nodata_is_nodata() {
    let d = Dns64d::start("").await;
    d.upstream.on(
        zone::TXT_ONLY,
        Some(RecordType::A),
        Action::Rcode(ResponseCode::ServFail),
    );
    let reply = d.udp(&q(zone::TXT_ONLY, RecordType::A)).await;
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    assert!(reply.msg.answers.is_empty());
}

#[tokio::test]
async fn an_a_query_that_fails_for_a_name_whose_aaaa_is_nxdomain_is_nxdomain() {
    let d = Dns64d::start("").await;
    d.upstream.on(
        zone::MISSING,
        Some(RecordType::A),
        Action::Rcode(ResponseCode::ServFail),
    );
    let reply = d.udp(&q(zone::MISSING, RecordType::A)).await;
    assert_eq!(reply.rcode(), ResponseCode::NXDomain);
}

#[tokio::test]
async fn an_a_query_is_servfail_when_a_and_aaaa_both_fail() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::BROKEN, RecordType::A)).await;
    assert_eq!(reply.rcode(), ResponseCode::ServFail);
    assert_no_a(&reply);
    assert!(
        !d.upstream.asked(zone::BROKEN, RecordType::AAAA).is_empty(),
        "the AAAA was asked before giving up"
    );
}

// ---- plain forwarding for clients outside dns64.clients (§1) ----

const NOT_A_DNS64_CLIENT: &str = r#"[dns64]
    clients = ["10.0.0.0/8", "2001:db8::/32"]"#;

#[tokio::test]
async fn a_client_outside_dns64_clients_gets_a_records_unfiltered() {
    let d = Dns64d::start(NOT_A_DNS64_CLIENT).await;
    let reply = d.udp(&q(zone::A_ONLY, RecordType::A)).await;
    let expected: Vec<_> = zone::A_ONLY_ADDRS.iter().map(|(a, _)| *a).collect();
    assert_eq!(reply.a(), expected);
    let reply = d.udp(&q(zone::MX, RecordType::MX)).await;
    let glue: Vec<_> = reply
        .msg
        .additionals
        .iter()
        .filter_map(|r| match r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    assert_eq!(glue, vec![zone::MX_TARGET_A]);
}

#[tokio::test]
async fn a_client_outside_dns64_clients_gets_no_synthesis() {
    let d = Dns64d::start(NOT_A_DNS64_CLIENT).await;
    let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    assert!(reply.msg.answers.is_empty(), "{:?}", reply.msg);
    assert!(d.upstream.asked(zone::A_ONLY, RecordType::A).is_empty());
}

/// The SvcParam keys of every `rtype` (HTTPS or SVCB) record in the answer.
fn svc_param_keys(
    reply: &crate::support::Reply,
    rtype: RecordType,
) -> Vec<Vec<hickory_proto::rr::rdata::svcb::SvcParamKey>> {
    reply
        .answers_of(rtype)
        .iter()
        .map(|r| {
            let svcb = match &r.data {
                RData::HTTPS(h) => &h.0,
                RData::SVCB(s) => s,
                other => panic!("not HTTPS/SVCB: {other:?}"),
            };
            svcb.svc_params.iter().map(|(k, _)| *k).collect()
        })
        .collect()
}

#[tokio::test]
async fn strip_removes_ipv4hint_from_https_and_svcb_records() {
    use hickory_proto::rr::rdata::svcb::SvcParamKey;
    let d = Dns64d::start("").await;
    for rtype in [RecordType::HTTPS, RecordType::SVCB] {
        let reply = d.udp(&q(zone::HINTED, rtype)).await;
        let keys = svc_param_keys(&reply, rtype);
        assert_eq!(
            keys,
            vec![vec![SvcParamKey::Alpn, SvcParamKey::Ipv6Hint]],
            "{rtype}: ipv4hint removed, the rest kept"
        );
    }
}

#[tokio::test]
async fn pass_keeps_ipv4hint_in_https_records() {
    use hickory_proto::rr::rdata::svcb::SvcParamKey;
    let d = Dns64d::start(
        r#"[filter]
        a = "pass""#,
    )
    .await;
    let reply = d.udp(&q(zone::HINTED, RecordType::HTTPS)).await;
    assert_eq!(
        svc_param_keys(&reply, RecordType::HTTPS),
        vec![vec![
            SvcParamKey::Alpn,
            SvcParamKey::Ipv4Hint,
            SvcParamKey::Ipv6Hint
        ]]
    );
}
