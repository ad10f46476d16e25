use super::*;

/// A response for `www.example.` A: CNAME to `v4.example.` (target
/// compressed against the question), two A records, an SOA in authority,
/// OPT with DO and one option.
pub(crate) fn sample() -> Vec<u8> {
    let mut m = vec![
        0xab, 0xcd, 0x81, 0x80, 0, 1, 0, 3, 0, 1, 0, 1, // header
    ];
    m.extend_from_slice(b"\x03WwW\x07example\x00\x00\x01\x00\x01"); // 12..29
    // CNAME at 29: owner -> 12, target "v4" + pointer to "example" at 16.
    m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 5]);
    m.extend_from_slice(&[2, b'v', b'4', 0xc0, 16]); // target at 41
    // A at 46 and 62, owner -> 41.
    for last in [1u8, 2] {
        m.extend_from_slice(&[0xc0, 41, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 192, 0, 2, last]);
    }
    // SOA owner -> 16 (example.), mname ns + ptr, rname ptr.
    m.extend_from_slice(&[0xc0, 16, 0, 6, 0, 1, 0, 0, 3, 0x84, 0, 27]);
    m.extend_from_slice(&[2, b'n', b's', 0xc0, 16, 0xc0, 16]);
    m.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 30]);
    // OPT: payload 1232, DO, one option (code 10, 2 octets).
    m.extend_from_slice(&[
        0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 6, 0, 10, 0, 2, 0xaa, 0xbb,
    ]);
    m
}

#[test]
fn view_reports_header_question_records_and_opt() {
    let buf = sample();
    let m = Message::parse(&buf).unwrap();
    let h = m.header();
    assert_eq!(
        (h.id(), h.qr(), h.rd(), h.ra(), h.aa()),
        (0xabcd, true, true, true, false)
    );
    let q = m.question().unwrap();
    assert_eq!(q.name.to_string(), "WwW.example.");
    assert_eq!((q.qtype, q.qclass, q.qtype_at), (rtype::A, 1, 25));
    let rrs: Vec<_> = m
        .records()
        .map(|r| (r.section, r.rtype, r.owner().to_string()))
        .collect();
    assert_eq!(
        rrs,
        vec![
            (Section::Answer, rtype::CNAME, "WwW.example.".into()),
            (Section::Answer, rtype::A, "v4.example.".into()),
            (Section::Answer, rtype::A, "v4.example.".into()),
            (Section::Authority, rtype::SOA, "example.".into()),
            (Section::Additional, rtype::OPT, ".".into()),
        ]
    );
    let a = m.section(Section::Answer).nth(2).unwrap();
    assert_eq!(a.ipv4(), Some([192, 0, 2, 2].into()));
    assert_eq!(a.ttl(), 256);
    assert_eq!((a.owner_at, a.ttl_at, a.rdata_range()), (62, 68, 74..78));
    let opt = m.opt().unwrap();
    assert_eq!(
        (opt.payload(), opt.dnssec_ok(), opt.version()),
        (1232, true, 0)
    );
    assert_eq!(
        opt.options().collect::<Vec<_>>(),
        vec![(10, &[0xaa, 0xbb][..])]
    );
    let s = m.classify();
    assert_eq!((s.a, s.cname, s.aaaa, s.negative_ttl), (2, 1, 0, Some(30)));
    assert_eq!(m.rcode(), 0);
}

#[test]
fn names_compare_across_compression_case_and_buffers() {
    let buf = sample();
    let m = Message::parse(&buf).unwrap();
    let end = m.chain_end().unwrap();
    assert_eq!(end.to_string(), "v4.example.");
    let other = b"\x02V4\x07EXAMPLE\x00";
    let (n, _) = Name::parse(other, 0).unwrap();
    assert!(end.eq_ignore_case(&n));
    assert!(!m.question().unwrap().name.eq_ignore_case(&n));
    assert_eq!(end.wire_len(), other.len());
    let mut flat = Vec::new();
    end.write_uncompressed(&mut flat);
    assert_eq!(flat, b"\x02v4\x07example\x00");
    let soa = m.section(Section::Authority).next().unwrap();
    assert_eq!(soa.rdata_name(0).unwrap().to_string(), "ns.example.");
    assert_eq!(soa.rdata_name(1).unwrap().to_string(), "example.");
    assert!(soa.rdata_name(2).is_none());
}

