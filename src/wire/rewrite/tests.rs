use super::*;
use crate::types::Prefix;
use crate::wire::message::tests::sample;
use crate::wire::{Message, Query, Section};
use std::net::Ipv4Addr;

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

/// One record: owner octets as given (may end in a pointer).
fn rr(owner: &[u8], t: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut v = owner.to_vec();
    v.extend_from_slice(&t.to_be_bytes());
    v.extend_from_slice(&1u16.to_be_bytes());
    v.extend_from_slice(&ttl.to_be_bytes());
    v.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    v.extend_from_slice(rdata);
    v
}

fn with_counts(mut m: Vec<u8>, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    m[6..8].copy_from_slice(&an.to_be_bytes());
    m[8..10].copy_from_slice(&ns.to_be_bytes());
    m[10..12].copy_from_slice(&ar.to_be_bytes());
    m
}

#[test]
fn strip_removes_a_records_and_keeps_every_other_byte() {
    let input = sample();
    let m = Message::parse(&input).unwrap();
    let mut out = Vec::new();
    assert_eq!(strip_type(&m, rtype::A, &mut out).unwrap(), 2);
    let mut want = with_counts(input[..46].to_vec(), 1, 1, 1);
    want.extend_from_slice(&input[78..]);
    assert_eq!(out, want);
    // Nothing to strip: a plain copy.
    assert_eq!(strip_type(&m, rtype::MX, &mut out).unwrap(), 0);
    assert_eq!(out, input);
}

#[test]
fn strip_expands_names_whose_pointer_target_was_removed_and_reuses_the_copy() {
    // Question example. A; answer www.example. A (owner stored inline);
    // additional: two AAAA owned by pointers to that A owner, one RRSIG
    // covering A.
    let mut m = vec![0, 7, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 3];
    m.extend_from_slice(b"\x07example\x00\x00\x01\x00\x01"); // 12..25
    let a_owner = m.len(); // 25
    m.extend(rr(b"\x03www\xc0\x0c", rtype::A, 60, &[192, 0, 2, 1]));
    let ptr = [0xc0, a_owner as u8];
    m.extend(rr(
        &ptr,
        rtype::AAAA,
        60,
        &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    ));
    m.extend(rr(
        &ptr,
        rtype::AAAA,
        60,
        &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
    ));
    m.extend(rr(&ptr, rtype::RRSIG, 60, &[0, 1, 8, 2, 0, 0, 0, 60]));
    let view = Message::parse(&m).unwrap();
    let mut out = Vec::new();
    assert_eq!(strip_type(&view, rtype::A, &mut out).unwrap(), 2);

    let mut want = vec![0, 7, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 2];
    want.extend_from_slice(b"\x07example\x00\x00\x01\x00\x01");
    let first = want.len(); // 25: the expanded owner lands where the A's was
    want.extend(rr(
        b"\x03www\xc0\x0c",
        rtype::AAAA,
        60,
        &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    ));
    want.extend(rr(
        &[0xc0, first as u8],
        rtype::AAAA,
        60,
        &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
    ));
    assert_eq!(out, want);
}

#[test]
fn synthesis_turns_the_a_response_into_the_aaaa_response_in_one_pass() {
    let input = sample();
    let m = Message::parse(&input).unwrap();
    let owner = m.chain_end().unwrap();
    let mut out = Vec::new();
    let made = synthesize_aaaa(
        &m,
        &owner,
        &[p("64:ff9b::/96")],
        |t| t.min(300),
        |_, _| true,
        &mut out,
    )
    .unwrap();
    assert_eq!(made, 2);
    let mut want = vec![0xab, 0xcd, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 1];
    want.extend_from_slice(b"\x03WwW\x07example\x00\x00\x1c\x00\x01");
    want.extend_from_slice(&input[29..46]); // the CNAME, byte for byte
    for last in [1u8, 2] {
        want.extend_from_slice(&[0xc0, 41, 0, 28, 0, 1, 0, 0, 1, 0, 0, 16]);
        want.extend_from_slice(&[0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, last]);
    }
    want.extend_from_slice(&input[117..]); // OPT
    assert_eq!(out, want);
}

