//! Rolling updates (#19 item 1): a second dns64d binds the same addresses
//! (`SO_REUSEPORT` on the DNS and control ports), the first one, on SIGTERM,
//! reports not ready, keeps serving for `server.shutdown_grace`, then hands
//! over and drains; clients querying throughout lose nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::binary::{PATIENCE, Running, free_port};
use crate::support::http;
use crate::support::{Action, Reply, Upstream, client, q};

/// How long one client query may take before it counts as lost.
const QUERY_WAIT: Duration = Duration::from_secs(2);
/// Pause between two queries of one steady client.
const PACE: Duration = Duration::from_millis(1);
/// Pause of a TCP client between connecting and sending its query, as a
/// loaded client's: a connection the old process accepted just before its
/// stop must still be answered.
const THINK: Duration = Duration::from_millis(5);

/// A rollout-ready config: the grace period, a fixed control port shared by
/// both processes, and two UDP sockets per process, so the reuseport group
/// of the DNS port holds four sockets while both run.
fn rollout_config(metrics: u16, grace: &str) -> String {
    format!(
        "[server]\nshutdown_grace = \"{grace}\"\nmetrics = \"127.0.0.1:{metrics}\"\n\
         workers = 2\nudp_sockets = 2\n"
    )
}

/// One query on a new TCP connection, sent `think` after connecting; the
/// raw reply, or why there was none.
async fn tcp_query(addr: SocketAddr, packet: &[u8], think: Duration) -> Result<Vec<u8>, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        tokio::time::sleep(think).await;
        let mut frame = (packet.len() as u16).to_be_bytes().to_vec();
        frame.extend_from_slice(packet);
        stream
            .write_all(&frame)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut len = [0u8; 2];
        stream
            .read_exact(&mut len)
            .await
            .map_err(|e| format!("read length: {e}"))?;
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream
            .read_exact(&mut body)
            .await
            .map_err(|e| format!("read body: {e}"))?;
        Ok(body)
    };
    tokio::time::timeout(QUERY_WAIT, exchange)
        .await
        .unwrap_or_else(|_| Err("no reply".into()))
}

/// A client querying `addr` steadily until `stop`, each query a new name
/// (`{tag}{n}.dual.example.`, NXDOMAIN upstream, never a cache hit) from a
/// new UDP socket or on a new TCP connection. Yields how many it sent and
/// the failures (no reply, or not the upstream's NXDOMAIN).
fn steady_client(
    addr: SocketAddr,
    tag: String,
    tcp: bool,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    tokio::spawn(async move {
        let (mut sent, mut failed) = (0, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            let name = format!("{tag}{sent}.dual.example.");
            let packet = q(&name, RecordType::A).bytes();
            let raw = if tcp {
                tcp_query(addr, &packet, THINK).await
            } else {
                client::udp_maybe(addr, &packet, QUERY_WAIT)
                    .await
                    .ok_or_else(|| "no reply".to_string())
            };
            match raw.map(|raw| Reply::parse(raw).rcode()) {
                Ok(ResponseCode::NXDomain) => {}
                Ok(rcode) => failed.push(format!("{name}: {rcode}")),
                Err(why) => failed.push(format!("{name}: {why}")),
            }
            sent += 1;
            tokio::time::sleep(PACE).await;
        }
        (sent, failed)
    })
}

/// Whether `upstream` was asked a name of the clients tagged `tag`.
fn served(upstream: &Upstream, tag: &str) -> bool {
    upstream
        .seen()
        .iter()
        .any(|s| s.name().to_ascii().starts_with(tag))
}

