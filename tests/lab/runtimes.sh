# Sourced by tests/lab/run.sh: the language runtimes (Node.js, Go, Java,
# Python, Rust's hickory-resolver, next to glibc and musl) in the pod, each
# with a Kubernetes-style resolv.conf, through a plain resolver and through
# dns64d, over the scenarios where resolvers differ. Prints a table
# runtime x scenario and sets FAILED=1 when an observation is not the one
# recorded in EXPECT below.
#
# Uses from run.sh: POD, W, REPO, LAB_DIR, kind, field, pod_counter,
# pod_ports, reset_pod_counters, target_counter, use_gai, have_gai, the
# gai.conf texts, say, die. run.sh calls build_runtime_clients early, then
# run_runtime_matrix once the topology is up, then print_runtime_tables.

RT_DIR=$LAB_DIR/runtimes
CACHE=${LAB_CACHE:-${CARGO_TARGET_DIR:-$REPO/target}/lab-cache}
mkdir -p "$CACHE"

# ---------------------------------------------------------------- clients
# Each client prints one line: rt=LABEL count=N first=ADDR order=A,B,...
# connect=ok|timeout|refused|error|skip via=ADDR seen=ADDR [gai=FAIL err=CODE]
newer() { [ ! -e "$2" ] || [ "$1" -nt "$2" ]; } # newer SRC OUT: OUT is missing or older

build_runtime_clients() {
    say "building the runtime clients (cached in $CACHE)"
    # Go: standard library only, never a module download (GOPROXY=off).
    # Built with cgo (gcc is here) so GODEBUG=netdns=cgo can pick glibc.
    if newer "$RT_DIR/client.go" "$CACHE/client-go"; then
        (cd "$RT_DIR" && GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=1 \
            GOCACHE="$CACHE/go-build" GOPATH="$CACHE/gopath" \
            go build -o "$CACHE/client-go" client.go) || die "go build failed"
    fi
    # Java: compiled once by the JDK's in-process compiler; a JRE is enough.
    if newer "$RT_DIR/Client.java" "$CACHE/java/Client.class"; then
        mkdir -p "$CACHE/java"
        java "$RT_DIR/Compile.java" "$CACHE/java" "$RT_DIR/Client.java" || die "compiling Client.java failed"
    fi
    # Rust: hickory-resolver, the version in Cargo.lock; cargo caches the build.
    (cd "$REPO" && cargo build --locked --quiet --example lab_hickory) || die "cargo build --example lab_hickory failed"
    HICKORY_BIN=${CARGO_TARGET_DIR:-$REPO/target}/debug/examples/lab_hickory
    [ -x "$HICKORY_BIN" ] || die "no $HICKORY_BIN"
    NODE_VERSION=$(node --version)
    GO_VERSION=$(go env GOVERSION)
    JAVA_VERSION=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.version = //p')
    PY_VERSION=$(/usr/bin/python3 -c 'import platform; print(platform.python_version())')
    CARES_VERSION=$(node -p process.versions.ares)
}

# The runtimes, in table order, and how each is started.
RUNTIMES=(glibc musl node node-cares go go-cgo java java-v6 java-v4stack python python-asyncio hickory)
rt_run() { # rt_run RUNTIME NAME TIMEOUT_MS: the client's line, run inside the pod
    local rt=$1 name=$2 ms=$3 cmd
    case $rt in
    glibc) cmd=("$W/client-glibc" "$name" 80 "$ms") ;;
    musl) cmd=("$W/client-musl" "$name" 80 "$ms") ;;
    node) cmd=(node "$RT_DIR/client.js" "$name" 80 "$ms" lookup "$rt") ;;
    node-cares) cmd=(node "$RT_DIR/client.js" "$name" 80 "$ms" cares "$rt") ;;
    go) cmd=(env GODEBUG=netdns=go "$CACHE/client-go" "$name" 80 "$ms" "$rt") ;;
    go-cgo) cmd=(env GODEBUG=netdns=cgo "$CACHE/client-go" "$name" 80 "$ms" "$rt") ;;
    java) cmd=(java -Xshare:auto -XX:TieredStopAtLevel=1 -cp "$CACHE/java" Client "$name" 80 "$ms" "$rt") ;;
    java-v6) cmd=(java -Xshare:auto -XX:TieredStopAtLevel=1 -Djava.net.preferIPv6Addresses=true -cp "$CACHE/java" Client "$name" 80 "$ms" "$rt") ;;
    java-v4stack) cmd=(java -Xshare:auto -XX:TieredStopAtLevel=1 -Djava.net.preferIPv4Stack=true -cp "$CACHE/java" Client "$name" 80 "$ms" "$rt") ;;
    python) cmd=(/usr/bin/python3 "$RT_DIR/client.py" "$name" 80 "$ms" socket "$rt") ;;
    python-asyncio) cmd=(/usr/bin/python3 "$RT_DIR/client.py" "$name" 80 "$ms" asyncio "$rt") ;;
    hickory) cmd=("$HICKORY_BIN" "$name" 80 "$ms" "$rt") ;;
    *) die "unknown runtime $rt" ;;
    esac
    timeout 25 ip netns exec "$POD" "${cmd[@]}" 2>>"$W/runtimes.log" || true
}

