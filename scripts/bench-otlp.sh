#!/usr/bin/env bash
# OTLP ingestion benchmark: Orrery, the reference Prometheus 3 and
# VictoriaMetrics as OTLP/HTTP receivers, one after the other in one run,
# fed the same Envoy-like gauges by `orrery loadgen --otlp` (protobuf, gzip,
# 2000 data points per export, 4 senders).
#
#   PROMETHEUS3_BINARY=... VICTORIA_METRICS_BINARY=... scripts/bench-otlp.sh [SERIES] [ROUNDS]
#
# With SIGV4=1 Orrery also runs with --auth=sigv4, fed SigV4-signed exports
# (loadgen --sigv4) into a workspace made through the control plane. With
# RESOURCES=1 every receiver is fed exports with a resource per pod
# (loadgen --otlp.resources: service.name, service.instance.id and
# Kubernetes attributes, as SDKs export; target_info in Prometheus' terms).
#
# SERIES active series (default 100000), ROUNDS points per series (default
# 20). Prints a Markdown table row per receiver: samples/s, p99 request
# latency, server CPU seconds and CPU microseconds per sample, peak RSS.
# A receiver whose binary is missing is skipped.
set -euo pipefail
SERIES=${1:-100000}
ROUNDS=${2:-20}
cd "$(dirname "$0")/.."
PROM=${PROMETHEUS3_BINARY:-$PWD/bin/prometheus3}
VM=${VICTORIA_METRICS_BINARY:-$PWD/bin/victoria-metrics}
work=$(mktemp -d /tmp/orrery-bench-otlp.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/orrery" ./cmd/orrery
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14+$15)/hz}' "/proc/$1/stat"; }
peak_rss_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
wait_ready() { for _ in $(seq 300); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "not ready: $1" >&2; return 1; }

run() { # NAME PID URL [loadgen flags]
  local name=$1 pid=$2 url=$3 cpu0 cpu1 out sps p99 samples rss
  shift 3
  cpu0=$(cpu_seconds "$pid")
  echo "== $name: $SERIES series × $ROUNDS rounds" >&2
  if [ "${RESOURCES:-0}" = 1 ]; then set -- --otlp.resources "$@"; fi
  out=$("$work/orrery" loadgen --otlp --url "$url" --series "$SERIES" --rounds "$ROUNDS" "$@")
  echo "$out" >&2
  cpu1=$(cpu_seconds "$pid"); rss=$(peak_rss_kib "$pid")
  samples=$(sed -E 's/^samples=([0-9]+).*/\1/' <<<"$out")
  sps=$(sed -E 's/.*samples_per_s=([0-9]+).*/\1/' <<<"$out"); p99=$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$out")
  printf '| %s | %d | %s | %s | %.2f | %.2f | %d |\n' "$name" "$SERIES" "$sps" "$p99" "$(echo "$cpu1 - $cpu0" | bc)" \
    "$(echo "($cpu1 - $cpu0) * 1000000 / $samples" | bc -l)" $((rss / 1024))
}

echo "| receiver | series | samples/s | p99 request ms | server CPU s | CPU µs/sample | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|"

o_port=$(port)
"$work/orrery" server --auth=none --listen "127.0.0.1:$o_port" --data-dir "$work/orrery-data" --limits.ingestion-rate=0 \
  --limits.max-active-series=0 --log.level=warn >"$work/orrery.log" 2>&1 &
o_pid=$!
wait_ready "http://127.0.0.1:$o_port/-/ready"
run "Orrery $(git rev-parse --short HEAD)" "$o_pid" "http://127.0.0.1:$o_port/workspaces/ws-00000000-0000-4000-8000-000000000000/api/v1/otlp/v1/metrics"
kill "$o_pid"; wait "$o_pid" || true

if [ "${SIGV4:-0}" = 1 ]; then
  . scripts/signed.sh
  start_signed "$work/orrery" "$work/orrery-sigv4-data" --limits.ingestion-rate=0 --limits.max-active-series=0
  run "Orrery $(git rev-parse --short HEAD), SigV4" "$s_pid" "http://127.0.0.1:$s_port/workspaces/$s_ws/api/v1/otlp/v1/metrics"  --sigv4
  kill "$s_pid"; wait "$s_pid" || true
fi

if [ -x "$PROM" ]; then
  p_port=$(port)
  echo "global: {}" >"$work/prometheus.yml"
  "$PROM" --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom-data" --web.listen-address="127.0.0.1:$p_port" \
    --web.enable-otlp-receiver --log.level=warn >"$work/prometheus.log" 2>&1 &
  p_pid=$!
  wait_ready "http://127.0.0.1:$p_port/-/ready"
  run "Prometheus 3 (reference build)" "$p_pid" "http://127.0.0.1:$p_port/api/v1/otlp/v1/metrics"
  kill "$p_pid"; wait "$p_pid" || true
else
  echo "skipped Prometheus 3: no $PROM" >&2
fi

if [ -x "$VM" ]; then
  v_port=$(port)
  "$VM" -storageDataPath="$work/vm-data" -httpListenAddr="127.0.0.1:$v_port" -loggerLevel=ERROR -retentionPeriod=100y \
    >"$work/vm.log" 2>&1 &
  v_pid=$!
  wait_ready "http://127.0.0.1:$v_port/health"
  run "VictoriaMetrics ($(basename "$VM"))" "$v_pid" "http://127.0.0.1:$v_port/opentelemetry/v1/metrics"
  kill "$v_pid"; wait "$v_pid" || true
else
  echo "skipped VictoriaMetrics: no $VM" >&2
fi
