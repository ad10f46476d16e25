//! Per-zone forwarding (`[[upstream.zone]]`, issue #16 item 1): names under
//! a zone's suffix go to that zone's servers, every other name to
//! `upstream.servers`, each group with its own health, failover, metrics
//! and readiness. Every upstream here is a fake one on 127.0.0.1 that
//! answers from its own data, so the answer shows which group was asked.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::support::upstream::Reserved;
use crate::support::{Dns64d, TempFile, Upstream, config_toml, http, merge_toml, q, zone};

/// The AAAA the default upstream gives for every name the tests ask.
const FROM_DEFAULT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xd, 0, 0, 0, 0, 1);
/// The AAAA a zone's upstream gives.
const FROM_ZONE: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x2, 0, 0, 0, 0, 1);
/// The AAAA a second zone's upstream gives.
const FROM_INNER_ZONE: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x3, 0, 0, 0, 0, 1);

/// `up` answers `name` AAAA with `addr`.
fn answers(up: &Upstream, name: &str, addr: Ipv6Addr) {
    let owner = Name::from_ascii(name).unwrap();
    let record = Record::from_rdata(owner, 300, RData::AAAA(AAAA(addr)));
    up.set_answer(name, RecordType::AAAA, vec![record]);
}

/// `[[upstream.zone]]` tables, one per `(suffix, servers)`.
fn zone_tables(zones: &[(&str, &[SocketAddr])]) -> String {
    zones
        .iter()
        .map(|(suffix, servers)| {
            let list: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
            format!(
                "[[upstream.zone]]\nsuffix = \"{suffix}\"\nservers = [{}]\n",
                list.join(", ")
            )
        })
        .collect()
}

/// dns64d forwarding to `default`, with `zones`, and `extra` merged over it.
async fn with_zones(default: Upstream, zones: &[(&str, &[SocketAddr])], extra: &str) -> Dns64d {
    let toml = merge_toml(&config_toml(default.addr(), &zone_tables(zones)), extra);
    Dns64d::launch(default, &toml, false).await
}

async fn aaaa(d: &Dns64d, name: &str) -> Vec<Ipv6Addr> {
    let reply = d.udp(&q(name, RecordType::AAAA)).await;
    assert_eq!(reply.rcode(), ResponseCode::NoError, "{name}");
    reply.aaaa()
}

/// Queries of any type `up` received for `name`.
fn asked(up: &Upstream, name: &str) -> usize {
    let name = Name::from_ascii(name).unwrap();
    up.seen().iter().filter(|s| s.name() == &name).count()
}

#[tokio::test]
async fn a_name_under_a_zone_goes_to_the_zone_servers_and_other_names_to_the_default() {
    let (default, kube) = (Upstream::start().await, Upstream::start().await);
    for name in ["web.default.svc.cluster.local.", "www.example."] {
        answers(&default, name, FROM_DEFAULT);
        answers(&kube, name, FROM_ZONE);
    }
    let d = with_zones(default, &[("cluster.local.", &[kube.addr()])], "").await;
    assert_eq!(
        aaaa(&d, "web.default.svc.cluster.local.").await,
        [FROM_ZONE]
    );
    assert_eq!(aaaa(&d, "www.example.").await, [FROM_DEFAULT]);
    assert_eq!(asked(&d.upstream, "web.default.svc.cluster.local."), 0);
    assert_eq!(asked(&kube, "www.example."), 0);
}

#[tokio::test]
async fn the_longest_zone_suffix_wins() {
    let (default, outer, inner) = (
        Upstream::start().await,
        Upstream::start().await,
        Upstream::start().await,
    );
    for name in ["a.svc.cluster.local.", "a.pod.cluster.local."] {
        answers(&outer, name, FROM_ZONE);
        answers(&inner, name, FROM_INNER_ZONE);
    }
    // Listed outer first: the order in the file does not decide.
    let d = with_zones(
        default,
        &[
            ("cluster.local.", &[outer.addr()]),
            ("svc.cluster.local.", &[inner.addr()]),
        ],
        "",
    )
    .await;
    assert_eq!(aaaa(&d, "a.svc.cluster.local.").await, [FROM_INNER_ZONE]);
    assert_eq!(aaaa(&d, "a.pod.cluster.local.").await, [FROM_ZONE]);
}

#[tokio::test]
async fn a_zone_matches_on_label_boundaries_only() {
    let (default, kube) = (Upstream::start().await, Upstream::start().await);
    let name = "notcluster.local.";
    answers(&default, name, FROM_DEFAULT);
    answers(&kube, name, FROM_ZONE);
    let d = with_zones(default, &[("cluster.local.", &[kube.addr()])], "").await;
    assert_eq!(aaaa(&d, name).await, [FROM_DEFAULT]);
    assert_eq!(asked(&kube, name), 0);
}

