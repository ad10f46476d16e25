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
//! Split like the rest of the tree: the pure parts (`rfc6724`: policy
//! tables, source selection, the three sorts; `gai_conf`: `/etc/gai.conf`
//! parsing; the verdict here) are unit-tested (`tests.rs`) against RFC 6724
//! §10.2 and against what the lab's (`tests/lab/`) real glibc and musl
//! clients picked; a thin layer does the I/O: `exchange` (the DNS client),
//! the CLI glue at the bottom of this file (files, sockets), and `report`
//! (text and JSON).
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

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use hickory_proto::rr::{Name, RecordType};
use ipnet::Ipv6Net;

mod exchange;
mod gai_conf;
mod report;
mod rfc6724;
pub mod runtime;
#[cfg(test)]
mod runtime_tests;
#[cfg(test)]
mod tests;

use exchange::*;
use report::*;
use rfc6724::*;
pub use rfc6724::{Dest, Flavour, PolicyTable, Source, scope_of, select_source, sort_destinations};

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

/// Adds the runtimes' first choices to the verdict: bad when one would try
/// an address outside every NAT64 prefix first, or get none. glibc and musl
/// are judged by [`assess`] already.
pub fn judge_runtimes(v: &mut Assessment, picks: &[runtime::Pick]) {
    for p in picks.iter().filter(|p| !p.runtime.is_libc()) {
        let name = p.runtime.name();
        let warning = match (&p.outcome, p.first()) {
            (runtime::Outcome::Nat64, _) => continue,
            (runtime::Outcome::NoAddress(e), _) => format!("{name} gets no address ({e})"),
            (runtime::Outcome::Nat64AfterFallback, Some(a)) => format!(
                "{name} would try {a} first and reach the NAT64 only after that connection fails"
            ),
            (_, Some(a)) => format!(
                "{name} would try {a} first: outside the NAT64 prefix, the connection does not go through the NAT64 gateway"
            ),
            (_, None) => format!("{name} gets no address"),
        };
        v.good = false;
        v.warnings.push(warning);
    }
}

// ------------------------------------------------------------------ I/O

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
    /// Also model these runtimes' resolvers (comma list or repeated):
    /// glibc, musl, node, node-cares, go, go-cgo, java, java-v6,
    /// java-v4stack, python, python-asyncio, hickory; `node`, `go`, `java`
    /// and `python` stand for their usual modes. Default: all (java-v4stack
    /// only by name).
    #[arg(long = "runtime", value_name = "RUNTIME")]
    pub runtimes: Vec<String>,
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

pub(super) fn diagnose(args: &DoctorArgs) -> Result<(String, bool), String> {
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
    let runtimes = runtime::parse(&args.runtimes)?;

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
    let inputs = runtime::Inputs {
        exchanges: &exchanges[..2.min(exchanges.len())],
        dests: &dests,
        gai_table: &gai_table,
        prefixes: &prefixes,
        nodata_candidate_first: false,
    };
    let picks: Vec<runtime::Pick> = runtimes
        .iter()
        .map(|r| runtime::pick(*r, &inputs))
        .collect();
    judge_runtimes(&mut verdict, &picks);

    let ctx = ReportCtx {
        name: &name,
        servers: &servers,
        resolver_from,
        prefixes: &prefixes,
        gai_from: &gai_from,
        sources_given: !given.is_empty(),
    };
    let text = if args.json {
        json_report(&ctx, &exchanges, &glibc, &musl, &picks, &verdict)
    } else {
        text_report(&ctx, &exchanges, &glibc, &musl, &picks, &verdict)
    };
    Ok((text, verdict.good))
}

pub(super) fn parse_resolver(s: &str) -> Result<SocketAddr, String> {
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
pub(super) fn system_resolvers() -> Result<Vec<SocketAddr>, String> {
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
pub(super) fn kernel_source(dest: IpAddr) -> Option<Source> {
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
pub(super) fn apply_if_inet6(src: &mut Source, addr: Ipv6Addr, text: &str) {
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
