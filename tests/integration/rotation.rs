//! Answer rotation on cache hits (`dns64.rotate`, issue #19 item 4): every
//! address of a group comes first in turn, `dns64.order` and the prefix
//! order hold, and `rotate = false` keeps the stored order.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::support::{Dns64d, Upstream, q, under96, wkp, zone};

/// The network-specific prefix of the two-prefix test.
const NSP: [u16; 6] = [0x2001, 0xdb8, 0x64, 0, 0, 0];

/// The A addresses of [`zone::A_ONLY`] in upstream order.
fn a_only() -> Vec<Ipv4Addr> {
    zone::A_ONLY_ADDRS.iter().map(|(a, _)| *a).collect()
}

/// `v` rotated left by `n`.
fn turned<T: Clone>(v: &[T], n: usize) -> Vec<T> {
    let mut v = v.to_vec();
    let len = v.len();
    v.rotate_left(n % len);
    v
}

fn record(name: &str, data: RData) -> Record {
    Record::from_rdata(Name::from_ascii(name).unwrap(), 300, data)
}

#[tokio::test]
async fn cache_hits_put_each_synthesized_aaaa_first_in_turn() {
    let d = Dns64d::start("").await;
    let stored: Vec<Ipv6Addr> = a_only().into_iter().map(wkp).collect();
    let mut firsts = Vec::new();
    for n in 0..4 {
        let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
        assert_eq!(reply.aaaa(), turned(&stored, n), "answer {n}");
        firsts.push(reply.aaaa()[0]);
    }
    assert_eq!(firsts, [stored[0], stored[1], stored[2], stored[0]]);
    assert_eq!(d.counter("dns64d_cache_hits_total"), 3);
    // TCP hits take their turn on the same entry.
    assert_eq!(
        d.tcp(&q(zone::A_ONLY, RecordType::AAAA)).await.aaaa(),
        turned(&stored, 4)
    );
}

#[tokio::test]
async fn rotation_keeps_native_first_and_rotates_each_group_on_its_own() {
    let upstream = Upstream::start().await;
    let native = [
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11),
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x12),
    ];
    let v4 = [Ipv4Addr::new(192, 0, 2, 11), Ipv4Addr::new(192, 0, 2, 12)];
    let aaaa = native
        .iter()
        .map(|&a| record(zone::DUAL, RData::AAAA(AAAA(a))));
    upstream.set_answer(zone::DUAL, RecordType::AAAA, aaaa.collect());
    let a = v4.iter().map(|&a| record(zone::DUAL, RData::A(A(a))));
    upstream.set_answer(zone::DUAL, RecordType::A, a.collect());
    let d = Dns64d::start_with(
        upstream,
        r#"[dns64]
        order = "native-first"
        [[dns64.zone]]
        suffix = "dual.example."
        policy = "both""#,
    )
    .await;
    let synthesized: Vec<Ipv6Addr> = v4.iter().map(|&a| wkp(a)).collect();
    for n in 0..4 {
        let got = d.udp(&q(zone::DUAL, RecordType::AAAA)).await.aaaa();
        let want = [turned(&native, n), turned(&synthesized, n)].concat();
        assert_eq!(got, want, "answer {n}: native first, each group rotated");
    }
}

#[tokio::test]
async fn two_prefixes_keep_their_configured_order_while_each_rotates() {
    let d = Dns64d::start(
        r#"[dns64]
        prefixes = ["64:ff9b::/96", "2001:db8:64::/96"]"#,
    )
    .await;
    let first: Vec<Ipv6Addr> = a_only().into_iter().map(wkp).collect();
    let second: Vec<Ipv6Addr> = a_only().into_iter().map(|a| under96(NSP, a)).collect();
    for n in 0..4 {
        let got = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await.aaaa();
        let want = [turned(&first, n), turned(&second, n)].concat();
        assert_eq!(got, want, "answer {n}");
    }
}

#[tokio::test]
async fn a_answers_for_plain_clients_rotate_on_cache_hits() {
    let d = Dns64d::start("[dns64]\nclients = [\"10.0.0.0/8\"]").await;
    let stored = a_only();
    for n in 0..4 {
        let got = d.udp(&q(zone::A_ONLY, RecordType::A)).await.a();
        assert_eq!(got, turned(&stored, n), "answer {n}");
    }
}

#[tokio::test]
async fn rotate_false_keeps_the_stored_order_on_every_hit() {
    let d = Dns64d::start("[dns64]\nrotate = false").await;
    let stored: Vec<Ipv6Addr> = a_only().into_iter().map(wkp).collect();
    for n in 0..4 {
        let got = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await.aaaa();
        assert_eq!(got, stored, "answer {n}");
    }
    assert_eq!(d.counter("dns64d_cache_hits_total"), 3);
}
