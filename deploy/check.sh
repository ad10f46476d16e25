#!/usr/bin/env bash
# Checks every deployment artifact as far as a machine without a Docker
# engine or a cluster can: Dockerfile lint, Kubernetes schema validation,
# the shipped configs through `dns64d check-config`, the systemd unit through
# `systemd-analyze verify`, and the production configs really serving a query.
# Usage: deploy/check.sh [path/to/dns64d]   (default target/release/dns64d)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/dns64d}
[ -x "$bin" ] || { echo "deploy/check.sh: build first: cargo build --release --locked" >&2; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
# The synthesized AAAA for ipv4only.arpa at $1 port $2, or nothing. While the
# port is closed dig exits 9 and prints ";; communications error" on stdout:
# that is "no answer yet", not an answer and not the end of the script.
ipv4only_aaaa() {
  dig @"$1" -p "$2" +short +time=2 +tries=1 AAAA ipv4only.arpa 2>/dev/null | grep -v '^;' | sort | head -1 || true
}

echo "-- hadolint Dockerfile"
hadolint Dockerfile

echo "-- kubernetes-validate (core kinds; the PodMonitor is a CRD and is checked as YAML only)"
kubernetes-validate --strict deploy/kubernetes/configmap.yaml deploy/kubernetes/daemonset.yaml deploy/kubernetes/sidecar.yaml
python3 -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' deploy/kubernetes/podmonitor.yaml

echo "-- configs in the ConfigMaps pass check-config"
python3 - "$work" deploy/kubernetes/configmap.yaml deploy/kubernetes/sidecar.yaml <<'PY'
import sys, yaml
out = sys.argv[1]
for path in sys.argv[2:]:
    for doc in yaml.safe_load_all(open(path)):
        if doc and doc.get("kind") == "ConfigMap":
            name = doc["metadata"]["name"]
            open(f"{out}/{name}.toml", "w").write(doc["data"]["dns64d.toml"])
PY
for f in "$work"/*.toml config/node-local.toml config/default.toml; do
  "$bin" check-config "$f" >/dev/null && echo "ok: $f"
done

echo "-- systemd-analyze verify"
if command -v systemd-analyze >/dev/null; then
  install -D -m 0755 "$bin" "$work/root/usr/local/bin/dns64d"
  sed "s#/usr/local/bin/dns64d#$work/root/usr/local/bin/dns64d#g" deploy/systemd/dns64d.service > "$work/dns64d.service"
  systemd-analyze verify "$work/dns64d.service"
  echo "ok: deploy/systemd/dns64d.service"
else
  echo "systemd-analyze missing: apt-get install systemd" >&2; exit 1
fi

echo "-- the production configs serve a query (listen rewritten to loopback)"
port=$((20000 + RANDOM % 20000))
for f in config/node-local.toml "$work/dns64d.toml"; do
  mport=$((port + 1))
  # No rollout grace period here: nothing takes over, and the check waits for the exit.
  DNS64D__SERVER__LISTEN="[::1]:$port" DNS64D__SERVER__METRICS="127.0.0.1:$mport" DNS64D__SERVER__SHUTDOWN_GRACE=0s \
    "$bin" --config "$f" >"$work/log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$mport/health" >/dev/null && break; sleep 0.1; done
  # ipv4only.arpa is answered locally (RFC 8880), so no upstream is needed.
  answer=$(ipv4only_aaaa ::1 "$port")
  [ "$answer" = "64:ff9b::c000:aa" ] || { echo "FAIL: $f answered '$answer'"; cat "$work/log"; exit 1; }
  kill -TERM "${pids[-1]}"; wait "${pids[-1]}" || { echo "FAIL: $f did not exit 0 on SIGTERM"; exit 1; }
  echo "ok: $f serves ($answer)"
  port=$((port + 2))
done
echo "-- runs without root: a high port as nobody, port 53 with only CAP_NET_BIND_SERVICE"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  install -m 0755 "$bin" "$work/dns64d-nonroot"
  chmod 0755 "$work"
  for case in "high 127.0.0.1 $((port + 7))" "low 127.0.0.153 53"; do
    set -- $case
    caps=()
    [ "$1" = low ] && caps=(--inh-caps=+net_bind_service --ambient-caps=+net_bind_service)
    cat > "$work/nonroot-$1.toml" <<CONF
[server]
listen = ["$2:$3"]
metrics = ""
shutdown_grace = "0s"
[upstream]
servers = ["127.0.0.1:9"]
[dns64]
clients = ["127.0.0.0/8"]
CONF
    chmod 0644 "$work/nonroot-$1.toml"
    setpriv --reuid=65534 --regid=65534 --clear-groups "${caps[@]}" \
      "$work/dns64d-nonroot" --config "$work/nonroot-$1.toml" >"$work/nonroot.log" 2>&1 &
    pids+=($!)
    answer=""
    for _ in $(seq 50); do
      answer=$(ipv4only_aaaa "$2" "$3")
      [ -n "$answer" ] && break
      kill -0 "${pids[-1]}" 2>/dev/null || break
      sleep 0.1
    done
    [ "$answer" = "64:ff9b::c000:aa" ] || { echo "FAIL: non-root ($1 port) answered '$answer'"; cat "$work/nonroot.log"; exit 1; }
    kill -TERM "${pids[-1]}"; wait "${pids[-1]}" || true
    echo "ok: uid 65534 serves on $2:$3 (${1} port${caps:+, CAP_NET_BIND_SERVICE only})"
  done
  if setpriv --reuid=65534 --regid=65534 --clear-groups "$work/dns64d-nonroot" --config "$work/nonroot-low.toml" \
      >"$work/nonroot.log" 2>&1; then
    echo "FAIL: port 53 without CAP_NET_BIND_SERVICE started"; exit 1
  fi
  grep -q 'server.listen' "$work/nonroot.log" || { echo "FAIL: no clear error"; cat "$work/nonroot.log"; exit 1; }
  echo "ok: without the capability, port 53 fails with: $(grep -o 'cannot listen.*' "$work/nonroot.log" | head -1)"
else
  echo "skipped: needs root and setpriv to drop privileges"
fi
echo "deploy checks passed"
