//! Operations (SPEC §9, README "Operations"): the metrics scrape as Prometheus
//! parses it, with exact counts after known traffic; `/ready` following the
//! upstream; `POST /reload`; reloads through the library handle under load,
//! refused reloads, and listen addresses added and removed by a reload.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use dns64d::metrics::names;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use prometheus_parse::{Scrape, Value};

use crate::support::client::{self, TcpClient};
use crate::support::upstream::Reserved;
use crate::support::{
    Action, Dns64d, Q, Reply, Upstream, config_toml, http, parse_config, q, under96, wkp, zone,
};

const WITH_METRICS: &str = r#"[server]
metrics = "127.0.0.1:0""#;

/// The network-specific prefix reloads switch to.
const NSP: &str = "2001:db8:64::/96";

fn nsp(v4: Ipv4Addr) -> Ipv6Addr {
    under96([0x2001, 0xdb8, 0x64, 0, 0, 0], v4)
}

fn a_only_under(prefix: fn(Ipv4Addr) -> Ipv6Addr) -> Vec<Ipv6Addr> {
    zone::A_ONLY_ADDRS.iter().map(|(a, _)| prefix(*a)).collect()
}

fn endpoint(d: &Dns64d) -> SocketAddr {
    d.metrics.expect("server.metrics is set")
}

async fn scrape(d: &Dns64d) -> Scrape {
    let (status, body) = http::get(endpoint(d), "/metrics").await;
    assert_eq!(status, 200, "{body}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("scrape does not parse: {e}\n{body}"))
}

/// The value of the counter or gauge `name` whose labels include `labels`,
/// summed over the other labels.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            Value::Histogram(_) | Value::Summary(_) => panic!("{name} is not a single value"),
        })
        .sum()
}

/// Asks AAAA for the A-only name until the answer is under `prefix`.
async fn prefix_in_effect(d: &Dns64d, addr: SocketAddr, prefix: fn(Ipv4Addr) -> Ipv6Addr) {
    let reply = client::udp(addr, &q(zone::A_ONLY, RecordType::AAAA).bytes()).await;
    assert_eq!(
        crate::support::sorted(reply.aaaa()),
        crate::support::sorted(a_only_under(prefix)),
        "prefix after reload on {addr} (listening: {:?})",
        d.handle.local_addrs()
    );
}

/// Returns once the server answers (its `run` has started).
async fn serving(d: &Dns64d) {
    let reply = d.udp(&q(zone::DUAL, RecordType::TXT)).await;
    assert_eq!(reply.rcode(), ResponseCode::NoError);
}

