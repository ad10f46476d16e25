//! The relay: plain forwarding over UDP runs in the receive loop instead of
//! a task (src/upstream/relay.rs). Every query here comes from a client
//! that is not a DNS64 client (or one under `filter.a = "pass"`), so it
//! takes that path; the first attempt's failures (timeout, SERVFAIL,
//! truncation, a dead server) must end exactly as on the task path.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dns64d::metrics::names;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::support::client::{self, udp_all};
use crate::support::{Action, Dns64d, Q, Upstream, config_toml, parse_config, q, zone};

/// 127.0.0.1 is not a DNS64 client: every query is plain forwarding.
const PLAIN: &str = r#"[dns64]
clients = ["::1/128"]
[upstream]
timeout = "200ms"
attempts = 2"#;

/// [`PLAIN`] with another upstream timeout and attempt count, and `more`
/// TOML after it.
fn plain(timeout: &str, attempts: u32, more: &str) -> String {
    format!(
        "[dns64]\nclients = [\"::1/128\"]\n[upstream]\ntimeout = \"{timeout}\"\nattempts = {attempts}\n{more}"
    )
}
const TIMEOUT_MS: u64 = 200;
/// Slack on top of a time bound for scheduling on a loaded machine.
const SLACK: Duration = Duration::from_millis(400);

#[tokio::test]
async fn a_relayed_answer_carries_the_client_id_and_question_case_and_our_payload() {
    let d = Dns64d::start(PLAIN).await;
    let query = q("DuAl.ExAmPlE.", RecordType::A).id(0x4242).edns(1400);
    let reply = d.udp(&query).await;
    assert_eq!(reply.id(), 0x4242);
    assert_eq!(
        reply.question_bytes(),
        client::question_bytes(&query.bytes())
    );
    assert_eq!(reply.a(), vec![zone::DUAL_A], "plain clients get A records");
    let payload = reply.msg.edns.as_ref().map(|e| e.max_payload());
    assert_eq!(payload, Some(1232), "our payload, not the upstream's");
    // The upstream saw the client's question, under an ID of our own.
    let seen = d.upstream.asked(zone::DUAL, RecordType::A);
    assert_eq!(seen.len(), 1);
    assert_ne!(seen[0].id(), 0x4242);
}

#[tokio::test]
async fn a_relayed_answer_is_cached_and_served_from_the_cache() {
    let d = Dns64d::start(PLAIN).await;
    let first = d.udp(&q(zone::DUAL, RecordType::TXT).id(1)).await;
    let second = d.udp(&q(zone::DUAL, RecordType::TXT).id(2)).await;
    assert_eq!(second.id(), 2);
    assert_eq!(
        first.answers_of(RecordType::TXT),
        second.answers_of(RecordType::TXT)
    );
    assert_eq!(d.upstream.asked(zone::DUAL, RecordType::TXT).len(), 1);
}

#[tokio::test]
async fn a_dns64_client_under_filter_pass_has_a_queries_relayed_untouched() {
    let d = Dns64d::start("[filter]\na = \"pass\"").await;
    let reply = d.udp(&q(zone::DUAL, RecordType::A)).await;
    assert_eq!(reply.a(), vec![zone::DUAL_A]);
}

