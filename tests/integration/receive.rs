//! How UDP sockets are read (`server.udp_receive`, #15). The default, a
//! receive thread per socket, is what every other test runs; here both
//! modes answer the same query mix: a miss relayed upstream (synthesis,
//! two exchanges), the cache hit that repeats it, a native AAAA, a response
//! the first stage drops, and a burst of concurrent misses that all get
//! their own answer.

use std::net::Ipv6Addr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::support::{Dns64d, q, sorted, wkp, zone};

async fn answers_every_kind_of_query(mode: &str) {
    let d = Dns64d::start(&format!("[server]\nudp_receive = \"{mode}\"")).await;
    let synthesized: Vec<Ipv6Addr> = zone::A_ONLY_ADDRS.iter().map(|(a, _)| wkp(*a)).collect();

    let miss = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    assert_eq!(
        sorted(miss.aaaa()),
        sorted(synthesized.clone()),
        "{mode}: miss"
    );
    let hit = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    assert_eq!(sorted(hit.aaaa()), sorted(synthesized), "{mode}: hit");
    assert_eq!(d.counter("dns64d_cache_hits_total"), 1, "{mode}");

    let native = d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(native.aaaa(), [zone::DUAL_AAAA], "{mode}: native");

    // A response sent to us gets no answer; the server goes on.
    let mut response = q(zone::DUAL, RecordType::AAAA).bytes();
    response[2] |= 0x80;
    assert_eq!(d.udp_raw(&response).await, None, "{mode}: response dropped");

    // Names nobody asked before, all at once, each on its own socket.
    let mut at_once = tokio::task::JoinSet::new();
    for i in 0..64 {
        let (addr, query) = (
            d.addr,
            q(&format!("n{i}.{}", zone::MISSING), RecordType::AAAA),
        );
        at_once.spawn(async move {
            let reply = crate::support::client::udp(addr, &query.bytes()).await;
            (query.bytes(), reply)
        });
    }
    while let Some(done) = at_once.join_next().await {
        let (query, reply) = done.unwrap();
        assert_eq!(reply.rcode(), ResponseCode::NXDomain, "{mode}");
        assert_eq!(reply.raw[..2], query[..2], "{mode}: the query's own ID");
    }
}

#[tokio::test]
async fn the_receive_thread_answers_misses_hits_and_bursts() {
    answers_every_kind_of_query("thread").await;
}

#[tokio::test]
async fn the_polled_loop_answers_misses_hits_and_bursts() {
    answers_every_kind_of_query("poll").await;
}