#[tokio::test]
async fn zone_matching_ignores_letter_case_and_the_trailing_dot() {
    let (default, kube) = (Upstream::start().await, Upstream::start().await);
    answers(&kube, "web.cluster.local.", FROM_ZONE);
    answers(&default, "web.cluster.local.", FROM_DEFAULT);
    let d = with_zones(default, &[("Cluster.LOCAL", &[kube.addr()])], "").await;
    assert_eq!(aaaa(&d, "Web.CLUSTER.local.").await, [FROM_ZONE]);
}

#[tokio::test]
async fn a_tcp_query_for_a_zone_name_goes_to_the_zone_servers() {
    let (default, kube) = (Upstream::start().await, Upstream::start().await);
    answers(&kube, "tcp.cluster.local.", FROM_ZONE);
    answers(&default, "tcp.cluster.local.", FROM_DEFAULT);
    let d = with_zones(default, &[("cluster.local.", &[kube.addr()])], "").await;
    let reply = d.tcp(&q("tcp.cluster.local.", RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), [FROM_ZONE]);
}

#[tokio::test]
async fn a_dead_server_in_a_zone_fails_over_to_the_zone_next_server() {
    let (default, kube) = (Upstream::start().await, Upstream::start().await);
    let dead = Reserved::new().await;
    answers(&kube, "api.cluster.local.", FROM_ZONE);
    answers(&default, "api.cluster.local.", FROM_DEFAULT);
    let d = with_zones(
        default,
        &[("cluster.local.", &[dead.addr(), kube.addr()])],
        "",
    )
    .await;
    assert_eq!(aaaa(&d, "api.cluster.local.").await, [FROM_ZONE]);
    assert_eq!(
        asked(&d.upstream, "api.cluster.local."),
        0,
        "failover stays inside the zone"
    );
    let timeouts = format!(
        "dns64d_upstream_requests_total{{zone=\"cluster.local.\",server=\"{}\",result=\"timeout\"}}",
        dead.addr()
    );
    assert_eq!(d.counter(&timeouts), 1, "{timeouts}");
}

#[tokio::test]
async fn a_zone_whose_servers_are_all_dead_leaves_the_default_group_serving() {
    let default = Upstream::start().await;
    let dead = Reserved::new().await;
    answers(&default, "www.example.", FROM_DEFAULT);
    let d = with_zones(default, &[("cluster.local.", &[dead.addr()])], "").await;
    let zoned = d.udp(&q("web.cluster.local.", RecordType::AAAA)).await;
    assert_eq!(zoned.rcode(), ResponseCode::ServFail);
    assert_eq!(asked(&d.upstream, "web.cluster.local."), 0);
    for _ in 0..3 {
        assert_eq!(aaaa(&d, "www.example.").await, [FROM_DEFAULT]);
    }
    let default_ok = format!(
        "dns64d_upstream_requests_total{{zone=\".\",server=\"{}\",result=\"ok\"}}",
        d.upstream.addr()
    );
    assert_eq!(
        d.counter(&default_ok),
        1,
        "one miss, then cache hits: {default_ok}"
    );
}

