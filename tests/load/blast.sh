#!/usr/bin/env bash
# Load smoke test: bench/blast.c (the benchmark's batching load generator)
# against the release binary, with one worker (current-thread runtime) and
# with two (multi-thread runtime, two SO_REUSEPORT sockets). Every query must
# be answered, NOERROR, with batched recvmmsg/sendmmsg under a full receive
# queue. The queries are ipv4only.arpa AAAA (answered locally: no upstream
# needed); after the first, they are cache hits served from the receive loop.
#
#   tests/load/blast.sh [path/to/dns64d]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/release/dns64d}
[ -x "$BIN" ] || { echo "blast.sh: no binary at $BIN (cargo build --release)" >&2; exit 1; }
command -v gcc >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null; }

work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

gcc -O2 -Wall -Wextra -Werror -o "$work/blast" bench/blast.c
# ipv4only.arpa in two letter cases (0x20-style): one cache entry, each
# answer with its own query's case.
for i in $(seq 1000); do
    if [ $((i % 2)) = 0 ]; then echo "ipv4only.arpa AAAA"; else echo "IPv4Only.Arpa AAAA"; fi
done > "$work/queries.txt"

for workers in 1 2; do
    port=$((20000 + RANDOM % 20000))
    cat > "$work/dns64d.toml" <<EOF
[server]
listen = ["127.0.0.1:$port"]
allow = ["127.0.0.0/8"]
metrics = ""
shutdown_grace = "0s"
workers = $workers
udp_sockets = $workers
[upstream]
# never asked: ipv4only.arpa is answered locally (RFC 8880)
servers = ["127.0.0.1:9"]
[dns64]
clients = ["127.0.0.0/8"]
[log]
level = "warn"
EOF
    "$BIN" --config "$work/dns64d.toml" 2> "$work/log" &
    pid=$!
    for _ in $(seq 50); do
        dig +short +tries=1 +time=1 @127.0.0.1 -p "$port" ipv4only.arpa AAAA 2>/dev/null | grep -q '^64:ff9b::c000:aa$' && break
        sleep 0.1
    done
    "$work/blast" -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -l 3 -q 200 -t 2 > "$work/out"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
    cat "$work/out"
    sent=$(awk '/Queries sent:/ {print $3}' "$work/out")
    completed=$(awk '/Queries completed:/ {print $3}' "$work/out")
    lost=$(awk '/Queries lost:/ {print $3}' "$work/out")
    codes=$(sed -n 's/.*Response codes: *//p' "$work/out")
    [ "$completed" -ge 20000 ] || { echo "FAIL ($workers workers): only $completed answers in 3 s" >&2; cat "$work/log" >&2; exit 1; }
    [ "$lost" = 0 ] && [ "$sent" = "$completed" ] || { echo "FAIL ($workers workers): $lost of $sent lost" >&2; exit 1; }
    case $codes in NOERROR\ *\(100.00%\)) ;; *) echo "FAIL ($workers workers): response codes $codes" >&2; exit 1 ;; esac
    if grep -E ' (ERROR|WARN) ' "$work/log" | grep -v 'well-known prefix\|RFC 6052' >&2; then
        echo "FAIL ($workers workers): errors in the log" >&2; exit 1
    fi
    echo "ok: $workers worker(s), $completed queries answered, none lost"
done
