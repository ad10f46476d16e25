#!/usr/bin/env bash
# Comparative DNS64 benchmark: dns64d against Unbound, BIND 9, Knot Resolver,
# PowerDNS Recursor (each a DNS64 forwarder) and dnsdist (pure proxy), all
# forwarding to one knotd authoritative upstream, inside a private network
# namespace. Every scenario runs under dnsperf (one query per datagram, as
# users and pods send them: the ranking) and under bench/blast (batching, the
# saturation view); bench/naive.c, a fixed-answer responder, is the floor.
# See bench/README.md for the method.
#
#   bench/run.sh                 # full run: 3 repetitions, every system/mix/mode
#   bench/run.sh --quick         # 1 repetition, short runs (a smoke test, ~5 min)
#   bench/run.sh --systems dns64d,unbound --mixes synth --modes cold --reps 5
#   bench/run.sh --report-only   # rewrite docs/PERFORMANCE.md from the last results
#
# Options:
#   --reps N           repetitions (default 3)
#   --duration S       seconds per saturating throughput run (default 8)
#   --paced S          seconds of the paced latency run (default 5)
#   --rate Q           paced rate in queries/s (default 1000)
#   --outstanding N    queries outstanding in the saturating run (default 100)
#   --loadgens LIST    comma list of: dnsperf (one query per datagram: ranks)
#                      blast (bench/blast.c, batching: saturation view);
#                      default dnsperf,blast (--loadgen L: one of them)
#   --dnsperf-procs N  dnsperf processes in parallel, each pinned to LOAD_CPU
#                      (or one per CPU of LOAD_CPUS), sharing -q (default 1)
#   --clients N        dnsperf -c: client sockets per dnsperf (default 16)
#   --syscalls S       seconds of the extra dnsperf run under `perf stat`
#                      that counts the server's syscalls (default 2; 0: off)
#   --no-rt            do not raise server, knotd and dnsperf to SCHED_FIFO for
#                      the paced latency run (see bench/README.md)
#   --systems LIST     comma list of: dns64d dns64d2 unbound bind kresd pdns dnsdist naive
#                      (dns64d2: 2 workers and 2 SO_REUSEPORT sockets, the
#                      scaling check; on the server's CPU unless SCALE_CPUS;
#                      naive: bench/naive.c, warm runs only)
#   --mixes LIST       comma list of: synth pod pass
#   --modes LIST       comma list of: warm cold
#   --quick            --reps 1 --duration 3 --paced 2, smaller cold files
#   --profile          also record a perf profile of dns64d for each mode and mix
#   --no-install       do not apt-get install
#   --no-build         use an existing dns64d binary (DNS64D_BIN or the default)
#   --no-doc           do not (re)write docs/PERFORMANCE.md
#   --report-only      only regenerate docs/PERFORMANCE.md from RESULTS
#   --work DIR         scratch directory (default /tmp/dns64d-bench)
#
# Environment: DNS64D_BIN (binary to test), DNS64D_REPO (source tree, default
# the parent of bench/), CARGO_TARGET_DIR (build dir,
# default /tmp/bench-target), SUT_CPU (default 0), LOAD_CPU (default 1),
# SCALE_CPUS (CPUs of dns64d2, default SUT_CPU), LOAD_CPUS (CPUs of the
# dnsperf processes, default LOAD_CPU), DNS64D_ENV (extra environment for
# dns64d, e.g. DNS64D_ENV="DNS64D_UDP_LOOP=epoll" to compare receive loops),
# RESULTS_DIR (default bench/results).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# the dns64d source tree (built with cargo, and where docs/PERFORMANCE.md goes)
REPO=${DNS64D_REPO:-$(cd "$HERE/.." && pwd)}

REPS=3
DUR=8
PACED=5
RATE=1000
OUTSTANDING=100
LOADGENS=dnsperf,blast
DNSPERF_PROCS=1
CLIENTS=16
SC_DUR=2
RT_PACED=1
SYSTEMS=dns64d,dns64d2,unbound,bind,kresd,pdns,dnsdist,naive
MIXES=synth,pod,pass
MODES=warm,cold
QUICK=0
PROFILE=0
INSTALL=1
BUILD=1
DOC=1
REPORT_ONLY=0
WORK=${WORK:-/tmp/dns64d-bench}
SUT_CPU=${SUT_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
SUT_PORT=5353
UP_PORT=5300
RESULTS_DIR=${RESULTS_DIR:-$HERE/results}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/bench-target}
DNS64D_BIN=${DNS64D_BIN:-$CARGO_TARGET_DIR/release/dns64d}
INNER=0

