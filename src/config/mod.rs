//! Configuration: control path only, never touched per query.
//!
//! "Parse, don't validate": a serde [`RawConfig`] mirrors the TOML file
//! (`deny_unknown_fields`, every key optional) and converts into the typed
//! [`Config`] the data path uses. Every tunable has one constant with its
//! default; every error names the key, the value and the reason.
//!
//! Sources, in order: the TOML file (or the embedded default), then
//! environment variables `DNS64D__SECTION__KEY` (lists comma-separated).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

// Re-exported: the typed config's fields are of these types.
pub use crate::types::{FilterA, Order, Prefix, PtrMode, ZonePolicy};

mod convert;
mod raw;
#[cfg(test)]
mod tests;
mod zones;

pub use raw::{RawConfig, Seconds};

/// The embedded default configuration: a loopback demo that serves as is.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/default.toml");

/// Environment variable prefix; `DNS64D__UPSTREAM__SERVERS` overrides `upstream.servers`.
pub const ENV_PREFIX: &str = "DNS64D";

// Built-in defaults (SPEC names them; a key a file omits takes them).
/// Production listen address when a file gives none.
pub const DEFAULT_LISTEN: &[&str] = &["[::]:53"];
/// Never an open resolver: loopback, RFC 1918, RFC 6598, ULA and link-local.
pub const DEFAULT_ALLOW: &[&str] = &[
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
];
/// RFC 6891 §6.2.5 and DNS flag day 2020: 1232 avoids IP fragmentation.
pub const DEFAULT_UDP_PAYLOAD: u16 = 1232;
/// Below 512 nothing is a valid EDNS payload (RFC 6891 §6.2.5).
pub const MIN_UDP_PAYLOAD: u16 = 512;
/// RFC 7766 §6.2.3 suggests tens of seconds at most for idle TCP.
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// In-flight queries cap: bounds memory under any load (SPEC §8).
pub const DEFAULT_MAX_INFLIGHT: usize = 4096;
/// Concurrent TCP connections cap.
pub const DEFAULT_MAX_TCP_CONNECTIONS: usize = 1024;
/// Metrics, /health and /ready: loopback only unless the operator says otherwise.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9153";
/// `server.udp_receive_buffer`: 4 MiB, room for ~5,000 queued queries (the
/// kernel grants at most `net.core.rmem_max`).
pub const DEFAULT_UDP_RECEIVE_BUFFER: usize = 4 << 20;
/// Cache entries expected; sizes the shards.
pub const DEFAULT_CACHE_SIZE: usize = 10_000;
/// Cache memory bound: 32 MiB holds ~100k typical answers.
pub const DEFAULT_CACHE_BYTES: u64 = 32 * 1024 * 1024;
/// RFC 8767 §5 suggests 1 to 3 days; Unbound uses 1 day.
pub const DEFAULT_STALE_MAX_AGE: Duration = Duration::from_secs(86_400);
/// RFC 8767 §5 suggests 1.8 s: a stale answer before a stub's first retry.
pub const DEFAULT_STALE_ANSWER_AFTER: Duration = Duration::from_millis(1800);
/// How long SIGTERM waits for in-flight queries.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long SIGTERM keeps serving before it stops accepting: time for the
/// process that replaces this one (`maxSurge`) to take over the shared
/// `SO_REUSEPORT` sockets, and for probes to see `/ready` fail.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Per-attempt upstream timeout; 2 tries × 2 s stays under glibc's 5 s.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Total upstream tries per query, across servers.
pub const DEFAULT_UPSTREAM_ATTEMPTS: u32 = 2;
/// Most upstream tries per query (`upstream.attempts`, a zone's `attempts`).
pub const MAX_UPSTREAM_ATTEMPTS: u32 = 10;
/// Upstream UDP sockets per server: 16 random ports × 16-bit IDs for a
/// forger to guess, one send per query instead of five socket syscalls.
pub const DEFAULT_SOCKET_POOL: usize = 16;
/// Port of a `tls://` server written without one (RFC 7858 §3.1).
pub const DOT_PORT: u16 = 853;
/// Idle TLS upstream connections are closed after this (RFC 7766 §6.2.3
/// leaves it to the client; CoreDNS's `expire` default is 10s).
pub const DEFAULT_TLS_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// The RFC 6052 well-known prefix.
pub const DEFAULT_PREFIXES: &[&str] = &["64:ff9b::/96"];
/// The `dns64.prefixes` entry that asks for RFC 7050 prefix discovery.
pub const DISCOVER: &str = "discover";
/// Shortest time between two RFC 7050 discoveries, whatever the TTL of the
/// `ipv4only.arpa.` AAAA answer says (and the retry interval after a
/// failed one): a TTL of 0 must not turn into a query loop.
pub const DEFAULT_DISCOVERY_MIN_INTERVAL: Duration = Duration::from_secs(60);
/// Longest time between two discoveries: a NAT64 renumbering is noticed
/// within a day even behind a resolver that hands out week-long TTLs.
pub const DEFAULT_DISCOVERY_MAX_INTERVAL: Duration = Duration::from_secs(86_400);
/// Every IPv6 source is a DNS64 client; IPv4 only when listed.
pub const DEFAULT_CLIENTS: &[&str] = &["::/0"];
/// RFC 6147 §5.1.4: IPv4-mapped AAAA are not native AAAA.
pub const DEFAULT_EXCLUDE: &[&str] = &["::ffff:0:0/96"];
/// Every IPv4 address may be synthesized unless never_map says no.
pub const DEFAULT_MAPPED: &[&str] = &["0.0.0.0/0"];
/// Addresses that never make sense behind NAT64.
pub const DEFAULT_NEVER_MAP: &[&str] =
    &["0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3"];
