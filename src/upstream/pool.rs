//! A pool of long-lived UDP sockets to one upstream server, for queries that
//! run as tasks (the receive loops' relays have sockets of their own), so a
//! query costs one `send` and one wake-up instead of socket, bind, connect,
//! register and close. Each socket is connected (the kernel drops datagrams from any other
//! address) and has one reader task that reads every queued reply per
//! wake-up (`recvmmsg`) and hands each to the query waiting for its ID, after
//! checking the question (RFC 5452 §9).
//!
//! Spoofing resistance: a forger must guess one of `size` random source ports
//! and the 16-bit ID; `upstream.socket_pool = 0` trades the pool's speed for a
//! fresh random port per query.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{UpstreamError, acceptable};
use crate::batch::{Inbox, recv_ready, register_readable, send_retrying};
use crate::metrics::ServerStats;
use crate::types::unspecified_for;
use crate::wire;
use crate::worker;

/// Replies read per wake-up and socket.
const READ_BATCH: usize = 16;

type Socket = AsyncFd<std::net::UdpSocket>;

type Waiters = Mutex<HashMap<u16, (Box<[u8]>, oneshot::Sender<Vec<u8>>)>>;

/// One connected socket and the queries waiting on it.
#[derive(Debug)]
struct Slot {
    sock: Arc<Socket>,
    waiting: Arc<Waiters>,
}

/// Sockets to one server, created on first use.
#[derive(Debug)]
pub struct Pool {
    addr: SocketAddr,
    slots: Vec<OnceLock<Slot>>,
    stats: Arc<ServerStats>,
    /// Stops the reader tasks when the pool (its pipeline) is dropped.
    _stop: DropGuard,
    stop: CancellationToken,
}

/// Removes a waiter whose query gave up (timeout, cancellation).
struct Unregister<'a> {
    waiting: &'a Waiters,
    id: u16,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl Pool {
    /// A pool of `size` sockets to `addr`.
    pub fn new(addr: SocketAddr, size: usize, stats: Arc<ServerStats>) -> Pool {
        let stop = CancellationToken::new();
        Pool {
            addr,
            slots: (0..size).map(|_| OnceLock::new()).collect(),
            stats,
            _stop: stop.clone().drop_guard(),
            stop,
        }
    }

    fn slot(&self, i: usize) -> Result<&Slot, UpstreamError> {
        if let Some(s) = self.slots[i].get() {
            return Ok(s);
        }
        let std_sock = std::net::UdpSocket::bind(unspecified_for(&self.addr))?;
        std_sock.connect(self.addr)?;
        std_sock.set_nonblocking(true)?;
        let sock = Arc::new(register_readable(std_sock)?);
        let waiting: Arc<Waiters> = Arc::default();
        let slot = Slot { sock, waiting };
        // Another query may have won the race; its socket is used and ours dropped.
        if self.slots[i].set(slot).is_ok() {
            let s = self.slots[i].get().expect("just set");
            tokio::spawn(reader(
                s.sock.clone(),
                s.waiting.clone(),
                self.stats.clone(),
                self.stop.clone(),
            ));
        }
        Ok(self.slots[i].get().expect("set by us or by the winner"))
    }

    /// A random socket among this worker's share of the pool, so the reply's
    /// reader runs on the thread of the query waiting for it (the share's
    /// sockets are created, and their readers spawned, by this worker).
    fn pick(&self) -> usize {
        let (worker, workers) = worker::current();
        let per = self.slots.len() / workers.max(1);
        if workers > 1 && per > 0 {
            worker % workers * per + rand::random_range(0..per)
        } else {
            rand::random_range(0..self.slots.len())
        }
    }

    /// Sends `packet` (its ID is replaced by one free on the chosen socket)
    /// and waits for the matching reply. The caller bounds the wait.
    pub async fn exchange(
        &self,
        packet: &mut [u8],
        question: &[u8],
    ) -> Result<Vec<u8>, UpstreamError> {
        let slot = self.slot(self.pick())?;
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut waiting = slot.waiting.lock().unwrap_or_else(|e| e.into_inner());
            let mut id: u16 = rand::random();
            while waiting.contains_key(&id) {
                id = rand::random();
            }
            waiting.insert(id, (question.into(), tx));
            id
        };
        let _unregister = Unregister {
            waiting: &slot.waiting,
            id,
        };
        wire::set_id(packet, id);
        send_retrying(|| slot.sock.get_ref().send(packet)).await?;
        rx.await
            .map_err(|_| UpstreamError::Io(std::io::Error::other("upstream socket closed")))
    }
}

/// Delivers replies to their waiters until the pool is dropped.
async fn reader(
    sock: Arc<Socket>,
    waiting: Arc<Waiters>,
    stats: Arc<ServerStats>,
    stop: CancellationToken,
) {
    let mut inbox = Inbox::with_slots(READ_BATCH);
    loop {
        let got = tokio::select! {
            _ = stop.cancelled() => return,
            r = recv_ready(&sock, &mut inbox) => r,
        };
        match got {
            Ok(Ok(())) => {}
            // ICMP port unreachable and friends: the waiter times out.
            Ok(Err(_)) => continue,
            Err(e) => {
                tracing::error!(error = %e, "upstream socket failed");
                return;
            }
        }
        let mut map = waiting.lock().unwrap_or_else(|e| e.into_inner());
        for (reply, _) in inbox.datagrams() {
            let Some(id) = wire::id(reply) else {
                stats.mismatched();
                continue;
            };
            match map.get(&id) {
                Some((question, _)) if acceptable(reply, id, question) => {
                    if let Some((_, tx)) = map.remove(&id) {
                        let _ = tx.send(reply.to_vec());
                    }
                }
                // Wrong ID or question: a forgery or a reply that came too late.
                _ => stats.mismatched(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::Workers;

    #[tokio::test]
    async fn each_worker_picks_only_sockets_of_its_own_share() {
        let stats = Arc::new(ServerStats::default());
        let pool = Arc::new(Pool::new("127.0.0.1:53".parse().unwrap(), 16, stats));
        let workers = Workers::start(2);
        for (w, share) in [(0, 0..8), (1, 8..16)] {
            let pool = pool.clone();
            let picks = workers
                .handle(w)
                .spawn(async move { (0..200).map(|_| pool.pick()).collect::<Vec<_>>() })
                .await
                .unwrap();
            assert!(
                picks.iter().all(|p| share.contains(p)),
                "worker {w}: {picks:?}"
            );
        }
        workers.stop();
    }

    #[test]
    fn outside_any_worker_every_socket_may_be_picked() {
        let pool = Pool::new(
            "127.0.0.1:53".parse().unwrap(),
            4,
            Arc::new(ServerStats::default()),
        );
        let mut seen = [false; 4];
        for _ in 0..400 {
            seen[pool.pick()] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
