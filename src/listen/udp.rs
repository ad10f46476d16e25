//! UDP: one receive loop per socket. Each wake-up reads every queued query
//! in one `recvmmsg` and runs the first stage on each: answers it can give
//! (rejections, REFUSED, cache hits) are queued for one `sendmmsg`; plain
//! forwards go to the loop's [relay](crate::upstream::relay), whose replies
//! the same loop reads and answers in place; anything else becomes a task
//! that sends its own answer.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::batch::{self, Inbox, Outbox, recv_ready, register_readable, send_retrying};
use crate::metrics::DropReason;
use crate::pipeline::{Early, Exchange, Pipeline, Prefetched, Stage, Step, Transport};
use crate::upstream::relay::{Outcome, Ready, Relay};
use crate::upstream::{Reply, Resume};
use crate::wire::{self, HEADER_LEN, rtype};

/// Most batches read after a stop: a full receive buffer's worth, a few
/// thousand queries.
const DRAIN_BATCHES: usize = 256;
/// Pause before the last read of a socket that left its `SO_REUSEPORT`
/// group (see [`leave_group`]).
const CONNECT_SETTLE: Duration = Duration::from_millis(5);

type Sock = Arc<AsyncFd<UdpSocket>>;

/// Where a relayed query's answer goes, and how far it got.
#[derive(Debug)]
struct Relayed {
    src: SocketAddr,
    started: Instant,
    _permit: OwnedSemaphorePermit,
    /// Set while the A query of a synthesis is out.
    synthesis: Option<Synthesis>,
}

/// A synthesis waiting for its A records (RFC 6147 §5.1.6): the client's
/// query and the AAAA reply (NODATA), in buffers from the loop's pool.
#[derive(Debug)]
struct Synthesis {
    query: Vec<u8>,
    aaaa: Vec<u8>,
    ttl_cap: u32,
    server: SocketAddr,
}

/// Buffers the loop reuses for syntheses in flight.
#[derive(Default)]
struct Pool(Vec<Vec<u8>>);

impl Pool {
    /// A buffer holding `bytes`.
    fn copy_of(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut b = self.0.pop().unwrap_or_default();
        b.clear();
        b.extend_from_slice(bytes);
        b
    }

    fn put(&mut self, s: Synthesis) {
        self.0.push(s.query);
        self.0.push(s.aaaa);
    }
}

/// The relay of one loop and the pipeline (generation) it serves: a reload
/// that swaps the pipeline gets a new relay, and the old one is retired:
/// it finishes what it has in flight under the old config.
struct LoopRelay {
    pipeline: Arc<Pipeline>,
    relay: Relay<Relayed>,
}

/// The state of one receive loop.
struct Loop {
    sock: Sock,
    shared: Shared,
    inbox: Inbox,
    outbox: Outbox,
    relay: Option<LoopRelay>,
    /// The relay of the previous pipeline, until its queries are done.
    retired: Option<LoopRelay>,
    pool: Pool,
    /// Syntheses whose A query goes out after the current batch of replies.
    then_a: Vec<Relayed>,
}

/// Serves UDP on `sock` until `stop` (shutdown, or this address removed by a
/// reload). The socket is registered for readability only (see
/// [`send_retrying`]).
pub async fn serve_udp(sock: UdpSocket, shared: Shared, stop: CancellationToken) {
    let sock = match register_readable(sock) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot register UDP socket");
            return;
        }
    };
    let mut lp = Loop {
        sock,
        shared,
        inbox: Inbox::default(),
        outbox: Outbox::default(),
        relay: None,
        retired: None,
        pool: Pool::default(),
        then_a: Vec::with_capacity(batch::BATCH),
    };
    loop {
        let relaying = lp.relaying();
        tokio::select! {
            _ = stop.cancelled() => break,
            got = recv_ready(&lp.sock, &mut lp.inbox) => match got {
                Ok(Ok(())) => lp.serve_batch(),
                // ICMP errors surface here on some systems; keep serving.
                Ok(Err(e)) => tracing::debug!(error = %e, "udp recv"),
                Err(e) => {
                    tracing::error!(error = %e, "udp socket failed");
                    break;
                }
            },
            (retired, ready) = ready(&mut lp.relay, &mut lp.retired), if relaying => {
                lp.relay_event(retired, ready);
            }
        }
        lp.flush().await;
    }
    // Queries the kernel already queued were sent before we stopped: answer
    // them too, so a shutdown loses nothing that reached us. Leaving the
    // SO_REUSEPORT group first means nothing new arrives meanwhile; a
    // datagram whose socket lookup raced the connect is queued within
    // microseconds, which the second pass after a short pause catches.
    let left = leave_group(lp.sock.get_ref());
    lp.answer_queued().await;
    if left {
        tokio::time::sleep(CONNECT_SETTLE).await;
        lp.answer_queued().await;
    }
    // Relayed queries finish here; one that times out resumes as a task,
    // which the shutdown's drain waits for.
    while lp.relaying() {
        let (retired, r) = ready(&mut lp.relay, &mut lp.retired).await;
        lp.relay_event(retired, r);
        lp.flush().await;
    }
}

