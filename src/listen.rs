//! Listen: the client-facing sockets. UDP and TCP on every `server.listen`
//! address; each query runs as its own task so one slow upstream answer never
//! holds up another client. Everything is capped: in-flight queries
//! (`server.max_inflight`), TCP connections (`server.max_tcp_connections`),
//! queries per TCP connection, and TCP idle time (RFC 7766 §6.2.3).
//!
//! Data path position: the first and last step (`listen → wire … reply → listen`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use arc_swap::ArcSwap;

use crate::metrics::{DropReason, Metrics};
use crate::pipeline::{Early, Pipeline, Transport};

/// Largest UDP datagram we read (anything longer is cut and fails to parse).
const UDP_BUFFER: usize = 65535;
/// RFC 7766 §6.2.1.1: pipelined queries per TCP connection answered concurrently.
pub const TCP_PIPELINE_DEPTH: usize = 32;
/// Tries to find a port free for both UDP and TCP when the config says port 0.
const PORT_ZERO_TRIES: usize = 16;

/// Shared limits and state of every listener. The pipeline sits behind an
/// `ArcSwap`: a reload swaps it, and each query keeps the one it started with.
#[derive(Debug, Clone)]
pub struct Shared {
    pub pipeline: Arc<ArcSwap<Pipeline>>,
    pub metrics: Arc<Metrics>,
    pub inflight: Arc<Semaphore>,
    pub tcp_connections: Arc<Semaphore>,
    pub tcp_idle_timeout: Duration,
    pub tracker: TaskTracker,
    pub shutdown: CancellationToken,
}

/// One listen address: a UDP socket and a TCP listener on the same port.
#[derive(Debug)]
pub struct Bound {
    /// One socket per worker, all on the same port (`SO_REUSEPORT`): the
    /// kernel spreads clients over them so receive loops run in parallel.
    pub udp: Vec<std::net::UdpSocket>,
    pub tcp: std::net::TcpListener,
    pub addr: SocketAddr,
}

/// Binds UDP and TCP on `addr`. IPv6 sockets are IPv6-only so `[::]` and
/// `0.0.0.0` can both be listed; with port 0 both protocols get the same port.
pub fn bind(addr: SocketAddr, udp_sockets: usize) -> io::Result<Bound> {
    // Port 0 (tests, ad-hoc runs): one socket and no SO_REUSEPORT, so the
    // kernel can never hand the same port to another listener of ours.
    let (tries, reuse) = if addr.port() == 0 {
        (PORT_ZERO_TRIES, false)
    } else {
        (1, udp_sockets > 1)
    };
    let mut last = None;
    for _ in 0..tries {
        let first = socket(addr, Type::DGRAM, Protocol::UDP, reuse)?;
        first.bind(&addr.into())?;
        let local = first
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("not an inet socket"))?;
        let tcp = socket(local, Type::STREAM, Protocol::TCP, false)?;
        tcp.set_reuse_address(true)?;
        match tcp.bind(&local.into()) {
            Ok(()) => {
                tcp.listen(1024)?;
                let mut udp = vec![first.into()];
                for _ in 1..if reuse { udp_sockets } else { 1 } {
                    let s = socket(local, Type::DGRAM, Protocol::UDP, true)?;
                    s.bind(&local.into())?;
                    udp.push(s.into());
                }
                return Ok(Bound {
                    udp,
                    tcp: tcp.into(),
                    addr: local,
                });
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no port found")))
}

fn socket(addr: SocketAddr, ty: Type, proto: Protocol, reuse_port: bool) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if reuse_port {
        // Several receive sockets per address; the kernel balances by
        // 4-tuple. Linux only lets sockets of the same user join the group.
        s.set_reuse_port(true)?;
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Serves UDP until `stop` (shutdown, or this address removed by a reload):
/// each datagram becomes a task, shed when the in-flight cap is reached (the
/// client retries; the drop counter shows it).
pub async fn serve_udp(sock: UdpSocket, shared: Shared, stop: CancellationToken) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        let (n, src) = tokio::select! {
            _ = stop.cancelled() => break,
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                // ICMP errors surface here on some systems; keep serving.
                Err(e) => { tracing::debug!(error = %e, "udp recv"); continue; }
            },
        };
        serve_datagram(&sock, &buf[..n], src, &shared).await;
    }
    // Queries the kernel already queued were sent before we stopped: answer
    // them too, so a shutdown loses nothing that reached us.
    while let Ok((n, src)) = sock.try_recv_from(&mut buf) {
        serve_datagram(&sock, &buf[..n], src, &shared).await;
    }
}

/// One datagram: rejections, REFUSED and cache hits are answered inline (no
/// task, no copy of the packet); the rest becomes a task within the cap.
async fn serve_datagram(sock: &Arc<UdpSocket>, packet: &[u8], src: SocketAddr, shared: &Shared) {
    let pipeline = shared.pipeline.load_full();
    match pipeline.answer_now(packet, src.ip(), Transport::Udp) {
        Early::Drop => return,
        Early::Reply(out) => {
            if let Err(e) = sock.send_to(&out, src).await {
                tracing::debug!(error = %e, %src, "udp send");
            }
            return;
        }
        Early::Resolve => {}
    }
    let Ok(permit) = shared.inflight.clone().try_acquire_owned() else {
        shared.metrics.dropped(DropReason::Overloaded);
        return;
    };
    let packet = packet.to_vec();
    let sock = sock.clone();
    shared.tracker.spawn(async move {
        let out = pipeline
            .resolve_query(&packet, src.ip(), Transport::Udp)
            .await;
        if !out.is_empty()
            && let Err(e) = sock.send_to(&out, src).await
        {
            tracing::debug!(error = %e, %src, "udp send");
        }
        drop(permit);
    });
}

/// Serves TCP until `stop`, one task per connection within the cap.
pub async fn serve_tcp(listener: TcpListener, shared: Shared, stop: CancellationToken) {
    loop {
        let (stream, src) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => { tracing::debug!(error = %e, "tcp accept"); tokio::time::sleep(Duration::from_millis(10)).await; continue; }
            },
        };
        let Ok(permit) = shared.tcp_connections.clone().try_acquire_owned() else {
            shared.metrics.dropped(DropReason::TcpLimit);
            drop(stream);
            continue;
        };
        let conn_shared = shared.clone();
        shared.tracker.spawn(async move {
            if let Err(e) = connection(stream, src, conn_shared).await {
                tracing::debug!(error = %e, %src, "tcp connection");
            }
            drop(permit);
        });
    }
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
        loop {
            let busy = || depth.available_permits() < TCP_PIPELINE_DEPTH;
            let Some(len) = read_length(&mut rd, &shared, &closed, busy).await? else {
                break;
            };
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
async fn read_length(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    shared: &Shared,
    closed: &CancellationToken,
    busy: impl Fn() -> bool,
) -> io::Result<Option<usize>> {
    let mut len = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return Ok(None),
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
