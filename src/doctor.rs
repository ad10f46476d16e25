//! `dns64d doctor NAME`: what a pod will do with a name. Off the data path.
//!
//! It asks the pod's resolver for A and AAAA (twice, the way libcs ask: UDP
//! without EDNS, TCP only after TC), then sorts the addresses the way glibc
//! and musl sort them (RFC 6724 destination address selection, each with its
//! own table and its own subset of the rules), from the pod's own source
//! addresses, and says which address each libc tries first and whether that
//! address goes through the NAT64. The verdict is bad, and the exit code 1,
//! when an A answer is present or when a libc's first choice is outside every
//! NAT64 prefix.
//!
//! The module is split like the rest of the tree: everything above the
//! "I/O" line is pure (policy tables, `/etc/gai.conf` parsing, source
//! selection, the three sorts, the verdict) and unit-tested against RFC 6724
//! §10.2 and against what the lab's (`tests/lab/`) real glibc and musl
//! clients picked; below it, a thin layer reads files, opens sockets and
//! prints.
//!
//! What is modelled and what is not:
//! - glibc (`sysdeps/posix/getaddrinfo.c`, `rfc3484_sort`): rules 1–6, 8, 9
//!   and 10, with glibc's RFC 3484 precedence table (IPv4 at 10, not 35), its
//!   label table, its IPv4 scopes (169.254/16 and 127/8 link-local), and the
//!   `label`, `precedence` and `scopev4` lines of `/etc/gai.conf`, which
//!   *replace* the built-in table they name. Rule 7 (native transport) is not
//!   modelled: a pod has no tunnels.
//! - musl (`src/network/lookup_name.c`): one sort key from rules 1, 2, 5, 6,
//!   8 and 9 (3, 4 and 7 omitted), the RFC 6724 table minus its deprecated
//!   rows, no configuration; IPv4 is always global scope; no sort at all when
//!   every answer is IPv4.
//! - RFC 6724 itself, all rules but 7, to check the model against §10.2.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs as _, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use ipnet::{Ipv4Net, Ipv6Net};

// ------------------------------------------------------------------ policy

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

fn net6(s: &str) -> Ipv6Net {
    // Only called on the literal tables below.
    s.parse().expect("a valid literal prefix")
}

fn net4(s: &str) -> Ipv4Net {
    s.parse().expect("a valid literal prefix")
}

/// RFC 6724 §3.2: 169.254/16 and 127/8 are link-local, all other IPv4 global.
fn default_scopev4() -> Vec<(Ipv4Net, u8)> {
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

    /// Precedence of an address (RFC 6724 §2.1; IPv4 as IPv4-mapped).
    pub fn precedence_of(&self, a: IpAddr) -> u32 {
        longest(&self.precedence, &as_v6(a)).unwrap_or(0)
    }

    /// Label of an address.
    pub fn label_of(&self, a: IpAddr) -> u32 {
        longest(&self.label, &as_v6(a)).unwrap_or(u32::MAX)
    }
}

fn parse_net6(s: &str) -> Option<Ipv6Net> {
    match s.split_once('/') {
        Some(_) => s.parse().ok(),
        None => s.parse::<Ipv6Addr>().ok().map(Ipv6Net::from),
    }
}

