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

#[tokio::test]
async fn fake_upstream_rules_for_the_next_queries_expire_and_drop_one_in_n_alternates() {
    let upstream = Upstream::start().await;
    upstream.on_next(zone::DUAL, None, Action::Rcode(ResponseCode::Refused), 1);
    let query = q(zone::DUAL, RecordType::TXT).bytes();
    let first = client::udp(upstream.addr(), &query).await;
    assert_eq!(first.rcode(), ResponseCode::Refused);
    let second = client::udp(upstream.addr(), &query).await;
    assert_eq!(second.rcode(), ResponseCode::NoError, "the rule expired");
    upstream.on_all(None, Action::DropOneIn(2));
    let answered: Vec<bool> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(
                client::udp_maybe(upstream.addr(), &query, client::SILENCE)
                    .await
                    .is_some(),
            );
        }
        v
    };
    assert_eq!(answered, vec![false, true, false, true]);
}

#[tokio::test]
async fn fake_upstream_chops_a_reply_after_its_question_and_cuts_tcp_mid_message() {
    let upstream = Upstream::start().await;
    upstream.on(zone::DUAL, None, Action::Chopped { then_answer: false });
    let query = q(zone::DUAL, RecordType::TXT).bytes();
    let raw = client::udp_maybe(upstream.addr(), &query, client::SILENCE)
        .await
        .expect("a chopped reply");
    assert_eq!(raw[..2], query[..2], "the right ID");
    assert_eq!(question_bytes(&raw), question_bytes(&query), "the question");
    assert!(
        hickory_proto::op::Message::from_vec(&raw).is_err(),
        "records cut off"
    );
    upstream.on(zone::BIG_TXT, None, Action::Cut);
    let big = q(zone::BIG_TXT, RecordType::TXT).bytes();
    assert!(client::udp(upstream.addr(), &big).await.tc(), "TC over UDP");
    let mut conn = client::TcpClient::connect(upstream.addr()).await;
    conn.send(&big).await;
    assert_eq!(
        conn.recv_within(client::SILENCE).await,
        None,
        "cut over TCP"
    );
}
