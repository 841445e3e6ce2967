#!/usr/bin/env bash
# Query benchmark: Orrery, Prometheus 3 (built from the module version
# Orrery embeds, test/reference) and VictoriaMetrics single-node (built
# from its module, test/victoriametrics), side by side in one run. Each is
# loaded with the same Envoy-like data by `orrery loadgen` (SERIES series,
# one hour of 15 s scrapes), then asked the same 25 dashboard queries as
# query_range over that hour at step 30 s, RUNS times each, one server at a
# time, each pinned with taskset to CPUS.
#
#   cold:    a fixed range, caches bypassed (Orrery: Cache-Control: no-store;
#            VictoriaMetrics: nocache=1; Prometheus has no cache).
#   refresh: a dashboard refresh, [now-1h, now] aligned to the step as
#            Grafana asks it, caches on, after one warm-up request.
#
# Prints per query the median latency in ms, the sums, and per server the
# CPU seconds it used during the cold runs and its peak RSS (VmHWM).
#
#   scripts/bench-query.sh [SERIES] [RUNS] [CPUS]
set -euo pipefail
SERIES=${1:-100000}
RUNS=${2:-5}
CPUS=${3:-0-$(($(nproc) - 1))}
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d /tmp/orrery-qbench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

echo "building orrery, Prometheus 3 and VictoriaMetrics v1.151.0 ..." >&2
go build -o "$work/orrery" ./cmd/orrery
[ -x bin/prometheus3 ] || (cd test/reference && go build -o "$root/bin/prometheus3" github.com/prometheus/prometheus/cmd/prometheus)
[ -x bin/victoria-metrics ] || (cd test/victoriametrics && go build -o "$root/bin/victoria-metrics" github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics)

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_ready() { for _ in $(seq 600); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "not ready: $1" >&2; return 1; }
cpu_seconds() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
hwm_mib() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

queries=(
  'sum(rate(envoy_cluster_upstream_rq_total[5m]))'
  'sum by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq_total[5m]))'
  'sum by (envoy_response_code) (rate(envoy_cluster_upstream_rq_xx[5m]))'
  'histogram_quantile(0.99, sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket[5m])))'
  'histogram_quantile(0.5, sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket[5m])))'
  'histogram_quantile(0.99, sum by (le, envoy_cluster_name) (rate(envoy_cluster_upstream_rq_time_bucket[1m])))'
  'histogram_quantile(0.95, sum by (le) (rate(envoy_http_downstream_rq_time_bucket[5m])))'
  'sum(envoy_cluster_upstream_cx_active)'
  'sum by (namespace) (envoy_http_downstream_cx_active)'
  'sum(rate(envoy_cluster_upstream_cx_total[5m]))'
  'sum by (envoy_cluster_name) (rate(envoy_cluster_upstream_cx_connect_fail[5m]))'
  'sum(rate(envoy_cluster_upstream_rq_retry[5m]))'
  'sum(rate(envoy_cluster_upstream_rq_timeout[5m]))'
  'sum(envoy_cluster_upstream_rq_pending_active)'
  'sum(rate(envoy_cluster_upstream_cx_rx_bytes_total[5m]))'
  'sum(rate(envoy_cluster_upstream_cx_tx_bytes_total[5m]))'
  'sum by (envoy_cluster_name) (envoy_cluster_membership_healthy)'
  'sum(rate(envoy_http_downstream_rq_total[5m]))'
  'sum by (namespace) (rate(envoy_http_downstream_rq_xx[5m]))'
  'count(envoy_server_live)'
  'max(envoy_server_uptime)'
  'topk(5, sum by (pod) (rate(envoy_http_downstream_rq_total[5m])))'
  'sum(rate(envoy_cluster_upstream_rq_xx{envoy_response_code=~"4.."}[5m])) / sum(rate(envoy_cluster_upstream_rq_xx[5m]))'
  'avg by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq_total[5m]))'
  'sum by (namespace, envoy_cluster_name) (increase(envoy_cluster_upstream_rq_total[10m]))'
)

load() { "$work/orrery" loadgen --url "$1" --series "$SERIES" --rounds 240 --start-ago 1h >"$work/load.log" 2>&1 || { cat "$work/load.log" >&2; exit 1; }; }
t0=$(date +%s)
cold_end=$((t0 - t0 % 30))
cold_start=$((cold_end - 3600))

# median NAME URL [CURL_ARGS...]: the median of RUNS timings of one request.
median() {
  local url=$1; shift
  for _ in $(seq "$RUNS"); do curl -gs -o /dev/null -w '%{time_total}\n' "$@" "$url"; done | sort -n | sed -n "$(((RUNS + 1) / 2))p"
}