# ---------------------------------------------------------------- scenarios
# id | name asked | plain resolver | dns64d | connect through plain (ms, 0 =
# resolve only) | gai.conf in the pod (a run.sh variable, empty: none)
# The plain resolver is 2001:db8:1::54, a dnsdist in front of knotd that
# fails AAAA for flaky.example. with SERVFAIL; dns64d strip and pass use it
# as their upstream. ::56 and ::55 are dnsdist forwarders adding ECS (the
# CoreDNS stand-in) in front of ::54 and of dns64d strip.
SCENARIOS=(
    "search-nx|service.example|2001:db8:1::54|2001:db8:1::64|1500"
    "classic-pass|service.example|-|2001:db8:1::65|0"
    "pass-gai-v4|service.example|-|2001:db8:1::65|0|PREFER_V4_SCOPE_GAI"
    "search-nodata|shadow.example|2001:db8:1::54|2001:db8:1::64|0"
    "tc-512|many.example|2001:db8:1::54|2001:db8:1::64|0"
    "aaaa-servfail|flaky.example|2001:db8:1::54|2001:db8:1::64|0"
    "ecs-forwarder|service.example|2001:db8:1::56|2001:db8:1::55|0"
)
SCENARIO_TEXT=(
    "search-nx: service.example, ndots:5 walks 3 search domains (NXDOMAIN) before the absolute name"
    "classic-pass: dns64d filter.a=pass (classic DNS64): A and synthesized AAAA both answered"
    "pass-gai-v4: classic-pass with the pod's /etc/gai.conf preferring IPv4 (precedence ::ffff:0:0/96 100, scopev4 169.254/16 global)"
    "search-nodata: shadow.example; shadow.example.default.svc.cluster.local exists (TXT), so A/AAAA there are NODATA"
    "tc-512: many.example, 40 A: over 512 bytes as A (640 B) and as synthesized AAAA (1120 B), TC=1 over UDP"
    "aaaa-servfail: flaky.example, the upstream answers SERVFAIL to AAAA and the A record to A"
    "ecs-forwarder: a dnsdist forwarder adding ECS (as CoreDNS sits in front) between the pod and the resolver"
)

# ---------------------------------------------------------------- expectations
# What each runtime is expected to pick: a default per scenario and
# resolver, then the runtime-specific rows that differ from it. Every row
# below the defaults is a place where a runtime behaves differently from
# glibc (README "Language runtimes" and `dns64d doctor --runtime` explain each).
# Fields: runtime|scenario|resolver(plain|dns64d)|first(v4|nat64|none)|connect(ok|timeout|skip)[|dns]
# where dns, when given, is the transport the pod's queries used (udp, tcp,
# udp+tcp) with ",edns" when they carried an OPT record.
EXPECT_DEFAULT=(
    "*|search-nx|plain|v4|timeout"
    "*|search-nx|dns64d|nat64|ok"
    "*|classic-pass|dns64d|nat64|ok"
    "*|pass-gai-v4|dns64d|v4|timeout"
    "*|search-nodata|plain|v4|skip"
    "*|search-nodata|dns64d|nat64|ok"
    "*|tc-512|plain|v4|skip"
    "*|tc-512|dns64d|nat64|ok"
    "*|aaaa-servfail|plain|v4|skip"
    "*|aaaa-servfail|dns64d|nat64|ok"
    "*|ecs-forwarder|plain|v4|skip"
    "*|ecs-forwarder|dns64d|nat64|ok"
)
EXPECT_RUNTIME=()
[ -f "$LAB_DIR/runtimes.expect" ] && mapfile -t EXPECT_RUNTIME < <(grep -v '^[[:space:]]*\(#\|$\)' "$LAB_DIR/runtimes.expect")

