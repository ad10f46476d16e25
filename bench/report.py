#!/usr/bin/env python3
"""Post-processing for bench/run.sh.

  report.py --latency FILE          percentiles of a `dnsperf -v` paced run:
                                    prints "p50_ms p99_ms p999_ms completed lost"
  report.py --results DIR --out MD  writes docs/PERFORMANCE.md from DIR/results.csv

Percentiles are nearest-rank over the per-query latencies that `dnsperf -v`
prints ("> RCODE name type seconds"); lost queries have no latency and are
counted separately (dnsperf's "Queries lost").
"""

import argparse
import csv
import math
import os
import statistics
import sys

SYSTEM_NAMES = {
    "dns64d": "dns64d",
    "dns64d2": "dns64d, 2 workers (scaling check)",
    "unbound": "Unbound",
    "bind": "BIND 9",
    "kresd": "Knot Resolver",
    "pdns": "PowerDNS Recursor",
    "dnsdist": "dnsdist (proxy, no DNS64)",
    "naive": "naive fixed-answer responder (the floor)",
}
SYSTEM_ORDER = ["dns64d", "dns64d2", "unbound", "bind", "kresd", "pdns", "dnsdist", "naive"]
LOADGEN_NAMES = {
    "dnsperf": "dnsperf (one query per datagram: ranks)",
    "blast": "blast (batching, saturation view)",
}
MIX_NAMES = {
    "synth": "(a) AAAA for A-only names: every answer synthesized",
    "pod": "(b) pod traffic: glibc A+AAAA pairs over an ndots:5 search list (~66% NXDOMAIN)",
    "pass": "(c) plain A pass-through",
}
MODE_NAMES = {"warm": "warm (names repeat: cache hits)", "cold": "cold (every name unique: forwarding)"}

# (mode, mix, metric, reference system, threshold, kind); ratios are taken
# from the dnsperf runs (the ranking) and shown beside the blast runs'.
TARGETS = [
    ("warm", "synth", "qcpu", "unbound", 1.35, "ratio"),
    ("warm", "pod", "qcpu", "unbound", 1.35, "ratio"),
    ("cold", "pass", "qcpu", "dnsdist", 1.10, "ratio"),
    ("cold", "pod", "qcpu", "unbound", 3.0, "ratio"),
    ("cold", "synth", "qcpu", "unbound", 4.0, "ratio"),
    # a cache hit costs no more CPU than a server doing nothing but one
    # recvfrom and one sendto per query
    ("warm", "synth", "qcpu", "naive", 1.0, "ratio"),
    ("cold", "synth", "p99", None, 0.5, "max"),
    ("warm", "*", "rss", None, 16.0, "max"),
    # 2 workers (two SO_REUSEPORT sockets) against 1: CPU per query within 10%
    ("warm", "synth", "qcpu", "dns64d2", 0.9, "scale"),
    ("cold", "synth", "qcpu", "dns64d2", 0.9, "scale"),
]


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = max(0, math.ceil(p / 100.0 * len(sorted_vals)) - 1)
    return sorted_vals[k]


def latency(path):
    lats = []
    lost = 0
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("> "):
                parts = line.split()
                try:
                    lats.append(float(parts[-1]))
                except ValueError:
                    pass
            elif "Queries lost:" in line:
                lost = int(line.split()[2])
    lats.sort()
    ms = [x * 1000.0 for x in lats]
    print("%.3f %.3f %.3f %d %d" % (pct(ms, 50), pct(ms, 99), pct(ms, 99.9), len(ms), lost))


