//! Configuration: control path only, never touched per query.
//!
//! "Parse, don't validate": a serde [`RawConfig`] mirrors the TOML file
//! (`deny_unknown_fields`, every key optional) and converts into the typed
//! [`Config`] the data path uses. Every tunable has one constant with its
//! default; every error names the key, the value and the reason.
//!
//! Sources, in order: the TOML file (or the embedded default), then
//! environment variables `DNS64D__SECTION__KEY` (lists comma-separated).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Deserializer, Serialize};

use crate::dns64::Prefix;

/// The embedded default configuration: a loopback demo that serves as is.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/default.toml");

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
/// Per-attempt upstream timeout; 2 tries × 2 s stays under glibc's 5 s.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Total upstream tries per query, across servers.
pub const DEFAULT_UPSTREAM_ATTEMPTS: u32 = 2;
/// Upstream UDP sockets per server: 16 random ports × 16-bit IDs for a
/// forger to guess, one send per query instead of five socket syscalls.
pub const DEFAULT_SOCKET_POOL: usize = 16;
/// The RFC 6052 well-known prefix.
pub const DEFAULT_PREFIXES: &[&str] = &["64:ff9b::/96"];
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
}

fn invalid(key: &'static str, value: impl fmt::Display, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// What happens to A records for DNS64 clients (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterA {
    /// Classic DNS64: A queries answered as upstream answers them.
    Pass,
    /// A records removed from every section (default).
    Strip,
    /// As strip, and A glue in the additional section becomes synthesized AAAA.
    Rewrite,
}

/// A duration written as `"2s"`, `"500ms"`, `"1m"` or a whole number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Float(f64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(s) => Ok(Seconds(Duration::from_secs(s))),
            Raw::Float(f) if f.is_finite() && f >= 0.0 => Ok(Seconds(Duration::from_secs_f64(f))),
            Raw::Float(f) => Err(serde::de::Error::custom(format!("{f} is not a duration"))),
            Raw::Str(s) => parse_duration(&s)
                .map(Seconds)
                .map_err(serde::de::Error::custom),
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try \"2s\" or \"500ms\")"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?} (use ms, s, m, h or d)"
            ));
        }
    };
    Ok(Duration::from_secs_f64(secs))
}

/// The file as written: every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    upstream: RawUpstream,
    #[serde(default)]
    dns64: RawDns64,
    #[serde(default)]
    filter: RawFilter,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    cache: RawCache,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    enabled: Option<bool>,
    size: Option<u64>,
    max_bytes: Option<u64>,
    min_ttl: Option<Seconds>,
    max_ttl: Option<Seconds>,
    negative_max_ttl: Option<Seconds>,
    servfail_ttl: Option<Seconds>,
    serve_stale: Option<bool>,
    stale_max_age: Option<Seconds>,
    stale_ttl: Option<Seconds>,
    stale_answer_after: Option<Seconds>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Vec<String>>,
    allow: Option<Vec<String>>,
    udp_payload: Option<u64>,
    udp_receive_buffer: Option<u64>,
    tcp_idle_timeout: Option<Seconds>,
    max_inflight: Option<u64>,
    max_tcp_connections: Option<u64>,
    drain_timeout: Option<Seconds>,
    trusted_forwarders: Option<Vec<String>>,
    metrics: Option<String>,
    http_reload: Option<bool>,
    udp_sockets: Option<u64>,
    workers: Option<u64>,
    rate_limit: Option<u64>,
    rate_limit_burst: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    servers: Option<Vec<String>>,
    timeout: Option<Seconds>,
    attempts: Option<u64>,
    send_ecs: Option<bool>,
    socket_pool: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns64 {
    prefixes: Option<Vec<String>>,
    clients: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
    mapped: Option<Vec<String>>,
    never_map: Option<Vec<String>>,
    strict_rfc6052: Option<bool>,
    synthesize_on_error: Option<bool>,
    order: Option<Order>,
    parallel_a: Option<bool>,
    ptr: Option<PtrMode>,
    zone: Option<Vec<RawZone>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    suffix: String,
    policy: Option<ZonePolicy>,
    prefixes: Option<Vec<String>>,
    filter_a: Option<FilterA>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    a: Option<FilterA>,
    negative_ttl: Option<Seconds>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    format: Option<LogFormat>,
    queries: Option<bool>,
    query_sample: Option<u64>,
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
    #[serde(serialize_with = "ser_duration")]
    pub drain_timeout: Duration,
    pub trusted_forwarders: Vec<IpNet>,
    /// Address of the metrics / health / ready endpoint; `None` disables it.
    pub metrics: Option<SocketAddr>,
    /// `POST /reload` on the metrics port.
    pub http_reload: bool,
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
pub struct UpstreamConfig {
    pub servers: Vec<SocketAddr>,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    pub attempts: u32,
    pub send_ecs: bool,
    /// Long-lived UDP sockets per server; 0 = a fresh socket per query.
    pub socket_pool: usize,
}

/// `[dns64]`: synthesis (SPEC §2, §3).
#[derive(Debug, Clone, Serialize)]
pub struct Dns64Config {
    pub prefixes: Vec<Prefix>,
    pub clients: Vec<IpNet>,
    pub exclude: Vec<Ipv6Net>,
    pub mapped: Vec<Ipv4Net>,
    pub never_map: Vec<Ipv4Net>,
    pub strict_rfc6052: bool,
    pub synthesize_on_error: bool,
    pub order: Order,
    pub parallel_a: bool,
    pub ptr: PtrMode,
    pub zone: Vec<ZoneConfig>,
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

/// DNS64 behaviour for a zone (SPEC §3.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZonePolicy {
    /// RFC 6147: synthesize only when there is no native AAAA.
    Native,
    /// Always synthesize; native AAAA dropped (translate everything).
    Synthesize,
    /// Native and synthesized AAAA together, ordered by `dns64.order`.
    Both,
    /// No DNS64 and no A filtering: plain forwarding.
    Off,
}

/// Order of AAAA groups under `both` (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    SynthesizedFirst,
    NativeFirst,
}