expect_for() { # expect_for RUNTIME SCENARIO RESOLVER -> "first connect [dns]"
    # A line naming the runtime wins over a "*" line, and runtimes.expect
    # over the defaults above.
    local e want r s v f c t
    for want in "$1" "*"; do
        for e in "${EXPECT_RUNTIME[@]}" "${EXPECT_DEFAULT[@]}"; do
            IFS='|' read -r r s v f c t <<<"$e"
            r=${r// /} s=${s// /} v=${v// /} f=${f// /} c=${c// /} t=${t// /}
            if [ "$r" = "$want" ] && [ "$s" = "$2" ] && [ "$v" = "$3" ]; then
                echo "$f $c $t"
                return
            fi
        done
    done
    echo "? ?"
}

use_k8s_resolver() { # use_k8s_resolver ADDR: the resolv.conf kubelet writes for a ClusterFirst pod
    {
        echo "search default.svc.cluster.local svc.cluster.local cluster.local"
        echo "nameserver $1"
        echo "options ndots:5 timeout:2 attempts:1"
    } >"/etc/netns/$POD/resolv.conf"
}

RROWS=()
declare -A PICK
rt_check() { # rt_check RUNTIME SCENARIO RESOLVER(plain|dns64d) ADDR NAME TIMEOUT_MS
    local rt=$1 sc=$2 res=$3 addr=$4 name=$5 ms=$6
    use_k8s_resolver "$addr"
    reset_pod_counters
    local line first count conn via seen err fkind udp tcp syns ports edns trans
    line=$(rt_run "$rt" "$name" "$ms")
    echo "$sc $res $rt: $line" >>"$W/clients.log"
    first=$(field first "$line")
    count=$(field count "$line")
    conn=$(field connect "$line")
    via=$(field via "$line")
    seen=$(field seen "$line")
    err=$(field err "$line")
    udp=$(pod_counter dns_udp)
    tcp=$(pod_counter dns_tcp)
    syns=$(pod_counter dns_tcp_syn)
    edns=$(pod_counter dns_edns)
    ports=$(pod_ports)
    trans=udp
    [ "${tcp:-0}" -gt 0 ] && trans=udp+tcp
    [ "${udp:-0}" -eq 0 ] && [ "${tcp:-0}" -gt 0 ] && trans=tcp
    [ "${udp:-0}" -eq 0 ] && [ "${tcp:-0}" -eq 0 ] && trans=none
    if [ -z "$line" ] || [ -z "$count" ]; then
        fkind=crash
    elif [ "$count" = 0 ]; then
        fkind=none
    else
        fkind=$(kind "$first")
    fi
    local exp efirst econn etrans verdict=ok
    exp=$(expect_for "$rt" "$sc" "$res")
    read -r efirst econn etrans <<<"$exp"
    [ "$fkind" = "$efirst" ] || verdict=FAIL
    [ "${conn:-?}" = "$econn" ] || verdict=FAIL
    if [ "$econn" = ok ] && [ "$seen" != 203.0.113.1 ]; then verdict=FAIL; fi
    local sig=$trans
    [ "${edns:-0}" -gt 0 ] && sig="$sig,edns"
    if [ -n "$etrans" ] && [ "$sig" != "$etrans" ]; then verdict=FAIL; fi
    # The C client connects to the first address only.
    [ "$conn" = ok ] && [ -z "$via" ] && via=$first
    [ "$verdict" = ok ] || FAILED=1
    local dns="udp:${udp:-0}q/${ports}port"
    [ "${tcp:-0}" -gt 0 ] && dns="$dns tcp:${syns}conn"
    [ "${edns:-0}" -gt 0 ] && dns="$dns edns:${edns}"
    local picked="$fkind"
    [ "$fkind" = none ] && picked="none(${err:-?})"
    [ "$fkind" != none ] && picked="$fkind $first ($count)"
    local c=$conn
    [ "$conn" = ok ] && c="ok via $(kind "$via")"
    RROWS+=("$(printf '%s\t' "$sc" "$rt" "$res" "$picked" "$c" "${seen:--}" "$dns" "$efirst/$econn${etrans:+/$etrans}" "$verdict")")
    local cell=$fkind
    [ "$fkind" = none ] && cell="none(${err:-?})"
    case $conn in
    ok) if [ "$(kind "$via")" = "$fkind" ]; then cell="$cell ok"; else cell="$cell, ok via $(kind "$via")"; fi ;;
    timeout) cell="$cell dropped" ;;
    skip) ;;
    *) cell="$cell $conn" ;;
    esac
    [ "$verdict" = ok ] || cell="$cell FAIL"
    PICK[$rt|$sc|$res]=$cell
}

