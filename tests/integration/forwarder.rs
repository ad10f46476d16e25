//! SPEC §1: the client behind a trusted forwarder is the address in its EDNS
//! Client Subnet option (RFC 7871), for DNS64 policy and for the ACL; the option
//! goes upstream only with `upstream.send_ecs = true`.

use std::net::{IpAddr, Ipv6Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::EdnsOption;

use crate::support::{Dns64d, assert_no_a, q, wkp, zone};

/// A pod address inside `dns64.clients` of [`BEHIND_FORWARDER`].
const POD: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xaaaa, 1, 0, 0, 0, 0);
/// A source address outside it.
const OUTSIDER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xbbbb, 1, 0, 0, 0, 0);

/// 127.0.0.1 is a trusted forwarder but not itself a DNS64 client; pods in
/// 2001:db8:aaaa::/48 are.
const BEHIND_FORWARDER: &str = r#"
    [server]
    allow = ["127.0.0.0/8", "2001:db8::/32"]
    trusted_forwarders = ["127.0.0.0/8"]
    [dns64]
    clients = ["2001:db8:aaaa::/48"]"#;

fn a_only_synthesized() -> Vec<Ipv6Addr> {
    zone::A_ONLY_ADDRS.iter().map(|(a, _)| wkp(*a)).collect()
}

fn has_subnet_option(seen: &crate::support::upstream::Seen) -> bool {
    seen.message.edns.as_ref().is_some_and(|e| {
        e.options()
            .options
            .iter()
            .any(|(_, o)| matches!(o, EdnsOption::Subnet(_)))
    })
}

#[tokio::test]
async fn a_pod_behind_a_trusted_forwarder_is_a_dns64_client_by_its_ecs_address() {
    let d = Dns64d::start(BEHIND_FORWARDER).await;
    let query = q(zone::A_ONLY, RecordType::AAAA).ecs(IpAddr::V6(POD), 64);
    let reply = d.udp(&query).await;
    assert_eq!(reply.aaaa(), a_only_synthesized());
    assert_no_a(
        &d.udp(&q(zone::A_ONLY, RecordType::A).ecs(IpAddr::V6(POD), 64))
            .await,
    );
}

#[tokio::test]
async fn a_pod_outside_dns64_clients_behind_a_trusted_forwarder_gets_plain_forwarding() {
    let d = Dns64d::start(BEHIND_FORWARDER).await;
    let query = q(zone::A_ONLY, RecordType::AAAA).ecs(IpAddr::V6(OUTSIDER), 64);
    let reply = d.udp(&query).await;
    assert!(reply.aaaa().is_empty(), "{:?}", reply.msg);
    let reply = d
        .udp(&q(zone::A_ONLY, RecordType::A).ecs(IpAddr::V6(OUTSIDER), 64))
        .await;
    assert_eq!(reply.a().len(), zone::A_ONLY_ADDRS.len(), "A not filtered");
}

#[tokio::test]
async fn ecs_from_an_untrusted_source_is_ignored() {
    let d = Dns64d::start(
        r#"
        [server]
        allow = ["127.0.0.0/8", "2001:db8::/32"]
        [dns64]
        clients = ["2001:db8:aaaa::/48"]"#,
    )
    .await;
    let query = q(zone::A_ONLY, RecordType::AAAA).ecs(IpAddr::V6(POD), 64);
    let reply = d.udp(&query).await;
    assert!(reply.aaaa().is_empty(), "ECS believed: {:?}", reply.msg);
}

#[tokio::test]
async fn an_ecs_address_outside_server_allow_is_refused() {
    let d = Dns64d::start(
        r#"
        [server]
        allow = ["127.0.0.0/8", "2001:db8:aaaa::/48"]
        trusted_forwarders = ["127.0.0.0/8"]"#,
    )
    .await;
    let query = q(zone::DUAL, RecordType::AAAA).ecs(IpAddr::V6(OUTSIDER), 64);
    let reply = d.udp(&query).await;
    assert_eq!(reply.rcode(), ResponseCode::Refused);
    assert_eq!(d.upstream.total_received(), 0);
}

#[tokio::test]
async fn ecs_is_not_sent_upstream_by_default() {
    let d = Dns64d::start(BEHIND_FORWARDER).await;
    d.udp(&q(zone::DUAL, RecordType::AAAA).ecs(IpAddr::V6(POD), 64))
        .await;
    let seen = d.upstream.asked(zone::DUAL, RecordType::AAAA);
    assert_eq!(seen.len(), 1);
    assert!(!has_subnet_option(&seen[0]), "{:?}", seen[0].message.edns);
}

#[tokio::test]
async fn ecs_is_sent_upstream_with_send_ecs() {
    let d = Dns64d::start(&format!("{BEHIND_FORWARDER}\n[upstream]\nsend_ecs = true")).await;
    d.udp(&q(zone::DUAL, RecordType::AAAA).ecs(IpAddr::V6(POD), 64))
        .await;
    let seen = d.upstream.asked(zone::DUAL, RecordType::AAAA);
    assert_eq!(seen.len(), 1);
    assert!(has_subnet_option(&seen[0]), "{:?}", seen[0].message.edns);
}
