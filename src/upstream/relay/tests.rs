use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::{MAX_PER_SOCKET, MAX_QUERY, Outcome, Ready, Refused, Relay};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::upstream::Upstream;
use crate::wire::{self, rcode};

/// An upstream config pointing at `server`, 200 ms per attempt, 2 attempts.
fn upstream(server: SocketAddr) -> Upstream {
    let cfg = Config::from_toml(&format!(
        "[upstream]\nservers = [\"{server}\"]\ntimeout = \"200ms\"\nattempts = 2"
    ))
    .unwrap();
    Upstream::new(&cfg.upstream, &Metrics::default())
}

/// A query for `example.` A with ID `id`.
fn query(id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(b"\x07example\x00\x00\x01\x00\x01");
    q
}

/// The fake server's socket, and the relay's upstream pointed at it.
fn server() -> (UdpSocket, Upstream) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let up = upstream(s.local_addr().unwrap());
    (s, up)
}

/// Receives one query on the fake server: its bytes and source.
fn receive(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 512];
    let (n, from) = s.recv_from(&mut buf).unwrap();
    (buf[..n].to_vec(), from)
}

/// `query` turned into a response (QR set): the reply a server gives.
fn response(query: &[u8]) -> Vec<u8> {
    let mut r = query.to_vec();
    r[2] |= 0x80;
    r
}

#[tokio::test]
async fn a_reply_is_handed_out_with_the_clients_query_and_id() {
    let (s, up) = server();
    let mut relay = Relay::<u32>::new(&up, 1);
    relay.start(&up, &query(0xbeef), 7, Instant::now()).unwrap();
    relay.flush(&up, |_| panic!("nothing fails"));
    let (sent, from) = receive(&s);
    assert_ne!(wire::id(&sent), Some(0xbeef), "our own ID upstream");
    assert_eq!(
        sent[2..],
        query(0xbeef)[2..],
        "the client's bytes otherwise"
    );
    s.send_to(&response(&sent), from).unwrap();
    assert_eq!(relay.ready().await, Ready::Replies);
    let mut got = Vec::new();
    relay.answers(&up, Instant::now(), |o| match o {
        Outcome::Answered { query, token, .. } => got.push((query.to_vec(), token)),
        Outcome::Resume { .. } => panic!("answered"),
    });
    assert_eq!(got, vec![(query(0xbeef), 7)]);
    assert!(relay.is_empty());
}

#[tokio::test]
async fn a_reply_with_another_id_or_question_is_dropped_and_the_real_one_answers() {
    let (s, up) = server();
    let mut relay = Relay::<u32>::new(&up, 1);
    relay.start(&up, &query(1), 1, Instant::now()).unwrap();
    relay.flush(&up, |_| panic!("nothing fails"));
    let (sent, from) = receive(&s);
    let mut wrong_id = response(&sent);
    wrong_id[0] ^= 0xff;
    let mut wrong_question = response(&sent);
    wrong_question[13] = b'x';
    for forged in [wrong_id, wrong_question, response(&sent)] {
        s.send_to(&forged, from).unwrap();
    }
    let mut answered = 0;
    while answered == 0 {
        relay.ready().await;
        relay.answers(&up, Instant::now(), |o| {
            assert!(matches!(o, Outcome::Answered { .. }));
            answered += 1;
        });
    }
    assert!(relay.is_empty());
}

#[tokio::test]
async fn a_query_unanswered_past_the_timeout_is_handed_back_to_resume() {
    let (_s, up) = server();
    let mut relay = Relay::<u32>::new(&up, 1);
    let started = Instant::now();
    relay.start(&up, &query(9), 9, started).unwrap();
    relay.flush(&up, |_| panic!("nothing fails"));
    assert_eq!(relay.ready().await, Ready::Deadline);
    let mut resumed = Vec::new();
    relay.expire(&up, started + Duration::from_millis(200), |o| match o {
        Outcome::Resume {
            query,
            token,
            resume,
        } => resumed.push((
            query.to_vec(),
            token,
            resume.attempts_done,
            resume.last_server,
        )),
        Outcome::Answered { .. } => panic!("nothing answered"),
    });
    assert_eq!(resumed, vec![(query(9), 9, 1, Some(0))]);
    assert!(relay.is_empty());
}

#[tokio::test]
async fn a_servfail_with_attempts_left_is_handed_back_with_the_reply() {
    let (s, up) = server();
    let mut relay = Relay::<u32>::new(&up, 1);
    relay.start(&up, &query(3), 3, Instant::now()).unwrap();
    relay.flush(&up, |_| panic!("nothing fails"));
    let (sent, from) = receive(&s);
    let mut servfail = response(&sent);
    servfail[3] = (servfail[3] & 0xf0) | 2;
    s.send_to(&servfail, from).unwrap();
    relay.ready().await;
    let mut kept = None;
    relay.answers(&up, Instant::now(), |o| match o {
        Outcome::Resume { resume, .. } => {
            kept = resume.error_reply.map(|r| r.rcode());
        }
        Outcome::Answered { .. } => panic!("an attempt is left"),
    });
    assert_eq!(kept, Some(rcode::SERVFAIL));
}

#[tokio::test]
async fn a_socket_with_every_id_it_may_use_in_flight_refuses_more() {
    let (_s, up) = server();
    let mut relay = Relay::<u32>::new(&up, 1);
    let now = Instant::now();
    for i in 0..MAX_PER_SOCKET {
        relay.start(&up, &query(i as u16), 0, now).unwrap();
    }
    let refused = relay.start(&up, &query(0), 0, now).unwrap_err();
    assert_eq!(refused.0, Refused::Full);
    assert_eq!(relay.len(), MAX_PER_SOCKET);
}

#[tokio::test]
async fn a_query_longer_than_the_limit_is_refused_so_no_buffer_grows_to_it() {
    let (_s, up) = server();
    let mut relay = Relay::<u32>::new(&up, 1);
    let mut long = query(1);
    long.resize(MAX_QUERY + 1, 0);
    let refused = relay.start(&up, &long, 0, Instant::now()).unwrap_err();
    assert_eq!(refused.0, Refused::TooLarge);
    assert!(relay.is_empty());
}

#[tokio::test]
async fn bytes_that_are_no_query_are_refused() {
    let (_s, up) = server();
    let mut relay = Relay::<u32>::new(&up, 1);
    let refused = relay.start(&up, &[0, 1, 2], 0, Instant::now()).unwrap_err();
    assert_eq!(refused.0, Refused::Malformed);
    assert!(relay.is_empty());
}
