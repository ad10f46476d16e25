#!/usr/bin/env python3
"""Zone and query-file generator for the dns64d comparative benchmark.

Writes, into OUTDIR:

  zones/bench.example.zone   the "internet": A-only, A+AAAA, AAAA-only names,
                             wildcards for unique (cold) names
  zones/cluster.local.zone   a Kubernetes-like cluster.local. zone: services in
                             namespaces (AAAA-only: an IPv6-only cluster) and a
                             wildcard service namespace for cold runs
  q/<mix>-<mode>.txt         dnsperf data files ("name TYPE" per line)
  q/<mix>-<mode>-paced.txt   the same mix for the paced (latency) run; in cold
                             mode its names are disjoint from the throughput file
  q/check.txt                a few names used by run.sh for sanity checks

Mixes:
  synth  AAAA for A-only names (every answer is synthesized)
  pod    what glibc getaddrinfo(AF_UNSPEC) sends from a pod with ndots:5 and the
         search list "<ns>.svc.cluster.local svc.cluster.local cluster.local":
         an A+AAAA pair per candidate name, until a candidate has an answer;
         most answers are NXDOMAIN
  pass   A for names that have A records (plain pass-through)

Modes:
  warm   names come from the fixed zone population and repeat (cache path)
  cold   every query name is unique (wildcards), so every query is forwarded

Deterministic: the same arguments give the same files (seeded PRNG).
Nothing here is copied from another project.
"""

import argparse
import os
import random

ZONE_TTL = 3600          # long, so warm runs never see expiry
NEG_TTL = 3600           # SOA MINIMUM: negative answers stay cached in warm runs

# Population sizes (about 10,000 names in all).
N_V4 = 5000              # a<i>.v4.bench.example   A only (synthesis case)
N_DS = 2000              # d<i>.ds.bench.example   A + AAAA
N_V6 = 1000              # s<i>.v6.bench.example   AAAA only
N_NS = 30                # ns<k>.svc.cluster.local namespaces
N_SVC = 50               # svc<j>.ns<k>.svc.cluster.local services per namespace (AAAA)

SEARCH = ["{ns}.svc.cluster.local", "svc.cluster.local", "cluster.local"]
NDOTS = 5


def v4addr(i, base=(198, 18)):
    # 198.18.0.0/15 (RFC 2544 benchmarking range): global enough that every
    # DNS64 implementation synthesizes it (no never-map / private exclusions).
    return "%d.%d.%d.%d" % (base[0], base[1] + (i >> 16 & 1), i >> 8 & 0xFF, i & 0xFF or 1)


def soa(origin):
    return ("@ %d IN SOA ns.%s hostmaster.%s 1 3600 600 86400 %d\n"
            "@ %d IN NS ns.%s\n"
            "ns %d IN A 127.0.0.1\n") % (ZONE_TTL, origin, origin, NEG_TTL, ZONE_TTL, origin, ZONE_TTL)


def write_zones(out):
    os.makedirs(os.path.join(out, "zones"), exist_ok=True)
    z = ["$ORIGIN bench.example.\n$TTL %d\n" % ZONE_TTL, soa("bench.example.")]
    for i in range(N_V4):
        z.append("a%d.v4 IN A %s\n" % (i, v4addr(i)))
    for i in range(N_DS):
        z.append("d%d.ds IN A %s\n" % (i, v4addr(i + 20000)))
        z.append("d%d.ds IN AAAA 2001:db8:d5::%x\n" % (i, i + 1))
    for i in range(N_V6):
        z.append("s%d.v6 IN AAAA 2001:db8:6::%x\n" % (i, i + 1))
    # wildcards for cold runs: every query name unique, answers like the above
    z.append("*.w4 IN A 198.18.200.1\n")
    z.append("*.wd IN A 198.18.201.1\n*.wd IN AAAA 2001:db8:d5:ffff::1\n")
    z.append("*.w6 IN AAAA 2001:db8:6:ffff::1\n")
    # the name run.sh asks to prove that a system synthesizes
    z.append("check.v4 IN A 198.18.99.1\n")
    with open(os.path.join(out, "zones", "bench.example.zone"), "w") as f:
        f.writelines(z)

    c = ["$ORIGIN cluster.local.\n$TTL %d\n" % ZONE_TTL, soa("cluster.local.")]
    for k in range(N_NS):
        for j in range(N_SVC):
            c.append("svc%d.ns%d.svc IN AAAA fd00:10:96::%x:%x\n" % (j, k, k + 1, j + 1))
    # one namespace whose every name exists, for cold in-cluster lookups
    c.append("*.wsvc.svc IN AAAA fd00:10:96:ffff::1\n")
    with open(os.path.join(out, "zones", "cluster.local.zone"), "w") as f:
        f.writelines(c)
    return N_V4 + N_DS + N_V6 + N_NS * N_SVC


def getaddrinfo_queries(name, pod_ns, answered):
    """Queries glibc sends for getaddrinfo(name, AF_UNSPEC) with ndots:5.

    `answered(fqdn)` says whether the candidate has an answer (stops the walk).
    A name with fewer than NDOTS dots tries the search list first, then the
    name as is; each candidate costs an A query and an AAAA query.
    """
    cands = []
    if name.count(".") < NDOTS:
        cands = [name + "." + s.format(ns=pod_ns) for s in SEARCH] + [name]
    else:
        cands = [name] + [name + "." + s.format(ns=pod_ns) for s in SEARCH]
    q = []
    for c in cands:
        q.append((c, "A"))
        q.append((c, "AAAA"))
        if answered(c):
            break
    return q


