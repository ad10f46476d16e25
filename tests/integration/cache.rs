//! The answer cache (`[cache]`): hits, TTLs counted down, RFC 2308 negative
//! caching, the config clamps, the separation of DO, CD and policy classes,
//! RFC 8767 serve-stale, and what a hit echoes and truncates.
//!
//! Lifetimes are whole seconds, so a test that waits for an expiry sleeps a
//! little over one second: the fixture names with 1-second TTLs
//! ([`zone::SHORT_TTL`], [`zone::SHORT_NODATA`], [`zone::SHORT_NXDOMAIN`]) or a
//! clamp of 1 keep that the longest wait.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use dns64d::metrics::names;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::support::client::question_bytes;
use crate::support::{Action, Dns64d, Reply, assert_no_a, parse_config, q, wkp, zone};

/// Past a lifetime of one second, with margin for a loaded machine.
const PAST_ONE_SECOND: Duration = Duration::from_millis(1300);

/// Upstream failures are quick: one attempt of 150 ms per upstream question.
const QUICK_FAILURE: &str = r#"[upstream]
    timeout = "150ms"
    attempts = 1"#;

fn a_only_synthesized() -> Vec<Ipv6Addr> {
    zone::A_ONLY_ADDRS.iter().map(|(a, _)| wkp(*a)).collect()
}

/// `v` as the `n`-th render of its entry sends it (`dns64.rotate`: one
/// record further each time; the answer first resolved is render 0).
fn turned<T>(mut v: Vec<T>, n: usize) -> Vec<T> {
    let len = v.len();
    v.rotate_left(n % len);
    v
}

fn asked(d: &Dns64d, name: &str, qtype: RecordType) -> usize {
    d.upstream.asked(name, qtype).len()
}

// ---- hits and lifetimes ----

#[tokio::test]
async fn a_repeated_query_is_answered_from_the_cache_without_asking_upstream_again() {
    let d = Dns64d::start("").await;
    let first = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    let second = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    assert_eq!(first.aaaa(), a_only_synthesized());
    assert_eq!(second.aaaa(), turned(a_only_synthesized(), 1));
    assert_eq!(asked(&d, zone::A_ONLY, RecordType::AAAA), 1);
    assert_eq!(asked(&d, zone::A_ONLY, RecordType::A), 1);
    assert_eq!(d.counter(names::CACHE_HITS), 1);
    assert_eq!(d.counter(names::CACHE_MISSES), 1);
}

#[tokio::test]
async fn with_the_cache_disabled_every_query_goes_upstream() {
    let d = Dns64d::start("[cache]\nenabled = false").await;
    for _ in 0..3 {
        d.udp(&q(zone::DUAL, RecordType::TXT)).await;
    }
    assert_eq!(asked(&d, zone::DUAL, RecordType::TXT), 3);
    assert_eq!(d.counter(names::CACHE_HITS), 0);
}

#[tokio::test]
async fn ttls_served_from_the_cache_count_down_with_the_entrys_age() {
    let d = Dns64d::start("").await;
    let first = d.udp(&q(zone::DUAL, RecordType::TXT)).await;
    assert_eq!(first.ttls(), vec![300], "the fixture TTL");
    tokio::time::sleep(PAST_ONE_SECOND).await;
    let later = d.udp(&q(zone::DUAL, RecordType::TXT)).await;
    assert_eq!(asked(&d, zone::DUAL, RecordType::TXT), 1, "a hit");
    let ttl = later.ttls()[0];
    assert!(
        (290..=299).contains(&ttl),
        "TTL {ttl} after more than a second in the cache"
    );
}

#[tokio::test]
async fn nxdomain_is_cached_for_the_soa_negative_ttl() {
    // SOA TTL 3600, MINIMUM 1: RFC 2308 §5 negative TTL 1 s.
    let d = Dns64d::start("").await;
    let query = q(zone::SHORT_NXDOMAIN, RecordType::TXT);
    assert_eq!(d.udp(&query).await.rcode(), ResponseCode::NXDomain);
    assert_eq!(d.udp(&query).await.rcode(), ResponseCode::NXDomain);
    assert_eq!(asked(&d, zone::SHORT_NXDOMAIN, RecordType::TXT), 1, "a hit");
    tokio::time::sleep(PAST_ONE_SECOND).await;
    assert_eq!(d.udp(&query).await.rcode(), ResponseCode::NXDomain);
    assert_eq!(
        asked(&d, zone::SHORT_NXDOMAIN, RecordType::TXT),
        2,
        "kept past min(SOA TTL, MINIMUM)"
    );
}

