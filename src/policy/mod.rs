//! Policy: who is asking and what they get. Synchronous; runs after `wire`
//! has validated the query and before anything goes upstream.
//!
//! Two decisions: the client's [`Treatment`] (from its address, or from the
//! EDNS Client Subnet a trusted forwarder adds, RFC 7871), and the [`Rules`]
//! for the query name (longest `[[dns64.zone]]` suffix, SPEC §3.9). Zone
//! matching runs on the wire-format name: no allocation per query.
//!
//! Data path position: `wire → policy → upstream`.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::Config;
use crate::types::{FilterA, Order, Prefix, PtrMode, ZonePolicy, canonical_ip};
use crate::wire::Query;

/// What a client gets (SPEC §1, §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// Outside `server.allow`: REFUSED, never forwarded.
    Refuse,
    /// Not a DNS64 client: plain forwarding.
    Plain,
    /// A DNS64 client: synthesis and A filtering.
    Dns64,
}

/// The rules that apply to one query name.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// The zone policy (`native` when no zone matches).
    pub policy: ZonePolicy,
    /// Prefixes to synthesize under, in order.
    pub prefixes: &'a [Prefix],
    /// What happens to A records.
    pub filter_a: FilterA,
    /// Order of AAAA groups under `both`.
    pub order: Order,
    /// The matching zone suffix, for `check-config --explain`.
    pub zone: Option<&'a str>,
    /// 0 without a zone, else 1 + the zone's position: part of the cache key.
    pub zone_index: u16,
}

#[derive(Debug, Clone)]
struct Zone {
    /// Lower-case wire form of the suffix, root label included.
    wire: Vec<u8>,
    suffix: String,
    policy: ZonePolicy,
    prefixes: Option<Vec<Prefix>>,
    filter_a: Option<FilterA>,
}

/// The per-query decision inputs, built once per config.
#[derive(Debug, Clone)]
pub struct Policy {
    allow: Vec<IpNet>,
    clients: Vec<IpNet>,
    trusted_forwarders: Vec<IpNet>,
    prefixes: Vec<Prefix>,
    filter_a: FilterA,
    order: Order,
    ptr: PtrMode,
    zones: Vec<Zone>,
}

impl Policy {
    /// Builds the policy from the typed config.
    pub fn new(cfg: &Config) -> Policy {
        Policy {
            allow: cfg.server.allow.clone(),
            clients: cfg.dns64.clients.clone(),
            trusted_forwarders: cfg.server.trusted_forwarders.clone(),
            prefixes: cfg.dns64.prefixes.to_vec(),
            filter_a: cfg.filter.a,
            order: cfg.dns64.order,
            ptr: cfg.dns64.ptr,
            zones: cfg
                .dns64
                .zone
                .iter()
                .map(|z| Zone {
                    wire: to_wire(&z.suffix),
                    suffix: z.suffix.clone(),
                    policy: z.policy,
                    prefixes: z.prefixes.clone(),
                    filter_a: z.filter_a,
                })
                .collect(),
        }
    }

    /// The address policy applies to: the ECS address when a trusted
    /// forwarder sent one (SPEC §1), else the source (IPv4-mapped sources
    /// from a dual-stack socket count as IPv4).
    pub fn client_ip(&self, src: IpAddr, query: &Query<'_>) -> IpAddr {
        let src = canonical_ip(src);
        match query.edns.and_then(|e| e.ecs) {
            Some(ecs) if self.trusted_forwarders.iter().any(|n| n.contains(&src)) => {
                canonical_ip(ecs.addr)
            }
            _ => src,
        }
    }

    /// Classifies a client by address (see [`Policy::client_ip`]).
    pub fn classify(&self, client: IpAddr) -> Treatment {
        let client = canonical_ip(client);
        if !self.allow.iter().any(|n| n.contains(&client)) {
            Treatment::Refuse
        } else if self.clients.iter().any(|n| n.contains(&client)) {
            Treatment::Dns64
        } else {
            Treatment::Plain
        }
    }