# measure NAME PID API_BASE COLD_ARGS REFRESH_ARGS: writes NAME.cold and
# NAME.refresh (one median per query, seconds) and NAME.res (cpu, rss).
measure() {
  local name=$1 pid=$2 base=$3 cold_extra=$4 refresh_extra=$5 cpu0 cpu1
  : >"$work/$name.cold"; : >"$work/$name.refresh"
  cpu0=$(cpu_seconds "$pid")
  for q in "${queries[@]}"; do
    local enc; enc=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$q")
    local url="$base/query_range?query=$enc&start=$cold_start&end=$cold_end&step=30$cold_extra"
    curl -gsf -o "$work/answer.json" -H 'Cache-Control: no-store' "$url" || { echo "$name: query failed: $q" >&2; exit 1; }
    grep -q '"status":"success"' "$work/answer.json" || { echo "$name: $q: $(head -c 300 "$work/answer.json")" >&2; exit 1; }
    median "$url" -H 'Cache-Control: no-store' >>"$work/$name.cold"
  done
  cpu1=$(cpu_seconds "$pid")
  for q in "${queries[@]}"; do
    local enc; enc=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$q")
    local now end
    now=$(date +%s); end=$((now - now % 30))
    curl -gsf -o /dev/null "$base/query_range?query=$enc&start=$((end - 3600))&end=$end&step=30$refresh_extra" # warm-up
    for _ in $(seq "$RUNS"); do
      sleep 1
      now=$(date +%s); end=$((now - now % 30))
      curl -gs -o /dev/null -w '%{time_total}\n' "$base/query_range?query=$enc&start=$((end - 3600))&end=$end&step=30$refresh_extra"
    done | sort -n | sed -n "$(((RUNS + 1) / 2))p" >>"$work/$name.refresh"
  done
  echo "$(echo "$cpu1 - $cpu0" | bc) $(hwm_mib "$pid")" >"$work/$name.res"
}

ws=ws-00000000-0000-4000-8000-000000000000
echo "loading $SERIES series × 240 rounds into each server ..." >&2

o_port=$(port)
taskset -c "$CPUS" "$work/orrery" server --auth=none --listen "127.0.0.1:$o_port" --data-dir "$work/o" --limits.ingestion-rate=0 --log.level=warn >"$work/o.log" 2>&1 &
o_pid=$!
wait_ready "http://127.0.0.1:$o_port/-/ready"
load "http://127.0.0.1:$o_port/workspaces/$ws/api/v1/remote_write"
measure orrery "$o_pid" "http://127.0.0.1:$o_port/workspaces/$ws/api/v1" "" ""
kill "$o_pid"; wait "$o_pid" || true

p_port=$(port)
echo "global: {}" >"$work/p.yml"
taskset -c "$CPUS" "$root/bin/prometheus3" --config.file="$work/p.yml" --storage.tsdb.path="$work/p" --web.listen-address="127.0.0.1:$p_port" \
  --web.enable-remote-write-receiver --log.level=warn >"$work/p.log" 2>&1 &
p_pid=$!
wait_ready "http://127.0.0.1:$p_port/-/ready"
load "http://127.0.0.1:$p_port/api/v1/write"
measure prometheus "$p_pid" "http://127.0.0.1:$p_port/api/v1" "" ""
kill "$p_pid"; wait "$p_pid" || true

v_port=$(port)
taskset -c "$CPUS" "$root/bin/victoria-metrics" -storageDataPath="$work/v" -httpListenAddr="127.0.0.1:$v_port" -retentionPeriod=1y \
  -search.latencyOffset=0s -loggerLevel=WARN >"$work/v.log" 2>&1 &
v_pid=$!
wait_ready "http://127.0.0.1:$v_port/health"
load "http://127.0.0.1:$v_port/api/v1/write"
curl -sf "http://127.0.0.1:$v_port/internal/force_flush" >/dev/null
measure victoria "$v_pid" "http://127.0.0.1:$v_port/api/v1" "&nocache=1" ""
kill "$v_pid"; wait "$v_pid" || true

ms() { awk '{printf "%.1f", $1 * 1000}'; }
echo
echo "SERIES=$SERIES RUNS=$RUNS CPUS=$CPUS ($(taskset -c "$CPUS" nproc) cores), $(date -u +%F), commit $(git rev-parse --short HEAD)"
echo
echo "| # | query | Orrery cold | Prometheus 3 cold | VictoriaMetrics cold | Orrery refresh | VictoriaMetrics refresh |"
echo "|---|---|---|---|---|---|---|"
for i in "${!queries[@]}"; do
  n=$((i + 1))
  printf '| %d | `%s` | %s | %s | %s | %s | %s |\n' "$n" "${queries[$i]}" \
    "$(sed -n "${n}p" "$work/orrery.cold" | ms)" "$(sed -n "${n}p" "$work/prometheus.cold" | ms)" "$(sed -n "${n}p" "$work/victoria.cold" | ms)" \
    "$(sed -n "${n}p" "$work/orrery.refresh" | ms)" "$(sed -n "${n}p" "$work/victoria.refresh" | ms)"
done
sum() { awk '{s += $1} END {printf "%.1f", s * 1000}' "$work/$1"; }
printf '| | **sum (ms)** | **%s** | **%s** | **%s** | **%s** | **%s** |\n' "$(sum orrery.cold)" "$(sum prometheus.cold)" "$(sum victoria.cold)" "$(sum orrery.refresh)" "$(sum victoria.refresh)"
echo
echo "| server | CPU s during the cold runs | peak RSS MiB |"
echo "|---|---|---|"
for s in orrery prometheus victoria; do read -r c r <"$work/$s.res"; echo "| $s | $c | $r |"; done
