//! Upstream: sends a query to the configured servers and returns the first
//! acceptable reply. Owns the only outbound I/O of the data path.
//!
//! Two ways out: the [`relay`] of a UDP receive loop, for the first attempt
//! of the queries that loop forwards itself, and [`Upstream::query`] for
//! tasks (and the attempts a relay hands back, [`Upstream::query_from`]).
//!
//! Anti-spoofing (RFC 5452 §9): UDP goes through connected sockets, so
//! datagrams from any other address never reach us — long-lived sockets with
//! random ports (the relays' and the [`pool`]), or with
//! `upstream.socket_pool = 0` a fresh socket (random ephemeral port) per
//! query and no relay; the reply must also carry
//! our random ID and the question we asked, else it is dropped and counted.
//! TC=1 → the same question over TCP (RFC 7766 §5). Servers written
//! `tls://` are asked over DNS over TLS ([`tls`], RFC 7858) on every
//! attempt, only by tasks: a pipeline with one never relays.
//!
//! Health: a server that fails `DOWN_AFTER` times in a row is tried last for
//! `DOWN_FOR`, then traffic probes it again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::time::timeout_at;

mod pool;
pub mod relay;
mod tls;
mod zone;

pub use zone::{Upstreams, explain, longest_suffix};

use crate::config::{ForwardZone, UpstreamConfig};
use crate::metrics::{Metrics, ServerStats, UpstreamResult};
use crate::types::unspecified_for;
use crate::wire::{self, HEADER_LEN, Header, rcode};

/// Consecutive failures that mark a server down.
pub const DOWN_AFTER: u32 = 3;
/// How long a down server is tried last.
pub const DOWN_FOR: Duration = Duration::from_secs(5);
/// Largest DNS message (RFC 1035 §4.2.2 length prefix).
const MAX_MESSAGE: usize = 65535;

/// Why no usable reply came back.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No server answered within `timeout` on any attempt.
    #[error("no upstream answered in time")]
    Timeout,
    /// Sockets failed (unreachable network, refused TCP...).
    #[error("upstream I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A validated reply, with the ID still ours (the caller restores the client's).
#[derive(Debug)]
pub struct Reply {
    /// The message.
    pub bytes: Vec<u8>,
    /// Which server gave it.
    pub server: SocketAddr,
}

/// Where a query continues after an attempt made elsewhere (the UDP
/// relay, [`relay`]): which attempt comes next, and what that one gave.
#[derive(Debug, Default)]
pub struct Resume {
    /// Attempts already made.
    pub attempts_done: u32,
    /// The server of the last attempt: the next one goes to the server after it.
    pub last_server: Option<usize>,
    /// That attempt's SERVFAIL or REFUSED, returned if nothing better comes.
    pub error_reply: Option<Reply>,
    /// That attempt's reply was truncated: retry it over TCP first (RFC 7766 §5).
    pub truncated: bool,
}

impl Reply {
    /// The reply's RCODE (low four bits; enough for the failover decision).
    pub fn rcode(&self) -> u16 {
        Header::new(&self.bytes).map_or(rcode::SERVFAIL, |h| h.rcode())
    }
}

#[derive(Debug)]
struct Server {
    addr: SocketAddr,
    stats: Arc<ServerStats>,
    /// `None`: a fresh socket per query.
    pool: Option<pool::Pool>,
    /// DNS over TLS (`tls://` in the config): every attempt goes this way.
    tls: Option<tls::Pipelined>,
    /// The TCP retry of a truncated UDP answer: one persistent, pipelined
    /// connection (RFC 7766 §6.2.1) instead of a connect per query.
    tcp: tls::Pipelined,
    failures: AtomicU32,
    /// Milliseconds since `Upstream::epoch` until which the server is down.
    down_until: AtomicU64,
}

/// One upstream group: the servers of `upstream.servers` or of one
/// `[[upstream.zone]]`, with their sockets, health and failover.
#[derive(Debug)]
pub struct Upstream {
    servers: Vec<Server>,
    timeout: Duration,
    attempts: u32,
    epoch: Instant,
}