ARGS=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) REPS=$2; shift ;;
        --duration) DUR=$2; shift ;;
        --paced) PACED=$2; shift ;;
        --rate) RATE=$2; shift ;;
        --outstanding) OUTSTANDING=$2; shift ;;
        --loadgen|--loadgens) LOADGENS=$2; shift ;;
        --dnsperf-procs) DNSPERF_PROCS=$2; shift ;;
        --clients) CLIENTS=$2; shift ;;
        --syscalls) SC_DUR=$2; shift ;;
        --no-rt) RT_PACED=0 ;;
        --systems) SYSTEMS=$2; shift ;;
        --mixes) MIXES=$2; shift ;;
        --modes) MODES=$2; shift ;;
        --quick) QUICK=1; REPS=1; DUR=3; PACED=2 ;;
        --profile) PROFILE=1 ;;
        --no-install) INSTALL=0 ;;
        --no-build) BUILD=0 ;;
        --no-doc) DOC=0 ;;
        --report-only) REPORT_ONLY=1 ;;
        --work) WORK=$2; shift ;;
        --inner) INNER=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
for l in ${LOADGENS//,/ }; do
    case $l in blast|dnsperf) ;; *) echo "run.sh: --loadgens takes dnsperf and blast" >&2; exit 2 ;; esac
done
LOADGENS=${LOADGENS//,/ }
LOAD_CPUS=${LOAD_CPUS:-$LOAD_CPU}
SYSTEMS=${SYSTEMS//,/ }
MIXES=${MIXES//,/ }
MODES=${MODES//,/ }
DATA=$WORK/data
RUN=$WORK/run
RAW=$WORK/raw
CSV=$RESULTS_DIR/results.csv

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

# --------------------------------------------------------------------------
# outer part: install, build, generate, then re-enter in a private namespace
# --------------------------------------------------------------------------

# the tools every run needs, then each system's own package
PKGS=(dnsperf knot knot-dnsutils bind9-dnsutils iproute2 util-linux python3 gcc libc6-dev
      linux-perf strace)
for sys in $SYSTEMS; do
    case $sys in
        unbound) PKGS+=(unbound) ;;
        bind) PKGS+=(bind9) ;;
        kresd) PKGS+=(knot-resolver) ;;
        pdns) PKGS+=(pdns-recursor) ;;
        dnsdist) PKGS+=(dnsdist) ;;
    esac
done

install_pkgs() {
    local missing=() p
    for p in "${PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && { log "packages already installed"; return; }
    log "installing: ${missing[*]}"
    # The packages' init scripts would start system-wide resolvers on port 53:
    # forbid service starts while installing (policy-rc.d), unless the machine
    # already has such a policy.
    local made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    # shellcheck disable=SC2064
    trap "[ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d" EXIT
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
    trap - EXIT
}

versions() {
    {
        echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "kernel: $(uname -r)"
        echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') ($(nproc) cores)"
        echo "dns64d: $("$DNS64D_BIN" --version 2>&1 | head -1) (git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet -- src Cargo.toml Cargo.lock 2>/dev/null || echo ', with uncommitted changes in src'))"
        local p
        for p in dnsperf unbound bind9 knot-resolver pdns-recursor dnsdist knot; do
            echo "$p: $(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo 'not installed')"
        done
        echo "rustc: $(rustc --version 2>/dev/null || echo '?')"
        echo "load: $LOADGENS; dnsperf: $DNSPERF_PROCS process(es), -c $CLIENTS, on CPU(s) $LOAD_CPUS; blast: bench/blast.c sha1 $(sha1sum "$HERE/blast.c" | cut -c1-12); naive: bench/naive.c sha1 $(sha1sum "$HERE/naive.c" | cut -c1-12); $(gcc --version | head -1)"
        echo "perf: $(perf --version 2>/dev/null || echo 'not installed')"
        if [ -n "${DNS64D_ENV:-}" ]; then echo "dns64d environment: $DNS64D_ENV"; fi
    } > "$RESULTS_DIR/versions.txt"
}

make_doc() {
    [ "$DOC" = 1 ] || return 0
    mkdir -p "$REPO/docs"
    python3 "$HERE/report.py" --results "$RESULTS_DIR" --out "$REPO/docs/PERFORMANCE.md"
    log "wrote docs/PERFORMANCE.md"
}

