//! App: binds the listeners, starts the data path, and drains on shutdown.
//! Control path only; the per-query work lives in [`crate::pipeline`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::listen::{self, Bound, Shared};
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;

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
}

/// A server with its sockets bound, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    config: Config,
    bound: Vec<Bound>,
    metrics: Arc<Metrics>,
}

impl Server {
    /// Binds UDP and TCP on every `server.listen` address.
    pub async fn bind(config: Config) -> Result<Server, StartError> {
        let bound = config
            .server
            .listen
            .iter()
            .map(|&addr| listen::bind(addr).map_err(|source| StartError::Bind { addr, source }))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Server {
            config,
            bound,
            metrics: Arc::new(Metrics::default()),
        })
    }

    /// The bound addresses, one per `server.listen` entry (UDP and TCP share the port).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.bound.iter().map(|b| b.addr).collect()
    }

    /// The counters the data path keeps.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Serves until `shutdown` fires, then stops accepting and waits up to
    /// `server.drain_timeout` for in-flight queries.
    pub async fn run(self, shutdown: CancellationToken) {
        let cfg = &self.config;
        let shared = Shared {
            pipeline: Arc::new(Pipeline::new(cfg, self.metrics.clone())),
            inflight: Arc::new(Semaphore::new(cfg.server.max_inflight)),
            tcp_connections: Arc::new(Semaphore::new(cfg.server.max_tcp_connections)),
            tcp_idle_timeout: cfg.server.tcp_idle_timeout,
            tracker: TaskTracker::new(),
            shutdown: shutdown.clone(),
        };
        let listeners = TaskTracker::new();
        for b in self.bound {
            match (
                tokio::net::UdpSocket::from_std(b.udp),
                tokio::net::TcpListener::from_std(b.tcp),
            ) {
                (Ok(udp), Ok(tcp)) => {
                    listeners.spawn(listen::serve_udp(udp, shared.clone()));
                    listeners.spawn(listen::serve_tcp(tcp, shared.clone()));
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(addr = %b.addr, error = %e, "cannot register socket")
                }
            }
        }
        listeners.close();
        shutdown.cancelled().await;
        listeners.wait().await;
        shared.tracker.close();
        if tokio::time::timeout(cfg.server.drain_timeout, shared.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = shared.tracker.len(),
                "drain timeout reached; exiting with queries in flight"
            );
        }
    }
}