#[tokio::test]
async fn nodata_is_cached_for_the_soa_negative_ttl() {
    // SOA TTL 1, MINIMUM 3600: RFC 2308 §5 negative TTL 1 s.
    let d = Dns64d::start("").await;
    let query = q(zone::SHORT_NODATA, RecordType::MX);
    let first = d.udp(&query).await;
    assert_eq!(first.rcode(), ResponseCode::NoError);
    assert!(first.msg.answers.is_empty(), "NODATA: {:?}", first.msg);
    d.udp(&query).await;
    assert_eq!(asked(&d, zone::SHORT_NODATA, RecordType::MX), 1, "a hit");
    tokio::time::sleep(PAST_ONE_SECOND).await;
    d.udp(&query).await;
    assert_eq!(
        asked(&d, zone::SHORT_NODATA, RecordType::MX),
        2,
        "kept past min(SOA TTL, MINIMUM)"
    );
}

#[tokio::test]
async fn a_negative_answer_is_kept_no_longer_than_negative_max_ttl() {
    let d = Dns64d::start("[cache]\nnegative_max_ttl = 1").await;
    // Negative TTL 3600 from the zone SOA.
    let query = q(zone::MISSING, RecordType::TXT);
    d.udp(&query).await;
    d.udp(&query).await;
    assert_eq!(asked(&d, zone::MISSING, RecordType::TXT), 1, "a hit");
    tokio::time::sleep(PAST_ONE_SECOND).await;
    assert_eq!(d.udp(&query).await.rcode(), ResponseCode::NXDomain);
    assert_eq!(asked(&d, zone::MISSING, RecordType::TXT), 2);
}

#[tokio::test]
async fn a_positive_answer_is_kept_no_longer_than_max_ttl() {
    let d = Dns64d::start("[cache]\nmax_ttl = 1").await;
    let query = q(zone::DUAL, RecordType::TXT);
    d.udp(&query).await;
    d.udp(&query).await;
    assert_eq!(asked(&d, zone::DUAL, RecordType::TXT), 1, "a hit");
    tokio::time::sleep(PAST_ONE_SECOND).await;
    d.udp(&query).await;
    assert_eq!(asked(&d, zone::DUAL, RecordType::TXT), 2);
}

#[tokio::test]
async fn an_answer_with_a_short_ttl_is_kept_at_least_min_ttl() {
    let d = Dns64d::start("[cache]\nmin_ttl = 60").await;
    let query = q(zone::SHORT_TTL, RecordType::TXT);
    assert_eq!(d.udp(&query).await.ttls(), vec![1], "the fixture TTL");
    tokio::time::sleep(PAST_ONE_SECOND).await;
    let later = d.udp(&query).await;
    assert_eq!(later.answers_of(RecordType::TXT).len(), 1);
    assert_eq!(asked(&d, zone::SHORT_TTL, RecordType::TXT), 1, "a hit");
}

#[tokio::test]
async fn servfail_is_cached_no_longer_than_servfail_ttl() {
    let d = Dns64d::start("[cache]\nservfail_ttl = 1").await;
    let query = q(zone::BROKEN, RecordType::TXT);
    assert_eq!(d.udp(&query).await.rcode(), ResponseCode::ServFail);
    let after_one = asked(&d, zone::BROKEN, RecordType::TXT);
    assert!(after_one >= 1);
    assert_eq!(d.udp(&query).await.rcode(), ResponseCode::ServFail);
    assert_eq!(
        asked(&d, zone::BROKEN, RecordType::TXT),
        after_one,
        "SERVFAIL is cached briefly (RFC 2308 §7)"
    );
    tokio::time::sleep(PAST_ONE_SECOND).await;
    assert_eq!(d.udp(&query).await.rcode(), ResponseCode::ServFail);
    assert!(
        asked(&d, zone::BROKEN, RecordType::TXT) > after_one,
        "SERVFAIL still cached after servfail_ttl = 1"
    );
}

