//! Properties of the wire layer over arbitrary bytes, shared by the fuzz
//! target (`fuzz_targets/wire.rs`) and the proptest in
//! `tests/wire_props.rs`: nothing panics, and every rewrite of a message the
//! view accepts is itself a message the view accepts, with the promised
//! content.

use dns64d::dns64::Prefix;
use dns64d::dns64::rules::synthesized_ttl;
use dns64d::wire::rewrite;
use dns64d::wire::{Message, Name, Rr, Section, rtype};

/// Runs every check on `data`.
pub fn all(data: &[u8]) {
    // Every rewrite must cope with input nobody validated.
    let mut buf = data.to_vec();
    let _ = rewrite::adjust_ttls(&mut buf, 5, 3600);
    let mut buf = data.to_vec();
    let _ = rewrite::truncate_udp(&mut buf, 512);
    let mut buf = data.to_vec();
    let _ = rewrite::set_edns(&mut buf, 1232, true, Some((22, "x")));
    let mut buf = data.to_vec();
    let _ = rewrite::restore_question_case(&mut buf, b"\x07example\x00\x00\x01\x00\x01");

    let Ok(m) = Message::parse(data) else {
        return;
    };
    view(&m);
    strip(&m);
    synthesize(&m);
    truncate(&m);
    edns(&m);
    ttls(&m);
    question_case(&m);
}

fn names_ok(n: &Name<'_>) {
    assert!(n.wire_len() <= 255);
    assert!(n.labels().all(|l| !l.is_empty() && l.len() <= 63));
    let _ = n.to_string();
}

fn view(m: &Message<'_>) {
    let h = m.header();
    let total = usize::from(h.ancount()) + usize::from(h.nscount()) + usize::from(h.arcount());
    assert_eq!(m.records().count(), total);
    for r in m.records() {
        names_ok(&r.owner());
        for i in 0..2 {
            if let Some(n) = r.rdata_name(i) {
                names_ok(&n);
            }
        }
        assert!(r.rdata_end <= m.bytes().len());
        let _ = (
            r.ttl(),
            r.ipv4(),
            r.ipv6(),
            r.type_covered(),
            r.soa_negative_ttl(),
        );
    }
    if let Some(end) = m.chain_end() {
        names_ok(&end);
    }
    if let Some(o) = m.opt() {
        let _ = o.options().count();
    }
    let _ = m.classify();
}

/// The names and data of a record, for comparing a copy with its original.
fn same_record(a: &Rr<'_>, b: &Rr<'_>) {
    assert_eq!((a.rtype, a.class, a.ttl()), (b.rtype, b.class, b.ttl()));
    assert!(a.owner().eq_ignore_case(&b.owner()));
    match (a.rdata_name(0), b.rdata_name(0)) {
        (Some(x), Some(y)) => {
            assert!(x.eq_ignore_case(&y));
            if let (Some(x), Some(y)) = (a.rdata_name(1), b.rdata_name(1)) {
                assert!(x.eq_ignore_case(&y));
            }
        }
        (None, None) => assert_eq!(a.rdata(), b.rdata()),
        _ => panic!("layout differs"),
    }
}

fn strip(m: &Message<'_>) {
    let mut out = Vec::new();
    let removed = match rewrite::strip_type(m, rtype::A, &mut out) {
        Ok(n) => n,
        Err(rewrite::RewriteError::TooLong) => return,
        Err(e) => panic!("strip failed on a valid message: {e:?}"),
    };
    let s = Message::parse(&out).expect("stripped message parses");
    assert_eq!(s.records().count() + removed, m.records().count());
    assert!(
        s.records()
            .all(|r| r.rtype != rtype::A && r.type_covered() != Some(rtype::A))
    );
    let kept = m
        .records()
        .filter(|r| r.rtype != rtype::A && r.type_covered() != Some(rtype::A));
    for (a, b) in kept.zip(s.records()) {
        assert_eq!(a.section, b.section);
        same_record(&a, &b);
    }
    match (m.question(), s.question()) {
        (Some(a), Some(b)) => assert_eq!(a.name.to_string(), b.name.to_string()),
        (None, None) => {}
        _ => panic!("question lost"),
    }
}

