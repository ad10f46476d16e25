//! Checks of the fake upstream itself: if it misbehaved, every other test would
//! measure dns64d against the wrong oracle.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::support::client::{self, question_bytes};
use crate::support::{Action, Transport, Upstream, q, zone};

#[tokio::test]
async fn fake_upstream_echoes_the_question_with_its_letter_case() {
    let upstream = Upstream::start().await;
    let query = q("DuAl.ExAmPlE.", RecordType::AAAA);
    let reply = client::udp(upstream.addr(), &query.bytes()).await;
    assert_eq!(reply.question_bytes(), question_bytes(&query.bytes()));
    assert_eq!(reply.aaaa(), vec![zone::DUAL_AAAA]);
    let seen = upstream.asked(zone::DUAL, RecordType::AAAA);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].name().to_ascii(), "DuAl.ExAmPlE.");
    assert_eq!(seen[0].transport, Transport::Udp);
}

#[tokio::test]
async fn fake_upstream_truncates_large_udp_answers_and_sends_them_whole_over_tcp() {
    let upstream = Upstream::start().await;
    let query = q(zone::MANY, RecordType::A);
    let over_udp = client::udp(upstream.addr(), &query.bytes()).await;
    assert!(over_udp.tc());
    assert!(over_udp.msg.answers.is_empty());
    let over_tcp = client::tcp(upstream.addr(), &query.bytes()).await;
    assert!(!over_tcp.tc());
    assert_eq!(over_tcp.a().len(), usize::from(zone::MANY_COUNT));
}

#[tokio::test]
async fn fake_upstream_answers_nxdomain_nodata_and_servfail_fixtures() {
    let upstream = Upstream::start().await;
    let nx = client::udp(upstream.addr(), &q(zone::MISSING, RecordType::AAAA).bytes()).await;
    assert_eq!(nx.rcode(), ResponseCode::NXDomain);
    let nodata = client::udp(
        upstream.addr(),
        &q(zone::SOA_MIN_LOWER, RecordType::AAAA).bytes(),
    )
    .await;
    assert_eq!(nodata.rcode(), ResponseCode::NoError);
    assert_eq!(nodata.soa(), Some((900, 60)));
    let sf = client::udp(
        upstream.addr(),
        &q(zone::AAAA_SERVFAIL, RecordType::AAAA).bytes(),
    )
    .await;
    assert_eq!(sf.rcode(), ResponseCode::ServFail);
    let dname = client::udp(upstream.addr(), &q(zone::VIA_DNAME, RecordType::A).bytes()).await;
    assert_eq!(dname.answers_of(RecordType::DNAME).len(), 1);
    assert_eq!(dname.a().len(), zone::A_ONLY_ADDRS.len());
    let chain = client::udp(upstream.addr(), &q(zone::CHAIN, RecordType::A).bytes()).await;
    assert_eq!(chain.answers_of(RecordType::CNAME).len(), 2);
    assert_eq!(chain.a().len(), zone::A_ONLY_ADDRS.len());
}

#[tokio::test]
async fn fake_upstream_sends_a_forged_reply_before_the_real_one() {
    let upstream = Upstream::start().await;
    upstream.on(zone::DUAL, None, Action::WrongId { then_answer: false });
    let query = q(zone::DUAL, RecordType::A);
    let raw = client::udp_maybe(upstream.addr(), &query.bytes(), client::SILENCE)
        .await
        .expect("a forged reply");
    assert_ne!(raw[..2], query.bytes()[..2]);
}