// ---- the scrape ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_scrape_parses_and_counts_known_traffic_exactly() {
    let d = Dns64d::start(WITH_METRICS).await;
    let before = scrape(&d).await;
    for name in ["dns64d_requests_total", "dns64d_responses_total"] {
        assert!(before.docs.contains_key(name), "no HELP for {name}");
    }
    // One synthesized AAAA (miss), the same again (hit), a stripped A over
    // TCP (three A records removed), an NXDOMAIN.
    d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    d.tcp(&q(zone::A_ONLY, RecordType::A)).await;
    d.udp(&q(zone::MISSING, RecordType::TXT)).await;
    let after = scrape(&d).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let udp_aaaa = [("proto", "udp"), ("family", "ipv4"), ("qtype", "AAAA")];
    assert_eq!(delta(names::REQUESTS, &udp_aaaa), 2.0);
    assert_eq!(
        delta(names::REQUESTS, &[("proto", "tcp"), ("qtype", "A")]),
        1.0
    );
    assert_eq!(
        delta(names::REQUESTS, &[("proto", "udp"), ("qtype", "TXT")]),
        1.0
    );
    assert_eq!(delta(names::REQUESTS, &[]), 4.0);
    assert_eq!(delta(names::RESPONSES, &[("rcode", "NOERROR")]), 3.0);
    assert_eq!(delta(names::RESPONSES, &[("rcode", "NXDOMAIN")]), 1.0);
    assert_eq!(delta(names::RESPONSES, &[]), 4.0);
    // Per answer sent: the cache hit of the synthesized answer counts too.
    assert_eq!(delta(names::SYNTHESIZED, &[]), 2.0);
    assert_eq!(delta(names::A_STRIPPED, &[]), 3.0);
    assert_eq!(delta(names::CACHE_HITS, &[]), 1.0);
    assert_eq!(delta(names::CACHE_MISSES, &[]), 3.0);
    let server = d.upstream.addr().to_string();
    // AAAA and A for the synthesis, A for the stripped answer, TXT.
    assert_eq!(
        delta(
            names::UPSTREAM_REQUESTS,
            &[("server", &server), ("result", "ok")]
        ),
        4.0
    );
    assert_eq!(
        delta(names::UPSTREAM_REQUESTS, &[("result", "timeout")]),
        0.0
    );
    // The permit of the last query is released just after its answer is sent.
    d.settles(names::INFLIGHT, 0).await;
    let buckets = after
        .samples
        .iter()
        .find_map(|s| match &s.value {
            Value::Histogram(b) if s.metric == names::REQUEST_DURATION => Some(b),
            _ => None,
        })
        .expect("request duration histogram");
    let total = buckets
        .iter()
        .find(|b| b.less_than.is_infinite())
        .expect("+Inf bucket");
    assert_eq!(total.count, 4.0, "every answer observed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hits_count_in_the_synthesized_and_stripped_totals_like_the_resolution() {
    let d = Dns64d::start(WITH_METRICS).await;
    let before = scrape(&d).await;
    // Each question twice, over UDP (the hot path's hit) and TCP: the second
    // answer of each comes from the cache.
    for _ in 0..2 {
        d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
        d.udp(&q(zone::A_ONLY, RecordType::A)).await;
    }
    for _ in 0..2 {
        let r = d.tcp(&q(zone::A_ONLY, RecordType::AAAA)).await;
        assert_eq!(
            crate::support::sorted(r.aaaa()),
            crate::support::sorted(a_only_under(wkp))
        );
        d.tcp(&q(zone::A_ONLY, RecordType::A)).await;
    }
    let after = scrape(&d).await;
    let delta = |name: &str| value(&after, name, &[]) - value(&before, name, &[]);
    assert_eq!(
        delta(names::CACHE_MISSES),
        2.0,
        "one resolution per question"
    );
    assert_eq!(delta(names::CACHE_HITS), 6.0);
    assert_eq!(delta(names::SYNTHESIZED), 4.0, "every AAAA answer sent");
    let a_records = zone::A_ONLY_ADDRS.len() as f64;
    assert_eq!(
        delta(names::A_STRIPPED),
        4.0 * a_records,
        "every A answer sent"
    );
}

// ---- /ready ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_flips_from_503_to_200_when_the_upstream_comes_up() {
    // The upstream's port is bound but nothing reads it until it "comes up"
    // (holding it keeps the port from being taken meanwhile).
    let reserved = Reserved::new().await;
    // A placeholder upstream elsewhere: Dns64d owns one; the config names `reserved`.
    let placeholder = Upstream::start().await;
    let toml = crate::support::merge_toml(
        &config_toml(reserved.addr(), WITH_METRICS),
        "[upstream]\ntimeout = \"200ms\"\nattempts = 1",
    );
    let d = Dns64d::launch(placeholder, &toml, false).await;
    let (status, _) = http::get(endpoint(&d), "/ready").await;
    assert_eq!(status, 503, "ready with nothing answering upstream");
    assert!(!d.handle.is_ready());
    // Past the first probe's timeout: still not ready.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = http::get(endpoint(&d), "/ready").await;
    assert_eq!(status, 503, "ready with nothing answering upstream");
    let upstream = Upstream::start_on(reserved).await;
    let started = Instant::now();
    loop {
        let (status, _) = http::get(endpoint(&d), "/ready").await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "/ready still {status} 5 s after the upstream came up (probes every 1 s)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(d.handle.is_ready());
    let reply = d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), vec![zone::DUAL_AAAA]);
    assert!(!upstream.asked(zone::DUAL, RecordType::AAAA).is_empty());
}