    /// The rules for a wire-format, uncompressed query name: the longest
    /// zone suffix that matches on a label boundary, case-insensitively.
    pub fn rules(&self, qname: &[u8]) -> Rules<'_> {
        let found = self.longest_zone(qname);
        let zone = found.map(|(_, z)| z);
        Rules {
            zone_index: found.map_or(0, |(i, _)| i as u16 + 1),
            policy: zone.map_or(ZonePolicy::Native, |z| z.policy),
            prefixes: zone
                .and_then(|z| z.prefixes.as_deref())
                .unwrap_or(&self.prefixes),
            filter_a: zone.and_then(|z| z.filter_a).unwrap_or(self.filter_a),
            order: self.order,
            zone: zone.map(|z| z.suffix.as_str()),
        }
    }

    fn longest_zone(&self, qname: &[u8]) -> Option<(usize, &Zone)> {
        if self.zones.is_empty() {
            return None;
        }
        let mut pos = 0;
        // Label starts from the left: the first match is the longest suffix.
        while pos < qname.len() {
            let tail = &qname[pos..];
            if let Some(found) = self
                .zones
                .iter()
                .enumerate()
                .find(|(_, z)| z.wire.eq_ignore_ascii_case(tail))
            {
                return Some(found);
            }
            if qname[pos] == 0 {
                break;
            }
            pos += usize::from(qname[pos]) + 1;
        }
        None
    }

    /// `dns64.ptr`.
    pub fn ptr(&self) -> PtrMode {
        self.ptr
    }

    /// Every prefix any rule may synthesize under (global, then zone
    /// overrides): PTR names and ipv4only.arpa answer for all of them.
    pub fn all_prefixes(&self) -> Vec<Prefix> {
        let mut out = self.prefixes.clone();
        for p in self
            .zones
            .iter()
            .filter_map(|z| z.prefixes.as_ref())
            .flatten()
        {
            if !out.contains(p) {
                out.push(*p);
            }
        }
        out
    }
}

/// What `check-config --explain NAME` prints: the rules a DNS64 client's
/// queries for `name` get, and who counts as a DNS64 client.
pub fn explain(cfg: &Config, name: &str) -> Result<String, String> {
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    if name.trim().is_empty()
        || labels.iter().any(|l| l.is_empty() || l.len() > 63)
        || name.len() > 254
    {
        return Err("not a domain name".into());
    }
    let policy = Policy::new(cfg);
    let r = policy.rules(&to_wire(name));
    let prefixes: Vec<String> = r.prefixes.iter().map(|p| p.to_string()).collect();
    let clients: Vec<String> = cfg.dns64.clients.iter().map(|n| n.to_string()).collect();
    let mut out = String::new();
    let fqdn = format!("{}.", name.trim_end_matches('.'));
    out.push_str(&format!("name:        {fqdn}\n"));
    out.push_str(&format!(
        "zone rule:   {}\n",
        r.zone.unwrap_or("(none: global rules)")
    ));
    out.push_str(&format!("policy:      {}\n", key_name(r.policy)));
    if r.policy != ZonePolicy::Off {
        out.push_str(&format!("prefixes:    {}\n", prefixes.join(", ")));
        out.push_str(&format!("filter.a:    {}\n", key_name(r.filter_a)));
        if r.policy == ZonePolicy::Both {
            out.push_str(&format!("order:       {}\n", key_name(r.order)));
        }
    }
    out.push_str(&format!(
        "applies to:  DNS64 clients ({}); other clients get plain forwarding\n",
        clients.join(", ")
    ));
    Ok(out)
}

/// A config enum as it is written in the file (`synthesized-first`).
fn key_name<T: serde::Serialize + std::fmt::Debug>(v: T) -> String {
    match toml::Value::try_from(&v) {
        Ok(toml::Value::String(s)) => s,
        _ => format!("{v:?}"),
    }
}