run_runtime_matrix() {
    say "runtimes: node $NODE_VERSION (c-ares $CARES_VERSION), $GO_VERSION, java $JAVA_VERSION, python $PY_VERSION, hickory-resolver $(sed -n '/^name = "hickory-resolver"/{n;s/version = "\(.*\)"/\1/p}' "$REPO/Cargo.lock")"
    local admitted0 dropped0 s id name plain d64 pms gai rt
    admitted0=$(target_counter admitted)
    dropped0=$(target_counter dropped)
    for s in "${SCENARIOS[@]}"; do
        IFS='|' read -r id name plain d64 pms gai <<<"$s"
        if [ -n "$gai" ]; then
            [ "$have_gai" = yes ] || continue
            use_gai "${!gai}"
        fi
        say "runtimes, scenario $id ($name)"
        for rt in "${RUNTIMES[@]}"; do
            [ "$plain" = - ] || rt_check "$rt" "$id" plain "$plain" "$name" "$pms"
            rt_check "$rt" "$id" dns64d "$d64" "$name" 1500
        done
        [ -z "$gai" ] || use_gai ""
    done
    local admitted1 dropped1 v=ok
    admitted1=$(target_counter admitted)
    dropped1=$(target_counter dropped)
    [ "$admitted1" -gt "$admitted0" ] && [ "$dropped1" -gt "$dropped0" ] || v=FAIL
    [ "$v" = ok ] || FAILED=1
    RROWS+=("$(printf '%s\t' all "target nftables" - "admitted +$((admitted1 - admitted0)) pkts from 203.0.113.1" "dropped +$((dropped1 - dropped0)) pkts" - - "both>0" "$v")")
}

print_runtime_tables() {
    echo
    echo "language runtimes in the pod (search default.svc.cluster.local svc.cluster.local cluster.local, ndots:5):"
    {
        printf 'scenario\truntime\tresolver\tpicked first (count)\tconnect\ttarget saw\tdns from the pod\texpected\tresult\n'
        for r in "${RROWS[@]}"; do printf '%s\n' "${r%$'\t'}"; done
    } | columns
    echo
    echo "runtime x scenario -> picked (plain resolver | dns64d); v4 = the A record, nat64 = 64:ff9b::/96, dropped = the target refused the node's address"
    {
        local s id head="runtime"
        for s in "${SCENARIOS[@]}"; do head="$head	${s%%|*}"; done
        printf '%s\n' "$head"
        local rt cells p d
        for rt in "${RUNTIMES[@]}"; do
            cells=$rt
            for s in "${SCENARIOS[@]}"; do
                id=${s%%|*}
                p=${PICK[$rt|$id|plain]:--}
                d=${PICK[$rt|$id|dns64d]:--}
                cells="$cells	$p | $d"
            done
            printf '%s\n' "$cells"
        done
    } | columns
    for s in "${SCENARIO_TEXT[@]}"; do echo "  $s"; done
}

columns() { # aligns tab-separated rows
    awk -F'\t' '
    { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } n = NR; if (NF > nf) nf = NF }
    END { for (r = 1; r <= n; r++) { line = ""; for (i = 1; i <= nf; i++) line = line sprintf("%-" w[i] "s  ", cell[r, i]); sub(/ +$/, "", line); print line } }'
}
