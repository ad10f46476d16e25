//! The file as written: serde structs that mirror the TOML document, every
//! key optional, unknown keys rejected (`deny_unknown_fields`). `convert`
//! turns them into the typed [`Config`](super::Config).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::types::{FilterA, Order, PtrMode, ZonePolicy};

use super::LogFormat;

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
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) upstream: RawUpstream,
    #[serde(default)]
    pub(super) dns64: RawDns64,
    #[serde(default)]
    pub(super) filter: RawFilter,
    #[serde(default)]
    pub(super) log: RawLog,
    #[serde(default)]
    pub(super) cache: RawCache,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    pub(super) enabled: Option<bool>,
    pub(super) size: Option<u64>,
    pub(super) max_bytes: Option<u64>,
    pub(super) min_ttl: Option<Seconds>,
    pub(super) max_ttl: Option<Seconds>,
    pub(super) negative_max_ttl: Option<Seconds>,
    pub(super) servfail_ttl: Option<Seconds>,
    pub(super) serve_stale: Option<bool>,
    pub(super) prefetch: Option<bool>,
    pub(super) stale_max_age: Option<Seconds>,
    pub(super) stale_ttl: Option<Seconds>,
    pub(super) stale_answer_after: Option<Seconds>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<Vec<String>>,
    pub(super) allow: Option<Vec<String>>,
    pub(super) udp_payload: Option<u64>,
    pub(super) udp_receive_buffer: Option<u64>,
    pub(super) tcp_idle_timeout: Option<Seconds>,
    pub(super) max_inflight: Option<u64>,
    pub(super) max_tcp_connections: Option<u64>,
    pub(super) drain_timeout: Option<Seconds>,
    pub(super) shutdown_grace: Option<Seconds>,
    pub(super) trusted_forwarders: Option<Vec<String>>,
    pub(super) metrics: Option<String>,
    pub(super) http_reload: Option<bool>,
    pub(super) watch_config: Option<bool>,
    pub(super) udp_sockets: Option<u64>,
    pub(super) workers: Option<u64>,
    pub(super) rate_limit: Option<u64>,
    pub(super) rate_limit_burst: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    pub(super) servers: Option<Vec<String>>,
    pub(super) timeout: Option<Seconds>,
    pub(super) attempts: Option<u64>,
    pub(super) send_ecs: Option<bool>,
    pub(super) socket_pool: Option<u64>,
    pub(super) tls_ca: Option<String>,
    pub(super) tls_idle_timeout: Option<Seconds>,
    pub(super) zone: Option<Vec<RawForwardZone>>,
}

/// One `[[upstream.zone]]` as written; `suffix` and `servers` are optional
/// here so that a missing one is reported with the zone's index.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawForwardZone {
    pub(super) suffix: Option<String>,
    pub(super) servers: Option<Vec<String>>,
    pub(super) timeout: Option<Seconds>,
    pub(super) attempts: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDns64 {
    pub(super) prefixes: Option<Vec<String>>,
    pub(super) clients: Option<Vec<String>>,
    pub(super) exclude: Option<Vec<String>>,
    pub(super) mapped: Option<Vec<String>>,
    pub(super) never_map: Option<Vec<String>>,
    pub(super) strict_rfc6052: Option<bool>,
    pub(super) synthesize_on_error: Option<bool>,
    pub(super) order: Option<Order>,
    pub(super) rotate: Option<bool>,
    pub(super) parallel_a: Option<bool>,
    pub(super) ptr: Option<PtrMode>,
    pub(super) zone: Option<Vec<RawZone>>,
    pub(super) discovery_min_interval: Option<Seconds>,
    pub(super) discovery_max_interval: Option<Seconds>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawZone {
    pub(super) suffix: String,
    pub(super) policy: Option<ZonePolicy>,
    pub(super) prefixes: Option<Vec<String>>,
    pub(super) filter_a: Option<FilterA>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFilter {
    pub(super) a: Option<FilterA>,
    pub(super) negative_ttl: Option<Seconds>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) level: Option<String>,
    pub(super) format: Option<LogFormat>,
    pub(super) queries: Option<bool>,
    pub(super) query_sample: Option<u64>,
}