/// Polls `GET /ready` until it answers `status`; the body.
async fn ready_becomes(metrics: SocketAddr, status: u16, running: &Running) -> String {
    let started = std::time::Instant::now();
    loop {
        let (got, body) = http::get(metrics, "/ready").await;
        if got == status {
            return body;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "/ready still {got} ({body:?}), want {status}:\n{}",
            running.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_update_loses_no_query_over_udp_or_tcp() {
    let (upstream_a, upstream_b) = (Upstream::start().await, Upstream::start().await);
    // Slow answers keep the old process's sockets open (relayed queries in
    // flight) well after their last read: a socket still in the reuseport
    // group then would take queries nobody reads.
    upstream_a.on_all(
        Some(RecordType::A),
        Action::Delay(Duration::from_millis(50)),
    );
    let metrics = free_port();
    let config = rollout_config(metrics, "1s");
    let mut old = Running::start(&upstream_a, &config).await;
    let addr = old.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = ["u0-", "u1-", "u2-", "u3-", "t0-", "t1-"]
        .into_iter()
        .map(|tag| steady_client(addr, tag.into(), tag.starts_with('t'), stop.clone()))
        .collect();
    // Connections to the old process (alone on the port now) whose clients
    // send their query only once its listeners have stopped.
    let mut late = Vec::new();
    for _ in 0..3 {
        late.push(client::TcpClient::connect(addr).await);
    }
    // The surge pod: same DNS and control addresses, while the old one serves.
    let mut new = Running::spawn(addr, &upstream_b, &config);
    let started = std::time::Instant::now();
    while !(served(&upstream_b, "u") && served(&upstream_b, "t")) {
        if let Some(status) = new.exited() {
            panic!(
                "the second dns64d could not share {addr}: {status}\n{}",
                new.log()
            );
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the second dns64d never served UDP and TCP:\n{}",
            new.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    old.signal("TERM");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for (i, conn) in late.iter_mut().enumerate() {
        let name = format!("late{i}.dual.example.");
        conn.send(&q(&name, RecordType::A).bytes()).await;
        let reply = conn.recv_within(QUERY_WAIT).await;
        assert_eq!(
            reply.map(|raw| Reply::parse(raw).rcode()),
            Some(ResponseCode::NXDomain),
            "{name}: a connection accepted before the stop is answered"
        );
    }
    let status = old.exit_within(Duration::from_secs(1)).await;
    assert!(status.success(), "old dns64d exit status {status}");
    // The new one alone now, control port included.
    let metrics = SocketAddr::from(([127, 0, 0, 1], metrics));
    assert_eq!(http::get(metrics, "/health").await.0, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for c in clients {
        let (sent, failed) = c.await.expect("client task");
        assert!(sent > 0);
        failures.extend(failed);
    }
    assert!(
        failures.is_empty(),
        "{} queries lost or failed during the rollout: {failures:?}\nold:\n{}\nnew:\n{}",
        failures.len(),
        old.log(),
        new.log()
    );
    for tag in ["u", "t"] {
        assert!(served(&upstream_a, tag), "the old dns64d served {tag}");
        assert!(served(&upstream_b, tag), "the new dns64d served {tag}");
    }
    assert!(new.exited().is_none(), "the new dns64d still runs");
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_answers_503_while_sigterm_keeps_serving_for_the_grace_period() {
    let upstream = Upstream::start().await;
    let port = free_port();
    let mut running = Running::start(&upstream, &rollout_config(port, "4s")).await;
    let metrics = SocketAddr::from(([127, 0, 0, 1], port));
    ready_becomes(metrics, 200, &running).await;
    running.signal("TERM");
    let body = ready_becomes(metrics, 503, &running).await;
    assert_eq!(body, "shutting down\n");
    // Draining, not stopped: queries are still answered on both transports.
    let packet = q("grace.dual.example.", RecordType::A).bytes();
    let udp = client::udp_maybe(running.addr, &packet, QUERY_WAIT).await;
    assert_eq!(
        udp.map(|raw| Reply::parse(raw).rcode()),
        Some(ResponseCode::NXDomain),
        "UDP during the grace period"
    );
    let tcp = tcp_query(running.addr, &packet, Duration::ZERO).await;
    assert_eq!(
        tcp.map(|raw| Reply::parse(raw).rcode()),
        Ok(ResponseCode::NXDomain),
        "TCP during the grace period"
    );
    let status = running.exit_within(Duration::from_secs(4)).await;
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_during_the_grace_period_stops_at_once() {
    let upstream = Upstream::start().await;
    let port = free_port();
    // A grace period far beyond the test's patience: only the second signal
    // can end the process in time.
    let mut running = Running::start(&upstream, &rollout_config(port, "1h")).await;
    let metrics = SocketAddr::from(([127, 0, 0, 1], port));
    running.signal("TERM");
    ready_becomes(metrics, 503, &running).await;
    running.signal("INT");
    let status = running.exit_within(Duration::ZERO).await;
    assert!(status.success(), "exit status {status}");
}
