//! SPEC §10: `dns64.prefixes = ["discover"]` learns Pref64::/n from the
//! upstream's `ipv4only.arpa. AAAA` answer (RFC 7050 §3), refreshes it, and
//! falls back to the other entries of the list.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use dns64d::app::Server;
use hickory_proto::rr::rdata::AAAA;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::support::{Dns64d, Upstream, config_toml, q, under96, wkp, zone};

const IPV4ONLY: &str = "ipv4only.arpa.";

/// The upstream, a DNS64 resolver, answers `ipv4only.arpa. AAAA` with
/// these addresses (192.0.0.170 and .171 embedded by the test, by hand).
fn answer_ipv4only(up: &Upstream, addrs: &[Ipv6Addr], ttl: u32) {
    let owner = Name::from_ascii(IPV4ONLY).unwrap();
    let records = addrs
        .iter()
        .map(|a| Record::from_rdata(owner.clone(), ttl, RData::AAAA(AAAA(*a))))
        .collect();
    up.set_answer(IPV4ONLY, RecordType::AAAA, records);
}

/// The first A address of [`zone::A_ONLY`].
fn first_a() -> Ipv4Addr {
    zone::A_ONLY_ADDRS[0].0
}

fn info(prefix: &str, source: &str) -> String {
    format!("dns64d_nat64_prefix_info{{prefix=\"{prefix}\",source=\"{source}\"}}")
}

#[tokio::test]
async fn a_discovered_96_prefix_is_used_for_synthesis_and_exported_as_a_metric() {
    let up = Upstream::start().await;
    let p = [0x2001, 0xdb8, 0x64, 0, 0, 0];
    answer_ipv4only(
        &up,
        &[
            under96(p, Ipv4Addr::new(192, 0, 0, 170)),
            under96(p, Ipv4Addr::new(192, 0, 0, 171)),
        ],
        600,
    );
    let d = Dns64d::start_with(up, "[dns64]\nprefixes = [\"discover\"]").await;
    let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa()[0], under96(p, first_a()));
    assert_eq!(d.counter(&info("2001:db8:64::/96", "discovered")), 1);
    // Asked upstream at start-up, not answered from dns64d's own
    // ipv4only.arpa: the well-known prefix was never configured.
    assert_eq!(d.upstream.asked(IPV4ONLY, RecordType::AAAA).len(), 1);
    // A client's ipv4only.arpa is answered locally under the learned prefix.
    let local = d.udp(&q(IPV4ONLY, RecordType::AAAA)).await;
    assert!(
        local
            .aaaa()
            .contains(&under96(p, Ipv4Addr::new(192, 0, 0, 170)))
    );
    assert_eq!(d.upstream.asked(IPV4ONLY, RecordType::AAAA).len(), 1);
}

#[tokio::test]
async fn discovered_64_and_32_prefixes_are_read_at_their_rfc6052_positions() {
    // RFC 6052 §2.2 by hand: /64 puts the IPv4 octets at bytes 9..12 (the
    // "u" byte 8 stays zero), /32 at bytes 4..7.
    for (wka170, wka171, prefix, synthesized) in [
        (
            "2001:db8:122:344:c0:0:aa00:0",
            "2001:db8:122:344:c0:0:ab00:0",
            "2001:db8:122:344::/64",
            "2001:db8:122:344:c0:2:100:0",
        ),
        (
            "2001:db8:c000:aa::",
            "2001:db8:c000:ab::",
            "2001:db8::/32",
            "2001:db8:c000:201::",
        ),
    ] {
        let up = Upstream::start().await;
        answer_ipv4only(
            &up,
            &[wka170.parse().unwrap(), wka171.parse().unwrap()],
            600,
        );
        let d = Dns64d::start_with(up, "[dns64]\nprefixes = [\"discover\"]").await;
        let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
        let want: Ipv6Addr = synthesized.parse().unwrap();
        assert_eq!(reply.aaaa()[0], want, "{prefix}");
        assert_eq!(d.counter(&info(prefix, "discovered")), 1, "{prefix}");
    }
}

#[tokio::test]
async fn start_up_fails_clearly_when_nothing_is_discovered_and_no_fallback_is_listed() {
    // The fixture upstream does no DNS64: ipv4only.arpa. AAAA has no answer.
    let up = Upstream::start().await;
    let toml = config_toml(up.addr(), "[dns64]\nprefixes = [\"discover\"]");
    let err = match Server::bind(crate::support::parse_config(&toml)).await {
        Ok(_) => panic!("start-up must fail"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("discover") && err.contains("no fallback") && err.contains("ipv4only.arpa"),
        "{err}"
    );
}

#[tokio::test]
async fn the_other_prefixes_listed_are_the_fallback_while_nothing_is_discovered() {
    let d = Dns64d::start("[dns64]\nprefixes = [\"discover\", \"64:ff9b::/96\"]").await;
    let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa()[0], wkp(first_a()));
    assert_eq!(d.counter(&info("64:ff9b::/96", "fallback")), 1);
}

#[tokio::test]
async fn a_changed_prefix_applies_to_new_queries_without_a_restart() {
    let up = Upstream::start().await;
    let old = [0x2001, 0xdb8, 0x64, 0, 0, 0];
    let new = [0x2001, 0xdb8, 0x46, 0, 0, 0];
    let wka = Ipv4Addr::new(192, 0, 0, 170);
    // TTL 1: the next discovery comes after discovery_min_interval.
    answer_ipv4only(&up, &[under96(old, wka)], 1);
    let d = Dns64d::start_with(
        up,
        "[dns64]\nprefixes = [\"discover\"]\ndiscovery_min_interval = \"1s\"",
    )
    .await;
    let before = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    assert_eq!(before.aaaa()[0], under96(old, first_a()));
    // The NAT64 is renumbered.
    answer_ipv4only(&d.upstream, &[under96(new, wka)], 1);
    d.settles(&info("2001:db8:46::/96", "discovered"), 1).await;
    // The answer under the old prefix was cached for 200 s: the new
    // prefix's pipeline starts with an empty cache.
    let started = Instant::now();
    loop {
        let after = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
        if after.aaaa()[0] == under96(new, first_a()) {
            break;
        }
        // The metric moves just before the pipeline swap lands.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still {:?}",
            after.aaaa()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(d.counter(&info("2001:db8:64::/96", "discovered")), 0);
}

#[tokio::test]
async fn discover_config_errors_name_the_key_and_the_value() {
    for (snippet, value) in [
        (
            "[dns64]\nprefixes = [\"discover\", \"discover\"]",
            "discover",
        ),
        (
            "[[dns64.zone]]\nsuffix = \"corp.example.\"\nprefixes = [\"discover\"]",
            "discover",
        ),
        (
            "[dns64]\nprefixes = [\"discover\"]\ndiscovery_min_interval = \"2h\"\ndiscovery_max_interval = \"1h\"",
            "7200s",
        ),
        (
            "[dns64]\nprefixes = [\"discover\"]\ndiscovery_min_interval = \"0s\"",
            "0ns",
        ),
    ] {
        let toml = config_toml("127.0.0.1:53".parse().unwrap(), snippet);
        let err = dns64d::config::Config::from_toml(&toml)
            .err()
            .unwrap_or_else(|| panic!("accepted: {snippet}"))
            .to_string();
        assert!(
            err.contains("dns64.") && err.contains(value),
            "{snippet}: {err}"
        );
    }
}