def load(path):
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            try:
                r["rep"] = int(r["rep"])
                for k in ("sent", "completed", "lost", "srv_cpu_ns", "srv_stat_ns", "wall_ns",
                          "knot_cpu_ns", "paced_completed", "paced_lost", "rss_kb", "threads"):
                    r[k] = int(float(r[k]))
                for k in ("qps", "p50_ms", "p99_ms", "p999_ms"):
                    r[k] = float(r[k])
            except (ValueError, KeyError):
                continue
            # columns added with the dnsperf ranking (older files: blast only)
            r["loadgen"] = r.get("loadgen") or "blast"
            for k in ("vcsw", "ivcsw", "sc_completed", "sc_total", "sc_epoll", "sc_recv", "sc_send",
                      "sc_futex", "sc_uring", "paced_cpu_ns", "paced_csw", "ksirq_cpu_ns"):
                try:
                    r[k] = int(float(r.get(k) or 0))
                except ValueError:
                    r[k] = 0
            cpu_s = r["srv_cpu_ns"] / 1e9
            r["qcpu"] = r["completed"] / cpu_s if cpu_s > 0 else float("nan")
            r["util"] = r["srv_cpu_ns"] / r["wall_ns"] if r["wall_ns"] else float("nan")
            r["knot"] = r["knot_cpu_ns"] / r["wall_ns"] if r["wall_ns"] else float("nan")
            r["lostpct"] = 100.0 * r["lost"] / r["sent"] if r["sent"] else 0.0
            r["rss"] = r["rss_kb"] / 1024.0
            nan = float("nan")
            r["cswq"] = (r["vcsw"] + r["ivcsw"]) / r["completed"] if r["completed"] else nan
            r["vcswq"] = r["vcsw"] / r["completed"] if r["completed"] else nan
            r["ivcswq"] = r["ivcsw"] / r["completed"] if r["completed"] else nan
            sc = r["sc_completed"]
            for k in ("total", "epoll", "recv", "send", "futex", "uring"):
                r["scq_" + k] = r["sc_" + k] / sc if sc else nan
            r["paced_us"] = (r["paced_cpu_ns"] / 1000.0 / r["paced_completed"]
                             if r["paced_cpu_ns"] and r["paced_completed"] else nan)
            rows.append(r)
    return rows


def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def ratio_med(rows, mode, mix, sys_, ref, metric, loadgen="dnsperf"):
    """Median over repetitions of (sys metric / ref metric) in the same repetition."""
    by = {}
    for r in rows:
        if r["mode"] == mode and r["mix"] == mix and r["loadgen"] == loadgen:
            by.setdefault(r["rep"], {})[r["system"]] = r[metric]
    rs = [v[sys_] / v[ref] for v in by.values() if sys_ in v and ref in v and v[ref]]
    return (med(rs), min(rs), max(rs), len(rs)) if rs else (float("nan"),) * 3 + (0,)


def fmt(x, spec):
    return "–" if x != x else format(x, spec)


def rq_str(rq):
    if rq[0] != rq[0]:
        return "–"
    return "%.2f" % rq[0] if rq[3] < 2 else "%.2f (%.2f–%.2f)" % rq[:3]


def systems_of(sel):
    systems = [s for s in SYSTEM_ORDER if any(r["system"] == s for r in sel)]
    return systems + sorted({r["system"] for r in sel} - set(systems))


NAN4 = (float("nan"),) * 3 + (0,)


