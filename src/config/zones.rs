//! `[[upstream.zone]]`: per-zone forwarding (the NodeLocal DNSCache layout,
//! `cluster.local.` → kube-dns, everything else → the VPC resolver).
//! Every error names the entry by index (`upstream.zone[1].suffix`), so an
//! operator with a dozen zones knows which one is wrong.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::convert::{normalize_suffix, parse_server};
use super::raw::{RawForwardZone, Seconds};
use super::{ConfigError, ForwardZone, MAX_UPSTREAM_ATTEMPTS};

fn at(i: usize, field: &str, value: impl fmt::Display, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidAt {
        key: format!("upstream.zone[{i}].{field}"),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Validates the zones in file order; `timeout` and `attempts` are the
/// `[upstream]` values a zone inherits when it sets none.
pub(super) fn parse(
    raw: Vec<RawForwardZone>,
    timeout: Duration,
    attempts: u32,
) -> Result<Vec<ForwardZone>, ConfigError> {
    let mut out: Vec<ForwardZone> = Vec::with_capacity(raw.len());
    for (i, z) in raw.into_iter().enumerate() {
        let written = z
            .suffix
            .ok_or_else(|| at(i, "suffix", "(missing)", "every zone needs a suffix"))?;
        // Host-name characters only (RFC 952/1123, plus `_` for service
        // labels): a space or a stray quote is a typo, not a zone.
        if let Some(c) = written
            .trim()
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(at(
                i,
                "suffix",
                &written,
                format!("{c:?} in a zone name (labels hold letters, digits, '-' and '_')"),
            ));
        }
        let suffix = normalize_suffix(&written).map_err(|r| at(i, "suffix", &written, r))?;
        if suffix == "." {
            return Err(at(
                i,
                "suffix",
                &written,
                "the root is upstream.servers; a zone is a suffix below it",
            ));
        }
        if let Some(j) = out.iter().position(|o| o.suffix == suffix) {
            return Err(at(
                i,
                "suffix",
                &written,
                format!("listed twice (also upstream.zone[{j}])"),
            ));
        }
        let list = z.servers.unwrap_or_default();
        if list.is_empty() {
            return Err(at(
                i,
                "servers",
                "[]",
                "at least one upstream server is needed",
            ));
        }
        let mut servers = Vec::with_capacity(list.len());
        let mut tls_names = BTreeMap::new();
        for v in &list {
            let (addr, name) = parse_server(v.trim()).map_err(|r| at(i, "servers", v, r))?;
            if servers.contains(&addr) {
                return Err(at(i, "servers", v, "listed twice"));
            }
            if let Some(name) = name {
                tls_names.insert(addr, name);
            }
            servers.push(addr);
        }
        let timeout = match z.timeout {
            None => timeout,
            Some(Seconds(d)) if !d.is_zero() => d,
            Some(Seconds(d)) => {
                return Err(at(
                    i,
                    "timeout",
                    format!("{d:?}"),
                    "must be greater than zero",
                ));
            }
        };
        let attempts = match z.attempts {
            None => attempts,
            Some(n) if (1..=u64::from(MAX_UPSTREAM_ATTEMPTS)).contains(&n) => n as u32,
            Some(n) => return Err(at(i, "attempts", n, "must be 1..=10")),
        };
        out.push(ForwardZone {
            suffix,
            servers,
            tls_names,
            timeout,
            attempts,
        });
    }
    Ok(out)
}
