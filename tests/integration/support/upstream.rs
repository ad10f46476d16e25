//! A fake upstream resolver on 127.0.0.1 that answers from [`Zone::fixture`] and
//! records every query it receives, so tests can assert what dns64d asked (and what
//! it did not ask).
//!
//! UDP and TCP share one port. Over UDP an answer larger than 512 bytes (or than the
//! query's EDNS payload size) is replaced by an empty reply with TC=1, as a real
//! server does; over TCP the answer is sent whole.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

use super::zone::{self, Zone};

/// The EDNS payload size the fake upstream advertises. It differs from every
/// `server.udp_payload` the tests configure, so a leaked upstream OPT is visible.
pub const UPSTREAM_PAYLOAD: u16 = 4000;

/// How long a forged reply precedes the real one.
const FORGERY_LEAD: Duration = Duration::from_millis(40);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What the fake upstream does with a matching query.
#[derive(Clone, Copy, Debug)]
pub enum Action {
    /// Answer from the zone.
    Answer,
    /// Answer with this rcode and no records.
    Rcode(ResponseCode),
    /// Answer with this rcode, no records, and (to a query with EDNS) this
    /// RFC 8914 extended error: a validating resolver's SERVFAIL for bogus
    /// data carries 6 (DNSSEC Bogus).
    RcodeWithEde(ResponseCode, u16),
    /// Answer from the zone, records included, but with this rcode (a broken
    /// upstream that sends data with an error).
    RcodeWithRecords(ResponseCode),
    /// Never answer.
    Drop,
    /// Wait, then answer from the zone.
    Delay(Duration),
    /// Send bytes that carry the right ID and QR=1 but do not parse; then, if
    /// `then_answer`, the real answer.
    Garbage { then_answer: bool },
    /// Send a well-formed forged answer ([`zone::FORGED_A`] / [`zone::FORGED_AAAA`])
    /// with another ID; then, if `then_answer`, the real answer.
    WrongId { then_answer: bool },
    /// Send a forged answer with the right ID but the question
    /// [`zone::FORGED_QNAME`]; then, if `then_answer`, the real answer.
    WrongQuestion { then_answer: bool },
    /// Send the forged answer, with the right ID, from another socket; then, if
    /// `then_answer`, the real answer from the right one. (UDP only; TCP answers.)
    Spoof { then_answer: bool },
    /// Send `forgeries` forged answers with wrong IDs from the upstream socket and
    /// as many with the right ID from another socket, then the real answer. (UDP
    /// only; TCP answers.)
    Flood { forgeries: u16 },
    /// Send the real answer twice.
    Twice,
    /// Over UDP, send the whole answer even when it is larger than the query
    /// allows (512 bytes, or its EDNS payload size); TCP answers as usual.
    Oversize,
    /// Over TCP, the full length prefix and the first half of the answer, then
    /// close the connection; over UDP, an empty answer with TC=1 (so the asker
    /// comes back over TCP).
    Cut,
    /// Over UDP, the first half of the real answer (right ID and question, the
    /// records cut off); then, if `then_answer`, the real answer. TCP answers.
    Chopped { then_answer: bool },
    /// Drop the first matching query and every `n`th after it; answer the rest.
    DropOneIn(u32),
    /// Over UDP, an empty answer with TC=1 whatever its size (so the asker comes
    /// back over TCP); over TCP, the answer.
    Truncated,
}

struct Rule {
    name: Option<Name>,
    qtype: Option<RecordType>,
    action: Action,
    /// How many more queries the rule applies to; `None`: forever.
    remaining: Option<u32>,
    /// How many queries the rule has matched.
    matched: u32,
}

/// One query as the fake upstream received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub transport: Transport,
    pub source: SocketAddr,
    pub raw: Vec<u8>,
    pub message: Message,
}

impl Seen {
    /// The query name, letter case as received.
    pub fn name(&self) -> &Name {
        &self.message.queries[0].name
    }

    pub fn qtype(&self) -> RecordType {
        self.message.queries[0].query_type
    }

    pub fn id(&self) -> u16 {
        self.message.metadata.id
    }
}

