use super::gai_conf::parse_scopev4;
use super::*;
use hickory_proto::op::ResponseCode;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn src(s: &str) -> Source {
    Source::parse(s).unwrap()
}

/// Sorts `dests` with sources picked from `candidates` (RFC 6724 §5).
fn order(
    flavour: Flavour,
    table: &PolicyTable,
    candidates: &[Source],
    dests: &[&str],
) -> Vec<String> {
    let ds: Vec<Dest> = dests
        .iter()
        .map(|d| Dest {
            addr: ip(d),
            source: select_source(ip(d), candidates, &PolicyTable::rfc6724()),
        })
        .collect();
    sort_destinations(&ds, flavour, table)
        .iter()
        .map(|d| d.addr.to_string())
        .collect()
}

/// Both input orders must give the RFC's result (rule 10 must not decide).
fn rfc(candidates: &[Source], dests: [&str; 2], expected: [&str; 2]) {
    let t = PolicyTable::rfc6724();
    assert_eq!(
        order(Flavour::Rfc6724, &t, candidates, &dests),
        expected,
        "{dests:?}"
    );
    let rev = [dests[1], dests[0]];
    assert_eq!(
        order(Flavour::Rfc6724, &t, candidates, &rev),
        expected,
        "{rev:?}"
    );
}

// RFC 6724 §10.2, the nine examples, in the RFC's order.

#[test]
fn rfc6724_10_2_prefer_matching_scope_with_a_link_local_ipv4_source() {
    rfc(
        &[src("2001:db8:1::2"), src("fe80::1"), src("169.254.13.78")],
        ["2001:db8:1::1", "198.51.100.121"],
        ["2001:db8:1::1", "198.51.100.121"],
    );
}

#[test]
fn rfc6724_10_2_prefer_matching_scope_with_only_a_link_local_ipv6_source() {
    rfc(
        &[src("fe80::1"), src("198.51.100.117")],
        ["2001:db8:1::1", "198.51.100.121"],
        ["198.51.100.121", "2001:db8:1::1"],
    );
}

#[test]
fn rfc6724_10_2_prefer_higher_precedence_ipv6_over_ipv4() {
    rfc(
        &[src("2001:db8:1::2"), src("fe80::1"), src("10.1.2.4")],
        ["2001:db8:1::1", "10.1.2.3"],
        ["2001:db8:1::1", "10.1.2.3"],
    );
}

#[test]
fn rfc6724_10_2_prefer_smaller_scope() {
    rfc(
        &[src("2001:db8:1::2"), src("fe80::2")],
        ["2001:db8:1::1", "fe80::1"],
        ["fe80::1", "2001:db8:1::1"],
    );
}

#[test]
fn rfc6724_10_2_prefer_home_address() {
    let care = Source {
        care_of: true,
        ..src("2001:db8:1::2")
    };
    let home = Source {
        home: true,
        ..src("2001:db8:3::1")
    };
    let ll = Source {
        care_of: true,
        ..src("fe80::2")
    };
    let cands = [care, home.clone(), ll];
    rfc(
        &cands,
        ["2001:db8:1::1", "fe80::1"],
        ["2001:db8:1::1", "fe80::1"],
    );
    let picked = select_source(ip("2001:db8:1::1"), &cands, &PolicyTable::rfc6724());
    assert_eq!(
        picked.map(|s| s.addr),
        Some(home.addr),
        "source rule 4 picks the home address"
    );
}

#[test]
fn rfc6724_10_2_avoid_deprecated_addresses() {
    let ll = Source {
        deprecated: true,
        ..src("fe80::2")
    };
    rfc(
        &[src("2001:db8:1::2"), ll],
        ["2001:db8:1::1", "fe80::1"],
        ["2001:db8:1::1", "fe80::1"],
    );
}

#[test]
fn rfc6724_10_2_longest_matching_prefix() {
    let cands = [
        src("2001:db8:1::2/64"),
        src("2001:db8:3f44::2/64"),
        src("fe80::2/64"),
    ];
    rfc(
        &cands,
        ["2001:db8:1::1", "2001:db8:3ffe::1"],
        ["2001:db8:1::1", "2001:db8:3ffe::1"],
    );
    let picked = select_source(ip("2001:db8:3ffe::1"), &cands, &PolicyTable::rfc6724());
    assert_eq!(picked.map(|s| s.addr), Some(ip("2001:db8:3f44::2")));
}

#[test]
fn rfc6724_10_2_prefer_matching_label() {
    rfc(
        &[src("2002:c633:6401::2"), src("fe80::2")],
        ["2002:c633:6401::1", "2001:db8:1::1"],
        ["2002:c633:6401::1", "2001:db8:1::1"],
    );
}

