//! The `dns64d` binary as operators run it: a config file, logs on stderr,
//! signals (SPEC §2 start-up warning, §8 reload errors, §9 SIGHUP and SIGTERM).

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::support::client;
use crate::support::{Action, Upstream, q, zone};

const BINARY: &str = env!("CARGO_BIN_EXE_dns64d");
/// How long the binary may take to start answering, or to react to a signal.
pub const PATIENCE: Duration = Duration::from_secs(8);

/// A 127.0.0.1 port that is free for both UDP and TCP right now. The binary
/// needs a fixed port because its bound address is not reported anywhere.
pub fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = udp.local_addr().expect("bound").port();
        if std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

/// Writes a config listening on `addr` and forwarding to `upstream`, without a
/// metrics listener (its fixed default port would collide between tests),
/// stopping at once on SIGTERM (no `shutdown_grace`: these tests have no
/// second process to hand over to), without a file watch
/// (`server.watch_config`: the SIGHUP tests must see SIGHUP reload), with
/// `[log]` at warn level as text, and `extra` merged over it.
fn write_config(path: &Path, addr: SocketAddr, upstream: &Upstream, extra: &str) {
    let base = format!(
        "[server]\nlisten = [\"{addr}\"]\nallow = [\"127.0.0.0/8\"]\nmetrics = \"\"\n\
         shutdown_grace = \"0s\"\nwatch_config = false\n\
         [upstream]\nservers = [\"{}\"]\ntimeout = \"300ms\"\nattempts = 2\n\
         [log]\nlevel = \"warn\"\nformat = \"text\"\n",
        upstream.addr()
    );
    std::fs::write(path, crate::support::merge_toml(&base, extra)).expect("write config");
}

/// dns64d running as a child process; killed (this child only) when dropped.
pub struct Running {
    child: Child,
    pub addr: SocketAddr,
    config: PathBuf,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

impl Running {
    /// Starts the binary with a config (listen and upstream filled in, `[log]`
    /// at warn level unless `extra` says otherwise) and waits until it answers.
    /// The port is chosen before the binary binds it, so another socket may
    /// take it first: then the binary exits, and we try another port.
    pub async fn start(upstream: &Upstream, extra: &str) -> Running {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Running::try_start(upstream, extra).await {
                Ok(running) => return running,
                Err(why) => failures.push(why),
            }
        }
        panic!("dns64d did not start:\n{}", failures.join("\n---\n"));
    }

