//! UDP: one receive loop per socket. Each wake-up reads every queued query
//! in one `recvmmsg`, answers what the first stage can answer (rejections,
//! REFUSED, cache hits) and sends those answers in one `sendmmsg`; a query
//! that needs upstream becomes a task that sends its own answer.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::batch::{Inbox, Outbox, recv_ready, register_readable, send_retrying};
use crate::metrics::DropReason;
use crate::pipeline::{Early, Transport};

/// Most batches read after a stop: a full receive buffer's worth, a few
/// thousand queries.
const DRAIN_BATCHES: usize = 256;

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
    let (mut inbox, mut outbox) = (Inbox::default(), Outbox::default());
    loop {
        let got = tokio::select! {
            _ = stop.cancelled() => break,
            r = recv_ready(&sock, &mut inbox) => r,
        };
        match got {
            Ok(Ok(())) => {}
            // ICMP errors surface here on some systems; keep serving.
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "udp recv");
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "udp socket failed");
                return;
            }
        }
        serve_batch(&sock, &inbox, &mut outbox, &shared);
        flush(&sock, &mut outbox, &shared).await;
    }
    // Queries the kernel already queued were sent before we stopped: answer
    // them too, so a shutdown loses nothing that reached us. Bounded: a
    // client sending as fast as we answer must not hold the shutdown open.
    for _ in 0..DRAIN_BATCHES {
        let Ok(n) = inbox.recv(sock.get_ref()) else {
            break;
        };
        serve_batch(&sock, &inbox, &mut outbox, &shared);
        flush(&sock, &mut outbox, &shared).await;
        if n < inbox.slots() {
            break;
        }
    }
}

/// Runs the first stage on every datagram of the batch: answers are queued
/// for one `sendmmsg`, queries that need upstream become tasks.
fn serve_batch(
    sock: &Arc<AsyncFd<UdpSocket>>,
    inbox: &Inbox,
    outbox: &mut Outbox,
    shared: &Shared,
) {
    let pipeline = shared.pipeline.load();
    for (packet, src) in inbox.datagrams() {
        match pipeline.answer_now(packet, src.ip(), Transport::Udp) {
            Early::Drop => {}
            Early::Reply(out) => outbox.push(out, src),
            Early::Resolve => {
                let Ok(permit) = shared.inflight.clone().try_acquire_owned() else {
                    shared.metrics.dropped(DropReason::Overloaded);
                    continue;
                };
                let (packet, sock, pipeline) = (packet.to_vec(), sock.clone(), pipeline.clone());
                let metrics = shared.metrics.clone();
                shared.tracker.spawn(async move {
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
}

/// Sends the queued answers; what the kernel had no room for is sent one by
/// one with retries.
async fn flush(sock: &AsyncFd<UdpSocket>, outbox: &mut Outbox, shared: &Shared) {
    if outbox.is_empty() {
        return;
    }
    match outbox.flush(sock.get_ref()) {
        Ok(refused) => (0..refused).for_each(|_| shared.metrics.dropped(DropReason::SendFailed)),
        Err(_) => {
            for (out, to) in outbox.take() {
                if !send(sock, &out, to).await {
                    shared.metrics.dropped(DropReason::SendFailed);
                }
            }
        }
    }
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
