//! The runtime models replayed over every lab scenario (tests/lab/runtimes.sh)
//! and held to what the real clients did there: the defaults in
//! `runtimes.sh` (what glibc does) and every line of `runtimes.expect` (where
//! a runtime differs). A model change that the lab did not observe, or a lab
//! observation no model explains, fails here.

use std::net::IpAddr;

use hickory_proto::rr::RecordType;
use ipnet::Ipv6Net;

use super::runtime::{self, ALL, Inputs, Outcome, Runtime};
use super::*;

const RUNTIMES_SH: &str = include_str!("../../tests/lab/runtimes.sh");
const RUNTIMES_EXPECT: &str = include_str!("../../tests/lab/runtimes.expect");
/// The pod's gai.conf in `pass-gai-v4` (`PREFER_V4_SCOPE_GAI` in run.sh).
const PREFER_V4_SCOPE_GAI: &str =
    "precedence ::ffff:0:0/96 100\nscopev4 ::ffff:169.254.0.0/112 14\n";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn wkp() -> Vec<Ipv6Net> {
    vec!["64:ff9b::/96".parse().unwrap()]
}

/// The lab pod's addresses (tests/lab/README.md, topology).
fn pod() -> Vec<Source> {
    vec![
        Source::parse("2001:db8:1::10/64").unwrap(),
        Source::parse("169.254.172.10/22").unwrap(),
    ]
}

fn exchange(qtype: RecordType, rcode: &str, addrs: &[IpAddr], udp: Option<usize>) -> Exchange {
    Exchange {
        server: "[2001:db8:1::64]:53".parse().unwrap(),
        round: 0,
        qtype,
        rcode: rcode.into(),
        truncated: udp.is_some(),
        udp_addresses: udp.unwrap_or(0),
        answers: addrs
            .iter()
            .map(|a| AnswerRecord {
                name: "x.example.".into(),
                rtype: if a.is_ipv4() { "A" } else { "AAAA" }.into(),
                ttl: 60,
                data: a.to_string(),
                addr: Some(*a),
            })
            .collect(),
        negative_ttl: None,
        error: None,
    }
}

/// The synthesized address of `v4` under 64:ff9b::/96.
fn syn(v4: IpAddr) -> IpAddr {
    let IpAddr::V4(v4) = v4 else { unreachable!() };
    let [a, b, c, d] = v4.octets();
    IpAddr::V6(std::net::Ipv6Addr::new(
        0x64,
        0xff9b,
        0,
        0,
        0,
        0,
        u16::from_be_bytes([a, b]),
        u16::from_be_bytes([c, d]),
    ))
}

/// What the pod's resolver answered in one lab scenario: the A and AAAA
/// exchanges, the gai.conf, and whether a search candidate was NODATA.
struct Case {
    exchanges: Vec<Exchange>,
    gai: PolicyTable,
    nodata_candidate_first: bool,
}

fn case(scenario: &str, resolver: &str) -> Case {
    use RecordType::{A, AAAA};
    let plain = resolver == "plain";
    let one = |v4: &str| {
        let v4 = ip(v4);
        if plain {
            vec![
                exchange(A, "NOERROR", &[v4], None),
                exchange(AAAA, "NOERROR", &[], None),
            ]
        } else {
            vec![
                exchange(A, "NOERROR", &[], None),
                exchange(AAAA, "NOERROR", &[syn(v4)], None),
            ]
        }
    };
    let both = || {
        let v4 = ip("203.0.113.80");
        vec![
            exchange(A, "NOERROR", &[v4], None),
            exchange(AAAA, "NOERROR", &[syn(v4)], None),
        ]
    };
    let mut c = Case {
        exchanges: Vec::new(),
        gai: PolicyTable::glibc(),
        nodata_candidate_first: false,
    };
    c.exchanges = match scenario {
        "search-nx" | "ecs-forwarder" => one("203.0.113.80"),
        "classic-pass" => both(),
        "pass-gai-v4" => {
            c.gai = PolicyTable::glibc_with_gai_conf(PREFER_V4_SCOPE_GAI).0;
            both()
        }
        "search-nodata" => {
            c.nodata_candidate_first = true;
            one("203.0.113.81")
        }
        "tc-512" => {
            // many.example: 40 A records from 203.0.113.64. knotd's TC=1
            // reply carries no records; dns64d's keeps the 17 that fit.
            let v4: Vec<IpAddr> = (64..104).map(|i| ip(&format!("203.0.113.{i}"))).collect();
            if plain {
                vec![
                    exchange(A, "NOERROR", &v4, Some(0)),
                    exchange(AAAA, "NOERROR", &[], None),
                ]
            } else {
                let v6: Vec<IpAddr> = v4.iter().map(|a| syn(*a)).collect();
                vec![
                    exchange(A, "NOERROR", &[], None),
                    exchange(AAAA, "NOERROR", &v6, Some(17)),
                ]
            }
        }
        "aaaa-servfail" if plain => vec![
            exchange(A, "NOERROR", &[ip("203.0.113.82")], None),
            exchange(AAAA, "SERVFAIL", &[], None),
        ],
        // dns64d synthesizes from the A record (RFC 6147 §5.1.2) and
        // answers the A query NODATA.
        "aaaa-servfail" => one("203.0.113.82"),
        other => panic!("scenario {other} has no case here: add one"),
    };
    c
}