/// PTR handling for ip6.arpa names inside a prefix (RFC 6147 §5.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PtrMode {
    /// CNAME to the in-addr.arpa name, followed upstream.
    Follow,
    /// CNAME only.
    Cname,
    /// Forward untouched.
    Off,
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

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Config, ConfigError> {
        let s = raw.server;
        let server = ServerConfig {
            listen: parse_list("server.listen", s.listen, DEFAULT_LISTEN, |v| {
                parse_socket(v, 53)
            })?,
            allow: parse_list("server.allow", s.allow, DEFAULT_ALLOW, parse_net)?,
            udp_payload: match s.udp_payload {
                None => DEFAULT_UDP_PAYLOAD,
                Some(v) if (MIN_UDP_PAYLOAD as u64..=65535).contains(&v) => v as u16,
                Some(v) => {
                    return Err(invalid(
                        "server.udp_payload",
                        v,
                        "must be 512..=65535 (RFC 6891 §6.2.5)",
                    ));
                }
            },
            tcp_idle_timeout: positive(
                "server.tcp_idle_timeout",
                s.tcp_idle_timeout,
                DEFAULT_TCP_IDLE_TIMEOUT,
            )?,
            max_inflight: count("server.max_inflight", s.max_inflight, DEFAULT_MAX_INFLIGHT)?,
            max_tcp_connections: count(
                "server.max_tcp_connections",
                s.max_tcp_connections,
                DEFAULT_MAX_TCP_CONNECTIONS,
            )?,
            drain_timeout: s.drain_timeout.map_or(DEFAULT_DRAIN_TIMEOUT, |d| d.0),
            trusted_forwarders: parse_list(
                "server.trusted_forwarders",
                s.trusted_forwarders,
                &[],
                parse_net,
            )?,
            metrics: match s.metrics.as_deref().map(str::trim) {
                None => Some(DEFAULT_METRICS.parse().expect("constant")),
                Some("") => None,
                Some(v) => {
                    Some(parse_socket(v, 9153).map_err(|r| invalid("server.metrics", v, r))?)
                }
            },
            http_reload: s.http_reload.unwrap_or(false),
            udp_sockets: match s.udp_sockets {
                None | Some(0) => std::thread::available_parallelism().map_or(1, |n| n.get()),
                Some(n) if n <= 256 => n as usize,
                Some(n) => {
                    return Err(invalid(
                        "server.udp_sockets",
                        n,
                        "must be 0 (one per core) to 256",
                    ));
                }
            },
            udp_receive_buffer: match s.udp_receive_buffer {
                None => DEFAULT_UDP_RECEIVE_BUFFER,
                Some(n) if n <= 1 << 30 => n as usize,
                Some(n) => {
                    return Err(invalid(
                        "server.udp_receive_buffer",
                        n,
                        "must be 0 (system default) to 1073741824 bytes",
                    ));
                }
            },
            workers: match s.workers {
                None | Some(0) => std::thread::available_parallelism().map_or(1, |n| n.get()),
                Some(n) if n <= 256 => n as usize,
                Some(n) => {
                    return Err(invalid(
                        "server.workers",
                        n,
                        "must be 0 (one per core) to 256",
                    ));
                }
            },
            rate_limit: match s.rate_limit {
                None => 0,
                Some(n) if n <= 1_000_000 => n as u32,
                Some(n) => {
                    return Err(invalid(
                        "server.rate_limit",
                        n,
                        "must be 0 (off) to 1000000 queries/s",
                    ));
                }
            },
            rate_limit_burst: match s.rate_limit_burst {
                None => s.rate_limit.unwrap_or(0).clamp(1, 1_000_000) as u32,
                Some(n) if (1..=1_000_000).contains(&n) => n as u32,
                Some(n) => {
                    return Err(invalid(
                        "server.rate_limit_burst",
                        n,
                        "must be 1 to 1000000",
                    ));
                }
            },
        };
        if server.listen.is_empty() {
            return Err(invalid(
                "server.listen",
                "[]",
                "at least one address is needed",
            ));
        }

        let u = raw.upstream;
        let servers = match u.servers {
            Some(list) => list
                .iter()
                .map(|v| parse_socket(v, 53).map_err(|r| invalid("upstream.servers", v, r)))
                .collect::<Result<Vec<_>, _>>()?,
            None => system_nameservers()?,
        };
        if servers.is_empty() {
            return Err(invalid(
                "upstream.servers",
                "[]",
                "at least one upstream server is needed",
            ));
        }
        let upstream = UpstreamConfig {
            servers,
            timeout: positive("upstream.timeout", u.timeout, DEFAULT_UPSTREAM_TIMEOUT)?,
            attempts: match u.attempts {
                None => DEFAULT_UPSTREAM_ATTEMPTS,
                Some(v) if (1..=10).contains(&v) => v as u32,
                Some(v) => return Err(invalid("upstream.attempts", v, "must be 1..=10")),
            },
            send_ecs: u.send_ecs.unwrap_or(false),
            socket_pool: match u.socket_pool {
                None => DEFAULT_SOCKET_POOL,
                Some(n) if n <= 1024 => n as usize,
                Some(n) => {
                    return Err(invalid(
                        "upstream.socket_pool",
                        n,
                        "must be 0 (a socket per query) to 1024",
                    ));
                }
            },
        };

        let d = raw.dns64;
        let dns64 = Dns64Config {
            prefixes: parse_list("dns64.prefixes", d.prefixes, DEFAULT_PREFIXES, |v| {
                v.parse::<Prefix>()
            })?,
            clients: parse_list("dns64.clients", d.clients, DEFAULT_CLIENTS, parse_net)?,
            exclude: parse_list("dns64.exclude", d.exclude, DEFAULT_EXCLUDE, |v| {
                v.parse::<Ipv6Net>()
                    .map(|n| n.trunc())
                    .map_err(|e| e.to_string())
            })?,
            mapped: parse_list("dns64.mapped", d.mapped, DEFAULT_MAPPED, parse_v4net)?,
            never_map: parse_list(
                "dns64.never_map",
                d.never_map,
                DEFAULT_NEVER_MAP,
                parse_v4net,
            )?,
            strict_rfc6052: d.strict_rfc6052.unwrap_or(false),
            synthesize_on_error: d.synthesize_on_error.unwrap_or(true),
            order: d.order.unwrap_or(Order::SynthesizedFirst),
            parallel_a: d.parallel_a.unwrap_or(false),
            ptr: d.ptr.unwrap_or(PtrMode::Follow),
            zone: d
                .zone
                .unwrap_or_default()
                .into_iter()
                .map(RawZone::parse)
                .collect::<Result<Vec<_>, _>>()?,
        };
        for (i, z) in dns64.zone.iter().enumerate() {
            if dns64.zone[..i].iter().any(|o| o.suffix == z.suffix) {
                return Err(invalid("dns64.zone.suffix", &z.suffix, "listed twice"));
            }
        }
        if dns64.prefixes.is_empty() {
            return Err(invalid(
                "dns64.prefixes",
                "[]",
                "at least one prefix is needed",
            ));
        }

        let filter = FilterConfig {
            a: raw.filter.a.unwrap_or(FilterA::Strip),
            negative_ttl: match raw.filter.negative_ttl {
                None => DEFAULT_NEGATIVE_TTL,
                Some(Seconds(d)) if d.as_secs() <= u32::MAX as u64 => d.as_secs() as u32,
                Some(Seconds(d)) => {
                    return Err(invalid(
                        "filter.negative_ttl",
                        format!("{d:?}"),
                        "too large",
                    ));
                }
            },
        };

        let level = raw.log.level.unwrap_or_else(|| "info".to_owned());
        if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            return Err(invalid(
                "log.level",
                level,
                "not a tracing filter (try info, debug, or dns64d=debug)",
            ));
        }
        let log = LogConfig {
            level,
            format: raw.log.format.unwrap_or(LogFormat::Text),
            queries: raw.log.queries.unwrap_or(false),
            query_sample: match raw.log.query_sample {
                None => 1,
                Some(n) if (1..=1_000_000).contains(&n) => n as u32,
                Some(n) => {
                    return Err(invalid(
                        "log.query_sample",
                        n,
                        "must be 1..=1000000 (log one query in N)",
                    ));
                }
            },
        };

        let c = raw.cache;
        let secs = |key: &'static str,
                    v: Option<Seconds>,
                    default: u32,
                    max: u32|
         -> Result<u32, ConfigError> {
            match v {
                None => Ok(default),
                Some(Seconds(d)) if d.as_secs() <= u64::from(max) => Ok(d.as_secs() as u32),
                Some(Seconds(d)) => Err(invalid(
                    key,
                    format!("{d:?}"),
                    format!("must be at most {max} s"),
                )),
            }
        };
        let cache = CacheConfig {
            enabled: c.enabled.unwrap_or(true),
            size: count("cache.size", c.size, DEFAULT_CACHE_SIZE)?,
            max_bytes: match c.max_bytes {
                None => DEFAULT_CACHE_BYTES,
                Some(n) if n >= 4096 => n,
                Some(n) => return Err(invalid("cache.max_bytes", n, "must be at least 4096")),
            },
            min_ttl: secs("cache.min_ttl", c.min_ttl, 0, 3600)?,
            max_ttl: secs("cache.max_ttl", c.max_ttl, 86400, 7 * 86400)?,
            negative_max_ttl: secs("cache.negative_max_ttl", c.negative_max_ttl, 3600, 86400)?,
            servfail_ttl: secs("cache.servfail_ttl", c.servfail_ttl, 2, 5)?,
            serve_stale: c.serve_stale.unwrap_or(true),
            stale_max_age: c.stale_max_age.map_or(DEFAULT_STALE_MAX_AGE, |d| d.0),
            stale_ttl: secs("cache.stale_ttl", c.stale_ttl, 30, 3600)?,
            stale_answer_after: match c.stale_answer_after {
                None => DEFAULT_STALE_ANSWER_AFTER,
                Some(Seconds(d))
                    if d >= Duration::from_millis(10) && d <= Duration::from_secs(30) =>
                {
                    d
                }
                Some(Seconds(d)) => {
                    return Err(invalid(
                        "cache.stale_answer_after",
                        format!("{d:?}"),
                        "must be 10ms to 30s",
                    ));
                }
            },
        };
        if cache.min_ttl > cache.max_ttl {
            return Err(invalid(
                "cache.min_ttl",
                cache.min_ttl,
                "must not exceed cache.max_ttl",
            ));
        }

        Ok(Config {
            server,
            upstream,
            dns64,
            filter,
            log,
            cache,
        })
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

