use super::*;
use crate::config::Config;
use crate::policy::{Policy, to_wire};
use hickory_proto::op::{MessageType, OpCode};
use hickory_proto::rr::rdata::{A, CNAME, SOA};

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

/// RFC 6052 §2.4, the table itself (192.0.2.33 under each length).
const RFC6052_TABLE: [(&str, &str); 7] = [
    ("2001:db8::/32", "2001:db8:c000:221::"),
    ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
    ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
    ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
    ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
    ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
    ("64:ff9b::/96", "64:ff9b::192.0.2.33"),
];

#[test]
fn embedding_matches_the_rfc6052_table_for_every_prefix_length() {
    let v4: Ipv4Addr = "192.0.2.33".parse().unwrap();
    for (prefix, expected) in RFC6052_TABLE {
        let want: Ipv6Addr = expected.parse().unwrap();
        assert_eq!(p(prefix).embed(v4), want, "{prefix}");
    }
}

#[test]
fn extraction_inverts_the_rfc6052_table() {
    let v4: Ipv4Addr = "192.0.2.33".parse().unwrap();
    for (prefix, expected) in RFC6052_TABLE {
        assert_eq!(
            p(prefix).extract(expected.parse().unwrap()),
            Some(v4),
            "{prefix}"
        );
    }
    assert_eq!(
        p("64:ff9b::/96").extract("2001:db8::1".parse().unwrap()),
        None
    );
}

#[test]
fn u_octet_stays_zero_for_every_length() {
    let v4 = Ipv4Addr::new(255, 255, 255, 255);
    for (prefix, _) in RFC6052_TABLE {
        assert_eq!(p(prefix).embed(v4).octets()[8], 0, "{prefix}");
    }
}

#[test]
fn prefix_lengths_outside_rfc6052_are_rejected() {
    assert!("2001:db8::/44".parse::<Prefix>().is_err());
    assert!("2001:db8::/128".parse::<Prefix>().is_err());
    assert!("2001:db8::1/96".parse::<Prefix>().is_err(), "host bits");
    assert!(
        "2001:db8:0:0:ff00::/96".parse::<Prefix>().is_err(),
        "u octet"
    );
}

/// Synthesis rules plus the policy that picks per-name rules.
struct T {
    d: Dns64,
    p: Policy,
}

impl T {
    fn synthesize(&self, q: &Name, aaaa: Option<&Message>, a: &Message) -> Option<Message> {
        self.d
            .synthesize(&self.p.rules(&to_wire(&q.to_ascii())), q, aaaa, a)
    }
    fn after_aaaa(&self, q: &Name, resp: Option<&Message>) -> AaaaVerdict {
        self.d
            .after_aaaa(self.p.rules(&to_wire(&q.to_ascii())).policy, q, resp)
    }
    fn may_map(&self, v4: Ipv4Addr, p: &Prefix) -> bool {
        self.d.may_map(v4, p)
    }
}

fn rules(extra: &str) -> T {
    let c = Config::from_toml(&format!(
        "[upstream]\nservers=[\"127.0.0.1\"]\n[dns64]\n{extra}"
    ))
    .unwrap();
    T {
        d: Dns64::new(&c.dns64),
        p: Policy::new(&c),
    }
}

fn aaaa(owner: &str, ip: &str) -> Record {
    Record::from_rdata(name(owner), 60, RData::AAAA(AAAA(ip.parse().unwrap())))
}

/// The answer section's RDATA as text, in order.
fn rdata(m: Message) -> Vec<String> {
    m.answers.iter().map(|r| r.data.to_string()).collect()
}

const BOTH: &str = "[[dns64.zone]]\nsuffix = \"both.example.\"\npolicy = \"both\"\n[[dns64.zone]]\nsuffix = \"all.example.\"\npolicy = \"synthesize\"\n";

#[test]
fn both_policy_orders_synthesized_first_by_default_and_native_first_on_request() {
    let native = response(
        ResponseCode::NoError,
        vec![aaaa("x.both.example.", "2001:db8::1")],
        vec![],
    );
    let a_resp = response(
        ResponseCode::NoError,
        vec![a("x.both.example.", 60, "192.0.2.1")],
        vec![],
    );
    let q = name("x.both.example.");
    let t = rules(BOTH);
    assert!(
        matches!(
            t.after_aaaa(&q, Some(&native)),
            AaaaVerdict::Synthesize { .. }
        ),
        "both asks for A"
    );
    let got = rdata(t.synthesize(&q, Some(&native), &a_resp).unwrap());
    assert_eq!(got, vec!["64:ff9b::c000:201", "2001:db8::1"]);
    let t = rules(&format!("order = \"native-first\"\n{BOTH}"));
    let got = rdata(t.synthesize(&q, Some(&native), &a_resp).unwrap());
    assert_eq!(got, vec!["2001:db8::1", "64:ff9b::c000:201"]);
}