fn picked(rt: Runtime, c: &Case) -> runtime::Pick {
    let addrs = collected_addresses(&c.exchanges);
    let dests: Vec<Dest> = addrs
        .iter()
        .map(|&a| Dest {
            addr: a,
            source: select_source(a, &pod(), &PolicyTable::rfc6724()),
        })
        .collect();
    runtime::pick(
        rt,
        &Inputs {
            exchanges: &c.exchanges,
            dests: &dests,
            gai_table: &c.gai,
            prefixes: &wkp(),
            nodata_candidate_first: c.nodata_candidate_first,
        },
    )
}

/// `runtime|scenario|resolver|first|connect`, trimmed, from a line of
/// runtimes.expect or of EXPECT_DEFAULT in runtimes.sh.
fn fields(line: &str) -> Option<[String; 5]> {
    let f: Vec<String> = line
        .trim()
        .trim_matches('"')
        .split('|')
        .map(|s| s.trim().to_string())
        .collect();
    (f.len() >= 5).then(|| [0, 1, 2, 3, 4].map(|i| f[i].clone()))
}

fn expectations() -> Vec<[String; 5]> {
    let specific = RUNTIMES_EXPECT
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter_map(fields);
    let defaults = RUNTIMES_SH
        .split("EXPECT_DEFAULT=(")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("runtimes.sh has EXPECT_DEFAULT")
        .lines()
        .filter_map(fields);
    specific.chain(defaults).collect()
}

/// The lab's `expect_for`: a line naming the runtime wins over a `*` line,
/// and runtimes.expect over the defaults.
fn expected(all: &[[String; 5]], rt: &str, scenario: &str, resolver: &str) -> (String, String) {
    for want in [rt, "*"] {
        if let Some(e) = all
            .iter()
            .find(|e| e[0] == want && e[1] == scenario && e[2] == resolver)
        {
            return (e[3].clone(), e[4].clone());
        }
    }
    panic!("no expectation for {rt} {scenario} {resolver}");
}

/// The lab's scenarios and the resolvers each runs through (SCENARIOS in
/// runtimes.sh: a `-` plain resolver means dns64d only).
fn scenarios() -> Vec<(String, Vec<&'static str>)> {
    RUNTIMES_SH
        .split("SCENARIOS=(")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("runtimes.sh has SCENARIOS")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().trim_matches('"').split('|').collect();
            (f.len() >= 4).then(|| {
                let resolvers = if f[2] == "-" {
                    vec!["dns64d"]
                } else {
                    vec!["plain", "dns64d"]
                };
                (f[0].to_string(), resolvers)
            })
        })
        .collect()
}