def table(rows, mode, mix, loadgen):
    sel = [r for r in rows if r["mode"] == mode and r["mix"] == mix and r["loadgen"] == loadgen]
    systems = systems_of(sel)
    if not systems:
        return ""
    has_ub = "unbound" in systems
    ref2 = "dnsdist" if mode == "cold" else "naive"
    has2 = ref2 in systems
    if loadgen == "dnsperf":
        out = ["| system | q/CPU-s (median) | × Unbound | × %s | QPS | server CPU busy | knotd CPU | lost | ctx switches / q (vol + invol) | syscalls / q | paced µs CPU / q | paced p50 ms | paced p99 ms | peak RSS MB | reps |" % ref2,
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    else:
        out = ["| system | q/CPU-s (median) | × Unbound | × %s | QPS | server CPU busy | knotd CPU | lost | ctx switches / q | peak RSS MB | reps |" % ref2,
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in systems:
        rs = [r for r in sel if r["system"] == s]
        rq = ratio_med(rows, mode, mix, s, "unbound", "qcpu", loadgen) if has_ub else NAN4
        r2 = ratio_med(rows, mode, mix, s, ref2, "qcpu", loadgen) if has2 else NAN4
        common = [SYSTEM_NAMES.get(s, s),
                  fmt(med([r["qcpu"] for r in rs]), ",.0f"),
                  rq_str(rq), rq_str(r2),
                  fmt(med([r["qps"] for r in rs]), ",.0f"),
                  fmt(100 * med([r["util"] for r in rs]), ".0f") + "%",
                  fmt(100 * med([r["knot"] for r in rs]), ".0f") + "%",
                  fmt(med([r["lostpct"] for r in rs]), ".2f") + "%"]
        if loadgen == "dnsperf":
            common += ["%s (%s + %s)" % (fmt(med([r["cswq"] for r in rs]), ".3f"),
                                         fmt(med([r["vcswq"] for r in rs]), ".3f"),
                                         fmt(med([r["ivcswq"] for r in rs]), ".3f")),
                       fmt(med([r["scq_total"] for r in rs]), ".2f"),
                       fmt(med([r["paced_us"] for r in rs]), ".1f"),
                       fmt(med([r["p50_ms"] for r in rs]), ".3f"),
                       fmt(med([r["p99_ms"] for r in rs]), ".3f")]
        else:
            common += [fmt(med([r["cswq"] for r in rs]), ".3f")]
        common += [fmt(med([r["rss"] for r in rs]), ".1f"), str(len(rs))]
        out.append("| " + " | ".join(common) + " |")
    return "\n".join(out)


def syscall_table(rows):
    """Per answered query, dnsperf runs: syscalls by kind and context switches."""
    sel = [r for r in rows if r["loadgen"] == "dnsperf" and r["sc_completed"]]
    if not sel:
        return ""
    out = ["| mode, mix | system | syscalls / q | epoll/poll | recv* | send* | futex | io_uring_enter | other | ctx switches / q (vol + invol) | q per wake-up |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode in ("warm", "cold"):
        for mix in ("synth", "pod", "pass"):
            cell = [r for r in sel if r["mode"] == mode and r["mix"] == mix]
            for s in systems_of(cell):
                rs = [r for r in cell if r["system"] == s]
                m = {k: med([r["scq_" + k] for r in rs]) for k in ("total", "epoll", "recv", "send", "futex", "uring")}
                other = m["total"] - sum(m[k] for k in ("epoll", "recv", "send", "futex", "uring"))
                v = med([r["vcswq"] for r in rs])
                out.append("| %s %s | %s | %s | %s | %s | %s | %s | %s | %s | %s (%s + %s) | %s |" % (
                    mode, mix, SYSTEM_NAMES.get(s, s).split(" (")[0], fmt(m["total"], ".2f"), fmt(m["epoll"], ".2f"),
                    fmt(m["recv"], ".2f"), fmt(m["send"], ".2f"), fmt(m["futex"], ".2f"), fmt(m["uring"], ".2f"),
                    fmt(other, ".2f"), fmt(med([r["cswq"] for r in rs]), ".3f"), fmt(v, ".3f"),
                    fmt(med([r["ivcswq"] for r in rs]), ".3f"), fmt(1 / v if v else float("nan"), ".0f")))
    return "\n".join(out)


def targets(rows):
    out = ["| target (q/CPU-s, same run) | dnsperf (ranks) | met? | gap | blast (saturation view) |",
           "|---|---:|:---:|---|---:|"]
    for mode, mix, metric, ref, thr, kind in TARGETS:
        if metric == "rss":
            vals = [r["rss"] for r in rows if r["system"] == "dns64d" and r["mode"] == mode]
            if not vals:
                continue
            v = max(vals)
            label = "peak RSS, %s runs (max over mixes, loads and reps) ≤ %.0f MB" % (mode, thr)
            ok = v <= thr
            gap = "" if ok else "%.1f MB over (%.0f%%)" % (v - thr, 100 * (v / thr - 1))
            out.append("| %s | %.1f MB | %s | %s | |" % (label, v, "yes" if ok else "**no**", gap))
            continue
        if metric == "p99":
            vals = [r["p99_ms"] for r in rows if r["system"] == "dns64d" and r["mode"] == mode
                    and r["mix"] == mix and r["loadgen"] == "dnsperf"]
            vals = [x for x in vals if x == x]
            if not vals:
                continue
            v = med(vals)
            ok = v <= thr
            gap = "" if ok else "%.3f ms over (%.1f×)" % (v - thr, v / thr)
            out.append("| paced p99 at 1k q/s, %s %s ≤ %.1f ms | %.3f ms | %s | %s | |" % (mode, mix, thr, v, "yes" if ok else "**no**", gap))
            continue
        if kind == "scale":
            v, lo, hi, n = ratio_med(rows, mode, mix, ref, "dns64d", metric)
            b = ratio_med(rows, mode, mix, ref, "dns64d", metric, "blast")
            if n == 0:
                continue
            ok = v >= thr
            gap = "" if ok else "%.0f%% more CPU per query" % (100 * (1 / v - 1))
            out.append("| scaling, %s %s: 2 workers ≥ %.2f× 1 worker | %.2f× (%.2f–%.2f, %d reps) | %s | %s | %s |" % (
                mode, mix, thr, v, lo, hi, n, "yes" if ok else "**no**", gap, rq_str(b) + "×"))
            continue
        v, lo, hi, n = ratio_med(rows, mode, mix, "dns64d", ref, metric)
        b = ratio_med(rows, mode, mix, "dns64d", ref, metric, "blast")
        if n == 0:
            continue
        ok = v >= thr
        gap = "" if ok else "%.0f%% short (needs %.2f× more)" % (100 * (1 - v / thr), thr / v)
        out.append("| %s %s ≥ %.2f× %s | %.2f× (%.2f–%.2f, %d reps) | %s | %s | %s |" % (
            mode, mix, thr, SYSTEM_NAMES[ref].split(" (")[0], v, lo, hi, n, "yes" if ok else "**no**", gap,
            rq_str(b) + ("×" if b[0] == b[0] else "")))
    return "\n".join(out)


def readf(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def report(resdir, outpath):
    rows = load(os.path.join(resdir, "results.csv"))
    versions = readf(os.path.join(resdir, "versions.txt")).strip()
    command = readf(os.path.join(resdir, "command.txt")).strip()
    analysis = readf(os.path.join(resdir, "analysis.md")).strip()
    L = []
    L.append("# dns64d performance\n")
    L.append("<!-- Generated by bench/run.sh (bench/report.py) from bench/results/; "
             "edit bench/results/analysis.md or bench/report.py, not this file. -->\n")
    L.append("Comparative DNS64 benchmark: dns64d against the resolvers users already run, each "
             "configured as a DNS64 forwarder to the same knotd upstream, with dnsdist as the plain UDP "
             "proxy reference and `bench/naive.c` (one `recvfrom` + one `sendto` per query, a fixed answer "
             "of the same octets as a dns64d cache hit) as the floor. Method, rationale and how to rerun: "
             "[bench/README.md](../bench/README.md).\n")
    L.append("**Ranking: dnsperf-driven load, answered queries per second of server CPU time** (q/CPU-s, "
             "from `/proc/PID/task/*/schedstat` before and after the run). dnsperf sends one query per "
             "datagram from many sockets, as users' load tests, pods and CoreDNS `forward` do; it cannot "
             "saturate the fastest servers on this box, so their CPU per query includes the wake-ups a "
             "real, unsaturated server pays. `bench/blast.c` (sendmmsg/recvmmsg, 64 per call) saturates "
             "every server and is the second view: what batching does when every wake-up finds dozens "
             "of datagrams queued. Ratios are medians of same-repetition ratios (every system runs once "
             "per repetition, order rotated).\n")
    if not rows:
        L.append("_No results yet: run `bench/run.sh`._\n")
    else:
        reps = sorted({r["rep"] for r in rows})
        L.append("Repetitions: %d. Every value is the median over repetitions.\n" % len(reps))
        L.append("## dns64d against the targets\n")
        L.append(targets(rows) + "\n")
        for mode in ("warm", "cold"):
            for mix in ("synth", "pod", "pass"):
                for lg in ("dnsperf", "blast"):
                    t = table(rows, mode, mix, lg)
                    if t:
                        L.append("## %s — %s — %s\n" % (mode.capitalize(), MIX_NAMES[mix], LOADGEN_NAMES[lg]))
                        L.append(t + "\n")
        L.append("Columns: *q/CPU-s* answered queries per second of server CPU (all threads); "
                 "*× Unbound*, *× naive* / *× dnsdist* the median of same-repetition ratios (range); "
                 "*QPS* the load generator's completed queries per second (100 outstanding; dnsperf: "
                 "16 client sockets); *server CPU busy* the server's CPU time over wall time (≈100%: "
                 "the server was the limit; dnsperf runs are below: the client was); *knotd CPU* the "
                 "upstream's share of one core; *lost* lost queries (2 s timeout); *ctx switches / q* "
                 "voluntary + involuntary context switches of the server's threads per answered query "
                 "(`/proc/PID/task/*/status`, same run); *syscalls / q* from a separate 2 s dnsperf run "
                 "under `perf stat` (below); *paced µs CPU / q* the server's CPU per query in the paced "
                 "run at 1,000 q/s, where every query is a wake-up of its own; *p50/p99* latency of that "
                 "paced run; *peak RSS* VmHWM at the end of the run.\n")
        sc = syscall_table(rows)
        if sc:
            L.append("## System calls and context switches per answered query (dnsperf load)\n")
            L.append("`perf stat -e raw_syscalls:sys_enter,syscalls:sys_enter_<name>... -p PID` over a "
                     "separate 2 s dnsperf run on the same server instance (cold: on names not asked "
                     "before), divided by the queries dnsperf got answers for. *recv\\** is recvfrom, "
                     "recvmsg, recvmmsg and read; *send\\** sendto, sendmsg, sendmmsg and write; a "
                     "cold query also counts the upstream exchanges it caused. *q per wake-up* is "
                     "answered queries per voluntary context switch (a sleep).\n")
            L.append(sc + "\n")
    L.append(REFERENCE)
    if analysis:
        L.append("## Analysis\n")
        L.append(analysis + "\n")
    profs = []
    for mix in ("synth", "pod", "pass"):
        p = readf(os.path.join(resdir, "profile-cold-%s.txt" % mix)).rstrip()
        if not p:
            continue
        dso = readf(os.path.join(resdir, "profile-cold-%s-dso.txt" % mix)).rstrip()
        ch = readf(os.path.join(resdir, "profile-cold-%s-children.txt" % mix)).rstrip()
        part = "### cold %s\n\nCPU by object:\n\n```\n%s\n```\n\nSelf time, top symbols:\n\n```\n%s\n```\n" % (
            mix, "\n".join(dso.splitlines()[:4]), "\n".join(p.splitlines()[:20]))
        if ch:
            keep = [l for l in ch.splitlines() if any(k in l for k in INCLUSIVE_KEYS)][:24]
            part += "\nInclusive time (children), selected frames:\n\n```\n%s\n```\n" % "\n".join(keep)
        profs.append(part)
    if profs:
        L.append("## Profile of dns64d (`perf record --call-graph dwarf`, cold runs, `--profile`)\n")
        L.append("Sampled with the cpu-clock event (no hardware PMU in this VM): time spent with interrupts "
                 "disabled shows up where they are re-enabled (`_raw_spin_unlock_irqrestore`, "
                 "`finish_task_switch`).\n")
        L.extend(profs)
    L.append("## Versions and machine\n")
    L.append("```\n%s\n```\n" % (versions or "(unknown)"))
    L.append("## Commands\n")
    L.append("```sh\n# this run\n%s\n# rerun everything / a quick smoke run / one slice\n"
             "bench/run.sh\nbench/run.sh --quick\n"
             "bench/run.sh --systems dns64d,unbound --mixes synth --modes cold --reps 5\n```\n" % (command or "bench/run.sh"))
    L.append("Per run (server pinned to CPU 0 with `taskset`, the load generator and knotd on CPU 1, all inside "
             "`unshare --net --pid`); every scenario once with each load, each on a fresh server:\n\n```sh\n"
             "dnsperf -s 127.0.0.1 -p 5353 -d q/MIX-MODE.txt [-n 1 if cold] -l DURATION -q 100 -c 16 -t 2  # ranks: q/CPU-s, ctx switches\n"
             "perf stat -e raw_syscalls:sys_enter,... -p SERVER & dnsperf ... -l 2            # syscalls per query\n"
             "dnsperf -s 127.0.0.1 -p 5353 -d q/MIX-MODE-paced.txt [-n 1] -l PACED -Q 1000 -t 2 -v  # paced: p50/p99, CPU per lone query\n"
             "blast   -s 127.0.0.1 -p 5353 -d q/MIX-MODE.txt [-n 1 if cold] -l DURATION -q 100 -t 2  # saturation view\n"
             "```\n")
    L.append("## Caveats\n")
    L.append(CAVEATS)
    with open(outpath, "w") as f:
        f.write("\n".join(L))


INCLUSIVE_KEYS = ("Upstream::query", "Pipeline::", "__libc_send", "__libc_sendto", "memset",
                  "exc_page_fault", "bind_addr", "drop_in_place<tokio::net::udp", "_int_malloc",
                  "sock_def_readable", "__x64_sys_close", "__sys_socket", "epoll_ctl", "hickory",
                  "Cache::get", "__sys_connect")

REFERENCE = """\
## Targets

dns64d's targets (same-run ratios of q/CPU-s under dnsperf load, 3 interleaved
repetitions): warm synth and warm pod ≥ 1.35× Unbound; cold pass-through ≥ 1.10×
dnsdist; cold pod ≥ 3.0× Unbound; cold synth ≥ 4.0× Unbound; a cache hit costs no more
CPU than the naive fixed-answer responder (≥ 1.0×); paced p99 of cold synthesis at
1,000 q/s ≤ 0.5 ms; peak RSS ≤ 16 MB in warm runs; 2 workers within 10% of 1 worker.
Absolute numbers move with the load that other work puts on the box (compare within
one run); ratios move much less.

Micro-benchmarks of the per-query code paths (parsing, synthesis) beside hickory-proto's
full decode: `cargo bench --bench dns64`; of the wire view: `cargo bench --bench wire`.
"""

CAVEATS = """\
- Two cores, shared with other work: the server has CPU 0 to itself only as far as
  `taskset` can promise; the load generator and knotd share CPU 1. CPU time per query is far less
  sensitive to that than QPS, which is why it ranks. Repetitions are interleaved
  (every system once per repetition, order rotated) so drift hits all systems alike.
- One worker each: dns64d with `server.workers = 1`, Unbound `num-threads: 1`,
  BIND `named -n 1`, kresd is one process, PowerDNS `threads=1`
  (`pdns-distributes-queries=no`); dnsdist has its own fixed set of threads. Helper
  threads of every server are counted in its CPU time and pinned to the same core.
- `dns64d, 2 workers` is the scaling check, not a competitor: `server.workers = 2` and
  two `SO_REUSEPORT` sockets, each worker with its own thread, runtime and upstream
  sockets. Both threads stay on CPU 0: on a 2-core box a second server core would be
  the load generator's and knotd's core, and the check would measure their contention
  instead of what a second worker adds to each query (shared cache and counters,
  the kernel spreading packets over two sockets). Its q/CPU-s against the one-worker
  row is the scaling ratio; `SCALE_CPUS=0,1` runs it on both cores instead.
- dnsdist does no DNS64: in the synth and pod mixes it answers what knotd answers
  (NODATA for A-only names). It is the cost floor of a UDP proxy (with its packet cache
  in warm runs), not a competitor there.
- dns64d runs with `filter.a = "strip"` (its default: A answers become NODATA for DNS64
  clients) in the synth and pod mixes and `filter.a = "pass"` in the pass-through mix;
  the other resolvers always pass A records (they have no A filter).
- Warm runs prime every cache with two passes through the query file first; cold runs
  start every server fresh and use every name once (`-n 1`), so a cold run that
  exhausts its file ends early (QPS is computed over the time it ran).
- Latency comes from a separate paced run (fixed rate, far below saturation) on the
  same server instance; in cold mode its names are disjoint from the saturating run's.
  p99 over a few thousand samples is noisy in the tenths of a millisecond: compare
  orders of magnitude, not the third decimal. During the paced run only, the server's
  threads, knotd and dnsperf run `SCHED_FIFO` (`chrt -f 10`), so that the time slices
  of other work on the shared cores (milliseconds) do not fill the tail; `--no-rt`
  turns that off.
- Caches are sized above the working set for everyone (the warm pod mix has ~20k
  name/type pairs): Unbound's default 4 MB message cache is too small for it, and
  with the load cycling through the file LRU evicts every entry before its reuse, so
  the bench config raises it (64 MB msg, 128 MB rrset). Knot Resolver gets 100 MB,
  dnsdist 50k entries; BIND, PowerDNS and dns64d keep their defaults, which fit.
- Peak RSS is VmHWM: Knot Resolver's LMDB cache is a memory-mapped file whose touched
  pages count; dnsdist preallocates its packet cache.
- Everything runs over loopback inside a private network namespace; real networks add
  latency, not CPU. On loopback the sender of a datagram also pays for its delivery
  (the receive softirq runs in the `sendto`/`sendmmsg` call), so every server's CPU
  per query includes part of its peers' receive path.
- dnsperf cannot saturate dns64d, Unbound or dnsdist on this box: its q/CPU-s include
  the server's wake-ups (a sleep and a wake-up cost this VM ~25–50 µs of the server's
  CPU, see *paced µs CPU / q*), so they depend on how many queries each wake-up finds,
  which depends on the client's timing as much as on the server. That is the point of
  ranking by it (it is what users measure), and why it is noisier than blast.
- The server's CPU is shared with whatever else the machine runs (other builds): the
  involuntary context switches in the tables are mostly that, and each costs the
  server its caches. Interleaving spreads it over every system alike.
- ksoftirqd on the server's CPU (softirq work the kernel defers, part of the server's
  packet delivery) is read from the host's /proc (`ksirq_cpu_ns` in the CSV); it was
  negligible (< 0.1% of the server's CPU) in the runs checked, so it is not added.
- Runs before 2026-12-05 ranked by blast alone (and before 2026-11-26 11:45, by a
  single dnsperf without -c); those numbers are not comparable with these.
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency")
    ap.add_argument("--results")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.latency:
        latency(a.latency)
    elif a.results and a.out:
        report(a.results, a.out)
    else:
        ap.print_help()
        sys.exit(2)


if __name__ == "__main__":
    main()
