//! The relay: forwarded UDP queries as entries in a table instead of tasks.
//!
//! Most queries that miss the cache need exactly one upstream exchange and
//! then a patch of the reply (plain forwarding). As a task each costs a
//! spawn, a question copy, a oneshot, a wake-up across tasks and a reply
//! copy. A relay belongs to one client socket's receive loop instead: the
//! loop starts an exchange by queueing the query here, every queued query
//! leaves in one `sendmmsg` per upstream socket, and the loop reads the
//! replies itself (one `recvmmsg` per socket and wake-up) and answers each in
//! place. Nothing is allocated per query once the table has grown to the
//! load: entries and their buffers are reused.
//!
//! Only the first attempt runs here. A timeout, SERVFAIL/REFUSED with
//! attempts left, a truncated reply or a failed send hands the query back
//! with a [`Resume`], and [`Upstream::query_from`] makes the rest of the
//! attempts, exactly as [`Upstream::query`] would have.
//!
//! Anti-spoofing is the pool's (RFC 5452 §9): connected sockets on random
//! ports, a random ID free on the socket, and the question must match.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::time::Sleep;

use super::{Reply, Resume, Upstream, acceptable};
use crate::batch::{self, Inbox, register_readable};
use crate::types::unspecified_for;
use crate::wire::{self, HEADER_LEN, Header, rcode};

/// Replies read per socket and call.
const READ_BATCH: usize = 16;
/// Longest query relayed (a query with a few EDNS options is under 100
/// octets); a longer one takes the task path.
const MAX_QUERY: usize = 1024;
/// Queries in flight a relay has room for before its tables first grow.
const INITIAL_ROOM: usize = 1024;
/// Most sockets per server and relay: enough random ports that a forger
/// must guess among them (RFC 5452 §9.2), few enough to poll each wake-up.
pub const MAX_SOCKETS: usize = 8;

/// What became of a relayed query. The query is the client's bytes as it
/// sent them (its own ID restored).
#[derive(Debug)]
pub enum Outcome<'a, T> {
    /// The answer: the caller patches it for the client and sends it.
    Answered {
        query: &'a [u8],
        reply: &'a [u8],
        server: SocketAddr,
        token: T,
    },
    /// The first attempt did not settle it: [`Upstream::query_from`] goes on.
    Resume {
        query: &'a [u8],
        token: T,
        resume: Resume,
    },
}

/// Why [`Relay::start`] did not take a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No room for the query's bytes (not a valid query).
    Malformed,
    /// The socket could not be opened; the caller forwards it the slow way.
    Socket,
    /// Longer than [`MAX_QUERY`]: entry buffers keep their size for reuse,
    /// and a client must not be able to pin large ones.
    TooLarge,
    /// The socket has no free ID left (a `server.max_inflight` far above
    /// what the relay's sockets can number).
    Full,
}

/// IDs in flight per socket before it takes no more: a random free ID is
/// then still found in a few tries.
const MAX_PER_SOCKET: usize = 32768;

/// One query in flight.
struct Entry<T> {
    /// The query as sent: the client's bytes with our ID. Kept between
    /// uses so its buffer is reused.
    packet: Vec<u8>,
    question_end: usize,
    client_id: u16,
    server: usize,
    socket: usize,
    id: u16,
    sent: Instant,
    /// Bumped at every reuse: a deadline names the use it was set for.
    generation: u32,
    token: Option<T>,
}

/// One connected socket to a server and the IDs in flight on it.
struct Socket {
    fd: AsyncFd<UdpSocket>,
    /// ID → entry index.
    ids: HashMap<u16, u32, BuildHasherDefault<IdHasher>>,
    /// Entries waiting for the next [`Relay::flush`].
    queued: Vec<u32>,
}

/// The relay of one receive loop. `T` is the caller's note of where the
/// answer goes.
pub struct Relay<T> {
    /// Per server: up to `per_server` sockets, opened on first use.
    sockets: Vec<Vec<Socket>>,
    per_server: usize,
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    /// Entries by deadline. Every attempt has the same timeout, so the order
    /// of starting is the order of expiry: a queue, not a heap.
    deadlines: VecDeque<(Instant, u32, u32)>,
    timer: Pin<Box<Sleep>>,
    timer_at: Option<Instant>,
    inbox: Inbox,
    /// The socket a readiness wake-up filled the inbox from.
    filled_from: Option<(usize, usize)>,
    /// Where the next look for readable sockets starts (round robin).
    turn: usize,
    timeout: Duration,
    attempts: u32,
    live: usize,
}

