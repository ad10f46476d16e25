//! Batched UDP I/O: `recvmmsg(2)` and `sendmmsg(2)` move up to [`BATCH`]
//! datagrams per system call. A cache hit costs about as much in the kernel
//! entry and exit of its `recvfrom` and `sendto` as in everything dns64d does
//! with it, so under load the client-facing loop ([`crate::listen`]) reads
//! every queued query at once and sends every answer it could give at once,
//! and each upstream socket ([`crate::upstream`]) reads every queued reply
//! per wake-up.
//!
//! This is the crate's one `unsafe` module (STYLE §11: a measured hot-path
//! gain, see docs/PERFORMANCE.md). The unsafety is confined to filling the
//! kernel's `mmsghdr` arrays, which are built on the stack for each call and
//! point only into buffers borrowed for that call, and to reading back the
//! source addresses the kernel wrote.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::ptr;
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Datagrams per system call: enough to empty a busy socket's queue in a few
/// calls, small enough that the first answer of a batch is not held long.
pub const BATCH: usize = 32;
/// Largest datagram read; a longer one arrives cut and fails to parse.
pub const MAX_DATAGRAM: usize = 65535;

/// How often a send the kernel has no room for is retried, and how long
/// apart, before it fails (the client retries; counters show it).
const SEND_TRIES: u32 = 8;
const SEND_RETRY_AFTER: Duration = Duration::from_millis(1);

