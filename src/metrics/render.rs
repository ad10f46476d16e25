//! The Prometheus text exposition (format 0.0.4) of [`Metrics`]: the
//! control path renders it at scrape time from the relaxed counters.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{BUCKETS, DROPS, Histogram, Metrics, QTYPES, RCODES, UPSTREAM_RESULTS, names};

impl Histogram {
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count: u64 = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

impl Metrics {
    /// Reads a counter by metric name and label, for tests and `doctor`.
    pub fn value(&self, name: &str) -> u64 {
        let text = self.render();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .filter(|(k, _)| *k == name)
            .filter_map(|(_, v)| v.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        help(
            &mut out,
            names::REQUESTS,
            "counter",
            "Queries received, by transport, client family and query type.",
        );
        for (t, proto) in ["udp", "tcp"].iter().enumerate() {
            for (f, family) in ["ipv4", "ipv6"].iter().enumerate() {
                for (q, (_, qtype)) in QTYPES.iter().enumerate() {
                    let v = load(&self.requests[t][f][q]);
                    if v > 0 {
                        let _ = writeln!(
                            out,
                            "{}{{proto=\"{proto}\",family=\"{family}\",qtype=\"{qtype}\"}} {v}",
                            names::REQUESTS
                        );
                    }
                }
            }
        }
        help(
            &mut out,
            names::RESPONSES,
            "counter",
            "Answers sent, by RCODE.",
        );
        for (i, rcode) in RCODES.iter().enumerate() {
            let _ = writeln!(
                out,
                "{}{{rcode=\"{rcode}\"}} {}",
                names::RESPONSES,
                load(&self.responses[i])
            );
        }
        help(
            &mut out,
            names::REQUEST_DURATION,
            "histogram",
            "Time from query received to answer ready.",
        );
        self.request_duration
            .render(&mut out, names::REQUEST_DURATION, "");
        single(
            &mut out,
            names::SYNTHESIZED,
            "Answers sent to clients carrying synthesized AAAA records, cache hits included.",
            load(&self.synthesized),
        );
        single(
            &mut out,
            names::A_STRIPPED,
            "A records removed from answers sent to DNS64 clients, cache hits included.",
            load(&self.a_stripped),
        );
        single(
            &mut out,
            names::UPSTREAM_SYNTHESIZED,
            "Upstream AAAA responses to DNS64 clients holding AAAA inside a NAT64 prefix (synthesized upstream), not taken as native.",
            load(&self.upstream_synthesized),
        );
        help(
            &mut out,
            names::DROPPED,
            "counter",
            "Packets that got no answer, by reason.",
        );
        for (i, why) in DROPS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{}{{reason=\"{why}\"}} {}",
                names::DROPPED,
                load(&self.dropped[i])
            );
        }
        single(
            &mut out,
            names::REFUSED,
            "Queries refused by server.allow.",
            load(&self.refused),
        );
        let servers = self
            .servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        help(
            &mut out,
            names::UPSTREAM_REQUESTS,
            "counter",
            "Upstream exchanges, by forwarding zone, server and result.",
        );
        for (zone, addr, s) in &servers {
            for (i, result) in UPSTREAM_RESULTS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{}{{zone=\"{zone}\",server=\"{addr}\",result=\"{result}\"}} {}",
                    names::UPSTREAM_REQUESTS,
                    load(&s.results[i])
                );
            }
        }
        help(
            &mut out,
            names::UPSTREAM_MISMATCHED,
            "counter",
            "Upstream replies dropped for a wrong ID or question (spoofing or late replies).",
        );
        for (zone, addr, s) in &servers {
            let _ = writeln!(
                out,
                "{}{{zone=\"{zone}\",server=\"{addr}\"}} {}",
                names::UPSTREAM_MISMATCHED,
                load(&s.mismatched)
            );
        }
        help(
            &mut out,
            names::UPSTREAM_TLS_CONNECTIONS,
            "counter",
            "DNS-over-TLS connections to upstream servers opened (ok) or failed to open (failed: connect, handshake or certificate).",
        );
        for (zone, addr, s) in servers
            .iter()
            .filter(|(_, _, s)| s.tls.load(Ordering::Relaxed))
        {
            for (result, c) in [("ok", &s.tls_opened), ("failed", &s.tls_failed)] {
                let _ = writeln!(
                    out,
                    "{}{{zone=\"{zone}\",server=\"{addr}\",result=\"{result}\"}} {}",
                    names::UPSTREAM_TLS_CONNECTIONS,
                    load(c)
                );
            }
        }
        help(
            &mut out,
            names::UPSTREAM_DURATION,
            "histogram",
            "Upstream exchange time, by forwarding zone and server.",
        );
        for (zone, addr, s) in &servers {
            s.duration.render(
                &mut out,
                names::UPSTREAM_DURATION,
                &format!("zone=\"{zone}\",server=\"{addr}\""),
            );
        }
        single(
            &mut out,
            names::CACHE_HITS,
            "Answers served from the cache.",
            load(&self.cache_hits),
        );
        single(
            &mut out,
            names::CACHE_MISSES,
            "Cache lookups that missed.",
            load(&self.cache_misses),
        );
        single(
            &mut out,
            names::CACHE_STALE,
            "Expired answers served because every upstream failed (RFC 8767).",
            load(&self.cache_stale),
        );
        single(
            &mut out,
            names::PREFETCH,
            "Background refreshes of popular cache entries near expiry started.",
            load(&self.prefetch),
        );
        help(
            &mut out,
            names::RELOADS,
            "counter",
            "Config reloads, by result.",
        );
        let _ = writeln!(
            out,
            "{}{{result=\"ok\"}} {}",
            names::RELOADS,
            load(&self.reloads_ok)
        );
        let _ = writeln!(
            out,
            "{}{{result=\"failed\"}} {}",
            names::RELOADS,
            load(&self.reloads_failed)
        );
        for (name, read) in self
            .gauges
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            help(&mut out, name, "gauge", "Current value.");
            let _ = writeln!(out, "{name} {}", read());
        }
        {
            let p = self
                .nat64_prefixes
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let (list, Some(source)) = &*p {
                help(
                    &mut out,
                    names::NAT64_PREFIX_INFO,
                    "gauge",
                    "The NAT64 prefixes (dns64.prefixes) synthesis uses now, and where they came from.",
                );
                for prefix in list {
                    let _ = writeln!(
                        out,
                        "{}{{prefix=\"{prefix}\",source=\"{}\"}} 1",
                        names::NAT64_PREFIX_INFO,
                        source.label()
                    );
                }
            }
        }
        help(&mut out, names::BUILD_INFO, "gauge", "Build information.");
        let _ = writeln!(
            out,
            "{}{{version=\"{}\"}} 1",
            names::BUILD_INFO,
            env!("CARGO_PKG_VERSION")
        );
        out
    }
}

fn help(out: &mut String, name: &str, kind: &str, text: &str) {
    let _ = writeln!(out, "# HELP {name} {text}\n# TYPE {name} {kind}");
}

fn single(out: &mut String, name: &str, text: &str, v: u64) {
    help(out, name, "counter", text);
    let _ = writeln!(out, "{name} {v}");
}
