//! SPEC §7: what every answer echoes, EDNS0, truncation, TCP (RFC 7766) and the
//! upstream side (timeouts, attempts, TC retry, extended errors).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::support::client::{TcpClient, question_bytes};
use crate::support::upstream::UPSTREAM_PAYLOAD;
use crate::support::{Action, Dns64d, Q, Transport, Upstream, q, wkp, zone};

/// Queries that take different paths through dns64d: forwarded, synthesized,
/// stripped, NXDOMAIN. Names in mixed case, as a client using 0x20 randomisation sends.
fn one_query_per_path() -> Vec<Q> {
    vec![
        q("DuAl.ExAmPlE.", RecordType::TXT),
        q("A-oNlY.eXaMpLe.", RecordType::AAAA),
        q("A-OnLy.ExAmPlE.", RecordType::A),
        q("MiSsInG.eXaMpLe.", RecordType::AAAA),
    ]
}

fn many_synthesized() -> Vec<std::net::Ipv6Addr> {
    (0..zone::MANY_COUNT)
        .map(|i| wkp(std::net::Ipv4Addr::new(192, 0, 2, 100 + i)))
        .collect()
}

/// A reply to AAAA many.example. cut to `limit` bytes keeps as many whole
/// synthesized records as fit, in upstream order, and sets TC (RFC 2181 §9).
#[track_caller]
fn assert_cut_to(reply: &crate::support::Reply, limit: usize) {
    assert!(reply.tc(), "TC=1");
    assert!(
        reply.raw.len() <= limit,
        "{} bytes > {limit}",
        reply.raw.len()
    );
    let got = reply.aaaa();
    assert!(!got.is_empty(), "musl still gets usable addresses");
    assert_eq!(
        got,
        many_synthesized()[..got.len()],
        "whole records, in order"
    );
    assert!(
        reply.raw.len() + 28 > limit,
        "room was left for another 28-byte AAAA ({} bytes, {} records)",
        reply.raw.len(),
        got.len()
    );
}

#[tokio::test]
async fn every_answer_echoes_the_id_rd_and_question_byte_for_byte() {
    let d = Dns64d::start("").await;
    for (i, query) in one_query_per_path().into_iter().enumerate() {
        for rd in [true, false] {
            let id = 0xA000 + (i as u16) * 2 + u16::from(rd);
            let query = query.clone().id(id).rd(rd);
            let sent = query.bytes();
            for reply in [d.udp(&query).await, d.tcp(&query).await] {
                assert_eq!(reply.raw[..2], sent[..2], "ID echoed");
                assert_eq!(reply.raw[2] & 0x01, sent[2] & 0x01, "RD echoed");
                assert_eq!(reply.raw[2] & 0x80, 0x80, "QR set");
                assert_eq!(
                    reply.question_bytes(),
                    question_bytes(&sent),
                    "question echoed byte for byte"
                );
            }
        }
    }
}

#[tokio::test]
async fn answers_dns64d_makes_itself_set_ra() {
    let upstream = Upstream::start().await;
    upstream.set_recursion_available(false);
    let d = Dns64d::start_with(upstream, "").await;
    let synthesized = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    assert_eq!(synthesized.aaaa().len(), zone::A_ONLY_ADDRS.len());
    assert!(
        synthesized.msg.metadata.recursion_available,
        "synthesized answer"
    );
    let stripped = d.udp(&q(zone::A_ONLY, RecordType::A)).await;
    assert!(
        stripped.msg.metadata.recursion_available,
        "stripped A answer"
    );
}

#[tokio::test]
async fn a_servfail_after_every_upstream_failed_sets_ra() {
    let d = Dns64d::start("").await;
    d.upstream.on_all(None, Action::Drop);
    let reply = d.udp(&q(zone::DUAL, RecordType::TXT)).await;
    assert_eq!(reply.rcode(), ResponseCode::ServFail);
    assert!(reply.msg.metadata.recursion_available);
}

#[tokio::test]
async fn an_opt_record_advertising_udp_payload_answers_a_query_with_edns() {
    let d = Dns64d::start(
        r#"[server]
        udp_payload = 1400"#,
    )
    .await;
    assert_ne!(UPSTREAM_PAYLOAD, 1400);
    for query in one_query_per_path() {
        let query = query.edns(1232);
        for reply in [d.udp(&query).await, d.tcp(&query).await] {
            let edns = reply
                .msg
                .edns
                .as_ref()
                .unwrap_or_else(|| panic!("no OPT in reply to an EDNS query: {:?}", reply.msg));
            assert_eq!(edns.max_payload(), 1400, "reply to {query:?}");
        }
    }
}

#[tokio::test]
async fn no_opt_record_answers_a_query_without_edns() {
    let d = Dns64d::start("").await;
    for query in one_query_per_path() {
        for reply in [d.udp(&query).await, d.tcp(&query).await] {
            assert!(reply.msg.edns.is_none(), "unexpected OPT: {:?}", reply.msg);
        }
    }
}

