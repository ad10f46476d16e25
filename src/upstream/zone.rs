//! Per-zone forwarding (`[[upstream.zone]]`): each zone is an upstream
//! group of its own ([`Upstream`]: pool, health, failover), and a query goes
//! to the group of the longest suffix its question name ends in, on label
//! boundaries and ignoring case (RFC 4343); a name no zone covers goes to
//! the default group (`upstream.servers`). The same rule as CoreDNS's
//! server blocks, Unbound's `forward-zone` and NodeLocal DNSCache's
//! `cluster.local` → kube-dns.
//!
//! The receive loops' relays serve the default group only; queries for a
//! zone's names run as tasks (`Pipeline::relayable` sends them there).
//! Matching runs on the wire-format name and allocates nothing.

use std::fmt::Write as _;

use super::{Reply, Resume, Upstream, UpstreamError};
use crate::config::{Config, UpstreamConfig};
use crate::metrics::Metrics;
use crate::policy::to_wire;
use crate::wire::{self, HEADER_LEN};

/// The index of the longest of `suffixes` (lower-case wire names, root
/// label included) that `qname` (an uncompressed wire name) ends in on a
/// label boundary, ignoring ASCII case; `None` when none does.
///
/// Walks `qname`'s label starts left to right: the first suffix found is
/// the longest. Length octets are below 64, so comparing them ignoring
/// case cannot confuse them with letters.
pub fn longest_suffix<S: AsRef<[u8]>>(qname: &[u8], suffixes: &[S]) -> Option<usize> {
    if suffixes.is_empty() {
        return None;
    }
    let mut pos = 0;
    while pos < qname.len() {
        let tail = &qname[pos..];
        if let Some(i) = suffixes
            .iter()
            .position(|s| s.as_ref().eq_ignore_ascii_case(tail))
        {
            return Some(i);
        }
        let len = usize::from(qname[pos]);
        // The root label, or a compression pointer (never in a question we
        // send): nothing shorter to try.
        if len == 0 || len > 63 {
            break;
        }
        pos += len + 1;
    }
    None
}

#[derive(Debug)]
struct Zone {
    /// Lower-case wire form of the suffix.
    wire: Box<[u8]>,
    upstream: Upstream,
}

impl AsRef<[u8]> for Zone {
    fn as_ref(&self) -> &[u8] {
        &self.wire
    }
}

/// Every upstream group of a config: the default one and one per
/// `[[upstream.zone]]`, picked per question name.
#[derive(Debug)]
pub struct Upstreams {
    default: Upstream,
    zones: Vec<Zone>,
}

impl Upstreams {
    /// The groups of `cfg`.
    pub fn new(cfg: &UpstreamConfig, metrics: &Metrics) -> Upstreams {
        Upstreams {
            default: Upstream::new(cfg, metrics),
            zones: cfg
                .zones
                .iter()
                .map(|z| Zone {
                    wire: to_wire(&z.suffix).into(),
                    upstream: Upstream::group(cfg, z, metrics),
                })
                .collect(),
        }
    }

    /// The default group (`upstream.servers`): the one the relays serve.
    pub fn default_group(&self) -> &Upstream {
        &self.default
    }

    /// True when `qname` (wire form) falls into a `[[upstream.zone]]`.
    #[inline]
    pub fn in_zone(&self, qname: &[u8]) -> bool {
        longest_suffix(qname, &self.zones).is_some()
    }

    /// The group `qname` (wire form) goes to.
    pub fn for_name(&self, qname: &[u8]) -> &Upstream {
        match longest_suffix(qname, &self.zones) {
            Some(i) => &self.zones[i].upstream,
            None => &self.default,
        }
    }

    /// The group the question of `query` goes to (the default one for a
    /// packet without a readable question: its exchange fails anyway).
    fn for_query(&self, query: &[u8]) -> &Upstream {
        match wire::question_end(query) {
            Ok(end) if !self.zones.is_empty() => self.for_name(&query[HEADER_LEN..end - 4]),
            _ => &self.default,
        }
    }