// ---- POST /reload ----

#[tokio::test]
async fn post_reload_is_404_unless_http_reload_is_on() {
    let upstream = Upstream::start().await;
    let toml = config_toml(upstream.addr(), WITH_METRICS);
    let d = Dns64d::launch(upstream, &toml, true).await;
    let (status, _) = http::post(endpoint(&d), "/reload").await;
    assert_eq!(status, 404);
    assert_eq!(d.counter("dns64d_config_reloads_total{result=\"ok\"}"), 0);
}

#[tokio::test]
async fn post_reload_rereads_the_config_file_when_http_reload_is_on() {
    let upstream = Upstream::start().await;
    let with_reload = format!("{WITH_METRICS}\nhttp_reload = true");
    let toml = config_toml(upstream.addr(), &with_reload);
    let d = Dns64d::launch(upstream, &toml, true).await;
    prefix_in_effect(&d, d.addr, wkp).await;
    let file = d.config_file.as_ref().expect("config file");
    file.write(&crate::support::merge_toml(
        &toml,
        &format!("[dns64]\nprefixes = [\"{NSP}\"]"),
    ));
    let (status, body) = http::post(endpoint(&d), "/reload").await;
    assert_eq!(status, 200, "{body}");
    prefix_in_effect(&d, d.addr, nsp).await;
    assert_eq!(d.counter("dns64d_config_reloads_total{result=\"ok\"}"), 1);
}

#[tokio::test]
async fn post_reload_of_an_invalid_file_is_refused_and_the_old_config_keeps_serving() {
    let upstream = Upstream::start().await;
    let with_reload = format!("{WITH_METRICS}\nhttp_reload = true");
    let toml = config_toml(upstream.addr(), &with_reload);
    let d = Dns64d::launch(upstream, &toml, true).await;
    let file = d.config_file.as_ref().expect("config file");
    file.write(&format!("{toml}\n[bogus]\nkey = 1\n"));
    let (status, body) = http::post(endpoint(&d), "/reload").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bogus"), "the reason names the key: {body}");
    prefix_in_effect(&d, d.addr, wkp).await;
    assert_eq!(
        d.counter("dns64d_config_reloads_total{result=\"failed\"}"),
        1
    );
}

// ---- reloads through the handle ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_under_load_changes_the_prefix_for_the_next_query_and_loses_none() {
    let d = Dns64d::start(
        r#"[upstream]
        timeout = "3s"
        attempts = 1"#,
    )
    .await;
    d.upstream.on(
        zone::A_ONLY,
        Some(RecordType::A),
        Action::Delay(Duration::from_millis(300)),
    );
    let addr = d.addr;
    let queries = |n| -> Vec<Q> { (0..n).map(|_| q(zone::A_ONLY, RecordType::AAAA)).collect() };
    let before = tokio::spawn(async move { client::udp_all(addr, &queries(200)).await });
    // Reload while those are in flight, then send more while it settles.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let new = config_toml(
        d.upstream.addr(),
        &format!("[upstream]\ntimeout = \"3s\"\nattempts = 1\n[dns64]\nprefixes = [\"{NSP}\"]"),
    );
    d.handle.apply(parse_config(&new)).expect("reload");
    let after = tokio::spawn(async move { client::udp_all(addr, &queries(100)).await });
    let which = |reply: Option<Reply>| {
        let reply = reply.expect("every query sent around the reload is answered");
        assert_eq!(reply.rcode(), ResponseCode::NoError);
        // Sorted: cache hits rotate the order (`dns64.rotate`).
        let got = crate::support::sorted(reply.aaaa());
        if got == crate::support::sorted(a_only_under(wkp)) {
            "old"
        } else if got == crate::support::sorted(a_only_under(nsp)) {
            "new"
        } else {
            panic!("an answer under no single prefix: {got:?}")
        }
    };
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for reply in before.await.expect("client tasks") {
        *counts.entry(which(reply)).or_default() += 1;
    }
    assert!(counts.get("old").is_some_and(|&n| n > 0), "{counts:?}");
    for reply in after.await.expect("client tasks") {
        assert_eq!(which(reply), "new", "a query sent after the reload");
    }
    prefix_in_effect(&d, d.addr, nsp).await;
    d.settles(names::INFLIGHT, 0).await;
}