def warm_pod_answered(fqdn):
    if fqdn.endswith(".bench.example"):
        return True
    parts = fqdn.split(".")
    # svc<j>.ns<k>.svc.cluster.local exists; anything deeper does not
    return (len(parts) == 5 and parts[0].startswith("svc") and parts[1].startswith("ns")
            and parts[2:] == ["svc", "cluster", "local"])


def cold_pod_answered(fqdn):
    if fqdn.endswith(".bench.example"):
        return True
    parts = fqdn.split(".")
    return len(parts) == 5 and parts[1] == "wsvc" and parts[2:] == ["svc", "cluster", "local"]


def pod_lookups_warm(rng, n_lookups):
    """Lookups drawn from a fixed population: 60% external (70% A-only,
    30% dual-stack), 25% a service in the pod's own namespace (short name),
    15% a service in another namespace (svc.ns)."""
    out = []
    for _ in range(n_lookups):
        pod_ns = "ns%d" % rng.randrange(N_NS)
        r = rng.random()
        if r < 0.60:
            if rng.random() < 0.7:
                name = "a%d.v4.bench.example" % rng.randrange(N_V4)
            else:
                name = "d%d.ds.bench.example" % rng.randrange(N_DS)
        elif r < 0.85:
            name = "svc%d" % rng.randrange(N_SVC)
            # same namespace: the first candidate answers
            out.extend([(name + "." + pod_ns + ".svc.cluster.local", "A"),
                        (name + "." + pod_ns + ".svc.cluster.local", "AAAA")])
            continue
        else:
            other = rng.randrange(N_NS)
            name = "svc%d.ns%d" % (rng.randrange(N_SVC), other)
        out.extend(getaddrinfo_queries(name, pod_ns, warm_pod_answered))
    return out


def pod_lookups_cold(rng, n_queries, tag):
    """Every looked-up name unique: 60% external (70% A-only wildcard, 30%
    dual-stack wildcard), 40% in-cluster cross-namespace "<u>.wsvc"."""
    out = []
    i = 0
    while len(out) < n_queries:
        pod_ns = "ns%d" % rng.randrange(N_NS)
        u = "%s%x" % (tag, i)
        i += 1
        r = rng.random()
        if r < 0.60:
            name = "%s.%s.bench.example" % (u, "w4" if rng.random() < 0.7 else "wd")
        else:
            name = "%s.wsvc" % u
        out.extend(getaddrinfo_queries(name, pod_ns, cold_pod_answered))
    return out[:n_queries]


def write_queries(path, qs):
    with open(path, "w") as f:
        f.writelines("%s %s\n" % q for q in qs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--cold-queries", type=int, default=1_000_000,
                    help="unique queries per cold throughput file (default 1,000,000)")
    ap.add_argument("--paced-queries", type=int, default=12_000,
                    help="queries per cold paced file (default 12,000)")
    ap.add_argument("--seed", type=int, default=6147)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    out = a.outdir
    os.makedirs(os.path.join(out, "q"), exist_ok=True)
    names = write_zones(out)

    # warm files: the population in shuffled order (dnsperf loops over a file)
    synth = [("a%d.v4.bench.example" % i, "AAAA") for i in range(N_V4)]
    rng.shuffle(synth)
    write_queries(os.path.join(out, "q", "synth-warm.txt"), synth)
    write_queries(os.path.join(out, "q", "synth-warm-paced.txt"), synth)

    pod = pod_lookups_warm(rng, 4000)
    write_queries(os.path.join(out, "q", "pod-warm.txt"), pod)
    write_queries(os.path.join(out, "q", "pod-warm-paced.txt"), pod)

    pas = [("a%d.v4.bench.example" % i, "A") for i in range(N_V4)] + \
          [("d%d.ds.bench.example" % i, "A") for i in range(N_DS)]
    rng.shuffle(pas)
    write_queries(os.path.join(out, "q", "pass-warm.txt"), pas)
    write_queries(os.path.join(out, "q", "pass-warm-paced.txt"), pas)

    # cold files: unique names; the paced file uses another tag so it never
    # hits what the throughput run cached
    for tag, n, suffix in (("t", a.cold_queries, ""), ("p", a.paced_queries, "-paced")):
        write_queries(os.path.join(out, "q", "synth-cold%s.txt" % suffix),
                      [("%s%x.w4.bench.example" % (tag, i), "AAAA") for i in range(n)])
        write_queries(os.path.join(out, "q", "pass-cold%s.txt" % suffix),
                      [("%s%x.w4.bench.example" % (tag, i), "A") for i in range(n)])
        write_queries(os.path.join(out, "q", "pod-cold%s.txt" % suffix),
                      pod_lookups_cold(rng, n, tag))

    nx = sum(1 for n, t in pod if not warm_pod_answered(n))
    with open(os.path.join(out, "SUMMARY"), "w") as f:
        f.write("zone names: %d (+ wildcards *.w4, *.wd, *.w6, *.wsvc)\n" % names)
        f.write("warm pod mix: %d queries, %.0f%% NXDOMAIN\n" % (len(pod), 100.0 * nx / len(pod)))
    print(open(os.path.join(out, "SUMMARY")).read(), end="")


if __name__ == "__main__":
    main()