#[test]
fn synthesize_policy_drops_native_aaaa() {
    let q = name("x.all.example.");
    let native = response(
        ResponseCode::NoError,
        vec![aaaa("x.all.example.", "2001:db8::1")],
        vec![],
    );
    let a_resp = response(
        ResponseCode::NoError,
        vec![a("x.all.example.", 60, "192.0.2.1")],
        vec![],
    );
    let t = rules(BOTH);
    assert!(matches!(
        t.after_aaaa(&q, Some(&native)),
        AaaaVerdict::Synthesize { .. }
    ));
    let got = rdata(t.synthesize(&q, Some(&native), &a_resp).unwrap());
    assert_eq!(got, vec!["64:ff9b::c000:201"]);
    let mut orig = native.clone();
    t.d.remove_unwanted_aaaa(ZonePolicy::Synthesize, &mut orig);
    assert!(orig.answers.is_empty());
}

/// The reverse name of `v6`, nibble by nibble (RFC 3596 §2.5).
fn reverse(v6: Ipv6Addr) -> Name {
    let hex: Vec<String> = format!("{:032x}", u128::from(v6))
        .chars()
        .rev()
        .map(|c| c.to_string())
        .collect();
    Name::from_ascii(format!("{}.ip6.arpa.", hex.join("."))).unwrap()
}

#[test]
fn ptr_of_a_synthesized_address_points_at_the_ipv4_reverse_name_for_every_prefix_length() {
    let v4: Ipv4Addr = "192.0.2.33".parse().unwrap();
    for (prefix, _) in RFC6052_TABLE {
        let pre = p(prefix);
        let target = ptr_target(&reverse(pre.embed(v4)), &[pre]).unwrap();
        assert_eq!(target, name("33.2.0.192.in-addr.arpa."), "{prefix}");
    }
}

#[test]
fn ptr_outside_every_prefix_or_malformed_is_not_ours() {
    let wkp = [p("64:ff9b::/96")];
    assert_eq!(
        ptr_target(&reverse("2001:db8::1".parse().unwrap()), &wkp),
        None
    );
    assert_eq!(
        ptr_target(&name("1.0.0.2.ip6.arpa."), &wkp),
        None,
        "too few nibbles"
    );
    let bad = reverse(p("64:ff9b::/96").embed([192, 0, 2, 1].into()))
        .to_ascii()
        .replacen('1', "g", 1);
    assert_eq!(ptr_target(&name(&bad), &wkp), None, "non-hex label");
}