// ---- entries that must never be shared ----

#[tokio::test]
async fn an_answer_to_a_do_query_is_not_served_to_a_query_without_do() {
    // Plain clients, so the RRSIG reaches the client untouched.
    let d = Dns64d::start("[dns64]\nclients = [\"10.0.0.0/8\"]").await;
    let with_do = d.udp(&q(zone::SIGNED, RecordType::A).dnssec_ok()).await;
    assert_eq!(
        with_do.answers_of(RecordType::RRSIG).len(),
        1,
        "{with_do:?}"
    );
    let without = d.udp(&q(zone::SIGNED, RecordType::A).edns(1232)).await;
    assert_eq!(without.a(), vec![zone::SIGNED_A]);
    assert!(
        without.answers_of(RecordType::RRSIG).is_empty(),
        "a DO=1 answer served to DO=0: {:?}",
        without.msg
    );
    assert_eq!(asked(&d, zone::SIGNED, RecordType::A), 2);
}

#[tokio::test]
async fn an_answer_to_a_do_cd_query_is_not_served_to_a_query_without_cd() {
    let d = Dns64d::start("").await;
    // §5.5: DO+CD passes through unsynthesized: NODATA for an A-only name.
    let validating = d
        .udp(&q(zone::A_ONLY, RecordType::AAAA).dnssec_ok().cd())
        .await;
    assert!(validating.aaaa().is_empty(), "{:?}", validating.msg);
    let plain = d.udp(&q(zone::A_ONLY, RecordType::AAAA).dnssec_ok()).await;
    assert_eq!(
        plain.aaaa(),
        a_only_synthesized(),
        "the DO+CD answer was served to a CD=0 query"
    );
}

/// 127.0.0.1 is a trusted forwarder, not a DNS64 client itself; the client is
/// the address in its ECS option: [`POD`] is a DNS64 client, [`OUTSIDER`] is not.
const BEHIND_FORWARDER: &str = r#"
    [server]
    allow = ["127.0.0.0/8", "2001:db8::/32"]
    trusted_forwarders = ["127.0.0.0/8"]
    [dns64]
    clients = ["2001:db8:aaaa::/48"]"#;
const POD: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xaaaa, 1, 0, 0, 0, 0);
const OUTSIDER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xbbbb, 1, 0, 0, 0, 0);

#[tokio::test]
async fn a_plain_clients_a_answer_is_never_served_to_a_dns64_client() {
    let d = Dns64d::start(BEHIND_FORWARDER).await;
    let plain = d
        .udp(&q(zone::A_ONLY, RecordType::A).ecs(IpAddr::V6(OUTSIDER), 64))
        .await;
    assert_eq!(
        plain.a().len(),
        zone::A_ONLY_ADDRS.len(),
        "plain forwarding"
    );
    for reply in [
        d.udp(&q(zone::A_ONLY, RecordType::A).ecs(IpAddr::V6(POD), 64))
            .await,
        d.tcp(&q(zone::A_ONLY, RecordType::A).ecs(IpAddr::V6(POD), 64))
            .await,
    ] {
        assert_eq!(reply.rcode(), ResponseCode::NoError);
        assert_no_a(&reply);
    }
}

#[tokio::test]
async fn a_dns64_clients_synthesized_answer_is_never_served_to_a_plain_client() {
    let d = Dns64d::start(BEHIND_FORWARDER).await;
    let pod = d
        .udp(&q(zone::A_ONLY, RecordType::AAAA).ecs(IpAddr::V6(POD), 64))
        .await;
    assert_eq!(pod.aaaa(), a_only_synthesized());
    let plain = d
        .udp(&q(zone::A_ONLY, RecordType::AAAA).ecs(IpAddr::V6(OUTSIDER), 64))
        .await;
    assert!(
        plain.aaaa().is_empty(),
        "synthesized AAAA served to a plain client: {:?}",
        plain.msg
    );
}