#[test]
fn rfc6724_10_2_prefer_higher_precedence_over_6to4() {
    rfc(
        &[
            src("2002:c633:6401::2"),
            src("2001:db8:1::2"),
            src("fe80::2"),
        ],
        ["2002:c633:6401::1", "2001:db8:1::1"],
        ["2001:db8:1::1", "2002:c633:6401::1"],
    );
}

#[test]
fn an_unusable_destination_goes_last() {
    let ds = [
        Dest {
            addr: ip("203.0.113.80"),
            source: None,
        },
        Dest {
            addr: ip("64:ff9b::cb00:7150"),
            source: Some(src("2001:db8:1::10")),
        },
    ];
    for f in [Flavour::Rfc6724, Flavour::Glibc, Flavour::Musl] {
        let t = if f == Flavour::Musl {
            PolicyTable::musl()
        } else {
            PolicyTable::glibc()
        };
        assert_eq!(
            sort_destinations(&ds, f, &t)[0].addr,
            ip("64:ff9b::cb00:7150"),
            "{f:?}"
        );
    }
}

// What the lab's real clients picked (tests/lab/run.sh, glibc 2.36 and
// musl 1.2.3): the pod has 2001:db8:1::10/64 and 169.254.172.10/22, the
// name has A 203.0.113.80 and, through classic DNS64, AAAA
// 64:ff9b::cb00:7150. Both libcs collect the A answer first.

fn lab_pod() -> Vec<Source> {
    vec![src("2001:db8:1::10/64"), src("169.254.172.10/22")]
}

const LAB_BOTH: [&str; 2] = ["203.0.113.80", "64:ff9b::cb00:7150"];

#[test]
fn lab_glibc_picks_the_synthesized_aaaa_when_both_families_are_answered() {
    let got = order(Flavour::Glibc, &PolicyTable::glibc(), &lab_pod(), &LAB_BOTH);
    assert_eq!(got, ["64:ff9b::cb00:7150", "203.0.113.80"]);
}

#[test]
fn lab_musl_picks_the_synthesized_aaaa_when_both_families_are_answered() {
    let got = order(Flavour::Musl, &PolicyTable::musl(), &lab_pod(), &LAB_BOTH);
    assert_eq!(got, ["64:ff9b::cb00:7150", "203.0.113.80"]);
}

#[test]
fn lab_glibc_prefer_ipv4_precedence_alone_loses_to_rule_2_on_a_link_local_ipv4_source() {
    let (t, notes) =
        PolicyTable::glibc_with_gai_conf("# prefer IPv4\nprecedence ::ffff:0:0/96 100\n");
    assert!(notes.is_empty());
    assert_eq!(t.precedence_of(ip("203.0.113.80")), 100);
    assert_eq!(
        t.precedence_of(ip("64:ff9b::1")),
        40,
        "the catch-all is added"
    );
    let got = order(Flavour::Glibc, &t, &lab_pod(), &LAB_BOTH);
    assert_eq!(got, ["64:ff9b::cb00:7150", "203.0.113.80"]);
}

#[test]
fn lab_glibc_picks_the_a_record_when_gai_conf_also_makes_169_254_global() {
    let (t, _) = PolicyTable::glibc_with_gai_conf(
        "precedence ::ffff:0:0/96 100\nscopev4 ::ffff:169.254.0.0/112 14\n",
    );
    let got = order(Flavour::Glibc, &t, &lab_pod(), &LAB_BOTH);
    assert_eq!(got, ["203.0.113.80", "64:ff9b::cb00:7150"]);
}

#[test]
fn lab_musl_keeps_dns_order_among_forty_synthesized_addresses() {
    let dests: Vec<String> = (64..=103)
        .map(|i| format!("64:ff9b::cb00:71{i:02x}"))
        .collect();
    let refs: Vec<&str> = dests.iter().map(String::as_str).collect();
    for (f, t) in [
        (Flavour::Musl, PolicyTable::musl()),
        (Flavour::Glibc, PolicyTable::glibc()),
    ] {
        let got = order(f, &t, &lab_pod(), &refs);
        assert_eq!(got, dests, "{f:?}");
    }
}

// Pods with a ULA instead of a global IPv6 address: the label of
// fc00::/7 no longer matches the NAT64 destination's (RFC 6724 rule 5).

#[test]
fn musl_picks_the_a_record_when_the_pod_has_a_ula() {
    let pod = [src("fd00:db8::10/64"), src("169.254.172.10/22")];
    let got = order(Flavour::Musl, &PolicyTable::musl(), &pod, &LAB_BOTH);
    assert_eq!(got, ["203.0.113.80", "64:ff9b::cb00:7150"]);
}