/// What [`Relay::ready`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// Replies are in; [`Relay::answers`] hands them out.
    Replies,
    /// The earliest deadline passed; [`Relay::expire`] hands those out.
    Deadline,
}

impl<T> Relay<T> {
    /// A relay for `upstream`'s servers with `sockets` sockets per server
    /// (at least 1, at most [`MAX_SOCKETS`]).
    pub fn new(upstream: &Upstream, sockets: usize) -> Relay<T> {
        Relay {
            sockets: upstream.servers.iter().map(|_| Vec::new()).collect(),
            per_server: sockets.clamp(1, MAX_SOCKETS),
            // Room for a busy loop's queries in flight from the start, so
            // the tables seldom grow under load (growing allocates).
            entries: Vec::with_capacity(INITIAL_ROOM),
            free: Vec::with_capacity(INITIAL_ROOM),
            deadlines: VecDeque::with_capacity(INITIAL_ROOM),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            timer_at: None,
            inbox: Inbox::with_slots(READ_BATCH),
            filled_from: None,
            turn: 0,
            timeout: upstream.timeout,
            attempts: upstream.attempts,
            live: 0,
        }
    }

    /// Queries in flight.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Queues `query` (a validated client query) for the first server in
    /// health order; it leaves at the next [`Relay::flush`].
    pub fn start(
        &mut self,
        upstream: &Upstream,
        query: &[u8],
        token: T,
        now: Instant,
    ) -> Result<(), (Refused, T)> {
        if query.len() > MAX_QUERY {
            return Err((Refused::TooLarge, token));
        }
        let (Some(client_id), Ok(question_end)) = (wire::id(query), wire::question_end(query))
        else {
            return Err((Refused::Malformed, token));
        };
        let server = upstream.nth_server(0, upstream.down_mask(upstream.now_ms()));
        let socket = match self.socket_for(upstream, server) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "relay socket");
                return Err((Refused::Socket, token));
            }
        };
        let sock = &mut self.sockets[server][socket];
        if sock.ids.len() >= MAX_PER_SOCKET {
            return Err((Refused::Full, token));
        }
        let mut id: u16 = rand::random();
        while sock.ids.contains_key(&id) {
            id = rand::random();
        }
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.entries.push(Entry {
                    packet: Vec::new(),
                    question_end: 0,
                    client_id: 0,
                    server: 0,
                    socket: 0,
                    id: 0,
                    sent: now,
                    generation: 0,
                    token: None,
                });
                (self.entries.len() - 1) as u32
            }
        };
        let e = &mut self.entries[index as usize];
        e.packet.clear();
        e.packet.extend_from_slice(query);
        wire::set_id(&mut e.packet, id);
        e.question_end = question_end;
        e.client_id = client_id;
        e.server = server;
        e.socket = socket;
        e.id = id;
        e.sent = now;
        e.generation = e.generation.wrapping_add(1);
        e.token = Some(token);
        sock.ids.insert(id, index);
        sock.queued.push(index);
        self.deadlines
            .push_back((now + self.timeout, index, e.generation));
        self.live += 1;
        Ok(())
    }

    /// A socket to `server`, opening one while it has fewer than its share.
    fn socket_for(&mut self, upstream: &Upstream, server: usize) -> io::Result<usize> {
        let socks = &mut self.sockets[server];
        if socks.len() < self.per_server {
            let addr = upstream.servers[server].addr;
            let std_sock = UdpSocket::bind(unspecified_for(&addr))?;
            std_sock.connect(addr)?;
            std_sock.set_nonblocking(true)?;
            socks.push(Socket {
                fd: register_readable(std_sock)?,
                ids: HashMap::with_capacity_and_hasher(INITIAL_ROOM / 4, Default::default()),
                queued: Vec::with_capacity(batch::BATCH),
            });
            return Ok(socks.len() - 1);
        }
        Ok(rand::random_range(0..socks.len()))
    }

    /// Sends every queued query, one `sendmmsg` per socket. A query the
    /// kernel would not take is handed back through `f` to resume elsewhere.
    pub fn flush(&mut self, upstream: &Upstream, mut f: impl FnMut(Outcome<'_, T>)) {
        for server in 0..self.sockets.len() {
            for socket in 0..self.sockets[server].len() {
                // Taken out so queries can be handed back meanwhile; put
                // back empty to keep its capacity.
                let mut queued = std::mem::take(&mut self.sockets[server][socket].queued);
                let fd = self.sockets[server][socket].fd.get_ref().as_raw_fd();
                let (mut done, mut retried, mut faulted) = (0, false, false);
                while done < queued.len() {
                    let entries = &self.entries;
                    let batch = queued[done..]
                        .iter()
                        .map(|&i| entries[i as usize].packet.as_slice());
                    match batch::send_connected(fd, batch) {
                        Ok(n) if n > 0 => {
                            done += n;
                            retried = false;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        // No room in the socket buffer: the rest resume on
                        // the task path, which waits for room; not the
                        // server's fault.
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            for &index in &queued[done..] {
                                self.hand_back(index, None, &mut f);
                            }
                            done = queued.len();
                        }
                        // The first datagram failed. A pending ICMP error is
                        // reported once by whatever send comes next, so try
                        // it again; failing twice, it resumes elsewhere as a
                        // failed attempt (one health mark per flush).
                        Ok(_) | Err(_) if !retried => retried = true,
                        Ok(_) | Err(_) => {
                            if !faulted {
                                upstream.record_io(server, Duration::ZERO);
                                faulted = true;
                            }
                            self.hand_back(queued[done], Some(server), &mut f);
                            done += 1;
                            retried = false;
                        }
                    }
                }
                queued.clear();
                self.sockets[server][socket].queued = queued;
            }
        }
        self.trim();
    }

    /// Waits until replies are in or the earliest deadline passes.
    pub fn ready(&mut self) -> impl Future<Output = Ready> + '_ {
        std::future::poll_fn(move |cx| self.poll_ready(cx))
    }

    /// [`Relay::ready`] as a poll, for a caller that waits on several relays.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Ready> {
        // Deadlines first: under steady replies a socket is always ready,
        // and a query whose reply was lost must still time out.
        if let Some(&(deadline, _, _)) = self.deadlines.front() {
            if self.timer_at != Some(deadline) {
                self.timer
                    .as_mut()
                    .reset(tokio::time::Instant::from_std(deadline));
                self.timer_at = Some(deadline);
            }
            if self.timer.as_mut().poll(cx).is_ready() {
                self.timer_at = None;
                return Poll::Ready(Ready::Deadline);
            }
        }
        // Sockets in turn, starting after the one read last, so a busy
        // socket cannot starve the others.
        let total: usize = self.sockets.iter().map(Vec::len).sum();
        for i in 0..total {
            let flat = (self.turn + i) % total;
            let (s, k) = self.unflatten(flat);
            let Poll::Ready(Ok(mut guard)) = self.sockets[s][k].fd.poll_read_ready(cx) else {
                continue;
            };
            let inbox = &mut self.inbox;
            let got = guard.try_io(|fd| {
                let mut read = inbox.recv(fd.get_ref());
                // An ICMP error on a connected socket is reported once, ahead
                // of any datagram queued behind it: read again at once.
                if read
                    .as_ref()
                    .is_err_and(|e| e.kind() != io::ErrorKind::WouldBlock)
                {
                    read = inbox.recv(fd.get_ref());
                }
                match read {
                    Ok(0) => Err(io::ErrorKind::WouldBlock.into()),
                    Ok(n) => Ok(Some(n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(e),
                    // Errors twice in a row: the queries time out.
                    Err(_) => Ok(None),
                }
            });
            if let Ok(Ok(Some(n))) = got {
                // A short read emptied the queue: clear the readiness now
                // instead of after one more empty read (as `batch::recv_ready`).
                if n < self.inbox.slots() {
                    guard.clear_ready();
                }
                self.filled_from = Some((s, k));
                self.turn = flat + 1;
                return Poll::Ready(Ready::Replies);
            }
        }
        Poll::Pending
    }

    /// The (server, socket) of the `flat`-th socket counting across servers.
    fn unflatten(&self, mut flat: usize) -> (usize, usize) {
        for (s, socks) in self.sockets.iter().enumerate() {
            if flat < socks.len() {
                return (s, flat);
            }
            flat -= socks.len();
        }
        (0, 0)
    }

    /// Hands out the replies [`Relay::ready`] read: answers, or queries to
    /// resume. Forged and late replies are counted and dropped.
    pub fn answers(
        &mut self,
        upstream: &Upstream,
        now: Instant,
        mut f: impl FnMut(Outcome<'_, T>),
    ) {
        let Some((server, socket)) = self.filled_from.take() else {
            return;
        };
        let addr = upstream.servers[server].addr;
        for (reply, _) in self.inbox.datagrams() {
            let sock = &mut self.sockets[server][socket];
            let found = wire::id(reply).and_then(|id| sock.ids.get(&id).map(|&i| (id, i)));
            let Some((id, index)) = found else {
                upstream.mismatched(server);
                continue;
            };
            let e = &mut self.entries[index as usize];
            if !acceptable(reply, id, &e.packet[HEADER_LEN..e.question_end]) {
                // Wrong question or cut short: a forgery, or garbage.
                upstream.mismatched(server);
                continue;
            }
            sock.ids.remove(&id);
            let took = now.saturating_duration_since(e.sent);
            let rcode = Header::new(reply).map_or(rcode::SERVFAIL, |h| h.rcode());
            let truncated = Header::new(reply).is_some_and(|h| h.tc());
            let resume = if truncated {
                // The TCP half of this attempt runs on the slow path, which
                // books it.
                Some(Resume {
                    attempts_done: 1,
                    last_server: Some(server),
                    error_reply: None,
                    truncated: true,
                })
            } else {
                upstream.record(server, rcode, took);
                (matches!(rcode, rcode::SERVFAIL | rcode::REFUSED) && self.attempts > 1).then(
                    || Resume {
                        attempts_done: 1,
                        last_server: Some(server),
                        error_reply: Some(Reply {
                            bytes: reply.to_vec(),
                            server: addr,
                        }),
                        truncated: false,
                    },
                )
            };
            wire::set_id(&mut e.packet, e.client_id);
            let token = e.token.take().expect("a live entry has a token");
            self.live -= 1;
            match resume {
                Some(resume) => f(Outcome::Resume {
                    query: &e.packet,
                    token,
                    resume,
                }),
                None => f(Outcome::Answered {
                    query: &e.packet,
                    reply,
                    server: addr,
                    token,
                }),
            }
            self.free.push(index);
        }
        self.trim();
    }

    /// Drops the deadlines of answered queries from the front of the queue:
    /// replies come back roughly in order, so this keeps the queue about as
    /// long as the number in flight instead of a timeout's worth of queries.
    fn trim(&mut self) {
        if self.live == 0 {
            self.deadlines.clear();
            return;
        }
        while let Some(&(_, index, generation)) = self.deadlines.front() {
            let e = &self.entries[index as usize];
            if e.generation == generation && e.token.is_some() {
                break;
            }
            self.deadlines.pop_front();
        }
    }

    /// Hands out every query whose attempt has timed out, to resume.
    pub fn expire(&mut self, upstream: &Upstream, now: Instant, mut f: impl FnMut(Outcome<'_, T>)) {
        while let Some(&(deadline, index, generation)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            let e = &self.entries[index as usize];
            if e.generation != generation || e.token.is_none() {
                continue;
            }
            let (server, socket, id) = (e.server, e.socket, e.id);
            self.sockets[server][socket].ids.remove(&id);
            upstream.record_timeout(server, now.saturating_duration_since(e.sent));
            self.hand_back(index, Some(server), &mut f);
        }
        self.trim();
    }

    /// Hands every query in flight back to resume elsewhere (the relay is
    /// being replaced: a reload changed the upstreams).
    pub fn abandon(&mut self, mut f: impl FnMut(Outcome<'_, T>)) {
        for socks in &mut self.sockets {
            for s in socks {
                s.ids.clear();
                s.queued.clear();
            }
        }
        self.deadlines.clear();
        for index in 0..self.entries.len() as u32 {
            if self.entries[index as usize].token.is_some() {
                self.hand_back(index, None, &mut f);
            }
        }
    }

    /// Hands entry `index` back with a [`Resume`] after a failed attempt on
    /// `tried` (`None`: no attempt was made).
    fn hand_back(&mut self, index: u32, tried: Option<usize>, f: &mut impl FnMut(Outcome<'_, T>)) {
        let e = &mut self.entries[index as usize];
        let Some(token) = e.token.take() else {
            return;
        };
        let ids = &mut self.sockets[e.server][e.socket].ids;
        if ids.get(&e.id) == Some(&index) {
            ids.remove(&e.id);
        }
        wire::set_id(&mut e.packet, e.client_id);
        self.live -= 1;
        f(Outcome::Resume {
            query: &e.packet,
            token,
            resume: Resume {
                attempts_done: u32::from(tried.is_some()),
                last_server: tried,
                error_reply: None,
                truncated: false,
            },
        });
        self.free.push(index);
    }
}

/// IDs are random already: spread them over the table's buckets with one
/// multiplication instead of SipHash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::metrics::Metrics;

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
}