/// `corp.example.` → `\x04corp\x07example\x00` (lower case).
pub fn to_wire(fqdn: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(fqdn.len() + 1);
    for label in fqdn
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(extra: &str) -> Policy {
        Policy::new(
            &Config::from_toml(&format!("[upstream]\nservers=[\"127.0.0.1\"]\n{extra}")).unwrap(),
        )
    }

    #[test]
    fn default_acl_refuses_public_sources_and_serves_private_ones() {
        let p = policy("");
        assert_eq!(
            p.classify("203.0.113.7".parse().unwrap()),
            Treatment::Refuse
        );
        assert_eq!(
            p.classify("2001:db8::7".parse().unwrap()),
            Treatment::Refuse
        );
        assert_eq!(
            p.classify("10.1.2.3".parse().unwrap()),
            Treatment::Plain,
            "IPv4 is not a DNS64 client by default"
        );
        assert_eq!(
            p.classify("fd00::7".parse().unwrap()),
            Treatment::Dns64,
            "every IPv6 source is"
        );
    }

    #[test]
    fn ipv4_mapped_sources_are_classified_as_ipv4() {
        let p = policy("[dns64]\nclients=[\"127.0.0.0/8\"]\n");
        assert_eq!(
            p.classify("::ffff:127.0.0.1".parse().unwrap()),
            Treatment::Dns64
        );
    }

    const ZONES: &str = r#"
[[dns64.zone]]
suffix = "corp.example."
policy = "both"
[[dns64.zone]]
suffix = "LEGACY.corp.example"
policy = "synthesize"
prefixes = ["2001:db8:64::/96"]
filter_a = "pass"
[[dns64.zone]]
suffix = "cluster.local."
policy = "off"
"#;

    #[test]
    fn longest_zone_suffix_wins_on_label_boundaries_ignoring_case() {
        let p = policy(ZONES);
        assert_eq!(
            p.rules(&to_wire("a.corp.example.")).policy,
            ZonePolicy::Both
        );
        assert_eq!(
            p.rules(b"\x01A\x06LEGACY\x04Corp\x07example\x00").policy,
            ZonePolicy::Synthesize
        );
        assert_eq!(
            p.rules(&to_wire("corp.example.")).zone,
            Some("corp.example.")
        );
        assert_eq!(
            p.rules(&to_wire("xcorp.example.")).policy,
            ZonePolicy::Native,
            "not a label boundary"
        );
        assert_eq!(
            p.rules(&to_wire("svc.cluster.local.")).policy,
            ZonePolicy::Off
        );
    }

    #[test]
    fn explain_names_the_zone_rule_and_its_settings() {
        let c =
            Config::from_toml(&format!("[upstream]\nservers=[\"127.0.0.1\"]\n{ZONES}")).unwrap();
        let text = explain(&c, "api.legacy.corp.example").unwrap();
        assert!(text.contains("zone rule:   legacy.corp.example."), "{text}");
        assert!(text.contains("policy:      synthesize"), "{text}");
        assert!(text.contains("2001:db8:64::/96"), "{text}");
        assert!(text.contains("filter.a:    pass"), "{text}");
        assert!(explain(&c, "a..b").is_err());
    }

    #[test]
    fn zone_overrides_prefixes_and_filter_a() {
        let p = policy(ZONES);
        let r = p.rules(&to_wire("x.legacy.corp.example."));
        assert_eq!(r.prefixes[0].to_string(), "2001:db8:64::/96");
        assert_eq!(r.filter_a, FilterA::Pass);
        let d = p.rules(&to_wire("x.example."));
        assert_eq!(d.prefixes[0].to_string(), "64:ff9b::/96");
        assert_eq!(d.filter_a, FilterA::Strip);
        assert_eq!(p.all_prefixes().len(), 2);
    }
}