#[test]
fn synthesis_orders_by_prefix_caps_ttl_filters_and_clears_aa_ad_tc() {
    let mut input = sample();
    input[2] |= 0x04 | 0x02; // AA, TC
    input[3] |= 0x20; // AD
    let m = Message::parse(&input).unwrap();
    let owner = m.chain_end().unwrap();
    let mut out = Vec::new();
    let prefixes = [p("64:ff9b::/96"), p("2001:db8::/32")];
    let made = synthesize_aaaa(
        &m,
        &owner,
        &prefixes,
        |t| t.min(100),
        |v4, _| v4 != Ipv4Addr::new(192, 0, 2, 2),
        &mut out,
    )
    .unwrap();
    assert_eq!(made, 2);
    let s = Message::parse(&out).unwrap();
    let h = s.header();
    assert!(!h.aa() && !h.tc() && !h.ad() && h.rd() && h.ra());
    let got: Vec<_> = s
        .section(Section::Answer)
        .filter_map(|r| r.ipv6().map(|a| (a, r.ttl())))
        .collect();
    assert_eq!(
        got,
        vec![
            ("64:ff9b::c000:201".parse().unwrap(), 100),
            ("2001:db8:c000:201::".parse().unwrap(), 100),
        ]
    );
    // An owner that is not the chain end yields nothing.
    let q = m.question().unwrap().name;
    assert_eq!(
        synthesize_aaaa(&m, &q, &prefixes, |t| t.min(100), |_, _| true, &mut out).unwrap(),
        0
    );
}

#[test]
fn truncation_keeps_whole_answers_moves_opt_up_and_sets_tc() {
    let input = sample();
    for limit in [100, 125] {
        let mut buf = input.clone();
        assert!(truncate_udp(&mut buf, limit).unwrap());
        let mut want = with_counts(input[..78].to_vec(), 3, 0, 1);
        want[2] |= 0x02;
        want.extend_from_slice(&input[117..]);
        assert_eq!(buf, want, "limit {limit}");
    }
    let mut buf = input.clone();
    assert!(truncate_udp(&mut buf, 60).unwrap());
    let mut want = with_counts(input[..29].to_vec(), 0, 0, 1);
    want[2] |= 0x02;
    want.extend_from_slice(&input[117..]);
    assert_eq!(buf, want);
    let mut buf = input.clone();
    assert!(!truncate_udp(&mut buf, input.len()).unwrap());
    assert_eq!(buf, input);
}

#[test]
fn dropping_only_additional_records_does_not_set_tc() {
    // RFC 2181 §9: TC is not for extra information that did not fit.
    let input = sample();
    let mut bigger = with_counts(input.clone(), 3, 1, 2);
    bigger.extend(rr(&[0xc0, 41], rtype::AAAA, 60, &[0; 16]));
    assert!(truncate_udp(&mut bigger, input.len()).unwrap());
    assert_eq!(bigger, input);
}

#[test]
fn set_edns_adjusts_the_opt_and_appends_an_extended_error() {
    let input = sample();
    let mut buf = input.clone();
    set_edns(&mut buf, 512, false, Some((22, "no"))).unwrap();
    let mut want = input.clone();
    want[120..122].copy_from_slice(&[2, 0]); // payload
    want[124] = 0; // DO
    want[126..128].copy_from_slice(&[0, 14]); // RDLENGTH 6 + 8
    want.extend_from_slice(&[0, 15, 0, 4, 0, 22, b'n', b'o']);
    assert_eq!(buf, want);
}