if [ "$INNER" = 0 ]; then
    mkdir -p "$RESULTS_DIR"
    if [ "$REPORT_ONLY" = 1 ]; then make_doc; exit 0; fi
    [ "$(id -u)" = 0 ] || die "run as root (apt-get, unshare -n, taskset)"
    [ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (server on one, dnsperf + upstream on the other)"
    [ "$INSTALL" = 1 ] && install_pkgs
    need=(dnsperf knotd dig unshare taskset python3 gcc)
    for sys in $SYSTEMS; do
        case $sys in
            unbound) need+=(unbound) ;; bind) need+=(named) ;; kresd) need+=(kresd) ;;
            pdns) need+=(pdns_recursor) ;; dnsdist) need+=(dnsdist) ;;
        esac
    done
    [ "$SC_DUR" != 0 ] && need+=(perf)
    for c in "${need[@]}"; do
        command -v "$c" >/dev/null || die "$c not found (drop --no-install?)"
    done
    if [ "$BUILD" = 1 ]; then
        log "building dns64d (cargo build --release --locked, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
        (cd "$REPO" && cargo build --release --locked --quiet)
    fi
    [ -x "$DNS64D_BIN" ] || die "no dns64d binary at $DNS64D_BIN"
    mkdir -p "$WORK"
    gcc -O2 -Wall -o "$WORK/blast" "$HERE/blast.c" || die "cannot build bench/blast.c"
    gcc -O2 -Wall -o "$WORK/naive" "$HERE/naive.c" || die "cannot build bench/naive.c"
    # the generated files depend only on the generator and its arguments
    if [ "$QUICK" = 1 ]; then COLD_Q=300000; PACED_Q=$((RATE * PACED + 2000)); else COLD_Q=2000000; PACED_Q=$((RATE * PACED + 2000)); fi
    stamp="$(sha1sum "$HERE/gen.py" | cut -c1-12) $COLD_Q $PACED_Q"
    if [ "$(cat "$DATA/STAMP" 2>/dev/null)" != "$stamp" ]; then
        log "generating zones and query files in $DATA"
        rm -rf "$DATA"
        python3 "$HERE/gen.py" "$DATA" --cold-queries "$COLD_Q" --paced-queries "$PACED_Q" >&2
        echo "$stamp" > "$DATA/STAMP"
    fi
    # Cold dnsperf runs: the measured run takes the first three quarters of
    # the unique names, the syscall-counting run the last quarter (each run
    # must see names nobody asked before). With several dnsperf processes,
    # each takes every Nth line of its part.
    for mix in synth pod pass; do
        f=$DATA/q/$mix-cold.txt
        [ -f "$f" ] || continue
        n=$(wc -l < "$f"); cut=$((n * 3 / 4))
        for i in $(seq 0 $((DNSPERF_PROCS - 1))); do
            [ -f "$f.a.$DNSPERF_PROCS.$i" ] || awk -v c="$cut" -v k="$DNSPERF_PROCS" -v i="$i" 'NR <= c && NR % k == i' "$f" > "$f.a.$DNSPERF_PROCS.$i"
        done
        [ -f "$f.b" ] || tail -n +$((cut + 1)) "$f" > "$f.b"
    done
    versions
    # a fresh results file per invocation; the previous one is kept beside it
    [ -f "$CSV" ] && mv "$CSV" "$CSV.prev"
    printf '%s\n' "$0 ${ARGS[*]}" > "$RESULTS_DIR/command.txt"
    # The kernel defers softirq work (here: delivering the datagrams a server
    # sends over loopback) to ksoftirqd/N when there is a lot of it; that CPU
    # time is the server's work but not in its schedstat. The namespace's own
    # /proc cannot see kernel threads, so the host's is bind-mounted for it.
    KSI_PID=$(pgrep -x "ksoftirqd/$SUT_CPU" | head -1 || true)
    HOSTPROC=$WORK/hostproc
    mkdir -p "$HOSTPROC"
    if [ -n "$KSI_PID" ] && ! mountpoint -q "$HOSTPROC"; then
        mount --bind /proc "$HOSTPROC" || KSI_PID=
    fi
    log "entering a private network + PID namespace (unshare -n -p)"
    # --pid --fork --kill-child: when the inner script exits (or is killed),
    # the kernel kills every process left in the namespace: nothing survives.
    unshare --net --pid --fork --mount-proc --kill-child -- \
        env DNS64D_BIN="$DNS64D_BIN" WORK="$WORK" SUT_CPU="$SUT_CPU" LOAD_CPU="$LOAD_CPU" LOAD_CPUS="$LOAD_CPUS" SCALE_CPUS="${SCALE_CPUS:-}" RESULTS_DIR="$RESULTS_DIR" DNS64D_ENV="${DNS64D_ENV:-}" \
        env KSI_PID="${KSI_PID:-}" HOSTPROC="$HOSTPROC" bash "$0" --inner "${ARGS[@]}" || rc=$?
    mountpoint -q "$HOSTPROC" && umount "$HOSTPROC"
    [ "${rc:-0}" = 0 ] || exit "$rc"
    make_doc
    exit 0
fi

# --------------------------------------------------------------------------
# inner part: runs as PID 1 of a fresh network + PID namespace
# --------------------------------------------------------------------------

