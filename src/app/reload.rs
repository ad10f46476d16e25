//! Reload and prefix discovery: re-reading the config (SIGHUP, `POST
//! /reload`, the file watch), RFC 7050 rediscovery, and the validate-then-swap
//! of the pipeline both end in.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Handle, Inner, Listener, ReloadError, bind_all};
use crate::config::Config;
use crate::control::Control;
use crate::discovery::{self, DiscoveryError, Learned};
use crate::metrics::{Metrics, PrefixSource};
use crate::pipeline::Pipeline;

/// `cfg` as the pipeline runs it: with discovery, `dns64.prefixes` is what
/// was learned, else the fallback. Records the prefixes in the metrics.
pub(super) fn effective(cfg: &Config, learned: Option<&Learned>, metrics: &Metrics) -> Config {
    let mut cfg = cfg.clone();
    let source = match (cfg.dns64.prefixes.discover, learned) {
        (false, _) => PrefixSource::Configured,
        (true, Some(l)) => {
            cfg.dns64.prefixes.list = l.prefixes.clone();
            PrefixSource::Discovered
        }
        (true, None) => PrefixSource::Fallback,
    };
    let names = cfg.dns64.prefixes.iter().map(|p| p.to_string()).collect();
    metrics.set_nat64_prefixes(names, source);
    cfg
}

/// Re-runs RFC 7050 discovery when the last answer's TTL runs out (or a
/// reload asks), and swaps the pipeline when the prefixes change: new
/// queries use them at once, and the new pipeline's cache starts empty, so
/// no answer synthesized under the old prefix is served again.
pub(super) async fn discoverer(inner: Arc<Inner>, shutdown: CancellationToken) {
    loop {
        let discover = inner
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .dns64
            .prefixes
            .discover;
        let wait = *inner
            .next_discovery
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = inner.rediscover.notified() => {}
            _ = tokio::time::sleep(wait), if discover => {}
        }
        if !inner
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .dns64
            .prefixes
            .discover
        {
            continue;
        }
        let pipeline = inner.pipeline.load_full();
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = discovery::discover(pipeline.upstreams()) => r,
        };
        drop(pipeline);
        inner.discovered(result);
    }
}

impl Inner {
    /// Takes in one discovery's result: a new prefix set swaps the
    /// pipeline; a failure keeps what serves now, except that an upstream
    /// that answers definitively without a prefix (no NAT64 any more)
    /// hands over to the fallback when there is one.
    fn discovered(&self, result: Result<Learned, DiscoveryError>) {
        let cfg = self.config.lock().unwrap_or_else(|e| e.into_inner());
        if !cfg.dns64.prefixes.discover {
            return;
        }
        let mut learned = self.learned.lock().unwrap_or_else(|e| e.into_inner());
        let ttl = result.as_ref().ok().map(|l| l.ttl);
        *self
            .next_discovery
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = discovery::next_interval(&cfg.dns64, ttl);
        let before: Option<Vec<String>> = learned
            .as_ref()
            .map(|l| l.prefixes.iter().map(|p| p.to_string()).collect());
        match result {
            Ok(l)
                if learned
                    .as_ref()
                    .is_some_and(|old| old.prefixes == l.prefixes) =>
            {
                *learned = Some(l);
                return;
            }
            Ok(l) => {
                tracing::warn!(
                    before = ?before,
                    after = ?l.prefixes.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                    ttl = l.ttl,
                    "NAT64 prefix discovered (RFC 7050): new queries use it; cache flushed"
                );
                *learned = Some(l);
            }
            Err(e @ (DiscoveryError::NoPrefix | DiscoveryError::Rcode(_)))
                if learned.is_some() && !cfg.dns64.prefixes.is_empty() =>
            {
                tracing::warn!(
                    error = %e,
                    before = ?before,
                    fallback = ?cfg.dns64.prefixes.names(),
                    "NAT64 prefix no longer discovered; serving with the fallback prefixes"
                );
                *learned = None;
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    serving = ?before.unwrap_or_else(|| cfg.dns64.prefixes.names()),
                    "NAT64 prefix discovery failed; keeping the prefixes in use"
                );
                return;
            }
        }
        let pipeline = Pipeline::new(
            &effective(&cfg, learned.as_ref(), &self.metrics),
            self.metrics.clone(),
        );
        self.pipeline.store(Arc::new(pipeline));
    }
}

