use super::*;

/// `example.` AAAA IN, RD, ID 0x1234, optional OPT.
fn query(edns: bool) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
    q.extend_from_slice(b"\x07ExAmPle\x00\x00\x1c\x00\x01");
    if edns {
        push_opt(&mut q, 4096, true, 0, None);
    }
    q
}

#[test]
fn parses_question_and_edns() {
    let buf = query(true);
    let q = Query::parse(&buf).unwrap();
    assert_eq!(q.qtype, rtype::AAAA);
    assert_eq!(q.qname(), b"\x07ExAmPle\x00");
    let e = q.edns.unwrap();
    assert_eq!((e.payload, e.dnssec_ok, e.version), (4096, true, 0));
    assert_eq!(q.udp_limit(1232), 1232);
    assert_eq!(Query::parse(&query(false)).unwrap().udp_limit(1232), 512);
}

#[test]
fn cheapest_rejections_come_first() {
    assert_eq!(Query::parse(&[0; 11]).unwrap_err(), WireError::TooShort);
    let mut r = query(false);
    r[2] |= 0x80;
    assert_eq!(Query::parse(&r).unwrap_err(), WireError::IsResponse);
    let mut n = query(false);
    n[2] = 0x28; // opcode 5 (UPDATE)
    assert_eq!(Query::parse(&n).unwrap_err(), WireError::NotQuery(5));
    let mut c = query(false);
    c[5] = 2;
    assert_eq!(Query::parse(&c).unwrap_err(), WireError::QuestionCount(2));
}

#[test]
fn compression_loop_is_rejected() {
    // Answer record whose owner points at itself.
    let mut buf = query(false);
    buf[7] = 1;
    let at = buf.len();
    buf.extend_from_slice(&[
        0xc0 | (at >> 8) as u8,
        at as u8,
        0,
        1,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    assert!(matches!(Query::parse(&buf), Err(WireError::Malformed(_))));
}

#[test]
fn backward_pointer_into_a_later_label_loop_is_rejected() {
    // 12: \x01a then pointer back to 12: backward, but into its own run.
    let mut buf = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    buf.extend_from_slice(&[1, b'a', 0xc0, 12, 0, 1, 0, 1]);
    assert!(matches!(skip_name(&buf, 12), Err(WireError::Malformed(_))));
}

#[test]
fn pointer_out_of_bounds_and_long_labels_are_rejected() {
    let mut buf = vec![0; 12];
    buf.extend_from_slice(&[0xc0]);
    assert!(skip_name(&buf, 12).is_err());
    let mut long = vec![0; 12];
    long.push(64);
    long.extend_from_slice(&[b'a'; 64]);
    long.push(0);
    assert!(skip_name(&long, 12).is_err());
}

#[test]
fn names_longer_than_255_octets_are_rejected() {
    let mut buf = vec![0; 12];
    for _ in 0..5 {
        buf.push(63);
        buf.extend_from_slice(&[b'a'; 63]);
    }
    buf.push(0);
    assert!(skip_name(&buf, 12).is_err());
}

#[test]
fn error_reply_echoes_id_rd_and_question_and_carries_ede() {
    let buf = query(true);
    let q = Query::parse(&buf).unwrap();
    let r = error_reply(
        &buf,
        Some(q.question()),
        Some((1232, false)),
        ErrorReply {
            rcode: rcode::SERVFAIL,
            ede: Some((ede::NO_REACHABLE_AUTHORITY, "x")),
        },
    );
    let h = Header::new(&r).unwrap();
    assert_eq!(
        (h.id(), h.qr(), h.rd(), h.rcode(), h.qdcount(), h.arcount()),
        (0x1234, true, true, 2, 1, 1)
    );
    assert_eq!(r[3] & 0x80, 0x80, "RA");
    assert_eq!(&r[12..12 + q.question().len()], q.question());
    assert!(r.ends_with(&[0, 15, 0, 3, 0, 22, b'x']));
}

#[test]
fn set_qtype_changes_only_the_qtype() {
    let buf = query(true);
    let mut a = buf.clone();
    assert!(set_qtype(&mut a, rtype::A));
    assert_eq!(Query::parse(&a).unwrap().qtype, rtype::A);
    let changed: Vec<usize> = (0..buf.len()).filter(|&i| a[i] != buf[i]).collect();
    let end = question_end(&buf).unwrap();
    assert!(
        changed.iter().all(|&i| i == end - 4 || i == end - 3),
        "{changed:?}"
    );
    assert!(!set_qtype(&mut [0u8; 5], rtype::A));
}

#[test]
fn with_qtype_changes_only_the_qtype() {
    let buf = query(true);
    let q = Query::parse(&buf).unwrap();
    let a = with_qtype(&q, q.bytes(), rtype::A);
    assert_eq!(Query::parse(&a).unwrap().qtype, rtype::A);
    assert_eq!(a.len(), buf.len());
}

#[test]
fn ecs_option_is_parsed_and_can_be_removed() {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    q.extend_from_slice(b"\x07example\x00\x00\x1c\x00\x01");
    // OPT with ECS 2001:db8:1::/48 (family 2, 6 address octets).
    q.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 14, 0, 8, 0, 10, 0, 2, 48, 0]);
    q.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 1]);
    let parsed = Query::parse(&q).unwrap();
    let ecs = parsed.edns.unwrap().ecs.unwrap();
    assert_eq!(
        ecs.addr,
        "2001:db8:1::".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(ecs.source_prefix, 48);
    let stripped = without_ecs(&parsed).unwrap();
    let again = Query::parse(&stripped).unwrap();
    assert_eq!(again.edns.unwrap().ecs, None);
    assert_eq!(stripped.len(), q.len() - 14);
}

#[test]
fn ecs_with_address_longer_than_its_prefix_is_malformed() {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    q.extend_from_slice(b"\x07example\x00\x00\x1c\x00\x01");
    q.extend_from_slice(&[
        0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 12, 0, 8, 0, 8, 0, 1, 8, 0, 10, 0, 0, 1,
    ]);
    assert!(matches!(Query::parse(&q), Err(WireError::Malformed(_))));
}

#[test]
fn a_message_cut_inside_a_record_or_with_a_short_a_rdata_is_not_well_formed() {
    let mut r = query(false);
    r[2] |= 0x80;
    r[7] = 1; // one answer
    r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
    assert!(well_formed(&r));
    assert!(!well_formed(&r[..r.len() - 1]), "cut inside the RDATA");
    let mut short = r.clone();
    short[r.len() - 5] = 3; // RDLENGTH 3 for an A record
    short.pop();
    assert!(!well_formed(&short));
    let mut trailing = r.clone();
    trailing.push(0);
    assert!(!well_formed(&trailing));
}

#[test]
fn same_question_ignores_case_only() {
    let buf = query(false);
    let q = Query::parse(&buf).unwrap();
    let mut lower = buf.clone();
    lower[13..20].copy_from_slice(b"example");
    assert!(same_question(&lower, q.question()));
    lower[13] = b'x';
    assert!(!same_question(&lower, q.question()));
}