PIDS=()
cleanup() {
    local rc=$? p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    [ $rc = 0 ] || log "inner part failed (rc=$rc); every process of the namespace is killed with it"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip link set lo up
ip -6 addr add ::1/128 dev lo 2>/dev/null || true
mkdir -p "$RUN" "$RAW"

# Background starts call taskset directly (not through a function, which would
# fork a subshell) so that $! is the server's own PID: taskset execs it.
on_load() { taskset -c "$LOAD_CPU" "$@"; }

# Sum of on-CPU nanoseconds of every thread (first field of schedstat).
cpu_ns() {
    local s=0 f a
    for f in /proc/"$1"/task/*/schedstat; do
        { read -r a _ < "$f"; } 2>/dev/null || continue
        s=$((s + a))
    done
    echo "$s"
}
# utime+stime of the whole process (includes exited threads), in ns.
stat_ns() {
    local st; st=$(cat /proc/"$1"/stat 2>/dev/null) || { echo 0; return; }
    st=${st##*) }
    # shellcheck disable=SC2086
    set -- $st
    echo $(( (${12} + ${13}) * 1000000000 / $(getconf CLK_TCK) ))
}
now_ns() { date +%s%N; }
# on-CPU ns of ksoftirqd on the server's CPU (0 when it cannot be seen)
ksi_ns() {
    local a=0
    [ -n "${KSI_PID:-}" ] && { read -r a _ < "$HOSTPROC/$KSI_PID/schedstat"; } 2>/dev/null
    echo "${a:-0}"
}
hwm_kb() { awk '/^VmHWM/ {print $2}' /proc/"$1"/status 2>/dev/null || echo 0; }
threads() { ls /proc/"$1"/task 2>/dev/null | wc -l; }
# "voluntary nonvoluntary" context switches, summed over every thread.
csw() {
    cat /proc/"$1"/task/*/status 2>/dev/null | awk '
        /^voluntary_ctxt_switches/ {v += $2} /^nonvoluntary_ctxt_switches/ {n += $2}
        END {printf "%d %d\n", v, n}'
}

q() { # q NAME TYPE -> "STATUS ANSWERS..."
    local out
    out=$(dig +tries=3 +time=1 @127.0.0.1 -p "$SUT_PORT" "$1" "$2" 2>&1) || true
    printf "%s\n" "$out" >> "$RUN/verify.log"
    printf '%s %s\n' "$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$out")" \
        "$(awk '/^;; ANSWER SECTION/ {a=1; next} /^$/ {a=0} a && $4 ~ /^(A|AAAA)$/ {printf "%s ", $5}' <<<"$out")"
}

start_knot() {
    local d=$RUN/knot
    rm -rf "$d"; mkdir -p "$d/db"
    sed -e "s|@RUNDIR@|$d|g; s|@UP_PORT@|$UP_PORT|g; s|@ZONEDIR@|$DATA/zones|g" \
        "$HERE/conf/knot.conf" > "$d/knot.conf"
    taskset -c "$LOAD_CPU" knotd -c "$d/knot.conf" 2> "$d/knotd.log" &
    KNOT_PID=$!
    PIDS+=("$KNOT_PID")
    for _ in $(seq 50); do
        [ "$(dig +short +tries=1 +time=1 @127.0.0.1 -p $UP_PORT check.v4.bench.example A 2>/dev/null)" = 198.18.99.1 ] && return 0
        sleep 0.2
    done
    cat "$d/knotd.log" >&2
    die "knotd did not come up"
}