#[derive(Default)]
struct State {
    rules: VecDeque<Rule>,
    seen: Vec<Seen>,
    unparsed: usize,
    /// Answers set by [`Upstream::set_answer`], in place of the zone's.
    answers: Vec<(Name, RecordType, Vec<Record>)>,
}

struct Shared {
    zone: Zone,
    recursion_available: AtomicBool,
    state: Mutex<State>,
    spoof_socket: UdpSocket,
}

/// The running fake upstream; stops when dropped.
pub struct Upstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Upstream {
    /// Binds UDP and TCP on one port of 127.0.0.1 and starts answering.
    pub async fn start() -> Upstream {
        let (udp, tcp) = bind_pair().await;
        Upstream::serve(udp, tcp).await
    }

    /// Starts answering on sockets reserved earlier with [`Reserved::new`].
    pub async fn start_on(reserved: Reserved) -> Upstream {
        Upstream::serve(reserved.udp, reserved.tcp).await
    }

    async fn serve(udp: UdpSocket, tcp: TcpListener) -> Upstream {
        let addr = udp.local_addr().expect("bound");
        let spoof_socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind spoof socket");
        let shared = Arc::new(Shared {
            zone: Zone::fixture(),
            recursion_available: AtomicBool::new(true),
            state: Mutex::new(State::default()),
            spoof_socket,
        });
        let upstream = Upstream {
            addr,
            shared: shared.clone(),
            shutdown: CancellationToken::new(),
        };
        // Built-in behaviour of the fixture names.
        let servfail = Action::Rcode(ResponseCode::ServFail);
        upstream.on(zone::AAAA_SERVFAIL, Some(RecordType::AAAA), servfail);
        upstream.on(zone::A_SERVFAIL, Some(RecordType::A), servfail);
        upstream.on(zone::BROKEN, None, servfail);

        tokio::spawn(serve_udp(
            Arc::new(udp),
            shared.clone(),
            upstream.shutdown.clone(),
        ));
        tokio::spawn(serve_tcp(tcp, shared, upstream.shutdown.clone()));
        upstream
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// From now on, queries for `name` (any letter case) and `qtype` (every type if
    /// `None`) get `action`. The latest matching rule wins.
    pub fn on(&self, name: &str, qtype: Option<RecordType>, action: Action) {
        let name = Name::from_ascii(name).expect("valid rule name");
        self.push_rule(Rule {
            name: Some(name),
            qtype,
            action,
            remaining: None,
            matched: 0,
        });
    }

    /// Like [`Upstream::on`], for the next `times` matching queries only; then
    /// the rules below it apply again.
    pub fn on_next(&self, name: &str, qtype: Option<RecordType>, action: Action, times: u32) {
        let name = Name::from_ascii(name).expect("valid rule name");
        self.push_rule(Rule {
            name: Some(name),
            qtype,
            action,
            remaining: Some(times),
            matched: 0,
        });
    }

    /// From now on, every query of `qtype` (every query if `None`) gets `action`.
    pub fn on_all(&self, qtype: Option<RecordType>, action: Action) {
        self.push_rule(Rule {
            name: None,
            qtype,
            action,
            remaining: None,
            matched: 0,
        });
    }

    fn push_rule(&self, rule: Rule) {
        self.shared.state.lock().unwrap().rules.push_front(rule);
    }

    /// From now on, `name` (any letter case) and `qtype` are answered NOERROR
    /// with exactly `records` (replacing the zone's data and any earlier
    /// `set_answer` for them): an upstream whose data changes while dns64d runs.
    pub fn set_answer(&self, name: &str, qtype: RecordType, records: Vec<Record>) {
        let name = Name::from_ascii(name).expect("valid name");
        let mut state = self.shared.state.lock().unwrap();
        state
            .answers
            .retain(|(n, t, _)| !(n == &name && *t == qtype));
        state.answers.push((name, qtype, records));
    }

    /// Whether replies set RA (default: yes, like a recursive resolver).
    pub fn set_recursion_available(&self, ra: bool) {
        self.shared.recursion_available.store(ra, Ordering::Relaxed);
    }

    /// Every parsed query received so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.state.lock().unwrap().seen.clone()
    }