impl Upstream {
    /// The default group: `cfg.servers`, tried in order of health.
    pub fn new(cfg: &UpstreamConfig, metrics: &Metrics) -> Upstream {
        Upstream::group(cfg, &cfg.default_zone(), metrics)
    }

    /// The group of `zone` (its servers, timeout and attempts); sockets
    /// and TLS settings come from `cfg`, counters are labelled with the
    /// zone's suffix.
    pub fn group(cfg: &UpstreamConfig, zone: &ForwardZone, metrics: &Metrics) -> Upstream {
        let tls_config = (!zone.tls_names.is_empty()).then(|| tls::client_config(&cfg.tls_roots));
        let label = zone.suffix.as_str();
        Upstream {
            servers: zone
                .servers
                .iter()
                .map(|&addr| {
                    let stats = metrics.server(label, addr);
                    let tls = zone.tls_names.get(&addr).and_then(|name| {
                        let config = tls_config.clone()?;
                        Some(tls::Pipelined::tls(
                            addr,
                            name,
                            config,
                            cfg.tls_idle_timeout,
                            stats.clone(),
                        ))
                    });
                    Server {
                        addr,
                        pool: (cfg.socket_pool > 0 && tls.is_none())
                            .then(|| pool::Pool::new(addr, cfg.socket_pool, stats.clone())),
                        tls,
                        tcp: tls::Pipelined::tcp(addr, cfg.tls_idle_timeout, stats.clone()),
                        stats,
                        failures: AtomicU32::new(0),
                        down_until: AtomicU64::new(0),
                    }
                })
                .collect(),
            timeout: zone.timeout,
            attempts: zone.attempts,
            epoch: Instant::now(),
        }
    }

    /// True when some server is reached over TLS: such servers are asked by
    /// tasks, never by a receive loop's UDP relay.
    pub fn has_tls(&self) -> bool {
        self.servers.iter().any(|s| s.tls.is_some())
    }