# start_sut SYSTEM FILTER_A -> sets SUT_PID
start_sut() {
    local sys=$1 fa=$2 d=$RUN/$1
    rm -rf "$d"; mkdir -p "$d"
    local subst="s|@RUNDIR@|$d|g; s|@UP_PORT@|$UP_PORT|g; s|@SUT_PORT@|$SUT_PORT|g; s|@FILTER_A@|$fa|g"
    case $sys in
        dns64d|dns64d2|dns64d+*|dns64d2+*)
            # dns64d+VAR=VALUE[:VAR=VALUE]: with that environment (the
            # experiments' switches), e.g. dns64d+DNS64D_UDP_SPIN_US=20
            local extra=()
            case $sys in *+*) IFS=: read -r -a extra <<<"${sys#*+}"; sys=${sys%%+*} ;; esac
            # dns64d2: the same server with 2 workers and 2 UDP sockets, on
            # the server's CPU (SCALE_CPUS=0,1 lets it use both; then its
            # second worker competes with the load generator and knotd).
            local workers=1 cpus=$SUT_CPU
            [ "$sys" = dns64d2 ] && { workers=2; cpus=${SCALE_CPUS:-$SUT_CPU}; }
            sed -e "$subst; s|@WORKERS@|$workers|g" "$HERE/conf/dns64d.toml" > "$d/dns64d.toml"
            "$DNS64D_BIN" check-config "$d/dns64d.toml" > "$d/check.log" 2>&1 \
                || { cat "$d/check.log" >&2; die "dns64d check-config failed"; }
            # shellcheck disable=SC2086
            env ${DNS64D_ENV:-} "${extra[@]}" taskset -c "$cpus" "$DNS64D_BIN" --config "$d/dns64d.toml" > "$d/log" 2>&1 & ;;
        naive)
            taskset -c "$SUT_CPU" "$WORK/naive" -p "$SUT_PORT" > "$d/log" 2>&1 & ;;
        unbound)
            sed -e "$subst" "$HERE/conf/unbound.conf" > "$d/unbound.conf"
            taskset -c "$SUT_CPU" unbound -d -c "$d/unbound.conf" > "$d/log" 2>&1 & ;;
        bind)
            sed -e "$subst" "$HERE/conf/named.conf" > "$d/named.conf"
            taskset -c "$SUT_CPU" named -f -n 1 -c "$d/named.conf" > "$d/log" 2>&1 & ;;
        kresd)
            sed -e "$subst" "$HERE/conf/kresd.conf" > "$d/kresd.conf"
            taskset -c "$SUT_CPU" kresd -n -q -c "$d/kresd.conf" "$d" > "$d/log" 2>&1 < /dev/null & ;;
        pdns)
            sed -e "$subst" "$HERE/conf/recursor.conf" > "$d/recursor.conf"
            taskset -c "$SUT_CPU" pdns_recursor --config-dir="$d" > "$d/log" 2>&1 & ;;
        dnsdist)
            sed -e "$subst" "$HERE/conf/dnsdist.conf" > "$d/dnsdist.conf"
            taskset -c "$SUT_CPU" dnsdist --supervised --disable-syslog -C "$d/dnsdist.conf" > "$d/log" 2>&1 & ;;
        *) die "unknown system $sys" ;;
    esac
    SUT_PID=$!
    PIDS+=("$SUT_PID")
    for _ in $(seq 100); do
        kill -0 "$SUT_PID" 2>/dev/null || { cat "$d/log" >&2; die "$sys exited at start-up"; }
        case "$(dig +short +tries=1 +time=1 @127.0.0.1 -p "$SUT_PORT" bench.example SOA 2>/dev/null)" in
            "ns.bench.example. hostmaster.bench.example. "*) return 0 ;;
            # naive answers every question with the same AAAA
            "64:ff9b::c612:6301") [ "$sys" = naive ] && return 0 ;;
        esac
        sleep 0.2
    done
    cat "$d/log" >&2
    die "$sys did not answer within 20 s"
}