/// TTL of the SOA dns64d makes for a stripped A answer.
pub const DEFAULT_NEGATIVE_TTL: u32 = 30;
/// RFC 6052 §3.1 space that must not sit behind the well-known prefix under strict mode.
pub const NON_GLOBAL_V4: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
];

/// A configuration error: which key, which value, why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or is not valid TOML / has wrong types.
    #[error("{0}")]
    Load(String),
    /// A key holds a value that cannot be used.
    #[error("invalid value for `{key}`: {value:?}: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
    /// A key inside a list of tables (`upstream.zone[1].suffix`): the same
    /// as `Invalid`, with the entry's index in the key.
    #[error("invalid value for `{key}`: {value:?}: {reason}")]
    InvalidAt {
        key: String,
        value: String,
        reason: String,
    },
}

fn invalid(key: &'static str, value: impl fmt::Display, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The typed configuration the server runs on.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub dns64: Dns64Config,
    pub filter: FilterConfig,
    pub log: LogConfig,
    pub cache: CacheConfig,
}

/// `[cache]`: the answer cache (RFC 2308 negative caching, RFC 8767 serve-stale).
#[derive(Debug, Clone, Serialize)]
pub struct CacheConfig {
    pub enabled: bool,
    /// Expected number of entries (sizes the shards).
    pub size: usize,
    /// Upper bound on the bytes held.
    pub max_bytes: u64,
    pub min_ttl: u32,
    pub max_ttl: u32,
    pub negative_max_ttl: u32,
    /// RFC 2308 §7: SERVFAIL is cached for a few seconds at most.
    pub servfail_ttl: u32,
    pub serve_stale: bool,
    /// Refresh popular entries in the last 10% of their lifetime (Unbound `prefetch`).
    pub prefetch: bool,
    #[serde(serialize_with = "ser_duration")]
    pub stale_max_age: Duration,
    pub stale_ttl: u32,
    /// RFC 8767 §5 client response timer.
    #[serde(serialize_with = "ser_duration")]
    pub stale_answer_after: Duration,
}

/// `[server]`: listeners, ACL and resource caps.
#[derive(Debug, Clone, Serialize)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    pub allow: Vec<IpNet>,
    pub udp_payload: u16,
    #[serde(serialize_with = "ser_duration")]
    pub tcp_idle_timeout: Duration,
    pub max_inflight: usize,
    pub max_tcp_connections: usize,
    /// After SIGTERM, how long to keep serving (draining: `/ready` is 503)
    /// before the listeners stop accepting.
    #[serde(serialize_with = "ser_duration")]
    pub shutdown_grace: Duration,
    /// After the listeners stop, how long in-flight queries may finish.
    #[serde(serialize_with = "ser_duration")]
    pub drain_timeout: Duration,
    pub trusted_forwarders: Vec<IpNet>,
    /// Address of the metrics / health / ready endpoint; `None` disables it.
    pub metrics: Option<SocketAddr>,
    /// `POST /reload` on the metrics port.
    pub http_reload: bool,
    /// Reload when the config file changes (a mounted ConfigMap is swapped
    /// by symlink and sends no SIGHUP); read at start-up only.
    pub watch_config: bool,
    /// UDP sockets per listen address (`SO_REUSEPORT`), one per core by default.
    pub udp_sockets: usize,
    /// SO_RCVBUF asked for on each UDP socket (bytes; 0 = system default).
    pub udp_receive_buffer: usize,
    /// Threads that serve UDP queries, one per core by default; each has its
    /// own runtime, sockets and upstream sockets (see `worker`).
    pub workers: usize,
    /// Queries/s per client /32 or /64; 0 = off.
    pub rate_limit: u32,
    /// Bucket size; defaults to one second's worth (at least 1).
    pub rate_limit_burst: u32,
}

