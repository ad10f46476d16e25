//! `dns64d doctor --runtime`: what each language runtime's resolver and
//! connect logic would do with the answers the doctor got.
//!
//! Pods do not all resolve through glibc. Each model below is a handful of
//! facts (how the runtime orders the addresses, which families it asks for,
//! whether it falls back to the next address when a connect fails, whether
//! it retries over TCP after TC, what makes it give up) taken from what the
//! lab's real clients did (`tests/lab/runtimes.sh` and `runtimes.expect`:
//! Debian 12's glibc 2.36, musl 1.2.3, Node 20 with c-ares 1.34, Go 1.19,
//! OpenJDK 17, Python 3.11, hickory-resolver 0.26). The unit tests replay
//! every lab scenario through the models and compare with those files, so a
//! model and the lab cannot drift apart.

use std::net::IpAddr;

use hickory_proto::rr::RecordType;
use ipnet::Ipv6Net;

use super::rfc6724::{Dest, Flavour, PolicyTable, sort_destinations};
use super::{Exchange, in_prefixes};

/// A runtime (and resolver mode) the lab runs in the pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Glibc,
    Musl,
    Node,
    NodeCares,
    Go,
    GoCgo,
    Java,
    JavaV6,
    JavaV4Stack,
    Python,
    PythonAsyncio,
    Hickory,
}

use Runtime::*;

/// In the lab's table order.
pub const ALL: [Runtime; 12] = [
    Glibc,
    Musl,
    Node,
    NodeCares,
    Go,
    GoCgo,
    Java,
    JavaV6,
    JavaV4Stack,
    Python,
    PythonAsyncio,
    Hickory,
];

/// How a runtime orders the addresses it got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    /// getaddrinfo's RFC 3484/6724 sort with `/etc/gai.conf`.
    Glibc,
    /// musl's sort key; no configuration.
    Musl,
    /// Go's own RFC 6724 code (its table, `gai.conf` ignored).
    Rfc6724,
    /// AAAA answers, then A, in DNS order: no sort (c-ares as Node's
    /// `resolve6`+`resolve4` use it, hickory's `Ipv4AndIpv6` lookup).
    AaaaFirst,
    /// getaddrinfo's order, then every IPv4 address moved first (Java's
    /// `java.net.preferIPv6Addresses=false`, its default).
    Ipv4First,
    /// getaddrinfo's order, then every IPv6 address moved first
    /// (`preferIPv6Addresses=true`).
    Ipv6First,
}

/// The facts of one runtime.
struct Model {
    name: &'static str,
    what: &'static str,
    order: Order,
    /// Asks for A only (Java's `preferIPv4Stack=true`).
    a_only: bool,
    /// Tries the next address when a connect fails or is slow; how.
    fallback: Option<&'static str>,
    /// Retries over TCP after TC=1. `false`: keeps what the truncated UDP
    /// reply held.
    tcp_on_tc: bool,
    /// Sends EDNS with this UDP size, so answers up to it never truncate.
    edns: Option<u16>,
    /// One failed query of the A+AAAA pair fails the whole lookup.
    pair_failure_fails: bool,
    /// Walks the resolv.conf search list; `Some(true)` when it ends the walk
    /// at the first NODATA candidate.
    search: Option<bool>,
    /// What the application sees when no address is left.
    no_address: &'static str,
}

impl Runtime {
    fn model(self) -> Model {
        let getaddrinfo = Model {
            name: "glibc",
            what: "getaddrinfo (glibc 2.36), connect to the first address",
            order: Order::Glibc,
            a_only: false,
            fallback: None,
            tcp_on_tc: true,
            edns: None,
            pair_failure_fails: false,
            search: Some(false),
            no_address: "EAI_NONAME",
        };
        match self {
            Glibc => getaddrinfo,
            Musl => Model {
                name: "musl",
                what: "getaddrinfo (musl 1.2.3), connect to the first address",
                order: Order::Musl,
                // TCP fallback came with musl 1.2.4.
                tcp_on_tc: false,
                pair_failure_fails: true,
                search: Some(true),
                ..getaddrinfo
            },
            Node => Model {
                name: "node",
                what: "Node dns.lookup (getaddrinfo, order kept); net.connect races families (autoSelectFamily)",
                fallback: Some("autoSelectFamily tries the next family after 250 ms"),
                ..getaddrinfo
            },
            NodeCares => Model {
                name: "node-cares",
                what: "Node dns.resolve6 + resolve4 (c-ares 1.34): no search list, no sort",
                order: Order::AaaaFirst,
                search: None,
                no_address: "ENOTFOUND",
                ..getaddrinfo
            },
            Go => Model {
                name: "go",
                what: "Go's own resolver (GODEBUG=netdns=go): RFC 6724 sort in Go, gai.conf ignored; net.Dial falls back",
                order: Order::Rfc6724,
                fallback: Some("net.Dial tries the other family after 300 ms"),
                edns: Some(1232),
                no_address: "no such host",
                ..getaddrinfo
            },
            GoCgo => Model {
                name: "go-cgo",
                what: "Go with GODEBUG=netdns=cgo (getaddrinfo); net.Dial falls back",
                fallback: Some("net.Dial tries the other family after 300 ms"),
                no_address: "no such host",
                ..getaddrinfo
            },
            Java => Model {
                name: "java",
                what: "Java InetAddress (getaddrinfo), IPv4 first by default (preferIPv6Addresses=false)",
                order: Order::Ipv4First,
                no_address: "UnknownHostException",
                ..getaddrinfo
            },
            JavaV6 => Model {
                name: "java-v6",
                what: "Java with -Djava.net.preferIPv6Addresses=true",
                order: Order::Ipv6First,
                no_address: "UnknownHostException",
                ..getaddrinfo
            },
            JavaV4Stack => Model {
                name: "java-v4stack",
                what: "Java with -Djava.net.preferIPv4Stack=true: A queries only, no IPv6 sockets",
                order: Order::Ipv4First,
                a_only: true,
                no_address: "UnknownHostException",
                ..getaddrinfo
            },
            Python => Model {
                name: "python",
                what: "Python socket.getaddrinfo + create_connection (next address after a failed connect)",
                fallback: Some("create_connection tries the next address when a connect fails"),
                ..getaddrinfo
            },
            PythonAsyncio => Model {
                name: "python-asyncio",
                what: "Python asyncio loop.getaddrinfo + open_connection (no happy eyeballs)",
                ..getaddrinfo
            },
            Hickory => Model {
                name: "hickory",
                what: "Rust hickory-resolver 0.26: AAAA and A in parallel, AAAA first, no sort",
                order: Order::AaaaFirst,
                no_address: "no records found",
                ..getaddrinfo
            },
        }
    }