stop_sut() {
    kill -TERM "$SUT_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SUT_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SUT_PID" 2>/dev/null || true
    wait "$SUT_PID" 2>/dev/null || true
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$SUT_PID" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# Prove that the system does what it is configured for before measuring it.
verify() {
    local sys=$1 fa=$2 r
    r=$(q check.v4.bench.example AAAA)
    if [ "$sys" = naive ]; then
        [ "$r" = "NOERROR 64:ff9b::c612:6301 " ] || die "naive: AAAA check.v4 gave '$r'"
        return 0
    elif [ "$sys" = dnsdist ]; then
        [ "$r" = "NOERROR " ] || die "dnsdist: AAAA check.v4 should be NODATA (pure proxy), got '$r'"
        r=$(q check.v4.bench.example A)
        [ "$r" = "NOERROR 198.18.99.1 " ] || die "dnsdist: A check.v4 expected 198.18.99.1, got '$r'"
    else
        [ "$r" = "NOERROR 64:ff9b::c612:6301 " ] || die "$sys does not synthesize: AAAA check.v4.bench.example gave '$r' (want 64:ff9b::c612:6301)"
        r=$(q check.v4.bench.example A)
        if [ "${sys:0:6}" = dns64d ] && [ "$fa" = strip ]; then
            [ "$r" = "NOERROR " ] || die "$sys: filter.a=strip but A check.v4 gave '$r'"
        else
            [ "$r" = "NOERROR 198.18.99.1 " ] || die "$sys: A check.v4 gave '$r' (want 198.18.99.1)"
        fi
        r=$(q s1.v6.bench.example AAAA)
        [ "$r" = "NOERROR 2001:db8:6::2 " ] || die "$sys: native AAAA s1.v6 gave '$r'"
    fi
    r=$(q check.nope.ns3.svc.cluster.local AAAA)
    [ "${r%% *}" = NXDOMAIN ] || die "$sys: NXDOMAIN expected for check.nope.ns3.svc.cluster.local, got '$r'"
}

# dnsperf_stats FILE -> "sent completed lost qps rcodes"
dnsperf_stats() {
    awk '
        /Queries sent:/ {s=$3}
        /Queries completed:/ {c=$3}
        /Queries lost:/ {l=$3}
        /Queries per second:/ {qps=$4}
        /Response codes:/ {sub(/.*Response codes: */, ""); gsub(/ \([0-9.]+%\)/, ""); gsub(/, /, "/"); gsub(/ /, "="); rc=$0}
        END {printf "%s %s %s %s %s\n", s, c, l, qps, rc}' "$1"
}

# The saturating load generator; blast takes dnsperf's flags and prints its summary lines.
load_cmd() { if [ "$1" = blast ]; then echo "$WORK/blast"; else echo dnsperf; fi; }

# dnsperf_load TAG FILE NFLAG... : DNSPERF_PROCS dnsperf processes in
# parallel, each pinned (round robin over LOAD_CPUS) with its share of the
# outstanding queries; their summaries go to $RAW/TAG.perf.N, and the sum
# (in dnsperf's own summary lines) to $RAW/TAG.perf.
dnsperf_load() {
    local tag=$1 file=$2; shift 2
    local cpus i pids=() q=$(( (OUTSTANDING + DNSPERF_PROCS - 1) / DNSPERF_PROCS )) f
    read -r -a cpus <<<"${LOAD_CPUS//,/ }"
    for i in $(seq 0 $((DNSPERF_PROCS - 1))); do
        f=$file
        [ -f "$file.a.$DNSPERF_PROCS.$i" ] && f=$file.a.$DNSPERF_PROCS.$i
        taskset -c "${cpus[$((i % ${#cpus[@]}))]}" dnsperf -s 127.0.0.1 -p "$SUT_PORT" -d "$f" "$@" \
            -l "$DUR" -q "$q" -c "$CLIENTS" -t 2 > "$RAW/$tag.perf.$i" 2>&1 &
        pids+=("$!")
    done
    for i in "${pids[@]}"; do wait "$i" || true; done
    # one summary: counts add up, QPS adds up (the processes ran side by side)
    awk '
        /Queries sent:/ {s += $3} /Queries completed:/ {c += $3} /Queries lost:/ {l += $3}
        /Queries per second:/ {qps += $4}
        /Response codes:/ && !rc {rc = $0}
        END {
            printf "  Queries sent:         %d\n  Queries completed:    %d\n  Queries lost:         %d\n", s, c, l
            print rc
            printf "  Queries per second:   %f\n", qps
        }' "$RAW/$tag".perf.[0-9]* > "$RAW/$tag.perf"
}

# Syscalls of the server over a short extra dnsperf run, counted by `perf
# stat` (tracepoints, every thread): "completed total epoll recv send futex
# uring". A separate run because the tracepoints cost every server a little per
# syscall. Counted from before dnsperf starts to after it ends: an idle server
# makes (almost) no syscalls, so per answered query = count / completed.
SC_EVENTS=(raw_syscalls:sys_enter
    syscalls:sys_enter_epoll_wait syscalls:sys_enter_epoll_pwait syscalls:sys_enter_epoll_pwait2
    syscalls:sys_enter_poll syscalls:sys_enter_ppoll syscalls:sys_enter_select syscalls:sys_enter_pselect6
    syscalls:sys_enter_recvfrom syscalls:sys_enter_recvmsg syscalls:sys_enter_recvmmsg syscalls:sys_enter_read
    syscalls:sys_enter_sendto syscalls:sys_enter_sendmsg syscalls:sys_enter_sendmmsg syscalls:sys_enter_write
    syscalls:sys_enter_futex syscalls:sys_enter_io_uring_enter)
count_syscalls() {
    local tag=$1 file=$2; shift 2
    if [ "$SC_DUR" = 0 ] || ! command -v perf >/dev/null; then echo "0 0 0 0 0 0 0"; return; fi
    local ev; ev=$(IFS=,; echo "${SC_EVENTS[*]}")
    perf stat -x, -e "$ev" -p "$SUT_PID" -o "$RAW/$tag.sc" > /dev/null 2>&1 &
    local pp=$!
    sleep 0.3
    on_load dnsperf -s 127.0.0.1 -p "$SUT_PORT" -d "$file" "$@" -l "$SC_DUR" -q "$OUTSTANDING" -c "$CLIENTS" -t 2 > "$RAW/$tag.scperf" 2>&1 || true
    kill -INT "$pp" 2>/dev/null || true
    wait "$pp" 2>/dev/null || true
    local c; c=$(awk '/Queries completed:/ {print $3}' "$RAW/$tag.scperf")
    awk -F, -v c="${c:-0}" '
        $3 == "raw_syscalls:sys_enter" {t = $1}
        $3 ~ /epoll|poll|select/ {e += $1}
        $3 ~ /recv|_read$/ {r += $1}
        $3 ~ /send|_write$/ {w += $1}
        $3 ~ /futex/ {f += $1}
        $3 ~ /io_uring/ {u += $1}
        END {printf "%d %d %d %d %d %d %d\n", c, t, e, r, w, f, u}' "$RAW/$tag.sc"
}

run_one() {
    local rep=$1 mode=$2 mix=$3 sys=$4 lg=$5
    local fa=strip
    [ "$mix" = pass ] && fa=pass
    local tag="$rep-$mode-$mix-$sys-$lg" file=$DATA/q/$mix-$mode.txt paced=$DATA/q/$mix-$mode-paced.txt
    local nflag=()
    [ "$mode" = cold ] && nflag=(-n 1)
    start_sut "$sys" "$fa"
    verify "$sys" "$fa"
    if [ "$mode" = warm ]; then
        # two passes through the file fill every cache; not measured
        on_load dnsperf -s 127.0.0.1 -p "$SUT_PORT" -d "$file" -n 2 -l 60 -t 2 > "$RAW/$tag.prime" 2>&1
        on_load dnsperf -s 127.0.0.1 -p "$SUT_PORT" -d "$paced" -n 1 -l 30 -t 2 > /dev/null 2>&1
    fi
    local c0 s0 k0 t0 c1 s1 k1 t1 w0 w1 i0 i1
    c0=$(cpu_ns "$SUT_PID"); s0=$(stat_ns "$SUT_PID"); k0=$(cpu_ns "$KNOT_PID"); w0=$(csw "$SUT_PID"); i0=$(ksi_ns); t0=$(now_ns)
    if [ "$lg" = dnsperf ]; then
        dnsperf_load "$tag" "$file" "${nflag[@]}"
    else
        on_load "$WORK/blast" -s 127.0.0.1 -p "$SUT_PORT" -d "$file" "${nflag[@]}" -l "$DUR" -q "$OUTSTANDING" -t 2 > "$RAW/$tag.perf" 2>&1
    fi
    c1=$(cpu_ns "$SUT_PID"); s1=$(stat_ns "$SUT_PID"); k1=$(cpu_ns "$KNOT_PID"); w1=$(csw "$SUT_PID"); i1=$(ksi_ns); t1=$(now_ns)
    local sc="0 0 0 0 0 0 0" lat="nan nan nan 0 0" paced_cpu=0 paced_csw=0 pc0 pc1 pw0 pw1
    if [ "$lg" = dnsperf ]; then
        local scfile=$file
        [ "$mode" = cold ] && scfile=$file.b
        sc=$(count_syscalls "$tag" "$scfile" "${nflag[@]}")
        # Paced run. The box is shared: other work on either core would put its
        # scheduler time slices into the tail. With RT_PACED the server's threads,
        # knotd and dnsperf run SCHED_FIFO for this run only (at 1,000 q/s they
        # use a few per cent of a core, so nobody is starved); then back to normal.
        local rt=()
        if [ "$RT_PACED" = 1 ]; then
            chrt -f -a -p 10 "$SUT_PID" > /dev/null && chrt -f -a -p 10 "$KNOT_PID" > /dev/null && rt=(chrt -f 10)
        fi
        # its CPU per query too: at RATE q/s every query is a wake-up of its own
        pc0=$(cpu_ns "$SUT_PID"); pw0=$(csw "$SUT_PID")
        on_load "${rt[@]}" dnsperf -s 127.0.0.1 -p "$SUT_PORT" -d "$paced" "${nflag[@]}" -l "$PACED" -Q "$RATE" -t 2 -v > "$RAW/$tag.paced" 2>&1
        pc1=$(cpu_ns "$SUT_PID"); pw1=$(csw "$SUT_PID")
        [ ${#rt[@]} -gt 0 ] && chrt -o -a -p 0 "$KNOT_PID" > /dev/null
        lat=$(python3 "$HERE/report.py" --latency "$RAW/$tag.paced")
        local a b c d
        read -r a b <<<"$pw0"; read -r c d <<<"$pw1"
        paced_cpu=$((pc1 - pc0)); paced_csw=$((c + d - a - b))
    fi
    local hwm thr
    hwm=$(hwm_kb "$SUT_PID"); thr=$(threads "$SUT_PID")
    kill -0 "$SUT_PID" 2>/dev/null || die "$sys died during the run"
    stop_sut
    local st
    st=$(dnsperf_stats "$RAW/$tag.perf")
    # rep mode mix system | sent completed lost qps rcodes | srv_cpu_ns srv_stat_ns wall_ns knot_cpu_ns
    # | p50 p99 p999 paced_completed paced_lost | rss threads | loadgen vcsw ivcsw | sc_completed sc_total sc_epoll sc_recv sc_send sc_futex sc_uring
    # | paced_cpu_ns paced_csw ksirq_cpu_ns
    local v0 n0 v1 n1
    read -r v0 n0 <<<"$w0"; read -r v1 n1 <<<"$w1"
    # shellcheck disable=SC2086
    set -- $st
    printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$rep" "$mode" "$mix" "$sys" \
        "$1" "$2" "$3" "$4" "$5" $((c1 - c0)) $((s1 - s0)) $((t1 - t0)) $((k1 - k0)) \
        "${lat// /,}" "$hwm" "$thr" "$lg" $((v1 - v0)) $((n1 - n0)) "${sc// /,}" "$paced_cpu" "$paced_csw" $((i1 - i0)) >> "$CSV"
    awk -F, -v tag="$tag" 'END {
        sc = ($24 > 0) ? sprintf(" sys/q=%.2f", $25/$24) : ""
        pc = ($31 > 0 && $17 > 0) ? sprintf(" paced: us/q=%.1f csw/q=%.2f", $31/1000/$17, $32/$17) : ""
        printf "%-34s qps=%8.0f lost=%s q/cpu-s=%8.0f (+ksoftirqd %8.0f) srv=%3.0f%% knot=%3.0f%% csw/q=%.3f%s p99=%sms rss=%sMB%s\n",
        tag, $8, $7, ($6/($10/1e9)), ($6/(($10+$33)/1e9)), 100*$10/$12, 100*$13/$12, ($22+$23)/($6>0?$6:1), sc, $15, int($19/1024+0.5), pc}' "$CSV" >&2
}

profile_dns64d() {
    command -v perf >/dev/null || { log "perf not installed: no profile"; return 0; }
    local mix mode
    for mode in $MODES; do
    for mix in $MIXES; do
        local fa=strip; [ "$mix" = pass ] && fa=pass
        local nflag=(); [ "$mode" = cold ] && nflag=(-n 1)
        local file=$DATA/q/$mix-$mode.txt tag=$mode-$mix
        start_sut dns64d "$fa"
        verify dns64d "$fa"
        [ "$mode" = warm ] && on_load dnsperf -s 127.0.0.1 -p "$SUT_PORT" -d "$file" -n 2 -l 60 -t 2 > /dev/null 2>&1
        log "perf record: dns64d, $mode $mix"
        perf record -F 499 --call-graph dwarf,8192 -p "$SUT_PID" -o "$RAW/perf-$tag.data" -- sleep "$DUR" \
            > "$RAW/perf-$tag.log" 2>&1 &
        local pp=$!
        sleep 0.5
        # the load the ranking uses (PROFILE_LOAD=blast: the saturation view)
        if [ "${PROFILE_LOAD:-dnsperf}" = dnsperf ]; then
            dnsperf_load "perf-$tag" "$file" "${nflag[@]}"
        else
            on_load "$WORK/blast" -s 127.0.0.1 -p "$SUT_PORT" -d "$file" "${nflag[@]}" -l "$DUR" -q "$OUTSTANDING" -t 2 > "$RAW/perf-$tag.perf" 2>&1 || true
        fi
        wait "$pp" || true
        stop_sut
        perf report -i "$RAW/perf-$tag.data" --no-children --sort symbol --percent-limit 0.7 --stdio 2>/dev/null \
            | grep -E '^ +[0-9.]+%' | sed 's/[ -]*$//' | head -40 > "$RESULTS_DIR/profile-$tag.txt" || true
        perf report -i "$RAW/perf-$tag.data" --children --sort symbol --percent-limit 1 --stdio -g none 2>/dev/null \
            | grep -E '^ +[0-9.]+%' | sed 's/[ -]*$//' | head -150 > "$RESULTS_DIR/profile-$tag-children.txt" || true
        perf report -i "$RAW/perf-$tag.data" --no-children --sort dso --stdio 2>/dev/null \
            | grep -E '^ +[0-9.]+%' | sed 's/[ -]*$//' > "$RESULTS_DIR/profile-$tag-dso.txt" || true
    done
    done
}

: > "$CSV"
echo "rep,mode,mix,system,sent,completed,lost,qps,rcodes,srv_cpu_ns,srv_stat_ns,wall_ns,knot_cpu_ns,p50_ms,p99_ms,p999_ms,paced_completed,paced_lost,rss_kb,threads,loadgen,vcsw,ivcsw,sc_completed,sc_total,sc_epoll,sc_recv,sc_send,sc_futex,sc_uring,paced_cpu_ns,paced_csw,ksirq_cpu_ns" > "$CSV"
start_knot
log "knotd up (pid $KNOT_PID, cpu $LOAD_CPU); systems: $SYSTEMS; mixes: $MIXES; modes: $MODES; load: $LOADGENS; reps: $REPS; ${DUR}s + ${PACED}s paced @ ${RATE} q/s"
read -r -a SYS_ARR <<<"$SYSTEMS"
for rep in $(seq "$REPS"); do
    # rotate the order each repetition so no system always runs first
    n=${#SYS_ARR[@]}; k=$(( (rep - 1) % n ))
    order=("${SYS_ARR[@]:k}" "${SYS_ARR[@]:0:k}")
    for mode in $MODES; do
        for mix in $MIXES; do
            for lg in $LOADGENS; do
                for sys in "${order[@]}"; do
                    # the fixed-answer floor has no upstream: warm runs only
                    [ "$sys" = naive ] && [ "$mode" != warm ] && continue
                    run_one "$rep" "$mode" "$mix" "$sys" "$lg"
                done
            done
        done
    done
done
if [ "$PROFILE" = 1 ]; then profile_dns64d; fi
log "done: $CSV"
