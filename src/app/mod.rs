//! App: binds the listeners, runs the data path, the control endpoint and
//! the readiness prober, reloads the config, and drains on shutdown.
//! Control path only; the per-query work lives in [`crate::pipeline`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, ConfigError};
use crate::control::{self, Control};
use crate::discovery::{self, DiscoveryError, Learned};
use crate::listen::{self, Bound, Shared};
use crate::metrics::{Metrics, names};
use crate::pipeline::Pipeline;
use crate::upstream::Upstreams;
use crate::worker::Workers;

mod reload;
use reload::{discoverer, effective};

/// Probe interval while no upstream has answered yet.
const PROBE_UNREADY: Duration = Duration::from_secs(1);
/// Probe interval once ready: keeps `/ready` and server health current.
const PROBE_READY: Duration = Duration::from_secs(10);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr} (server.listen): {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The metrics address could not be bound.
    #[error("cannot listen on {addr} (server.metrics): {source}")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// `dns64.prefixes = ["discover"]` learned nothing and lists no fallback.
    #[error(
        "NAT64 prefix discovery (dns64.prefixes = [\"discover\"], RFC 7050) learned nothing \
         and dns64.prefixes lists no fallback prefix: {0}"
    )]
    Discovery(#[source] DiscoveryError),
}

/// Why a reload was refused; the running config keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Bind(#[from] StartError),
    #[error("no config file to reload from (started on the embedded default)")]
    NoFile,
    #[error(
        "dns64.prefixes = [\"discover\"]: no NAT64 prefix has been discovered yet and \
         dns64.prefixes lists no fallback prefix"
    )]
    NothingDiscovered,
}

/// State shared by the running server and its [`Handle`]s.
#[derive(Debug)]
struct Inner {
    config: Mutex<Config>,
    config_path: Option<PathBuf>,
    pipeline: Arc<ArcSwap<Pipeline>>,
    metrics: Arc<Metrics>,
    ready: AtomicBool,
    /// Set at the first SIGTERM: `/ready` answers 503 from then on.
    draining: AtomicBool,
    /// Configured listen address → its sockets.
    listeners: Mutex<HashMap<SocketAddr, Listener>>,
    /// Set once `run` has started: what new listeners need.
    shared: OnceLock<Shared>,
    /// Set once `run` has started: the runtimes UDP sockets are served on.
    workers: OnceLock<Vec<tokio::runtime::Handle>>,
    /// What RFC 7050 discovery learned last (`dns64.prefixes = ["discover"]`).
    /// Lock order: after `config` and `listeners`.
    learned: Mutex<Option<Learned>>,
    /// When discovery asks again, from its last answer's TTL.
    next_discovery: Mutex<Duration>,
    /// Wakes the discovery task (a reload may have turned discovery on).
    rediscover: tokio::sync::Notify,
}

/// One listen address.
#[derive(Debug)]
struct Listener {
    /// The bound address (the configured one, or its port-0 resolution).
    addr: SocketAddr,
    /// Stops its receive loops.
    stop: CancellationToken,
    /// Sockets bound but not yet served (before `run`, or a reload before it).
    unstarted: Option<Bound>,
}

impl Inner {
    /// Serves every bound but unstarted listener (once `run` has begun).
    fn start_listeners(&self, map: &mut HashMap<SocketAddr, Listener>, tracker: &TaskTracker) {
        let (Some(shared), Some(workers)) = (self.shared.get(), self.workers.get()) else {
            return;
        };
        for l in map.values_mut() {
            if let Some(b) = l.unstarted.take() {
                l.stop = shared.shutdown.child_token();
                spawn_listener(tracker, workers, b, shared, l.stop.clone());
            }
        }
    }
}

/// A server with its sockets bound, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    inner: Arc<Inner>,
    control: Option<std::net::TcpListener>,
}

/// Controls a running server: reload, readiness, metrics.
#[derive(Debug, Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

fn bind_all(
    addrs: &[SocketAddr],
    server: &crate::config::ServerConfig,
) -> Result<Vec<(SocketAddr, Bound)>, StartError> {
    addrs
        .iter()
        .map(|&addr| {
            listen::bind(addr, server.udp_sockets, server.udp_receive_buffer)
                .map(|b| (addr, b))
                .map_err(|source| StartError::Bind { addr, source })
        })
        .collect()
}