    /// Queries received so far for `name` (any case) and `qtype`.
    pub fn asked(&self, name: &str, qtype: RecordType) -> Vec<Seen> {
        let name = Name::from_ascii(name).expect("valid name");
        self.seen()
            .into_iter()
            .filter(|s| s.name() == &name && s.qtype() == qtype)
            .collect()
    }

    /// How many queries were received in total, parsed or not.
    pub fn total_received(&self) -> usize {
        let state = self.shared.state.lock().unwrap();
        state.seen.len() + state.unparsed
    }
}

/// UDP and TCP bound on one port of 127.0.0.1 with nobody reading or accepting
/// yet: an upstream that does not answer until [`Upstream::start_on`] serves
/// them. Holding the sockets keeps anyone else from taking the port meanwhile.
pub struct Reserved {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl Reserved {
    pub async fn new() -> Reserved {
        let (udp, tcp) = bind_pair().await;
        Reserved { udp, tcp }
    }

    pub fn addr(&self) -> SocketAddr {
        self.udp.local_addr().expect("bound")
    }
}

/// A port of 127.0.0.1 free for UDP and TCP right now, and nobody listening on it
/// (for an upstream that never answers: queries to it are refused).
pub async fn free_port() -> u16 {
    let (udp, _tcp) = bind_pair().await;
    udp.local_addr().expect("bound").port()
}

async fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind udp");
        let port = udp.local_addr().expect("bound").port();
        if let Ok(tcp) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
            return (udp, tcp);
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

impl Shared {
    /// Records the query and decides what to do with it.
    fn receive(&self, raw: &[u8], source: SocketAddr, transport: Transport) -> Option<Plan> {
        let mut state = self.state.lock().unwrap();
        let message = match Message::from_vec(raw) {
            Ok(m) if m.queries.len() == 1 => m,
            _ => {
                state.unparsed += 1;
                return None;
            }
        };
        let query = &message.queries[0];
        let rule = state.rules.iter_mut().find(|r| {
            r.remaining != Some(0)
                && r.name.as_ref().is_none_or(|n| n == &query.name)
                && r.qtype.is_none_or(|t| t == query.query_type)
        });
        let action = match rule {
            Some(rule) => {
                if let Some(n) = &mut rule.remaining {
                    *n -= 1;
                }
                rule.matched += 1;
                match rule.action {
                    Action::DropOneIn(n) if (rule.matched - 1) % n.max(1) == 0 => Action::Drop,
                    Action::DropOneIn(_) => Action::Answer,
                    action => action,
                }
            }
            None => Action::Answer,
        };
        state.seen.push(Seen {
            transport,
            source,
            raw: raw.to_vec(),
            message: message.clone(),
        });
        Some(Plan { message, action })
    }

