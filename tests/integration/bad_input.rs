//! SPEC §8: malformed queries, the ACL, and upstream replies that must not be
//! believed (§7: accepted only from the server asked, with the same ID and question).

use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::support::{Action, Dns64d, q, wkp, zone};

/// A 12-byte header: `id`, flags bytes, then QD/AN/NS/AR counts.
fn header(id: u16, flags: [u8; 2], counts: [u16; 4]) -> Vec<u8> {
    let mut h = id.to_be_bytes().to_vec();
    h.extend_from_slice(&flags);
    for c in counts {
        h.extend_from_slice(&c.to_be_bytes());
    }
    h
}

/// RD=1, opcode QUERY.
const QUERY_FLAGS: [u8; 2] = [0x01, 0x00];
/// QTYPE AAAA, QCLASS IN.
const AAAA_IN: [u8; 4] = [0, 28, 0, 1];

/// `dual.example.` as labels.
fn dual_name() -> Vec<u8> {
    let mut n = vec![4];
    n.extend_from_slice(b"dual");
    n.push(7);
    n.extend_from_slice(b"example");
    n.push(0);
    n
}

/// A well-formed AAAA query for dual.example. with `id` and `counts`.
fn query_with_counts(id: u16, counts: [u16; 4], questions: usize) -> Vec<u8> {
    let mut p = header(id, QUERY_FLAGS, counts);
    for _ in 0..questions {
        p.extend_from_slice(&dual_name());
        p.extend_from_slice(&AAAA_IN);
    }
    p
}

/// After a bad packet, dns64d still answers a good query.
async fn assert_still_answers(d: &Dns64d) {
    let reply = d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), vec![zone::DUAL_AAAA], "server still answers");
    let reply = d.tcp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(reply.aaaa(), vec![zone::DUAL_AAAA], "server still answers");
}

/// A reply to `packet` must be FORMERR with the packet's ID; no reply is also
/// accepted (SPEC §8: "rejected without panic, in bounded time").
async fn assert_rejected(d: &Dns64d, packet: &[u8]) {
    let started = Instant::now();
    if let Some(raw) = d.udp_raw(packet).await {
        let reply = crate::support::Reply::parse(raw);
        assert_eq!(reply.rcode(), ResponseCode::FormErr, "{:?}", reply.msg);
        assert_eq!(reply.raw[..2], packet[..2], "ID echoed");
        assert!(started.elapsed() < Duration::from_secs(1), "bounded time");
    }
    assert_still_answers(d).await;
}

/// The rcode of the reply to `packet`, which must come.
async fn rcode_of(d: &Dns64d, packet: &[u8]) -> crate::support::Reply {
    let raw = d
        .udp_raw(packet)
        .await
        .unwrap_or_else(|| panic!("no reply to {packet:02x?}"));
    let reply = crate::support::Reply::parse(raw);
    assert_eq!(reply.raw[..2], packet[..2], "ID echoed");
    reply
}

#[tokio::test]
async fn a_packet_shorter_than_a_header_is_dropped() {
    let d = Dns64d::start("").await;
    let packet = &query_with_counts(0x1111, [1, 0, 0, 0], 1)[..7];
    assert_eq!(d.udp_raw(packet).await, None);
    assert_still_answers(&d).await;
}

#[tokio::test]
async fn a_response_packet_is_dropped_silently() {
    let d = Dns64d::start("").await;
    let mut packet = query_with_counts(0x2222, [1, 0, 0, 0], 1);
    packet[2] |= 0x80; // QR=1
    assert_eq!(d.udp_raw(&packet).await, None);
    assert_eq!(
        d.upstream.total_received(),
        0,
        "a response is never forwarded"
    );
    assert_still_answers(&d).await;
}

#[tokio::test]
async fn an_opcode_other_than_query_gets_notimp() {
    let d = Dns64d::start("").await;
    for opcode in [1u8, 2, 4, 5] {
        let mut packet = query_with_counts(0x3300 + u16::from(opcode), [1, 0, 0, 0], 1);
        packet[2] = (opcode << 3) | 0x01;
        let reply = rcode_of(&d, &packet).await;
        assert_eq!(reply.rcode(), ResponseCode::NotImp, "opcode {opcode}");
    }
    assert_eq!(d.upstream.total_received(), 0);
}