#[tokio::test]
async fn a_reload_from_filter_a_pass_to_strip_serves_no_cached_a_record() {
    let d = Dns64d::start("[filter]\na = \"pass\"").await;
    let passed = d.udp(&q(zone::A_ONLY, RecordType::A)).await;
    assert_eq!(passed.a().len(), zone::A_ONLY_ADDRS.len());
    let strip = crate::support::config_toml(d.upstream.addr(), "[filter]\na = \"strip\"");
    d.handle.apply(parse_config(&strip)).expect("reload");
    for reply in [
        d.udp(&q(zone::A_ONLY, RecordType::A)).await,
        d.tcp(&q(zone::A_ONLY, RecordType::A)).await,
    ] {
        assert_no_a(&reply);
    }
}

// ---- serve-stale (RFC 8767) ----

#[tokio::test]
async fn an_expired_answer_is_served_stale_with_ttl_30_when_upstream_stops_answering() {
    let d = Dns64d::start(&format!("{QUICK_FAILURE}\n[cache]\nmax_ttl = 1")).await;
    let query = q(zone::A_ONLY, RecordType::AAAA);
    assert_eq!(d.udp(&query).await.aaaa(), a_only_synthesized());
    tokio::time::sleep(PAST_ONE_SECOND).await;
    d.upstream.on_all(None, Action::Drop);
    let stale = d.udp(&query).await;
    assert_eq!(stale.rcode(), ResponseCode::NoError);
    assert_eq!(stale.aaaa(), turned(a_only_synthesized(), 1));
    assert!(
        stale.ttls().iter().all(|&t| t == 30),
        "stale TTL (cache.stale_ttl default 30): {:?}",
        stale.ttls()
    );
    assert_eq!(d.counter(names::CACHE_STALE), 1);
}