    /// The name `--runtime` and the lab use.
    pub fn name(self) -> &'static str {
        self.model().name
    }

    /// True for the libcs, whose first choice the doctor judges anyway.
    pub fn is_libc(self) -> bool {
        matches!(self, Glibc | Musl)
    }
}

/// Runtimes named by `--runtime` values (each may be a comma list). A family
/// name stands for its usual modes: `node` (dns.lookup and c-ares), `go`
/// (pure Go and cgo), `java` (default and preferIPv6Addresses), `python`
/// (socket and asyncio). `java-v4stack` only by name: it cannot work in an
/// IPv6-only pod at all. Empty, or `all`: every family.
pub fn parse(values: &[String]) -> Result<Vec<Runtime>, String> {
    let mut out = Vec::new();
    let mut add = |rs: &[Runtime]| {
        for r in rs {
            if !out.contains(r) {
                out.push(*r);
            }
        }
    };
    let every: Vec<Runtime> = ALL.into_iter().filter(|r| *r != JavaV4Stack).collect();
    let words: Vec<&str> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        add(&every);
    }
    for w in words {
        match w.to_ascii_lowercase().as_str() {
            "all" => add(&every),
            "node" => add(&[Node, NodeCares]),
            "go" => add(&[Go, GoCgo]),
            "java" => add(&[Java, JavaV6]),
            "python" => add(&[Python, PythonAsyncio]),
            "rust" => add(&[Hickory]),
            other => match ALL.into_iter().find(|r| r.name() == other) {
                Some(r) => add(&[r]),
                None => {
                    return Err(format!(
                        "--runtime {w:?}: expected all, rust, or one of {}",
                        ALL.map(Runtime::name).join(", ")
                    ));
                }
            },
        }
    }
    Ok(out)
}

/// Where a runtime's connection goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The first address tried is inside a NAT64 prefix.
    Nat64,
    /// The first address is outside every prefix, and the runtime falls back
    /// to a NAT64 address when that connection fails (it did in the lab,
    /// where the target drops the node's address; a target that admits the
    /// node would get the connection from the wrong source instead).
    Nat64AfterFallback,
    /// The first address is outside every prefix, and nothing falls back.
    Outside,
    /// No address: the error the application sees.
    NoAddress(&'static str),
}

/// What one runtime would do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pick {
    pub runtime: Runtime,
    /// The addresses in the order it tries them.
    pub order: Vec<IpAddr>,
    pub outcome: Outcome,
    /// Why, one fact per line.
    pub why: Vec<String>,
}

impl Pick {
    pub fn first(&self) -> Option<IpAddr> {
        self.order.first().copied()
    }
}

/// What the models read.
pub struct Inputs<'a> {
    /// The first round of A and AAAA exchanges with the first resolver.
    pub exchanges: &'a [Exchange],
    /// The addresses with the source the pod would use for each.
    pub dests: &'a [Dest],
    /// glibc's table, with the pod's `gai.conf` applied.
    pub gai_table: &'a PolicyTable,
    pub prefixes: &'a [Ipv6Net],
    /// A search-list candidate before the name answered NODATA (the lab's
    /// `search-nodata`); the doctor itself asks for the absolute name only.
    pub nodata_candidate_first: bool,
}

