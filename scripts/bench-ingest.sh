#!/usr/bin/env bash
# Ingestion benchmark: Orrery and Debian's Prometheus 2.42 receiver, side by
# side on this machine in one run, fed the same Envoy-like load by
# `orrery loadgen` (remote write 1.0, 2000 samples per request, 4 senders).
#
#   scripts/bench-ingest.sh [SERIES] [ROUNDS] [INTERVAL]
#
# SERIES active series (default 100000); ROUNDS samples per series (default
# 900, i.e. 3.75 h of 15 s scrapes, enough for the head to compact into a
# block so bytes/sample on disk can be read). Prints a Markdown table row
# per receiver: samples/s, server CPU seconds, peak RSS, RSS per series and
# bytes/sample in compacted blocks.
#
# With SIGV4=1 Orrery is also run with --auth=sigv4, fed SigV4-signed
# requests (loadgen --sigv4 with the admin key) into a workspace made with
# `orrery workspaces create`: the cost of authentication on the hot path.
set -euo pipefail
SERIES=${1:-100000}
ROUNDS=${2:-900}
INTERVAL=${3:-15s}
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/orrery-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/orrery" ./cmd/orrery
command -v prometheus >/dev/null || { echo "install Debian's prometheus: apt-get install prometheus" >&2; exit 1; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14+$15)/hz}' "/proc/$1/stat"; }
peak_rss_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
wait_ready() { for _ in $(seq 200); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "not ready: $1" >&2; return 1; }
# bytes_per_sample DIR: sizes of all persisted blocks below DIR / their samples.
bytes_per_sample() {
  python3 - "$1" <<'PY'
import json, os, sys
size = samples = 0
for root, dirs, files in os.walk(sys.argv[1]):
    if "meta.json" in files and "index" in files:
        samples += json.load(open(os.path.join(root, "meta.json")))["stats"]["numSamples"]
        for r2, _, fs in os.walk(root):
            size += sum(os.path.getsize(os.path.join(r2, f)) for f in fs)
print(f"{size/samples:.3f} ({samples} samples in blocks)" if samples else "n/a (no block yet)")
PY
}
# wait_block DIR: wait for the head to be compacted into a block, when the
# load spans enough time for that (more than 1.5 block lengths = 3 h).
wait_block() {
  [ "$(( ROUNDS * $(sed -E 's/s$//' <<<"$INTERVAL") ))" -gt 10800 ] || return 0
  for _ in $(seq 180); do find "$1" -name meta.json | grep -q . && return 0; sleep 1; done
}

run() { # NAME PID URL DATADIR [LOADGEN FLAGS...]
  local name=$1 pid=$2 url=$3 dir=$4 cpu0 out
  shift 4
  cpu0=$(cpu_seconds "$pid")
  echo "== $name: $SERIES series × $ROUNDS rounds" >&2
  out=$("$work/orrery" loadgen --url "$url" --series "$SERIES" --rounds "$ROUNDS" --interval "$INTERVAL" "$@")
  echo "$out" >&2
  local cpu1 rss sps p99
  cpu1=$(cpu_seconds "$pid"); rss=$(peak_rss_kib "$pid")
  sps=$(sed -E 's/.*samples_per_s=([0-9]+).*/\1/' <<<"$out"); p99=$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$out")
  wait_block "$dir"
  sleep 5
  printf '| %s | %d | %s | %s | %.1f | %d | %.0f | %s |\n' "$name" "$SERIES" "$sps" "$p99" "$(echo "$cpu1 - $cpu0" | bc)" \
    $((rss / 1024)) "$(echo "$rss * 1024 / $SERIES" | bc)" "$(bytes_per_sample "$dir")"
}

echo "| receiver | series | samples/s | p99 request ms | server CPU s | peak RSS MiB | RSS bytes/series | bytes/sample on disk |"
echo "|---|---|---|---|---|---|---|---|"

o_port=$(port)
"$work/orrery" server --auth=none --listen "127.0.0.1:$o_port" --data-dir "$work/orrery-data" --limits.ingestion-rate=0 \
  --limits.max-active-series=0 --log.level=warn >"$work/orrery.log" 2>&1 &
o_pid=$!
wait_ready "http://127.0.0.1:$o_port/-/ready"
run "Orrery $(git rev-parse --short HEAD)" "$o_pid" "http://127.0.0.1:$o_port/workspaces/ws-00000000-0000-4000-8000-000000000000/api/v1/remote_write" "$work/orrery-data"
kill "$o_pid"; wait "$o_pid" || true

if [ "${SIGV4:-0}" = 1 ]; then
  . scripts/signed.sh
  start_signed "$work/orrery" "$work/orrery-sigv4-data" --limits.ingestion-rate=0 --limits.max-active-series=0
  run "Orrery $(git rev-parse --short HEAD), SigV4" "$s_pid" "http://127.0.0.1:$s_port/workspaces/$s_ws/api/v1/remote_write" \
    "$work/orrery-sigv4-data" --sigv4
  kill "$s_pid"; wait "$s_pid" || true
fi

p_port=$(port)
echo "global: {}" >"$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom-data" --web.listen-address="127.0.0.1:$p_port" \
  --web.enable-remote-write-receiver --log.level=warn >"$work/prometheus.log" 2>&1 &
p_pid=$!
wait_ready "http://127.0.0.1:$p_port/-/ready"
run "Prometheus $(prometheus --version 2>&1 | awk 'NR==1 {print $3}')" "$p_pid" "http://127.0.0.1:$p_port/api/v1/write" "$work/prom-data"
kill "$p_pid"; wait "$p_pid" || true