/// `scopev4` takes `::ffff:a.b.c.d/96..128` or plain `a.b.c.d/0..32`.
fn parse_scopev4(s: &str) -> Option<Ipv4Net> {
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

fn longest<T: Copy>(rows: &[(Ipv6Net, T)], a: &Ipv6Addr) -> Option<T> {
    rows.iter()
        .filter(|(n, _)| n.contains(a))
        .max_by_key(|(n, _)| n.prefix_len())
        .map(|(_, v)| *v)
}

fn as_v6(a: IpAddr) -> Ipv6Addr {
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
fn common_bits(a: IpAddr, b: IpAddr) -> u32 {
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
fn musl_key(d: &Dest, i: usize, table: &PolicyTable) -> u32 {
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
fn compare(a: &Dest, b: &Dest, flavour: Flavour, table: &PolicyTable) -> Ordering {
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

// ------------------------------------------------------------------ verdict

/// One record of an answer section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerRecord {
    pub name: String,
    pub rtype: String,
    pub ttl: u32,
    pub data: String,
    pub addr: Option<IpAddr>,
}

/// One query and what came back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    pub server: SocketAddr,
    pub round: u8,
    pub qtype: RecordType,
    pub rcode: String,
    /// The UDP reply had TC=1.
    pub truncated: bool,
    /// Address records in the truncated UDP reply (what musl < 1.2.4 keeps).
    pub udp_addresses: usize,
    /// The answer records used (TCP's when the UDP reply was truncated).
    pub answers: Vec<AnswerRecord>,
    /// SOA TTL from the authority section of a NODATA/NXDOMAIN answer.
    pub negative_ttl: Option<u32>,
    pub error: Option<String>,
}

/// What each libc would try first, and whether the whole picture is safe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    pub good: bool,
    pub warnings: Vec<String>,
    pub needs_tcp: bool,
}

/// True when `a` is inside one of the NAT64 prefixes.
pub fn in_prefixes(a: IpAddr, prefixes: &[Ipv6Net]) -> bool {
    match a {
        IpAddr::V6(v6) => prefixes.iter().any(|p| p.contains(&v6)),
        IpAddr::V4(_) => false,
    }
}

/// The addresses a libc would collect from the first round: A records first,
/// then AAAA (the order glibc and musl send and parse the two queries in).
pub fn collected_addresses(exchanges: &[Exchange]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for qtype in [RecordType::A, RecordType::AAAA] {
        if let Some(x) = exchanges
            .iter()
            .find(|x| x.round == 0 && x.qtype == qtype && x.error.is_none())
        {
            for r in &x.answers {
                if let Some(a) = r.addr
                    && !out.contains(&a)
                {
                    out.push(a);
                }
            }
        }
    }
    out
}

/// The verdict: bad when any A answer is present, or when some libc's first
/// choice is missing or outside every NAT64 prefix; plain warnings for the
/// rest.
pub fn assess(
    exchanges: &[Exchange],
    firsts: &[(&str, Option<IpAddr>)],
    prefixes: &[Ipv6Net],
) -> Assessment {
    let mut warnings = Vec::new();
    let mut good = true;
    let has_a = exchanges.iter().any(|x| {
        x.answers
            .iter()
            .any(|r| matches!(r.addr, Some(IpAddr::V4(_))))
    });
    if has_a {
        good = false;
        warnings
            .push("an IPv4 answer is present: a pod with an IPv4 route would bypass NAT64".into());
    }
    let sets: Vec<Vec<IpAddr>> = {
        let mut keys: Vec<(SocketAddr, u8)> =
            exchanges.iter().map(|x| (x.server, x.round)).collect();
        keys.dedup();
        keys.iter()
            .map(|k| {
                let mut v: Vec<IpAddr> = exchanges
                    .iter()
                    .filter(|x| (x.server, x.round) == *k && x.error.is_none())
                    .flat_map(|x| x.answers.iter().filter_map(|r| r.addr))
                    .collect();
                v.sort();
                v.dedup();
                v
            })
            .collect()
    };
    if sets.windows(2).any(|w| w[0] != w[1]) {
        warnings.push("answers differ between two queries".into());
    }
    let needs_tcp = exchanges.iter().any(|x| x.truncated);
    if let Some(x) = exchanges.iter().find(|x| x.truncated) {
        warnings.push(format!(
            "the answer needs TCP: musl before 1.2.4 cannot retry over TCP \
             (it keeps the {} address(es) of the truncated {} reply, of {})",
            x.udp_addresses,
            x.qtype,
            x.answers.iter().filter(|r| r.addr.is_some()).count()
        ));
    }
    for x in exchanges.iter().filter(|x| x.round == 0) {
        if let Some(e) = &x.error {
            warnings.push(format!("{} query to {} failed: {e}", x.qtype, x.server));
        } else if x.rcode != "NOERROR" && x.rcode != "NXDOMAIN" {
            warnings.push(format!(
                "{} query to {} answered {}: musl fails the whole lookup when either query fails",
                x.qtype, x.server, x.rcode
            ));
        }
    }
    for (libc, first) in firsts {
        match first {
            None => {
                good = false;
                warnings.push(format!("{libc} gets no address for this name"));
            }
            Some(a) if !in_prefixes(*a, prefixes) => {
                good = false;
                warnings.push(format!(
                    "{libc} would try {a} first: outside the NAT64 prefix, the connection does not go through the NAT64 gateway"
                ));
            }
            Some(_) => {}
        }
    }
    Assessment {
        good,
        warnings,
        needs_tcp,
    }
}

// ------------------------------------------------------------------ I/O

/// `dns64d doctor` arguments.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// The name to look up (taken as absolute: no search list).
    pub name: String,
    /// Resolver to ask, IP or IP:port ([v6]:port); default: the nameservers of /etc/resolv.conf.
    #[arg(long, value_name = "IP[:PORT]")]
    pub resolver: Option<String>,
    /// The pod's source address (ADDR or ADDR/LEN), repeatable; default: what the kernel picks here.
    #[arg(long = "source", value_name = "ADDR")]
    pub sources: Vec<String>,
    /// NAT64 prefix, repeatable (default 64:ff9b::/96).
    #[arg(long = "prefix", value_name = "PREFIX")]
    pub prefixes: Vec<Ipv6Net>,
    /// glibc's address-sorting config.
    #[arg(long, value_name = "FILE", default_value = "/etc/gai.conf")]
    pub gai_conf: PathBuf,
    /// Seconds to wait for each answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 2)]
    pub timeout: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the doctor: 0 good, 1 bad verdict, 2 could not ask.
pub fn run(args: DoctorArgs) -> ExitCode {
    match diagnose(&args) {
        Ok((report, good)) => {
            print!("{report}");
            if good {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("dns64d doctor: {e}");
            ExitCode::from(2)
        }
    }
}

fn diagnose(args: &DoctorArgs) -> Result<(String, bool), String> {
    let name = if args.name.ends_with('.') {
        args.name.clone()
    } else {
        format!("{}.", args.name)
    };
    let qname = Name::from_ascii(&name)
        .map_err(|e| format!("{:?} is not a domain name: {e}", args.name))?;
    let (servers, resolver_from) = match &args.resolver {
        Some(r) => (vec![parse_resolver(r)?], "--resolver"),
        None => (system_resolvers()?, "/etc/resolv.conf"),
    };
    let prefixes = if args.prefixes.is_empty() {
        vec![net6("64:ff9b::/96")]
    } else {
        args.prefixes.clone()
    };
    let mut given = Vec::new();
    for s in &args.sources {
        given.push(
            Source::parse(s).ok_or_else(|| format!("--source {s:?}: expected ADDR or ADDR/LEN"))?,
        );
    }
    let (gai_table, gai_notes, gai_from) = match std::fs::read_to_string(&args.gai_conf) {
        Ok(text) => {
            let (t, n) = PolicyTable::glibc_with_gai_conf(&text);
            let from = if t == PolicyTable::glibc() {
                format!(
                    "{} (no active lines: built-in tables)",
                    args.gai_conf.display()
                )
            } else {
                args.gai_conf.display().to_string()
            };
            (t, n, from)
        }
        Err(_) => (
            PolicyTable::glibc(),
            Vec::new(),
            "built-in tables".to_string(),
        ),
    };
    let timeout = Duration::from_secs(args.timeout.max(1));

    // Two rounds per server, A then AAAA, like a libc's pair of queries.
    let mut exchanges = Vec::new();
    for server in &servers {
        for round in 0..2u8 {
            for qtype in [RecordType::A, RecordType::AAAA] {
                exchanges.push(exchange(*server, round, &qname, qtype, timeout));
            }
        }
    }
    if exchanges.iter().all(|x| x.error.is_some()) {
        return Err(format!(
            "no answer from {}",
            servers
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    let addrs = collected_addresses(&exchanges[..2.min(exchanges.len())]);
    let dests: Vec<Dest> = addrs
        .iter()
        .map(|&a| Dest {
            addr: a,
            source: if given.is_empty() {
                kernel_source(a)
            } else {
                select_source(a, &given, &PolicyTable::rfc6724())
            },
        })
        .collect();
    let glibc = sort_destinations(&dests, Flavour::Glibc, &gai_table);
    let musl = sort_destinations(&dests, Flavour::Musl, &PolicyTable::musl());
    let firsts = [
        ("glibc", glibc.first().map(|d| d.addr)),
        ("musl", musl.first().map(|d| d.addr)),
    ];
    let mut verdict = assess(&exchanges, &firsts, &prefixes);
    verdict.warnings.extend(gai_notes);

    let ctx = ReportCtx {
        name: &name,
        servers: &servers,
        resolver_from,
        prefixes: &prefixes,
        gai_from: &gai_from,
        sources_given: !given.is_empty(),
    };
    let text = if args.json {
        json_report(&ctx, &exchanges, &glibc, &musl, &verdict)
    } else {
        text_report(&ctx, &exchanges, &glibc, &musl, &verdict)
    };
    Ok((text, verdict.good))
}

fn parse_resolver(s: &str) -> Result<SocketAddr, String> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(sa);
    }
    if let Ok(ip) = s.trim_matches(|c| c == '[' || c == ']').parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    Err(format!("--resolver {s:?}: expected IP or IP:PORT"))
}

/// The nameservers of /etc/resolv.conf (hickory-resolver's reader, then a
/// plain reading of the `nameserver` lines if it rejects the file).
fn system_resolvers() -> Result<Vec<SocketAddr>, String> {
    let mut out: Vec<SocketAddr> = Vec::new();
    match hickory_resolver::system_conf::read_system_conf() {
        Ok((conf, _)) => {
            for ns in conf.name_servers() {
                let sa = SocketAddr::new(ns.ip, 53);
                if !out.contains(&sa) {
                    out.push(sa);
                }
            }
        }
        Err(_) => {
            let text = std::fs::read_to_string("/etc/resolv.conf")
                .map_err(|e| format!("/etc/resolv.conf: {e}; give --resolver"))?;
            for line in text.lines() {
                let mut w = line.split_whitespace();
                if w.next() == Some("nameserver")
                    && let Some(ip) = w
                        .next()
                        .and_then(|v| v.split('%').next()?.parse::<IpAddr>().ok())
                {
                    out.push(SocketAddr::new(ip, 53));
                }
            }
        }
    }
    // Like glibc and musl, the first three only.
    out.truncate(3);
    if out.is_empty() {
        return Err("/etc/resolv.conf names no nameserver; give --resolver".into());
    }
    Ok(out)
}

/// What the kernel would use as source towards `dest`, as glibc and musl find
/// it: connect a UDP socket and read its local address. `None`: unusable.
fn kernel_source(dest: IpAddr) -> Option<Source> {
    let bind: SocketAddr = match dest {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(bind).ok()?;
    sock.connect((dest, 65535)).ok()?;
    let local = sock.local_addr().ok()?.ip();
    let mut src = Source::new(local);
    if let IpAddr::V6(v6) = local
        && let Ok(text) = std::fs::read_to_string("/proc/net/if_inet6")
    {
        apply_if_inet6(&mut src, v6, &text);
    }
    Some(src)
}

/// Fills prefix length and flags from a `/proc/net/if_inet6` line
/// (address, index, prefix length, scope, flags, name; IFA_F_DEPRECATED 0x20,
/// IFA_F_HOMEADDRESS 0x10).
fn apply_if_inet6(src: &mut Source, addr: Ipv6Addr, text: &str) {
    let hex = addr.octets().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 5 && f[0] == hex {
            src.prefix_len = u8::from_str_radix(f[2], 16).ok();
            let flags = u32::from_str_radix(f[4], 16).unwrap_or(0);
            src.deprecated = flags & 0x20 != 0;
            src.home = flags & 0x10 != 0;
        }
    }
}

/// One query as a libc sends it (RD, no EDNS, UDP); TC=1 → the same over TCP.
fn exchange(
    server: SocketAddr,
    round: u8,
    name: &Name,
    qtype: RecordType,
    timeout: Duration,
) -> Exchange {
    let mut x = Exchange {
        server,
        round,
        qtype,
        rcode: "-".into(),
        truncated: false,
        udp_addresses: 0,
        answers: Vec::new(),
        negative_ttl: None,
        error: None,
    };
    let id: u16 = rand::random();
    let mut q = Message::new(id, MessageType::Query, OpCode::Query);
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(name.clone(), qtype));
    let bytes = match q.to_vec() {
        Ok(b) => b,
        Err(e) => {
            x.error = Some(e.to_string());
            return x;
        }
    };
    let reply = match udp_exchange(server, &bytes, id, timeout) {
        Ok(m) => m,
        Err(e) => {
            x.error = Some(e);
            return x;
        }
    };
    let reply = if reply.metadata.truncation {
        x.truncated = true;
        x.udp_addresses = reply
            .answers
            .iter()
            .filter(|r| r.data.ip_addr().is_some())
            .count();
        match tcp_exchange(server, &bytes, id, timeout) {
            Ok(m) => m,
            Err(e) => {
                x.error = Some(format!("over TCP after TC: {e}"));
                reply
            }
        }
    } else {
        reply
    };
    x.rcode = rcode_name(reply.metadata.response_code);
    for r in &reply.answers {
        x.answers.push(AnswerRecord {
            name: r.name.to_string(),
            rtype: r.record_type().to_string(),
            ttl: r.ttl,
            data: r.data.to_string(),
            addr: match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            },
        });
    }
    x.negative_ttl = reply.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
        _ => None,
    });
    x
}