    /// Worst-case time a query can take: `timeout × attempts` (plus a TCP retry).
    pub fn budget(&self) -> Duration {
        self.timeout * self.attempts
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Which servers are down at `now_ms`, one bit each (servers past the
    /// 64th count as up). A query takes this snapshot once, so marking a
    /// server down mid-query does not reorder its remaining attempts.
    fn down_mask(&self, now_ms: u64) -> u64 {
        self.servers
            .iter()
            .take(64)
            .enumerate()
            .filter(|(_, s)| s.down_until.load(Ordering::Relaxed) > now_ms)
            .fold(0, |m, (i, _)| m | 1 << i)
    }

    /// The server of attempt `n` in health order: healthy ones first, in
    /// configured order, then the ones down (no allocation: every forwarded
    /// query asks this).
    fn nth_server(&self, n: usize, down: u64) -> usize {
        let len = self.servers.len();
        let is_down = |i: usize| i < 64 && down & 1 << i != 0;
        let healthy = (0..len).filter(|&i| !is_down(i)).count();
        let n = n % len;
        if n < healthy {
            (0..len).filter(|&i| !is_down(i)).nth(n)
        } else {
            (0..len).filter(|&i| is_down(i)).nth(n - healthy)
        }
        .unwrap_or(0)
    }

    /// The position of `server` in health order (for [`Resume`]).
    fn position(&self, server: usize, down: u64) -> usize {
        (0..self.servers.len())
            .find(|&n| self.nth_server(n, down) == server)
            .unwrap_or(0)
    }

    fn mark(&self, i: usize, ok: bool) {
        let s = &self.servers[i];
        if ok {
            s.failures.store(0, Ordering::Relaxed);
            s.down_until.store(0, Ordering::Relaxed);
        } else if s.failures.fetch_add(1, Ordering::Relaxed) + 1 >= DOWN_AFTER {
            s.down_until.store(
                self.now_ms() + DOWN_FOR.as_millis() as u64,
                Ordering::Relaxed,
            );
        }
    }

    /// Sends `query` (a client's validated query; its ID is replaced) and
    /// returns the first acceptable reply. SERVFAIL and REFUSED move on to the
    /// next server; when every attempt gave one, the last such reply is
    /// returned so the caller can tell SERVFAIL from silence.
    pub async fn query(&self, query: &[u8]) -> Result<Reply, UpstreamError> {
        self.query_from(query, Resume::default()).await
    }

    /// [`Upstream::query`] for a query whose first attempts were made
    /// elsewhere (`resume`): the remaining attempts, to the servers after it.
    pub async fn query_from(&self, query: &[u8], resume: Resume) -> Result<Reply, UpstreamError> {
        let question_end = wire::question_end(query)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let question = &query[HEADER_LEN..question_end];
        let mut packet = query.to_vec();
        let down = self.down_mask(self.now_ms());
        let mut last_error_reply = resume.error_reply;
        let mut last_err = UpstreamError::Timeout;
        let first = match resume.last_server {
            Some(i) if resume.truncated => {
                // The truncated attempt's TCP half, as `exchange` would do it.
                let started = Instant::now();
                let deadline = tokio::time::Instant::now() + self.timeout;
                let result = timeout_at(
                    deadline,
                    self.servers[i].tcp.exchange(&mut packet, question),
                )
                .await
                .map_err(|_| UpstreamError::Timeout)
                .and_then(|r| r);
                match self.settle(i, result, started.elapsed(), &mut last_error_reply) {
                    Ok(Some(reply)) => return Ok(reply),
                    Ok(None) => {}
                    Err(e) => last_err = e,
                }
                self.position(i, down) + 1
            }
            Some(i) => self.position(i, down) + 1,
            None => 0,
        };
        for attempt in resume.attempts_done..self.attempts {
            let n = first + (attempt - resume.attempts_done) as usize;
            let i = self.nth_server(n, down);
            let started = Instant::now();
            let result = self.exchange(&self.servers[i], &mut packet, question).await;
            match self.settle(i, result, started.elapsed(), &mut last_error_reply) {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(e) => last_err = e,
            }
        }
        last_error_reply.ok_or(last_err)
    }

    /// Books one attempt on server `i` (statistics, health): `Some` is the
    /// answer; SERVFAIL and REFUSED are kept in `error_reply` and the next
    /// attempt goes on; a failure is returned as the error.
    fn settle(
        &self,
        i: usize,
        result: Result<Vec<u8>, UpstreamError>,
        took: Duration,
        error_reply: &mut Option<Reply>,
    ) -> Result<Option<Reply>, UpstreamError> {
        let server = &self.servers[i];
        match result {
            Ok(bytes) => {
                let reply = Reply {
                    bytes,
                    server: server.addr,
                };
                let rcode = reply.rcode();
                self.record(i, rcode, took);
                if matches!(rcode, rcode::SERVFAIL | rcode::REFUSED) {
                    *error_reply = Some(reply);
                    Ok(None)
                } else {
                    Ok(Some(reply))
                }
            }
            Err(e) => {
                tracing::debug!(server = %server.addr, error = %e, "upstream attempt failed");
                let kind = match e {
                    UpstreamError::Timeout => UpstreamResult::Timeout,
                    UpstreamError::Io(_) => UpstreamResult::Io,
                };
                server.stats.exchange(kind, took);
                self.mark(i, false);
                Err(e)
            }
        }
    }

    /// Books a reply with `rcode` from server `i`: SERVFAIL and REFUSED
    /// count as failures for its health.
    fn record(&self, i: usize, rcode: u16, took: Duration) {
        let bad = matches!(rcode, rcode::SERVFAIL | rcode::REFUSED);
        let result = if bad {
            UpstreamResult::ErrorRcode
        } else {
            UpstreamResult::Ok
        };
        self.servers[i].stats.exchange(result, took);
        self.mark(i, !bad);
    }

    /// Books an attempt on server `i` whose query could not be sent.
    fn record_io(&self, i: usize, took: Duration) {
        self.servers[i].stats.exchange(UpstreamResult::Io, took);
        self.mark(i, false);
    }

    /// Counts a reply from server `i` that matched no query of ours.
    fn mismatched(&self, i: usize) {
        self.servers[i].stats.mismatched();
    }

    /// Books an attempt on server `i` that got no reply in time.
    fn record_timeout(&self, i: usize, took: Duration) {
        self.servers[i]
            .stats
            .exchange(UpstreamResult::Timeout, took);
        self.mark(i, false);
    }

    /// Asks every server for the root NS set (any answer, whatever its
    /// RCODE, shows the server is alive) and updates health: servers marked
    /// down are probed back this way. True when at least one answered.
    pub async fn probe(&self) -> bool {
        // `. IN NS`, RD=1: every recursive resolver can answer it.
        let mut query = vec![0, 0, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1];
        let question = query[HEADER_LEN..].to_vec();
        let mut any = false;
        for (i, server) in self.servers.iter().enumerate() {
            let ok = self.exchange(server, &mut query, &question).await.is_ok();
            self.mark(i, ok);
            any |= ok;
        }
        any
    }

    /// One attempt: UDP, then TCP when the UDP reply is truncated. The
    /// packet's ID is set to a fresh random one.
    async fn exchange(
        &self,
        server: &Server,
        packet: &mut [u8],
        question: &[u8],
    ) -> Result<Vec<u8>, UpstreamError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        if let Some(tls) = &server.tls {
            // A stream: no truncation, so no TCP retry (RFC 7766 §5).
            return timeout_at(deadline, tls.exchange(packet, question))
                .await
                .map_err(|_| UpstreamError::Timeout)?;
        }
        let udp = async {
            match &server.pool {
                Some(pool) => pool.exchange(packet, question).await,
                None => Self::udp_fresh(server, packet, question).await,
            }
        };
        let reply = timeout_at(deadline, udp)
            .await
            .map_err(|_| UpstreamError::Timeout)??;
        if !Header::new(&reply).is_some_and(|h| h.tc()) {
            return Ok(reply);
        }
        // The TCP retry gets its own full timeout: the server is known to be alive.
        // On the server's open connection, if any (RFC 7766 §6.2.1); the
        // connection sets a fresh ID free on it.
        let deadline = tokio::time::Instant::now() + self.timeout;
        timeout_at(deadline, server.tcp.exchange(packet, question))
            .await
            .map_err(|_| UpstreamError::Timeout)?
    }

    /// One exchange on a socket of its own: a random ephemeral source port.
    async fn udp_fresh(
        server: &Server,
        packet: &mut [u8],
        question: &[u8],
    ) -> Result<Vec<u8>, UpstreamError> {
        let id: u16 = rand::random();
        wire::set_id(packet, id);
        let sock = UdpSocket::bind(unspecified_for(&server.addr)).await?;
        sock.connect(server.addr).await?;
        sock.send(packet).await?;
        let mut buf = Vec::with_capacity(MAX_MESSAGE);
        loop {
            buf.clear();
            sock.recv_buf(&mut buf).await?;
            if acceptable(&buf, id, question) {
                return Ok(buf);
            }
            // Wrong ID or question: a spoofing attempt or a late reply.
            server.stats.mismatched();
        }
    }
}

/// A reply is ours when it is a response with our ID and our question, and
/// whole: a reply cut short is dropped like a forgery, so a later complete
/// one (or a retry) can still answer.
fn acceptable(reply: &[u8], id: u16, question: &[u8]) -> bool {
    Header::new(reply).is_some_and(|h| h.qr() && h.id() == id)
        && wire::same_question(reply, question)
        && wire::well_formed(reply)
}
