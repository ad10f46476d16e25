#!/usr/bin/env bash
# dns64d end-to-end lab: reproduces "a connection silently leaves from the
# wrong source address because a libc picked an IPv4 answer", then shows
# dns64d preventing it, with the real glibc and musl resolvers.
#
# Topology (network namespaces created here and always deleted on exit;
# documentation ranges, 64:ff9b::/96 and the pod's 169.254.172.0/22 only):
#
#   pod  2001:db8:1::10, 169.254.172.10 (EKS-style egress-only IPv4)
#    |   IPv6 default via node, IPv4 default via node
#   node 2001:db8:1::1 | knotd on 2001:db8:1::53 (authoritative example.)
#    |   dns64d strip on 2001:db8:1::64, dns64d pass on 2001:db8:1::65
#    |   masquerades the pod's IPv4 to its own 192.0.2.2 (the wrong source)
#   natgw 2001:db8:2::2, 192.0.2.1 | 64:ff9b::/96 -> (NETMAP to
#    |   2001:db8:64::/96, see below) tayga -> 198.51.100.128/25, then
#    |   masquerade 198.51.100.0/24 -> 203.0.113.1 (the NAT gateway's address);
#    |   the node's own IPv4 is routed, not translated (the on-premise path)
#   target 203.0.113.10, serves 203.0.113.64/26 on TCP 80, nftables admits
#        only 203.0.113.1 and counts what it drops.
#
# Run from anywhere as root: bash tests/lab/run.sh. Exit 0 when every row
# of the scenario table came out as expected. See tests/lab/README.md.
# The language runtimes (Node.js, Go, Java, Python, hickory-resolver) run
# from runtimes.sh, sourced below, with their clients in runtimes/.
# Environment: DNS64D_BIN (binary to test), LAB_TIME_LIMIT (seconds, 540),
# LAB_HOLD (seconds to keep the topology up before the scenarios),
# LAB_RUNTIMES (space-separated subset of the runtimes, default all),
# LAB_CACHE (where compiled clients are kept, default target/lab-cache).
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$LAB_DIR/../.." && pwd)
BIN=${DNS64D_BIN:-$REPO/target/release/dns64d}
LAB_TIME_LIMIT=${LAB_TIME_LIMIT:-540}
export DEBIAN_FRONTEND=noninteractive