impl Handle {
    /// Re-reads the config file and applies it (SIGHUP, `POST /reload`).
    pub fn reload(&self) -> Result<(), ReloadError> {
        let path = self
            .inner
            .config_path
            .as_deref()
            .ok_or(ReloadError::NoFile)?;
        let result = Config::load(Some(path))
            .map_err(ReloadError::from)
            .and_then(|cfg| self.apply(cfg));
        if let Err(e) = &result {
            self.inner.metrics.reload(false);
            tracing::error!(error = %e, "config reload refused; the running config keeps serving");
        }
        result
    }

    /// Applies a new config: new listen addresses are bound first (a failure
    /// changes nothing), then the pipeline is swapped atomically (queries in
    /// flight finish under the config they started with), then removed
    /// addresses stop accepting. The cache is kept when the new config gives
    /// the same answers ([`Config::same_answers`]), else it starts empty.
    /// Caps and timeouts of the listeners apply at the next restart.
    pub fn apply(&self, cfg: Config) -> Result<(), ReloadError> {
        let inner = &self.inner;
        let mut current = inner.config.lock().unwrap_or_else(|e| e.into_inner());
        let mut map = inner.listeners.lock().unwrap_or_else(|e| e.into_inner());
        let added: Vec<SocketAddr> = cfg
            .server
            .listen
            .iter()
            .filter(|a| !map.contains_key(a))
            .copied()
            .collect();
        let learned = inner.learned.lock().unwrap_or_else(|e| e.into_inner());
        if cfg.dns64.prefixes.discover && learned.is_none() && cfg.dns64.prefixes.is_empty() {
            return Err(ReloadError::NothingDiscovered);
        }
        let fresh = bind_all(&added, &cfg.server)?;
        let effective = effective(&cfg, learned.as_ref(), &inner.metrics);
        drop(learned);
        // Discovery's prefixes are the same for both configs (`learned`).
        let keep = current.same_answers(&cfg);
        let cache = keep
            .then(|| inner.pipeline.load().cache().cloned())
            .flatten();
        inner.pipeline.store(Arc::new(Pipeline::keeping(
            &effective,
            inner.metrics.clone(),
            cache,
        )));
        // Discovery turned on, or its bounds changed: ask again now.
        inner.rediscover.notify_one();
        for (configured, b) in fresh {
            let l = Listener {
                addr: b.addr,
                stop: CancellationToken::new(),
                unstarted: Some(b),
            };
            map.insert(configured, l);
        }
        // Before `run` they wait in the map; after, they serve now.
        let tracker = TaskTracker::new();
        inner.start_listeners(&mut map, &tracker);
        tracker.close();
        map.retain(|configured, l| {
            let keep = cfg.server.listen.contains(configured);
            if !keep {
                l.stop.cancel();
            }
            keep
        });
        let s = (&current.server, &cfg.server);
        if s.0.max_inflight != s.1.max_inflight
            || s.0.max_tcp_connections != s.1.max_tcp_connections
            || s.0.tcp_idle_timeout != s.1.tcp_idle_timeout
            || s.0.metrics != s.1.metrics
            || s.0.watch_config != s.1.watch_config
        {
            tracing::warn!(
                "server.max_inflight, max_tcp_connections, tcp_idle_timeout, metrics and watch_config apply at the next restart"
            );
        }
        tracing::info!(
            cache_kept = keep,
            listen = ?cfg.server.listen,
            prefixes = ?cfg.dns64.prefixes.names(),
            filter_a = ?cfg.filter.a,
            "config reloaded"
        );
        *current = cfg;
        inner.metrics.reload(true);
        Ok(())
    }

    /// Bound addresses of the current listeners.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        let map = self
            .inner
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.values().map(|l| l.addr).collect()
    }

    /// True once an upstream answered a readiness probe, until shutdown.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Relaxed) && !self.is_draining()
    }

    /// True from the first SIGTERM on (see [`Server::run_until`]).
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Relaxed)
    }
}

impl Control for Handle {
    fn metrics(&self) -> String {
        self.inner.metrics.render()
    }

    fn ready(&self) -> bool {
        self.is_ready()
    }

    fn draining(&self) -> bool {
        self.is_draining()
    }

    fn reload(&self) -> Option<Result<(), String>> {
        let enabled = self
            .inner
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .server
            .http_reload;
        enabled.then(|| Handle::reload(self).map_err(|e| e.to_string()))
    }
}