#[test]
fn ipv4only_arpa_answers_under_every_prefix() {
    let owner = name("ipv4only.arpa.");
    let prefixes = [p("64:ff9b::/96"), p("2001:db8::/32")];
    let got: Vec<String> = ipv4only_records(&owner, RecordType::AAAA, &prefixes)
        .iter()
        .map(|r| r.data.to_string())
        .collect();
    assert_eq!(
        got,
        vec![
            "64:ff9b::c000:aa",
            "64:ff9b::c000:ab",
            "2001:db8:c000:aa::",
            "2001:db8:c000:ab::"
        ]
    );
    assert_eq!(ipv4only_records(&owner, RecordType::A, &prefixes).len(), 2);
    assert!(is_ipv4only(b"\x08IPv4only\x04ARPA\x00"));
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn response(rcode: ResponseCode, answers: Vec<Record>, authorities: Vec<Record>) -> Message {
    let mut m = Message::new(7, MessageType::Response, OpCode::Query);
    m.metadata.response_code = rcode;
    m.answers = answers;
    m.authorities = authorities;
    m
}

fn a(owner: &str, ttl: u32, ip: &str) -> Record {
    Record::from_rdata(name(owner), ttl, RData::A(A(ip.parse().unwrap())))
}

fn soa(ttl: u32, minimum: u32) -> Record {
    let s = SOA::new(name("ns.example."), name("h.example."), 1, 1, 1, 1, minimum);
    Record::from_rdata(name("example."), ttl, RData::SOA(s))
}

#[test]
fn never_map_and_mapped_limit_what_is_synthesized() {
    let d = rules("mapped = [\"192.0.2.0/24\", \"127.0.0.0/8\"]\n");
    let wkp = p("64:ff9b::/96");
    assert!(d.may_map("192.0.2.1".parse().unwrap(), &wkp));
    assert!(
        !d.may_map("198.51.100.1".parse().unwrap(), &wkp),
        "outside mapped"
    );
    assert!(
        !d.may_map("127.0.0.1".parse().unwrap(), &wkp),
        "never_map wins"
    );
}

#[test]
fn strict_rfc6052_refuses_private_space_under_the_well_known_prefix_only() {
    let d = rules("strict_rfc6052 = true\n");
    let ten: Ipv4Addr = "10.1.2.3".parse().unwrap();
    let cgn: Ipv4Addr = "100.64.0.1".parse().unwrap();
    assert!(!d.may_map(ten, &p("64:ff9b::/96")));
    assert!(!d.may_map(cgn, &p("64:ff9b::/96")));
    assert!(d.may_map(ten, &p("2001:db8:64::/96")));
    assert!(
        rules("").may_map(ten, &p("64:ff9b::/96")),
        "lenient by default"
    );
}

#[test]
fn synthesized_ttl_is_min_of_a_ttl_and_soa_negative_ttl() {
    let d = rules("");
    let q = name("v4.example.");
    // SOA TTL 900, MINIMUM 120: negative TTL 120.
    let aaaa = response(ResponseCode::NoError, vec![], vec![soa(900, 120)]);
    let a_resp = response(
        ResponseCode::NoError,
        vec![
            a("v4.example.", 300, "192.0.2.1"),
            a("v4.example.", 60, "192.0.2.2"),
        ],
        vec![],
    );
    let out = d.synthesize(&q, Some(&aaaa), &a_resp).unwrap();
    let ttls: Vec<u32> = out.answers.iter().map(|r| r.ttl).collect();
    assert_eq!(ttls, vec![120, 60]);
}

#[test]
fn synthesized_ttl_is_capped_at_600_without_an_soa() {
    let d = rules("");
    let a_resp = response(
        ResponseCode::NoError,
        vec![a("v4.example.", 3600, "192.0.2.1")],
        vec![],
    );
    let out = d.synthesize(&name("v4.example."), None, &a_resp).unwrap();
    assert_eq!(out.answers[0].ttl, 600);
}

#[test]
fn several_prefixes_yield_one_aaaa_per_prefix_in_configured_order() {
    let d = rules("prefixes = [\"2001:db8:122:344::/96\", \"64:ff9b::/96\"]\n");
    let a_resp = response(
        ResponseCode::NoError,
        vec![a("v4.example.", 60, "192.0.2.33")],
        vec![],
    );
    let out = d.synthesize(&name("v4.example."), None, &a_resp).unwrap();
    let got: Vec<String> = out.answers.iter().map(|r| r.data.to_string()).collect();
    assert_eq!(got, vec!["2001:db8:122:344::c000:221", "64:ff9b::c000:221"]);
}

#[test]
fn cname_chain_is_kept_and_synthesis_uses_its_last_name() {
    let d = rules("");
    let cname = Record::from_rdata(
        name("www.example."),
        100,
        RData::CNAME(CNAME(name("v4.example."))),
    );
    let aaaa = response(
        ResponseCode::NoError,
        vec![cname.clone()],
        vec![soa(60, 60)],
    );
    assert_eq!(
        d.after_aaaa(&name("www.example."), Some(&aaaa)),
        AaaaVerdict::Synthesize {
            target: name("v4.example.")
        }
    );
    let a_resp = response(
        ResponseCode::NoError,
        vec![a("v4.example.", 300, "192.0.2.1")],
        vec![],
    );
    let out = d
        .synthesize(&name("www.example."), Some(&aaaa), &a_resp)
        .unwrap();
    assert_eq!(out.answers.len(), 2);
    assert_eq!(out.answers[0], cname);
    assert_eq!(out.answers[1].name, name("v4.example."));
}

#[test]
fn nxdomain_is_returned_and_errors_synthesize_only_when_allowed() {
    let q = name("x.example.");
    let nx = response(ResponseCode::NXDomain, vec![], vec![]);
    let sf = response(ResponseCode::ServFail, vec![], vec![]);
    assert_eq!(rules("").after_aaaa(&q, Some(&nx)), AaaaVerdict::Return);
    assert!(matches!(
        rules("").after_aaaa(&q, Some(&sf)),
        AaaaVerdict::Synthesize { .. }
    ));
    assert_eq!(
        rules("synthesize_on_error = false\n").after_aaaa(&q, Some(&sf)),
        AaaaVerdict::Return
    );
    assert!(matches!(
        rules("").after_aaaa(&q, None),
        AaaaVerdict::Synthesize { .. }
    ));
}

#[test]
fn only_excluded_aaaa_counts_as_no_native_aaaa() {
    let d = rules("");
    let mapped = Record::from_rdata(
        name("m.example."),
        60,
        RData::AAAA(AAAA("::ffff:192.0.2.1".parse().unwrap())),
    );
    let resp = response(ResponseCode::NoError, vec![mapped], vec![]);
    assert!(matches!(
        d.after_aaaa(&name("m.example."), Some(&resp)),
        AaaaVerdict::Synthesize { .. }
    ));
}

#[test]
fn a_answer_with_only_unmapped_addresses_synthesizes_nothing() {
    let d = rules("");
    let a_resp = response(
        ResponseCode::NoError,
        vec![a("lo.example.", 60, "127.0.0.1")],
        vec![],
    );
    assert!(d.synthesize(&name("lo.example."), None, &a_resp).is_none());
}

#[test]
fn synthesized_answer_clears_ad() {
    let d = rules("");
    let mut aaaa = response(ResponseCode::NoError, vec![], vec![soa(60, 60)]);
    aaaa.metadata.authentic_data = true;
    let a_resp = response(
        ResponseCode::NoError,
        vec![a("v4.example.", 60, "192.0.2.1")],
        vec![],
    );
    let out = d
        .synthesize(&name("v4.example."), Some(&aaaa), &a_resp)
        .unwrap();
    assert!(!out.metadata.authentic_data);
}

#[test]
fn an_answer_of_only_aaaa_synthesized_upstream_is_synthesized_for_under_native() {
    // A DNS64 upstream used the well-known prefix; ours is a zone's NSP.
    let t = rules("prefixes = [\"2001:db8:64::/96\"]\n");
    let q = name("v4.example.");
    let upstream = response(
        ResponseCode::NoError,
        vec![aaaa("v4.example.", "64:ff9b::c000:201")],
        vec![],
    );
    assert_eq!(t.d.upstream_synthesized(&upstream), 1);
    assert!(matches!(
        t.after_aaaa(&q, Some(&upstream)),
        AaaaVerdict::Synthesize { .. }
    ));
    let a_resp = response(
        ResponseCode::NoError,
        vec![a("v4.example.", 60, "192.0.2.1")],
        vec![],
    );
    let got = rdata(t.synthesize(&q, Some(&upstream), &a_resp).unwrap());
    assert_eq!(got, vec!["2001:db8:64::c000:201"]);
    // With nothing to synthesize, the original answer loses them.
    let mut orig = upstream.clone();
    t.d.remove_unwanted_aaaa(ZonePolicy::Native, &mut orig);
    assert!(orig.answers.is_empty());
}

#[test]
fn aaaa_inside_a_zone_prefix_are_synthesized_upstream_too() {
    let t = rules(
        "[[dns64.zone]]\nsuffix = \"corp.example.\"\npolicy = \"native\"\nprefixes = [\"2001:db8:99::/96\"]\n",
    );
    assert!(t.d.is_upstream_synthesized("2001:db8:99::c000:201".parse().unwrap()));
    assert!(t.d.is_native("2001:db8:98::c000:201".parse().unwrap()));
}

#[test]
fn rfc6147_5_5_a_bogus_servfail_is_returned_even_with_synthesize_on_error() {
    let t = rules("");
    let q = name("bogus.example.");
    let mut bogus = response(ResponseCode::ServFail, vec![], vec![]);
    let mut edns = hickory_proto::op::Edns::new();
    edns.options_mut()
        .insert(EdnsOption::Unknown(crate::wire::EDE_OPTION, vec![0, 6]));
    bogus.edns = Some(edns);
    assert_eq!(t.after_aaaa(&q, Some(&bogus)), AaaaVerdict::Return);
    // The same SERVFAIL without the extended error is synthesized for.
    bogus.edns = None;
    assert!(matches!(
        t.after_aaaa(&q, Some(&bogus)),
        AaaaVerdict::Synthesize { .. }
    ));
}
