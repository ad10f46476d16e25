//! TCP (RFC 7766): one task per connection; several queries in flight per
//! connection, each answered as soon as it completes.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::{Shared, TCP_PIPELINE_DEPTH};
use crate::metrics::DropReason;
use crate::pipeline::Transport;

/// Serves TCP until `stop`, one task per connection within the cap. At the
/// stop, connections the kernel has already completed and queued are
/// accepted and served before the listener closes: closing a listener
/// resets what is in its accept queue (unless `net.ipv4.tcp_migrate_req`
/// hands it to another member of the `SO_REUSEPORT` group).
pub async fn serve_tcp(listener: TcpListener, shared: Shared, stop: CancellationToken) {
    loop {
        let (stream, src) = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => { tracing::debug!(error = %e, "tcp accept"); tokio::time::sleep(Duration::from_millis(10)).await; continue; }
            },
        };
        spawn_connection(stream, src, &shared);
    }
    let listener = match listener.into_std() {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!(error = %e, "tcp listener at stop");
            return;
        }
    };
    // Non-blocking (tokio set it): each accept takes one queued connection,
    // WouldBlock says the queue is empty; the listener closes right after.
    while let Ok((stream, src)) = listener.accept() {
        match stream
            .set_nonblocking(true)
            .and_then(|()| TcpStream::from_std(stream))
        {
            Ok(stream) => spawn_connection(stream, src, &shared),
            Err(e) => tracing::debug!(error = %e, %src, "tcp connection at stop"),
        }
    }
}

/// Serves one accepted connection as a task, or closes it past the cap.
fn spawn_connection(stream: TcpStream, src: SocketAddr, shared: &Shared) {
    let Ok(permit) = shared.tcp_connections.clone().try_acquire_owned() else {
        shared.metrics.dropped(DropReason::TcpLimit);
        drop(stream);
        return;
    };
    let conn_shared = shared.clone();
    shared.tracker.spawn(async move {
        if let Err(e) = connection(stream, src, conn_shared).await {
            tracing::debug!(error = %e, %src, "tcp connection");
        }
        drop(permit);
    });
}

/// One TCP connection (RFC 7766): length-prefixed queries, several in flight,
/// each answered as soon as it completes; closed after the idle timeout with
/// nothing pending, at shutdown, or on a framing error.
async fn connection(stream: TcpStream, src: SocketAddr, shared: Shared) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(TCP_PIPELINE_DEPTH);
    // A client that stops reading must not pin in-flight slots: a write that
    // makes no progress for the idle timeout closes the connection, which
    // drops the queue and frees every query waiting on it.
    let closed = CancellationToken::new();
    let closing = closed.clone();
    let idle = shared.tcp_idle_timeout;
    let writer = async move {
        let _close = closing.drop_guard();
        while let Some(out) = rx.recv().await {
            let mut framed = Vec::with_capacity(out.len() + 2);
            framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
            framed.extend_from_slice(&out);
            tokio::time::timeout(idle, wr.write_all(&framed))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client stopped reading"))??;
        }
        wr.shutdown().await
    };
    let depth = Arc::new(Semaphore::new(TCP_PIPELINE_DEPTH));
    let reader = async move {
        let mut first = true;
        loop {
            let busy = || depth.available_permits() < TCP_PIPELINE_DEPTH;
            let Some(len) = read_length(&mut rd, &shared, &closed, busy, first).await? else {
                break;
            };
            first = false;
            let mut packet = vec![0u8; len];
            tokio::time::timeout(shared.tcp_idle_timeout, rd.read_exact(&mut packet))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "query body stalled"))??;
            let Ok(inflight) = shared.inflight.clone().try_acquire_owned() else {
                shared.metrics.dropped(DropReason::Overloaded);
                continue;
            };
            let slot = tokio::select! {
                _ = closed.cancelled() => break,
                s = depth.clone().acquire_owned() => match s {
                    Ok(s) => s,
                    Err(_) => break,
                },
            };
            let (tx, pipeline) = (tx.clone(), shared.pipeline.load_full());
            shared.tracker.spawn(async move {
                if let Some(out) = pipeline.handle(&packet, src.ip(), Transport::Tcp).await {
                    let _ = tx.send(out).await;
                }
                drop((inflight, slot));
            });
        }
        // Dropping our sender lets the writer finish once in-flight answers are out.
        drop(tx);
        Ok::<(), io::Error>(())
    };
    let (r, w) = tokio::join!(reader, writer);
    r.and(w)
}

/// Reads the two-byte length prefix with cancel-safe reads. `None`: the
/// connection should close (EOF, shutdown, or idle with nothing pending).
/// At shutdown a connection closes between queries, except before its
/// `first`: a client that connected just before the stop (or was accepted
/// from the queue at the stop) has its query on the way and gets its answer
/// (bounded by the idle timeout and the drain).
async fn read_length(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    shared: &Shared,
    closed: &CancellationToken,
    busy: impl Fn() -> bool,
    first: bool,
) -> io::Result<Option<usize>> {
    let mut len = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        tokio::select! {
            _ = shared.shutdown.cancelled(), if !first && got == 0 => return Ok(None),
            _ = closed.cancelled() => return Ok(None),
            r = tokio::time::timeout(shared.tcp_idle_timeout, rd.read(&mut len[got..])) => match r {
                // Idle only counts when no answer is pending (RFC 7766 §6.2.3).
                Err(_) if got == 0 && busy() => continue,
                Err(_) | Ok(Ok(0)) => return Ok(None),
                Ok(Ok(n)) => got += n,
                Ok(Err(e)) => return Err(e),
            },
        }
    }
    Ok(Some(usize::from(u16::from_be_bytes(len))))
}