/// `[upstream]`: where queries go.
#[derive(Debug, Clone, Serialize)]
#[serde(into = "UpstreamView")]
pub struct UpstreamConfig {
    pub servers: Vec<SocketAddr>,
    pub timeout: Duration,
    pub attempts: u32,
    pub send_ecs: bool,
    /// Long-lived UDP sockets per server; 0 = a fresh socket per query.
    pub socket_pool: usize,
    /// The DNS-over-TLS servers among `servers` (RFC 7858, written
    /// `tls://IP[:PORT]#NAME`): address → the name their certificate must carry.
    pub tls_names: BTreeMap<SocketAddr, String>,
    /// PEM file of the CAs that TLS servers' certificates must chain to;
    /// `None`: the Mozilla roots (webpki-roots).
    pub tls_ca: Option<PathBuf>,
    /// The certificates read from `tls_ca` (read once, at load, so an
    /// unreadable file is a config error, not a failure at first query).
    pub tls_roots: Vec<CertificateDer<'static>>,
    /// A TLS connection with no query waiting is closed after this long.
    pub tls_idle_timeout: Duration,
    /// `[[upstream.zone]]`: names under a suffix go to other servers (the
    /// longest suffix wins); every other name goes to `servers`.
    pub zones: Vec<ForwardZone>,
}

/// One `[[upstream.zone]]`: queries for names at or under `suffix` go to
/// its own servers, an upstream group of its own (pool, health, failover).
/// `socket_pool`, `tls_ca` and `tls_idle_timeout` are shared with `[upstream]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardZone {
    /// Lower-case, fully qualified suffix (`cluster.local.`).
    pub suffix: String,
    pub servers: Vec<SocketAddr>,
    /// The `tls://` servers among `servers`, with their certificate names.
    pub tls_names: BTreeMap<SocketAddr, String>,
    /// Per-attempt timeout; `upstream.timeout` unless the zone sets one.
    pub timeout: Duration,
    /// Tries per query; `upstream.attempts` unless the zone sets them.
    pub attempts: u32,
}

impl ForwardZone {
    /// The servers as written in the config (`tls://IP:PORT#NAME` for DoT).
    pub fn server_names(&self) -> Vec<String> {
        server_names(&self.servers, &self.tls_names)
    }
}

impl UpstreamConfig {
    /// `upstream.servers` with the top-level timeout and attempts, as the
    /// zone `.` that every name no `[[upstream.zone]]` covers falls into.
    pub fn default_zone(&self) -> ForwardZone {
        ForwardZone {
            suffix: ".".into(),
            servers: self.servers.clone(),
            tls_names: self.tls_names.clone(),
            timeout: self.timeout,
            attempts: self.attempts,
        }
    }

    /// `upstream.servers` as written in the config.
    pub fn server_names(&self) -> Vec<String> {
        server_names(&self.servers, &self.tls_names)
    }
}

fn server_names(servers: &[SocketAddr], tls: &BTreeMap<SocketAddr, String>) -> Vec<String> {
    servers
        .iter()
        .map(|a| match tls.get(a) {
            Some(name) => format!("tls://{a}#{name}"),
            None => a.to_string(),
        })
        .collect()
}

/// A `[[upstream.zone]]` as `check-config` prints it.
#[derive(Serialize)]
struct ForwardZoneView {
    suffix: String,
    servers: Vec<String>,
    #[serde(serialize_with = "ser_duration")]
    timeout: Duration,
    attempts: u32,
}

/// `[upstream]` as `check-config` prints it: in the syntax it is read
/// from, `tls://` servers with their names, so the output loads again.
#[derive(Serialize)]
struct UpstreamView {
    servers: Vec<String>,
    #[serde(serialize_with = "ser_duration")]
    timeout: Duration,
    attempts: u32,
    send_ecs: bool,
    socket_pool: usize,
    tls_ca: Option<PathBuf>,
    #[serde(serialize_with = "ser_duration")]
    tls_idle_timeout: Duration,
    /// Last: TOML writes arrays of tables after the plain keys.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    zone: Vec<ForwardZoneView>,
}