    /// The real reply to `query`, sized for `transport`.
    fn reply(&self, query: &Message, action: Action, transport: Transport) -> Vec<u8> {
        let q = &query.queries[0];
        let mut reply = response_skeleton(query);
        reply.metadata.recursion_available = self.recursion_available.load(Ordering::Relaxed);
        if let Action::Rcode(rcode) = action {
            reply.metadata.response_code = rcode;
            return reply.to_vec().expect("encode");
        }
        if let Action::RcodeWithEde(rcode, info_code) = action {
            reply.metadata.response_code = rcode;
            if let Some(edns) = &mut reply.edns {
                let mut data = info_code.to_be_bytes().to_vec();
                data.extend_from_slice(b"validation failure");
                edns.options_mut()
                    .insert(EdnsOption::Unknown(super::client::EDE_OPTION, data));
            }
            return reply.to_vec().expect("encode");
        }
        let dnssec_ok = query.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
        let set = self
            .state
            .lock()
            .unwrap()
            .answers
            .iter()
            .find(|(n, t, _)| n == &q.name && *t == q.query_type)
            .map(|(_, _, records)| records.clone());
        let answer = match set {
            Some(answers) => zone::Answer {
                nxdomain: false,
                answers,
                authorities: Vec::new(),
                additionals: Vec::new(),
                authentic_data: false,
            },
            None => self.zone.lookup(&q.name, q.query_type, dnssec_ok),
        };
        if answer.nxdomain {
            reply.metadata.response_code = ResponseCode::NXDomain;
        }
        if let Action::RcodeWithRecords(rcode) = action {
            reply.metadata.response_code = rcode;
        }
        reply.metadata.authentic_data = answer.authentic_data;
        reply.answers = answer.answers;
        reply.authorities = answer.authorities;
        reply.additionals = answer.additionals;
        let bytes = reply.to_vec().expect("encode");
        let limit = match (&query.edns, transport) {
            (_, Transport::Tcp) => usize::MAX,
            _ if matches!(action, Action::Oversize) => usize::MAX,
            _ if matches!(action, Action::Truncated | Action::Cut) => 0,
            (Some(edns), Transport::Udp) => usize::from(edns.max_payload().max(512)),
            (None, Transport::Udp) => 512,
        };
        if bytes.len() <= limit {
            return bytes;
        }
        reply.answers.clear();
        reply.authorities.clear();
        reply.additionals.clear();
        reply.metadata.truncation = true;
        reply.to_vec().expect("encode")
    }
}

/// A response to `query` with its ID, question, RD, CD and (if it had one) an OPT;
/// RA=1 as from a recursive resolver.
fn response_skeleton(query: &Message) -> Message {
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.message_type = MessageType::Response;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.checking_disabled = query.metadata.checking_disabled;
    reply.metadata.recursion_available = true;
    reply.queries = query.queries.clone();
    if let Some(edns) = &query.edns {
        let mut ours = Edns::new();
        ours.set_max_payload(UPSTREAM_PAYLOAD);
        ours.set_dnssec_ok(edns.flags().dnssec_ok);
        reply.edns = Some(ours);
    }
    reply
}

/// A well-formed answer with forged data for `query`'s question, under `id`.
fn forged(query: &Message, id: u16) -> Vec<u8> {
    let mut reply = response_skeleton(query);
    reply.metadata.id = id;
    let q = &query.queries[0];
    let rdata = match q.query_type {
        RecordType::AAAA => RData::AAAA(AAAA(zone::FORGED_AAAA)),
        _ => RData::A(A(zone::FORGED_A)),
    };
    reply
        .answers
        .push(Record::from_rdata(q.name.clone(), 300, rdata));
    reply.to_vec().expect("encode")
}

/// A well-formed forged answer with `query`'s ID but another question.
fn forged_question(query: &Message) -> Vec<u8> {
    let mut other = query.clone();
    other.queries[0].name = Name::from_ascii(zone::FORGED_QNAME).expect("valid name");
    forged(&other, query.metadata.id)
}

/// A header with the right ID, QR=1, QDCOUNT=1 and ANCOUNT=3, followed by bytes
/// that are not a question.
fn garbage(id: u16) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0]);
    bytes.extend_from_slice(&[0xc0, 0xff, 0x3f, 0xff, 0xff, 0x00, 0x07]);
    bytes
}

/// `reply` with its header and question intact and its records cut in the middle.
fn chopped(reply: &[u8]) -> Vec<u8> {
    let question_end = 12 + super::client::question_bytes(reply).len();
    reply[..question_end + (reply.len() - question_end) / 2].to_vec()
}

struct Plan {
    message: Message,
    action: Action,
}