    async fn try_start(upstream: &Upstream, extra: &str) -> Result<Running, String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let mut running = Running::spawn(addr, upstream, extra);
        let started = Instant::now();
        loop {
            let probe = q(zone::DUAL, RecordType::AAAA).bytes();
            let answered = client::udp_maybe(addr, &probe, Duration::from_millis(200))
                .await
                .is_some();
            if let Some(status) = running.exited() {
                return Err(format!("exited with {status}:\n{}", running.log()));
            }
            if answered {
                // Our child, not whatever else holds the port: it asked our upstream.
                if upstream.asked(zone::DUAL, RecordType::AAAA).is_empty() {
                    return Err(format!("someone else answers on {addr}"));
                }
                return Ok(running);
            }
            if started.elapsed() > PATIENCE {
                return Err(format!(
                    "not answering on {addr} after {PATIENCE:?}:\n{}",
                    running.log()
                ));
            }
        }
    }

    /// Starts the binary on `addr` (which another dns64d may share) and
    /// returns without waiting for it to answer.
    pub fn spawn(addr: SocketAddr, upstream: &Upstream, extra: &str) -> Running {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let config = std::env::temp_dir().join(format!(
            "dns64d-binary-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        write_config(&config, addr, upstream, extra);
        let mut child = Command::new(BINARY)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dns64d");
        let stderr = child.stderr.take().expect("piped stderr");
        let running = Running {
            child,
            addr,
            config,
            stderr: Arc::new(Mutex::new(Vec::new())),
        };
        let lines = running.stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        running
    }

    /// Waits until the child has exited (`PATIENCE` past `grace`); its status.
    pub async fn exit_within(&mut self, grace: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                started.elapsed() < grace + PATIENCE,
                "still running {:?} after the signal:\n{}",
                grace + PATIENCE,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Replaces the config file (for a reload).
    fn rewrite_config(&self, upstream: &Upstream, extra: &str) {
        write_config(&self.config, self.addr, upstream, extra);
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("wait")
    }

    /// Gives the stderr reader thread time to catch up with what was logged.
    async fn settle_log(&self) {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    fn warnings(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("WARN"))
            .cloned()
            .collect()
    }

    /// Sends `signal` (e.g. "HUP") to this child, by its process id.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    async fn a_query(&self) -> crate::support::Reply {
        client::udp(self.addr, &q(zone::A_ONLY, RecordType::A).bytes()).await
    }
}

const DNS64_ON_LOOPBACK: &str = r#"[dns64]
clients = ["127.0.0.0/8"]"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_serves_dns64_from_a_config_file() {
    let upstream = Upstream::start().await;
    let running = Running::start(&upstream, DNS64_ON_LOOPBACK).await;
    let reply = client::udp(running.addr, &q(zone::A_ONLY, RecordType::AAAA).bytes()).await;
    assert_eq!(reply.aaaa().len(), zone::A_ONLY_ADDRS.len());
    let reply = client::tcp(running.addr, &q(zone::A_ONLY, RecordType::AAAA).bytes()).await;
    assert_eq!(reply.aaaa().len(), zone::A_ONLY_ADDRS.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_serves_on_one_worker_and_on_several() {
    let upstream = Upstream::start().await;
    for workers in [1, 3] {
        let extra = format!(
            "{DNS64_ON_LOOPBACK}\n[server]\nworkers = {workers}\nudp_sockets = {workers}\n"
        );
        let running = Running::start(&upstream, &extra).await;
        let reply = client::udp(running.addr, &q(zone::A_ONLY, RecordType::AAAA).bytes()).await;
        assert_eq!(
            reply.aaaa().len(),
            zone::A_ONLY_ADDRS.len(),
            "{workers} workers, UDP"
        );
        let reply = client::tcp(running.addr, &q(zone::A_ONLY, RecordType::AAAA).bytes()).await;
        assert_eq!(
            reply.aaaa().len(),
            zone::A_ONLY_ADDRS.len(),
            "{workers} workers, TCP"
        );
        // A cache hit is answered from the receive loop.
        let reply = client::udp(running.addr, &q(zone::A_ONLY, RecordType::AAAA).bytes()).await;
        assert_eq!(
            reply.aaaa().len(),
            zone::A_ONLY_ADDRS.len(),
            "{workers} workers, hit"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_warns_once_when_the_well_known_prefix_may_map_private_ipv4() {
    let upstream = Upstream::start().await;
    // Defaults: 64:ff9b::/96 and mapped = 0.0.0.0/0, which includes RFC 1918.
    let running = Running::start(&upstream, DNS64_ON_LOOPBACK).await;
    running.a_query().await;
    running.settle_log().await;
    let warnings = running.warnings();
    assert_eq!(
        warnings.len(),
        1,
        "one warning at start-up:\n{}",
        running.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_warns_when_it_listens_on_ipv4_and_dns64_clients_has_no_ipv4_range() {
    let upstream = Upstream::start().await;
    let config = "[dns64]\nclients = [\"::/0\"]\nstrict_rfc6052 = true";
    let running = Running::start(&upstream, config).await;
    running.a_query().await;
    running.settle_log().await;
    let warnings = running.warnings();
    assert_eq!(warnings.len(), 1, "{}", running.log());
    assert!(warnings[0].contains("no IPv4 range"), "{}", running.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_does_not_warn_when_strict_rfc6052_is_set() {
    let upstream = Upstream::start().await;
    let config = format!("{DNS64_ON_LOOPBACK}\nstrict_rfc6052 = true");
    let running = Running::start(&upstream, &config).await;
    running.a_query().await;
    running.settle_log().await;
    assert!(running.warnings().is_empty(), "{}", running.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_does_not_warn_when_mapped_excludes_private_ipv4() {
    let upstream = Upstream::start().await;
    let config = format!("{DNS64_ON_LOOPBACK}\nmapped = [\"192.0.2.0/24\", \"198.51.100.0/24\"]");
    let running = Running::start(&upstream, &config).await;
    running.a_query().await;
    running.settle_log().await;
    assert!(running.warnings().is_empty(), "{}", running.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_config_file() {
    let upstream = Upstream::start().await;
    let pass = format!("{DNS64_ON_LOOPBACK}\n[filter]\na = \"pass\"");
    let running = Running::start(&upstream, &pass).await;
    assert_eq!(running.a_query().await.a().len(), zone::A_ONLY_ADDRS.len());
    let strip = format!("{DNS64_ON_LOOPBACK}\n[filter]\na = \"strip\"");
    running.rewrite_config(&upstream, &strip);
    running.signal("HUP");
    let started = Instant::now();
    while !running.a_query().await.a().is_empty() {
        assert!(
            started.elapsed() < PATIENCE,
            "filter.a = strip not in effect after SIGHUP:\n{}",
            running.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_reload_names_the_key_and_keeps_the_running_config() {
    let upstream = Upstream::start().await;
    let pass = format!("{DNS64_ON_LOOPBACK}\n[filter]\na = \"pass\"");
    let running = Running::start(&upstream, &pass).await;
    let broken = format!("{DNS64_ON_LOOPBACK}\n[filter]\na = \"drop\"");
    running.rewrite_config(&upstream, &broken);
    running.signal("HUP");
    let started = Instant::now();
    while !running.log().contains("filter.a") {
        assert!(
            started.elapsed() < PATIENCE,
            "no error naming filter.a after a bad reload:\n{}",
            running.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        running.a_query().await.a().len(),
        zone::A_ONLY_ADDRS.len(),
        "the old config (filter.a = pass) keeps serving"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_answers_in_flight_queries_then_exits() {
    let upstream = Upstream::start().await;
    let running = Running::start(&upstream, DNS64_ON_LOOPBACK).await;
    upstream.on(
        zone::TXT_ONLY,
        None,
        Action::Delay(Duration::from_millis(250)),
    );
    let addr = running.addr;
    let in_flight = tokio::spawn(async move {
        client::udp_maybe(
            addr,
            &q(zone::TXT_ONLY, RecordType::TXT).bytes(),
            Duration::from_secs(3),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    running.signal("TERM");
    let raw = in_flight
        .await
        .expect("client task")
        .expect("the in-flight query was answered");
    assert_eq!(
        crate::support::Reply::parse(raw).rcode(),
        ResponseCode::NoError
    );
    let mut running = running;
    let started = Instant::now();
    loop {
        if let Some(status) = running.exited() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(started.elapsed() < PATIENCE, "still running after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An upstream timeout well above the delays the load tests inject.
const PATIENT_UPSTREAM: &str = "[upstream]\ntimeout = \"2s\"\nattempts = 1";

/// Sends `queries` over UDP at once, each from its own socket; the tasks yield
/// the raw replies (`None`: no reply within `wait`).
fn udp_in_flight(
    addr: SocketAddr,
    queries: Vec<crate::support::Q>,
    wait: Duration,
) -> Vec<tokio::task::JoinHandle<Option<Vec<u8>>>> {
    queries
        .into_iter()
        .map(|query| {
            tokio::spawn(async move { client::udp_maybe(addr, &query.bytes(), wait).await })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_answers_every_query_already_received_then_exits() {
    let upstream = Upstream::start().await;
    let running = Running::start(
        &upstream,
        &format!("{DNS64_ON_LOOPBACK}\n{PATIENT_UPSTREAM}"),
    )
    .await;
    upstream.on_all(
        Some(RecordType::TXT),
        Action::Delay(Duration::from_millis(400)),
    );
    const UDP: usize = 150;
    const TCP: usize = 10;
    let names: Vec<String> = (0..UDP + TCP)
        .map(|i| format!("load{i}.dual.example."))
        .collect();
    let udp = udp_in_flight(
        running.addr,
        names[..UDP].iter().map(|n| q(n, RecordType::TXT)).collect(),
        Duration::from_secs(4),
    );
    let mut conn = client::TcpClient::connect(running.addr).await;
    for name in &names[UDP..] {
        conn.send(&q(name, RecordType::TXT).bytes()).await;
    }
    // Every query has reached the upstream: dns64d holds them all in flight.
    let started = Instant::now();
    while upstream
        .seen()
        .iter()
        .filter(|s| s.qtype() == RecordType::TXT)
        .count()
        < UDP + TCP
    {
        assert!(
            started.elapsed() < PATIENCE,
            "queries never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.signal("TERM");
    for task in udp {
        let raw = task
            .await
            .expect("client task")
            .expect("a UDP query in flight at SIGTERM was answered");
        assert_eq!(
            crate::support::Reply::parse(raw).rcode(),
            ResponseCode::NXDomain
        );
    }
    for _ in 0..TCP {
        let reply = conn.recv().await;
        assert_eq!(reply.rcode(), ResponseCode::NXDomain, "{:?}", reply.msg);
    }
    let mut running = running;
    let started = Instant::now();
    loop {
        if let Some(status) = running.exited() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(started.elapsed() < PATIENCE, "still running after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_under_load_changes_the_prefix_and_loses_no_query() {
    let upstream = Upstream::start().await;
    let running = Running::start(
        &upstream,
        &format!("{DNS64_ON_LOOPBACK}\n{PATIENT_UPSTREAM}"),
    )
    .await;
    upstream.on(
        zone::A_ONLY,
        Some(RecordType::A),
        Action::Delay(Duration::from_millis(300)),
    );
    let aaaa = |n| (0..n).map(|_| q(zone::A_ONLY, RecordType::AAAA)).collect();
    let before = udp_in_flight(running.addr, aaaa(150), Duration::from_secs(4));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let nsp = format!("{DNS64_ON_LOOPBACK}\nprefixes = [\"2001:db8:64::/96\"]\n{PATIENT_UPSTREAM}");
    running.rewrite_config(&upstream, &nsp);
    running.signal("HUP");
    let during = udp_in_flight(running.addr, aaaa(150), Duration::from_secs(4));
    let wkp: Vec<_> = zone::A_ONLY_ADDRS
        .iter()
        .map(|(a, _)| crate::support::wkp(*a))
        .collect();
    let nsp_addrs: Vec<_> = zone::A_ONLY_ADDRS
        .iter()
        .map(|(a, _)| crate::support::under96([0x2001, 0xdb8, 0x64, 0, 0, 0], *a))
        .collect();
    for task in before.into_iter().chain(during) {
        let raw = task
            .await
            .expect("client task")
            .expect("every query sent around the SIGHUP is answered");
        let got = crate::support::Reply::parse(raw).aaaa();
        assert!(
            got == wkp || got == nsp_addrs,
            "an answer under no single prefix: {got:?}"
        );
    }
    let started = Instant::now();
    loop {
        let reply = client::udp(running.addr, &q(zone::A_ONLY, RecordType::AAAA).bytes()).await;
        if reply.aaaa() == nsp_addrs {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "new prefix not in effect after SIGHUP:\n{}",
            running.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_upstream_whose_certificate_fails_the_name_check_is_logged_and_failed_over() {
    let upstream = Upstream::start().await;
    let pki = crate::tls::pki();
    let ca = crate::support::TempFile::new(&pki.ca_pem);
    let front = crate::tls::TlsFront::start(&pki, upstream.addr()).await;
    let running = Running::start(
        &upstream,
        &format!(
            "[upstream]\nservers = [\"tls://{}#wrong.test\", \"{}\"]\ntls_ca = {:?}\n",
            front.addr,
            upstream.addr(),
            ca.path().display().to_string()
        ),
    )
    .await;
    // Start-up answered through the plain server; the TLS one was tried first.
    running.settle_log().await;
    let log = running.log();
    let line = log
        .lines()
        .find(|l| l.contains("TLS handshake with upstream failed"))
        .unwrap_or_else(|| panic!("no handshake failure logged:\n{log}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains(&front.addr.to_string()),
        "names the server: {line}"
    );
    assert!(
        line.contains("wrong.test"),
        "names the name checked: {line}"
    );
    assert!(line.contains("not valid for name"), "says why: {line}");
    assert_eq!(front.connections(), 0);
}

/// `dns64d doctor --runtime`: through dns64d (A records stripped) Go reaches
/// the NAT64, and Java with `preferIPv4Stack=true` gets no address at all,
/// which makes the verdict bad (exit code 1).
#[tokio::test]
async fn doctor_runtime_reports_each_runtime_first_choice_and_judges_them() {
    let d = crate::support::Dns64d::start("").await;
    let resolver = d.addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BINARY)
            .args(["doctor", zone::A_ONLY, "--resolver", &resolver])
            .args(["--runtime", "go", "--runtime", "java-v4stack", "--json"])
            .output()
            .expect("run dns64d doctor")
    })
    .await
    .unwrap();
    let json = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{json}");
    assert!(
        json.contains(r#"{"runtime":"go","first":"64:ff9b::"#),
        "{json}"
    );
    assert!(
        json.contains(r#"{"runtime":"java-v4stack","first":null,"order":[],"outcome":"none","error":"UnknownHostException""#),
        "{json}"
    );
    assert!(json.contains(r#""verdict":"bad""#), "{json}");
}

#[test]
fn doctor_refuses_an_unknown_runtime_naming_the_choices() {
    let out = Command::new(BINARY)
        .args([
            "doctor",
            "example.",
            "--resolver",
            "127.0.0.1:9",
            "--runtime",
            "cobol",
        ])
        .output()
        .expect("run dns64d doctor");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("\"cobol\"") && err.contains("java-v4stack"),
        "{err}"
    );
}