    /// [`Upstream::query`] on the group of `query`'s question name.
    pub async fn query(&self, query: &[u8]) -> Result<Reply, UpstreamError> {
        self.for_query(query).query(query).await
    }

    /// [`Upstream::query_from`] on the group of `query`'s question name.
    pub async fn query_from(&self, query: &[u8], resume: Resume) -> Result<Reply, UpstreamError> {
        self.for_query(query).query_from(query, resume).await
    }

    /// Probes every group ([`Upstream::probe`]); true only when each has a
    /// server that answered: with a zone's servers all dead, its names
    /// cannot resolve, so the node is not ready (`/ready`).
    pub async fn probe(&self) -> bool {
        let mut all = self.default.probe().await;
        for z in &self.zones {
            all &= z.upstream.probe().await;
        }
        all
    }
}

/// The forwarding lines of `check-config --explain NAME`: the zone `name`
/// falls into and its servers. `name` is a valid domain name (the caller
/// checked).
pub fn explain(cfg: &Config, name: &str) -> String {
    let u = &cfg.upstream;
    let wires: Vec<Vec<u8>> = u.zones.iter().map(|z| to_wire(&z.suffix)).collect();
    let (zone, key) = match longest_suffix(&to_wire(name), &wires) {
        Some(i) => (u.zones[i].clone(), format!("upstream.zone[{i}]")),
        None => (u.default_zone(), "upstream.servers".to_owned()),
    };
    let mut out = String::new();
    let _ = writeln!(out, "forward zone: {} ({key})", zone.suffix);
    let _ = writeln!(
        out,
        "servers:     {} (timeout {:?}, attempts {})",
        zone.server_names().join(", "),
        zone.timeout,
        zone.attempts
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> Vec<Vec<u8>> {
        names.iter().map(|n| to_wire(n)).collect()
    }

    #[test]
    fn the_longest_matching_suffix_wins() {
        let s = set(&["local.", "cluster.local.", "svc.cluster.local."]);
        assert_eq!(
            longest_suffix(&to_wire("a.svc.cluster.local."), &s),
            Some(2)
        );
        assert_eq!(
            longest_suffix(&to_wire("a.pod.cluster.local."), &s),
            Some(1)
        );
        assert_eq!(longest_suffix(&to_wire("other.local."), &s), Some(0));
    }

    #[test]
    fn the_suffix_itself_matches() {
        let s = set(&["cluster.local."]);
        assert_eq!(longest_suffix(&to_wire("cluster.local."), &s), Some(0));
    }

    #[test]
    fn a_suffix_matches_only_on_a_label_boundary() {
        let s = set(&["cluster.local."]);
        assert_eq!(longest_suffix(&to_wire("notcluster.local."), &s), None);
        assert_eq!(longest_suffix(&to_wire("local."), &s), None);
        assert_eq!(longest_suffix(&to_wire("cluster.local.example."), &s), None);
    }

    #[test]
    fn matching_ignores_ascii_case() {
        let s = set(&["cluster.local."]);
        assert_eq!(
            longest_suffix(b"\x03Web\x07CLUSTER\x05Local\x00", &s),
            Some(0)
        );
    }

    #[test]
    fn no_suffixes_and_the_root_name_match_nothing() {
        let none: Vec<Vec<u8>> = Vec::new();
        assert_eq!(longest_suffix(&to_wire("a.example."), &none), None);
        assert_eq!(longest_suffix(b"\x00", &set(&["example."])), None);
    }

    #[test]
    fn a_truncated_or_compressed_name_is_read_safely() {
        let s = set(&["example."]);
        assert_eq!(longest_suffix(b"\x05ab", &s), None);
        assert_eq!(longest_suffix(b"\xc0\x0c", &s), None);
        assert_eq!(longest_suffix(b"", &s), None);
    }
}
