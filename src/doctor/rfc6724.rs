//! RFC 6724 destination address selection as glibc and musl implement it:
//! the policy tables, scopes, source selection (§5) and the three sorts
//! (§6: the RFC itself, glibc's `rfc3484_sort`, musl's one-key sort). Pure.

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// Whose destination address selection to reproduce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// RFC 6724 §6 as written (rule 7 aside).
    Rfc6724,
    /// glibc's `rfc3484_sort`.
    Glibc,
    /// musl's `__lookup_name` sort key.
    Musl,
}

/// A policy table (RFC 6724 §2.1) plus glibc's IPv4 scope table (§3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyTable {
    /// (prefix, precedence), looked up by longest match; IPv4 as `::ffff:a.b.c.d`.
    pub precedence: Vec<(Ipv6Net, u32)>,
    /// (prefix, label), looked up by longest match.
    pub label: Vec<(Ipv6Net, u32)>,
    /// IPv4 scopes (glibc's `scopev4`), longest match; others are global (14).
    pub scopev4: Vec<(Ipv4Net, u8)>,
}

pub(super) fn net6(s: &str) -> Ipv6Net {
    // Only called on the literal tables below.
    s.parse().expect("a valid literal prefix")
}

pub(super) fn net4(s: &str) -> Ipv4Net {
    s.parse().expect("a valid literal prefix")
}

/// RFC 6724 §3.2: 169.254/16 and 127/8 are link-local, all other IPv4 global.
pub(super) fn default_scopev4() -> Vec<(Ipv4Net, u8)> {
    vec![(net4("169.254.0.0/16"), 2), (net4("127.0.0.0/8"), 2)]
}

impl PolicyTable {
    /// The default policy table of RFC 6724 §2.1.
    pub fn rfc6724() -> Self {
        let rows = [
            ("::1/128", 50, 0),
            ("::/0", 40, 1),
            ("::ffff:0:0/96", 35, 4),
            ("2002::/16", 30, 2),
            ("2001::/32", 5, 5),
            ("fc00::/7", 3, 13),
            ("::/96", 1, 3),
            ("fec0::/10", 1, 11),
            ("3ffe::/16", 1, 12),
        ];
        Self::from_rows(&rows)
    }

    /// musl's table: RFC 6724 without the deprecated ::/96, fec0::/10 and 3ffe::/16 rows.
    pub fn musl() -> Self {
        let rows = [
            ("::1/128", 50, 0),
            ("::ffff:0:0/96", 35, 4),
            ("2002::/16", 30, 2),
            ("2001::/32", 5, 5),
            ("fc00::/7", 3, 13),
            ("::/0", 40, 1),
        ];
        Self::from_rows(&rows)
    }

    /// glibc's built-in tables: RFC 3484 precedences (IPv4 is 10, below every
    /// IPv6 row but ::/96) and RFC 3484 labels plus fc00::/7, fec0::/10 and
    /// Teredo's 2001::/32.
    pub fn glibc() -> Self {
        PolicyTable {
            precedence: vec![
                (net6("::1/128"), 50),
                (net6("2002::/16"), 30),
                (net6("::/96"), 20),
                (net6("::ffff:0:0/96"), 10),
                (net6("::/0"), 40),
            ],
            label: vec![
                (net6("::1/128"), 0),
                (net6("2002::/16"), 2),
                (net6("::/96"), 3),
                (net6("::ffff:0:0/96"), 4),
                (net6("fec0::/10"), 5),
                (net6("fc00::/7"), 6),
                (net6("2001::/32"), 7),
                (net6("::/0"), 1),
            ],
            scopev4: default_scopev4(),
        }
    }

    fn from_rows(rows: &[(&str, u32, u32)]) -> Self {
        PolicyTable {
            precedence: rows.iter().map(|r| (net6(r.0), r.1)).collect(),
            label: rows.iter().map(|r| (net6(r.0), r.2)).collect(),
            scopev4: default_scopev4(),
        }
    }

    /// Precedence of an address (RFC 6724 §2.1; IPv4 as IPv4-mapped).
    pub fn precedence_of(&self, a: IpAddr) -> u32 {
        longest(&self.precedence, &as_v6(a)).unwrap_or(0)
    }

    /// Label of an address.
    pub fn label_of(&self, a: IpAddr) -> u32 {
        longest(&self.label, &as_v6(a)).unwrap_or(u32::MAX)
    }
}

pub(super) fn longest<T: Copy>(rows: &[(Ipv6Net, T)], a: &Ipv6Addr) -> Option<T> {
    rows.iter()
        .filter(|(n, _)| n.contains(a))
        .max_by_key(|(n, _)| n.prefix_len())
        .map(|(_, v)| *v)
}

