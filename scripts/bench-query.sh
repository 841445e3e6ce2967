#!/usr/bin/env bash
# Query benchmark: Orrery, Prometheus 3 (built from the module version
# Orrery embeds, test/reference) and VictoriaMetrics single-node (built
# from its module, test/victoriametrics), side by side in one run. Each is
# loaded with the same Envoy-like data by `orrery loadgen` (SERIES series,
# one hour of 15 s scrapes), then asked the same 25 dashboard queries as
# query_range over that hour at step 30 s, RUNS times each, each server
# pinned with taskset to CPUS.
#
#   cold:    a fixed range, caches bypassed (Orrery: Cache-Control: no-store;
#            VictoriaMetrics: nocache=1; Prometheus has no cache).
#   refresh: a dashboard refresh, [now-1h, now] aligned to the step as
#            Grafana asks it, caches on, after one warm-up request; each
#            request a curl process and connection of its own, and again
#            over one connection (one curl asking them a second apart), as a
#            browser's refreshes reuse theirs.
#
# Prints per query the median latency in ms, the sums, and per server the
# CPU seconds it used during the cold runs and its peak RSS (VmHWM). All
# three run at once, and each query is asked of each in turn, so that
# other load on the machine weighs on all alike. ORRERY_FLAGS adds flags to
# `orrery server` (e.g. --query.parallelism=1 to measure without splitting).
# With SIGV4=1 a second Orrery runs beside them with --auth=sigv4, loaded
# and asked (cold and refresh) with SigV4-signed requests, in a column of
# its own. With LIVE=1, the refreshes are measured a second time while
# `orrery loadgen` writes the same series' current samples into Orrery and
# VictoriaMetrics (every series every 15 s, as scrapes would): the refresh
# of a dashboard over live data, whose newest steps change between
# refreshes. With ORRERY_PROFILE=FILE, a CPU profile of Orrery over the first
# ORRERY_PROFILE_SECONDS (30) of the cold runs is written to FILE.
#
#   scripts/bench-query.sh [SERIES] [RUNS] [CPUS]
set -euo pipefail
ORRERY_FLAGS=${ORRERY_FLAGS:-}
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

load() { "$work/orrery" loadgen --url "$1" --series "$SERIES" --rounds 240 --start-ago 1h "${@:2}" >"$work/load.log" 2>&1 || { cat "$work/load.log" >&2; exit 1; }; }
t0=$(date +%s)
cold_end=$((t0 - t0 % 30))
cold_start=$((cold_end - 3600))

# Every server is loaded, then each query is asked of each server in turn,
# run after run, so that whatever else the machine does weighs on all alike.
names=(orrery prometheus victoria)
refreshed=(orrery victoria)
declare -A base pid cold_extra wurl
# sign[NAME] holds curl's signing arguments for a server that wants them.
declare -A sign

# time_one URL [CURL_ARGS...]: seconds for one request; fails on an error
# answer. A signed request is POSTed as a form: curl before 8.1 signs a query
# string of several parameters without sorting them, as SigV4 wants.
time_one() {
  local out
  if [[ " ${*:2} " == *" --aws-sigv4 "* ]]; then
    out=$(curl -gs -o "$work/answer.json" -w '%{http_code} %{time_total}' "${@:2}" --data "${1#*\?}" "${1%%\?*}")
  else
    out=$(curl -gs -o "$work/answer.json" -w '%{http_code} %{time_total}' "${@:2}" "$1")
  fi
  [ "${out%% *}" = 200 ] || { echo "query failed ($out): $1: $(head -c 300 "$work/answer.json")" >&2; exit 1; }
  echo "${out#* }"
}

