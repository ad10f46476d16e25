//! The send side of the relay: taking a query into the table and sending
//! every queued query in one `sendmmsg` per socket.

use std::collections::HashMap;
use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::{Entry, INITIAL_ROOM, MAX_PER_SOCKET, MAX_QUERY, Outcome, Refused, Relay, Socket};
use crate::batch::{self, register_readable};
use crate::types::unspecified_for;
use crate::upstream::Upstream;
use crate::wire;

impl<T> Relay<T> {
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
}
