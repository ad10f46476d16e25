//! Shared test machinery: a fake upstream ([`upstream`]) answering from a fixture
//! zone ([`zone`]), a DNS client ([`client`]), and [`Dns64d`], a dns64d `Server`
//! started in-process on 127.0.0.1 port 0 and pointed at the fake upstream.

#![allow(dead_code)] // Not every test module uses every helper.

pub mod client;
pub mod http;
pub mod upstream;
pub mod zone;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dns64d::app::{Handle, Server};
use dns64d::config::Config;
use dns64d::metrics::Metrics;
use tokio_util::sync::CancellationToken;

pub use client::{Q, Reply, q};
pub use upstream::{Action, Transport, Upstream};

/// The configuration every test starts from; a test's own TOML is merged over it,
/// key by key. Upstream timeouts are short so failure paths finish quickly. No
/// metrics listener: its default address (127.0.0.1:9153) is fixed and would be
/// contended by tests running in parallel; the metrics tests set port 0. No
/// file watch: config files live in the shared temp directory, and the
/// reload tests count reloads they start themselves (`watch.rs` turns it on).
const BASE_CONFIG: &str = r#"
[server]
listen = ["127.0.0.1:0"]
allow = ["127.0.0.0/8"]
metrics = ""
watch_config = false

[upstream]
timeout = "300ms"
attempts = 2

[dns64]
clients = ["127.0.0.0/8"]
"#;

/// The configured per-attempt upstream timeout of [`BASE_CONFIG`], for time bounds.
pub const BASE_UPSTREAM_TIMEOUT_MS: u64 = 300;

/// [`BASE_CONFIG`] pointed at `upstream`, with `overrides` (a TOML snippet) merged over it.
pub fn config_toml(upstream: SocketAddr, overrides: &str) -> String {
    let servers = format!("[upstream]\nservers = [\"{upstream}\"]");
    merge_toml(&merge_toml(BASE_CONFIG, &servers), overrides)
}