#[tokio::test]
async fn a_reload_switching_upstream_servers_sends_the_next_query_to_the_new_server() {
    let d = Dns64d::start("").await;
    serving(&d).await;
    let next = Upstream::start().await;
    let toml = config_toml(next.addr(), "");
    d.handle.apply(parse_config(&toml)).expect("reload");
    let reply = d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), vec![zone::DUAL_AAAA]);
    assert_eq!(next.asked(zone::DUAL, RecordType::AAAA).len(), 1);
    assert!(d.upstream.asked(zone::DUAL, RecordType::AAAA).is_empty());
}

#[tokio::test]
async fn a_reload_narrowing_server_allow_refuses_the_next_query_even_for_a_cached_name() {
    let d = Dns64d::start("").await;
    assert_eq!(
        d.udp(&q(zone::DUAL, RecordType::AAAA)).await.aaaa(),
        vec![zone::DUAL_AAAA]
    );
    let toml = config_toml(d.upstream.addr(), "[server]\nallow = [\"10.0.0.0/8\"]");
    d.handle.apply(parse_config(&toml)).expect("reload");
    for reply in [
        d.udp(&q(zone::DUAL, RecordType::AAAA)).await,
        d.tcp(&q(zone::DUAL, RecordType::AAAA)).await,
    ] {
        assert_eq!(reply.rcode(), ResponseCode::Refused);
        assert!(reply.msg.answers.is_empty());
    }
}

#[tokio::test]
async fn an_invalid_config_file_is_refused_on_reload_and_the_old_config_keeps_serving() {
    let upstream = Upstream::start().await;
    let toml = config_toml(upstream.addr(), "");
    let d = Dns64d::launch(upstream, &toml, true).await;
    let file = d.config_file.as_ref().expect("config file");
    file.write(&crate::support::merge_toml(
        &toml,
        "[dns64]\nprefixes = [\"2001:db8:64::/95\"]",
    ));
    let err = d.handle.reload().expect_err("a /95 prefix is refused");
    assert!(err.to_string().contains("prefixes"), "{err}");
    prefix_in_effect(&d, d.addr, wkp).await;
    assert_eq!(
        d.counter("dns64d_config_reloads_total{result=\"failed\"}"),
        1
    );
}

#[tokio::test]
async fn a_reload_whose_new_listen_address_cannot_be_bound_changes_nothing() {
    let d = Dns64d::start("").await;
    let taken = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let taken_addr = taken.local_addr().expect("bound");
    let new = config_toml(
        d.upstream.addr(),
        &format!(
            "[server]\nlisten = [\"127.0.0.1:0\", \"{taken_addr}\"]\n[dns64]\nprefixes = [\"{NSP}\"]"
        ),
    );
    d.handle
        .apply(parse_config(&new))
        .expect_err("the address is taken");
    assert_eq!(d.handle.local_addrs(), vec![d.addr]);
    prefix_in_effect(&d, d.addr, wkp).await;
}