/// Runs `runtime`'s model over `inp`.
pub fn pick(runtime: Runtime, inp: &Inputs<'_>) -> Pick {
    let m = runtime.model();
    let mut why = vec![m.what.to_string()];
    let none = |why: Vec<String>, error| Pick {
        runtime,
        order: Vec::new(),
        outcome: Outcome::NoAddress(error),
        why,
    };
    let query = |t: RecordType| inp.exchanges.iter().find(|x| x.qtype == t);
    let asked: &[RecordType] = if m.a_only {
        &[RecordType::A]
    } else {
        &[RecordType::A, RecordType::AAAA]
    };

    if m.search == Some(true) && inp.nodata_candidate_first {
        why.push(
            "ends the search-list walk at the first NODATA candidate: the name itself is never asked"
                .into(),
        );
        return none(why, m.no_address);
    }
    if m.pair_failure_fails
        && let Some(x) = asked.iter().filter_map(|t| query(*t)).find(|x| failed(x))
    {
        why.push(format!(
            "one failed query fails the whole lookup ({} {}), even with the other answered",
            x.qtype,
            x.error.as_deref().unwrap_or(&x.rcode)
        ));
        return none(why, "EAI_AGAIN");
    }

    // The addresses of each family it asks for, as it receives them.
    let mut got: Vec<(RecordType, Vec<IpAddr>)> = Vec::new();
    for &t in asked {
        let Some(x) = query(t).filter(|x| !failed(x)) else {
            continue;
        };
        let mut addrs: Vec<IpAddr> = x.answers.iter().filter_map(|r| r.addr).collect();
        if x.truncated {
            match m.edns {
                Some(size) => why.push(format!(
                    "asks with EDNS ({size} bytes): an answer that size or smaller never truncates"
                )),
                None if m.tcp_on_tc => {
                    why.push(format!("{t}: retries over TCP after TC=1"));
                }
                None => {
                    // dns64d truncates at whole records, so what fitted is
                    // the start of the answer.
                    addrs.truncate(x.udp_addresses);
                    why.push(format!(
                        "{t}: no TCP fallback after TC=1: keeps the {} address(es) of the truncated reply",
                        x.udp_addresses
                    ));
                }
            }
        }
        got.push((t, addrs));
    }
    if m.a_only {
        why.push("asks for A only: the synthesized AAAA is never seen".into());
    }
    if m.search.is_none() {
        why.push("does not walk the search list: short names need the full name".into());
    }

    let collected = |first: RecordType| -> Vec<Dest> {
        let firsts = got.iter().filter(|(t, _)| *t == first);
        let rest = got.iter().filter(|(t, _)| *t != first);
        let mut v: Vec<Dest> = Vec::new();
        for a in firsts.chain(rest).flat_map(|(_, addrs)| addrs) {
            if !v.iter().any(|d| d.addr == *a) {
                v.push(dest_for(*a, inp.dests));
            }
        }
        v
    };
    // getaddrinfo collects the A answer first (its rule 10 tiebreak).
    let sorted: Vec<Dest> = match m.order {
        Order::Glibc | Order::Ipv4First | Order::Ipv6First => {
            sort_destinations(&collected(RecordType::A), Flavour::Glibc, inp.gai_table)
        }
        Order::Musl => sort_destinations(
            &collected(RecordType::A),
            Flavour::Musl,
            &PolicyTable::musl(),
        ),
        Order::Rfc6724 => sort_destinations(
            &collected(RecordType::A),
            Flavour::Rfc6724,
            &PolicyTable::rfc6724(),
        ),
        Order::AaaaFirst => collected(RecordType::AAAA),
    };
    let mut order: Vec<IpAddr> = sorted.iter().map(|d| d.addr).collect();
    match m.order {
        // Stable: each family keeps getaddrinfo's order.
        Order::Ipv4First => order.sort_by_key(|a| !a.is_ipv4()),
        Order::Ipv6First => order.sort_by_key(|a| !a.is_ipv6()),
        _ => {}
    }
    if matches!(m.order, Order::Glibc | Order::Ipv4First | Order::Ipv6First) {
        why.push("sorts like glibc and reads /etc/gai.conf".into());
    } else if m.order != Order::AaaaFirst {
        why.push("ignores /etc/gai.conf".into());
    }

    let outcome = match order.first() {
        None => Outcome::NoAddress(m.no_address),
        Some(a) if in_prefixes(*a, inp.prefixes) => Outcome::Nat64,
        Some(_) => match m.fallback {
            Some(how) if order.iter().any(|a| in_prefixes(*a, inp.prefixes)) => {
                why.push(format!(
                    "{how}: reaches the NAT64 address only if the first connection fails"
                ));
                Outcome::Nat64AfterFallback
            }
            _ => Outcome::Outside,
        },
    };
    Pick {
        runtime,
        order,
        outcome,
        why,
    }
}

/// A query that got no usable answer: no reply, or an RCODE other than
/// NOERROR and NXDOMAIN.
fn failed(x: &Exchange) -> bool {
    x.error.is_some() || (x.rcode != "NOERROR" && x.rcode != "NXDOMAIN")
}

fn dest_for(a: IpAddr, dests: &[Dest]) -> Dest {
    dests.iter().find(|d| d.addr == a).cloned().unwrap_or(Dest {
        addr: a,
        source: None,
    })
}
