//! The answer side of the relay: waiting for replies or a deadline, matching
//! replies to the queries in flight (RFC 5452 §9) and expiring timed-out ones.

use std::io;
use std::task::{Context, Poll};
use std::time::Instant;

use super::{Outcome, Ready, Relay};
use crate::upstream::{Reply, Resume, Upstream, acceptable};
use crate::wire::{self, HEADER_LEN, Header, rcode};

impl<T> Relay<T> {
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
}
