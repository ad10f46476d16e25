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

mod recv;
mod send;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{SocketAddr, UdpSocket};
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::time::Sleep;

use super::{Resume, Upstream};
use crate::batch::Inbox;
use crate::wire;

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