#[test]
fn cname_loop_ends_in_bounded_steps() {
    // a. CNAME b., b. CNAME a.
    let mut m = vec![0, 0, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
    m.extend_from_slice(b"\x01a\x00\x00\x01\x00\x01"); // 12..19
    m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 1, 0, 3, 1, b'b', 0]); // b at 31
    m.extend_from_slice(&[0xc0, 31, 0, 5, 0, 1, 0, 0, 0, 1, 0, 2, 0xc0, 12]);
    let v = Message::parse(&m).unwrap();
    let end = v.chain_end().unwrap();
    assert!(end.to_string() == "a." || end.to_string() == "b.");
}

#[test]
fn malformed_messages_are_rejected_with_a_reason() {
    let good = sample();
    assert_eq!(
        Message::parse(&good[..11]).unwrap_err(),
        ParseError::TooShort
    );
    for cut in 12..good.len() {
        assert!(Message::parse(&good[..cut]).is_err(), "cut at {cut}");
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(
        Message::parse(&trailing).unwrap_err(),
        ParseError::TrailingBytes
    );
    // CNAME target pointing forward (at the first A record).
    let mut fwd = good.clone();
    fwd[45] = 46;
    assert_eq!(Message::parse(&fwd).unwrap_err(), ParseError::BadPointer);
    // A record with 3 octets of RDATA.
    let mut short = good.clone();
    short[57] = 3;
    assert!(Message::parse(&short).is_err());
    // OPT in the answer section: move the count.
    let mut opt = good.clone();
    opt[7] = 0;
    opt[9] = 4;
    opt[11] = 0;
    // Now answers: 0, authority: CNAME A A SOA... additional 0 → trailing OPT.
    assert!(Message::parse(&opt).is_err());
    let mut two_q = good.clone();
    two_q[5] = 2;
    assert_eq!(
        Message::parse(&two_q).unwrap_err(),
        ParseError::QuestionCount
    );
    // Label with reserved type bits.
    let mut label = good.clone();
    label[12] = 0x43;
    assert_eq!(Message::parse(&label).unwrap_err(), ParseError::BadLabel);
}

#[test]
fn pointer_chains_are_bounded_and_names_capped_at_255_octets() {
    // 200 pointers, each to the previous one: backwards, but too many hops.
    let mut m = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for i in 0..200usize {
        let target = 12 + if i == 0 { 0 } else { 1 + 2 * (i - 1) };
        m.extend_from_slice(&[0xc0 | (target >> 8) as u8, target as u8]);
    }
    let last = m.len() - 2;
    assert_eq!(check_name(&m, last).unwrap_err(), ParseError::TooManyHops);
    assert!(check_name(&m, 13 + 2 * 100).is_ok());
    // 4 x 63-octet labels through pointers: 256 octets expanded.
    let mut long = vec![0; 12];
    long.extend_from_slice(&[63]);
    long.extend_from_slice(&[b'a'; 63]);
    long.push(0); // name at 12: 65 octets
    let second = long.len();
    long.push(63);
    long.extend_from_slice(&[b'b'; 63]);
    long.extend_from_slice(&[0xc0, 12]); // 129 octets
    let third = long.len();
    long.push(63);
    long.extend_from_slice(&[b'c'; 63]);
    long.extend_from_slice(&[0xc0 | (second >> 8) as u8, second as u8]); // 193
    let fourth = long.len();
    long.push(62);
    long.extend_from_slice(&[b'd'; 62]);
    long.extend_from_slice(&[0xc0 | (third >> 8) as u8, third as u8]); // 256
    assert_eq!(
        check_name(&long, fourth).unwrap_err(),
        ParseError::NameTooLong
    );
    assert_eq!(Name::parse(&long, third).unwrap().0.wire_len(), 193);
}

#[test]
fn parse_error_maps_to_the_query_path_error() {
    assert_eq!(WireError::from(ParseError::TooShort), WireError::TooShort);
    assert_eq!(
        WireError::from(ParseError::BadPointer),
        WireError::Malformed("compression pointer does not point backwards")
    );
}