/// `over` merged into `base`, key by key (tables recursively, anything else replaced).
pub fn merge_toml(base: &str, over: &str) -> String {
    let mut base: toml::Table = base
        .parse()
        .unwrap_or_else(|e| panic!("base config does not parse: {e}"));
    let over: toml::Table = over
        .parse()
        .unwrap_or_else(|e| panic!("test config snippet does not parse: {e}"));
    merge(&mut base, over);
    toml::to_string(&base).expect("serialise config")
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// dns64d running in-process against its own fake upstream; stops when dropped.
pub struct Dns64d {
    /// The first bound listen address.
    pub addr: SocketAddr,
    /// The metrics / health / ready endpoint, when `server.metrics` is set.
    pub metrics: Option<SocketAddr>,
    pub upstream: Upstream,
    /// Reloads and readiness of the running server.
    pub handle: Handle,
    /// The server's counters, read without HTTP.
    pub counters: Arc<Metrics>,
    /// The config file the server reloads from, if started with one.
    pub config_file: Option<TempFile>,
    shutdown: CancellationToken,
}

/// A file in the temp directory, removed when dropped.
pub struct TempFile(PathBuf);

impl TempFile {
    pub fn new(contents: &str) -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "dns64d-support-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).expect("write temp file");
        TempFile(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    pub fn write(&self, contents: &str) {
        std::fs::write(&self.0, contents).expect("rewrite temp file");
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Parses a config the test wrote, or panics showing it.
pub fn parse_config(toml: &str) -> Config {
    Config::from_toml(toml)
        .unwrap_or_else(|e| panic!("config rejected: {e}\n--- config ---\n{toml}"))
}

impl Drop for Dns64d {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Dns64d {
    /// Starts a fake upstream and dns64d with [`BASE_CONFIG`] plus `overrides`.
    pub async fn start(overrides: &str) -> Dns64d {
        Dns64d::start_with(Upstream::start().await, overrides).await
    }

    /// Starts dns64d against `upstream` with [`BASE_CONFIG`] plus `overrides`.
    pub async fn start_with(upstream: Upstream, overrides: &str) -> Dns64d {
        let toml = config_toml(upstream.addr(), overrides);
        let d = Dns64d::launch(upstream, &toml, false).await;
        assert_eq!(
            d.handle.local_addrs().len(),
            1,
            "one listen address configured"
        );
        d
    }

    /// Starts dns64d against `upstream` with exactly the config `toml`; with
    /// `from_file`, the config is written to a file the server reloads from.
    pub async fn launch(upstream: Upstream, toml: &str, from_file: bool) -> Dns64d {
        let config_file = from_file.then(|| TempFile::new(toml));
        let path = config_file.as_ref().map(|f| f.path().to_path_buf());
        let mut d = Dns64d::launch_at(upstream, toml, path).await;
        d.config_file = config_file;
        d
    }

    /// Starts dns64d against `upstream` with exactly the config `toml`,
    /// reloading from `path` (which the caller wrote and owns), if any.
    pub async fn launch_at(upstream: Upstream, toml: &str, path: Option<PathBuf>) -> Dns64d {
        let config = parse_config(toml);
        let config_file = None;
        let server = Server::bind(config)
            .await
            .unwrap_or_else(|e| panic!("dns64d failed to start: {e}"))
            .with_config_path(path);
        let addr = server.local_addrs()[0];
        let metrics = server.metrics_addr();
        assert!(addr.ip().is_loopback(), "tests only use 127.0.0.1");
        let handle = server.handle();
        let counters = server.metrics();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        tokio::spawn(async move { server.run(token).await });
        Dns64d {
            addr,
            metrics,
            upstream,
            handle,
            counters,
            config_file,
            shutdown,
        }
    }

    /// A counter or gauge by series (`name{label="value"}`), summed.
    pub fn counter(&self, series: &str) -> u64 {
        self.counters.value(series)
    }

    /// Waits until `series` reads `want` (counters for unanswered packets, and
    /// gauges of finishing tasks, settle just after the client stops waiting).
    #[track_caller]
    pub fn settles(&self, series: &str, want: u64) -> impl std::future::Future<Output = ()> + '_ {
        let caller = std::panic::Location::caller();
        let series = series.to_string();
        async move {
            let started = Instant::now();
            loop {
                let got = self.counter(&series);
                if got == want {
                    return;
                }
                assert!(
                    started.elapsed() < SETTLE,
                    "{series} is {got}, not {want}, after {SETTLE:?} (asserted at {caller})"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Starts the graceful shutdown (as SIGTERM does).
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    pub async fn udp(&self, query: &Q) -> Reply {
        client::udp(self.addr, &query.bytes()).await
    }

    pub async fn tcp(&self, query: &Q) -> Reply {
        client::tcp(self.addr, &query.bytes()).await
    }

    /// Sends raw bytes over UDP; the reply if one comes within [`client::SILENCE`].
    pub async fn udp_raw(&self, packet: &[u8]) -> Option<Vec<u8>> {
        client::udp_maybe(self.addr, packet, client::SILENCE).await
    }
}

/// `v` sorted: for comparing the addresses of answers whose order a cache
/// hit rotates (`dns64.rotate`) when the test is not about order.
pub fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// How long a counter or gauge may take to settle after the traffic that moves it.
pub const SETTLE: Duration = Duration::from_secs(5);

/// The RFC 6052 embedding of `v4` under the well-known prefix 64:ff9b::/96, computed
/// independently of dns64d.
pub fn wkp(v4: std::net::Ipv4Addr) -> std::net::Ipv6Addr {
    under96([0x64, 0xff9b, 0, 0, 0, 0], v4)
}

/// `v4` in the last 32 bits of a /96 prefix given as its first six 16-bit groups.
pub fn under96(prefix: [u16; 6], v4: std::net::Ipv4Addr) -> std::net::Ipv6Addr {
    let o = v4.octets();
    std::net::Ipv6Addr::new(
        prefix[0],
        prefix[1],
        prefix[2],
        prefix[3],
        prefix[4],
        prefix[5],
        u16::from_be_bytes([o[0], o[1]]),
        u16::from_be_bytes([o[2], o[3]]),
    )
}

/// Asserts the central promise of §4: no A record (and no RRSIG over A) in any section.
#[track_caller]
pub fn assert_no_a(reply: &Reply) {
    let found = reply.a_records_anywhere();
    assert!(
        found.is_empty(),
        "a DNS64 client received A records with filter.a = strip: {found:?}\nfull reply: {:?}",
        reply.msg
    );
}
