//! Reliability: an upstream that drops, delays, reorders, repeats, cuts or
//! oversizes its replies, forgeries in flood, dead upstreams and their
//! recovery; clients that hold TCP connections, write or read slowly, or
//! pipeline; amplification and the per-client rate limit. After every fault
//! the in-flight gauge comes back to zero: no task is left stuck.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use dns64d::metrics::names;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::client::{self, RECEIVE_TIMEOUT, TcpClient, udp_all};
use crate::support::upstream::free_port;
use crate::support::{Action, Dns64d, Q, Reply, Upstream, q, wkp, zone};

/// Short timeouts so failure paths finish quickly; one retry.
const TIMEOUT_MS: u64 = 200;
const ATTEMPTS: u64 = 2;
const QUICK: &str = r#"[upstream]
    timeout = "200ms"
    attempts = 2"#;
/// Slack on top of `timeout × attempts` for scheduling on a loaded machine.
const SLACK: Duration = Duration::from_millis(400);

fn a_only_synthesized() -> Vec<Ipv6Addr> {
    zone::A_ONLY_ADDRS.iter().map(|(a, _)| wkp(*a)).collect()
}

/// The answers a healthy upstream gives, one query per path through dns64d.
async fn assert_answers_right(d: &Dns64d) {
    assert_eq!(
        d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await.aaaa(),
        a_only_synthesized(),
        "synthesized"
    );
    assert_eq!(
        d.udp(&q(zone::DUAL, RecordType::AAAA)).await.aaaa(),
        vec![zone::DUAL_AAAA],
        "native"
    );
    let txt = d.udp(&q(zone::DUAL, RecordType::TXT)).await;
    assert_eq!(txt.answers_of(RecordType::TXT).len(), 1, "forwarded");
    assert_eq!(
        d.udp(&q(zone::MISSING, RecordType::AAAA)).await.rcode(),
        ResponseCode::NXDomain
    );
}

// ---- an unreliable upstream ----

