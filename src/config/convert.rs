//! From the file as written ([`RawConfig`]) to the typed [`Config`]: every
//! default applied here, every error names the key, the value and the reason.

use std::net::{IpAddr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::raw::{RawConfig, RawZone};
use super::*;

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
            shutdown_grace: s.shutdown_grace.map_or(DEFAULT_SHUTDOWN_GRACE, |d| d.0),
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
            watch_config: s.watch_config.unwrap_or(true),
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
        let mut tls_names = BTreeMap::new();
        let servers = match u.servers {
            Some(list) => parse_servers("upstream.servers", &list, &mut tls_names)?,
            None => system_nameservers()?,
        };
        let (tls_ca, tls_roots) = match u.tls_ca {
            None => (None, Vec::new()),
            Some(path) => {
                let roots = read_ca("upstream.tls_ca", &path)?;
                (Some(PathBuf::from(path)), roots)
            }
        };
        if servers.is_empty() {
            return Err(invalid(
                "upstream.servers",
                "[]",
                "at least one upstream server is needed",
            ));
        }
        let timeout = positive("upstream.timeout", u.timeout, DEFAULT_UPSTREAM_TIMEOUT)?;
        let attempts = match u.attempts {
            None => DEFAULT_UPSTREAM_ATTEMPTS,
            Some(v) if (1..=MAX_UPSTREAM_ATTEMPTS as u64).contains(&v) => v as u32,
            Some(v) => return Err(invalid("upstream.attempts", v, "must be 1..=10")),
        };
        let zones = super::zones::parse(u.zone.unwrap_or_default(), timeout, attempts)?;
        let upstream = UpstreamConfig {
            servers,
            timeout,
            attempts,
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
            tls_names,
            tls_ca,
            tls_roots,
            tls_idle_timeout: positive(
                "upstream.tls_idle_timeout",
                u.tls_idle_timeout,
                DEFAULT_TLS_IDLE_TIMEOUT,
            )?,
            zones,
        };

        let d = raw.dns64;
        let dns64 = Dns64Config {
            prefixes: parse_prefixes(d.prefixes)?,
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
            rotate: d.rotate.unwrap_or(true),
            parallel_a: d.parallel_a.unwrap_or(false),
            ptr: d.ptr.unwrap_or(PtrMode::Follow),
            zone: d
                .zone
                .unwrap_or_default()
                .into_iter()
                .map(RawZone::parse)
                .collect::<Result<Vec<_>, _>>()?,
            discovery_min_interval: interval(
                "dns64.discovery_min_interval",
                d.discovery_min_interval,
                DEFAULT_DISCOVERY_MIN_INTERVAL,
            )?,
            discovery_max_interval: interval(
                "dns64.discovery_max_interval",
                d.discovery_max_interval,
                DEFAULT_DISCOVERY_MAX_INTERVAL,
            )?,
        };
        if dns64.discovery_min_interval > dns64.discovery_max_interval {
            return Err(invalid(
                "dns64.discovery_min_interval",
                format!("{:?}", dns64.discovery_min_interval),
                "must not exceed dns64.discovery_max_interval",
            ));
        }
        for (i, z) in dns64.zone.iter().enumerate() {
            if dns64.zone[..i].iter().any(|o| o.suffix == z.suffix) {
                return Err(invalid("dns64.zone.suffix", &z.suffix, "listed twice"));
            }
        }
        if dns64.prefixes.is_empty() && !dns64.prefixes.discover {
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
            prefetch: c.prefetch.unwrap_or(true),
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

impl RawZone {
    fn parse(self) -> Result<ZoneConfig, ConfigError> {
        let suffix = normalize_suffix(&self.suffix)
            .map_err(|r| invalid("dns64.zone.suffix", &self.suffix, r))?;
        let prefixes = match self.prefixes {
            None => None,
            Some(list) => {
                let parsed = parse_list("dns64.zone.prefixes", Some(list), &[], |v| {
                    if v.eq_ignore_ascii_case(DISCOVER) {
                        return Err("\"discover\" applies to dns64.prefixes only; \
                                    a zone lists its prefixes"
                            .into());
                    }
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

/// `dns64.prefixes`: prefixes, and at most one `"discover"` (RFC 7050
/// discovery; the other entries become its fallback).
fn parse_prefixes(given: Option<Vec<String>>) -> Result<Prefixes, ConfigError> {
    let Some(list) = given else {
        return Ok(parse_list("dns64.prefixes", None, DEFAULT_PREFIXES, |v| {
            v.parse::<Prefix>()
        })?
        .into());
    };
    let mut out = Prefixes::default();
    for v in &list {
        if v.trim().eq_ignore_ascii_case(DISCOVER) {
            if out.discover {
                return Err(invalid("dns64.prefixes", v, "\"discover\" is listed twice"));
            }
            out.discover = true;
            continue;
        }
        let p = v
            .trim()
            .parse::<Prefix>()
            .map_err(|r| invalid("dns64.prefixes", v, r))?;
        out.list.push(p);
    }
    Ok(out)
}

/// A discovery interval: 1 s to 7 days.
fn interval(
    key: &'static str,
    v: Option<Seconds>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(Seconds(d)) if d >= Duration::from_secs(1) && d <= Duration::from_secs(7 * 86_400) => {
            Ok(d)
        }
        Some(Seconds(d)) => Err(invalid(key, format!("{d:?}"), "must be 1s to 7d")),
    }
}

/// Lower-cases a zone suffix and makes it fully qualified; checks label lengths.
pub(super) fn normalize_suffix(s: &str) -> Result<String, String> {
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

/// Parses a list of servers in the shared server syntax (`upstream.servers`,
/// and any other list of upstream servers): plain addresses, or
/// `tls://IP[:PORT]#NAME` for DNS over TLS, whose names go to `tls_names`.
pub(super) fn parse_servers(
    key: &'static str,
    list: &[String],
    tls_names: &mut BTreeMap<SocketAddr, String>,
) -> Result<Vec<SocketAddr>, ConfigError> {
    let mut out = Vec::with_capacity(list.len());
    for v in list {
        let (addr, name) = parse_server(v).map_err(|r| invalid(key, v, r))?;
        if let Some(name) = name {
            tls_names.insert(addr, name);
        }
        out.push(addr);
    }
    Ok(out)
}

/// One server: `IP[:PORT]` (port 53), or `tls://IP[:PORT]#NAME` (port 853,
/// RFC 7858 §3.1) whose certificate must be valid for NAME.
pub(super) fn parse_server(v: &str) -> Result<(SocketAddr, Option<String>), String> {
    let Some(rest) = v.strip_prefix("tls://") else {
        if v.contains("://") || v.contains('#') {
            return Err("unknown scheme (expected IP[:PORT] or tls://IP[:PORT]#NAME)".into());
        }
        return parse_socket(v, 53).map(|a| (a, None));
    };
    let Some((host, name)) = rest.split_once('#') else {
        return Err(
            "a tls:// server needs the name its certificate is checked against: tls://IP[:PORT]#NAME"
                .into(),
        );
    };
    let addr = parse_socket(host, DOT_PORT)?;
    let name = name.trim_end_matches('.');
    if name.is_empty() {
        return Err("the TLS server name after # is empty".into());
    }
    rustls_pki_types::ServerName::try_from(name)
        .map_err(|_| format!("{name:?} is not a valid TLS server name"))?;
    Ok((addr, Some(name.to_ascii_lowercase())))
}

/// The CA certificates of the PEM file `path` (at least one).
fn read_ca(key: &'static str, path: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    use rustls_pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|e| invalid(key, path, format!("cannot read: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(key, path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(key, path, "holds no PEM certificate"));
    }
    Ok(certs)
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