pub(super) fn as_v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Scope (RFC 6724 §3.1, §3.2): 2 link-local, 5 site-local, 14 global.
pub fn scope_of(a: IpAddr, flavour: Flavour, table: &PolicyTable) -> u8 {
    match a {
        IpAddr::V4(v4) => match flavour {
            // musl asks scopeof(::ffff:a.b.c.d), which is never link-local.
            Flavour::Musl => 14,
            Flavour::Glibc | Flavour::Rfc6724 => table
                .scopev4
                .iter()
                .filter(|(n, _)| n.contains(&v4))
                .max_by_key(|(n, _)| n.prefix_len())
                .map(|(_, s)| *s)
                .unwrap_or(14),
        },
        IpAddr::V6(v6) => {
            let o = v6.octets();
            if o[0] == 0xff {
                o[1] & 0x0f
            } else if v6.is_loopback() || (o[0] == 0xfe && o[1] & 0xc0 == 0x80) {
                2
            } else if o[0] == 0xfe && o[1] & 0xc0 == 0xc0 {
                5
            } else if let (Flavour::Rfc6724, Some(v4)) = (flavour, v6.to_ipv4_mapped()) {
                scope_of(IpAddr::V4(v4), flavour, table)
            } else {
                14
            }
        }
    }
}

/// Common leading bits of two addresses of one family.
pub(super) fn common_bits(a: IpAddr, b: IpAddr) -> u32 {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (a.to_bits() ^ b.to_bits()).leading_zeros(),
        (a, b) => (as_v6(a).to_bits() ^ as_v6(b).to_bits()).leading_zeros(),
    }
}

// ------------------------------------------------------------------ sources

/// A source address the pod would use for a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub addr: IpAddr,
    /// On-link prefix length, when known (RFC 6724 CommonPrefixLen, glibc's IPv4 rule 9).
    pub prefix_len: Option<u8>,
    pub deprecated: bool,
    pub home: bool,
    pub care_of: bool,
}

impl Source {
    pub fn new(addr: IpAddr) -> Self {
        Source {
            addr,
            prefix_len: None,
            deprecated: false,
            home: false,
            care_of: false,
        }
    }

    /// Parses `ADDR` or `ADDR/LEN`.
    pub fn parse(s: &str) -> Option<Self> {
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len.is_some_and(|l| l > max) {
            return None;
        }
        Some(Source {
            prefix_len: len,
            ..Source::new(addr)
        })
    }
}

