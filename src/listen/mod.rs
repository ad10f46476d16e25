//! Listen: the client-facing sockets. UDP and TCP on every `server.listen`
//! address. Answers the first stage can give (rejections, REFUSED, cache
//! hits) leave from the receive loop, and so do UDP queries the loop's relay
//! forwards (it waits for no reply: one slow upstream answer never holds up
//! another client); any other query that needs upstream runs as its own task.
//! Everything is capped: in-flight queries (`server.max_inflight`), TCP
//! connections (`server.max_tcp_connections`), queries per TCP connection,
//! and TCP idle time (RFC 7766 §6.2.3).
//!
//! Data path position: the first and last step (`listen → wire … reply → listen`).
//! [`udp`] and [`tcp`] serve.

mod tcp;
mod udp;

pub use tcp::serve_tcp;
pub use udp::serve_udp;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use arc_swap::ArcSwap;

use crate::metrics::Metrics;
use crate::pipeline::Pipeline;

/// RFC 7766 §6.2.1.1: pipelined queries per TCP connection answered concurrently.
pub const TCP_PIPELINE_DEPTH: usize = 32;
/// Tries to find a port free for both UDP and TCP when the config says port 0.
const PORT_ZERO_TRIES: usize = 16;
/// Accept queue of the TCP listeners.
const TCP_BACKLOG: i32 = 1024;

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
/// `receive_buffer` (bytes, 0 = the system default) is asked for on every
/// UDP socket; the kernel caps it at `net.core.rmem_max`.
///
/// On a fixed port every socket sets `SO_REUSEPORT`, even with one worker: a
/// second dns64d (the surge pod of a rolling update) binds the same
/// addresses and the kernel spreads clients over both, so the old one can
/// stop without a moment where nobody listens. Linux only lets sockets of
/// the same effective UID join one group.
pub fn bind(addr: SocketAddr, udp_sockets: usize, receive_buffer: usize) -> io::Result<Bound> {
    // Port 0 (tests, ad-hoc runs): one socket and no SO_REUSEPORT, so the
    // kernel can never hand the same port to another listener of ours.
    let (tries, reuse) = if addr.port() == 0 {
        (PORT_ZERO_TRIES, false)
    } else {
        (1, true)
    };
    let mut last = None;
    for _ in 0..tries {
        let first = udp_socket(addr, reuse, receive_buffer)?;
        first.bind(&addr.into())?;
        let local = first
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("not an inet socket"))?;
        let tcp = socket(local, Type::STREAM, Protocol::TCP, reuse)?;
        tcp.set_reuse_address(true)?;
        match tcp.bind(&local.into()) {
            Ok(()) => {
                tcp.listen(TCP_BACKLOG)?;
                let mut udp = vec![first.into()];
                for _ in 1..if reuse { udp_sockets } else { 1 } {
                    let s = udp_socket(local, true, receive_buffer)?;
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

/// Binds a TCP listener for the control endpoint, shareable like the DNS
/// listeners (`SO_REUSEPORT` on a fixed port) so the surge pod's probes and
/// scrapes have a port while the old pod still runs.
/// IPv6 keeps the system's dual-stack default, as before.
pub fn bind_control(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if addr.port() != 0 {
        s.set_reuse_port(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(TCP_BACKLOG)?;
    Ok(s.into())
}

/// A UDP socket with room for bursts: a full receive buffer drops queries
/// silently (counted only in the kernel's UDP RcvbufErrors), and the 208 KiB
/// default holds only a few hundred small datagrams.
fn udp_socket(addr: SocketAddr, reuse_port: bool, receive_buffer: usize) -> io::Result<Socket> {
    let s = socket(addr, Type::DGRAM, Protocol::UDP, reuse_port)?;
    if receive_buffer > 0 {
        s.set_recv_buffer_size(receive_buffer)?;
    }
    Ok(s)
}

fn socket(addr: SocketAddr, ty: Type, proto: Protocol, reuse_port: bool) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if reuse_port {
        // Several sockets per address (our workers, or a second process
        // during a rollout); the kernel balances by 4-tuple. Linux only lets
        // sockets of the same effective UID join the group.
        s.set_reuse_port(true)?;
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::SockRef;

    #[test]
    fn udp_sockets_get_the_receive_buffer_asked_for_within_the_kernel_cap() {
        let cap: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(usize::MAX);
        let want = 1 << 20;
        let b = bind("127.0.0.1:0".parse().unwrap(), 1, want).unwrap();
        let got = SockRef::from(&b.udp[0]).recv_buffer_size().unwrap();
        // Linux grants what was asked (doubled for bookkeeping), up to the cap.
        assert!(got >= want.min(cap), "asked {want}, cap {cap}, got {got}");
    }
}