/// The mnemonic of an RCODE, as dig prints it.
fn rcode_name(rc: ResponseCode) -> String {
    match rc {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

fn udp_exchange(
    server: SocketAddr,
    q: &[u8],
    id: u16,
    timeout: Duration,
) -> Result<Message, String> {
    let bind: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    sock.connect(server).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    sock.send(q).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                "timed out".to_string()
            }
            _ => e.to_string(),
        })?;
        match Message::from_vec(&buf[..n]) {
            Ok(m) if m.metadata.id == id && m.metadata.message_type == MessageType::Response => {
                return Ok(m);
            }
            _ => continue, // not ours: keep waiting until the timeout
        }
    }
}

fn tcp_exchange(
    server: SocketAddr,
    q: &[u8],
    id: u16,
    timeout: Duration,
) -> Result<Message, String> {
    let addr = server
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let len = u16::try_from(q.len()).map_err(|_| "query too long")?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(q);
    s.write_all(&framed).map_err(|e| e.to_string())?;
    let mut lenb = [0u8; 2];
    s.read_exact(&mut lenb).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(lenb))];
    s.read_exact(&mut buf).map_err(|e| e.to_string())?;
    let m = Message::from_vec(&buf).map_err(|e| e.to_string())?;
    if m.metadata.id != id {
        return Err("reply with another ID".into());
    }
    Ok(m)
}