#[tokio::test]
async fn a_relayed_query_whose_first_attempt_is_dropped_is_answered_by_the_retry() {
    let d = Dns64d::start(PLAIN).await;
    d.upstream.on_next(zone::DUAL, None, Action::Drop, 1);
    let started = Instant::now();
    let reply = d.udp(&q(zone::DUAL, RecordType::TXT)).await;
    assert!(
        started.elapsed() < Duration::from_millis(TIMEOUT_MS * 2) + SLACK,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(reply.answers_of(RecordType::TXT).len(), 1);
    assert_eq!(d.upstream.asked(zone::DUAL, RecordType::TXT).len(), 2);
    d.settles(names::INFLIGHT, 0).await;
}

#[tokio::test]
async fn a_relayed_query_to_a_dead_first_upstream_is_answered_by_the_second() {
    let dead = Upstream::start().await;
    dead.on_all(None, Action::Drop);
    let good = Upstream::start().await;
    let config = format!(
        "{PLAIN}\nservers = [\"{}\", \"{}\"]\n[cache]\nenabled = false",
        dead.addr(),
        good.addr()
    );
    let d = Dns64d::start_with(good, &config).await;
    for _ in 0..4 {
        let reply = d.udp(&q(zone::DUAL, RecordType::A)).await;
        assert_eq!(reply.a(), vec![zone::DUAL_A]);
    }
    // After three failures the dead one is tried last: later queries go
    // straight to the good one.
    assert!(
        dead.seen().len() <= 3,
        "dead asked {} times",
        dead.seen().len()
    );
    d.settles(names::INFLIGHT, 0).await;
}

#[tokio::test]
async fn a_relayed_servfail_moves_on_to_the_next_upstream() {
    let bad = Upstream::start().await;
    bad.on_all(None, Action::Rcode(ResponseCode::ServFail));
    let good = Upstream::start().await;
    let config = format!(
        "{PLAIN}\nservers = [\"{}\", \"{}\"]",
        bad.addr(),
        good.addr()
    );
    let d = Dns64d::start_with(good, &config).await;
    let reply = d.udp(&q(zone::DUAL, RecordType::A)).await;
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    assert_eq!(reply.a(), vec![zone::DUAL_A]);
    assert_eq!(bad.seen().len(), 1);
}

#[tokio::test]
async fn a_relayed_servfail_with_no_attempt_left_reaches_the_client() {
    let d = Dns64d::start(&plain("200ms", 1, "")).await;
    d.upstream
        .on_all(None, Action::Rcode(ResponseCode::ServFail));
    let reply = d.udp(&q(zone::DUAL, RecordType::A).id(7)).await;
    assert_eq!(reply.rcode(), ResponseCode::ServFail);
    assert_eq!(reply.id(), 7);
    assert_eq!(d.upstream.seen().len(), 1, "asked once");
}

#[tokio::test]
async fn with_every_upstream_silent_a_relayed_query_gets_servfail_with_ede_22_in_the_bound() {
    let d = Dns64d::start(PLAIN).await;
    d.upstream.on_all(None, Action::Drop);
    let started = Instant::now();
    let reply = d.udp(&q(zone::DUAL, RecordType::A).edns(1232)).await;
    let took = started.elapsed();
    assert_eq!(reply.rcode(), ResponseCode::ServFail);
    assert_eq!(reply.ede_codes(), vec![22]);
    assert!(
        took >= Duration::from_millis(TIMEOUT_MS * 2 - 20),
        "gave up after {took:?}, before two attempts"
    );
    assert!(
        took < Duration::from_millis(TIMEOUT_MS * 2) + SLACK,
        "took {took:?}"
    );
    d.settles(names::INFLIGHT, 0).await;
}

#[tokio::test]
async fn a_truncated_relayed_reply_is_retried_over_tcp() {
    let d = Dns64d::start(PLAIN).await;
    d.upstream
        .on(zone::DUAL, Some(RecordType::TXT), Action::Truncated);
    let reply = d.udp(&q(zone::DUAL, RecordType::TXT)).await;
    assert!(!reply.tc());
    assert_eq!(reply.answers_of(RecordType::TXT).len(), 1);
    let transports: Vec<_> = d
        .upstream
        .asked(zone::DUAL, RecordType::TXT)
        .iter()
        .map(|s| s.transport)
        .collect();
    assert_eq!(
        transports,
        vec![
            crate::support::Transport::Udp,
            crate::support::Transport::Tcp
        ]
    );
}

#[tokio::test]
async fn forged_replies_to_a_relayed_query_are_ignored() {
    let d = Dns64d::start(&format!("{PLAIN}\n[cache]\nenabled = false")).await;
    for action in [
        Action::WrongId { then_answer: true },
        Action::WrongQuestion { then_answer: true },
        Action::Spoof { then_answer: true },
        Action::Chopped { then_answer: true },
        Action::Garbage { then_answer: true },
    ] {
        d.upstream
            .on_next(zone::DUAL, Some(RecordType::A), action, 1);
        let reply = d.udp(&q(zone::DUAL, RecordType::A)).await;
        assert_eq!(reply.a(), vec![zone::DUAL_A], "{action:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_replies_delayed_out_of_order_each_reach_their_own_client() {
    let d = Dns64d::start(&plain("2s", 1, "[cache]\nenabled = false")).await;
    // The first name answers last.
    d.upstream.on(
        zone::DUAL,
        Some(RecordType::A),
        Action::Delay(Duration::from_millis(300)),
    );
    let names = [zone::DUAL, zone::A_ONLY, zone::NO_SOA];
    let queries: Vec<Q> = (0..60)
        .map(|i| q(names[i % 3], RecordType::A).id(i as u16))
        .collect();
    for (i, reply) in udp_all(d.addr, &queries).await.into_iter().enumerate() {
        let reply = reply.unwrap_or_else(|| panic!("query {i} unanswered"));
        assert_eq!(reply.id(), i as u16);
        let want = match names[i % 3] {
            zone::DUAL => vec![zone::DUAL_A],
            zone::A_ONLY => zone::A_ONLY_ADDRS.iter().map(|(a, _)| *a).collect(),
            _ => vec![zone::NO_SOA_A],
        };
        assert_eq!(reply.a(), want, "query {i}");
    }
    d.settles(names::INFLIGHT, 0).await;
}

/// Sends 100 slow queries, reloads, and repeats `reloads` times (100 ms
/// apart), then 100 more; every query must be answered. Returns how many
/// questions the upstream got.
async fn queries_around_reloads(reloads: usize) -> usize {
    let overrides = plain("3s", 1, "[cache]\nenabled = false");
    let d = Dns64d::start(&overrides).await;
    d.upstream.on(
        zone::DUAL,
        Some(RecordType::A),
        Action::Delay(Duration::from_millis(300)),
    );
    let queries: Vec<Q> = (0..100).map(|_| q(zone::DUAL, RecordType::A)).collect();
    let mut waves = Vec::new();
    for n in 0..reloads {
        let (addr, queries) = (d.addr, queries.clone());
        waves.push(tokio::spawn(async move { udp_all(addr, &queries).await }));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let new = config_toml(
            d.upstream.addr(),
            &format!("{overrides}\n[filter]\nnegative_ttl = {}", 5 + n),
        );
        d.handle.apply(parse_config(&new)).expect("reload");
    }
    let last = udp_all(d.addr, &queries).await;
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    let mut replies = last;
    for wave in waves {
        replies.extend(wave.await.expect("clients"));
    }
    for reply in replies {
        let key = match reply {
            Some(r) if r.a() == vec![zone::DUAL_A] => "answered".to_string(),
            Some(r) => format!("{:?}", r.rcode()),
            None => "unanswered".to_string(),
        };
        *outcomes.entry(key).or_default() += 1;
    }
    assert_eq!(
        outcomes.get("answered"),
        Some(&(100 * (reloads + 1))),
        "{outcomes:?}"
    );
    d.settles(names::INFLIGHT, 0).await;
    d.upstream.asked(zone::DUAL, RecordType::A).len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_queries_in_flight_during_a_reload_finish_without_being_asked_again() {
    // The old relay is retired, not emptied: no question is sent twice.
    assert_eq!(queries_around_reloads(1).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_queries_in_flight_during_two_quick_reloads_are_all_answered() {
    // The second reload, 100 ms after the first, finds the first wave still
    // waiting in the retired relay: those 100 go to tasks and are asked again.
    assert_eq!(queries_around_reloads(2).await, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_answers_the_relayed_queries_in_flight() {
    let d = Dns64d::start(&plain("2s", 1, "")).await;
    d.upstream.on(
        zone::DUAL,
        Some(RecordType::A),
        Action::Delay(Duration::from_millis(300)),
    );
    let queries: Vec<Q> = (0..20)
        .map(|i| q(zone::DUAL, RecordType::A).id(i))
        .collect();
    let clients = {
        let (addr, queries) = (d.addr, queries.clone());
        tokio::spawn(async move { udp_all(addr, &queries).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    d.stop();
    for (i, reply) in clients.await.expect("clients").into_iter().enumerate() {
        let reply = reply.unwrap_or_else(|| panic!("query {i} lost in the shutdown"));
        assert_eq!(reply.a(), vec![zone::DUAL_A]);
    }
}

// ---- DNS64 clients: AAAA synthesis and A stripping on the relay ----

/// DNS64 clients (127.0.0.0/8 in the base config), no cache.
const DNS64: &str = r#"[upstream]
timeout = "200ms"
attempts = 2
[cache]
enabled = false"#;

fn a_only_synthesized() -> Vec<std::net::Ipv6Addr> {
    zone::A_ONLY_ADDRS
        .iter()
        .map(|(a, _)| crate::support::wkp(*a))
        .collect()
}

#[tokio::test]
async fn a_synthesis_whose_a_query_is_dropped_once_is_answered_by_the_retry() {
    let d = Dns64d::start(DNS64).await;
    d.upstream
        .on_next(zone::A_ONLY, Some(RecordType::A), Action::Drop, 1);
    let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), a_only_synthesized());
    assert_eq!(d.upstream.asked(zone::A_ONLY, RecordType::AAAA).len(), 1);
    assert_eq!(d.upstream.asked(zone::A_ONLY, RecordType::A).len(), 2);
    d.settles(names::INFLIGHT, 0).await;
}

#[tokio::test]
async fn a_synthesis_whose_a_query_times_out_everywhere_returns_the_nodata() {
    let d = Dns64d::start(DNS64).await;
    d.upstream
        .on(zone::A_ONLY, Some(RecordType::A), Action::Drop);
    let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    // RFC 6147 §5.1.6 item 5: the A query failed, the AAAA NODATA stands.
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    assert!(reply.aaaa().is_empty());
    assert_eq!(d.upstream.asked(zone::A_ONLY, RecordType::A).len(), 2);
}

/// The relay (UDP) and the general path (TCP) follow one NODATA SOA rule
/// (`dns64::rules::nodata_soa`): an AAAA NODATA without an SOA that nothing
/// is synthesized for gets the SOA dns64d makes, on both paths.
#[tokio::test]
async fn an_aaaa_nodata_without_soa_gets_our_soa_over_the_relay_as_over_tcp() {
    let d = Dns64d::start(DNS64).await;
    d.upstream.on(
        zone::NO_SOA,
        Some(RecordType::A),
        Action::Rcode(ResponseCode::ServFail),
    );
    let udp = d.udp(&q(zone::NO_SOA, RecordType::AAAA)).await;
    let tcp = d.tcp(&q(zone::NO_SOA, RecordType::AAAA)).await;
    assert_eq!(udp.rcode(), ResponseCode::NoError);
    assert!(udp.aaaa().is_empty());
    assert_eq!(udp.soa(), Some((30, 30)), "filter.negative_ttl's SOA");
    assert_eq!(udp.soa(), tcp.soa());
    assert_eq!(udp.msg.authorities, tcp.msg.authorities);
    // The relay's AAAA reply went along to the general path: asked once.
    assert_eq!(d.upstream.asked(zone::NO_SOA, RecordType::AAAA).len(), 2);
}

#[tokio::test]
async fn an_aaaa_reply_the_wire_path_cannot_finish_is_not_asked_again() {
    let d = Dns64d::start(DNS64).await;
    // A CNAME chain goes to the general path with the reply the relay got.
    let reply = d.udp(&q(zone::CHAIN, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), a_only_synthesized());
    assert_eq!(d.upstream.asked(zone::CHAIN, RecordType::AAAA).len(), 1);
    assert_eq!(d.counter(names::SYNTHESIZED), 1);
}

#[tokio::test]
async fn a_relayed_a_answer_is_stripped_to_nodata_and_counted() {
    let d = Dns64d::start(DNS64).await;
    let reply = d.udp(&q(zone::A_ONLY, RecordType::A)).await;
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    assert!(reply.a().is_empty());
    assert!(reply.soa().is_some(), "NODATA carries an SOA");
    assert_eq!(
        d.counter(names::A_STRIPPED),
        zone::A_ONLY_ADDRS.len() as u64
    );
    assert_eq!(d.counter(names::SYNTHESIZED), 0);
}

#[tokio::test]
async fn a_relayed_miss_is_counted_once() {
    let d = Dns64d::start("[upstream]\ntimeout = \"200ms\"").await;
    d.upstream
        .on_next(zone::A_ONLY, Some(RecordType::A), Action::Drop, 1);
    // A synthesis (two exchanges, the second retried on the general path),
    // then a plain miss, then a hit.
    d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(d.counter(names::CACHE_MISSES), 2);
    assert_eq!(d.counter(names::CACHE_HITS), 1);
}
