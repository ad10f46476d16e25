//! The doctor's report: the text a person reads and the JSON a script
//! reads, from the exchanges, the sorts and the verdict.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use ipnet::Ipv6Net;

use super::*;

pub(super) struct ReportCtx<'a> {
    pub(super) name: &'a str,
    pub(super) servers: &'a [SocketAddr],
    pub(super) resolver_from: &'a str,
    pub(super) prefixes: &'a [Ipv6Net],
    pub(super) gai_from: &'a str,
    pub(super) sources_given: bool,
}

pub(super) fn nat64_note(a: IpAddr, prefixes: &[Ipv6Net]) -> String {
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
pub(super) fn answer_lines(o: &mut String, x: &Exchange) {
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

pub(super) fn text_report(
    ctx: &ReportCtx<'_>,
    xs: &[Exchange],
    glibc: &[Dest],
    musl: &[Dest],
    picks: &[runtime::Pick],
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
    if !picks.is_empty() {
        let _ = writeln!(
            o,
            "runtimes (what each would try first; models from tests/lab):"
        );
    }
    for p in picks {
        let first = match (&p.outcome, p.first()) {
            (runtime::Outcome::NoAddress(e), _) => format!("no address ({e})"),
            (_, Some(a)) => a.to_string(),
            (_, None) => "no address".into(),
        };
        let result = match p.outcome {
            runtime::Outcome::Nat64 => "through the NAT64",
            runtime::Outcome::Nat64AfterFallback => {
                "outside the NAT64 first, then falls back to it"
            }
            runtime::Outcome::Outside => "outside the NAT64",
            runtime::Outcome::NoAddress(_) => "fails",
        };
        let _ = writeln!(o, "  {:<15} {:<28} {result}", p.runtime.name(), first);
        for w in &p.why {
            let _ = writeln!(o, "  {:<15}   - {w}", "");
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
            "good: every libc and runtime modelled tries an address inside the NAT64 prefix first and no A answer is present"
        } else {
            "bad (see the warnings above)"
        }
    );
    o
}

pub(super) fn json_str(s: &str) -> String {
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

pub(super) fn json_list<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    format!("[{}]", items.iter().map(f).collect::<Vec<_>>().join(","))
}

pub(super) fn json_report(
    ctx: &ReportCtx<'_>,
    xs: &[Exchange],
    glibc: &[Dest],
    musl: &[Dest],
    picks: &[runtime::Pick],
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
    let runtimes = json_list(picks, |p| {
        let (outcome, error) = match p.outcome {
            runtime::Outcome::Nat64 => ("nat64", None),
            runtime::Outcome::Nat64AfterFallback => ("nat64_after_fallback", None),
            runtime::Outcome::Outside => ("outside", None),
            runtime::Outcome::NoAddress(e) => ("none", Some(e)),
        };
        format!(
            "{{\"runtime\":{},\"first\":{},\"order\":{},\"outcome\":{},\"error\":{},\"why\":{}}}",
            json_str(p.runtime.name()),
            p.first()
                .map_or("null".into(), |a| json_str(&a.to_string())),
            json_list(&p.order, |a| json_str(&a.to_string())),
            json_str(outcome),
            error.map_or("null".into(), json_str),
            json_list(&p.why, |w| json_str(w)),
        )
    });
    format!(
        "{{\"name\":{},\"resolvers\":{},\"prefixes\":{},\"gai_conf\":{},\"exchanges\":{},\"needs_tcp\":{},\
         \"first\":{{\"glibc\":{},\"musl\":{}}},\"order\":{{\"glibc\":{},\"musl\":{}}},\"runtimes\":{},\"warnings\":{},\"verdict\":{}}}\n",
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
        runtimes,
        json_list(&v.warnings, |w| json_str(w)),
        json_str(if v.good { "good" } else { "bad" })
    )
}