/// Stops the kernel from steering new datagrams to `sock`: a connected UDP
/// socket only matches datagrams from its peer, so connected to its own
/// address it receives nothing more from clients, and the other members of
/// its `SO_REUSEPORT` group (the process taking over in a rolling update)
/// get every new query; what is already queued stays readable. True when
/// that worked. A wildcard bind (`0.0.0.0`, `[::]`) has no address of its
/// own to connect to: it stays in the group until closed, so queries that
/// arrive between its last read and the close are lost (list specific
/// addresses to avoid that, docs/DEPLOY.md).
fn leave_group(sock: &UdpSocket) -> bool {
    let local = match sock.local_addr() {
        Ok(a) if !a.ip().is_unspecified() => a,
        Ok(_) => return false,
        Err(e) => {
            tracing::debug!(error = %e, "udp local address at stop");
            return false;
        }
    };
    match sock.connect(local) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(addr = %local, error = %e, "cannot take the UDP socket out of its SO_REUSEPORT group at stop");
            false
        }
    }
}

/// Waits for the next event of the current or the retired relay; true
/// when it is the retired one's.
async fn ready(current: &mut Option<LoopRelay>, retired: &mut Option<LoopRelay>) -> (bool, Ready) {
    std::future::poll_fn(|cx| {
        // The retired relay first: it only finishes work, and under load the
        // current one is nearly always ready.
        for (is_retired, r) in [(true, &mut *retired), (false, &mut *current)] {
            if let Some(r) = r.as_mut().filter(|r| !r.relay.is_empty())
                && let Poll::Ready(ready) = r.relay.poll_ready(cx)
            {
                return Poll::Ready((is_retired, ready));
            }
        }
        Poll::Pending
    })
    .await
}

