//! SPEC §6: PTR for synthesized addresses (RFC 6147 §5.3.1) and `ipv4only.arpa.`
//! (RFC 7050, RFC 8880).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};

use crate::support::{Dns64d, under96, wkp, zone};

/// The ip6.arpa name of `addr`.
fn ip6_arpa(addr: Ipv6Addr) -> String {
    Name::from(IpAddr::V6(addr)).to_ascii()
}

/// (owner, target) of every CNAME in the answer, lower-cased.
fn cnames(reply: &crate::support::Reply) -> Vec<(String, String)> {
    reply
        .msg
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::CNAME(c) => Some((
                r.name.to_lowercase().to_ascii(),
                c.0.to_lowercase().to_ascii(),
            )),
            _ => None,
        })
        .collect()
}

/// Targets of every PTR in the answer, lower-cased.
fn ptr_targets(reply: &crate::support::Reply) -> Vec<String> {
    reply
        .msg
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::PTR(p) => Some(p.0.to_lowercase().to_ascii()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn ptr_for_a_synthesized_address_is_a_cname_to_in_addr_arpa_followed_upstream() {
    let d = Dns64d::start("").await;
    let name = ip6_arpa(wkp(zone::RFC6052_A));
    let reply = d.udp(&crate::support::q(&name, RecordType::PTR)).await;
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    assert_eq!(
        cnames(&reply),
        vec![(name.to_lowercase(), zone::RFC6052_PTR.to_string())]
    );
    assert_eq!(ptr_targets(&reply), vec![zone::RFC6052.to_string()]);
    assert_eq!(
        d.upstream.asked(zone::RFC6052_PTR, RecordType::PTR).len(),
        1
    );
}

#[tokio::test]
async fn ptr_mode_cname_returns_the_cname_without_asking_upstream() {
    let d = Dns64d::start(
        r#"[dns64]
        ptr = "cname""#,
    )
    .await;
    let name = ip6_arpa(wkp(zone::RFC6052_A));
    let reply = d.udp(&crate::support::q(&name, RecordType::PTR)).await;
    assert_eq!(
        cnames(&reply),
        vec![(name.to_lowercase(), zone::RFC6052_PTR.to_string())]
    );
    assert!(ptr_targets(&reply).is_empty());
    assert_eq!(d.upstream.total_received(), 0);
}

#[tokio::test]
async fn ptr_mode_off_forwards_the_ip6_arpa_query_untouched() {
    let d = Dns64d::start(
        r#"[dns64]
        ptr = "off""#,
    )
    .await;
    let name = ip6_arpa(wkp(zone::RFC6052_A));
    let reply = d.udp(&crate::support::q(&name, RecordType::PTR)).await;
    assert!(cnames(&reply).is_empty());
    assert_eq!(reply.rcode(), ResponseCode::NXDomain, "as upstream answers");
    assert_eq!(d.upstream.asked(&name, RecordType::PTR).len(), 1);
}

#[tokio::test]
async fn ptr_outside_every_prefix_is_forwarded() {
    let d = Dns64d::start("").await;
    let name = ip6_arpa(zone::DUAL_AAAA);
    let reply = d.udp(&crate::support::q(&name, RecordType::PTR)).await;
    assert!(cnames(&reply).is_empty());
    assert_eq!(d.upstream.asked(&name, RecordType::PTR).len(), 1);
}

#[tokio::test]
async fn ptr_extraction_skips_the_u_octet_of_a_64_prefix() {
    // RFC 6052 §2.4: 192.0.2.33 under 2001:db8:122:344::/64.
    let d = Dns64d::start(
        r#"[dns64]
        prefixes = ["2001:db8:122:344::/64"]"#,
    )
    .await;
    let addr: Ipv6Addr = "2001:db8:122:344:c0:2:2100:0".parse().unwrap();
    let name = ip6_arpa(addr);
    let reply = d.udp(&crate::support::q(&name, RecordType::PTR)).await;
    assert_eq!(
        cnames(&reply),
        vec![(name.to_lowercase(), zone::RFC6052_PTR.to_string())]
    );
}

#[tokio::test]
async fn aaaa_for_ipv4only_arpa_is_answered_locally_under_every_prefix() {
    let d = Dns64d::start(
        r#"[dns64]
        prefixes = ["64:ff9b::/96", "2001:db8:64::/96"]"#,
    )
    .await;
    let reply = d
        .udp(&crate::support::q("ipv4only.arpa.", RecordType::AAAA))
        .await;
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    let got: BTreeSet<Ipv6Addr> = reply.aaaa().into_iter().collect();
    let mut expected = BTreeSet::new();
    for v4 in [Ipv4Addr::new(192, 0, 0, 170), Ipv4Addr::new(192, 0, 0, 171)] {
        expected.insert(wkp(v4));
        expected.insert(under96([0x2001, 0xdb8, 0x64, 0, 0, 0], v4));
    }
    assert_eq!(got, expected);
    assert_eq!(reply.aaaa().len(), 4, "no duplicates");
    assert_eq!(d.upstream.total_received(), 0, "answered locally");
}

#[tokio::test]
async fn an_a_query_for_ipv4only_arpa_returns_the_well_known_addresses_with_filter_pass() {
    let d = Dns64d::start(
        r#"[filter]
        a = "pass""#,
    )
    .await;
    let reply = d
        .udp(&crate::support::q("ipv4only.arpa.", RecordType::A))
        .await;
    let got: BTreeSet<Ipv4Addr> = reply.a().into_iter().collect();
    let expected: BTreeSet<Ipv4Addr> =
        [Ipv4Addr::new(192, 0, 0, 170), Ipv4Addr::new(192, 0, 0, 171)].into();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn an_a_query_for_ipv4only_arpa_is_stripped_with_filter_strip() {
    let d = Dns64d::start("").await;
    let reply = d
        .udp(&crate::support::q("ipv4only.arpa.", RecordType::A))
        .await;
    crate::support::assert_no_a(&reply);
    assert_eq!(reply.rcode(), ResponseCode::NoError);
}
