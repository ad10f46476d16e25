//! Persistent, pipelined stream connections to one upstream server: DNS
//! over TLS (RFC 7858) for servers written `tls://IP[:PORT]#NAME`, and plain
//! TCP for the TCP retry of a truncated UDP answer (RFC 7766 §5), which
//! reuses one open connection instead of a connect per query (§6.2.1). The
//! connection machinery is the same for both: generic over the byte stream
//! (any `AsyncRead + AsyncWrite`), only [`Dial`] differs.
//!
//! rustls through tokio-rustls: memory-safe, no system OpenSSL to link or
//! version-match, the same crypto (`ring`) already in the dependency tree,
//! and an API with no switch to turn certificate checks off.
//!
//! One persistent connection per server, shared by every query to it:
//! queries are pipelined (RFC 7766 §6.2.1.1) and each answer is matched to
//! its query by ID and question (§6.2.1), so answers may come out of order.
//! A reader task delivers the answers; when the server closes the connection
//! (or it fails) every query still waiting on it is released, and the next
//! query opens a new one. With no query waiting for `idle` the connection is
//! closed by us (§6.2.3: clients should close idle connections).
//!
//! Anti-spoofing: the certificate must chain to the configured roots and be
//! valid for NAME; an answer with an ID or question we did not ask is
//! dropped and counted, as for UDP (RFC 5452 §9).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::{UpstreamError, acceptable};
use crate::metrics::ServerStats;
use crate::wire;

/// Queries in flight on one connection at most; more wait for a free ID
/// rather than crowd the 16-bit ID space (and the server's patience).
const MAX_IN_FLIGHT: usize = 1024;

/// The two halves of a connection, whatever the stream underneath.
type ReadSide = Box<dyn AsyncRead + Send + Unpin>;
type Writer = tokio::sync::Mutex<Box<dyn AsyncWrite + Send + Unpin>>;

type Waiters = Mutex<HashMap<u16, (Box<[u8]>, oneshot::Sender<Vec<u8>>)>>;

/// The TLS client configuration shared by every TLS server: `roots` (the
/// `upstream.tls_ca` file), or the Mozilla roots when empty.
pub fn client_config(roots: &[CertificateDer<'static>]) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    if roots.is_empty() {
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    } else {
        // Config loading already parsed them; one a webpki cannot use is
        // skipped here and shows as a verification failure, with its reason.
        let (_, bad) = store.add_parsable_certificates(roots.iter().cloned());
        if bad > 0 {
            tracing::warn!(
                unusable = bad,
                "some upstream.tls_ca certificates cannot be used as roots"
            );
        }
    }
    Arc::new(
        ClientConfig::builder()
            .with_root_certificates(store)
            .with_no_client_auth(),
    )
}