impl Loop {
    /// Answers what the kernel has queued on the socket. Bounded: a client
    /// sending as fast as we answer (a wildcard bind still receives) must
    /// not hold the shutdown open.
    async fn answer_queued(&mut self) {
        for _ in 0..DRAIN_BATCHES {
            let n = match self.inbox.recv(self.sock.get_ref()) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // A connected socket reports an ICMP error for an answer
                // sent earlier (a client gone); the queue is still there.
                Err(_) => continue,
            };
            self.serve_batch();
            self.flush().await;
            if n < self.inbox.slots() {
                break;
            }
        }
    }

    /// Whether any relay has queries in flight.
    fn relaying(&self) -> bool {
        [&self.relay, &self.retired]
            .iter()
            .any(|r| r.as_ref().is_some_and(|r| !r.relay.is_empty()))
    }

    /// Runs the first stage on every datagram of the batch: answers are
    /// queued for one `sendmmsg`, plain forwards are relayed, the rest
    /// become tasks.
    fn serve_batch(&mut self) {
        let pipeline = self.shared.pipeline.load_full();
        // An idle relay of an older pipeline goes now, so the old pipeline
        // (its cache, its sockets) is not kept alive by it.
        if self
            .relay
            .as_ref()
            .is_some_and(|r| r.relay.is_empty() && !Arc::ptr_eq(&r.pipeline, &pipeline))
        {
            self.relay = None;
        }
        let now = Instant::now();
        for (packet, src) in self.inbox.datagrams() {
            match pipeline.answer_now(packet, src.ip(), Transport::Udp, self.outbox.buffer()) {
                Early::Drop => {}
                Early::Reply => self.outbox.commit(src),
                Early::Prefetch => {
                    self.outbox.commit(src);
                    pipeline.prefetch(packet, src.ip(), Transport::Udp);
                }
                Early::Relay if pipeline.relay_sockets() > 0 => {
                    let Some(permit) = self.permit() else {
                        continue;
                    };
                    let relay = relay_for(
                        (&mut self.relay, &mut self.retired),
                        &pipeline,
                        &self.sock,
                        &self.shared,
                    );
                    let token = Relayed {
                        src,
                        started: now,
                        _permit: permit,
                        synthesis: None,
                    };
                    if let Err((_, token)) =
                        relay.relay.start(pipeline.upstream(), packet, token, now)
                    {
                        let resume = Prefetched::Resume(Resume::default());
                        slow_path(&self.sock, &self.shared, &pipeline, packet, token, resume);
                    }
                }
                Early::Relay | Early::Resolve => {
                    let Some(permit) = self.permit() else {
                        continue;
                    };
                    let (packet, sock, pipeline) =
                        (packet.to_vec(), self.sock.clone(), pipeline.clone());
                    let metrics = self.shared.metrics.clone();
                    self.shared.tracker.spawn(async move {
                        let out = pipeline
                            .resolve_query(&packet, src.ip(), Transport::Udp)
                            .await;
                        if !out.is_empty() && !send(&sock, &out, src).await {
                            metrics.dropped(DropReason::SendFailed);
                        }
                        drop(permit);
                    });
                }
            }
        }
        if let Some(r) = &mut self.relay {
            let (sock, shared) = (&self.sock, &self.shared);
            let pipeline = &r.pipeline;
            r.relay
                .flush(pipeline.upstream(), to_slow_path(sock, shared, pipeline));
        }
    }

    /// A slot under `server.max_inflight`, or the query is dropped and counted.
    fn permit(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.shared.inflight.clone().try_acquire_owned().ok();
        if permit.is_none() {
            self.shared.metrics.dropped(DropReason::Overloaded);
        }
        permit
    }

    /// Answers what the relay got (into the outbox), relays the A query a
    /// synthesis needs, and hands what the wire path cannot finish to the
    /// general path.
    fn relay_event(&mut self, retired: bool, ready: Ready) {
        let slot = if retired {
            &mut self.retired
        } else {
            &mut self.relay
        };
        let Some(r) = slot else {
            return;
        };
        let (sock, shared, outbox) = (&self.sock, &self.shared, &mut self.outbox);
        let (pool, then_a) = (&mut self.pool, &mut self.then_a);
        let pipeline = &r.pipeline;
        let now = Instant::now();
        let mut hand_back = to_slow_path(sock, shared, pipeline);
        let mut handle = |o: Outcome<'_, Relayed>| match o {
            Outcome::Answered {
                query,
                reply,
                server,
                mut token,
            } => {
                let src = token.src;
                let (client_query, stage) = match &token.synthesis {
                    Some(s) => (
                        s.query.as_slice(),
                        Stage::A {
                            aaaa: &s.aaaa,
                            ttl_cap: s.ttl_cap,
                        },
                    ),
                    None => (query, Stage::First),
                };
                let times = (token.started, now);
                let out = outbox.buffer();
                let x = Exchange {
                    query: client_query,
                    stage,
                    reply,
                    server,
                };
                match pipeline.relayed(x, src.ip(), times, out) {
                    Step::Answered => {
                        outbox.commit(src);
                        if let Some(s) = token.synthesis.take() {
                            pool.put(s);
                        }
                    }
                    Step::AskA { ttl_cap } if token.synthesis.is_none() => {
                        token.synthesis = Some(Synthesis {
                            query: pool.copy_of(query),
                            aaaa: pool.copy_of(reply),
                            ttl_cap,
                            server,
                        });
                        then_a.push(token);
                    }
                    Step::AskA { .. } | Step::Slow => {
                        let reply = Prefetched::Reply(Reply {
                            bytes: reply.to_vec(),
                            server,
                        });
                        slow_path(sock, shared, pipeline, query, token, reply);
                    }
                }
            }
            resume @ Outcome::Resume { .. } => hand_back(resume),
        };
        match ready {
            Ready::Replies => r.relay.answers(pipeline.upstream(), now, &mut handle),
            Ready::Deadline => r.relay.expire(pipeline.upstream(), now, &mut handle),
        }
        // Ends its borrow of the relay slot (an opaque type may have a destructor).
        drop(hand_back);
        // The A queries of syntheses: the client's query with QTYPE A.
        let mut scratch = self.pool.0.pop().unwrap_or_default();
        for token in self.then_a.drain(..) {
            let Some(s) = &token.synthesis else {
                continue;
            };
            scratch.clear();
            scratch.extend_from_slice(&s.query);
            wire::set_qtype(&mut scratch, rtype::A);
            if let Err((_, token)) = r.relay.start(pipeline.upstream(), &scratch, token, now) {
                let resume = Prefetched::Resume(Resume::default());
                slow_path(sock, shared, pipeline, &scratch, token, resume);
            }
        }
        self.pool.0.push(scratch);
        r.relay
            .flush(pipeline.upstream(), to_slow_path(sock, shared, pipeline));
        // A retired relay that is done closes its sockets.
        if self.retired.as_ref().is_some_and(|r| r.relay.is_empty()) {
            self.retired = None;
        }
    }

    /// Sends the queued answers; what the kernel had no room for is sent one
    /// by one with retries.
    async fn flush(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        match self.outbox.flush(self.sock.get_ref()) {
            Ok(refused) => {
                (0..refused).for_each(|_| self.shared.metrics.dropped(DropReason::SendFailed));
            }
            Err(_) => {
                for (out, to) in self.outbox.queued() {
                    if !send(&self.sock, out, to).await {
                        self.shared.metrics.dropped(DropReason::SendFailed);
                    }
                }
                self.outbox.clear();
            }
        }
    }
}