#[tokio::test]
async fn a_large_answer_to_a_client_without_edns_keeps_the_whole_records_that_fit_and_sets_tc() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::MANY, RecordType::AAAA)).await;
    assert_cut_to(&reply, 512);
}

#[tokio::test]
async fn a_large_answer_over_tcp_is_complete() {
    let d = Dns64d::start("").await;
    let reply = d.tcp(&q(zone::MANY, RecordType::AAAA)).await;
    assert!(!reply.tc());
    assert_eq!(reply.aaaa(), many_synthesized());
}

#[tokio::test]
async fn a_large_answer_that_fits_the_clients_edns_size_is_complete_over_udp() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::MANY, RecordType::AAAA).edns(1232)).await;
    assert!(!reply.tc());
    assert_eq!(reply.aaaa(), many_synthesized());
}

#[tokio::test]
async fn pipelined_queries_on_one_tcp_connection_are_all_answered() {
    let d = Dns64d::start("").await;
    let mut conn = TcpClient::connect(d.addr).await;
    // glibc sends the A and AAAA of one lookup back to back.
    let queries = [
        q(zone::A_ONLY, RecordType::A),
        q(zone::A_ONLY, RecordType::AAAA),
        q(zone::DUAL, RecordType::AAAA),
        q(zone::MISSING, RecordType::AAAA),
    ];
    for query in &queries {
        conn.send(&query.bytes()).await;
    }
    let mut replies = HashMap::new();
    for _ in &queries {
        let reply = conn.recv().await;
        replies.insert(reply.msg.metadata.id, reply);
    }
    let by_id = |query: &Q| &replies[&query.message_id()];
    crate::support::assert_no_a(by_id(&queries[0]));
    assert_eq!(
        by_id(&queries[1]).aaaa().len(),
        zone::A_ONLY_ADDRS.len(),
        "synthesized"
    );
    assert_eq!(by_id(&queries[2]).aaaa(), vec![zone::DUAL_AAAA]);
    assert_eq!(by_id(&queries[3]).rcode(), ResponseCode::NXDomain);
}

#[tokio::test]
async fn tcp_answers_each_query_as_it_completes() {
    let d = Dns64d::start("").await;
    d.upstream.on(
        zone::TXT_ONLY,
        None,
        Action::Delay(Duration::from_millis(250)),
    );
    let mut conn = TcpClient::connect(d.addr).await;
    let slow = q(zone::TXT_ONLY, RecordType::TXT);
    let fast = q(zone::DUAL, RecordType::TXT);
    conn.send(&slow.bytes()).await;
    conn.send(&fast.bytes()).await;
    let first = conn.recv().await;
    let second = conn.recv().await;
    assert_eq!(first.msg.metadata.id, fast.message_id(), "fast one first");
    assert_eq!(second.msg.metadata.id, slow.message_id());
}

#[tokio::test]
async fn an_idle_tcp_connection_is_closed_after_tcp_idle_timeout() {
    let d = Dns64d::start(
        r#"[server]
        tcp_idle_timeout = "300ms""#,
    )
    .await;
    let mut conn = TcpClient::connect(d.addr).await;
    conn.send(&q(zone::DUAL, RecordType::TXT).bytes()).await;
    conn.recv().await;
    let idle_since = Instant::now();
    assert!(
        conn.closed_within(Duration::from_secs(2)).await,
        "still open after 2 s idle"
    );
    assert!(
        idle_since.elapsed() >= Duration::from_millis(200),
        "closed too early: {:?}",
        idle_since.elapsed()
    );
}

#[tokio::test]
async fn a_servfail_after_every_upstream_failed_carries_extended_error_22() {
    let d = Dns64d::start("").await;
    d.upstream.on_all(None, Action::Drop);
    let reply = d.udp(&q(zone::DUAL, RecordType::TXT).edns(1232)).await;
    assert_eq!(reply.rcode(), ResponseCode::ServFail);
    assert!(
        reply.ede_codes().contains(&22),
        "EDE 22 No Reachable Authority: {:?}",
        reply.msg.edns
    );
}

#[tokio::test]
async fn a_servfail_to_a_client_without_edns_has_no_opt() {
    let d = Dns64d::start("").await;
    d.upstream.on_all(None, Action::Drop);
    let reply = d.udp(&q(zone::DUAL, RecordType::TXT)).await;
    assert_eq!(reply.rcode(), ResponseCode::ServFail);
    assert!(reply.msg.edns.is_none());
}