#[test]
fn glibc_keeps_the_aaaa_with_a_ula_while_the_ipv4_source_is_link_local() {
    let pod = [src("fd00:db8::10/64"), src("169.254.172.10/22")];
    let got = order(Flavour::Glibc, &PolicyTable::glibc(), &pod, &LAB_BOTH);
    assert_eq!(
        got,
        ["64:ff9b::cb00:7150", "203.0.113.80"],
        "rule 2 decides"
    );
    let pod = [src("fd00:db8::10/64"), src("192.0.2.10/24")];
    let got = order(Flavour::Glibc, &PolicyTable::glibc(), &pod, &LAB_BOTH);
    assert_eq!(
        got,
        ["203.0.113.80", "64:ff9b::cb00:7150"],
        "rule 5 decides"
    );
}

#[test]
fn musl_does_not_sort_an_ipv4_only_answer() {
    let got = order(
        Flavour::Musl,
        &PolicyTable::musl(),
        &lab_pod(),
        &["203.0.113.9", "198.51.100.1"],
    );
    assert_eq!(got, ["203.0.113.9", "198.51.100.1"]);
}

#[test]
fn musl_treats_ipv4_link_local_as_global_scope_and_glibc_does_not() {
    let t = PolicyTable::glibc();
    assert_eq!(scope_of(ip("169.254.172.10"), Flavour::Glibc, &t), 2);
    assert_eq!(
        scope_of(ip("169.254.172.10"), Flavour::Musl, &PolicyTable::musl()),
        14
    );
    assert_eq!(
        scope_of(
            ip("::ffff:169.254.1.1"),
            Flavour::Rfc6724,
            &PolicyTable::rfc6724()
        ),
        2
    );
}

#[test]
fn glibc_puts_ipv4_below_ipv6_at_precedence_10_and_musl_at_35() {
    assert_eq!(PolicyTable::glibc().precedence_of(ip("192.0.2.1")), 10);
    assert_eq!(PolicyTable::musl().precedence_of(ip("192.0.2.1")), 35);
    assert_eq!(PolicyTable::rfc6724().precedence_of(ip("192.0.2.1")), 35);
    assert_eq!(PolicyTable::glibc().label_of(ip("2001::1")), 7, "Teredo");
    assert_eq!(PolicyTable::glibc().label_of(ip("2001:db8::1")), 1);
}

#[test]
fn gai_conf_label_lines_replace_the_whole_label_table() {
    let (t, notes) =
        PolicyTable::glibc_with_gai_conf("label 2001:db8::/32 9\nbogus line\nlabel ::1 x\n");
    assert_eq!(t.label_of(ip("2001:db8::1")), 9);
    assert_eq!(t.label_of(ip("2002::1")), 1, "the 6to4 row is gone");
    assert_eq!(
        t.precedence,
        PolicyTable::glibc().precedence,
        "precedence untouched"
    );
    assert_eq!(notes.len(), 2);
}

#[test]
fn gai_conf_with_only_comments_is_the_builtin_table() {
    let (t, notes) = PolicyTable::glibc_with_gai_conf("# label ::1/128 0\n#precedence ::/0 40\n\n");
    assert_eq!(t, PolicyTable::glibc());
    assert!(notes.is_empty());
}

#[test]
fn scopev4_accepts_mapped_and_plain_ipv4_forms() {
    assert_eq!(
        parse_scopev4("::ffff:169.254.0.0/112"),
        Some(net4("169.254.0.0/16"))
    );
    assert_eq!(parse_scopev4("10.0.0.0/8"), Some(net4("10.0.0.0/8")));
    assert_eq!(parse_scopev4("::ffff:10.0.0.0/95"), None);
}

#[test]
fn glibc_rule_9_for_ipv4_counts_only_inside_the_source_subnet() {
    let pod = [src("198.51.100.10/24")];
    let got = order(
        Flavour::Glibc,
        &PolicyTable::glibc(),
        &pod,
        &["203.0.113.9", "198.51.100.9"],
    );
    assert_eq!(got, ["198.51.100.9", "203.0.113.9"]);
    let pod = [src("198.51.100.10/28")];
    let got = order(
        Flavour::Glibc,
        &PolicyTable::glibc(),
        &pod,
        &["198.51.100.200", "198.51.100.99"],
    );
    assert_eq!(
        got,
        ["198.51.100.200", "198.51.100.99"],
        "outside the /28: rule 10"
    );
}

fn rec(a: &str) -> AnswerRecord {
    AnswerRecord {
        name: "service.example.".into(),
        rtype: if a.contains(':') { "AAAA" } else { "A" }.into(),
        ttl: 60,
        data: a.into(),
        addr: Some(ip(a)),
    }
}