#[tokio::test]
async fn a_dropped_first_attempt_is_retried_and_answered_within_timeout_times_attempts() {
    let d = Dns64d::start(QUICK).await;
    d.upstream.on_next(zone::DUAL, None, Action::Drop, 1);
    let started = Instant::now();
    let reply = d.udp(&q(zone::DUAL, RecordType::TXT)).await;
    assert!(
        started.elapsed() < Duration::from_millis(TIMEOUT_MS * ATTEMPTS) + SLACK,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(reply.answers_of(RecordType::TXT).len(), 1);
    assert_eq!(d.upstream.asked(zone::DUAL, RecordType::TXT).len(), 2);
}

#[tokio::test]
async fn an_upstream_that_drops_every_other_query_still_answers_every_client() {
    let d = Dns64d::start(&format!("{QUICK}\n[cache]\nenabled = false")).await;
    // Sequential queries: every upstream question loses its first attempt.
    d.upstream.on_all(None, Action::DropOneIn(2));
    assert_answers_right(&d).await;
    assert_eq!(
        d.upstream.asked(zone::A_ONLY, RecordType::A).len(),
        2,
        "one drop, one retry"
    );
    d.settles(names::INFLIGHT, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_delayed_out_of_order_each_reach_their_own_query() {
    let d = Dns64d::start(
        r#"[upstream]
        timeout = "2s"
        attempts = 1
        [cache]
        enabled = false"#,
    )
    .await;
    // The first sent is answered last.
    let cases: [(&str, RecordType, u64); 5] = [
        (zone::A_ONLY, RecordType::AAAA, 400),
        (zone::DUAL, RecordType::AAAA, 300),
        (zone::AAAA_ONLY, RecordType::AAAA, 200),
        (zone::MISSING, RecordType::AAAA, 100),
        (zone::TXT_ONLY, RecordType::TXT, 0),
    ];
    for (name, _, ms) in cases {
        d.upstream
            .on(name, None, Action::Delay(Duration::from_millis(ms)));
    }
    let queries: Vec<Q> = (0..6)
        .flat_map(|_| cases.iter().map(|(n, t, _)| q(n, *t)))
        .collect();
    let replies = udp_all(d.addr, &queries).await;
    for (query, reply) in queries.iter().zip(replies) {
        let reply = reply.expect("answered");
        assert_eq!(reply.id(), query.message_id());
        let name = reply.msg.queries[0].name.to_ascii();
        let expected_rcode = if name == zone::MISSING {
            ResponseCode::NXDomain
        } else {
            ResponseCode::NoError
        };
        assert_eq!(reply.rcode(), expected_rcode, "{name}");
        match name.as_str() {
            zone::A_ONLY => assert_eq!(
                crate::support::sorted(reply.aaaa()),
                crate::support::sorted(a_only_synthesized())
            ),
            zone::DUAL => assert_eq!(reply.aaaa(), vec![zone::DUAL_AAAA]),
            zone::AAAA_ONLY => assert_eq!(reply.aaaa(), vec![zone::AAAA_ONLY_AAAA]),
            zone::TXT_ONLY => assert_eq!(reply.answers_of(RecordType::TXT).len(), 1),
            _ => assert!(reply.msg.answers.is_empty()),
        }
    }
    d.settles(names::INFLIGHT, 0).await;
}

#[tokio::test]
async fn an_upstream_that_answers_twice_is_harmless() {
    let d = Dns64d::start("[cache]\nenabled = false").await;
    d.upstream.on_all(None, Action::Twice);
    for _ in 0..3 {
        assert_answers_right(&d).await;
    }
    d.settles(names::INFLIGHT, 0).await;
}

#[tokio::test]
async fn a_chopped_upstream_reply_is_ignored_and_the_real_one_used() {
    let d = Dns64d::start(
        r#"[upstream]
        timeout = "1s"
        attempts = 1"#,
    )
    .await;
    d.upstream
        .on_all(None, Action::Chopped { then_answer: true });
    assert_answers_right(&d).await;
}

#[tokio::test]
async fn an_upstream_that_only_sends_chopped_replies_gives_a_clean_servfail() {
    // A plain client: a reply dns64d passes on untouched must still be whole.
    let d = Dns64d::start(&format!("{QUICK}\n[dns64]\nclients = [\"10.0.0.0/8\"]")).await;
    d.upstream
        .on_all(None, Action::Chopped { then_answer: false });
    for query in [
        q(zone::DUAL, RecordType::TXT).edns(1232),
        q(zone::A_ONLY, RecordType::A).edns(1232),
    ] {
        let started = Instant::now();
        let raw = client::udp_maybe(d.addr, &query.bytes(), RECEIVE_TIMEOUT)
            .await
            .expect("an answer");
        assert!(
            started.elapsed() < Duration::from_millis(TIMEOUT_MS * ATTEMPTS) + SLACK,
            "took {:?}",
            started.elapsed()
        );
        let reply = hickory_proto::op::Message::from_vec(&raw)
            .unwrap_or_else(|e| panic!("a cut upstream reply was passed on ({e}): {raw:02x?}"));
        assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
        assert!(
            !Reply::parse(raw).ede_codes().is_empty(),
            "SERVFAIL carries an extended error"
        );
    }
}

#[tokio::test]
async fn an_upstream_tcp_connection_closed_mid_message_is_retried() {
    let d = Dns64d::start(QUICK).await;
    // First attempt: UDP says TC, the TCP retry is cut; second attempt answers.
    d.upstream.on_next(zone::BIG_TXT, None, Action::Cut, 2);
    let reply = d.tcp(&q(zone::BIG_TXT, RecordType::TXT)).await;
    assert_eq!(reply.answers_of(RecordType::TXT).len(), zone::BIG_TXT_COUNT);
    d.settles(names::INFLIGHT, 0).await;
}

#[tokio::test]
async fn an_upstream_that_always_closes_tcp_mid_message_gives_servfail_with_ede_22() {
    let d = Dns64d::start(QUICK).await;
    d.upstream.on(zone::BIG_TXT, None, Action::Cut);
    let started = Instant::now();
    let reply = d.tcp(&q(zone::BIG_TXT, RecordType::TXT).edns(1232)).await;
    assert!(
        started.elapsed() < Duration::from_millis(2 * TIMEOUT_MS * ATTEMPTS) + SLACK,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(reply.rcode(), ResponseCode::ServFail);
    assert!(reply.ede_codes().contains(&22), "{:?}", reply.msg.edns);
    d.settles(names::INFLIGHT, 0).await;
}

#[tokio::test]
async fn an_upstream_reply_larger_than_advertised_is_cut_to_the_clients_limit() {
    let d = Dns64d::start("").await;
    d.upstream.on_all(None, Action::Oversize);
    for (query, limit) in [
        (q(zone::BIG_TXT, RecordType::TXT), 512),
        (q(zone::MANY, RecordType::AAAA), 512),
        (q(zone::MANY, RecordType::AAAA).edns(700), 700),
    ] {
        let reply = d.udp(&query).await;
        assert!(
            reply.raw.len() <= limit,
            "{} > {limit} bytes",
            reply.raw.len()
        );
        assert!(reply.tc(), "TC=1 for {query:?}");
    }
    // The oversized reply was whole: TCP gets every record.
    let full = d.tcp(&q(zone::BIG_TXT, RecordType::TXT)).await;
    assert_eq!(full.answers_of(RecordType::TXT).len(), zone::BIG_TXT_COUNT);
}

#[tokio::test]
async fn the_inflight_gauge_returns_to_zero_after_upstream_faults() {
    let d = Dns64d::start(&format!("{QUICK}\n[cache]\nenabled = false")).await;
    d.upstream.on(zone::DUAL, None, Action::Drop);
    d.upstream
        .on(zone::A_ONLY, None, Action::Garbage { then_answer: false });
    d.upstream
        .on(zone::TXT_ONLY, None, Action::Chopped { then_answer: false });
    d.upstream.on(zone::BIG_TXT, None, Action::Cut);
    d.upstream
        .on(zone::MX, None, Action::Delay(Duration::from_millis(150)));
    let queries: Vec<Q> = [
        zone::DUAL,
        zone::A_ONLY,
        zone::TXT_ONLY,
        zone::BIG_TXT,
        zone::MX,
    ]
    .iter()
    .flat_map(|n| {
        [
            q(n, RecordType::AAAA),
            q(n, RecordType::TXT),
            q(n, RecordType::A),
        ]
    })
    .collect();
    let replies = udp_all(d.addr, &queries).await;
    assert!(replies.iter().all(Option::is_some), "every query answered");
    let mut conn = TcpClient::connect(d.addr).await;
    conn.send(&q(zone::BIG_TXT, RecordType::TXT).bytes()).await;
    conn.recv().await;
    d.settles(names::INFLIGHT, 0).await;
}

// ---- forgeries ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_forged_replies_leaves_the_real_answer_with_the_client_and_in_the_cache() {
    // A second attempt in case the flood overflows a socket buffer and the real
    // answer is lost with it: then the retry must still be believed, not a forgery.
    let d = Dns64d::start(
        r#"[upstream]
        timeout = "1s"
        attempts = 2"#,
    )
    .await;
    d.upstream.on_all(None, Action::Flood { forgeries: 200 });
    let mut asked_after_first_round = 0;
    for round in 0..2 {
        let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
        assert_eq!(
            crate::support::sorted(reply.aaaa()),
            crate::support::sorted(a_only_synthesized()),
            "round {round}"
        );
        let reply = d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
        assert_eq!(reply.aaaa(), vec![zone::DUAL_AAAA], "round {round}");
        if round == 0 {
            asked_after_first_round = d.upstream.total_received();
        }
    }
    // The second round came from the cache: it holds the real answers.
    assert_eq!(d.upstream.total_received(), asked_after_first_round);
    let server = d.upstream.addr();
    assert!(
        d.counter(&format!(
            "{}{{zone=\".\",server=\"{server}\"}}",
            names::UPSTREAM_MISMATCHED
        )) > 0,
        "wrong-ID replies from the upstream address are counted"
    );
}

// ---- dead upstreams ----

/// Two upstreams: the first answers nothing, the second is `good`.
fn dead_then_good(dead: &Upstream, good: &Upstream) -> String {
    crate::support::merge_toml(
        QUICK,
        &format!(
            "[upstream]\nservers = [\"{}\", \"{}\"]",
            dead.addr(),
            good.addr()
        ),
    )
}

#[tokio::test]
async fn one_dead_upstream_of_two_causes_no_client_visible_failure() {
    let dead = Upstream::start().await;
    dead.on_all(None, Action::Drop);
    let good = Upstream::start().await;
    let config = dead_then_good(&dead, &good);
    let d = Dns64d::start_with(good, &format!("{config}\n[cache]\nenabled = false")).await;
    for _ in 0..3 {
        assert_answers_right(&d).await;
    }
    d.settles(names::INFLIGHT, 0).await;
}

#[tokio::test]
async fn an_upstream_with_nothing_listening_is_failed_over_without_client_visible_failure() {
    let closed = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port().await));
    let good = Upstream::start().await;
    let config = crate::support::merge_toml(
        QUICK,
        &format!(
            "[upstream]\nservers = [\"{closed}\", \"{}\"]\n[cache]\nenabled = false",
            good.addr()
        ),
    );
    let d = Dns64d::start_with(good, &config).await;
    for _ in 0..3 {
        assert_answers_right(&d).await;
    }
}

#[tokio::test]
async fn with_both_upstreams_dead_a_query_gets_servfail_with_ede_22_within_the_bound() {
    let first = Upstream::start().await;
    first.on_all(None, Action::Drop);
    let second = Upstream::start().await;
    second.on_all(None, Action::Drop);
    let config = dead_then_good(&first, &second);
    let d = Dns64d::start_with(second, &config).await;
    let started = Instant::now();
    let reply = d.udp(&q(zone::DUAL, RecordType::TXT).edns(1232)).await;
    assert!(
        started.elapsed() < Duration::from_millis(TIMEOUT_MS * ATTEMPTS) + SLACK,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(reply.rcode(), ResponseCode::ServFail);
    assert!(reply.ede_codes().contains(&22), "{:?}", reply.msg.edns);
    assert_eq!(first.asked(zone::DUAL, RecordType::TXT).len(), 1);
    assert_eq!(d.upstream.asked(zone::DUAL, RecordType::TXT).len(), 1);
    d.settles(names::INFLIGHT, 0).await;
}

#[tokio::test]
async fn when_the_upstreams_come_back_queries_recover_without_a_restart() {
    let first = Upstream::start().await;
    first.on_all(None, Action::Drop);
    let second = Upstream::start().await;
    second.on_all(None, Action::Drop);
    let config = dead_then_good(&first, &second);
    let d = Dns64d::start_with(second, &format!("{config}\n[cache]\nservfail_ttl = 1")).await;
    // Enough failures to mark both servers down.
    for name in [zone::DUAL, zone::A_ONLY, zone::TXT_ONLY, zone::MX] {
        let reply = d.udp(&q(name, RecordType::TXT)).await;
        assert_eq!(reply.rcode(), ResponseCode::ServFail);
    }
    first.on_all(None, Action::Answer);
    d.upstream.on_all(None, Action::Answer);
    // A cached SERVFAIL may stand for servfail_ttl; then the answer is back.
    let started = Instant::now();
    loop {
        let reply = d.udp(&q(zone::DUAL, RecordType::TXT)).await;
        if reply.rcode() == ResponseCode::NoError {
            assert_eq!(reply.answers_of(RecordType::TXT).len(), 1);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "still {} 3 s after the upstreams came back",
            reply.rcode()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_answers_right(&d).await;
}

// ---- clients ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_idle_tcp_connections_are_capped_and_closed_when_idle_while_udp_keeps_serving() {
    const CAP: u64 = 64;
    const CONNECTIONS: usize = 1500;
    let d = Dns64d::start(&format!(
        "[server]\nmax_tcp_connections = {CAP}\ntcp_idle_timeout = \"1s\""
    ))
    .await;
    let mut held = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS / 250 {
        let batch: Vec<_> = (0..250)
            .map(|_| tokio::spawn(TcpStream::connect(d.addr)))
            .collect();
        for conn in batch {
            // A connection the kernel did not complete in time is as good as closed.
            if let Ok(stream) = conn.await.expect("connect task") {
                held.push(stream);
            }
        }
        assert!(
            d.counter(names::TCP_CONNECTIONS) <= CAP,
            "{} connections served with max_tcp_connections = {CAP}",
            d.counter(names::TCP_CONNECTIONS)
        );
    }
    let reply = d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), vec![zone::DUAL_AAAA], "UDP serves meanwhile");
    // Connections past the cap are accepted and closed: most of them were.
    let turned_away = "dns64d_dropped_total{reason=\"tcp_connection_limit\"}";
    let started = Instant::now();
    while d.counter(turned_away) < (CONNECTIONS as u64) / 2 {
        assert!(
            started.elapsed() < crate::support::SETTLE,
            "{} connections turned away of {CONNECTIONS}",
            d.counter(turned_away)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Idle connections are closed after tcp_idle_timeout; slots come back.
    d.settles(names::TCP_CONNECTIONS, 0).await;
    drop(held);
    let reply = d.tcp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), vec![zone::DUAL_AAAA], "TCP serves again");
}

#[tokio::test]
async fn a_query_sent_one_byte_at_a_time_over_tcp_is_answered() {
    let d = Dns64d::start("").await;
    let query = q(zone::A_ONLY, RecordType::AAAA);
    let mut frame = (query.bytes().len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(&query.bytes());
    let mut stream = TcpStream::connect(d.addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    for byte in frame {
        stream.write_all(&[byte]).await.expect("send");
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let mut len = [0u8; 2];
    let read = async {
        use tokio::io::AsyncReadExt;
        stream.read_exact(&mut len).await.expect("length");
        let mut raw = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut raw).await.expect("message");
        raw
    };
    let raw = tokio::time::timeout(RECEIVE_TIMEOUT, read)
        .await
        .expect("an answer");
    let reply = Reply::parse(raw);
    assert_eq!(reply.id(), query.message_id());
    assert_eq!(reply.aaaa(), a_only_synthesized());
}

#[tokio::test]
async fn a_tcp_client_that_stalls_mid_query_is_disconnected_after_the_idle_timeout() {
    let d = Dns64d::start("[server]\ntcp_idle_timeout = \"500ms\"").await;
    let query = q(zone::DUAL, RecordType::AAAA).bytes();
    let mut stream = TcpStream::connect(d.addr).await.expect("connect");
    stream
        .write_all(&(query.len() as u16).to_be_bytes())
        .await
        .expect("send length");
    stream.write_all(&query[..5]).await.expect("send a part");
    let stalled_since = Instant::now();
    let mut conn = TcpClient::from_stream(stream);
    assert!(
        conn.closed_within(Duration::from_secs(3)).await,
        "a half-sent query holds its connection open"
    );
    assert!(
        stalled_since.elapsed() >= Duration::from_millis(300),
        "closed before the idle timeout: {:?}",
        stalled_since.elapsed()
    );
    d.settles(names::TCP_CONNECTIONS, 0).await;
    assert_eq!(
        d.udp(&q(zone::DUAL, RecordType::AAAA)).await.aaaa(),
        vec![zone::DUAL_AAAA]
    );
}

/// A TCP client that pipelines `queries` queries for [`zone::BIG_TXT`] (answers
/// of over 5 kB each: far more than socket buffers hold) and never reads one.
/// The queries go out whole (a few dozen kB: the kernel buffers take them even
/// when dns64d stops reading), so the connection is never idle mid-query.
fn never_reading_client(addr: SocketAddr, queries: usize) -> tokio::task::JoinHandle<TcpStream> {
    tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let packet = q(zone::BIG_TXT, RecordType::TXT).bytes();
        let mut frames = Vec::new();
        for _ in 0..queries {
            frames.extend_from_slice(&(packet.len() as u16).to_be_bytes());
            frames.extend_from_slice(&packet);
        }
        tokio::time::timeout(RECEIVE_TIMEOUT, stream.write_all(&frames))
            .await
            .expect("the queries fit the socket buffers")
            .expect("send");
        stream
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_client_that_never_reads_does_not_hold_up_other_clients() {
    let d = Dns64d::start("").await;
    let slow = never_reading_client(d.addr, 2000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    assert_eq!(
        d.udp(&q(zone::DUAL, RecordType::AAAA)).await.aaaa(),
        vec![zone::DUAL_AAAA]
    );
    assert_eq!(
        d.tcp(&q(zone::A_ONLY, RecordType::AAAA)).await.aaaa(),
        a_only_synthesized()
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "other clients waited {:?}",
        started.elapsed()
    );
    drop(slow.await.expect("client task"));
    d.settles(names::INFLIGHT, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_client_that_never_reads_does_not_pin_in_flight_slots_past_the_idle_timeout() {
    // Answers waiting to be written to a client that does not read hold their
    // in-flight slots (a connection pipelines up to 32 queries): enough such
    // clients shed everyone's cache misses for as long as they stay connected.
    let d = Dns64d::start("[server]\ntcp_idle_timeout = \"500ms\"").await;
    // Cache hits from now on: the 2000 answers (10 MB) are ready at once, far
    // more than the socket buffers take.
    d.tcp(&q(zone::BIG_TXT, RecordType::TXT)).await;
    let slow = never_reading_client(d.addr, 2000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(d.counter(names::INFLIGHT) > 0, "the writes are stalled");
    // Three idle timeouts without the client reading a byte.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = d.counter(names::INFLIGHT);
    let connected = d.counter(names::TCP_CONNECTIONS);
    drop(slow.await.expect("client task"));
    assert_eq!(
        held, 0,
        "in-flight slots held by {connected} TCP connection(s) whose client has not read for 1.5 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_queries_are_answered_out_of_order_each_with_its_own_id() {
    let d = Dns64d::start(
        r#"[upstream]
        timeout = "2s"
        attempts = 1"#,
    )
    .await;
    let names = [
        zone::DUAL,
        zone::TXT_ONLY,
        zone::MX,
        zone::HINTED,
        zone::SIGNED,
    ];
    // The first sent is the slowest.
    for (i, name) in names.iter().enumerate() {
        let ms = 100 * (names.len() - i) as u64;
        d.upstream
            .on(name, None, Action::Delay(Duration::from_millis(ms)));
    }
    let mut conn = TcpClient::connect(d.addr).await;
    let queries: Vec<Q> = names.iter().map(|n| q(n, RecordType::TXT)).collect();
    for query in &queries {
        conn.send(&query.bytes()).await;
    }
    let mut order = Vec::new();
    let mut replies = HashMap::new();
    for _ in &queries {
        let reply = conn.recv().await;
        order.push(reply.id());
        replies.insert(reply.id(), reply);
    }
    for query in &queries {
        let reply = &replies[&query.message_id()];
        assert_eq!(
            reply.question_bytes(),
            client::question_bytes(&query.bytes()),
            "the reply with this ID answers this query"
        );
    }
    let sent: Vec<u16> = queries.iter().map(Q::message_id).collect();
    assert_ne!(order, sent, "answered as each completed, not in order");
}

#[tokio::test]
async fn a_client_outside_server_allow_is_refused_over_tcp_through_a_trusted_forwarder() {
    let d = Dns64d::start(
        r#"[server]
        allow = ["127.0.0.0/8", "2001:db8:aaaa::/48"]
        trusted_forwarders = ["127.0.0.0/8"]"#,
    )
    .await;
    let outsider = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xbbbb, 1, 0, 0, 0, 0));
    let mut conn = TcpClient::connect(d.addr).await;
    for qtype in [RecordType::AAAA, RecordType::A, RecordType::TXT] {
        conn.send(&q(zone::DUAL, qtype).ecs(outsider, 64).bytes())
            .await;
    }
    for _ in 0..3 {
        let reply = conn.recv().await;
        assert_eq!(reply.rcode(), ResponseCode::Refused);
        assert!(reply.msg.answers.is_empty());
    }
    assert_eq!(d.upstream.total_received(), 0, "not an open resolver");
}

// ---- amplification and rate limits ----

#[tokio::test]
async fn a_udp_answer_never_exceeds_the_payload_size_the_client_advertised() {
    let d = Dns64d::start("").await;
    let big = [
        (zone::MANY, RecordType::AAAA),
        (zone::MANY, RecordType::ANY),
        (zone::BIG_TXT, RecordType::TXT),
        (zone::BIG_TXT, RecordType::ANY),
        (zone::MX, RecordType::MX),
    ];
    for round in ["miss", "hit"] {
        for (name, qtype) in big {
            for payload in [
                None,
                Some(512),
                Some(600),
                Some(1000),
                Some(1232),
                Some(4096),
            ] {
                let query = match payload {
                    None => q(name, qtype),
                    Some(p) => q(name, qtype).edns(p),
                };
                // Never above 1232 (server.udp_payload), never above the client's.
                let limit = usize::from(payload.unwrap_or(512).clamp(512, 1232));
                let reply = d.udp(&query).await;
                assert!(
                    reply.raw.len() <= limit,
                    "{round}: {name} {qtype} with payload {payload:?}: {} bytes > {limit}",
                    reply.raw.len()
                );
            }
        }
    }
}

#[tokio::test]
async fn queries_over_the_rate_limit_are_dropped_and_counted_and_another_client_is_unaffected() {
    let d = Dns64d::start("[server]\nrate_limit = 1\nrate_limit_burst = 5").await;
    const SENT: usize = 20;
    let packets: Vec<Vec<u8>> = (0..SENT)
        .map(|_| q(zone::DUAL, RecordType::TXT).bytes())
        .collect();
    let noisy = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let replies = client::udp_burst(noisy, d.addr, &packets, Duration::from_millis(500)).await;
    // The burst, and at most a token or two refilled while sending (1 q/s).
    assert!(
        (5..=7).contains(&replies.len()),
        "{} of {SENT} answered with rate_limit = 1, burst 5",
        replies.len()
    );
    d.settles(
        "dns64d_dropped_total{reason=\"rate_limited\"}",
        (SENT - replies.len()) as u64,
    )
    .await;
    let quiet = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let other = client::udp_from(quiet, d.addr, &packets[0], RECEIVE_TIMEOUT)
        .await
        .expect("another client is answered");
    assert_eq!(Reply::parse(other).rcode(), ResponseCode::NoError);
}

#[tokio::test]
async fn behind_a_trusted_forwarder_the_rate_limit_applies_to_each_ecs_client() {
    let d = Dns64d::start(
        r#"[server]
        rate_limit = 1
        rate_limit_burst = 3
        allow = ["127.0.0.0/8", "2001:db8::/32"]
        trusted_forwarders = ["127.0.0.0/8"]"#,
    )
    .await;
    let pod = |n: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, n, 1, 0, 0, 0, 0));
    let forwarder = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let noisy: Vec<Vec<u8>> = (0..10)
        .map(|_| q(zone::DUAL, RecordType::TXT).ecs(pod(1), 64).bytes())
        .collect();
    let answered = client::udp_burst(forwarder, d.addr, &noisy, Duration::from_millis(500)).await;
    assert!(
        (3..=5).contains(&answered.len()),
        "{} of 10 answered for one pod with rate_limit = 1, burst 3",
        answered.len()
    );
    // Another pod behind the same forwarder has its own bucket.
    let quiet: Vec<Vec<u8>> = (0..3)
        .map(|_| q(zone::DUAL, RecordType::TXT).ecs(pod(2), 64).bytes())
        .collect();
    let answered = client::udp_burst(forwarder, d.addr, &quiet, Duration::from_millis(500)).await;
    assert_eq!(answered.len(), 3, "the other pod is not limited");
}