#[tokio::test]
async fn upstream_metrics_carry_the_zone_label() {
    let (default, kube) = (Upstream::start().await, Upstream::start().await);
    answers(&kube, "m.cluster.local.", FROM_ZONE);
    answers(&default, "m.example.", FROM_DEFAULT);
    let d = with_zones(
        default,
        &[("cluster.local.", &[kube.addr()])],
        "[server]\nmetrics = \"127.0.0.1:0\"",
    )
    .await;
    aaaa(&d, "m.cluster.local.").await;
    aaaa(&d, "m.example.").await;
    let (status, body) = http::get(d.metrics.unwrap(), "/metrics").await;
    assert_eq!(status, 200);
    let samples = http::parse_metrics(&body);
    let ok = |zone: &str, server: SocketAddr| {
        http::sum(
            &samples,
            "dns64d_upstream_requests_total",
            &[zone, &server.to_string(), "ok"],
        )
    };
    assert_eq!(ok("cluster.local.", kube.addr()), 1.0, "{body}");
    assert_eq!(ok(".", d.upstream.addr()), 1.0, "{body}");
    assert_eq!(
        ok(".", kube.addr()),
        0.0,
        "kube-dns is not a default server"
    );
    let histogram = format!(
        "dns64d_upstream_duration_seconds_count{{zone=\"cluster.local.\",server=\"{}\"}}",
        kube.addr()
    );
    assert_eq!(d.counter(&histogram), 1, "{histogram}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_waits_until_every_zone_has_a_server_that_answers() {
    let default = Upstream::start().await;
    let reserved = Reserved::new().await;
    let d = with_zones(
        default,
        &[("cluster.local.", &[reserved.addr()])],
        "[server]\nmetrics = \"127.0.0.1:0\"\n[upstream]\ntimeout = \"200ms\"\nattempts = 1",
    )
    .await;
    // Past the first probe of both groups: the default one answered.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, _) = http::get(d.metrics.unwrap(), "/ready").await;
    assert_eq!(status, 503, "ready while cluster.local. has no server");
    let kube = Upstream::start_on(reserved).await;
    let started = Instant::now();
    while http::get(d.metrics.unwrap(), "/ready").await.0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "/ready not 200 5 s after the zone's server came up (probes every 1 s)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(asked(&kube, ".") >= 1, "the zone's server was probed");
}

/// `cluster.local.` → a kube-dns on TEST-NET, the rest → a default server.
const EXPLAIN_CONFIG: &str = r#"
[upstream]
servers = ["192.0.2.53"]
timeout = "2s"
attempts = 2
[[upstream.zone]]
suffix = "cluster.local."
servers = ["192.0.2.10", "tls://192.0.2.11#kube-dns.test"]
timeout = "500ms"
attempts = 3
"#;

fn explain(name: &str) -> String {
    let file = TempFile::new(EXPLAIN_CONFIG);
    let out = Command::new(env!("CARGO_BIN_EXE_dns64d"))
        .arg("check-config")
        .arg(file.path())
        .arg("--explain")
        .arg(name)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn explain_prints_the_forwarding_zone_a_name_goes_to_and_its_servers() {
    let text = explain("web.default.svc.cluster.local");
    assert!(
        text.contains("forward zone: cluster.local. (upstream.zone[0])"),
        "{text}"
    );
    assert!(
        text.contains("192.0.2.10:53, tls://192.0.2.11:853#kube-dns.test"),
        "{text}"
    );
    assert!(text.contains("timeout 500ms, attempts 3"), "{text}");
    let other = explain("www.example");
    assert!(
        other.contains("forward zone: . (upstream.servers)"),
        "{other}"
    );
    assert!(
        other.contains("192.0.2.53:53 (timeout 2s, attempts 2)"),
        "{other}"
    );
}

/// The error for a config with `zones` after a valid `[upstream]`.
fn rejection(zones: &str) -> String {
    let toml = format!("[upstream]\nservers = [\"192.0.2.53\"]\n{zones}");
    match dns64d::config::Config::from_toml(&toml) {
        Ok(_) => panic!("accepted:\n{toml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_zone_without_servers_is_a_config_error_naming_the_entry() {
    let err = rejection(
        "[[upstream.zone]]\nsuffix = \"a.test\"\nservers = [\"192.0.2.1\"]\n\
         [[upstream.zone]]\nsuffix = \"b.test\"\nservers = []\n",
    );
    assert!(err.contains("`upstream.zone[1].servers`"), "{err}");
    let missing = rejection("[[upstream.zone]]\nsuffix = \"b.test\"\n");
    assert!(missing.contains("`upstream.zone[0].servers`"), "{missing}");
}

#[test]
fn a_suffix_listed_twice_is_a_config_error_naming_both_entries() {
    let err = rejection(
        "[[upstream.zone]]\nsuffix = \"cluster.local.\"\nservers = [\"192.0.2.1\"]\n\
         [[upstream.zone]]\nsuffix = \"Cluster.Local\"\nservers = [\"192.0.2.2\"]\n",
    );
    assert!(err.contains("`upstream.zone[1].suffix`"), "{err}");
    assert!(err.contains("Cluster.Local"), "{err}");
    assert!(err.contains("also upstream.zone[0]"), "{err}");
}

#[test]
fn a_bad_zone_name_is_a_config_error_naming_key_and_value() {
    for bad in ["bad name.test", "a..b", ".", "", "x\\"] {
        let err = rejection(&format!(
            "[[upstream.zone]]\nsuffix = {bad:?}\nservers = [\"192.0.2.1\"]\n"
        ));
        assert!(err.contains("`upstream.zone[0].suffix`"), "{bad:?}: {err}");
    }
    let long = format!("{}.test", "x".repeat(64));
    let err = rejection(&format!(
        "[[upstream.zone]]\nsuffix = \"{long}\"\nservers = [\"192.0.2.1\"]\n"
    ));
    assert!(err.contains(&long), "{err}");
}

#[test]
fn a_bad_zone_server_timeout_or_attempts_is_a_config_error_naming_the_key() {
    let zone = "[[upstream.zone]]\nsuffix = \"a.test\"\n";
    for (keys, key) in [
        (
            "servers = [\"tls://192.0.2.1\"]",
            "upstream.zone[0].servers",
        ),
        ("servers = [\"not-an-ip\"]", "upstream.zone[0].servers"),
        (
            "servers = [\"192.0.2.1\"]\ntimeout = \"0s\"",
            "upstream.zone[0].timeout",
        ),
        (
            "servers = [\"192.0.2.1\"]\nattempts = 0",
            "upstream.zone[0].attempts",
        ),
    ] {
        let err = rejection(&format!("{zone}{keys}\n"));
        assert!(err.contains(&format!("`{key}`")), "{keys}: {err}");
    }
}

#[test]
fn a_zone_inherits_timeout_and_attempts_and_the_printed_config_loads_again() {
    let c = dns64d::config::Config::from_toml(
        "[upstream]\nservers = [\"192.0.2.53\"]\ntimeout = \"700ms\"\nattempts = 4\n\
         [[upstream.zone]]\nsuffix = \"Cluster.Local\"\nservers = [\"192.0.2.10\"]\n\
         [[upstream.zone]]\nsuffix = \"in-addr.arpa.\"\nservers = [\"192.0.2.10\"]\nattempts = 1\n",
    )
    .unwrap();
    let z = &c.upstream.zones;
    assert_eq!(z[0].suffix, "cluster.local.");
    assert_eq!(
        (z[0].timeout, z[0].attempts),
        (Duration::from_millis(700), 4)
    );
    assert_eq!(z[1].attempts, 1);
    let printed = c.to_toml();
    let again = dns64d::config::Config::from_toml(&printed)
        .unwrap_or_else(|e| panic!("printed config rejected: {e}\n{printed}"));
    assert_eq!(again.upstream.zones, c.upstream.zones);
}

#[tokio::test]
async fn discovery_asks_the_zone_that_covers_ipv4only_arpa() {
    let (default, nat64) = (Upstream::start().await, Upstream::start().await);
    let p = [0x2001, 0xdb8, 0x64, 0, 0, 0];
    let owner = Name::from_ascii("ipv4only.arpa.").unwrap();
    let learned = crate::support::under96(p, Ipv4Addr::new(192, 0, 0, 170));
    nat64.set_answer(
        "ipv4only.arpa.",
        RecordType::AAAA,
        vec![Record::from_rdata(owner, 600, RData::AAAA(AAAA(learned)))],
    );
    let d = with_zones(
        default,
        &[("ipv4only.arpa.", &[nat64.addr()])],
        "[dns64]\nprefixes = [\"discover\"]",
    )
    .await;
    let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    assert_eq!(
        reply.aaaa()[0],
        crate::support::under96(p, zone::A_ONLY_ADDRS[0].0)
    );
    assert_eq!(asked(&nat64, "ipv4only.arpa."), 1);
    assert_eq!(asked(&d.upstream, "ipv4only.arpa."), 0);
}

/// TTL of the prefetch test's name; its last 10% is the prefetch window.
const PREFETCH_TTL: u32 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefetch_of_a_zone_name_refreshes_it_from_the_zone_servers() {
    let (default, kube) = (Upstream::start().await, Upstream::start().await);
    let name = "popular.cluster.local.";
    let owner = Name::from_ascii(name).unwrap();
    let record = Record::from_rdata(owner, PREFETCH_TTL, RData::AAAA(AAAA(FROM_ZONE)));
    kube.set_answer(name, RecordType::AAAA, vec![record]);
    let d = with_zones(default, &[("cluster.local.", &[kube.addr()])], "").await;
    let started = Instant::now();
    // One miss, then enough hits to make the entry popular.
    for _ in 0..4 {
        assert_eq!(aaaa(&d, name).await, [FROM_ZONE]);
    }
    tokio::time::sleep(Duration::from_millis(9500).saturating_sub(started.elapsed())).await;
    assert_eq!(aaaa(&d, name).await, [FROM_ZONE]);
    let deadline = Instant::now() + Duration::from_secs(3);
    while asked(&kube, name) < 2 {
        assert!(Instant::now() < deadline, "no refresh reached kube-dns");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(d.counter("dns64d_prefetch_total"), 1);
    assert_eq!(asked(&d.upstream, name), 0, "the refresh went to the zone");
}

// ---- issue #16 "Done when": the shipped ConfigMap's layout ----

/// The TOML inside deploy/kubernetes/configmap.yaml (the `dns64d.toml: |`
/// block, de-indented).
fn shipped_configmap_toml() -> toml::Table {
    let yaml = include_str!("../../deploy/kubernetes/configmap.yaml");
    let (_, block) = yaml.split_once("dns64d.toml: |\n").unwrap();
    let text: String = block
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect();
    text.parse().unwrap()
}

#[tokio::test]
async fn the_configmap_layout_serves_cluster_names_from_kube_dns_the_rest_over_tls_with_a_discovered_prefix()
 {
    use crate::tls::{NAME, TlsFront, pki};
    let (vpc, kube) = (Upstream::start().await, Upstream::start().await);
    // The DoT resolver is a NAT64 one: it synthesizes ipv4only.arpa.
    let p = [0x2001, 0xdb8, 0x46, 0, 0, 0];
    let owner = Name::from_ascii("ipv4only.arpa.").unwrap();
    let learned = crate::support::under96(p, Ipv4Addr::new(192, 0, 0, 170));
    vpc.set_answer(
        "ipv4only.arpa.",
        RecordType::AAAA,
        vec![Record::from_rdata(owner, 600, RData::AAAA(AAAA(learned)))],
    );
    let service = "web.default.svc.cluster.local.";
    let cluster_ip = Ipv4Addr::new(10, 96, 12, 34);
    let owner = Name::from_ascii(service).unwrap();
    kube.set_answer(
        service,
        RecordType::A,
        vec![Record::from_rdata(owner, 5, RData::A(A(cluster_ip)))],
    );
    let pki = pki();
    let ca = TempFile::new(&pki.ca_pem);
    let front = TlsFront::start(&pki, vpc.addr()).await;

    // The shipped file, with only what a test must change: loopback
    // addresses, the test CA, discovery, and loopback as a DNS64 client
    // (the test's client is 127.0.0.1).
    let mut cfg = shipped_configmap_toml();
    let zones = cfg["upstream"]["zone"].as_array().unwrap().clone();
    let suffixes: Vec<&str> = zones
        .iter()
        .map(|z| z["suffix"].as_str().unwrap())
        .collect();
    assert_eq!(suffixes, ["cluster.local.", "in-addr.arpa.", "ip6.arpa."]);
    let mut zones = zones;
    for z in &mut zones {
        z.as_table_mut()
            .unwrap()
            .insert("servers".into(), vec![kube.addr().to_string()].into());
    }
    let upstream = cfg["upstream"].as_table_mut().unwrap();
    upstream.insert("zone".into(), zones.into());
    upstream.insert(
        "servers".into(),
        vec![format!("tls://{}#{NAME}", front.addr)].into(),
    );
    upstream.insert("tls_ca".into(), ca.path().display().to_string().into());
    let toml = merge_toml(
        &toml::to_string(&cfg).unwrap(),
        "[server]\nlisten = [\"127.0.0.1:0\"]\nmetrics = \"\"\n\
         [dns64]\nprefixes = [\"discover\"]\nclients = [\"::/0\", \"127.0.0.0/8\"]\n\
         [log]\nformat = \"text\"",
    );
    let file = TempFile::new(&toml);
    let check = Command::new(env!("CARGO_BIN_EXE_dns64d"))
        .arg("check-config")
        .arg(file.path())
        .output()
        .unwrap();
    assert!(check.status.success(), "check-config: {check:?}\n{toml}");

    let d = Dns64d::launch(vpc, &toml, false).await;
    let svc = d.udp(&q(service, RecordType::A)).await;
    assert_eq!(svc.a(), [cluster_ip], "cluster.local. answered by kube-dns");
    let ptr = d
        .udp(&q("34.12.96.10.in-addr.arpa.", RecordType::PTR))
        .await;
    assert_ne!(ptr.rcode(), ResponseCode::ServFail);
    assert_eq!(
        asked(&kube, "34.12.96.10.in-addr.arpa."),
        1,
        "reverse → kube-dns"
    );
    let synth = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    let want: Vec<_> = zone::A_ONLY_ADDRS
        .iter()
        .map(|(a, _)| crate::support::under96(p, *a))
        .collect();
    assert_eq!(synth.aaaa(), want, "synthesized with the discovered prefix");
    assert!(front.connections() >= 1, "the rest went over TLS");
    assert_eq!(asked(&d.upstream, "ipv4only.arpa."), 1);
    assert_eq!(asked(&kube, "ipv4only.arpa."), 0);
    assert_eq!(asked(&kube, zone::A_ONLY), 0);
    assert_eq!(asked(&d.upstream, service), 0);
}
