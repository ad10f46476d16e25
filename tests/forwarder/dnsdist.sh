#!/usr/bin/env bash
# dns64d behind a real forwarder that adds EDNS Client Subnet (dnsdist), as
# CoreDNS or dnsdist would sit in front of it (SPEC §1): the pod's address in
# the ECS option, not the forwarder's, decides who is a DNS64 client.
#   pod 127.0.0.2 ──▶ dnsdist (adds ECS 127.0.0.2/32) ──▶ dns64d ──▶ knotd
# dns64d lists only 127.0.0.2 as a DNS64 client and trusts 127.0.0.1 (dnsdist).
# Usage: tests/forwarder/dnsdist.sh [path/to/dns64d]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/release/dns64d}
[ -x "$bin" ] || cargo build --release --locked
for tool in dnsdist:dnsdist knotd:knot dig:bind9-dnsutils; do
  command -v "${tool%%:*}" >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool#*:}" >/dev/null; }
done
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

base=$((40000 + RANDOM % 10000)); up=$base; d64=$((base + 1)); dd=$((base + 2))
cat > "$work/zone" <<ZONE
\$ORIGIN fw.test.
\$TTL 300
@ SOA ns hostmaster 1 3600 600 86400 60
@ NS ns
ns A 192.0.2.53
v4 A 192.0.2.10
ZONE
cat > "$work/knot.conf" <<KNOT
server:
    listen: 127.0.0.1@$up
    rundir: $work
database:
    storage: $work
zone:
  - domain: fw.test.
    file: $work/zone
log:
  - target: stderr
    any: error
KNOT
knotd -c "$work/knot.conf" 2>"$work/knot.log" & pids+=($!)

cat > "$work/dns64d.toml" <<CONF
[server]
listen = ["127.0.0.1:$d64"]
allow = ["127.0.0.0/8"]
trusted_forwarders = ["127.0.0.1/32"]
metrics = ""
shutdown_grace = "0s"
[upstream]
servers = ["127.0.0.1:$up"]
[dns64]
clients = ["127.0.0.2/32"]
[cache]
enabled = false
CONF
"$bin" --config "$work/dns64d.toml" 2>"$work/dns64d.log" & pids+=($!)

cat > "$work/dnsdist.conf" <<DD
-- No security-status polling: nothing may leave loopback.
setSecurityPollSuffix("")
setLocal("127.0.0.1:$dd")
addACL("127.0.0.0/8")
newServer({address="127.0.0.1:$d64", useClientSubnet=true, checkInterval=3600})
setECSSourcePrefixV4(32)
DD
dnsdist --supervised --disable-syslog -C "$work/dnsdist.conf" >"$work/dnsdist.log" 2>&1 & pids+=($!)

ask() { dig @127.0.0.1 -p "$dd" -b "$1" +short +time=2 +tries=2 "$2" v4.fw.test; }
for _ in $(seq 50); do [ "$(ask 127.0.0.3 A 2>/dev/null)" = 192.0.2.10 ] && break; sleep 0.2; done

fail=0
check() { # what expected got
  if [ "$2" = "$3" ]; then echo "ok:   $1 -> ${3:-(empty)}"; else echo "FAIL: $1: expected '${2}', got '${3}'"; fail=1; fi
}
check "pod 127.0.0.2 (a DNS64 client by ECS), AAAA" "64:ff9b::c000:20a" "$(ask 127.0.0.2 AAAA)"
check "pod 127.0.0.2 (a DNS64 client by ECS), A stripped" "" "$(ask 127.0.0.2 A)"
check "pod 127.0.0.3 (plain by ECS), A" "192.0.2.10" "$(ask 127.0.0.3 A)"
check "pod 127.0.0.3 (plain by ECS), no synthesis" "" "$(ask 127.0.0.3 AAAA)"
[ $fail = 0 ] || { echo "--- dns64d log"; cat "$work/dns64d.log"; echo "--- dnsdist log"; tail -20 "$work/dnsdist.log"; }
exit $fail