fn synthesize(m: &Message<'_>) {
    let prefixes: [Prefix; 2] = [
        "64:ff9b::/96".parse().unwrap(),
        "2001:db8:100::/40".parse().unwrap(),
    ];
    let Some(owner) = m.chain_end() else {
        return;
    };
    let mut out = Vec::new();
    let made = match rewrite::synthesize_aaaa(
        m,
        &owner,
        &prefixes,
        |t| synthesized_ttl(t, 300),
        |_, _| true,
        &mut out,
    ) {
        Ok(n) => n,
        Err(rewrite::RewriteError::TooLong) => return,
        Err(e) => panic!("synthesis failed on a valid message: {e:?}"),
    };
    let s = Message::parse(&out).expect("synthesized message parses");
    assert_eq!(s.question().map(|q| q.qtype), Some(rtype::AAAA));
    assert!(s.records().all(|r| r.rtype != rtype::A));
    let aaaa: Vec<_> = s
        .section(Section::Answer)
        .filter(|r| r.rtype == rtype::AAAA)
        .collect();
    assert_eq!(aaaa.len(), made);
    for r in &aaaa {
        assert!(r.owner().eq_ignore_case(&owner));
        assert!(r.ttl() <= 300);
        let v6 = r.ipv6().unwrap();
        assert!(prefixes.iter().any(|p| p.extract(v6).is_some()));
    }
    let h = s.header();
    assert!(!h.aa() && !h.ad() && !h.tc());
    assert_eq!(h.nscount(), 0);
}

fn truncate(m: &Message<'_>) {
    let len = m.bytes().len();
    for limit in [512, len.saturating_sub(1), len.saturating_sub(40)] {
        let mut buf = m.bytes().to_vec();
        let cut = match rewrite::truncate_udp(&mut buf, limit) {
            Ok(cut) => cut,
            Err(rewrite::RewriteError::Unsupported) if m.has_exotic_pointers() => return,
            Err(e) => panic!("truncation failed on a valid message: {e:?}"),
        };
        let t = Message::parse(&buf).expect("truncated message parses");
        if cut {
            let h = t.header();
            assert!(buf.len() <= limit || (h.ancount() == 0 && h.nscount() == 0));
            assert!(h.arcount() <= 1);
            assert_eq!(t.opt().is_some(), m.opt().is_some());
            for (a, b) in m
                .records()
                .zip(t.records().filter(|r| r.rtype != rtype::OPT))
            {
                same_record(&a, &b);
            }
        } else {
            assert_eq!(buf, m.bytes());
        }
    }
}

fn edns(m: &Message<'_>) {
    let mut buf = m.bytes().to_vec();
    match rewrite::set_edns(&mut buf, 1232, true, Some((22, "x"))) {
        Ok(()) => {}
        Err(rewrite::RewriteError::TooLong) => return,
        Err(rewrite::RewriteError::Unsupported) if m.has_exotic_pointers() => return,
        Err(e) => panic!("set_edns failed on a valid message: {e:?}"),
    }
    let e = Message::parse(&buf).expect("message with EDNS parses");
    let opt = e.opt().expect("OPT present");
    assert_eq!((opt.payload(), opt.dnssec_ok()), (1232, true));
    assert_eq!(opt.options().last(), Some((15, &[0, 22, b'x'][..])));
    assert_eq!(
        e.records().count(),
        m.records().count() + usize::from(m.opt().is_none())
    );
    for (a, b) in m.records().zip(e.records()) {
        if a.rtype != rtype::OPT {
            same_record(&a, &b);
        }
    }
}

fn ttls(m: &Message<'_>) {
    let mut buf = m.bytes().to_vec();
    match rewrite::adjust_ttls(&mut buf, 5, 3600) {
        Ok(()) => {}
        Err(rewrite::RewriteError::Unsupported) if m.has_exotic_pointers() => return,
        Err(e) => panic!("adjust_ttls failed on a valid message: {e:?}"),
    }
    let t = Message::parse(&buf).expect("aged message parses");
    for (a, b) in m.records().zip(t.records()) {
        if a.rtype == rtype::OPT {
            assert_eq!(a.ttl(), b.ttl());
        } else {
            assert!(b.ttl() <= 3600 && b.ttl() <= a.ttl());
        }
    }
}

fn question_case(m: &Message<'_>) {
    let Some(q) = m.question() else {
        return;
    };
    let mut client = Vec::new();
    q.name.write_uncompressed(&mut client);
    client.extend_from_slice(&q.qtype.to_be_bytes());
    client.extend_from_slice(&q.qclass.to_be_bytes());
    for b in &mut client {
        if b.is_ascii_lowercase() {
            b.make_ascii_uppercase();
        }
    }
    let mut buf = m.bytes().to_vec();
    if rewrite::restore_question_case(&mut buf, &client).is_ok() {
        let r = Message::parse(&buf).expect("recased message parses");
        assert!(r.question().unwrap().name.eq_ignore_case(&q.name));
    }
}