/// RFC 6724 §5 source address selection among candidates of the
/// destination's family (rules 1, 2, 3, 4, 6 and 8; no interfaces, no
/// temporary addresses). `None` when no candidate has that family.
pub fn select_source(dest: IpAddr, candidates: &[Source], table: &PolicyTable) -> Option<Source> {
    let f = Flavour::Rfc6724;
    let ds = scope_of(dest, f, table);
    let dl = table.label_of(dest);
    let better = |a: &Source, b: &Source| -> Ordering {
        // Rule 1: prefer the same address.
        if a.addr == dest || b.addr == dest {
            return (b.addr == dest).cmp(&(a.addr == dest));
        }
        // Rule 2: prefer appropriate scope.
        let (sa, sb) = (scope_of(a.addr, f, table), scope_of(b.addr, f, table));
        if sa != sb {
            return if sa < sb {
                if sa < ds {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            } else if sb < ds {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        // Rule 3: avoid deprecated addresses.
        if a.deprecated != b.deprecated {
            return a.deprecated.cmp(&b.deprecated);
        }
        // Rule 4: prefer home addresses.
        let home = |s: &Source| match (s.home, s.care_of) {
            (true, true) => 2,
            (true, false) => 1,
            _ => 0,
        };
        if home(a) != home(b) {
            return home(b).cmp(&home(a));
        }
        // Rule 6: prefer matching label.
        let (la, lb) = (table.label_of(a.addr) == dl, table.label_of(b.addr) == dl);
        if la != lb {
            return lb.cmp(&la);
        }
        // Rule 8: longest matching prefix.
        common_bits(b.addr, dest).cmp(&common_bits(a.addr, dest))
    };
    candidates
        .iter()
        .filter(|s| s.addr.is_ipv4() == dest.is_ipv4())
        .min_by(|a, b| better(a, b))
        .cloned()
}

// ------------------------------------------------------------------ sorting

/// One destination with the source the system would use for it (`None`:
/// unusable, no route).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dest {
    pub addr: IpAddr,
    pub source: Option<Source>,
}

/// Sorts destinations the way `flavour` does; returns the sorted list.
/// `dests` is in the order the libc collected them (its rule 10 tiebreak).
pub fn sort_destinations(dests: &[Dest], flavour: Flavour, table: &PolicyTable) -> Vec<Dest> {
    let mut idx: Vec<usize> = (0..dests.len()).collect();
    match flavour {
        Flavour::Musl => {
            // musl returns the answers unsorted when fewer than two or all IPv4.
            if dests.len() < 2 || dests.iter().all(|d| d.addr.is_ipv4()) {
                return dests.to_vec();
            }
            idx.sort_by_key(|&i| std::cmp::Reverse(musl_key(&dests[i], i, table)));
        }
        Flavour::Glibc | Flavour::Rfc6724 => {
            if dests.len() > 1 {
                idx.sort_by(|&a, &b| compare(&dests[a], &dests[b], flavour, table).then(a.cmp(&b)));
            }
        }
    }
    idx.into_iter().map(|i| dests[i].clone()).collect()
}

/// musl's 31-bit key: usable, matching scope, matching label, precedence,
/// smaller scope, common prefix (on IPv4-mapped addresses for IPv4), order.
pub(super) fn musl_key(d: &Dest, i: usize, table: &PolicyTable) -> u32 {
    const MAXADDRS: u32 = 48;
    let f = Flavour::Musl;
    let dscope = u32::from(scope_of(d.addr, f, table));
    let mut key = table.precedence_of(d.addr) << 20;
    key |= (15 - dscope.min(15)) << 16;
    key |= MAXADDRS.saturating_sub(i as u32);
    if let Some(s) = &d.source {
        key |= 0x4000_0000;
        if u32::from(scope_of(s.addr, f, table)) == dscope {
            key |= 0x2000_0000;
        }
        if table.label_of(s.addr) == table.label_of(d.addr) {
            key |= 0x1000_0000;
        }
        key |= common_bits(IpAddr::V6(as_v6(s.addr)), IpAddr::V6(as_v6(d.addr))) << 8;
    }
    key
}

/// RFC 6724 §6 pairwise comparison, rules 1–6 and 8–9 (Less: `a` first), with
/// glibc's variations when `flavour` is `Glibc`.
pub(super) fn compare(a: &Dest, b: &Dest, flavour: Flavour, table: &PolicyTable) -> Ordering {
    // Rule 1: avoid unusable destinations.
    let (sa, sb) = match (&a.source, &b.source) {
        (Some(_), None) => return Ordering::Less,
        (None, Some(_)) => return Ordering::Greater,
        (Some(sa), Some(sb)) => (Some(sa), Some(sb)),
        (None, None) => (None, None),
    };
    let scope = |x: IpAddr| scope_of(x, flavour, table);
    let (ds_a, ds_b) = (scope(a.addr), scope(b.addr));
    if let (Some(sa), Some(sb)) = (sa, sb) {
        // Rule 2: prefer matching scope.
        let (ma, mb) = (ds_a == scope(sa.addr), ds_b == scope(sb.addr));
        if ma != mb {
            return mb.cmp(&ma);
        }
        // Rule 3: avoid deprecated addresses.
        if sa.deprecated != sb.deprecated {
            return sa.deprecated.cmp(&sb.deprecated);
        }
        // Rule 4: prefer home addresses (glibc looks at the home flag only).
        let home = |s: &Source| match (flavour, s.home, s.care_of) {
            (Flavour::Glibc, h, _) => u8::from(h),
            (_, true, true) => 2,
            (_, true, false) => 1,
            _ => 0,
        };
        if home(sa) != home(sb) {
            return home(sb).cmp(&home(sa));
        }
        // Rule 5: prefer matching label.
        let la = table.label_of(sa.addr) == table.label_of(a.addr);
        let lb = table.label_of(sb.addr) == table.label_of(b.addr);
        if la != lb {
            return lb.cmp(&la);
        }
    }
    // Rule 6: prefer higher precedence.
    let (pa, pb) = (table.precedence_of(a.addr), table.precedence_of(b.addr));
    if pa != pb {
        return pb.cmp(&pa);
    }
    // Rule 7 (native transport) is not modelled. Rule 8: prefer smaller scope.
    if ds_a != ds_b {
        return ds_a.cmp(&ds_b);
    }
    // Rule 9: longest matching prefix, same family only.
    if let (Some(sa), Some(sb)) = (sa, sb)
        && a.addr.is_ipv4() == b.addr.is_ipv4()
    {
        let cpl = |d: IpAddr, s: &Source| -> u32 {
            let bits = common_bits(s.addr, d);
            match (flavour, d) {
                // glibc: only meaningful inside the source's subnet.
                (Flavour::Glibc, IpAddr::V4(_)) => match s.prefix_len {
                    Some(len) if bits >= u32::from(len) => bits,
                    _ => 0,
                },
                (Flavour::Glibc, IpAddr::V6(_)) => bits,
                // RFC 6724 §2.2: up to the length of the source's prefix.
                (_, IpAddr::V4(_)) => bits.min(u32::from(s.prefix_len.unwrap_or(32))),
                (_, IpAddr::V6(_)) => bits.min(u32::from(s.prefix_len.unwrap_or(64))),
            }
        };
        let (ca, cb) = (cpl(a.addr, sa), cpl(b.addr, sb));
        if ca != cb {
            return cb.cmp(&ca);
        }
    }
    // Rule 10: leave the order unchanged (the caller breaks the tie by index).
    Ordering::Equal
}