#[test]
fn every_runtime_model_picks_what_the_lab_observed_in_every_scenario() {
    let all = expectations();
    let scenarios = scenarios();
    assert!(scenarios.len() >= 7, "{scenarios:?}");
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (scenario, resolvers) in &scenarios {
        for resolver in resolvers {
            let c = case(scenario, resolver);
            for rt in ALL {
                let (first, connect) = expected(&all, rt.name(), scenario, resolver);
                let p = picked(rt, &c);
                let got_first = match p.first() {
                    None => "none",
                    Some(a) if in_prefixes(a, &wkp()) => "nat64",
                    Some(a) if a.is_ipv4() => "v4",
                    Some(_) => "v6",
                };
                let got_connect = match p.outcome {
                    Outcome::Nat64 | Outcome::Nat64AfterFallback => "ok",
                    Outcome::Outside => "timeout",
                    Outcome::NoAddress(_) => "skip",
                };
                checked += 1;
                // `skip`: the lab only resolved; the first pick still counts.
                if got_first != first || (connect != "skip" && got_connect != connect) {
                    wrong.push(format!(
                        "{} {scenario} {resolver}: lab {first}/{connect}, model {got_first}/{got_connect} ({:?})",
                        rt.name(),
                        p.why
                    ));
                }
            }
        }
    }
    assert_eq!(checked, 12 * 12, "runtimes × (scenario, resolver) pairs");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn java_puts_the_a_record_first_under_classic_dns64() {
    let p = picked(Runtime::Java, &case("classic-pass", "dns64d"));
    assert_eq!(p.first(), Some(ip("203.0.113.80")));
    assert_eq!(p.outcome, Outcome::Outside);
}

#[test]
fn musl_keeps_the_addresses_that_fitted_when_the_reply_is_truncated() {
    let p = picked(Runtime::Musl, &case("tc-512", "dns64d"));
    assert_eq!(p.order.len(), 17);
    let glibc = picked(Runtime::Glibc, &case("tc-512", "dns64d"));
    assert_eq!(glibc.order.len(), 40, "glibc retries over TCP");
}

#[test]
fn musl_fails_the_whole_lookup_when_the_aaaa_query_fails() {
    let p = picked(Runtime::Musl, &case("aaaa-servfail", "plain"));
    assert_eq!(p.outcome, Outcome::NoAddress("EAI_AGAIN"));
}

#[test]
fn go_ignores_gai_conf_and_node_falls_back_to_the_nat64_address() {
    let c = case("pass-gai-v4", "dns64d");
    assert_eq!(picked(Runtime::Go, &c).outcome, Outcome::Nat64);
    let node = picked(Runtime::Node, &c);
    assert_eq!(node.first(), Some(ip("203.0.113.80")));
    assert_eq!(node.outcome, Outcome::Nat64AfterFallback);
}

#[test]
fn java_with_the_ipv4_stack_gets_nothing_once_a_records_are_stripped() {
    let p = picked(Runtime::JavaV4Stack, &case("search-nx", "dns64d"));
    assert_eq!(p.outcome, Outcome::NoAddress("UnknownHostException"));
}

#[test]
fn runtime_families_expand_and_unknown_names_are_refused() {
    let got = runtime::parse(&["go,java".into()]).unwrap();
    assert_eq!(
        got,
        [Runtime::Go, Runtime::GoCgo, Runtime::Java, Runtime::JavaV6]
    );
    let all = runtime::parse(&[]).unwrap();
    assert_eq!(all.len(), 11);
    assert!(!all.contains(&Runtime::JavaV4Stack), "only by name");
    assert_eq!(
        runtime::parse(&["java-v4stack".into()]).unwrap(),
        [Runtime::JavaV4Stack]
    );
    let e = runtime::parse(&["perl".into()]).unwrap_err();
    assert!(e.contains("\"perl\""), "{e}");
}

#[test]
fn a_runtime_that_would_leave_outside_the_nat64_makes_the_verdict_bad() {
    let c = case("search-nx", "dns64d");
    let picks: Vec<_> = [Runtime::Go, Runtime::JavaV4Stack]
        .into_iter()
        .map(|r| picked(r, &c))
        .collect();
    let mut v = Assessment {
        good: true,
        warnings: Vec::new(),
        needs_tcp: false,
    };
    judge_runtimes(&mut v, &picks[..1]);
    assert!(v.good, "go reaches the NAT64: {:?}", v.warnings);
    judge_runtimes(&mut v, &picks);
    assert!(!v.good);
    assert!(v.warnings[0].contains("java-v4stack"), "{:?}", v.warnings);
}
