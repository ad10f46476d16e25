//! Policy: who is asking and what they get. Synchronous; runs after `wire`
//! has validated the query and before anything goes upstream.
//!
//! Data path position: `wire → policy → upstream`.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::{Config, FilterA, canonical_ip};

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

/// The per-query decision inputs, built once per config.
#[derive(Debug, Clone)]
pub struct Policy {
    allow: Vec<IpNet>,
    clients: Vec<IpNet>,
    filter_a: FilterA,
}

impl Policy {
    /// Builds the policy from the typed config.
    pub fn new(cfg: &Config) -> Policy {
        Policy {
            allow: cfg.server.allow.clone(),
            clients: cfg.dns64.clients.clone(),
            filter_a: cfg.filter.a,
        }
    }

    /// Classifies a client by source address (IPv4-mapped sources from a
    /// dual-stack socket count as IPv4).
    pub fn classify(&self, src: IpAddr) -> Treatment {
        let src = canonical_ip(src);
        if !self.allow.iter().any(|n| n.contains(&src)) {
            Treatment::Refuse
        } else if self.clients.iter().any(|n| n.contains(&src)) {
            Treatment::Dns64
        } else {
            Treatment::Plain
        }
    }

    /// `filter.a` for DNS64 clients.
    pub fn filter_a(&self) -> FilterA {
        self.filter_a
    }
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
}