struct ReportCtx<'a> {
    name: &'a str,
    servers: &'a [SocketAddr],
    resolver_from: &'a str,
    prefixes: &'a [Ipv6Net],
    gai_from: &'a str,
    sources_given: bool,
}

fn nat64_note(a: IpAddr, prefixes: &[Ipv6Net]) -> String {
    match a {
        IpAddr::V4(_) => "IPv4: leaves through the pod's IPv4 route, not the NAT64".into(),
        IpAddr::V6(v6) => match prefixes.iter().find(|p| p.contains(&v6)) {
            Some(p) => format!("inside NAT64 prefix {p}"),
            None => "native IPv6, outside every NAT64 prefix".into(),
        },
    }
}

/// Records and addresses shown per list in the text report.
const SHOW: usize = 10;

/// One exchange's lines: the RCODE or NODATA, TC, then at most SHOW records.
fn answer_lines(o: &mut String, x: &Exchange) {
    let q = x.qtype.to_string();
    if let Some(e) = &x.error {
        let _ = writeln!(o, "    {q:<5} error: {e}");
        return;
    }
    let mut head = match (x.answers.is_empty(), x.rcode.as_str()) {
        (true, "NOERROR") => "NODATA".to_string(),
        _ => x.rcode.clone(),
    };
    if let Some(t) = x.negative_ttl.filter(|_| x.answers.is_empty()) {
        let _ = write!(head, ", negative TTL {t}");
    }
    if x.truncated {
        let _ = write!(
            head,
            ", TC=1 over UDP ({} address(es) fitted), {} record(s) over TCP",
            x.udp_addresses,
            x.answers.len()
        );
    }
    let _ = writeln!(o, "    {q:<5} {head}");
    for (i, r) in x.answers.iter().enumerate() {
        if i == SHOW && x.answers.len() > SHOW + 1 {
            let _ = writeln!(o, "          ... and {} more", x.answers.len() - SHOW);
            break;
        }
        let _ = writeln!(o, "          {} {} {} {}", r.name, r.ttl, r.rtype, r.data);
    }
}