#[tokio::test]
async fn a_query_without_a_question_gets_formerr() {
    let d = Dns64d::start("").await;
    let reply = rcode_of(&d, &query_with_counts(0x4444, [0, 0, 0, 0], 0)).await;
    assert_eq!(reply.rcode(), ResponseCode::FormErr);
}

#[tokio::test]
async fn a_query_with_two_questions_gets_formerr() {
    let d = Dns64d::start("").await;
    let reply = rcode_of(&d, &query_with_counts(0x5555, [2, 0, 0, 0], 2)).await;
    assert_eq!(reply.rcode(), ResponseCode::FormErr);
    assert_eq!(d.upstream.total_received(), 0);
}

#[tokio::test]
async fn a_question_cut_short_gets_formerr() {
    let d = Dns64d::start("").await;
    let full = query_with_counts(0x5656, [1, 0, 0, 0], 1);
    let reply = rcode_of(&d, &full[..full.len() - 6]).await;
    assert_eq!(reply.rcode(), ResponseCode::FormErr);
}

#[tokio::test]
async fn a_compression_loop_in_the_question_is_rejected_without_panic() {
    let d = Dns64d::start("").await;
    let mut packet = header(0x6666, QUERY_FLAGS, [1, 0, 0, 0]);
    packet.extend_from_slice(&[0xc0, 12]); // points at itself
    packet.extend_from_slice(&AAAA_IN);
    assert_rejected(&d, &packet).await;
    // A two-step loop: label, then a pointer back to the label.
    let mut packet = header(0x6667, QUERY_FLAGS, [1, 0, 0, 0]);
    packet.extend_from_slice(&[1, b'a', 0xc0, 12]);
    packet.extend_from_slice(&AAAA_IN);
    assert_rejected(&d, &packet).await;
}

#[tokio::test]
async fn a_forward_compression_pointer_is_rejected_without_panic() {
    let d = Dns64d::start("").await;
    let mut packet = header(0x7777, QUERY_FLAGS, [1, 0, 0, 0]);
    packet.extend_from_slice(&[0xc0, 18]); // points past itself, at the qtype
    packet.extend_from_slice(&AAAA_IN);
    packet.extend_from_slice(&dual_name());
    assert_rejected(&d, &packet).await;
}

#[tokio::test]
async fn an_out_of_bounds_compression_pointer_is_rejected_without_panic() {
    let d = Dns64d::start("").await;
    let mut packet = header(0x7878, QUERY_FLAGS, [1, 0, 0, 0]);
    packet.extend_from_slice(&[0xc3, 0xff]);
    packet.extend_from_slice(&AAAA_IN);
    assert_rejected(&d, &packet).await;
}

#[tokio::test]
async fn a_label_longer_than_63_bytes_is_rejected_without_panic() {
    let d = Dns64d::start("").await;
    let mut packet = header(0x8888, QUERY_FLAGS, [1, 0, 0, 0]);
    packet.push(64);
    packet.extend_from_slice(&[b'a'; 64]);
    packet.push(0);
    packet.extend_from_slice(&AAAA_IN);
    assert_rejected(&d, &packet).await;
}

#[tokio::test]
async fn a_name_longer_than_255_bytes_is_rejected_without_panic() {
    let d = Dns64d::start("").await;
    let mut packet = header(0x9999, QUERY_FLAGS, [1, 0, 0, 0]);
    for _ in 0..5 {
        packet.push(63);
        packet.extend_from_slice(&[b'a'; 63]);
    }
    packet.push(0);
    packet.extend_from_slice(&AAAA_IN);
    assert_rejected(&d, &packet).await;
}

#[tokio::test]
async fn record_counts_that_overrun_the_packet_are_rejected_without_panic() {
    let d = Dns64d::start("").await;
    assert_rejected(&d, &query_with_counts(0xaaaa, [1, 200, 0, 0], 1)).await;
    assert_rejected(&d, &query_with_counts(0xaaab, [1, 0, 0, 65535], 1)).await;
    assert_rejected(&d, &query_with_counts(0xaaac, [65535, 0, 0, 0], 1)).await;
}