fn xch(round: u8, qtype: RecordType, answers: &[&str]) -> Exchange {
    Exchange {
        server: "[2001:db8:1::64]:53".parse().unwrap(),
        round,
        qtype,
        rcode: "NOERROR".into(),
        truncated: false,
        udp_addresses: 0,
        answers: answers.iter().map(|a| rec(a)).collect(),
        negative_ttl: None,
        error: None,
    }
}

fn wkp() -> Vec<Ipv6Net> {
    vec![net6("64:ff9b::/96")]
}

#[test]
fn only_synthesized_aaaa_chosen_first_is_a_good_verdict() {
    let xs = [
        xch(0, RecordType::A, &[]),
        xch(0, RecordType::AAAA, &["64:ff9b::cb00:7150"]),
        xch(1, RecordType::A, &[]),
        xch(1, RecordType::AAAA, &["64:ff9b::cb00:7150"]),
    ];
    let first = Some(ip("64:ff9b::cb00:7150"));
    let v = assess(&xs, &[("glibc", first), ("musl", first)], &wkp());
    assert!(v.good, "{:?}", v.warnings);
    assert!(v.warnings.is_empty());
    assert_eq!(collected_addresses(&xs), [ip("64:ff9b::cb00:7150")]);
}

#[test]
fn an_a_answer_makes_the_verdict_bad_even_when_ipv6_is_tried_first() {
    let xs = [
        xch(0, RecordType::A, &["203.0.113.80"]),
        xch(0, RecordType::AAAA, &["64:ff9b::cb00:7150"]),
    ];
    let first = Some(ip("64:ff9b::cb00:7150"));
    let v = assess(&xs, &[("glibc", first), ("musl", first)], &wkp());
    assert!(!v.good);
    assert!(v.warnings[0].starts_with("an IPv4 answer is present"));
    assert_eq!(
        collected_addresses(&xs),
        [ip("203.0.113.80"), ip("64:ff9b::cb00:7150")]
    );
}

#[test]
fn a_first_choice_outside_the_prefix_is_bad() {
    let xs = [xch(0, RecordType::AAAA, &["2001:db8:5::1"])];
    let v = assess(&xs, &[("glibc", Some(ip("2001:db8:5::1")))], &wkp());
    assert!(!v.good);
    assert!(
        v.warnings
            .iter()
            .any(|w| w.contains("outside the NAT64 prefix"))
    );
}

#[test]
fn differing_rounds_and_truncation_are_warned() {
    let mut t = xch(
        0,
        RecordType::AAAA,
        &["64:ff9b::cb00:7150", "64:ff9b::cb00:7151"],
    );
    t.truncated = true;
    t.udp_addresses = 1;
    let xs = [t, xch(1, RecordType::AAAA, &["64:ff9b::cb00:7150"])];
    let first = Some(ip("64:ff9b::cb00:7150"));
    let v = assess(&xs, &[("glibc", first)], &wkp());
    assert!(v.good, "warnings only: {:?}", v.warnings);
    assert!(v.needs_tcp);
    assert!(
        v.warnings
            .iter()
            .any(|w| w == "answers differ between two queries")
    );
    assert!(
        v.warnings
            .iter()
            .any(|w| w.starts_with("the answer needs TCP: musl before 1.2.4"))
    );
}

#[test]
fn if_inet6_gives_prefix_length_and_deprecated_flag() {
    let text = "20010db8000100000000000000000010 02 40 00 a0     eth0\n";
    let mut s = Source::new(ip("2001:db8:1::10"));
    apply_if_inet6(&mut s, "2001:db8:1::10".parse().unwrap(), text);
    assert_eq!(s.prefix_len, Some(64));
    assert!(s.deprecated);
}

#[test]
fn resolver_argument_forms() {
    assert_eq!(
        parse_resolver("2001:db8:1::64").unwrap(),
        "[2001:db8:1::64]:53".parse().unwrap()
    );
    assert_eq!(
        parse_resolver("[2001:db8:1::64]:5353").unwrap().port(),
        5353
    );
    assert_eq!(parse_resolver("192.0.2.53").unwrap().port(), 53);
    assert!(parse_resolver("resolver.example").is_err());
}

#[test]
fn rcodes_are_named_as_dig_names_them() {
    assert_eq!(rcode_name(ResponseCode::NXDomain), "NXDOMAIN");
    assert_eq!(rcode_name(ResponseCode::ServFail), "SERVFAIL");
    assert_eq!(rcode_name(ResponseCode::NotAuth), "RCODE9");
}

#[test]
fn json_strings_are_escaped() {
    assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
}