# run_all: the cold and refresh medians of every query on every server,
# into NAME.cold and NAME.refresh, and NAME.res (CPU s of the cold runs, peak RSS).
run_all() {
  local q enc n cpu0 cpu1 now end
  declare -A c0
  for n in "${names[@]}"; do : >"$work/$n.cold"; : >"$work/$n.refresh"; : >"$work/$n.keepalive"; c0[$n]=$(cpu_seconds "${pid[$n]}"); done
  if [ -n "${ORRERY_PROFILE:-}" ]; then
    curl -sf -o "$ORRERY_PROFILE" "${base[orrery]%%/workspaces/*}/debug/pprof/profile?seconds=${ORRERY_PROFILE_SECONDS:-30}" &
  fi
  for q in "${queries[@]}"; do
    enc=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$q")
    for n in "${names[@]}"; do time_one "${base[$n]}/query_range?query=$enc&start=$cold_start&end=$cold_end&step=30${cold_extra[$n]}" -H 'Cache-Control: no-store' ${sign[$n]:-} >/dev/null; done
    for n in "${names[@]}"; do : >"$work/$n.t"; done
    for _ in $(seq "$RUNS"); do
      for n in "${names[@]}"; do
        time_one "${base[$n]}/query_range?query=$enc&start=$cold_start&end=$cold_end&step=30${cold_extra[$n]}" -H 'Cache-Control: no-store' ${sign[$n]:-} >>"$work/$n.t"
      done
    done
    for n in "${names[@]}"; do sort -n "$work/$n.t" | sed -n "$(((RUNS + 1) / 2))p" >>"$work/$n.cold"; done
  done
  for n in "${names[@]}"; do cpu1=$(cpu_seconds "${pid[$n]}"); echo "$(echo "$cpu1 - ${c0[$n]}" | bc) $(hwm_mib "${pid[$n]}")" >"$work/$n.res"; done
  for q in "${queries[@]}"; do
    enc=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$q")
    now=$(date +%s); end=$((now - now % 30))
    for n in "${refreshed[@]}"; do time_one "${base[$n]}/query_range?query=$enc&start=$((end - 3600))&end=$end&step=30" ${sign[$n]:-} >/dev/null; done # warm-up
    for n in "${refreshed[@]}"; do : >"$work/$n.t"; done
    for _ in $(seq "$RUNS"); do
      sleep 1
      now=$(date +%s); end=$((now - now % 30))
      for n in "${refreshed[@]}"; do time_one "${base[$n]}/query_range?query=$enc&start=$((end - 3600))&end=$end&step=30" ${sign[$n]:-} >>"$work/$n.t"; done
    done
    for n in "${refreshed[@]}"; do sort -n "$work/$n.t" | sed -n "$(((RUNS + 1) / 2))p" >>"$work/$n.refresh"; done
    # Over one connection, as a browser refreshes: one curl asks the
    # warm-up and the RUNS refreshes a second apart, reusing its connection.
    for n in "${refreshed[@]}"; do
      [ -z "${sign[$n]:-}" ] || continue
      now=$(date +%s); end=$((now - now % 30))
      local url="${base[$n]}/query_range?query=$enc&start=$((end - 3600))&end=$end&step=30" args=() i
      for i in $(seq 0 "$RUNS"); do args+=(-o /dev/null "$url"); done
      curl -gs --rate 1/s -w '%{http_code} %{num_connects} %{time_total}\n' "${args[@]}" >"$work/$n.ka"
      awk '$1 != 200 {exit 1}' "$work/$n.ka" || { echo "query failed: $url: $(cat "$work/$n.ka")" >&2; exit 1; }
      [ "$(awk 'NR > 1 {s += $2} END {print s + 0}' "$work/$n.ka")" = 0 ] || { echo "curl did not reuse its connection: $url" >&2; exit 1; }
      tail -n +2 "$work/$n.ka" | awk '{print $3}' | sort -n | sed -n "$(((RUNS + 1) / 2))p" >>"$work/$n.keepalive"
    done
  done
  [ "${LIVE:-0}" = 1 ] || return 0
  local writers=()
  for n in orrery victoria; do
    "$work/orrery" loadgen --url "${wurl[$n]}" --series "$SERIES" --rounds 10000 --interval 15s --start-ago 1ms \
      --rate "$((SERIES / 15))" >"$work/live.$n.log" 2>&1 &
    writers+=($!)
  done
  sleep 20 # The first round lands.
  for n in orrery victoria; do : >"$work/$n.live"; done
  for q in "${queries[@]}"; do
    enc=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$q")
    now=$(date +%s); end=$((now - now % 30))
    for n in orrery victoria; do time_one "${base[$n]}/query_range?query=$enc&start=$((end - 3600))&end=$end&step=30" >/dev/null; done # warm-up
    for n in orrery victoria; do : >"$work/$n.t"; done
    for _ in $(seq "$RUNS"); do
      sleep 5
      now=$(date +%s); end=$((now - now % 30))
      for n in orrery victoria; do time_one "${base[$n]}/query_range?query=$enc&start=$((end - 3600))&end=$end&step=30" >>"$work/$n.t"; done
    done
    for n in orrery victoria; do sort -n "$work/$n.t" | sed -n "$(((RUNS + 1) / 2))p" >>"$work/$n.live"; done
  done
  kill "${writers[@]}" 2>/dev/null || true
}

ws=ws-00000000-0000-4000-8000-000000000000
echo "loading $SERIES series × 240 rounds into each server ..." >&2

o_port=$(port)
taskset -c "$CPUS" "$work/orrery" server --auth=none --listen "127.0.0.1:$o_port" --data-dir "$work/o" --limits.ingestion-rate=0 --log.level=warn $ORRERY_FLAGS >"$work/o.log" 2>&1 &
pid[orrery]=$!
wait_ready "http://127.0.0.1:$o_port/-/ready"
wurl[orrery]="http://127.0.0.1:$o_port/workspaces/$ws/api/v1/remote_write"
load "${wurl[orrery]}"
base[orrery]="http://127.0.0.1:$o_port/workspaces/$ws/api/v1"