#[test]
fn extended_error_text_is_cut_at_a_character_boundary() {
    // 3 octets per "aé": octet 200 falls inside an "é".
    let long = "aé".repeat(100);
    let input = sample();
    let mut with_opt = input.clone();
    set_edns(&mut with_opt, 1232, false, Some((0, &long))).unwrap();
    let mut without = with_counts(input[..117].to_vec(), 3, 1, 0);
    set_edns(&mut without, 1232, false, Some((0, &long))).unwrap();
    for buf in [&with_opt, &without] {
        let m = Message::parse(buf).unwrap();
        let (code, data) = m.opt().unwrap().options().last().unwrap();
        assert_eq!(code, super::super::EDE_OPTION);
        assert_eq!(data.len(), 2 + 199);
        assert!(std::str::from_utf8(&data[2..]).is_ok());
    }
}

#[test]
fn set_edns_adds_an_opt_when_there_is_none() {
    let input = sample();
    let mut buf = with_counts(input[..117].to_vec(), 3, 1, 0);
    set_edns(&mut buf, 1232, true, None).unwrap();
    let mut want = with_counts(input[..117].to_vec(), 3, 1, 1);
    want.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 0]);
    assert_eq!(buf, want);
}

#[test]
fn set_edns_reaims_pointers_of_records_after_the_opt() {
    // Additional: OPT, then x.example. A, then an AAAA owned by a pointer
    // to x.example. (after the OPT, so it moves).
    let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 3];
    m.extend_from_slice(b"\x07example\x00\x00\x01\x00\x01");
    m.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]); // 25..36
    let x = m.len(); // 36
    m.extend(rr(b"\x01x\xc0\x0c", rtype::A, 60, &[192, 0, 2, 9]));
    m.extend(rr(&[0xc0, x as u8], rtype::AAAA, 60, &[0; 16]));
    let mut buf = m.clone();
    set_edns(&mut buf, 1232, false, Some((18, ""))).unwrap();
    let mut want = m[..34].to_vec();
    want.extend_from_slice(&[0, 6, 0, 15, 0, 2, 0, 18]);
    want.extend(rr(b"\x01x\xc0\x0c", rtype::A, 60, &[192, 0, 2, 9]));
    want.extend(rr(&[0xc0, (x + 6) as u8], rtype::AAAA, 60, &[0; 16]));
    assert_eq!(buf, want);
    let v = Message::parse(&buf).unwrap();
    let aaaa = v.records().last().unwrap();
    assert_eq!(aaaa.owner().to_string(), "x.example.");
}

#[test]
fn ttls_age_and_cap_but_opt_flags_stay() {
    let input = sample();
    let mut buf = input.clone();
    adjust_ttls(&mut buf, 100, 200).unwrap();
    let mut want = input.clone();
    want[35..39].copy_from_slice(&0u32.to_be_bytes()); // CNAME 60 → 0
    want[52..56].copy_from_slice(&156u32.to_be_bytes()); // A 256 → 156
    want[68..72].copy_from_slice(&156u32.to_be_bytes());
    want[84..88].copy_from_slice(&200u32.to_be_bytes()); // SOA 900 → cap
    assert_eq!(buf, want);
    let mut top = input.clone();
    top[52] = 0x80; // RFC 2181 §8: top bit set counts as zero
    adjust_ttls(&mut top, 0, 1000).unwrap();
    assert_eq!(&top[52..56], &[0, 0, 0, 0]);
}