#[tokio::test]
async fn an_upstream_that_never_answers_gives_servfail_within_timeout_times_attempts() {
    let d = Dns64d::start(
        r#"[upstream]
        timeout = "200ms"
        attempts = 2"#,
    )
    .await;
    d.upstream.on_all(None, Action::Drop);
    let started = Instant::now();
    let reply = d.udp(&q(zone::DUAL, RecordType::TXT)).await;
    let elapsed = started.elapsed();
    assert_eq!(reply.rcode(), ResponseCode::ServFail);
    assert!(
        elapsed < Duration::from_millis(400 + 300),
        "took {elapsed:?}"
    );
    assert_eq!(
        d.upstream.asked(zone::DUAL, RecordType::TXT).len(),
        2,
        "upstream.attempts = 2 tries"
    );
}

#[tokio::test]
async fn a_dead_upstream_is_passed_over_for_the_next_server() {
    let dead = Upstream::start().await;
    dead.on_all(None, Action::Drop);
    let good = Upstream::start().await;
    let config = format!(
        "[upstream]\nservers = [\"{}\", \"{}\"]\ntimeout = \"300ms\"\nattempts = 2",
        dead.addr(),
        good.addr()
    );
    let d = Dns64d::start_with(good, &config).await;
    let reply = d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), vec![zone::DUAL_AAAA]);
}

#[tokio::test]
async fn an_upstream_answer_with_tc_is_retried_over_tcp() {
    let d = Dns64d::start("").await;
    let reply = d.tcp(&q(zone::BIG_TXT, RecordType::TXT)).await;
    assert_eq!(reply.answers_of(RecordType::TXT).len(), zone::BIG_TXT_COUNT);
    let asked = d.upstream.asked(zone::BIG_TXT, RecordType::TXT);
    assert!(
        asked.iter().any(|s| s.transport == Transport::Tcp),
        "never asked upstream over TCP: {:?}",
        asked.iter().map(|s| s.transport).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_failed_upstream_is_not_waited_for_again_on_the_next_query() {
    let dead = Upstream::start().await;
    dead.on_all(None, Action::Drop);
    let good = Upstream::start().await;
    let config = format!(
        "[upstream]\nservers = [\"{}\", \"{}\"]\ntimeout = \"300ms\"\nattempts = 2",
        dead.addr(),
        good.addr()
    );
    let d = Dns64d::start_with(good, &config).await;
    // However many failures it takes to mark a server down, three are plenty.
    for name in [zone::DUAL, zone::A_ONLY, zone::MANY] {
        d.udp(&q(name, RecordType::TXT)).await;
    }
    for name in [zone::TXT_ONLY, zone::AAAA_ONLY, zone::MX] {
        let started = Instant::now();
        let reply = d.udp(&q(name, RecordType::TXT)).await;
        assert_eq!(reply.rcode(), ResponseCode::NoError);
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "waited {:?} for a server already marked down",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn a_large_answer_is_cut_to_the_clients_edns_payload_size() {
    let d = Dns64d::start("").await;
    let reply = d.udp(&q(zone::MANY, RecordType::AAAA).edns(700)).await;
    assert_cut_to(&reply, 700);
}

#[tokio::test]
async fn udp_replies_never_exceed_server_udp_payload() {
    // server.udp_payload is both what we advertise and our UDP reply limit.
    let d = Dns64d::start(
        r#"[server]
        udp_payload = 600"#,
    )
    .await;
    let reply = d.udp(&q(zone::MANY, RecordType::AAAA).edns(4096)).await;
    assert_cut_to(&reply, 600);
}

// ---- TCP upstream reuse (RFC 7766 §6.2.1) ----

/// The distinct TCP connections (source ports) the upstream saw queries on.
fn tcp_connections(d: &Dns64d) -> std::collections::HashSet<std::net::SocketAddr> {
    d.upstream
        .seen()
        .iter()
        .filter(|s| s.transport == Transport::Tcp)
        .map(|s| s.source)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_fallback_queries_share_one_upstream_tcp_connection() {
    let d = Dns64d::start("[cache]\nenabled = false").await;
    d.upstream
        .on(zone::DUAL, Some(RecordType::TXT), Action::Truncated);
    // One after another, then twenty at once (pipelined on the connection).
    for _ in 0..5 {
        let reply = d.udp(&q(zone::DUAL, RecordType::TXT)).await;
        assert!(!reply.tc());
        assert_eq!(reply.answers_of(RecordType::TXT).len(), 1);
    }
    let mut at_once = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (addr, packet) = (d.addr, q(zone::DUAL, RecordType::TXT).bytes());
        at_once.spawn(async move { crate::support::client::udp(addr, &packet).await });
    }
    while let Some(reply) = at_once.join_next().await {
        assert_eq!(reply.unwrap().answers_of(RecordType::TXT).len(), 1);
    }
    let tcp_queries = d
        .upstream
        .asked(zone::DUAL, RecordType::TXT)
        .iter()
        .filter(|s| s.transport == Transport::Tcp)
        .count();
    assert_eq!(tcp_queries, 25);
    assert_eq!(
        tcp_connections(&d).len(),
        1,
        "one connection for every TCP query"
    );
}
