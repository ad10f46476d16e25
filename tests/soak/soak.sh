#!/usr/bin/env bash
# Load and soak: dnsperf against a release dns64d in front of knotd, all on
# loopback. Not part of `cargo test` (it takes ~12 minutes by default).
#
#   tests/soak/soak.sh [--rate QPS] [--hold SECONDS] [--soak SECONDS] [--flood SECONDS]
#
# 1. --hold s at --rate q/s (default 60 s at 20000 q/s): zero lost queries.
# 2. --soak s at half that rate (default 600 s): zero lost, RSS start vs end.
# 3. --flood s of unique random names (cache-busting, default 60 s): RSS stays
#    under the cache bound plus the process baseline.
# The log must hold no ERROR line. Results go to stdout in Markdown.
set -euo pipefail
cd "$(dirname "$0")/../.."

rate=20000 hold=60 soak=600 flood=60
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) rate=$2; shift 2 ;;
    --hold) hold=$2; shift 2 ;;
    --soak) soak=$2; shift 2 ;;
    --flood) flood=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

need() { command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }
need dnsperf dnsperf
need knotd knot
[ -x target/release/dns64d ] || cargo build --release --locked

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

up_port=$((30000 + RANDOM % 10000)); port=$((up_port + 1))
{
  echo '$ORIGIN soak.test.'
  echo '$TTL 300'
  echo '@ SOA ns hostmaster 1 3600 600 86400 60'
  echo '@ NS ns'
  echo 'ns A 192.0.2.53'
  echo '* A 192.0.2.200'
  for i in $(seq 1 2000); do echo "v4-$i A 192.0.2.$((i % 250 + 1))"; done
  for i in $(seq 1 500); do echo "v6-$i AAAA 2001:db8::$i"; done
} > "$work/soak.zone"
cat > "$work/knot.conf" <<KNOT
server:
    listen: 127.0.0.1@$up_port
    rundir: $work
database:
    storage: $work
zone:
  - domain: soak.test.
    file: $work/soak.zone
log:
  - target: stderr
    any: error
KNOT
knotd -c "$work/knot.conf" 2>"$work/knot.log" & pids+=($!)

cat > "$work/dns64d.toml" <<CONF
[server]
listen = ["127.0.0.1:$port"]
metrics = ""
shutdown_grace = "0s"
[upstream]
servers = ["127.0.0.1:$up_port"]
[dns64]
clients = ["127.0.0.0/8"]
[cache]
max_bytes = 16777216
[log]
level = "warn"
CONF
target/release/dns64d --config "$work/dns64d.toml" 2>"$work/dns64d.log" & dpid=$!; pids+=($dpid)
for _ in $(seq 50); do dig @127.0.0.1 -p "$port" +short +time=1 +tries=1 AAAA v4-1.soak.test >/dev/null 2>&1 && break; sleep 0.1; done

rss() { awk '/VmRSS/ {print $2}' "/proc/$dpid/status"; }
hwm() { awk '/VmHWM/ {print $2}' "/proc/$dpid/status"; }

# Pod-like mix: AAAA and A for A-only names, AAAA for native names, NXDOMAIN.
for i in $(seq 1 2000); do
  echo "v4-$i.soak.test AAAA"; echo "v4-$i.soak.test A"
  [ $((i % 4)) = 0 ] && echo "v6-$((i % 500 + 1)).soak.test AAAA"
  [ $((i % 3)) = 0 ] && echo "nx-$i.nonexistent.test AAAA"
done > "$work/mix.txt"

run() { # seconds rate file → "sent lost"
  dnsperf -s 127.0.0.1 -p "$port" -d "$3" -l "$1" -Q "$2" -c 8 -t 2 2>&1 | tee -a "$work/dnsperf.log" |
    awk '/Queries sent:/ {s=$3} /Queries lost:/ {l=$3} END {print s, l}'
}

echo "## Soak results ($(date -u +%Y-%m-%dT%H:%MZ))"
echo
echo "| phase | duration | rate (q/s) | sent | lost | RSS start (KiB) | RSS end (KiB) |"
echo "|---|---|---|---|---|---|---|"
r0=$(rss); read -r s l < <(run "$hold" "$rate" "$work/mix.txt")
echo "| hold | ${hold}s | $rate | $s | $l | $r0 | $(rss) |"; fail=0; [ "$l" = 0 ] || fail=1
half=$((rate / 2)); r0=$(rss); read -r s l < <(run "$soak" "$half" "$work/mix.txt")
echo "| soak | ${soak}s | $half | $s | $l | $r0 | $(rss) |"; [ "$l" = 0 ] || fail=1
python3 - "$work/unique.txt" <<'PY'
import random, sys
with open(sys.argv[1], "w") as f:
    for i in range(400000):
        f.write(f"u{random.getrandbits(48):012x}.soak.test AAAA\n")
PY
r0=$(rss); read -r s l < <(run "$flood" "$half" "$work/unique.txt")
echo "| unique-name flood | ${flood}s | $half | $s | $l | $r0 | $(rss) |"; [ "$l" = 0 ] || fail=1
echo
echo "Peak RSS (VmHWM): $(hwm) KiB; cache bound 16384 KiB."
errors=$(grep -c ' ERROR ' "$work/dns64d.log" || true)
echo "ERROR lines in the dns64d log: $errors"; [ "$errors" = 0 ] || fail=1
echo "Command: tests/soak/soak.sh --rate $rate --hold $hold --soak $soak --flood $flood"
exit $fail