/// Runs `send`, a non-blocking send on a socket registered for readability
/// only, retrying after a short sleep while the kernel has no buffer room.
///
/// Sockets are registered without a writable interest because that would
/// wake their loop after every datagram sent (each freed send buffer is an
/// edge), and the kernel almost always has room for a datagram.
pub async fn send_retrying(mut send: impl FnMut() -> io::Result<usize>) -> io::Result<()> {
    for _ in 0..SEND_TRIES {
        match send() {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tokio::time::sleep(SEND_RETRY_AFTER).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::ErrorKind::WouldBlock.into())
}

/// Registers `sock` with the runtime for readability only.
pub fn register_readable(sock: UdpSocket) -> io::Result<AsyncFd<UdpSocket>> {
    // SAFETY: a std UdpSocket owns its descriptor: it stays open and the same
    // for as long as the AsyncFd owns the socket.
    unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

/// Waits until `sock` is readable, then reads what is queued into `inbox`.
/// The outer error means the socket's registration failed (the loop should
/// end); the inner one is a failed read (ICMP errors and the like: go on).
/// `inbox` may come back empty (a spurious wake-up).
pub async fn recv_ready(
    sock: &AsyncFd<UdpSocket>,
    inbox: &mut Inbox,
) -> io::Result<io::Result<()>> {
    let mut ready = sock.readable().await?;
    let got = ready.try_io(|s| match inbox.recv(s.get_ref()) {
        // Fewer than the inbox holds: the queue was empty when the kernel
        // looked. Report WouldBlock so the readiness is cleared now instead
        // of after one more empty read; a datagram arriving later is a new
        // edge (every UDP enqueue wakes epoll) and wakes us again. The other
        // way recvmmsg stops short, an error after some datagrams (an ICMP
        // report on a connected socket), also wakes epoll when it arrives,
        // after our readiness snapshot, so tokio's tick check keeps the
        // readiness set and the next read sees the rest.
        Ok(n) if n < inbox.slots => Err(io::ErrorKind::WouldBlock.into()),
        r => r,
    });
    Ok(match got {
        Ok(Err(e)) => Err(e),
        _ => Ok(()),
    })
}

/// Receive buffers for one socket's loop and what the last call got.
pub struct Inbox {
    /// `slots` buffers of `MAX_DATAGRAM` bytes. Allocated zeroed in one
    /// piece, so the pages stay untouched (and out of RSS) until datagrams land.
    bufs: Box<[u8]>,
    slots: usize,
    got: [(usize, Option<SocketAddr>); BATCH],
    len: usize,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox::with_slots(BATCH)
    }
}

impl Inbox {
    /// An inbox that reads up to `slots` datagrams per call (at most [`BATCH`]).
    pub fn with_slots(slots: usize) -> Inbox {
        let slots = slots.clamp(1, BATCH);
        Inbox {
            bufs: vec![0u8; slots * MAX_DATAGRAM].into_boxed_slice(),
            slots,
            got: [(0, None); BATCH],
            len: 0,
        }
    }

    /// Reads up to `slots` queued datagrams without blocking; the count, or
    /// `WouldBlock` when none was queued.
    pub fn recv(&mut self, sock: &impl AsRawFd) -> io::Result<usize> {
        self.len = 0;
        // SAFETY: sockaddr_storage and mmsghdr are plain C data for which
        // all-zero bytes are a valid value (no name, no iovec, no control).
        let mut names: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        let mut slots = self.bufs.chunks_exact_mut(MAX_DATAGRAM);
        let mut iovs: [libc::iovec; BATCH] = std::array::from_fn(|_| {
            let slot = slots.next().unwrap_or_default();
            libc::iovec {
                iov_base: slot.as_mut_ptr().cast(),
                iov_len: slot.len(),
            }
        });
        for ((h, iov), name) in hdrs.iter_mut().zip(&mut iovs).zip(&mut names) {
            h.msg_hdr.msg_name = ptr::from_mut(name).cast();
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every pointer in `hdrs` points into `names`, `iovs` or
        // `self.bufs`, all alive and not otherwise used during the call; the
        // kernel writes at most `iov_len` bytes per buffer and `msg_namelen`
        // bytes per name, and reads `slots` headers (at most `BATCH`, the
        // length of `hdrs`; the first `slots` have a buffer of their own).
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                hdrs.as_mut_ptr(),
                self.slots as libc::c_uint,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = (n as usize).min(self.slots);
        for ((got, h), name) in self.got.iter_mut().zip(&hdrs).zip(&names).take(n) {
            let len = (h.msg_len as usize).min(MAX_DATAGRAM);
            // A datagram cut to fit is not the one that was sent: skipped
            // like one without a source (cannot happen with 64 KiB slots).
            let whole = h.msg_hdr.msg_flags & libc::MSG_TRUNC == 0;
            *got = (
                len,
                whole
                    .then(|| socket_addr(name, h.msg_hdr.msg_namelen))
                    .flatten(),
            );
        }
        self.len = n;
        Ok(n)
    }

    /// Datagrams one read takes at most.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The datagrams of the last [`Inbox::recv`] and their sources (one
    /// without a readable source address is skipped: nowhere to answer).
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.got[..self.len]
            .iter()
            .zip(self.bufs.chunks_exact(MAX_DATAGRAM))
            .filter_map(|(&(len, src), slot)| Some((&slot[..len], src?)))
    }
}

/// Answers waiting to leave in one `sendmmsg`. The buffers stay for the
/// next batch: answering allocates nothing once they have grown.
pub struct Outbox {
    bufs: Vec<(Vec<u8>, SocketAddr)>,
    /// The first `len` buffers are queued.
    len: usize,
}

/// Room each send buffer starts with: most answers fit (1232 bytes, the
/// DNS Flag Day 2020 EDNS payload); a larger one grows its buffer once.
const OUT_ROOM: usize = 1232;

impl Default for Outbox {
    /// A batch's worth of buffers up front, so a batch larger than any
    /// before does not allocate.
    fn default() -> Self {
        let unspecified = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        Outbox {
            bufs: (0..BATCH)
                .map(|_| (Vec::with_capacity(OUT_ROOM), unspecified))
                .collect(),
            len: 0,
        }
    }
}

impl Outbox {
    /// The next free buffer, empty; [`Outbox::commit`] queues what was
    /// written into it, else it is reused by the next call.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        if self.len == self.bufs.len() {
            let unspecified = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
            self.bufs.push((Vec::new(), unspecified));
        }
        let buf = &mut self.bufs[self.len].0;
        buf.clear();
        buf
    }

    /// Queues the buffer [`Outbox::buffer`] returned last, for `to`.
    pub fn commit(&mut self, to: SocketAddr) {
        if let Some(slot) = self.bufs.get_mut(self.len) {
            slot.1 = to;
            self.len += 1;
        }
    }

    /// Queues `reply` for `to`.
    pub fn push(&mut self, reply: &[u8], to: SocketAddr) {
        self.buffer().extend_from_slice(reply);
        self.commit(to);
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sends what is queued, [`BATCH`] per call. A datagram the kernel
    /// refuses (unreachable destination...) is dropped and counted in the
    /// returned number; on `WouldBlock` the rest stays queued and the error
    /// is returned.
    pub fn flush(&mut self, sock: &impl AsRawFd) -> io::Result<usize> {
        let mut refused = 0;
        let mut done = 0;
        let result = loop {
            let rest = &self.bufs[done..self.len];
            if rest.is_empty() {
                break Ok(refused);
            }
            match send_batch(sock.as_raw_fd(), rest) {
                // The kernel never takes none of a non-empty batch without an
                // error; should it, the first datagram is dropped so the loop ends.
                Ok(0) => {
                    refused += 1;
                    done += 1;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Err(e),
                // The first datagram failed on its own: skip it, go on.
                Err(e) => {
                    tracing::debug!(error = %e, to = %rest[0].1, "udp send");
                    refused += 1;
                    done += 1;
                }
            }
        };
        // Sent buffers go to the back, to be reused.
        self.bufs[..self.len].rotate_left(done);
        self.len -= done;
        result
    }

    /// What is still queued (after a `WouldBlock`).
    pub fn queued(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.bufs[..self.len]
            .iter()
            .map(|(b, to)| (b.as_slice(), *to))
    }

    /// Forgets what is queued (after sending it some other way).
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// One `sendmmsg` of up to [`BATCH`] datagrams; how many the kernel took.
fn send_batch(fd: RawFd, out: &[(Vec<u8>, SocketAddr)]) -> io::Result<usize> {
    let out = &out[..out.len().min(BATCH)];
    // SAFETY: as in `Inbox::recv`: plain C data, all-zero is valid.
    let mut names: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
    let mut iovs: [libc::iovec; BATCH] = std::array::from_fn(|i| {
        let bytes = out.get(i).map_or(&[][..], |(b, _)| b.as_slice());
        libc::iovec {
            // The kernel only reads a datagram being sent.
            iov_base: bytes.as_ptr().cast_mut().cast(),
            iov_len: bytes.len(),
        }
    });
    for (((h, iov), name), (_, to)) in hdrs.iter_mut().zip(&mut iovs).zip(&mut names).zip(out) {
        h.msg_hdr.msg_name = ptr::from_mut(name).cast();
        h.msg_hdr.msg_namelen = write_sockaddr(name, to);
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the first `out.len()` headers point into `names`, `iovs` and
    // the queued replies, all alive for the call; the kernel reads exactly
    // `out.len()` headers, only reads through their pointers, and writes
    // nothing but each header's own `msg_len` (a field of our local array).
    let n = unsafe {
        libc::sendmmsg(
            fd,
            hdrs.as_mut_ptr(),
            out.len() as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// One `sendmmsg` of up to [`BATCH`] datagrams on a connected socket (no
/// destination addresses); how many the kernel took.
pub fn send_connected<'a>(fd: RawFd, out: impl Iterator<Item = &'a [u8]>) -> io::Result<usize> {
    // SAFETY: as in `Inbox::recv`: plain C data, all-zero is valid.
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
    let mut iovs: [libc::iovec; BATCH] = std::array::from_fn(|_| libc::iovec {
        iov_base: ptr::null_mut(),
        iov_len: 0,
    });
    let mut n = 0;
    for (iov, bytes) in iovs.iter_mut().zip(out) {
        // The kernel only reads a datagram being sent.
        iov.iov_base = bytes.as_ptr().cast_mut().cast();
        iov.iov_len = bytes.len();
        n += 1;
    }
    for (h, iov) in hdrs.iter_mut().zip(&mut iovs).take(n) {
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
    }
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: the first `n` headers point into `iovs`, whose buffers are
    // borrowed from the caller for the call (the iterator's items outlive
    // it: `'a`); the kernel reads exactly `n` headers, only reads through
    // their pointers, and writes nothing but each header's `msg_len`.
    let sent =
        unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// Writes `addr` as a C socket address into `storage`; its length.
fn write_sockaddr(storage: &mut libc::sockaddr_storage, addr: &SocketAddr) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for every
            // socket address type (that is its purpose).
            unsafe {
                ptr::from_mut(storage)
                    .cast::<libc::sockaddr_in>()
                    .write(sin)
            };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above.
            unsafe {
                ptr::from_mut(storage)
                    .cast::<libc::sockaddr_in6>()
                    .write(sin6)
            };
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Reads the source address the kernel wrote into `storage`.
fn socket_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the kernel wrote a whole sockaddr_in (family and length
            // checked); storage is aligned for it.
            let sin = unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(addr: &str) -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind(addr).unwrap();
        let b = UdpSocket::bind(addr).unwrap();
        a.set_nonblocking(true).unwrap();
        (a, b)
    }

    #[test]
    fn recv_returns_would_block_when_nothing_is_queued() {
        let (a, _) = pair("127.0.0.1:0");
        let err = Inbox::default().recv(&a).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn recv_reads_every_queued_datagram_with_its_source() {
        for addr in ["127.0.0.1:0", "[::1]:0"] {
            let (a, b) = pair(addr);
            for i in 0..5u8 {
                b.send_to(&vec![i; usize::from(i) + 1], a.local_addr().unwrap())
                    .unwrap();
            }
            let mut inbox = Inbox::default();
            assert_eq!(inbox.recv(&a).unwrap(), 5);
            let got: Vec<_> = inbox.datagrams().map(|(d, s)| (d.to_vec(), s)).collect();
            for (i, (data, src)) in got.iter().enumerate() {
                assert_eq!(data, &vec![i as u8; i + 1]);
                assert_eq!(*src, b.local_addr().unwrap());
            }
        }
    }

    #[test]
    fn recv_takes_at_most_a_batch_and_leaves_the_rest_queued() {
        let (a, b) = pair("127.0.0.1:0");
        for _ in 0..BATCH + 3 {
            b.send_to(b"q", a.local_addr().unwrap()).unwrap();
        }
        let mut inbox = Inbox::default();
        assert_eq!(inbox.recv(&a).unwrap(), BATCH);
        assert_eq!(inbox.recv(&a).unwrap(), 3);
    }

    #[test]
    fn a_smaller_inbox_reads_at_most_its_slots() {
        let (a, b) = pair("127.0.0.1:0");
        for _ in 0..5 {
            b.send_to(b"r", a.local_addr().unwrap()).unwrap();
        }
        let mut inbox = Inbox::with_slots(2);
        assert_eq!(inbox.recv(&a).unwrap(), 2);
        assert_eq!(inbox.datagrams().count(), 2);
        assert_eq!(inbox.recv(&a).unwrap(), 2);
        assert_eq!(inbox.recv(&a).unwrap(), 1);
    }

    #[test]
    fn flush_sends_each_reply_to_its_own_destination_in_order() {
        for addr in ["127.0.0.1:0", "[::1]:0"] {
            let (a, b) = pair(addr);
            let (c, _) = pair(addr);
            let mut outbox = Outbox::default();
            for i in 0..BATCH as u8 + 7 {
                let to = if i % 2 == 0 { &b } else { &c };
                outbox.push(&[i], to.local_addr().unwrap());
            }
            assert_eq!(outbox.flush(&a).unwrap(), 0);
            assert!(outbox.is_empty());
            let mut buf = [0u8; 4];
            // 39 replies alternate: 20 even ones to b, 19 odd ones to c.
            for (sock, first, count) in [(&b, 0u8, 20), (&c, 1u8, 19)] {
                sock.set_nonblocking(true).unwrap();
                let mut got = Vec::new();
                while let Ok((n, from)) = sock.recv_from(&mut buf) {
                    assert_eq!(from, a.local_addr().unwrap());
                    got.push(buf[..n].to_vec());
                }
                let want: Vec<Vec<u8>> = (0..count).map(|k| vec![first + 2 * k]).collect();
                assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn flush_drops_a_datagram_the_kernel_refuses_and_sends_the_rest() {
        let (a, b) = pair("127.0.0.1:0");
        let mut outbox = Outbox::default();
        // Port 0 is not a valid destination: that datagram alone fails.
        outbox.push(b"bad", "127.0.0.1:0".parse().unwrap());
        outbox.push(b"good", b.local_addr().unwrap());
        assert_eq!(outbox.flush(&a).unwrap(), 1);
        let mut buf = [0u8; 8];
        let (n, _) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"good");
    }
}
