//! Real-shaped packets for the wire benchmarks and the allocation check,
//! built with hickory-proto (which compresses names the way servers do).

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn edns(payload: u16) -> Edns {
    let mut e = Edns::new();
    e.set_max_payload(payload);
    e
}

fn response(id: u16, qname: &str, qtype: RecordType) -> Message {
    let mut m = Message::new(id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.metadata.recursion_available = true;
    m.add_query(Query::query(n(qname), qtype));
    m.edns = Some(edns(1232));
    m
}

/// A pod's AAAA query, RD, EDNS 1232 (what glibc and CoreDNS send).
pub fn pod_aaaa_query() -> Vec<u8> {
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        n("api.payments.svc.cluster.local."),
        RecordType::AAAA,
    ));
    m.edns = Some(edns(1232));
    m.to_vec().unwrap()
}

/// NODATA for AAAA: empty answer, the zone's SOA in authority.
pub fn nodata_with_soa() -> Vec<u8> {
    let mut m = response(0x1001, "api.example.com.", RecordType::AAAA);
    let soa = SOA::new(
        n("ns1.example.com."),
        n("hostmaster.example.com."),
        2024010101,
        7200,
        900,
        1209600,
        300,
    );
    m.add_authority(Record::from_rdata(n("example.com."), 900, RData::SOA(soa)));
    m.to_vec().unwrap()
}

/// `www.example.com.` A: CNAME into a CDN, then `k` A records.
pub fn cname_and_a(k: u8) -> Vec<u8> {
    let mut m = response(0x1002, "www.example.com.", RecordType::A);
    m.add_answer(Record::from_rdata(
        n("www.example.com."),
        300,
        RData::CNAME(CNAME(n("www.example.com.cdn.example.net."))),
    ));
    for i in 0..k {
        m.add_answer(Record::from_rdata(
            n("www.example.com.cdn.example.net."),
            60,
            RData::A(A(Ipv4Addr::new(198, 51, 100, 10 + i))),
        ));
    }
    m.to_vec().unwrap()
}

/// A single A record for the question name.
pub fn one_a() -> Vec<u8> {
    let mut m = response(0x1003, "api.example.com.", RecordType::A);
    m.add_answer(Record::from_rdata(
        n("api.example.com."),
        60,
        RData::A(A(Ipv4Addr::new(192, 0, 2, 80))),
    ));
    m.to_vec().unwrap()
}

/// Eight native AAAA records.
pub fn eight_aaaa() -> Vec<u8> {
    let mut m = response(0x1004, "v6.example.com.", RecordType::AAAA);
    for i in 0..8u16 {
        m.add_answer(Record::from_rdata(
            n("v6.example.com."),
            120,
            RData::AAAA(AAAA(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10 + i))),
        ));
    }
    m.to_vec().unwrap()
}

/// About 1200 octets: SRV answers, NS authority, A and AAAA glue.
pub fn large_with_additional() -> Vec<u8> {
    let mut m = response(0x1005, "_http._tcp.web.example.com.", RecordType::SRV);
    for i in 0..12u8 {
        let target = n(&format!("node-{i}.web.example.com."));
        m.add_answer(Record::from_rdata(
            n("_http._tcp.web.example.com."),
            300,
            RData::SRV(SRV::new(10, 5, 8080, target.clone())),
        ));
        m.add_additional(Record::from_rdata(
            target.clone(),
            300,
            RData::A(A(Ipv4Addr::new(10, 1, 0, i))),
        ));
        m.add_additional(Record::from_rdata(
            target,
            300,
            RData::AAAA(AAAA(Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, u16::from(i)))),
        ));
    }
    for i in 1..=4 {
        m.add_authority(Record::from_rdata(
            n("example.com."),
            3600,
            RData::NS(NS(n(&format!("ns{i}.example.com.")))),
        ));
    }
    m.to_vec().unwrap()
}

/// Every packet with a short label.
pub fn all() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("pod_aaaa_query", pod_aaaa_query()),
        ("nodata_soa", nodata_with_soa()),
        ("cname_4a", cname_and_a(4)),
        ("one_a", one_a()),
        ("aaaa_8", eight_aaaa()),
        ("large_1200", large_with_additional()),
    ]
}