say() { printf '== %s\n' "$*"; }
die() {
    printf 'lab: %s\n' "$*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, nftables, tayga)"
START=$(date +%s)

# ---------------------------------------------------------------- packages
need_pkgs=()
need() { command -v "$1" >/dev/null 2>&1 || need_pkgs+=("$2"); }
need ip iproute2
need nft nftables
need tayga tayga
need knotd knot
need kdig knot-dnsutils
need musl-gcc musl-tools
need curl curl
need socat socat
need gcc gcc
need jq jq
need timeout coreutils
need dnsdist dnsdist
need node nodejs
need go golang-go
need java default-jre-headless
[ -x /usr/bin/python3 ] || need_pkgs+=(python3)
[ -e /usr/include/stdio.h ] || need_pkgs+=(libc6-dev)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    say "installing ${need_pkgs[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
[ -c /dev/net/tun ] || die "/dev/net/tun is missing: tayga needs a TUN device (modprobe tun, or run the container with --device /dev/net/tun)"

# ---------------------------------------------------------------- dns64d
if [ ! -x "$BIN" ] || ! "$BIN" doctor --help >/dev/null 2>&1; then
    say "building dns64d (cargo build --release --locked)"
    (cd "$REPO" && cargo build --release --locked)
fi
[ -x "$BIN" ] || die "no dns64d binary at $BIN"

# The language runtimes' clients are built (or taken from the cache) before
# the time limit starts: a cold Go or cargo build is not the lab's run time.
# shellcheck source=tests/lab/runtimes.sh
source "$LAB_DIR/runtimes.sh"
[ -n "${LAB_RUNTIMES:-}" ] && read -r -a RUNTIMES <<<"$LAB_RUNTIMES"
build_runtime_clients

# ---------------------------------------------------------------- teardown
P="d64l$$"
POD=${P}pod NODE=${P}node NAT=${P}nat TGT=${P}tgt
NSES=("$POD" "$NODE" "$NAT" "$TGT")
W=$(mktemp -d /tmp/dns64d-lab.XXXXXX)
PIDS=()
WATCHDOG=
FAILED=0

teardown() {
    local rc=$?
    set +e
    [ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    # Anything else still running inside our own namespaces was started here.
    for ns in "${NSES[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null; done
    done
    sleep 0.2
    for ns in "${NSES[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    rm -rf "/etc/netns/$POD"
    [ "${MADE_ETC_NETNS:-}" = yes ] && rmdir /etc/netns 2>/dev/null
    if [ "$rc" != 0 ] && [ -d "$W" ]; then
        for f in "$W"/*.log; do
            [ -s "$f" ] || continue
            printf -- '--- %s (last lines)\n' "$(basename "$f")" >&2
            tail -n 15 "$f" >&2
        done
    fi
    rm -rf "$W"
    exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM
# Bounded time: a hung step ends the run, and the trap still tears down.
(
    sleep "$LAB_TIME_LIMIT" >/dev/null &
    s=$!
    trap 'kill $s 2>/dev/null; exit 0' TERM
    wait $s
    echo "lab: over the ${LAB_TIME_LIMIT}s time limit, stopping" >&2
    kill -TERM $$
) >/dev/null &
WATCHDOG=$!

nsx() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}
bg() { # bg NS LOG CMD...: start a daemon inside NS, remember its pid
    local ns=$1 log=$2
    shift 2
    ip netns exec "$ns" "$@" >"$W/$log" 2>&1 &
    PIDS+=($!)
}
wait_for() { # wait_for SECONDS CMD...: poll until CMD succeeds
    local n=$(($1 * 10))
    shift
    while [ $n -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

# ---------------------------------------------------------------- clients
say "building the lab client with glibc and with musl"
gcc -O2 -Wall -o "$W/client-glibc" "$LAB_DIR/client.c"
musl-gcc -O2 -Wall -static -o "$W/client-musl" "$LAB_DIR/client.c"
GLIBC_VERSION=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
MUSL_VERSION=$(dpkg-query -W -f='${Version}' musl 2>/dev/null || true)
MUSL_VERSION=${MUSL_VERSION%%-*}
[ -n "$MUSL_VERSION" ] || MUSL_VERSION=$( (/usr/lib/musl/lib/libc.so 2>&1 || true) | sed -n 's/^Version //p')
musl_has_tcp=no
if [ -n "$MUSL_VERSION" ] && [ "$(printf '%s\n1.2.4\n' "$MUSL_VERSION" | sort -V | head -n1)" = 1.2.4 ]; then
    musl_has_tcp=yes
fi
say "glibc $GLIBC_VERSION, musl ${MUSL_VERSION:-unknown} (TCP fallback: $musl_has_tcp)"

# ---------------------------------------------------------------- topology
say "building the topology in namespaces $POD $NODE $NAT $TGT"
for ns in "${NSES[@]}"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
ip link add eth0 netns "$POD" type veth peer name pod0 netns "$NODE"
ip link add up0 netns "$NODE" type veth peer name down0 netns "$NAT"
ip link add wan0 netns "$NAT" type veth peer name eth0 netns "$TGT"
for ns in "$NODE" "$NAT"; do
    nsx "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
done

# pod: IPv6 plus the egress-only IPv4 EKS gives IPv6 pods.
ip -n "$POD" addr add 2001:db8:1::10/64 dev eth0 nodad
ip -n "$POD" addr add 169.254.172.10/22 dev eth0
ip -n "$POD" link set eth0 up
ip -n "$POD" -6 route add default via 2001:db8:1::1
ip -n "$POD" -4 route add default via 169.254.172.1

# node: forwards IPv6 to natgw; NATs the pod's IPv4 to its own address.
for a in 1 53 54 55 56 64 65; do ip -n "$NODE" addr add "2001:db8:1::$a/64" dev pod0 nodad; done
ip -n "$NODE" addr add 169.254.172.1/22 dev pod0
ip -n "$NODE" addr add 2001:db8:2::1/64 dev up0 nodad
ip -n "$NODE" addr add 192.0.2.2/24 dev up0
ip -n "$NODE" link set pod0 up
ip -n "$NODE" link set up0 up
ip -n "$NODE" -6 route add default via 2001:db8:2::2
ip -n "$NODE" -4 route add default via 192.0.2.1
nsx "$NODE" nft -f - <<'EOF'
table ip lab {
    chain post {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "up0" ip saddr 169.254.172.0/22 counter masquerade
    }
}
EOF

# natgw: tayga for 64:ff9b::/96, then masquerade to the NAT gateway address.
# tayga 0.9.2 enforces RFC 6052 §3.1 on the well-known prefix and refuses to
# translate to "non-global" IPv4, documentation ranges included, so the lab's
# target (203.0.113.0/24) cannot sit behind 64:ff9b::/96 in tayga itself.
# The gateway therefore maps 64:ff9b::/96 one-to-one onto the network-specific
# prefix 2001:db8:64::/96 (nftables NETMAP, undone on replies by conntrack)
# and tayga translates that; what the pod sees and sends is 64:ff9b::/96.
ip -n "$NAT" addr add 2001:db8:2::2/64 dev down0 nodad
ip -n "$NAT" addr add 192.0.2.1/24 dev down0
ip -n "$NAT" addr add 203.0.113.1/24 dev wan0
ip -n "$NAT" link set down0 up
ip -n "$NAT" link set wan0 up
ip -n "$NAT" -6 route add 2001:db8:1::/64 via 2001:db8:2::1
mkdir -p "$W/tayga"
cat >"$W/tayga.conf" <<EOF
tun-device nat64
ipv4-addr 198.51.100.1
ipv6-addr 2001:db8:2:64::1
prefix 2001:db8:64::/96
dynamic-pool 198.51.100.128/25
data-dir $W/tayga
EOF
nsx "$NAT" tayga -c "$W/tayga.conf" --mktun >"$W/tayga-mktun.log" 2>&1
ip -n "$NAT" link set nat64 up
ip -n "$NAT" -6 route add 2001:db8:64::/96 dev nat64
ip -n "$NAT" -4 route add 198.51.100.0/24 dev nat64
bg "$NAT" tayga.log tayga -c "$W/tayga.conf" --nodetach
nsx "$NAT" nft -f - <<'EOF'
table ip6 lab {
    chain pre {
        type nat hook prerouting priority dstnat; policy accept;
        ip6 daddr 64:ff9b::/96 counter dnat ip6 prefix to ip6 daddr map { 64:ff9b::/96 : 2001:db8:64::/96 }
    }
}
table ip lab {
    chain post {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan0" ip saddr 198.51.100.0/24 counter masquerade
    }
}
EOF

# target: an IPv4-only TCP service that admits only the NAT gateway.
ip -n "$TGT" addr add 203.0.113.10/24 dev eth0
ip -n "$TGT" link set eth0 up
ip -n "$TGT" -4 route add default via 203.0.113.1
ip -n "$TGT" -4 route add local 203.0.113.64/26 dev lo
nsx "$TGT" nft -f - <<'EOF'
table inet lab {
    counter admitted {}
    counter dropped {}
    chain input {
        type filter hook input priority filter; policy accept;
        tcp dport 80 ip saddr 203.0.113.1 counter name admitted accept
        tcp dport 80 counter name dropped drop
    }
}
EOF
cat >"$W/http.sh" <<'EOF'
#!/bin/sh
# One HTTP/1.0 exchange: read the request head, say who connected.
while IFS= read -r line; do
    line=$(printf '%s' "$line" | tr -d '\r')
    [ -z "$line" ] && break
done
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nseen-from %s\n' "$SOCAT_PEERADDR"
EOF
chmod +x "$W/http.sh"
bg "$TGT" target.log socat -T 5 TCP4-LISTEN:80,reuseaddr,fork EXEC:"$W/http.sh"

# ---------------------------------------------------------------- DNS
# The lab's zone: service.example. has only an A record; many.example. has
# 40 A records, so its synthesized AAAA answer (40 x 28 bytes) cannot fit a
# 512-byte UDP reply and needs TCP. shadow.example. and flaky.example. are
# for the runtimes (runtimes.sh): shadow's first search-list candidate
# exists without addresses (NODATA), and flaky's AAAA fails (dnsdist below).
# cluster.local. stands for the cluster's zone, so that search-list
# candidates get NXDOMAIN with an SOA as CoreDNS answers them.
mkdir -p "$W/knot"
{
    echo '$ORIGIN example.'
    echo '$TTL 300'
    echo '@ SOA ns hostmaster 1 3600 600 86400 60'
    echo '@ NS ns'
    echo 'ns AAAA 2001:db8:1::53'
    echo 'service A 203.0.113.80'
    echo 'shadow A 203.0.113.81'
    echo 'flaky A 203.0.113.82'
    for i in $(seq 64 103); do echo "many A 203.0.113.$i"; done
} >"$W/knot/example.zone"
{
    echo '$ORIGIN cluster.local.'
    echo '$TTL 30'
    echo '@ SOA ns.dns hostmaster 1 3600 600 86400 5'
    echo '@ NS ns.dns'
    echo 'ns.dns AAAA 2001:db8:1::53'
    echo 'shadow.example.default.svc TXT "exists, without addresses"'
} >"$W/knot/cluster.local.zone"
cat >"$W/knot.conf" <<EOF
server:
    listen: 2001:db8:1::53@53
    rundir: "$W/knot"
control:
    listen: "$W/knot/knot.sock"
log:
  - target: stderr
    any: warning
database:
    storage: "$W/knot/db"
template:
  - id: default
    storage: "$W/knot"
zone:
  - domain: example.
    file: "$W/knot/example.zone"
  - domain: cluster.local.
    file: "$W/knot/cluster.local.zone"
EOF
bg "$NODE" knotd.log knotd -c "$W/knot.conf"
answers() { # answers SERVER TYPE NAME: true when SERVER gives at least one record
    [ -n "$(nsx "$NODE" kdig +short +time=1 +tries=1 "@$1" "$2" "$3")" ]
}
wait_for 10 answers 2001:db8:1::53 A service.example. || die "knotd did not answer"

# dnsdist instances (never polling anything: setSecurityPollSuffix("")):
#   ::54  the "plain resolver" in front of knotd; fails AAAA flaky.example.
#         with SERVFAIL (one of the pair failing); dns64d's upstream.
#   ::55  a forwarder adding ECS, in front of dns64d strip (CoreDNS stand-in)
#   ::56  the same forwarder in front of the plain resolver
dnsdist_conf() { # dnsdist_conf LISTEN BACKEND [ECS]
    echo 'setSecurityPollSuffix("")'
    echo "setLocal(\"[$1]:53\")"
    echo 'setACL({"2001:db8:1::/64"})'
    if [ -n "${3:-}" ]; then
        echo 'setECSSourcePrefixV6(128)'
        echo "newServer({address=\"[$2]:53\", source=\"$1\", useClientSubnet=true, checkInterval=3600}):setUp()"
    else
        echo "newServer({address=\"[$2]:53\", source=\"$1\", checkInterval=3600}):setUp()"
    fi
}
{
    dnsdist_conf 2001:db8:1::54 2001:db8:1::53
    echo 'addAction(AndRule({QNameRule("flaky.example."), QTypeRule(DNSQType.AAAA)}), RCodeAction(DNSRCode.SERVFAIL))'
} >"$W/dnsdist-plain.conf"
dnsdist_conf 2001:db8:1::55 2001:db8:1::64 ecs >"$W/dnsdist-ecs-dns64d.conf"
dnsdist_conf 2001:db8:1::56 2001:db8:1::54 ecs >"$W/dnsdist-ecs-plain.conf"
for c in plain ecs-dns64d ecs-plain; do
    bg "$NODE" "dnsdist-$c.log" dnsdist --supervised --disable-syslog -C "$W/dnsdist-$c.conf"
done
wait_for 10 answers 2001:db8:1::54 A service.example. || die "dnsdist (plain resolver) did not answer"

for mode in strip pass; do
    addr=2001:db8:1::64
    [ "$mode" = pass ] && addr=2001:db8:1::65
    cat >"$W/dns64d-$mode.toml" <<EOF
[server]
listen = ["[$addr]:53"]
allow = ["2001:db8:1::/64", "::1/128", "127.0.0.0/8"]
trusted_forwarders = ["2001:db8:1::55/128"]
metrics = ""
shutdown_grace = "0s"

[upstream]
servers = ["[2001:db8:1::54]:53"]

[filter]
a = "$mode"

# Fixed order: the rows compare the client's pick with doctor's prediction
# from its own query; rotation is tested in tests/integration/rotation.rs.
[dns64]
rotate = false
EOF
    "$BIN" check-config "$W/dns64d-$mode.toml" >/dev/null || die "dns64d rejects $W/dns64d-$mode.toml"
    bg "$NODE" "dns64d-$mode.log" "$BIN" --config "$W/dns64d-$mode.toml"
    wait_for 10 answers "$addr" AAAA service.example. ||
        die "dns64d ($mode) did not answer"
done

# Counters in the pod tell which transport its resolver used, from how many
# UDP source ports (sockets) and over how many TCP connections.
nsx "$POD" nft -f - <<'EOF'
table inet lab {
    counter dns_udp {}
    counter dns_tcp {}
    counter dns_tcp_syn {}
    counter dns_edns {}
    set dns_ports { type inet_service; flags dynamic; size 4096; }
    chain out {
        type filter hook output priority filter; policy accept;
        udp dport 53 counter name dns_udp add @dns_ports { udp sport }
        # ARCOUNT (DNS header bytes 10-11) non-zero: the query carries an OPT record (EDNS).
        udp dport 53 @th,144,16 != 0 counter name dns_edns
        tcp dport 53 counter name dns_tcp
        tcp dport 53 tcp flags & (syn | ack) == syn counter name dns_tcp_syn
    }
}
EOF

# ---------------------------------------------------------------- helpers
[ -d /etc/netns ] || MADE_ETC_NETNS=yes
mkdir -p "/etc/netns/$POD"
# ip netns exec bind-mounts these over /etc/ for every command in the pod.
printf 'hosts: files dns\n' >"/etc/netns/$POD/nsswitch.conf"
use_resolver() { # use_resolver ADDR [OPTIONS...]
    {
        echo "nameserver $1"
        shift
        echo "options timeout:2 attempts:1${*:+ $*}"
    } >"/etc/netns/$POD/resolv.conf"
}
PREFER_V4_GAI='# the common "prefer IPv4" advice
precedence ::ffff:0:0/96 100'
PREFER_V4_SCOPE_GAI='# prefer IPv4, and call 169.254/16 global so RFC 6724 rule 2 does not decide first
precedence ::ffff:0:0/96 100
scopev4 ::ffff:169.254.0.0/112 14'
use_gai() { # use_gai TEXT (empty: the system's /etc/gai.conf)
    if [ -n "$1" ]; then
        printf '%s\n' "$1" >"/etc/netns/$POD/gai.conf"
    else
        rm -f "/etc/netns/$POD/gai.conf"
    fi
}
have_gai=yes
[ -e /etc/gai.conf ] || have_gai=no # ip netns exec can only bind over an existing file

target_counter() { nsx "$TGT" nft list counter inet lab "$1" | awk '/packets/ {print $2}'; }
pod_counter() { nsx "$POD" nft list counter inet lab "$1" | awk '/packets/ {print $2}'; }
reset_pod_counters() {
    nsx "$POD" nft reset counters table inet lab >/dev/null
    nsx "$POD" nft flush set inet lab dns_ports
}
pod_ports() { nsx "$POD" nft -j list set inet lab dns_ports | jq '[.nftables[] | select(.set) | (.set.elem // []) | length] | add // 0'; }

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }
kind() { # kind ADDR: v4, nat64 (inside 64:ff9b::/96), v6 or -
    case "$1" in
    -|"") echo - ;;
    64:ff9b::*) echo nat64 ;;
    *:*) echo v6 ;;
    *) echo v4 ;;
    esac
}

ROWS=()
row() { # scenario client resolver first connect seen transport doctor expected verdict
    ROWS+=("$(printf '%s\t' "$@")")
}

run_client() { # run_client glibc|musl NAME -> prints the client's line
    timeout 25 ip netns exec "$POD" "$W/client-$1" "$2" 80 3000 || true
}

DOCTOR_JSON=
run_doctor() { # run_doctor NAME: the doctor's JSON, inside the pod, as the pod sees it
    DOCTOR_JSON=$(timeout 25 ip netns exec "$POD" "$BIN" doctor "$1" --json 2>>"$W/doctor.log" || true)
}
doctor_first() { jq -r ".first.$1 // \"-\"" <<<"$DOCTOR_JSON" 2>/dev/null || echo -; }
doctor_verdict() { jq -r '.verdict // "-"' <<<"$DOCTOR_JSON" 2>/dev/null || echo -; }

# check SCENARIO CLIENT RESOLVER NAME EXPECT_KIND EXPECT_CONNECT [EXPECT_TRANSPORT] [EXPECT_COUNT]
# EXPECT_KIND: v4 | nat64; EXPECT_CONNECT: ok (target saw the NAT gateway) | timeout
check() {
    local sc=$1 client=$2 res=$3 name=$4 ekind=$5 econn=$6 etrans=${7:-} ecount=${8:-}
    reset_pod_counters
    local line first conn seen count udp tcp trans dfirst agree verdict=ok
    line=$(run_client "$client" "$name")
    echo "$sc $client $res: $line" >>"$W/clients.log"
    first=$(field first "$line")
    conn=$(field connect "$line")
    seen=$(field seen "$line")
    count=$(field count "$line")
    udp=$(pod_counter dns_udp)
    tcp=$(pod_counter dns_tcp)
    trans=udp
    [ "${tcp:-0}" -gt 0 ] && trans="udp+tcp"
    [ "${udp:-0}" -eq 0 ] && [ "${tcp:-0}" -gt 0 ] && trans=tcp
    [ "$(kind "$first")" = "$ekind" ] || verdict=FAIL
    [ "$conn" = "$econn" ] || verdict=FAIL
    if [ "$econn" = ok ] && [ "$seen" != 203.0.113.1 ]; then verdict=FAIL; fi
    if [ -n "$etrans" ] && [ "$trans" != "$etrans" ]; then verdict=FAIL; fi
    if [ -n "$ecount" ] && [ "$count" != "$ecount" ]; then verdict=FAIL; fi
    agree=-
    if [ -n "$DOCTOR_JSON" ]; then
        dfirst=$(doctor_first "$client")
        if [ "$dfirst" = "$first" ]; then agree=agrees; else
            agree="says:$dfirst"
            verdict=FAIL
        fi
    fi
    [ "$verdict" = ok ] || FAILED=1
    local how="" ports syns
    ports=$(pod_ports)
    syns=$(pod_counter dns_tcp_syn)
    [ "${udp:-0}" -gt 0 ] && how="udp:${ports}port"
    [ "${tcp:-0}" -gt 0 ] && how="${how:+$how }tcp:${syns}conn"
    row "$sc" "$client" "$res" "$first ($count)" "$conn" "$seen" "$how" "$agree" "$ekind/$econn${etrans:+/$etrans}${ecount:+/n=$ecount}" "$verdict"
}

# A plain row for tools that are not the lab client (getent, curl).
check_tool() { # check_tool SCENARIO TOOL RESOLVER FIRST CONNECT SEEN EXPECT_KIND EXPECT_CONNECT
    local verdict=ok
    [ "$(kind "$4")" = "$7" ] || verdict=FAIL
    [ "$5" = "$8" ] || verdict=FAIL
    if [ "$8" = ok ] && [ "$6" != 203.0.113.1 ]; then verdict=FAIL; fi
    [ "$verdict" = ok ] || FAILED=1
    row "$1" "$2" "$3" "$4" "$5" "$6" - - "$7/$8" "$verdict"
}

getent_first() { timeout 20 ip netns exec "$POD" getent ahosts "$1" 2>/dev/null | awk 'NR==1 {print $1}'; }
curl_try() { # prints "connect seen"
    local out rc=0
    out=$(timeout 20 ip netns exec "$POD" curl -sS -m 4 "http://$1/" 2>>"$W/curl.log") || rc=$?
    if [ $rc = 0 ]; then
        echo "ok $(sed -n 's/^seen-from //p' <<<"$out")"
    elif [ $rc = 28 ]; then
        echo "timeout -"
    else
        echo "error($rc) -"
    fi
}
curl_row() { # curl_row SCENARIO RESOLVER NAME EXPECT_KIND EXPECT_CONNECT
    local first r
    first=$(getent_first "$3")
    r=$(curl_try "$3")
    check_tool "$1" "glibc curl" "$2" "$first" "${r% *}" "${r#* }" "$4" "$5"
}

# ---------------------------------------------------------------- scenarios
if [ -n "${LAB_HOLD:-}" ]; then # debugging: keep the topology up for a while
    say "holding for ${LAB_HOLD}s: namespaces $POD $NODE $NAT $TGT"
    sleep "$LAB_HOLD"
fi
say "scenario 1: the pod asks the upstream directly (no dns64d)"
use_gai ""
use_resolver 2001:db8:1::53
run_doctor service.example
DOCTOR1=$DOCTOR_JSON
dropped_before=$(target_counter dropped)
first=$(getent_first service.example)
check_tool 1 "glibc getent" upstream "${first:--}" - - v4 -
curl_row 1 upstream service.example v4 timeout
check 1 glibc upstream service.example v4 timeout
check 1 musl upstream service.example v4 timeout
dropped_after=$(target_counter dropped)
v=ok
[ "$dropped_after" -gt "$dropped_before" ] || {
    v=FAIL
    FAILED=1
}
row 1 "target nftables" - - "dropped" "+$((dropped_after - dropped_before)) pkts from 192.0.2.2" - - "drops>0" "$v"
v=ok
d1=$(jq -r '.verdict // "-"' <<<"$DOCTOR1" 2>/dev/null || echo -)
d1first=$(jq -r '.first.glibc // "-"' <<<"$DOCTOR1" 2>/dev/null || echo -)
[ "$d1" = bad ] && [ "$d1first" = 203.0.113.80 ] || {
    v=FAIL
    FAILED=1
}
row 1 "dns64d doctor" upstream "$d1first" - - - - "verdict=bad" "$v"

say "scenario 2: the pod asks dns64d, filter.a = strip"
use_resolver 2001:db8:1::64
run_doctor service.example
admitted_before=$(target_counter admitted)
first=$(getent_first service.example)
check_tool 2 "glibc getent" "dns64d strip" "${first:--}" - - nat64 -
curl_row 2 "dns64d strip" service.example nat64 ok
check 2 glibc "dns64d strip" service.example nat64 ok
check 2 musl "dns64d strip" service.example nat64 ok
if [ "$have_gai" = yes ]; then
    use_gai "$PREFER_V4_SCOPE_GAI"
    run_doctor service.example
    check 2 glibc "strip, gai.conf prefers v4" service.example nat64 ok
    use_gai ""
fi
admitted_after=$(target_counter admitted)
v=ok
[ "$admitted_after" -gt "$admitted_before" ] || {
    v=FAIL
    FAILED=1
}
row 2 "target nftables" - - "admitted" "+$((admitted_after - admitted_before)) pkts from 203.0.113.1" - - "admits>0" "$v"
run_doctor service.example
d2=$(doctor_verdict)
v=ok
[ "$d2" = good ] || {
    v=FAIL
    FAILED=1
}
row 2 "dns64d doctor" "dns64d strip" "$(doctor_first glibc)" - - - - "verdict=good" "$v"

say "scenario 3: the pod asks dns64d, filter.a = pass (classic DNS64, both families answered)"
use_resolver 2001:db8:1::65
echo "-- what dns64d doctor says inside the pod (classic DNS64):"
timeout 25 ip netns exec "$POD" "$BIN" doctor service.example 2>&1 | sed 's/^/   /' || true
run_doctor service.example
check 3 glibc "dns64d pass" service.example nat64 ok
check 3 musl "dns64d pass" service.example nat64 ok
d3=$(doctor_verdict)
v=ok
[ "$d3" = bad ] || {
    v=FAIL
    FAILED=1
}
row 3 "dns64d doctor" "dns64d pass" "$(doctor_first glibc)" - - - - "verdict=bad (A present)" "$v"
if [ "$have_gai" = yes ]; then
    use_gai "$PREFER_V4_GAI"
    run_doctor service.example
    check 3 glibc "pass, gai.conf precedence v4" service.example nat64 ok
    use_gai "$PREFER_V4_SCOPE_GAI"
    run_doctor service.example
    check 3 glibc "pass, gai.conf precedence+scopev4" service.example v4 timeout
    use_gai ""
fi
# The same predictions made from outside the pod: the node models the pod
# with --resolver, --source and --gai-conf instead of living in it.
printf '%s\n' "$PREFER_V4_SCOPE_GAI" >"$W/gai-prefer-v4.conf"
for gai in /dev/null "$W/gai-prefer-v4.conf"; do
    DOCTOR_JSON=$(timeout 25 ip netns exec "$NODE" "$BIN" doctor service.example --json \
        --resolver '[2001:db8:1::65]:53' --source 2001:db8:1::10/64 --source 169.254.172.10/22 \
        --gai-conf "$gai" 2>>"$W/doctor.log" || true)
    want=64:ff9b::cb00:7150
    label="pass, modelled from node"
    if [ "$gai" != /dev/null ]; then
        want=203.0.113.80
        label="pass, modelled, gai prefers v4"
    fi
    v=ok
    [ "$(doctor_first glibc)" = "$want" ] && [ "$(doctor_first musl)" = 64:ff9b::cb00:7150 ] &&
        [ "$(doctor_verdict)" = bad ] || v=FAIL
    [ "$v" = ok ] || FAILED=1
    row 3 "dns64d doctor" "$label" "glibc $(doctor_first glibc), musl $(doctor_first musl)" - - - - "glibc $want, verdict=bad" "$v"
done
DOCTOR_JSON=

say "scenario 4: parallel A+AAAA through dns64d (strip), over UDP and TCP"
use_resolver 2001:db8:1::64
run_doctor service.example
check 4 glibc "strip, default (parallel)" service.example nat64 ok udp
check 4 musl "strip (parallel)" service.example nat64 ok udp
use_resolver 2001:db8:1::64 single-request-reopen
check 4 glibc "strip, single-request-reopen" service.example nat64 ok udp
use_resolver 2001:db8:1::64 use-vc
check 4 glibc "strip, use-vc" service.example nat64 ok tcp
use_resolver 2001:db8:1::64
run_doctor many.example
check 4 glibc "strip, 40 A (TC->TCP)" many.example nat64 ok udp+tcp 40
use_resolver 2001:db8:1::64 single-request-reopen
check 4 glibc "strip, 40 A, s-r-reopen" many.example nat64 ok udp+tcp 40
use_resolver 2001:db8:1::64
if [ "$musl_has_tcp" = yes ]; then
    check 4 musl "strip, 40 A (TC->TCP)" many.example nat64 ok udp+tcp 40
else
    # musl before 1.2.4 keeps the truncated UDP answer: fewer addresses, still usable.
    check 4 musl "strip, 40 A (TC, no TCP)" many.example nat64 ok udp
fi
musl_count=$(field count "$(tail -n1 "$W/clients.log")")
needs_tcp=$(jq -r '.needs_tcp // false' <<<"$DOCTOR_JSON" 2>/dev/null || echo -)
udp_fit=$(jq -r '[.exchanges[] | select(.qtype == "AAAA" and .truncated) | .udp_addresses][0] // "-"' <<<"$DOCTOR_JSON" 2>/dev/null || echo -)
v=ok
[ "$needs_tcp" = true ] || v=FAIL
# The doctor's count of addresses in the truncated UDP reply is what musl keeps.
[ "$musl_has_tcp" = yes ] || [ "$udp_fit" = "$musl_count" ] || v=FAIL
[ "$v" = ok ] || FAILED=1
row 4 "dns64d doctor" "strip, 40 A" "$(doctor_first glibc)" - - - - "needs_tcp, udp fits $udp_fit (musl got $musl_count)" "$v"

say "scenario 5: resolv.conf lists dns64d and a plain resolver, options rotate"
# Not in the issue's list: the "every second call fails" shape. glibc spreads
# lookups over both servers; those that reach the plain one get the A record.
{
    echo "nameserver 2001:db8:1::64"
    echo "nameserver 2001:db8:1::53"
    echo "options timeout:2 attempts:1 rotate"
} >"/etc/netns/$POD/resolv.conf"
n=12 v4=0
for _ in $(seq $n); do
    [ "$(kind "$(getent_first service.example)")" = v4 ] && v4=$((v4 + 1))
done
row 5 "glibc getent x$n" "strip + upstream, rotate" "IPv4 first in $v4 of $n" - - - - "(observed, not asserted)" ok
run_doctor service.example
differ=$(jq -r '[.warnings[] | select(. == "answers differ between two queries")] | length' <<<"$DOCTOR_JSON" 2>/dev/null || echo 0)
v=ok
[ "$differ" = 1 ] && [ "$(doctor_verdict)" = bad ] || v=FAIL
[ "$v" = ok ] || FAILED=1
row 5 "dns64d doctor" "strip + upstream, rotate" "$(doctor_first glibc)" - - - - "answers differ, verdict=bad" "$v"

# ---------------------------------------------------------------- runtimes
run_runtime_matrix

# ---------------------------------------------------------------- report
ELAPSED=$(($(date +%s) - START))
echo
echo "dns64d lab: glibc $GLIBC_VERSION, musl ${MUSL_VERSION:-unknown}, ${ELAPSED}s"
{
    printf 'sc\tclient\tresolver\tfirst address (count)\tconnect\ttarget saw\tdns to resolver\tdoctor\texpected\tresult\n'
    for r in "${ROWS[@]}"; do printf '%s\n' "${r%$'\t'}"; done
} | awk -F'\t' '
    { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } n = NR; if (NF > nf) nf = NF }
    END { for (r = 1; r <= n; r++) { line = ""; for (i = 1; i <= nf; i++) line = line sprintf("%-" w[i] "s  ", cell[r, i]); sub(/ +$/, "", line); print line } }'
print_runtime_tables
echo
if [ "$FAILED" = 0 ]; then
    echo "lab: every scenario came out as expected"
else
    echo "lab: some scenario did NOT come out as expected (rows marked FAIL)"
    echo "--- client lines"
    cat "$W/clients.log"
    exit 1
fi
