//! SPEC §9 and STYLE 10: the metrics scrape, `/health` and `/ready`, over HTTP.
//! Metric names come from the library's constants; label *values* are checked
//! (transport, qtype, rcode), label names are the library's business.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dns64d::metrics::names;
use hickory_proto::rr::RecordType;

use crate::support::http::{self, Sample};
use crate::support::{Action, Dns64d, q, zone};

const WITH_METRICS: &str = r#"[server]
metrics = "127.0.0.1:0""#;

fn endpoint(d: &Dns64d) -> SocketAddr {
    d.metrics.expect("server.metrics is set")
}

async fn scrape(d: &Dns64d) -> Vec<Sample> {
    let (status, body) = http::get(endpoint(d), "/metrics").await;
    assert_eq!(status, 200, "{body}");
    http::parse_metrics(&body)
}

/// Scrapes until `done` holds for the samples, or panics after a few seconds
/// (counters for packets that get no reply are bumped after we stop waiting).
async fn scrape_until(d: &Dns64d, what: &str, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let started = Instant::now();
    loop {
        let samples = scrape(d).await;
        if done(&samples) {
            return samples;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{what}: {samples:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_count_queries_by_transport_and_qtype() {
    let d = Dns64d::start(WITH_METRICS).await;
    d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    d.tcp(&q(zone::DUAL, RecordType::MX)).await;
    let samples = scrape(&d).await;
    assert_eq!(http::sum(&samples, names::REQUESTS, &["udp", "AAAA"]), 2.0);
    assert_eq!(http::sum(&samples, names::REQUESTS, &["tcp", "MX"]), 1.0);
    assert_eq!(http::sum(&samples, names::REQUESTS, &[]), 3.0);
}

#[tokio::test]
async fn metrics_count_responses_by_rcode() {
    let d = Dns64d::start(WITH_METRICS).await;
    d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    d.udp(&q(zone::MISSING, RecordType::AAAA)).await;
    d.udp(&q(zone::MISSING, RecordType::TXT)).await;
    let samples = scrape(&d).await;
    assert_eq!(http::sum(&samples, names::RESPONSES, &["NOERROR"]), 1.0);
    assert_eq!(http::sum(&samples, names::RESPONSES, &["NXDOMAIN"]), 2.0);
}

#[tokio::test]
async fn metrics_count_synthesized_answers_and_stripped_a_records() {
    let d = Dns64d::start(WITH_METRICS).await;
    d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    d.udp(&q(zone::A_ONLY, RecordType::A)).await;
    let samples = scrape(&d).await;
    assert_eq!(http::sum(&samples, names::SYNTHESIZED, &[]), 1.0);
    assert_eq!(
        http::sum(&samples, names::A_STRIPPED, &[]),
        zone::A_ONLY_ADDRS.len() as f64
    );
}

#[tokio::test]
async fn metrics_count_dropped_and_refused_packets() {
    let d = Dns64d::start(WITH_METRICS).await;
    let mut response = q(zone::DUAL, RecordType::AAAA).bytes();
    response[2] |= 0x80; // QR=1: dropped
    assert_eq!(d.udp_raw(&response).await, None);
    assert_eq!(d.udp_raw(&[0u8; 5]).await, None); // shorter than a header
    scrape_until(&d, "two drops counted", |s| {
        http::sum(s, names::DROPPED, &[]) == 2.0
    })
    .await;

    let refusing = Dns64d::start(&format!("{WITH_METRICS}\nallow = [\"10.0.0.0/8\"]")).await;
    refusing.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    let samples = scrape(&refusing).await;
    assert_eq!(http::sum(&samples, names::REFUSED, &[]), 1.0);
}

#[tokio::test]
async fn metrics_record_upstream_latency_and_errors_per_server() {
    let d = Dns64d::start(WITH_METRICS).await;
    d.upstream
        .on(zone::BROKEN, Some(RecordType::TXT), Action::Drop);
    d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    d.udp(&q(zone::BROKEN, RecordType::TXT)).await;
    let samples = scrape(&d).await;
    let server = d.upstream.addr().to_string();
    let count = format!("{}_count", names::UPSTREAM_DURATION);
    assert!(
        http::sum(&samples, &count, &[&server]) >= 1.0,
        "latency histogram for {server}: {samples:#?}"
    );
    assert!(
        http::sum(&samples, names::UPSTREAM_REQUESTS, &[&server, "timeout"]) >= 1.0,
        "timeouts counted for {server}: {samples:#?}"
    );
}

#[tokio::test]
async fn metric_labels_never_hold_query_names_or_client_addresses() {
    let d = Dns64d::start(WITH_METRICS).await;
    for name in [zone::DUAL, zone::A_ONLY, zone::MISSING, zone::CHAIN] {
        d.udp(&q(name, RecordType::AAAA)).await;
        d.tcp(&q(name, RecordType::A)).await;
    }
    let (_, body) = http::get(endpoint(&d), "/metrics").await;
    assert!(
        !body.contains("example"),
        "a query name in a label:\n{body}"
    );
    for sample in http::parse_metrics(&body) {
        for value in sample.labels.values() {
            assert_ne!(value, "127.0.0.1", "a client address in a label:\n{body}");
        }
    }
}

#[tokio::test]
async fn health_answers_ok() {
    let d = Dns64d::start(WITH_METRICS).await;
    let (status, _) = http::get(endpoint(&d), "/health").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn ready_answers_ok_once_an_upstream_works() {
    let d = Dns64d::start(WITH_METRICS).await;
    let started = Instant::now();
    loop {
        let (status, _) = http::get(endpoint(&d), "/ready").await;
        if status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "/ready still {status} with a working upstream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn ready_is_not_ok_while_no_upstream_answers() {
    let upstream = crate::support::Upstream::start().await;
    upstream.on_all(None, Action::Drop);
    let d = Dns64d::start_with(upstream, WITH_METRICS).await;
    d.udp(&q(zone::DUAL, RecordType::TXT)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = http::get(endpoint(&d), "/ready").await;
    assert_ne!(status, 200, "ready without a working upstream");
    let (status, _) = http::get(endpoint(&d), "/health").await;
    assert_eq!(status, 200, "alive all the same");
}

#[tokio::test]
async fn metrics_count_queries_turned_away_past_max_inflight() {
    let d = Dns64d::start(&format!(
        "{WITH_METRICS}\nmax_inflight = 1\n[upstream]\ntimeout = \"2s\"\nattempts = 1"
    ))
    .await;
    d.upstream
        .on_all(None, Action::Delay(Duration::from_millis(400)));
    let mut pending = Vec::new();
    for name in [zone::DUAL, zone::TXT_ONLY, zone::A_ONLY, zone::MX] {
        let packet = q(name, RecordType::TXT).bytes();
        let addr = d.addr;
        pending.push(tokio::spawn(async move {
            crate::support::client::udp_maybe(addr, &packet, Duration::from_secs(2)).await
        }));
    }
    for task in pending {
        task.await.expect("client task");
    }
    // Past the cap a query is dropped or answered SERVFAIL; either way a counter rises.
    scrape_until(&d, "queries past max_inflight counted", |s| {
        http::sum(s, names::DROPPED, &[]) + http::sum(s, names::RESPONSES, &["SERVFAIL"]) >= 3.0
    })
    .await;
}
