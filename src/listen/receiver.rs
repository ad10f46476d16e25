//! The receive thread of a UDP socket (`server.udp_receive = "thread"`, the
//! default). It blocks in `recvmmsg` with `MSG_WAITFORONE` (wait for one
//! datagram, take whatever else is queued), runs the first stage on each
//! datagram and sends what that stage answers (cache hits, rejections) in
//! one `sendmmsg`. Queries that need upstream are handed to the socket's
//! loop on its worker ([`super::udp`]), which relays and answers them.
//!
//! Why a thread: under one-query-per-datagram load (dnsperf, pods, CoreDNS
//! `forward`) a wake-up finds a handful of datagrams, and the event loop's
//! round trip per wake-up (`epoll_wait`, the runtime's park and poll) cost
//! about as much as answering them. A socket that no epoll instance
//! watches also spares the kernel the epoll callback that every datagram
//! received, and every send buffer freed, would run. Measured in
//! docs/PERFORMANCE.md (#15).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, oneshot};
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::udp::{CONNECT_SETTLE, DRAIN_BATCHES, leave_group, permit};
use crate::batch::{Inbox, Outbox};
use crate::metrics::DropReason;
use crate::pipeline::{Early, Pipeline, Transport};

/// How long a blocked receive waits before it looks at the stop token: the
/// most a stop waits for an idle socket's thread.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// A query the thread could not answer, for the loop to start.
pub struct Missed {
    /// The pipeline whose first stage decided (a reload may swap it).
    pub pipeline: Arc<Pipeline>,
    /// The query, in a buffer that goes back to the thread.
    pub packet: Vec<u8>,
    pub src: SocketAddr,
    /// A plain forward the relay can take ([`Early::Relay`]), else a task.
    pub relay: bool,
    pub permit: OwnedSemaphorePermit,
    pub received: Instant,
}

/// Where the thread leaves queries for the loop, and the buffers coming back.
#[derive(Default)]
pub struct Handoff {
    queue: Mutex<Queue>,
    notify: Notify,
}

#[derive(Default)]
struct Queue {
    missed: Vec<Missed>,
    spare: Vec<Vec<u8>>,
}

impl Handoff {
    /// Until something was handed over since the last [`Handoff::wait`].
    pub async fn wait(&self) {
        self.notify.notified().await;
    }

    /// Swaps what was handed over into `into` (empty: its capacity is kept
    /// for the next hand-over) and gives back the `spare` buffers.
    pub fn take(&self, into: &mut Vec<Missed>, spare: &mut Vec<Vec<u8>>) {
        let mut q = self.lock();
        std::mem::swap(&mut q.missed, into);
        q.spare.append(spare);
    }

    /// True when nothing waits to be taken.
    pub fn is_empty(&self) -> bool {
        self.lock().missed.is_empty()
    }