impl Server {
    /// Binds UDP and TCP on every `server.listen` address and the control
    /// endpoint on `server.metrics`.
    pub async fn bind(config: Config) -> Result<Server, StartError> {
        let bound = bind_all(&config.server.listen, &config.server)?;
        let control = match config.server.metrics {
            None => None,
            Some(addr) => {
                let l = listen::bind_control(addr)
                    .map_err(|source| StartError::Metrics { addr, source })?;
                Some(l)
            }
        };
        let metrics = Arc::new(Metrics::default());
        let mut learned = None;
        let mut next_discovery = config.dns64.discovery_min_interval;
        if config.dns64.prefixes.discover {
            // RFC 7050 §3 at start-up, straight to the upstream servers.
            let upstream = Upstreams::new(&config.upstream, &metrics);
            match discovery::discover(&upstream).await {
                Ok(l) => {
                    tracing::info!(
                        prefixes = ?l.prefixes.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                        ttl = l.ttl,
                        "NAT64 prefix discovered (RFC 7050)"
                    );
                    next_discovery = discovery::next_interval(&config.dns64, Some(l.ttl));
                    learned = Some(l);
                }
                Err(e) if config.dns64.prefixes.is_empty() => {
                    return Err(StartError::Discovery(e));
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    fallback = ?config.dns64.prefixes.names(),
                    "NAT64 prefix discovery failed; serving with the fallback prefixes and retrying"
                ),
            }
        }
        let pipeline = Arc::new(ArcSwap::from_pointee(Pipeline::new(
            &effective(&config, learned.as_ref(), &metrics),
            metrics.clone(),
        )));
        let listeners = bound
            .into_iter()
            .map(|(cfg, b)| {
                let l = Listener {
                    addr: b.addr,
                    stop: CancellationToken::new(),
                    unstarted: Some(b),
                };
                (cfg, l)
            })
            .collect();
        Ok(Server {
            inner: Arc::new(Inner {
                config: Mutex::new(config),
                config_path: None,
                pipeline,
                metrics,
                ready: AtomicBool::new(false),
                draining: AtomicBool::new(false),
                listeners: Mutex::new(listeners),
                shared: OnceLock::new(),
                workers: OnceLock::new(),
                learned: Mutex::new(learned),
                next_discovery: Mutex::new(next_discovery),
                rediscover: tokio::sync::Notify::new(),
            }),
            control,
        })
    }