impl RawZone {
    fn parse(self) -> Result<ZoneConfig, ConfigError> {
        let suffix = normalize_suffix(&self.suffix)
            .map_err(|r| invalid("dns64.zone.suffix", &self.suffix, r))?;
        let prefixes = match self.prefixes {
            None => None,
            Some(list) => {
                let parsed = parse_list("dns64.zone.prefixes", Some(list), &[], |v| {
                    v.parse::<Prefix>()
                })?;
                if parsed.is_empty() {
                    return Err(invalid(
                        "dns64.zone.prefixes",
                        "[]",
                        "at least one prefix, or leave the key out",
                    ));
                }
                Some(parsed)
            }
        };
        Ok(ZoneConfig {
            suffix,
            policy: self.policy.unwrap_or(ZonePolicy::Native),
            prefixes,
            filter_a: self.filter_a,
        })
    }
}

/// Lower-cases a zone suffix and makes it fully qualified; checks label lengths.
fn normalize_suffix(s: &str) -> Result<String, String> {
    let s = s.trim().to_ascii_lowercase();
    if s == "." || s.is_empty() {
        return Ok(".".into());
    }
    let fqdn = if s.ends_with('.') { s } else { format!("{s}.") };
    let labels: Vec<&str> = fqdn[..fqdn.len() - 1].split('.').collect();
    if labels.iter().any(|l| l.is_empty() || l.len() > 63) || fqdn.len() > 254 {
        return Err("not a domain name (empty label or label over 63 octets)".into());
    }
    Ok(fqdn)
}