    /// Queues `missed` (left empty) and takes the buffers given back.
    fn hand(&self, missed: &mut Vec<Missed>, spare: &mut Vec<Vec<u8>>) {
        {
            let mut q = self.lock();
            q.missed.append(missed);
            spare.append(&mut q.spare);
        }
        self.notify.notify_one();
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding it; a poisoned queue is still whole.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts the receive thread of `sock` (made blocking). It serves until
/// `stop`, then answers what the kernel had queued (as the polled loop
/// does, see [`leave_group`]) and drops `done`.
pub fn spawn(
    sock: Arc<UdpSocket>,
    shared: Shared,
    handoff: Arc<Handoff>,
    stop: CancellationToken,
    done: oneshot::Sender<()>,
) -> io::Result<()> {
    sock.set_nonblocking(false)?;
    sock.set_read_timeout(Some(STOP_CHECK))?;
    // Prefetches the first stage starts are tasks on the loop's worker.
    let runtime = tokio::runtime::Handle::current();
    let name = format!("dns64d-udp-{}", sock.local_addr()?.port());
    std::thread::Builder::new().name(name).spawn(move || {
        let _runtime = runtime.enter();
        let mut rx = Receiver {
            sock,
            shared,
            handoff,
            inbox: Inbox::default(),
            outbox: Outbox::default(),
            missed: Vec::new(),
            spare: Vec::new(),
        };
        while !stop.is_cancelled() {
            match rx.inbox.recv_with(&*rx.sock, libc::MSG_WAITFORONE) {
                Ok(_) => rx.serve_batch(),
                Err(e) if transient(&e) => {}
                Err(e) => {
                    tracing::error!(error = %e, "udp socket failed");
                    break;
                }
            }
        }
        let left = leave_group(&rx.sock);
        rx.answer_queued();
        if left {
            std::thread::sleep(CONNECT_SETTLE);
            rx.answer_queued();
        }
        drop(done);
    })?;
    Ok(())
}

/// Errors a receive loop goes on after: the timeout that lets it look at
/// the stop token, a signal, and the ICMP reports (an answer sent earlier
/// found no client) that a socket connected at stop gets.
fn transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        WouldBlock
            | TimedOut
            | Interrupted
            | ConnectionRefused
            | ConnectionReset
            | HostUnreachable
            | NetworkUnreachable
    )
}

struct Receiver {
    sock: Arc<UdpSocket>,
    shared: Shared,
    handoff: Arc<Handoff>,
    inbox: Inbox,
    outbox: Outbox,
    /// Queries of the current batch for the loop.
    missed: Vec<Missed>,
    /// Buffers for them.
    spare: Vec<Vec<u8>>,
}

impl Receiver {
    /// The first stage on every datagram read: answers go out in one
    /// `sendmmsg`, after the rest was handed to the loop (so its upstream
    /// queries leave while ours are sent).
    fn serve_batch(&mut self) {
        let pipeline = self.shared.pipeline.load_full();
        let now = Instant::now();
        for (packet, src) in self.inbox.datagrams() {
            match pipeline.answer_now(packet, src.ip(), Transport::Udp, self.outbox.buffer()) {
                Early::Drop => {}
                Early::Reply => self.outbox.commit(src),
                Early::Prefetch => {
                    self.outbox.commit(src);
                    pipeline.prefetch(packet, src.ip(), Transport::Udp);
                }
                early @ (Early::Relay | Early::Resolve) => {
                    let Some(permit) = permit(&self.shared) else {
                        continue;
                    };
                    let mut buf = self.spare.pop().unwrap_or_default();
                    buf.clear();
                    buf.extend_from_slice(packet);
                    self.missed.push(Missed {
                        pipeline: pipeline.clone(),
                        packet: buf,
                        src,
                        relay: matches!(early, Early::Relay),
                        permit,
                        received: now,
                    });
                }
            }
        }
        if !self.missed.is_empty() {
            self.handoff.hand(&mut self.missed, &mut self.spare);
        }
        self.flush();
    }

    /// Sends the queued answers. The socket blocks: what the kernel had no
    /// room for in the batch waits for room, one datagram at a time.
    fn flush(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        match self.outbox.flush(&*self.sock) {
            Ok(refused) => {
                (0..refused).for_each(|_| self.shared.metrics.dropped(DropReason::SendFailed));
            }
            Err(_) => {
                for (out, to) in self.outbox.queued() {
                    if let Err(e) = self.sock.send_to(out, to) {
                        tracing::debug!(error = %e, %to, "udp send");
                        self.shared.metrics.dropped(DropReason::SendFailed);
                    }
                }
                self.outbox.clear();
            }
        }
    }

    /// Answers what the kernel has queued, without waiting; bounded like
    /// the polled loop's drain.
    fn answer_queued(&mut self) {
        for _ in 0..DRAIN_BATCHES {
            let n = match self.inbox.recv(&*self.sock) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => continue,
            };
            self.serve_batch();
            if n < self.inbox.slots() {
                break;
            }
        }
    }
}