async fn serve_udp(socket: Arc<UdpSocket>, shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut buf = vec![0u8; 65535];
    loop {
        let (len, source) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(_) => continue,
            },
        };
        let Some(plan) = shared.receive(&buf[..len], source, Transport::Udp) else {
            continue;
        };
        let socket = socket.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let query = &plan.message;
            let id = query.metadata.id;
            let real = shared.reply(query, plan.action, Transport::Udp);
            let first: Option<(Vec<u8>, bool)> = match plan.action {
                Action::Drop => return,
                Action::Delay(d) => {
                    tokio::time::sleep(d).await;
                    None
                }
                Action::Garbage { then_answer } => Some((garbage(id), then_answer)),
                Action::WrongId { then_answer } => {
                    Some((forged(query, id.wrapping_add(1)), then_answer))
                }
                Action::WrongQuestion { then_answer } => {
                    Some((forged_question(query), then_answer))
                }
                Action::Spoof { then_answer } => {
                    let _ = shared
                        .spoof_socket
                        .send_to(&forged(query, id), source)
                        .await;
                    tokio::time::sleep(FORGERY_LEAD).await;
                    if then_answer {
                        let _ = socket.send_to(&real, source).await;
                    }
                    return;
                }
                Action::Flood { forgeries } => {
                    for i in 0..forgeries {
                        let wrong = id.wrapping_add(1).wrapping_add(i);
                        let _ = socket.send_to(&forged(query, wrong), source).await;
                        let _ = shared
                            .spoof_socket
                            .send_to(&forged(query, id), source)
                            .await;
                    }
                    tokio::time::sleep(FORGERY_LEAD).await;
                    None
                }
                Action::Twice => Some((real.clone(), true)),
                Action::Chopped { then_answer } => Some((chopped(&real), then_answer)),
                Action::Answer
                | Action::Cut
                | Action::DropOneIn(_)
                | Action::Rcode(_)
                | Action::RcodeWithEde(..)
                | Action::RcodeWithRecords(_)
                | Action::Oversize
                | Action::Truncated => None,
            };
            if let Some((bad, then_answer)) = first {
                let _ = socket.send_to(&bad, source).await;
                if !then_answer {
                    return;
                }
                tokio::time::sleep(FORGERY_LEAD).await;
            }
            let _ = socket.send_to(&real, source).await;
        });
    }
}

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    loop {
        let (stream, source) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(r) => r,
                Err(_) => continue,
            },
        };
        tokio::spawn(serve_tcp_connection(
            stream,
            source,
            shared.clone(),
            shutdown.clone(),
        ));
    }
}

async fn serve_tcp_connection(
    stream: TcpStream,
    source: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let (mut reader, writer) = stream.into_split();
    let writer = Arc::new(tokio::sync::Mutex::new(writer));
    loop {
        let mut len = [0u8; 2];
        let raw = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = reader.read_exact(&mut len) => {
                if r.is_err() {
                    return;
                }
                let mut raw = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if reader.read_exact(&mut raw).await.is_err() {
                    return;
                }
                raw
            }
        };
        let Some(plan) = shared.receive(&raw, source, Transport::Tcp) else {
            continue;
        };
        let shared = shared.clone();
        let writer = writer.clone();
        tokio::spawn(async move {
            let query = &plan.message;
            let id = query.metadata.id;
            let mut frames = Vec::new();
            match plan.action {
                Action::Drop => return,
                Action::Delay(d) => tokio::time::sleep(d).await,
                Action::Garbage { .. } => frames.push(garbage(id)),
                Action::WrongId { .. } => frames.push(forged(query, id.wrapping_add(1))),
                Action::WrongQuestion { .. } => frames.push(forged_question(query)),
                Action::Cut => {
                    let real = shared.reply(query, plan.action, Transport::Tcp);
                    let mut out = (real.len() as u16).to_be_bytes().to_vec();
                    out.extend_from_slice(&real[..real.len() / 2]);
                    let mut writer = writer.lock().await;
                    let _ = writer.write_all(&out).await;
                    let _ = writer.shutdown().await;
                    return;
                }
                Action::Twice => frames.push(shared.reply(query, plan.action, Transport::Tcp)),
                Action::Spoof { .. }
                | Action::Flood { .. }
                | Action::Chopped { .. }
                | Action::DropOneIn(_)
                | Action::Oversize
                | Action::Truncated
                | Action::Answer
                | Action::Rcode(_)
                | Action::RcodeWithEde(..)
                | Action::RcodeWithRecords(_) => {}
            }
            let then_answer = !matches!(
                plan.action,
                Action::Garbage { then_answer: false }
                    | Action::WrongId { then_answer: false }
                    | Action::WrongQuestion { then_answer: false }
            );
            if then_answer {
                frames.push(shared.reply(query, plan.action, Transport::Tcp));
            }
            let mut writer = writer.lock().await;
            for frame in frames {
                let mut out = (frame.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&frame);
                if writer.write_all(&out).await.is_err() {
                    return;
                }
            }
        });
    }
}