fn parse_list<T>(
    key: &'static str,
    given: Option<Vec<String>>,
    default: &[&str],
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, ConfigError> {
    match given {
        Some(list) => list
            .iter()
            .map(|v| parse(v.trim()).map_err(|r| invalid(key, v, r)))
            .collect(),
        None => Ok(default
            .iter()
            .map(|v| parse(v).expect("built-in default parses"))
            .collect()),
    }
}

fn positive(
    key: &'static str,
    v: Option<Seconds>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(Seconds(d)) if !d.is_zero() => Ok(d),
        Some(Seconds(d)) => Err(invalid(key, format!("{d:?}"), "must be greater than zero")),
    }
}

fn count(key: &'static str, v: Option<u64>, default: usize) -> Result<usize, ConfigError> {
    match v {
        None => Ok(default),
        Some(n) if (1..=1_000_000).contains(&n) => Ok(n as usize),
        Some(n) => Err(invalid(key, n, "must be 1..=1000000")),
    }
}

/// Accepts `1.2.3.4`, `1.2.3.4:53`, `::1`, `[::1]:53`.
fn parse_socket(v: &str, default_port: u16) -> Result<SocketAddr, String> {
    if let Ok(sa) = v.parse::<SocketAddr>() {
        return Ok(sa);
    }
    let host = v.trim_start_matches('[').trim_end_matches(']');
    host.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, default_port))
        .map_err(|_| {
            "not an address (expected 192.0.2.1, 192.0.2.1:53, 2001:db8::1 or [2001:db8::1]:53)"
                .into()
        })
}