#[tokio::test]
async fn a_stale_answer_comes_within_glibcs_5_s_timeout_under_default_upstream_timeouts() {
    // upstream.timeout and upstream.attempts at their defaults (2 s, 2). RFC 8767
    // §5 suggests answering stale after about 1.8 s; glibc gives up after 5 s.
    let d = Dns64d::start(
        r#"[upstream]
        timeout = "2s"
        attempts = 2
        [cache]
        max_ttl = 1"#,
    )
    .await;
    let query = q(zone::A_ONLY, RecordType::AAAA);
    assert_eq!(d.udp(&query).await.aaaa(), a_only_synthesized());
    tokio::time::sleep(PAST_ONE_SECOND).await;
    d.upstream.on_all(None, Action::Drop);
    let started = std::time::Instant::now();
    let raw = crate::support::client::udp_maybe(d.addr, &query.bytes(), Duration::from_secs(5))
        .await
        .unwrap_or_else(|| {
            panic!(
                "no answer within 5 s (the stale entry was there; asked upstream {} times)",
                d.upstream.total_received()
            )
        });
    let stale = Reply::parse(raw);
    assert_eq!(
        stale.aaaa(),
        turned(a_only_synthesized(), 1),
        "after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn with_serve_stale_off_an_expired_answer_gives_servfail_when_upstream_stops_answering() {
    let d = Dns64d::start(&format!(
        "{QUICK_FAILURE}\n[cache]\nmax_ttl = 1\nserve_stale = false"
    ))
    .await;
    let query = q(zone::A_ONLY, RecordType::AAAA).edns(1232);
    assert_eq!(d.udp(&query).await.aaaa(), a_only_synthesized());
    tokio::time::sleep(PAST_ONE_SECOND).await;
    d.upstream.on_all(None, Action::Drop);
    let reply = d.udp(&query).await;
    assert_eq!(reply.rcode(), ResponseCode::ServFail);
    assert!(reply.ede_codes().contains(&22), "{:?}", reply.msg.edns);
    assert_eq!(d.counter(names::CACHE_STALE), 0);
}

#[tokio::test]
async fn an_answer_expired_longer_than_stale_max_age_is_not_served_stale() {
    let d = Dns64d::start(&format!(
        "{QUICK_FAILURE}\n[cache]\nmax_ttl = 1\nstale_max_age = \"1s\""
    ))
    .await;
    let query = q(zone::DUAL, RecordType::TXT).edns(1232);
    d.udp(&query).await;
    // Lifetime 1 s, then 1 s of serve-stale window, with margin.
    tokio::time::sleep(PAST_ONE_SECOND * 2).await;
    d.upstream.on_all(None, Action::Drop);
    let reply = d.udp(&query).await;
    assert_eq!(reply.rcode(), ResponseCode::ServFail, "{:?}", reply.msg);
    assert_eq!(d.counter(names::CACHE_STALE), 0);
}

#[tokio::test]
async fn an_expired_answer_is_not_served_stale_while_upstream_answers() {
    let d = Dns64d::start("[cache]\nmax_ttl = 1").await;
    let query = q(zone::DUAL, RecordType::TXT);
    d.udp(&query).await;
    tokio::time::sleep(PAST_ONE_SECOND).await;
    let fresh = d.udp(&query).await;
    assert_eq!(fresh.ttls(), vec![300], "a fresh upstream answer");
    assert_eq!(asked(&d, zone::DUAL, RecordType::TXT), 2);
    assert_eq!(d.counter(names::CACHE_STALE), 0);
}

// ---- what a hit echoes ----

#[tokio::test]
async fn a_cache_hit_echoes_the_id_rd_and_question_case_of_the_query_it_answers() {
    let d = Dns64d::start("").await;
    d.udp(&q("a-only.example.", RecordType::AAAA).id(0x1111))
        .await;
    let second = q("A-oNlY.ExAmPlE.", RecordType::AAAA).id(0x2222).rd(false);
    let reply = d.udp(&second).await;
    assert_eq!(asked(&d, zone::A_ONLY, RecordType::AAAA), 1, "a hit");
    assert_eq!(reply.id(), 0x2222);
    assert!(!reply.msg.metadata.recursion_desired, "RD echoed");
    assert_eq!(reply.question_bytes(), question_bytes(&second.bytes()));
    assert_eq!(reply.aaaa(), turned(a_only_synthesized(), 1));
}

fn many_synthesized() -> Vec<Ipv6Addr> {
    (0..zone::MANY_COUNT)
        .map(|i| wkp(Ipv4Addr::new(192, 0, 2, 100 + i)))
        .collect()
}

/// `reply` is render `turn` of the MANY entry cut to 512 octets.
#[track_caller]
fn assert_cut_to_512(reply: &Reply, turn: usize) {
    assert!(reply.tc(), "TC=1");
    assert!(reply.raw.len() <= 512, "{} bytes", reply.raw.len());
    let got = reply.aaaa();
    assert!(!got.is_empty(), "whole records that fit");
    assert_eq!(
        got,
        turned(many_synthesized(), turn)[..got.len()],
        "in order"
    );
    assert!(reply.raw.len() + 28 > 512, "room left for another AAAA");
}

#[tokio::test]
async fn a_hit_over_udp_for_a_client_without_edns_is_truncated_with_whole_records() {
    let d = Dns64d::start("").await;
    let full = d.tcp(&q(zone::MANY, RecordType::AAAA)).await;
    assert_eq!(full.aaaa(), many_synthesized());
    let cut = d.udp(&q(zone::MANY, RecordType::AAAA)).await;
    assert_eq!(asked(&d, zone::MANY, RecordType::AAAA), 1, "a hit");
    assert_cut_to_512(&cut, 1);
}

#[tokio::test]
async fn a_truncated_udp_answer_is_cached_whole_for_the_next_tcp_query() {
    let d = Dns64d::start("").await;
    assert_cut_to_512(&d.udp(&q(zone::MANY, RecordType::AAAA)).await, 0);
    let full = d.tcp(&q(zone::MANY, RecordType::AAAA)).await;
    assert_eq!(asked(&d, zone::MANY, RecordType::AAAA), 1, "a hit");
    assert!(!full.tc());
    assert_eq!(full.aaaa(), turned(many_synthesized(), 1));
}

// ---- prefetch (`cache.prefetch`) ----

/// TTL of the prefetch tests' names: its last 10% (the prefetch window) is a
/// second wide, room for a loaded machine on either side of the hit aimed at.
const PREFETCH_TTL: u32 = 10;

/// Inside the last 10% of a `PREFETCH_TTL` lifetime, half a second from each edge.
const IN_PREFETCH_WINDOW: Duration = Duration::from_millis(9500);

fn txt_answer(d: &Dns64d, name: &str) {
    use hickory_proto::rr::rdata::TXT;
    use hickory_proto::rr::{Name, RData, Record};
    let owner = Name::from_ascii(name).unwrap();
    let rdata = RData::TXT(TXT::new(vec!["prefetched".into()]));
    let record = Record::from_rdata(owner, PREFETCH_TTL, rdata);
    d.upstream.set_answer(name, RecordType::TXT, vec![record]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_popular_entry_asked_for_near_expiry_is_refreshed_before_any_client_misses() {
    let d = Dns64d::start("").await;
    let name = "popular.prefetch.example.";
    txt_answer(&d, name);
    let started = std::time::Instant::now();
    // One miss, then enough hits to make the entry popular.
    for _ in 0..4 {
        assert_eq!(
            d.udp(&q(name, RecordType::TXT)).await.rcode(),
            ResponseCode::NoError
        );
    }
    assert_eq!(asked(&d, name, RecordType::TXT), 1);
    assert_eq!(d.counter(names::PREFETCH), 0, "not near expiry yet");
    tokio::time::sleep(IN_PREFETCH_WINDOW.saturating_sub(started.elapsed())).await;
    let near_expiry = d.udp(&q(name, RecordType::TXT)).await;
    assert_eq!(near_expiry.rcode(), ResponseCode::NoError);
    d.settles(names::PREFETCH, 1).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while asked(&d, name, RecordType::TXT) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no background refresh reached upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Past the old entry's expiry: the refreshed entry answers, no miss.
    let misses = d.counter(names::CACHE_MISSES);
    tokio::time::sleep(
        Duration::from_millis(u64::from(PREFETCH_TTL) * 1000 + 500)
            .saturating_sub(started.elapsed()),
    )
    .await;
    let after_expiry = d.udp(&q(name, RecordType::TXT)).await;
    assert_eq!(after_expiry.rcode(), ResponseCode::NoError);
    assert_eq!(
        d.counter(names::CACHE_MISSES),
        misses,
        "the client saw a miss"
    );
    assert_eq!(asked(&d, name, RecordType::TXT), 2, "exactly one refresh");
    assert_eq!(d.counter(names::PREFETCH), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unique_names_near_expiry_triggers_no_prefetch() {
    let d = Dns64d::start("").await;
    let names_: Vec<String> = (0..50).map(|i| format!("u{i}.flood.example.")).collect();
    for n in &names_ {
        txt_answer(&d, n);
    }
    let started = std::time::Instant::now();
    for n in &names_ {
        d.udp(&q(n, RecordType::TXT)).await;
    }
    tokio::time::sleep(IN_PREFETCH_WINDOW.saturating_sub(started.elapsed())).await;
    // Each name asked again inside its prefetch window: one hit is not popular.
    let hits = d.counter(names::CACHE_HITS);
    for n in &names_ {
        d.udp(&q(n, RecordType::TXT)).await;
    }
    assert_eq!(
        d.counter(names::CACHE_HITS),
        hits + 50,
        "all answered from the cache"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(d.counter(names::PREFETCH), 0);
    for n in &names_ {
        assert_eq!(asked(&d, n, RecordType::TXT), 1, "{n} was refreshed");
    }
}

#[tokio::test]
async fn prefetch_off_lets_a_popular_entry_expire() {
    let d = Dns64d::start("[cache]\nprefetch = false").await;
    let name = "popular.prefetch.example.";
    txt_answer(&d, name);
    let started = std::time::Instant::now();
    for _ in 0..4 {
        d.udp(&q(name, RecordType::TXT)).await;
    }
    tokio::time::sleep(IN_PREFETCH_WINDOW.saturating_sub(started.elapsed())).await;
    d.udp(&q(name, RecordType::TXT)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(d.counter(names::PREFETCH), 0);
    assert_eq!(asked(&d, name, RecordType::TXT), 1);
}