/// The loop's relay for `pipeline`, made on first use. After a reload the
/// current relay is retired (it finishes its queries under the old
/// config); one retired before it and still busy, after a second quick
/// reload, hands its queries to tasks on its pipeline.
fn relay_for<'a>(
    (current, retired): (&'a mut Option<LoopRelay>, &mut Option<LoopRelay>),
    pipeline: &Arc<Pipeline>,
    sock: &Sock,
    shared: &Shared,
) -> &'a mut LoopRelay {
    if current
        .as_ref()
        .is_some_and(|r| !Arc::ptr_eq(&r.pipeline, pipeline))
        && let Some(old) = current.take().filter(|r| !r.relay.is_empty())
        && let Some(mut oldest) = retired.replace(old)
    {
        let old_pipeline = oldest.pipeline.clone();
        oldest
            .relay
            .abandon(to_slow_path(sock, shared, &old_pipeline));
    }
    current.get_or_insert_with(|| LoopRelay {
        relay: Relay::new(pipeline.upstream(), pipeline.relay_sockets()),
        pipeline: pipeline.clone(),
    })
}

/// For relay calls that only hand queries back (flush, abandon): each goes
/// on as a task.
fn to_slow_path<'a>(
    sock: &'a Sock,
    shared: &'a Shared,
    pipeline: &'a Arc<Pipeline>,
) -> impl FnMut(Outcome<'_, Relayed>) + 'a {
    move |o| {
        if let Outcome::Resume {
            query,
            token,
            resume,
        } = o
        {
            slow_path(
                sock,
                shared,
                pipeline,
                query,
                token,
                Prefetched::Resume(resume),
            );
        }
    }
}

/// Runs the rest of a relayed query as a task on the general path, with
/// the exchanges made so far: `last` is the result for `query` (the
/// relay's, the A query of a synthesis), after the AAAA reply a synthesis
/// holds.
fn slow_path(
    sock: &Sock,
    shared: &Shared,
    pipeline: &Arc<Pipeline>,
    query: &[u8],
    mut token: Relayed,
    last: Prefetched,
) {
    let question = |q: &[u8]| {
        let end = wire::question_end(q).unwrap_or(HEADER_LEN);
        q[HEADER_LEN..end].to_vec()
    };
    let (client_query, prefetch) = match token.synthesis.take() {
        Some(s) => {
            let aaaa = Prefetched::Reply(Reply {
                bytes: s.aaaa,
                server: s.server,
            });
            let prefetch = vec![(question(&s.query), aaaa), (question(query), last)];
            (s.query, prefetch)
        }
        None => (query.to_vec(), vec![(question(query), last)]),
    };
    let (sock, pipeline) = (sock.clone(), pipeline.clone());
    let metrics = shared.metrics.clone();
    shared.tracker.spawn(async move {
        let src = token.src;
        let out = pipeline
            .resolve_query_with(
                &client_query,
                src.ip(),
                Transport::Udp,
                prefetch,
                token.started,
            )
            .await;
        if !out.is_empty() && !send(&sock, &out, src).await {
            metrics.dropped(DropReason::SendFailed);
        }
        drop(token);
    });
}

/// Sends one answer; false when it could not be sent.
async fn send(sock: &AsyncFd<UdpSocket>, out: &[u8], to: SocketAddr) -> bool {
    match send_retrying(|| sock.get_ref().send_to(out, to)).await {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, %to, "udp send");
            false
        }
    }
}