p_port=$(port)
echo "global: {}" >"$work/p.yml"
taskset -c "$CPUS" "$root/bin/prometheus3" --config.file="$work/p.yml" --storage.tsdb.path="$work/p" --web.listen-address="127.0.0.1:$p_port" \
  --web.enable-remote-write-receiver --log.level=warn >"$work/p.log" 2>&1 &
pid[prometheus]=$!
wait_ready "http://127.0.0.1:$p_port/-/ready"
load "http://127.0.0.1:$p_port/api/v1/write"
base[prometheus]="http://127.0.0.1:$p_port/api/v1"

v_port=$(port)
taskset -c "$CPUS" "$root/bin/victoria-metrics" -storageDataPath="$work/v" -httpListenAddr="127.0.0.1:$v_port" -retentionPeriod=1y \
  -search.latencyOffset=0s -loggerLevel=WARN >"$work/v.log" 2>&1 &
pid[victoria]=$!
wait_ready "http://127.0.0.1:$v_port/health"
wurl[victoria]="http://127.0.0.1:$v_port/api/v1/write"
load "${wurl[victoria]}"
curl -sf "http://127.0.0.1:$v_port/internal/force_flush" >/dev/null
base[victoria]="http://127.0.0.1:$v_port/api/v1"
cold_extra[orrery]=""; cold_extra[prometheus]=""; cold_extra[victoria]="&nocache=1"

if [ "${SIGV4:-0}" = 1 ]; then
  . scripts/signed.sh
  start_signed "taskset -c $CPUS $work/orrery" "$work/s" --limits.ingestion-rate=0 $ORRERY_FLAGS
  pid[orrery_sigv4]=$s_pid
  load "http://127.0.0.1:$s_port/workspaces/$s_ws/api/v1/remote_write" --sigv4
  base[orrery_sigv4]="http://127.0.0.1:$s_port/workspaces/$s_ws/api/v1"
  cold_extra[orrery_sigv4]=""
  sign[orrery_sigv4]="--aws-sigv4 aws:amz:$SIGV4_REGION:aps --user $AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"
  names+=(orrery_sigv4); refreshed+=(orrery_sigv4)
fi

echo "asking $((${#queries[@]} * (RUNS + 1))) cold and $((${#queries[@]} * (RUNS + 1))) refresh queries of each server ..." >&2
run_all

ms() { awk '{printf "%.1f", $1 * 1000}'; }
echo
echo "SERIES=$SERIES RUNS=$RUNS CPUS=$CPUS ($(taskset -c "$CPUS" nproc) cores), $(date -u +%F), commit $(git rev-parse --short HEAD)"
echo
# The columns: each server's cold medians, then the refreshed ones'.
cols=(); heads=()
declare -A title=([orrery]=Orrery [prometheus]="Prometheus 3" [victoria]=VictoriaMetrics [orrery_sigv4]="Orrery SigV4")
for n in "${names[@]}"; do cols+=("$n.cold"); heads+=("${title[$n]} cold"); done
for n in "${refreshed[@]}"; do cols+=("$n.refresh"); heads+=("${title[$n]} refresh"); done
for n in "${refreshed[@]}"; do [ -n "${sign[$n]:-}" ] || { cols+=("$n.keepalive"); heads+=("${title[$n]} refresh, one connection"); }; done
if [ "${LIVE:-0}" = 1 ]; then for n in orrery victoria; do cols+=("$n.live"); heads+=("${title[$n]} refresh, live writes"); done; fi
row() { local out="|" c; for c in "$@"; do out+=" $c |"; done; echo "$out"; }
row "#" query "${heads[@]}"
row "---" "---" $(printf -- '--- %.0s' "${heads[@]}")
for i in "${!queries[@]}"; do
  n=$((i + 1)); cells=()
  for c in "${cols[@]}"; do cells+=("$(sed -n "${n}p" "$work/$c" | ms)"); done
  row "$n" "\`${queries[$i]}\`" "${cells[@]}"
done
sum() { awk '{s += $1} END {printf "%.1f", s * 1000}' "$work/$1"; }
cells=(); for c in "${cols[@]}"; do cells+=("**$(sum "$c")**"); done
row "" "**sum (ms)**" "${cells[@]}"
echo
echo "| server | CPU s during the cold runs | peak RSS MiB |"
echo "|---|---|---|"
for s in "${names[@]}"; do read -r c r <"$work/$s.res"; echo "| $s | $c | $r |"; done