    /// Remembers the file the config came from, so SIGHUP can re-read it.
    pub fn with_config_path(mut self, path: Option<PathBuf>) -> Server {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.config_path = path;
        }
        self
    }

    /// The bound addresses, one per `server.listen` entry (UDP and TCP share the port).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        // Lock order everywhere: config, then listeners.
        let cfg = self.inner.config.lock().unwrap_or_else(|e| e.into_inner());
        let map = self
            .inner
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        cfg.server
            .listen
            .iter()
            .filter_map(|c| map.get(c).map(|l| l.addr))
            .collect()
    }

    /// The bound control (metrics) address, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.control.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The counters the data path keeps.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.inner.metrics.clone()
    }

    /// A handle for reloads and probes, usable while [`run`](Server::run) runs.
    pub fn handle(&self) -> Handle {
        Handle {
            inner: self.inner.clone(),
        }
    }

    /// Serves until `shutdown` fires, then stops accepting and waits up to
    /// `server.drain_timeout` for in-flight queries. No grace period: for
    /// embedding and tests; the binary uses [`run_until`](Server::run_until).
    pub async fn run(self, shutdown: CancellationToken) {
        self.serve(Stop::new(), shutdown, Duration::ZERO).await
    }

    /// Serves until `stop.graceful` fires; then, draining (`/ready` answers
    /// 503), keeps serving for `server.shutdown_grace` so a process sharing
    /// the addresses (`SO_REUSEPORT`, the surge pod of a rolling update)
    /// takes the load over; then stops accepting and drains as
    /// [`run`](Server::run) does. `stop.now` ends it at once, at any point.
    pub async fn run_until(self, stop: Stop) {
        let grace = self
            .inner
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .server
            .shutdown_grace;
        let graceful = stop.graceful.clone();
        self.serve(stop, graceful, grace).await
    }

    async fn serve(self, stop: Stop, graceful: CancellationToken, grace: Duration) {
        let (max_inflight, max_tcp, idle, drain, probe, workers, watch) = {
            let cfg = self.inner.config.lock().unwrap_or_else(|e| e.into_inner());
            (
                cfg.server.max_inflight,
                cfg.server.max_tcp_connections,
                cfg.server.tcp_idle_timeout,
                cfg.server.drain_timeout,
                cfg.server.metrics.is_some(),
                cfg.server.workers,
                cfg.server.watch_config,
            )
        };
        // What the listeners stop on: the end of the grace period.
        let shutdown = CancellationToken::new();
        let workers = Workers::start(workers);
        let _ = self.inner.workers.set(workers.handles().to_vec());
        let shared = Shared {
            pipeline: self.inner.pipeline.clone(),
            metrics: self.inner.metrics.clone(),
            inflight: Arc::new(Semaphore::new(max_inflight)),
            tcp_connections: Arc::new(Semaphore::new(max_tcp)),
            tcp_idle_timeout: idle,
            tracker: TaskTracker::new(),
            shutdown: shutdown.clone(),
        };
        let gauge = |s: &Arc<Semaphore>, max: usize| {
            let s = s.clone();
            Arc::new(move || (max - s.available_permits()) as u64) as crate::metrics::GaugeFn
        };
        self.inner
            .metrics
            .gauge(names::INFLIGHT, gauge(&shared.inflight, max_inflight));
        self.inner.metrics.gauge(
            names::TCP_CONNECTIONS,
            gauge(&shared.tcp_connections, max_tcp),
        );
        let _ = self.inner.shared.set(shared.clone());

        let listeners = TaskTracker::new();
        // Registered before any listener serves: a change made once a query
        // has been answered is seen.
        let watched = match (watch, &self.inner.config_path) {
            (true, Some(path)) => crate::watch::ConfigWatch::new(path.clone()),
            _ => None,
        };
        if let Some(w) = watched {
            // A mounted ConfigMap changes by symlink swap and sends no
            // SIGHUP: reload as SIGHUP does (validate, then swap).
            let handle = Handle {
                inner: self.inner.clone(),
            };
            listeners.spawn(w.run(shutdown.clone(), move || {
                tracing::info!("config file changed: reloading");
                // Errors are logged and counted by reload; the old config keeps serving.
                let _ = handle.reload();
            }));
        }
        {
            let mut map = self
                .inner
                .listeners
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            self.inner.start_listeners(&mut map, &listeners);
        }
        if let Some(l) = self.control {
            match tokio::net::TcpListener::from_std(l) {
                Ok(l) => {
                    let control: Arc<dyn Control> = Arc::new(Handle {
                        inner: self.inner.clone(),
                    });
                    listeners.spawn(control::serve(l, control, shutdown.clone()));
                }
                Err(e) => tracing::error!(error = %e, "cannot register the metrics socket"),
            }
        }
        if probe {
            listeners.spawn(prober(self.inner.clone(), shutdown.clone()));
        }
        listeners.spawn(discoverer(self.inner.clone(), shutdown.clone()));
        listeners.close();
        tokio::select! {
            _ = graceful.cancelled() => {}
            _ = stop.now.cancelled() => {}
        }
        self.inner.draining.store(true, Ordering::Relaxed);
        if !grace.is_zero() && !stop.now.is_cancelled() {
            tracing::info!(
                ?grace,
                "draining: /ready answers 503; serving for server.shutdown_grace before stopping"
            );
            tokio::select! {
                _ = tokio::time::sleep(grace) => {}
                _ = stop.now.cancelled() => {}
            }
        }
        shutdown.cancel();
        let drained = async {
            listeners.wait().await;
            shared.tracker.close();
            tokio::time::timeout(drain, shared.tracker.wait()).await
        };
        tokio::select! {
            r = drained => if r.is_err() {
                tracing::warn!(
                    remaining = shared.tracker.len(),
                    "drain timeout reached; exiting with queries in flight"
                );
            },
            _ = stop.now.cancelled() => tracing::warn!(
                remaining = shared.tracker.len(),
                "second signal: exiting at once"
            ),
        }
        workers.stop();
    }
}

/// How [`Server::run_until`] is asked to stop (the binary's signals).
#[derive(Debug, Clone, Default)]
pub struct Stop {
    /// The first SIGTERM or SIGINT: drain, serve the grace period, stop.
    pub graceful: CancellationToken,
    /// A second one: stop at once, dropping what is in flight.
    pub now: CancellationToken,
}

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }
}

/// Spreads the listener's UDP sockets over the workers (one each by
/// default); TCP stays on the calling runtime.
fn spawn_listener(
    tracker: &TaskTracker,
    workers: &[tokio::runtime::Handle],
    b: Bound,
    shared: &Shared,
    stop: CancellationToken,
) {
    for (i, udp) in b.udp.into_iter().enumerate() {
        let serve = listen::serve_udp(udp, shared.clone(), stop.clone());
        tracker.spawn_on(serve, &workers[i % workers.len()]);
    }
    match tokio::net::TcpListener::from_std(b.tcp) {
        Ok(tcp) => {
            tracker.spawn(listen::serve_tcp(tcp, shared.clone(), stop));
        }
        Err(e) => tracing::error!(addr = %b.addr, error = %e, "cannot register TCP socket"),
    }
}

/// Keeps `/ready` current: 200 once every upstream group (the default
/// one and each `[[upstream.zone]]`) has a server that answers a probe.
async fn prober(inner: Arc<Inner>, shutdown: CancellationToken) {
    loop {
        let pipeline = inner.pipeline.load_full();
        let ready = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = pipeline.upstreams().probe() => r,
        };
        if ready != inner.ready.swap(ready, Ordering::Relaxed) {
            tracing::info!(ready, "upstream readiness changed");
        }
        let wait = if ready { PROBE_READY } else { PROBE_UNREADY };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