#[tokio::test]
async fn a_malformed_tcp_message_does_not_stop_the_server() {
    let d = Dns64d::start("").await;
    let mut conn = crate::support::client::TcpClient::connect(d.addr).await;
    let mut packet = header(0xbbbb, QUERY_FLAGS, [1, 0, 0, 0]);
    packet.extend_from_slice(&[0xc0, 12]);
    packet.extend_from_slice(&AAAA_IN);
    conn.send(&packet).await;
    if let Some(raw) = conn.recv_within(crate::support::client::SILENCE).await {
        let reply = crate::support::Reply::parse(raw);
        assert_eq!(reply.rcode(), ResponseCode::FormErr);
    }
    assert_still_answers(&d).await;
}

#[tokio::test]
async fn a_client_outside_server_allow_is_refused_and_upstream_never_asked() {
    let d = Dns64d::start(
        r#"[server]
        allow = ["10.0.0.0/8", "fc00::/7"]"#,
    )
    .await;
    let query = q(zone::DUAL, RecordType::AAAA);
    let over_udp = d.udp(&query).await;
    assert_eq!(over_udp.rcode(), ResponseCode::Refused);
    assert!(over_udp.msg.answers.is_empty());
    assert_eq!(over_udp.raw[..2], query.bytes()[..2], "ID echoed");
    let over_tcp = d.tcp(&query).await;
    assert_eq!(over_tcp.rcode(), ResponseCode::Refused);
    assert_eq!(d.upstream.total_received(), 0);
}

#[tokio::test]
async fn a_refused_answer_to_an_edns_client_carries_extended_error_18() {
    let d = Dns64d::start(
        r#"[server]
        allow = ["10.0.0.0/8"]"#,
    )
    .await;
    let reply = d.udp(&q(zone::DUAL, RecordType::AAAA).edns(1232)).await;
    assert_eq!(reply.rcode(), ResponseCode::Refused);
    assert!(
        reply.ede_codes().contains(&18),
        "EDE 18 Prohibited: {:?}",
        reply.msg.edns
    );
}

#[tokio::test]
async fn error_answers_dns64d_makes_itself_set_ra() {
    let d = Dns64d::start("").await;
    let formerr = rcode_of(&d, &query_with_counts(0x4545, [0, 0, 0, 0], 0)).await;
    assert_eq!(formerr.rcode(), ResponseCode::FormErr);
    assert!(formerr.msg.metadata.recursion_available, "FORMERR sets RA");
    let mut packet = query_with_counts(0x4646, [1, 0, 0, 0], 1);
    packet[2] = (2 << 3) | 0x01;
    let notimp = rcode_of(&d, &packet).await;
    assert_eq!(notimp.rcode(), ResponseCode::NotImp);
    assert!(notimp.msg.metadata.recursion_available, "NOTIMP sets RA");
    let refusing = Dns64d::start(
        r#"[server]
        allow = ["10.0.0.0/8"]"#,
    )
    .await;
    let refused = refusing.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(refused.rcode(), ResponseCode::Refused);
    assert!(refused.msg.metadata.recursion_available, "REFUSED sets RA");
}

// ---- upstream replies that must be ignored ----

/// One attempt with room for the real answer after a forged one: a dns64d that
/// believed the forgery, or gave up on it, gets the test wrong.
const ONE_PATIENT_ATTEMPT: &str = r#"[upstream]
    timeout = "1s"
    attempts = 1"#;

async fn assert_forgery_ignored(action: Action) {
    let d = Dns64d::start(ONE_PATIENT_ATTEMPT).await;
    d.upstream.on(zone::DUAL, None, action);
    d.upstream.on(zone::A_ONLY, None, action);
    let native = d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(native.aaaa(), vec![zone::DUAL_AAAA], "{action:?}");
    let synthesized = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    let expected: Vec<_> = zone::A_ONLY_ADDRS.iter().map(|(a, _)| wkp(*a)).collect();
    assert_eq!(synthesized.aaaa(), expected, "{action:?}");
}

