//! glibc's `/etc/gai.conf`: `label`, `precedence` and `scopev4` lines that
//! replace the built-in RFC 6724 tables (gai.conf(5)). Pure.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use super::*;

impl PolicyTable {
    /// glibc's table after reading an `/etc/gai.conf`: each kind of line
    /// (`label`, `precedence`, `scopev4`) that appears replaces that whole
    /// built-in table; `::/0` (label 1, precedence 40, scope 14) is added when
    /// the file gives no catch-all. Lines glibc would ignore are returned as
    /// notes.
    pub fn glibc_with_gai_conf(text: &str) -> (Self, Vec<String>) {
        let mut table = PolicyTable::glibc();
        let (mut labels, mut precs, mut scopes) = (Vec::new(), Vec::new(), Vec::new());
        let mut notes = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            let mut words = line.split_whitespace();
            let (Some(cmd), Some(v1)) = (words.next(), words.next()) else {
                continue;
            };
            let v2 = words.next().and_then(|v| v.parse::<u32>().ok());
            let bad = |what: &str| format!("/etc/gai.conf line {}: {what}: {line:?}", n + 1);
            match cmd {
                "label" | "precedence" => match (parse_net6(v1), v2) {
                    (Some(net), Some(v)) if cmd == "label" => labels.push((net, v)),
                    (Some(net), Some(v)) => precs.push((net, v)),
                    _ => notes.push(bad("ignored, as glibc does")),
                },
                "scopev4" => match (parse_scopev4(v1), v2) {
                    (Some(net), Some(v)) if v <= 15 => scopes.push((net, v as u8)),
                    _ => notes.push(bad("ignored, as glibc does")),
                },
                "reload" => {}
                _ => notes.push(bad("unknown keyword, ignored")),
            }
        }
        if !labels.is_empty() {
            if !labels.iter().any(|(n, _)| n.prefix_len() == 0) {
                labels.push((net6("::/0"), 1));
            }
            table.label = labels;
        }
        if !precs.is_empty() {
            if !precs.iter().any(|(n, _)| n.prefix_len() == 0) {
                precs.push((net6("::/0"), 40));
            }
            table.precedence = precs;
        }
        if !scopes.is_empty() {
            table.scopev4 = scopes;
        }
        (table, notes)
    }
}

pub(super) fn parse_net6(s: &str) -> Option<Ipv6Net> {
    match s.split_once('/') {
        Some(_) => s.parse().ok(),
        None => s.parse::<Ipv6Addr>().ok().map(Ipv6Net::from),
    }
}

/// `scopev4` takes `::ffff:a.b.c.d/96..128` or plain `a.b.c.d/0..32`.
pub(super) fn parse_scopev4(s: &str) -> Option<Ipv4Net> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().ok()?)),
        None => (s, None),
    };
    if let Ok(v6) = addr.parse::<Ipv6Addr>() {
        let v4 = v6.to_ipv4_mapped()?;
        let len = len.unwrap_or(128);
        if !(96..=128).contains(&len) {
            return None;
        }
        return Ipv4Net::new(v4, len - 96).ok().map(|n| n.trunc());
    }
    let v4 = addr.parse::<Ipv4Addr>().ok()?;
    Ipv4Net::new(v4, len.unwrap_or(32)).ok().map(|n| n.trunc())
}