fn text_report(
    ctx: &ReportCtx<'_>,
    xs: &[Exchange],
    glibc: &[Dest],
    musl: &[Dest],
    v: &Assessment,
) -> String {
    let mut o = String::new();
    let servers: Vec<String> = ctx.servers.iter().map(|s| s.to_string()).collect();
    let _ = writeln!(o, "name:      {}", ctx.name);
    let _ = writeln!(
        o,
        "resolver:  {} (from {})",
        servers.join(", "),
        ctx.resolver_from
    );
    let _ = writeln!(
        o,
        "prefixes:  {}",
        ctx.prefixes
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(o, "answers:");
    let same = |a: &Exchange, b: &Exchange| {
        a.qtype == b.qtype && a.rcode == b.rcode && a.error == b.error && {
            let data = |x: &Exchange| x.answers.iter().map(|r| r.data.clone()).collect::<Vec<_>>();
            data(a) == data(b)
        }
    };
    for server in ctx.servers {
        let mine: Vec<&Exchange> = xs.iter().filter(|x| x.server == *server).collect();
        let first: Vec<&&Exchange> = mine.iter().filter(|x| x.round == 0).collect();
        for round in 0..2u8 {
            let these: Vec<&&Exchange> = mine.iter().filter(|x| x.round == round).collect();
            if round > 0
                && these.len() == first.len()
                && these.iter().zip(&first).all(|(a, b)| same(a, b))
            {
                let _ = writeln!(o, "  {server} round {}: the same answers", round + 1);
                continue;
            }
            let _ = writeln!(o, "  {server} round {}:", round + 1);
            for x in these {
                answer_lines(&mut o, x);
            }
        }
    }
    for (libc, order, how) in [
        (
            "glibc",
            glibc,
            format!(
                "RFC 3484/6724 rules 1-6, 8-10, tables from {}",
                ctx.gai_from
            ),
        ),
        (
            "musl",
            musl,
            "RFC 6724 subset: rules 1, 2, 5, 6, 8, 9; fixed table".to_string(),
        ),
    ] {
        let _ = writeln!(o, "{libc} ({how}):");
        if order.is_empty() {
            let _ = writeln!(o, "  no address");
        }
        for (i, d) in order.iter().enumerate() {
            if i == SHOW && order.len() > SHOW + 1 {
                let _ = writeln!(o, "  ... and {} more", order.len() - SHOW);
                break;
            }
            let src = match &d.source {
                Some(s) => format!("from {}", s.addr),
                None => "unusable: no route".into(),
            };
            let mark = if i == 0 { " <- tried first" } else { "" };
            let _ = writeln!(
                o,
                "  {}. {:<28} {:<26} {}{}",
                i + 1,
                d.addr,
                src,
                nat64_note(d.addr, ctx.prefixes),
                mark
            );
        }
    }
    if !ctx.sources_given {
        let _ = writeln!(
            o,
            "sources:   as this host's kernel picks them (--source to model a pod)"
        );
    }
    for w in &v.warnings {
        let _ = writeln!(o, "warning:   {w}");
    }
    let _ = writeln!(
        o,
        "verdict:   {}",
        if v.good {
            "good: every libc tries an address inside the NAT64 prefix first and no A answer is present"
        } else {
            "bad (see the warnings above)"
        }
    );
    o
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_list<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    format!("[{}]", items.iter().map(f).collect::<Vec<_>>().join(","))
}

fn json_report(
    ctx: &ReportCtx<'_>,
    xs: &[Exchange],
    glibc: &[Dest],
    musl: &[Dest],
    v: &Assessment,
) -> String {
    let order = |ds: &[Dest]| {
        json_list(ds, |d| {
            format!(
                "{{\"address\":{},\"source\":{},\"nat64\":{}}}",
                json_str(&d.addr.to_string()),
                d.source
                    .as_ref()
                    .map_or("null".into(), |s| json_str(&s.addr.to_string())),
                in_prefixes(d.addr, ctx.prefixes)
            )
        })
    };
    let first = |ds: &[Dest]| {
        ds.first()
            .map_or("null".into(), |d| json_str(&d.addr.to_string()))
    };
    let exchanges = json_list(xs, |x| {
        format!(
            "{{\"server\":{},\"round\":{},\"qtype\":{},\"rcode\":{},\"truncated\":{},\"udp_addresses\":{},\"negative_ttl\":{},\"error\":{},\"answers\":{}}}",
            json_str(&x.server.to_string()),
            x.round + 1,
            json_str(&x.qtype.to_string()),
            json_str(&x.rcode),
            x.truncated,
            x.udp_addresses,
            x.negative_ttl.map_or("null".into(), |t| t.to_string()),
            x.error.as_deref().map_or("null".into(), json_str),
            json_list(&x.answers, |r| format!(
                "{{\"name\":{},\"type\":{},\"ttl\":{},\"data\":{}}}",
                json_str(&r.name),
                json_str(&r.rtype),
                r.ttl,
                json_str(&r.data)
            ))
        )
    });
    format!(
        "{{\"name\":{},\"resolvers\":{},\"prefixes\":{},\"gai_conf\":{},\"exchanges\":{},\"needs_tcp\":{},\
         \"first\":{{\"glibc\":{},\"musl\":{}}},\"order\":{{\"glibc\":{},\"musl\":{}}},\"warnings\":{},\"verdict\":{}}}\n",
        json_str(ctx.name),
        json_list(ctx.servers, |s| json_str(&s.to_string())),
        json_list(ctx.prefixes, |p| json_str(&p.to_string())),
        json_str(ctx.gai_from),
        exchanges,
        v.needs_tcp,
        first(glibc),
        first(musl),
        order(glibc),
        order(musl),
        json_list(&v.warnings, |w| json_str(w)),
        json_str(if v.good { "good" } else { "bad" })
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn src(s: &str) -> Source {
        Source::parse(s).unwrap()
    }

    /// Sorts `dests` with sources picked from `candidates` (RFC 6724 §5).
    fn order(
        flavour: Flavour,
        table: &PolicyTable,
        candidates: &[Source],
        dests: &[&str],
    ) -> Vec<String> {
        let ds: Vec<Dest> = dests
            .iter()
            .map(|d| Dest {
                addr: ip(d),
                source: select_source(ip(d), candidates, &PolicyTable::rfc6724()),
            })
            .collect();
        sort_destinations(&ds, flavour, table)
            .iter()
            .map(|d| d.addr.to_string())
            .collect()
    }

    /// Both input orders must give the RFC's result (rule 10 must not decide).
    fn rfc(candidates: &[Source], dests: [&str; 2], expected: [&str; 2]) {
        let t = PolicyTable::rfc6724();
        assert_eq!(
            order(Flavour::Rfc6724, &t, candidates, &dests),
            expected,
            "{dests:?}"
        );
        let rev = [dests[1], dests[0]];
        assert_eq!(
            order(Flavour::Rfc6724, &t, candidates, &rev),
            expected,
            "{rev:?}"
        );
    }

    // RFC 6724 §10.2, the nine examples, in the RFC's order.

    #[test]
    fn rfc6724_10_2_prefer_matching_scope_with_a_link_local_ipv4_source() {
        rfc(
            &[src("2001:db8:1::2"), src("fe80::1"), src("169.254.13.78")],
            ["2001:db8:1::1", "198.51.100.121"],
            ["2001:db8:1::1", "198.51.100.121"],
        );
    }

    #[test]
    fn rfc6724_10_2_prefer_matching_scope_with_only_a_link_local_ipv6_source() {
        rfc(
            &[src("fe80::1"), src("198.51.100.117")],
            ["2001:db8:1::1", "198.51.100.121"],
            ["198.51.100.121", "2001:db8:1::1"],
        );
    }

    #[test]
    fn rfc6724_10_2_prefer_higher_precedence_ipv6_over_ipv4() {
        rfc(
            &[src("2001:db8:1::2"), src("fe80::1"), src("10.1.2.4")],
            ["2001:db8:1::1", "10.1.2.3"],
            ["2001:db8:1::1", "10.1.2.3"],
        );
    }

    #[test]
    fn rfc6724_10_2_prefer_smaller_scope() {
        rfc(
            &[src("2001:db8:1::2"), src("fe80::2")],
            ["2001:db8:1::1", "fe80::1"],
            ["fe80::1", "2001:db8:1::1"],
        );
    }

    #[test]
    fn rfc6724_10_2_prefer_home_address() {
        let care = Source {
            care_of: true,
            ..src("2001:db8:1::2")
        };
        let home = Source {
            home: true,
            ..src("2001:db8:3::1")
        };
        let ll = Source {
            care_of: true,
            ..src("fe80::2")
        };
        let cands = [care, home.clone(), ll];
        rfc(
            &cands,
            ["2001:db8:1::1", "fe80::1"],
            ["2001:db8:1::1", "fe80::1"],
        );
        let picked = select_source(ip("2001:db8:1::1"), &cands, &PolicyTable::rfc6724());
        assert_eq!(
            picked.map(|s| s.addr),
            Some(home.addr),
            "source rule 4 picks the home address"
        );
    }

    #[test]
    fn rfc6724_10_2_avoid_deprecated_addresses() {
        let ll = Source {
            deprecated: true,
            ..src("fe80::2")
        };
        rfc(
            &[src("2001:db8:1::2"), ll],
            ["2001:db8:1::1", "fe80::1"],
            ["2001:db8:1::1", "fe80::1"],
        );
    }

    #[test]
    fn rfc6724_10_2_longest_matching_prefix() {
        let cands = [
            src("2001:db8:1::2/64"),
            src("2001:db8:3f44::2/64"),
            src("fe80::2/64"),
        ];
        rfc(
            &cands,
            ["2001:db8:1::1", "2001:db8:3ffe::1"],
            ["2001:db8:1::1", "2001:db8:3ffe::1"],
        );
        let picked = select_source(ip("2001:db8:3ffe::1"), &cands, &PolicyTable::rfc6724());
        assert_eq!(picked.map(|s| s.addr), Some(ip("2001:db8:3f44::2")));
    }

    #[test]
    fn rfc6724_10_2_prefer_matching_label() {
        rfc(
            &[src("2002:c633:6401::2"), src("fe80::2")],
            ["2002:c633:6401::1", "2001:db8:1::1"],
            ["2002:c633:6401::1", "2001:db8:1::1"],
        );
    }

    #[test]
    fn rfc6724_10_2_prefer_higher_precedence_over_6to4() {
        rfc(
            &[
                src("2002:c633:6401::2"),
                src("2001:db8:1::2"),
                src("fe80::2"),
            ],
            ["2002:c633:6401::1", "2001:db8:1::1"],
            ["2001:db8:1::1", "2002:c633:6401::1"],
        );
    }

    #[test]
    fn an_unusable_destination_goes_last() {
        let ds = [
            Dest {
                addr: ip("203.0.113.80"),
                source: None,
            },
            Dest {
                addr: ip("64:ff9b::cb00:7150"),
                source: Some(src("2001:db8:1::10")),
            },
        ];
        for f in [Flavour::Rfc6724, Flavour::Glibc, Flavour::Musl] {
            let t = if f == Flavour::Musl {
                PolicyTable::musl()
            } else {
                PolicyTable::glibc()
            };
            assert_eq!(
                sort_destinations(&ds, f, &t)[0].addr,
                ip("64:ff9b::cb00:7150"),
                "{f:?}"
            );
        }
    }

    // What the lab's real clients picked (tests/lab/run.sh, glibc 2.36 and
    // musl 1.2.3): the pod has 2001:db8:1::10/64 and 169.254.172.10/22, the
    // name has A 203.0.113.80 and, through classic DNS64, AAAA
    // 64:ff9b::cb00:7150. Both libcs collect the A answer first.

    fn lab_pod() -> Vec<Source> {
        vec![src("2001:db8:1::10/64"), src("169.254.172.10/22")]
    }

    const LAB_BOTH: [&str; 2] = ["203.0.113.80", "64:ff9b::cb00:7150"];

    #[test]
    fn lab_glibc_picks_the_synthesized_aaaa_when_both_families_are_answered() {
        let got = order(Flavour::Glibc, &PolicyTable::glibc(), &lab_pod(), &LAB_BOTH);
        assert_eq!(got, ["64:ff9b::cb00:7150", "203.0.113.80"]);
    }

    #[test]
    fn lab_musl_picks_the_synthesized_aaaa_when_both_families_are_answered() {
        let got = order(Flavour::Musl, &PolicyTable::musl(), &lab_pod(), &LAB_BOTH);
        assert_eq!(got, ["64:ff9b::cb00:7150", "203.0.113.80"]);
    }

    #[test]
    fn lab_glibc_prefer_ipv4_precedence_alone_loses_to_rule_2_on_a_link_local_ipv4_source() {
        let (t, notes) =
            PolicyTable::glibc_with_gai_conf("# prefer IPv4\nprecedence ::ffff:0:0/96 100\n");
        assert!(notes.is_empty());
        assert_eq!(t.precedence_of(ip("203.0.113.80")), 100);
        assert_eq!(
            t.precedence_of(ip("64:ff9b::1")),
            40,
            "the catch-all is added"
        );
        let got = order(Flavour::Glibc, &t, &lab_pod(), &LAB_BOTH);
        assert_eq!(got, ["64:ff9b::cb00:7150", "203.0.113.80"]);
    }

    #[test]
    fn lab_glibc_picks_the_a_record_when_gai_conf_also_makes_169_254_global() {
        let (t, _) = PolicyTable::glibc_with_gai_conf(
            "precedence ::ffff:0:0/96 100\nscopev4 ::ffff:169.254.0.0/112 14\n",
        );
        let got = order(Flavour::Glibc, &t, &lab_pod(), &LAB_BOTH);
        assert_eq!(got, ["203.0.113.80", "64:ff9b::cb00:7150"]);
    }

    #[test]
    fn lab_musl_keeps_dns_order_among_forty_synthesized_addresses() {
        let dests: Vec<String> = (64..=103)
            .map(|i| format!("64:ff9b::cb00:71{i:02x}"))
            .collect();
        let refs: Vec<&str> = dests.iter().map(String::as_str).collect();
        for (f, t) in [
            (Flavour::Musl, PolicyTable::musl()),
            (Flavour::Glibc, PolicyTable::glibc()),
        ] {
            let got = order(f, &t, &lab_pod(), &refs);
            assert_eq!(got, dests, "{f:?}");
        }
    }

    // Pods with a ULA instead of a global IPv6 address: the label of
    // fc00::/7 no longer matches the NAT64 destination's (RFC 6724 rule 5).

    #[test]
    fn musl_picks_the_a_record_when_the_pod_has_a_ula() {
        let pod = [src("fd00:db8::10/64"), src("169.254.172.10/22")];
        let got = order(Flavour::Musl, &PolicyTable::musl(), &pod, &LAB_BOTH);
        assert_eq!(got, ["203.0.113.80", "64:ff9b::cb00:7150"]);
    }

    #[test]
    fn glibc_keeps_the_aaaa_with_a_ula_while_the_ipv4_source_is_link_local() {
        let pod = [src("fd00:db8::10/64"), src("169.254.172.10/22")];
        let got = order(Flavour::Glibc, &PolicyTable::glibc(), &pod, &LAB_BOTH);
        assert_eq!(
            got,
            ["64:ff9b::cb00:7150", "203.0.113.80"],
            "rule 2 decides"
        );
        let pod = [src("fd00:db8::10/64"), src("192.0.2.10/24")];
        let got = order(Flavour::Glibc, &PolicyTable::glibc(), &pod, &LAB_BOTH);
        assert_eq!(
            got,
            ["203.0.113.80", "64:ff9b::cb00:7150"],
            "rule 5 decides"
        );
    }

    #[test]
    fn musl_does_not_sort_an_ipv4_only_answer() {
        let got = order(
            Flavour::Musl,
            &PolicyTable::musl(),
            &lab_pod(),
            &["203.0.113.9", "198.51.100.1"],
        );
        assert_eq!(got, ["203.0.113.9", "198.51.100.1"]);
    }

    #[test]
    fn musl_treats_ipv4_link_local_as_global_scope_and_glibc_does_not() {
        let t = PolicyTable::glibc();
        assert_eq!(scope_of(ip("169.254.172.10"), Flavour::Glibc, &t), 2);
        assert_eq!(
            scope_of(ip("169.254.172.10"), Flavour::Musl, &PolicyTable::musl()),
            14
        );
        assert_eq!(
            scope_of(
                ip("::ffff:169.254.1.1"),
                Flavour::Rfc6724,
                &PolicyTable::rfc6724()
            ),
            2
        );
    }

    #[test]
    fn glibc_puts_ipv4_below_ipv6_at_precedence_10_and_musl_at_35() {
        assert_eq!(PolicyTable::glibc().precedence_of(ip("192.0.2.1")), 10);
        assert_eq!(PolicyTable::musl().precedence_of(ip("192.0.2.1")), 35);
        assert_eq!(PolicyTable::rfc6724().precedence_of(ip("192.0.2.1")), 35);
        assert_eq!(PolicyTable::glibc().label_of(ip("2001::1")), 7, "Teredo");
        assert_eq!(PolicyTable::glibc().label_of(ip("2001:db8::1")), 1);
    }

    #[test]
    fn gai_conf_label_lines_replace_the_whole_label_table() {
        let (t, notes) =
            PolicyTable::glibc_with_gai_conf("label 2001:db8::/32 9\nbogus line\nlabel ::1 x\n");
        assert_eq!(t.label_of(ip("2001:db8::1")), 9);
        assert_eq!(t.label_of(ip("2002::1")), 1, "the 6to4 row is gone");
        assert_eq!(
            t.precedence,
            PolicyTable::glibc().precedence,
            "precedence untouched"
        );
        assert_eq!(notes.len(), 2);
    }

    #[test]
    fn gai_conf_with_only_comments_is_the_builtin_table() {
        let (t, notes) =
            PolicyTable::glibc_with_gai_conf("# label ::1/128 0\n#precedence ::/0 40\n\n");
        assert_eq!(t, PolicyTable::glibc());
        assert!(notes.is_empty());
    }

    #[test]
    fn scopev4_accepts_mapped_and_plain_ipv4_forms() {
        assert_eq!(
            parse_scopev4("::ffff:169.254.0.0/112"),
            Some(net4("169.254.0.0/16"))
        );
        assert_eq!(parse_scopev4("10.0.0.0/8"), Some(net4("10.0.0.0/8")));
        assert_eq!(parse_scopev4("::ffff:10.0.0.0/95"), None);
    }

    #[test]
    fn glibc_rule_9_for_ipv4_counts_only_inside_the_source_subnet() {
        let pod = [src("198.51.100.10/24")];
        let got = order(
            Flavour::Glibc,
            &PolicyTable::glibc(),
            &pod,
            &["203.0.113.9", "198.51.100.9"],
        );
        assert_eq!(got, ["198.51.100.9", "203.0.113.9"]);
        let pod = [src("198.51.100.10/28")];
        let got = order(
            Flavour::Glibc,
            &PolicyTable::glibc(),
            &pod,
            &["198.51.100.200", "198.51.100.99"],
        );
        assert_eq!(
            got,
            ["198.51.100.200", "198.51.100.99"],
            "outside the /28: rule 10"
        );
    }

    fn rec(a: &str) -> AnswerRecord {
        AnswerRecord {
            name: "service.example.".into(),
            rtype: if a.contains(':') { "AAAA" } else { "A" }.into(),
            ttl: 60,
            data: a.into(),
            addr: Some(ip(a)),
        }
    }

    fn xch(round: u8, qtype: RecordType, answers: &[&str]) -> Exchange {
        Exchange {
            server: "[2001:db8:1::64]:53".parse().unwrap(),
            round,
            qtype,
            rcode: "NOERROR".into(),
            truncated: false,
            udp_addresses: 0,
            answers: answers.iter().map(|a| rec(a)).collect(),
            negative_ttl: None,
            error: None,
        }
    }

    fn wkp() -> Vec<Ipv6Net> {
        vec![net6("64:ff9b::/96")]
    }

    #[test]
    fn only_synthesized_aaaa_chosen_first_is_a_good_verdict() {
        let xs = [
            xch(0, RecordType::A, &[]),
            xch(0, RecordType::AAAA, &["64:ff9b::cb00:7150"]),
            xch(1, RecordType::A, &[]),
            xch(1, RecordType::AAAA, &["64:ff9b::cb00:7150"]),
        ];
        let first = Some(ip("64:ff9b::cb00:7150"));
        let v = assess(&xs, &[("glibc", first), ("musl", first)], &wkp());
        assert!(v.good, "{:?}", v.warnings);
        assert!(v.warnings.is_empty());
        assert_eq!(collected_addresses(&xs), [ip("64:ff9b::cb00:7150")]);
    }

    #[test]
    fn an_a_answer_makes_the_verdict_bad_even_when_ipv6_is_tried_first() {
        let xs = [
            xch(0, RecordType::A, &["203.0.113.80"]),
            xch(0, RecordType::AAAA, &["64:ff9b::cb00:7150"]),
        ];
        let first = Some(ip("64:ff9b::cb00:7150"));
        let v = assess(&xs, &[("glibc", first), ("musl", first)], &wkp());
        assert!(!v.good);
        assert!(v.warnings[0].starts_with("an IPv4 answer is present"));
        assert_eq!(
            collected_addresses(&xs),
            [ip("203.0.113.80"), ip("64:ff9b::cb00:7150")]
        );
    }

    #[test]
    fn a_first_choice_outside_the_prefix_is_bad() {
        let xs = [xch(0, RecordType::AAAA, &["2001:db8:5::1"])];
        let v = assess(&xs, &[("glibc", Some(ip("2001:db8:5::1")))], &wkp());
        assert!(!v.good);
        assert!(
            v.warnings
                .iter()
                .any(|w| w.contains("outside the NAT64 prefix"))
        );
    }

    #[test]
    fn differing_rounds_and_truncation_are_warned() {
        let mut t = xch(
            0,
            RecordType::AAAA,
            &["64:ff9b::cb00:7150", "64:ff9b::cb00:7151"],
        );
        t.truncated = true;
        t.udp_addresses = 1;
        let xs = [t, xch(1, RecordType::AAAA, &["64:ff9b::cb00:7150"])];
        let first = Some(ip("64:ff9b::cb00:7150"));
        let v = assess(&xs, &[("glibc", first)], &wkp());
        assert!(v.good, "warnings only: {:?}", v.warnings);
        assert!(v.needs_tcp);
        assert!(
            v.warnings
                .iter()
                .any(|w| w == "answers differ between two queries")
        );
        assert!(
            v.warnings
                .iter()
                .any(|w| w.starts_with("the answer needs TCP: musl before 1.2.4"))
        );
    }

    #[test]
    fn if_inet6_gives_prefix_length_and_deprecated_flag() {
        let text = "20010db8000100000000000000000010 02 40 00 a0     eth0\n";
        let mut s = Source::new(ip("2001:db8:1::10"));
        apply_if_inet6(&mut s, "2001:db8:1::10".parse().unwrap(), text);
        assert_eq!(s.prefix_len, Some(64));
        assert!(s.deprecated);
    }

    #[test]
    fn resolver_argument_forms() {
        assert_eq!(
            parse_resolver("2001:db8:1::64").unwrap(),
            "[2001:db8:1::64]:53".parse().unwrap()
        );
        assert_eq!(
            parse_resolver("[2001:db8:1::64]:5353").unwrap().port(),
            5353
        );
        assert_eq!(parse_resolver("192.0.2.53").unwrap().port(), 53);
        assert!(parse_resolver("resolver.example").is_err());
    }

    #[test]
    fn rcodes_are_named_as_dig_names_them() {
        assert_eq!(rcode_name(ResponseCode::NXDomain), "NXDOMAIN");
        assert_eq!(rcode_name(ResponseCode::ServFail), "SERVFAIL");
        assert_eq!(rcode_name(ResponseCode::NotAuth), "RCODE9");
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