#[tokio::test]
async fn upstream_garbage_is_ignored() {
    assert_forgery_ignored(Action::Garbage { then_answer: true }).await;
}

#[tokio::test]
async fn an_upstream_reply_with_the_wrong_id_is_ignored() {
    assert_forgery_ignored(Action::WrongId { then_answer: true }).await;
}

#[tokio::test]
async fn an_upstream_reply_with_another_question_is_ignored() {
    assert_forgery_ignored(Action::WrongQuestion { then_answer: true }).await;
}

#[tokio::test]
async fn an_upstream_reply_from_another_source_is_ignored() {
    assert_forgery_ignored(Action::Spoof { then_answer: true }).await;
}

#[tokio::test]
async fn an_upstream_that_only_sends_forgeries_gives_servfail() {
    let d = Dns64d::start(
        r#"[upstream]
        timeout = "200ms"
        attempts = 2"#,
    )
    .await;
    d.upstream
        .on(zone::DUAL, None, Action::WrongId { then_answer: false });
    let reply = d.udp(&q(zone::DUAL, RecordType::TXT)).await;
    assert_eq!(reply.rcode(), ResponseCode::ServFail);
}

// ---- bounded resources ----

#[tokio::test]
async fn queries_past_max_inflight_get_servfail_or_no_answer() {
    let d = Dns64d::start(
        r#"[server]
        max_inflight = 2
        [upstream]
        timeout = "2s"
        attempts = 1"#,
    )
    .await;
    d.upstream
        .on_all(None, Action::Delay(Duration::from_millis(600)));
    let names = [
        zone::DUAL,
        zone::TXT_ONLY,
        zone::A_ONLY,
        zone::AAAA_ONLY,
        zone::MX,
        zone::MANY,
    ];
    let mut pending = Vec::new();
    for name in names {
        let packet = q(name, RecordType::TXT).bytes();
        let addr = d.addr;
        pending.push(tokio::spawn(async move {
            crate::support::client::udp_maybe(addr, &packet, Duration::from_secs(2)).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        d.upstream.total_received() <= 2,
        "{} upstream queries in flight with max_inflight = 2",
        d.upstream.total_received()
    );
    let mut answered = 0;
    for task in pending {
        if let Some(raw) = task.await.expect("client task") {
            let reply = crate::support::Reply::parse(raw);
            match reply.rcode() {
                ResponseCode::NoError => answered += 1,
                ResponseCode::ServFail => {}
                other => panic!("unexpected rcode {other} past max_inflight"),
            }
        }
    }
    assert!(answered <= 2, "{answered} answered with max_inflight = 2");
}

#[tokio::test]
async fn tcp_connections_past_max_tcp_connections_are_not_served() {
    use crate::support::client::{SILENCE, TcpClient};
    let d = Dns64d::start(
        r#"[server]
        max_tcp_connections = 2"#,
    )
    .await;
    let query = q(zone::DUAL, RecordType::AAAA);
    let mut first = TcpClient::connect(d.addr).await;
    first.send(&query.bytes()).await;
    first.recv().await;
    let mut second = TcpClient::connect(d.addr).await;
    second.send(&query.bytes()).await;
    second.recv().await;
    // The third may be accepted and closed, left unaccepted, or answered with SERVFAIL.
    let mut third = TcpClient::connect(d.addr).await;
    third.send(&query.bytes()).await;
    if let Some(raw) = third.recv_within(SILENCE).await {
        let reply = crate::support::Reply::parse(raw);
        assert_eq!(
            reply.rcode(),
            ResponseCode::ServFail,
            "a connection past the cap was served"
        );
    }
    drop(third);
    // Closing one frees a slot, once dns64d has seen the close.
    drop(first);
    let started = std::time::Instant::now();
    let reply = loop {
        let mut conn = TcpClient::connect(d.addr).await;
        conn.send(&query.bytes()).await;
        if let Some(raw) = conn.recv_within(SILENCE).await {
            break crate::support::Reply::parse(raw);
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "no slot freed by closing a connection"
        );
    };
    assert_eq!(reply.aaaa(), vec![zone::DUAL_AAAA]);
}