#[tokio::test]
async fn a_reload_adding_a_listen_address_serves_on_it() {
    let d = Dns64d::start("").await;
    serving(&d).await;
    let new = config_toml(
        d.upstream.addr(),
        "[server]\nlisten = [\"127.0.0.1:0\", \"127.0.0.2:0\"]",
    );
    d.handle.apply(parse_config(&new)).expect("reload");
    let addrs = d.handle.local_addrs();
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    let added = *addrs
        .iter()
        .find(|a| a.ip() == Ipv4Addr::new(127, 0, 0, 2))
        .expect("the added address is bound");
    let query = q(zone::DUAL, RecordType::AAAA).bytes();
    assert_eq!(
        client::udp(added, &query).await.aaaa(),
        vec![zone::DUAL_AAAA]
    );
    assert_eq!(
        client::tcp(added, &query).await.aaaa(),
        vec![zone::DUAL_AAAA]
    );
    assert_eq!(
        client::udp(d.addr, &query).await.aaaa(),
        vec![zone::DUAL_AAAA]
    );
}

#[tokio::test]
async fn a_reload_removing_a_listen_address_stops_serving_there() {
    let upstream = Upstream::start().await;
    let both = config_toml(
        upstream.addr(),
        "[server]\nlisten = [\"127.0.0.1:0\", \"127.0.0.2:0\"]",
    );
    let d = Dns64d::launch(upstream, &both, false).await;
    serving(&d).await;
    let addrs = d.handle.local_addrs();
    let kept = *addrs
        .iter()
        .find(|a| a.ip() == Ipv4Addr::new(127, 0, 0, 2))
        .expect("127.0.0.2 bound");
    let removed = *addrs
        .iter()
        .find(|a| a.ip() == Ipv4Addr::LOCALHOST)
        .expect("127.0.0.1 bound");
    let only_second = config_toml(d.upstream.addr(), "[server]\nlisten = [\"127.0.0.2:0\"]");
    d.handle.apply(parse_config(&only_second)).expect("reload");
    assert_eq!(d.handle.local_addrs(), vec![kept]);
    let query = q(zone::DUAL, RecordType::AAAA).bytes();
    assert_eq!(
        client::udp(kept, &query).await.aaaa(),
        vec![zone::DUAL_AAAA]
    );
    // The listener stops as soon as it sees its stop token: allow it a moment.
    let started = Instant::now();
    loop {
        let udp = client::udp_maybe(removed, &query, Duration::from_millis(200)).await;
        let tcp = tokio::net::TcpStream::connect(removed).await;
        if udp.is_none() && tcp.is_err() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "still serving on {removed} after it was removed (udp answered: {}, tcp connected: {})",
            udp.is_some(),
            tcp.is_ok()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut conn = TcpClient::connect(kept).await;
    conn.send(&query).await;
    assert_eq!(conn.recv().await.aaaa(), vec![zone::DUAL_AAAA]);
}

#[tokio::test]
async fn a_reload_applied_before_the_server_runs_still_serves_the_added_address() {
    // `Handle` exists from `Server::bind` on, so a reload (SIGHUP just after
    // start-up) can come before `run` has started.
    let upstream = Upstream::start().await;
    let server = dns64d::app::Server::bind(parse_config(&config_toml(upstream.addr(), "")))
        .await
        .expect("bind");
    let handle = server.handle();
    let both = config_toml(
        upstream.addr(),
        "[server]\nlisten = [\"127.0.0.1:0\", \"127.0.0.2:0\"]",
    );
    let applied = handle.apply(parse_config(&both));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    tokio::spawn(server.run(shutdown));
    if applied.is_err() {
        return; // Refusing the reload is an honest answer too.
    }
    let addrs = handle.local_addrs();
    let added = addrs
        .iter()
        .find(|a| a.ip() == Ipv4Addr::new(127, 0, 0, 2))
        .unwrap_or_else(|| panic!("apply returned Ok but 127.0.0.2 is not listed: {addrs:?}"));
    let query = q(zone::DUAL, RecordType::AAAA).bytes();
    assert_eq!(
        client::udp(*added, &query).await.aaaa(),
        vec![zone::DUAL_AAAA]
    );
}