impl From<UpstreamConfig> for UpstreamView {
    fn from(u: UpstreamConfig) -> UpstreamView {
        UpstreamView {
            servers: u.server_names(),
            zone: u
                .zones
                .iter()
                .map(|z| ForwardZoneView {
                    suffix: z.suffix.clone(),
                    servers: z.server_names(),
                    timeout: z.timeout,
                    attempts: z.attempts,
                })
                .collect(),
            timeout: u.timeout,
            attempts: u.attempts,
            send_ecs: u.send_ecs,
            socket_pool: u.socket_pool,
            tls_ca: u.tls_ca,
            tls_idle_timeout: u.tls_idle_timeout,
        }
    }
}

/// `[dns64]`: synthesis (SPEC §2, §3).
#[derive(Debug, Clone, Serialize)]
pub struct Dns64Config {
    /// The configured prefixes; with `discover`, the fallback used while
    /// RFC 7050 discovery has learned nothing (possibly empty).
    #[serde(serialize_with = "ser_prefixes")]
    pub prefixes: Prefixes,
    pub clients: Vec<IpNet>,
    pub exclude: Vec<Ipv6Net>,
    pub mapped: Vec<Ipv4Net>,
    pub never_map: Vec<Ipv4Net>,
    pub strict_rfc6052: bool,
    pub synthesize_on_error: bool,
    pub order: Order,
    /// Rotate the A and AAAA records of a cached answer on every hit, each
    /// `order` group on its own (round robin, as CoreDNS `loadbalance`).
    pub rotate: bool,
    pub parallel_a: bool,
    pub ptr: PtrMode,
    pub zone: Vec<ZoneConfig>,
    /// Bounds on the time between two RFC 7050 discoveries.
    #[serde(serialize_with = "ser_duration")]
    pub discovery_min_interval: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub discovery_max_interval: Duration,
}

/// `dns64.prefixes` as written: the static prefixes, and whether
/// `"discover"` asks for RFC 7050 discovery (the static ones are then the
/// fallback). Derefs to the static list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Prefixes {
    pub list: Vec<Prefix>,
    pub discover: bool,
}

impl std::ops::Deref for Prefixes {
    type Target = Vec<Prefix>;
    fn deref(&self) -> &Vec<Prefix> {
        &self.list
    }
}

impl Prefixes {
    /// The entries as written: `discover` first, then the prefixes.
    pub fn names(&self) -> Vec<String> {
        let discover = self.discover.then(|| DISCOVER.to_owned());
        discover
            .into_iter()
            .chain(self.list.iter().map(|p| p.to_string()))
            .collect()
    }
}

impl From<Vec<Prefix>> for Prefixes {
    fn from(list: Vec<Prefix>) -> Prefixes {
        Prefixes {
            list,
            discover: false,
        }
    }
}

fn ser_prefixes<S: serde::Serializer>(p: &Prefixes, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(p.list.len() + usize::from(p.discover)))?;
    if p.discover {
        seq.serialize_element(DISCOVER)?;
    }
    for prefix in &p.list {
        seq.serialize_element(prefix)?;
    }
    seq.end()
}

/// One `[[dns64.zone]]`: a policy for a name suffix (SPEC §3.9).
#[derive(Debug, Clone, Serialize)]
pub struct ZoneConfig {
    /// Lower-case, fully qualified suffix (`corp.example.`).
    pub suffix: String,
    pub policy: ZonePolicy,
    /// Overrides `dns64.prefixes` for names in this zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefixes: Option<Vec<Prefix>>,
    /// Overrides `filter.a` for names in this zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_a: Option<FilterA>,
}

/// `[filter]`: what DNS64 clients see of A records (SPEC §4).
#[derive(Debug, Clone, Serialize)]
pub struct FilterConfig {
    pub a: FilterA,
    pub negative_ttl: u32,
}

/// `[log]`.
#[derive(Debug, Clone, Serialize)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
    /// One info line per query (client, name, type, rcode, synthesized, upstream, latency).
    pub queries: bool,
    /// Log one query in N.
    pub query_sample: u32,
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    if d.subsec_millis() == 0 {
        s.serialize_str(&format!("{}s", d.as_secs()))
    } else {
        s.serialize_str(&format!("{}ms", d.as_millis()))
    }
}