/// Accepts CIDR or a bare address (a /32 or /128).
fn parse_net(v: &str) -> Result<IpNet, String> {
    if let Ok(n) = v.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    v.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| "not a network (expected CIDR like 10.0.0.0/8 or fd00::/8)".into())
}

fn parse_v4net(v: &str) -> Result<Ipv4Net, String> {
    match parse_net(v)? {
        IpNet::V4(n) => Ok(n),
        IpNet::V6(_) => Err("must be an IPv4 network".into()),
    }
}

/// The nameservers of /etc/resolv.conf, through hickory-resolver's reader.
fn system_nameservers() -> Result<Vec<SocketAddr>, ConfigError> {
    let (conf, _opts) = hickory_resolver::system_conf::read_system_conf().map_err(|e| {
        invalid(
            "upstream.servers",
            "(unset)",
            format!("no servers given and /etc/resolv.conf is unusable: {e}"),
        )
    })?;
    let mut out: Vec<SocketAddr> = Vec::new();
    for ns in conf.name_servers() {
        let sa = SocketAddr::new(ns.ip, 53);
        if !out.contains(&sa) {
            out.push(sa);
        }
    }
    Ok(out)
}

/// True for addresses that are IPv4 in disguise (`::ffff:a.b.c.d` from a dual-stack socket).
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Unspecified address of the same family, for binding upstream sockets.
pub fn unspecified_for(addr: &SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "[upstream]\nservers = [\"127.0.0.1:5300\"]\n";

    #[test]
    fn omitted_keys_take_the_spec_defaults() {
        let c = Config::from_toml(MIN).unwrap();
        assert_eq!(c.server.udp_payload, 1232);
        assert_eq!(c.upstream.timeout, Duration::from_secs(2));
        assert_eq!(c.dns64.prefixes[0].to_string(), "64:ff9b::/96");
        assert_eq!(c.dns64.clients, vec!["::/0".parse::<IpNet>().unwrap()]);
        assert_eq!(
            c.dns64.exclude,
            vec!["::ffff:0:0/96".parse::<Ipv6Net>().unwrap()]
        );
        assert_eq!(c.dns64.never_map.len(), 4);
        assert_eq!(c.filter.a, FilterA::Strip);
        assert_eq!(c.filter.negative_ttl, 30);
        assert!(c.dns64.synthesize_on_error);
        assert!(!c.dns64.strict_rfc6052);
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = Config::from_toml("[dns64]\nprefix = [\"64:ff9b::/96\"]\n").unwrap_err();
        assert!(err.to_string().contains("prefix"), "{err}");
    }

    #[test]
    fn prefix_length_outside_rfc6052_is_an_error_naming_key_and_value() {
        let err = Config::from_toml(&format!("{MIN}[dns64]\nprefixes = [\"2001:db8::/44\"]\n"))
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("dns64.prefixes") && msg.contains("2001:db8::/44"),
            "{msg}"
        );
    }

    #[test]
    fn durations_accept_units_and_plain_seconds() {
        let c = Config::from_toml("[upstream]\nservers=[\"127.0.0.1\"]\ntimeout=\"250ms\"\n[filter]\nnegative_ttl=\"1m\"\n").unwrap();
        assert_eq!(c.upstream.timeout, Duration::from_millis(250));
        assert_eq!(c.filter.negative_ttl, 60);
        assert_eq!(c.upstream.servers[0], "127.0.0.1:53".parse().unwrap());
    }

    #[test]
    fn zero_timeout_is_refused_not_fixed() {
        let err =
            Config::from_toml("[upstream]\nservers=[\"127.0.0.1\"]\ntimeout=0\n").unwrap_err();
        assert!(err.to_string().contains("upstream.timeout"), "{err}");
    }

    #[test]
    fn workers_default_to_one_per_core_and_refuse_absurd_counts() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let c = Config::from_toml(MIN).unwrap();
        assert_eq!(c.server.workers, cores);
        let c = Config::from_toml(&format!("{MIN}[server]\nworkers = 1\n")).unwrap();
        assert_eq!(c.server.workers, 1);
        let err = Config::from_toml(&format!("{MIN}[server]\nworkers = 100000\n")).unwrap_err();
        assert!(err.to_string().contains("server.workers"), "{err}");
    }

    #[test]
    fn udp_receive_buffer_defaults_to_4_mib_and_zero_means_the_system_default() {
        let c = Config::from_toml(MIN).unwrap();
        assert_eq!(c.server.udp_receive_buffer, 4 << 20);
        let c = Config::from_toml(&format!("{MIN}[server]\nudp_receive_buffer = 0\n")).unwrap();
        assert_eq!(c.server.udp_receive_buffer, 0);
        let err = Config::from_toml(&format!(
            "{MIN}[server]\nudp_receive_buffer = 99999999999\n"
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("server.udp_receive_buffer"),
            "{err}"
        );
    }

    #[test]
    fn udp_payload_below_512_is_an_error() {
        let err = Config::from_toml(&format!("{MIN}[server]\nudp_payload = 100\n")).unwrap_err();
        assert!(err.to_string().contains("server.udp_payload"), "{err}");
    }

    #[test]
    fn embedded_default_config_loads_and_serves_loopback_as_dns64_clients() {
        let raw: RawConfig = toml::from_str(EMBEDDED_DEFAULT).unwrap();
        let c: Config = match raw.try_into() {
            Ok(c) => c,
            // A machine without /etc/resolv.conf nameservers: the embedded file itself is still valid.
            Err(ConfigError::Invalid {
                key: "upstream.servers",
                ..
            }) => return,
            Err(e) => panic!("{e}"),
        };
        assert!(c.server.listen.contains(&"127.0.0.1:5353".parse().unwrap()));
        assert!(c.server.listen.contains(&"[::1]:5353".parse().unwrap()));
        assert!(
            c.dns64
                .clients
                .iter()
                .any(|n| n.contains(&"127.0.0.1".parse::<IpAddr>().unwrap()))
        );
    }

    #[test]
    fn shipped_example_configs_load() {
        for f in ["config/node-local.toml", "config/default.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
            let text = std::fs::read_to_string(&path).unwrap();
            let raw: RawConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
            match Config::try_from(raw) {
                Ok(_)
                | Err(ConfigError::Invalid {
                    key: "upstream.servers",
                    ..
                }) => {}
                Err(e) => panic!("{f}: {e}"),
            }
        }
    }

    #[test]
    fn wkp_with_private_mapped_space_is_detected() {
        let c = Config::from_toml(MIN).unwrap();
        assert!(c.dns64.wkp_maps_private_space());
        let c =
            Config::from_toml(&format!("{MIN}[dns64]\nmapped=[\"198.51.100.0/24\"]\n")).unwrap();
        assert!(!c.dns64.wkp_maps_private_space());
    }
}