#[test]
fn question_case_and_id_are_restored_from_the_client() {
    let want = sample();
    let mut reply = want.clone();
    reply[13..16].copy_from_slice(b"www");
    let client_q = &want[12..29];
    restore_question_case(&mut reply, client_q).unwrap();
    assert_eq!(reply, want);
    let mut other = want.clone();
    assert_eq!(
        restore_question_case(&mut other, b"\x03wwx\x07example\x00\x00\x01\x00\x01"),
        Err(RewriteError::QuestionMismatch)
    );
    assert_eq!(
        restore_question_case(&mut other, b"\x03www\x07example\x00\x00\x1c\x00\x01"),
        Err(RewriteError::QuestionMismatch)
    );
    // The client's query: ID 0x1234, RD=0, CD=1, same question.
    let mut q = vec![0x12, 0x34, 0x00, 0x10, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(client_q);
    let query = Query::parse(&q).unwrap();
    let mut reply = want.clone();
    reply[13..16].copy_from_slice(b"WWW");
    echo_client(&mut reply, &query).unwrap();
    let mut expected = want.clone();
    expected[..4].copy_from_slice(&[0x12, 0x34, 0x80, 0x90]);
    assert_eq!(reply, expected);
    set_message_id(&mut reply, 7).unwrap();
    assert_eq!(&reply[..2], &[0, 7]);
    assert!(set_message_id(&mut [0u8; 1], 7).is_err());
}

#[test]
fn embedding_matches_prefix_embed_for_every_rfc6052_length() {
    let v4 = Ipv4Addr::new(192, 0, 2, 33);
    for s in [
        "2001:db8::/32",
        "2001:db8:100::/40",
        "2001:db8:122::/48",
        "2001:db8:122:300::/56",
        "2001:db8:122:344::/64",
        "2001:db8:122:344::/96",
        "64:ff9b::/96",
    ] {
        let prefix = p(s);
        let (mut octets, at) = embedding(&prefix);
        for (i, o) in at.into_iter().zip(v4.octets()) {
            octets[i] = o;
        }
        assert_eq!(std::net::Ipv6Addr::from(octets), prefix.embed(v4), "{s}");
    }
}

/// Fuzz finding 1: a pointer to a name whose labels ran past the pointer
/// itself (into the records after it), so cutting those records renamed
/// the owner. Such pointers are now rejected.
#[test]
fn regression_name_reading_past_its_own_pointer_is_rejected() {
    let mut m = sample();
    // First answer: type 251, RDATA "\x21v4" + pointer: a 33-octet label
    // at 41 that swallows the records after it.
    m[31..33].copy_from_slice(&[0, 251]);
    m[41] = 0x21;
    assert_eq!(Message::parse(&m).unwrap_err(), ParseError::BadPointer);
}

/// Fuzz finding 2: a name read through a pointer into octets that are
/// a TTL field; ageing TTLs renamed it. In-place rewrites now refuse
/// such messages; copying rewrites still handle them.
#[test]
fn regression_pointer_into_a_ttl_field_is_exotic_and_refused_in_place() {
    let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
    m.extend_from_slice(b"\x01a\x00\x00\x10\x00\x01"); // 12..19, TXT
    // TXT owned by a., TTL octets 0,0,1,0x61 ("\x00" = root... no: the
    // name at ttl_at+2 reads "\x01" "a" then the RDLENGTH high octet 0).
    m.extend(rr(&[0xc0, 12], 16, 0x0000_0161, &[0]));
    let ttl_name = 19 + 2 + 4 + 2; // TTL octets 2..4 of the first record
    m.extend(rr(&[0xc0, ttl_name as u8], 16, 60, &[0]));
    let v = Message::parse(&m).unwrap();
    assert_eq!(v.records().nth(1).unwrap().owner().to_string(), "a.");
    assert!(v.has_exotic_pointers());
    let mut buf = m.clone();
    assert_eq!(adjust_ttls(&mut buf, 1, 60), Err(RewriteError::Unsupported));
    assert_eq!(truncate_udp(&mut buf, 20), Err(RewriteError::Unsupported));
    assert_eq!(
        set_edns(&mut buf, 512, false, None),
        Err(RewriteError::Unsupported)
    );
    assert_eq!(buf, m);
    // The copying rewrite expands the name instead of pointing at a TTL.
    let mut out = Vec::new();
    retain_into(&v, &mut out, |_| true).unwrap();
    let c = Message::parse(&out).unwrap();
    assert!(!c.has_exotic_pointers());
    assert_eq!(c.records().nth(1).unwrap().owner().to_string(), "a.");
    assert!(!Message::parse(&sample()).unwrap().has_exotic_pointers());
}