/// One open connection and the queries waiting on it.
struct Conn {
    writer: Arc<Writer>,
    waiting: Arc<Waiters>,
    /// Set when the reader stopped: the connection takes no more queries.
    closed: Arc<AtomicBool>,
    /// Queries sent on this connection, to tell a reused one from a fresh one.
    used: AtomicU64,
    reader: tokio::task::AbortHandle,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// How a connection is opened.
enum Dial {
    /// Plain TCP (RFC 7766).
    Tcp,
    /// TLS over TCP, the certificate checked against `name` (RFC 7858).
    Tls {
        name: ServerName<'static>,
        connector: TlsConnector,
    },
}

/// The stream connection to one upstream server.
pub struct Pipelined {
    addr: SocketAddr,
    dial: Dial,
    idle: Duration,
    stats: Arc<ServerStats>,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
}

impl std::fmt::Debug for Pipelined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match &self.dial {
            Dial::Tcp => None,
            Dial::Tls { name, .. } => Some(name),
        };
        f.debug_struct("Pipelined")
            .field("addr", &self.addr)
            .field("tls_name", &name)
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
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

impl Pipelined {
    /// TLS to `addr`, whose certificate must be valid for `name` (config
    /// loading checked it is a valid server name; were it not, the
    /// certificate would be checked against the address, never not at all).
    pub fn tls(
        addr: SocketAddr,
        name: &str,
        config: Arc<ClientConfig>,
        idle: Duration,
        stats: Arc<ServerStats>,
    ) -> Pipelined {
        let name = ServerName::try_from(name.to_owned())
            .unwrap_or_else(|_| ServerName::IpAddress(addr.ip().into()));
        stats.set_tls();
        Pipelined {
            addr,
            dial: Dial::Tls {
                name,
                connector: TlsConnector::from(config),
            },
            idle,
            stats,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// Plain TCP to `addr`, closed after `idle` without queries.
    pub fn tcp(addr: SocketAddr, idle: Duration, stats: Arc<ServerStats>) -> Pipelined {
        Pipelined {
            addr,
            dial: Dial::Tcp,
            idle,
            stats,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// Opens the byte stream: TCP, and the TLS handshake for `tls://`.
    async fn dial(&self) -> Result<(ReadSide, Box<dyn AsyncWrite + Send + Unpin>), UpstreamError> {
        let tls = matches!(self.dial, Dial::Tls { .. });
        let tcp = match TcpStream::connect(self.addr).await {
            Ok(tcp) => tcp,
            Err(e) => {
                if tls {
                    self.stats.tls_connection(false);
                }
                return Err(e.into());
            }
        };
        tcp.set_nodelay(true)?;
        let Dial::Tls { name, connector } = &self.dial else {
            tracing::debug!(server = %self.addr, "TCP connection to upstream open");
            let (read, write) = tokio::io::split(tcp);
            return Ok((Box::new(read), Box::new(write)));
        };
        let stream = match connector.connect(name.clone(), tcp).await {
            Ok(s) => s,
            Err(e) => {
                self.stats.tls_connection(false);
                // Certificate problems come back as InvalidData with rustls's
                // reason ("certificate not valid for name ...", "UnknownIssuer").
                tracing::warn!(
                    server = %self.addr,
                    name = ?name,
                    error = %e,
                    "TLS handshake with upstream failed"
                );
                return Err(e.into());
            }
        };
        self.stats.tls_connection(true);
        tracing::debug!(server = %self.addr, "TLS connection to upstream open");
        let (read, write) = tokio::io::split(stream);
        Ok((Box::new(read), Box::new(write)))
    }

    /// The open connection, or a new one.
    async fn connection(&self) -> Result<Arc<Conn>, UpstreamError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.closed.load(Ordering::Acquire)
        {
            return Ok(c.clone());
        }
        *slot = None;
        let (read, write) = self.dial().await?;
        let waiting: Arc<Waiters> = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let writer = Arc::new(tokio::sync::Mutex::new(write));
        let reader = tokio::spawn(reader(
            read,
            writer.clone(),
            waiting.clone(),
            closed.clone(),
            self.stats.clone(),
            self.idle,
            self.addr,
        ))
        .abort_handle();
        let conn = Arc::new(Conn {
            writer,
            waiting,
            closed,
            used: AtomicU64::new(0),
            reader,
        });
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Sends `packet` (its ID is replaced by one free on the connection) and
    /// waits for the matching answer. The caller bounds the wait. A query
    /// that was sent on a reused connection the server had already closed
    /// (RFC 7766 §6.2.3 allows it to at any time) is sent again once on a
    /// new connection.
    pub async fn exchange(
        &self,
        packet: &mut [u8],
        question: &[u8],
    ) -> Result<Vec<u8>, UpstreamError> {
        match self.exchange_once(packet, question).await {
            Err(Retry::Stale(_)) => self
                .exchange_once(packet, question)
                .await
                .map_err(Retry::into_error),
            other => other.map_err(Retry::into_error),
        }
    }

    async fn exchange_once(&self, packet: &mut [u8], question: &[u8]) -> Result<Vec<u8>, Retry> {
        let conn = self.connection().await.map_err(Retry::Fatal)?;
        let reused = conn.used.fetch_add(1, Ordering::Relaxed) > 0;
        let stale = |e: UpstreamError| {
            if reused {
                Retry::Stale(e)
            } else {
                Retry::Fatal(e)
            }
        };
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut waiting = conn.waiting.lock().unwrap_or_else(|e| e.into_inner());
            // Checked under the lock the reader clears the waiters with, after
            // it marked the connection closed: a waiter added here is either
            // released by that clear or never added.
            if conn.closed.load(Ordering::Acquire) {
                return Err(Retry::Stale(UpstreamError::Io(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "connection to upstream closed",
                ))));
            }
            if waiting.len() >= MAX_IN_FLIGHT {
                return Err(Retry::Fatal(UpstreamError::Io(std::io::Error::other(
                    "too many queries in flight on the upstream connection",
                ))));
            }
            let mut id: u16 = rand::random();
            while waiting.contains_key(&id) {
                id = rand::random();
            }
            waiting.insert(id, (question.into(), tx));
            id
        };
        let _unregister = Unregister {
            waiting: &conn.waiting,
            id,
        };
        wire::set_id(packet, id);
        // RFC 7858 §3.3 / RFC 1035 §4.2.2: two-byte length, then the message,
        // in one write so the server gets both in one segment (or TLS record).
        let mut framed = Vec::with_capacity(packet.len() + 2);
        framed.extend_from_slice(&(packet.len() as u16).to_be_bytes());
        framed.extend_from_slice(packet);
        {
            let mut w = conn.writer.lock().await;
            let sent = async {
                w.write_all(&framed).await?;
                w.flush().await
            }
            .await;
            if let Err(e) = sent {
                conn.closed.store(true, Ordering::Release);
                return Err(stale(e.into()));
            }
        }
        rx.await.map_err(|_| {
            stale(UpstreamError::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "connection to upstream closed before the answer",
            )))
        })
    }
}

/// Why one try failed: `Stale` may be retried on a new connection.
enum Retry {
    Stale(UpstreamError),
    Fatal(UpstreamError),
}

impl Retry {
    fn into_error(self) -> UpstreamError {
        match self {
            Retry::Stale(e) | Retry::Fatal(e) => e,
        }
    }
}

/// One length-prefixed message (RFC 1035 §4.2.2).
async fn read_frame(read: &mut ReadSide) -> std::io::Result<Vec<u8>> {
    let len = read.read_u16().await? as usize;
    let mut buf = vec![0u8; len];
    read.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Delivers answers to their waiters until the connection ends: closed by
/// the server, failed, or idle for `idle` with nobody waiting.
async fn reader(
    mut read: ReadSide,
    writer: Arc<Writer>,
    waiting: Arc<Waiters>,
    closed: Arc<AtomicBool>,
    stats: Arc<ServerStats>,
    idle: Duration,
    addr: SocketAddr,
) {
    let why: String = 'conn: loop {
        // One frame read kept alive across idle checks: a read cut off
        // mid-frame would lose the framing (`read_u16` is not cancel-safe).
        let frame = read_frame(&mut read);
        tokio::pin!(frame);
        let buf = loop {
            tokio::select! {
                r = &mut frame => match r {
                    Ok(buf) => break buf,
                    Err(e) => break 'conn e.to_string(),
                },
                _ = tokio::time::sleep(idle) => {
                    let empty = waiting
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .is_empty();
                    if empty {
                        break 'conn "idle".into();
                    }
                }
            }
        };
        let mut map = waiting.lock().unwrap_or_else(|e| e.into_inner());
        let Some(id) = wire::id(&buf) else {
            stats.mismatched();
            continue;
        };
        match map.get(&id) {
            Some((question, _)) if acceptable(&buf, id, question) => {
                if let Some((_, tx)) = map.remove(&id) {
                    let _ = tx.send(buf);
                }
            }
            // Wrong ID or question: an answer to a query that gave up, or a forgery.
            _ => stats.mismatched(),
        }
    };
    closed.store(true, Ordering::Release);
    tracing::debug!(server = %addr, reason = %why, "connection to upstream closed");
    // Dropping the senders releases every query still waiting on this connection.
    waiting.lock().unwrap_or_else(|e| e.into_inner()).clear();
    // close_notify and FIN now, not when the next query replaces the connection.
    let _ = writer.lock().await.shutdown().await;
}
