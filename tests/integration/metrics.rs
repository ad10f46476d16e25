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

/// Writes `raw` to the control endpoint and reads until it closes or `want`
/// responses have arrived; returns what was read.
async fn raw_exchange(d: &Dns64d, raw: &[u8], want: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(endpoint(d)).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = s.read(&mut buf).await.unwrap_or(0);
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if n == 0 || text.matches("HTTP/1.1 ").count() >= want && text.ends_with('\n') {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(3), read)
        .await
        .expect("the control endpoint answered");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn a_malformed_control_request_gets_400_and_the_endpoint_keeps_serving() {
    let d = Dns64d::start(WITH_METRICS).await;
    let text = raw_exchange(&d, b"\x00\x01garbage\r\n\r\n", 1).await;
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    let (status, _) = http::get(endpoint(&d), "/health").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_oversized_control_request_head_gets_431() {
    let d = Dns64d::start(WITH_METRICS).await;
    let mut req = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 16 * 1024));
    req.extend_from_slice(b"\r\n\r\n");
    let text = raw_exchange(&d, &req, 1).await;
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
}

#[tokio::test]
async fn a_scraper_can_keep_its_connection_for_several_requests() {
    let d = Dns64d::start(WITH_METRICS).await;
    let two = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    let text = raw_exchange(&d, two, 2).await;
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
    assert!(text.contains("version=0.0.4"), "{text}");
}

#[tokio::test]
async fn a_wrong_method_on_a_control_path_gets_405() {
    let d = Dns64d::start(WITH_METRICS).await;
    let (status, _) = http::request(endpoint(&d), "DELETE", "/metrics").await;
    assert_eq!(status, 405);
    let (status, _) = http::get(endpoint(&d), "/nothing-here").await;
    assert_eq!(status, 404);
}