impl Config {
    /// IPv4 listen addresses whose clients get no DNS64 because
    /// `dns64.clients` lists no IPv4 range: an IPv4 client is then answered
    /// like a plain forwarder would, A records and all. Usually a mistake
    /// (CoreDNS users hit it in coredns#3837 and #4808), so start-up warns.
    pub fn ipv4_listeners_without_dns64(&self) -> Vec<SocketAddr> {
        if self.dns64.clients.iter().any(|n| matches!(n, IpNet::V4(_))) {
            return Vec::new();
        }
        self.server
            .listen
            .iter()
            .copied()
            .filter(SocketAddr::is_ipv4)
            .collect()
    }

    /// Loads a TOML file (or the embedded default when `path` is `None`),
    /// then applies `DNS64D__SECTION__KEY` environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let builder = config::Config::builder();
        let builder = match path {
            Some(p) => builder.add_source(
                config::File::from(p)
                    .format(config::FileFormat::Toml)
                    .required(true),
            ),
            None => builder.add_source(config::File::from_str(
                EMBEDDED_DEFAULT,
                config::FileFormat::Toml,
            )),
        };
        let env = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .list_separator(",")
            .try_parsing(true);
        let env = LIST_KEYS
            .iter()
            .fold(env, |env, k| env.with_list_parse_key(k));
        let raw: RawConfig = builder
            .add_source(env)
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError::Load(describe_source(path, e)))?;
        raw.try_into()
    }

    /// Parses a TOML document alone (no environment): used by tests and tools.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Load(e.to_string()))?;
        raw.try_into()
    }

    /// True when `other` gives every query the answer `self` gives: they
    /// differ at most in how dns64d serves (listeners, caps, timeouts,
    /// workers, rate limit, metrics, logging, the upstream timers and
    /// sockets), not in what it answers. A reload between two such configs
    /// keeps the cache. Conservative: any change to `[dns64]`, `[filter]`,
    /// `[cache]`, the ACL, the upstream servers or the EDNS payload counts.
    pub fn same_answers(&self, other: &Config) -> bool {
        let mut neutral = other.clone();
        let (s, o) = (&self.server, &mut neutral.server);
        o.listen.clone_from(&s.listen);
        o.tcp_idle_timeout = s.tcp_idle_timeout;
        o.max_inflight = s.max_inflight;
        o.max_tcp_connections = s.max_tcp_connections;
        o.drain_timeout = s.drain_timeout;
        o.metrics = s.metrics;
        o.http_reload = s.http_reload;
        o.watch_config = s.watch_config;
        o.udp_sockets = s.udp_sockets;
        o.udp_receive_buffer = s.udp_receive_buffer;
        o.workers = s.workers;
        o.rate_limit = s.rate_limit;
        o.rate_limit_burst = s.rate_limit_burst;
        let (u, o) = (&self.upstream, &mut neutral.upstream);
        o.timeout = u.timeout;
        o.attempts = u.attempts;
        o.socket_pool = u.socket_pool;
        o.tls_idle_timeout = u.tls_idle_timeout;
        neutral.log = self.log.clone();
        // Every other field serializes (`tls_roots` follows `tls_ca`).
        neutral.to_toml() == self.to_toml()
    }

    /// The effective configuration as TOML, for `check-config`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: &[&str] = &[
    "server.listen",
    "server.allow",
    "upstream.servers",
    "dns64.prefixes",
    "dns64.clients",
    "dns64.exclude",
    "dns64.mapped",
    "dns64.never_map",
    "server.trusted_forwarders",
];

fn describe_source(path: Option<&Path>, e: config::ConfigError) -> String {
    match path {
        Some(p) => format!("{}: {e}", p.display()),
        None => format!("embedded default config: {e}"),
    }
}

impl Dns64Config {
    /// True when the well-known prefix is configured and private IPv4 space may be
    /// synthesized under it (RFC 6052 §3.1): worth one warning at start-up.
    pub fn wkp_maps_private_space(&self) -> bool {
        let wkp = self.prefixes.iter().any(Prefix::is_well_known);
        wkp && NON_GLOBAL_V4.iter().any(|n| {
            let net: Ipv4Net = n.parse().expect("constant");
            self.mapped
                .iter()
                .any(|m| m.contains(&net.network()) || net.contains(&m.network()))
        })
    }
}
