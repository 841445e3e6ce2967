#!/usr/bin/env bash
# Anomaly detector benchmark, end to end: one `orrery server --auth=none`
# (embedded engine), a workspace made with CreateWorkspace, SERIES series
# of one gauge written by `orrery loadgen`, and one detector made with
# CreateAnomalyDetector whose query returns those SERIES series, at
# Orrery's shortest evaluation interval (30 s) with AMP's default shingle
# (8) and sample size (256).
#
# loadgen spreads its series over 18 Envoy metric families, so it is asked
# for 18×SERIES series: SERIES of them are envoy_cluster_upstream_cx_active,
# a gauge, one per (pod, envoy_response_code). It first writes enough
# history for the detector's training (shingle+sample intervals and a few
# more, every 30 s), then keeps writing current samples at a real-time rate
# (every series every 30 s), so that each evaluation judges a new value.
#
# Measured, in order:
#   baseline: the server's CPU over BASELINE_S seconds of live writes,
#             before the detector (subtracted from what follows);
#   training: from CreateAnomalyDetector to ACTIVE, wall time and CPU;
#   running:  over EVALS evaluations after the first one (EVALS ≥ 10 takes
#             in one save of the model, made every 10 evaluations): CPU per
#             evaluation and per series-evaluation, series-evaluations per
#             core-second, the mean of orrery_anomaly_evaluation_duration_seconds
#             (query, forests and write, not the save);
#   memory:   VmRSS and the Go heap in use before the detector and after the
#             run, VmHWM (peak RSS) at the end, and their differences per
#             detector series; the saved model's size on disk.
#
#   scripts/bench-anomaly.sh [SERIES] [EVALS] [CPUS]
#
# Prints one Markdown table row; the header comes first. Run it with a few
# SERIES values to see how the costs scale.
set -euo pipefail
SERIES=${1:-1000}
EVALS=${2:-10}
CPUS=${3:-0-$(($(nproc) - 1))}
BASELINE_S=${BASELINE_S:-60}
INTERVAL=30 # seconds: the shortest evaluationIntervalInSeconds Orrery takes.
SHINGLE=8
SAMPLE=256
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/orrery-abench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

echo "building orrery ..." >&2
go build -o "$work/orrery" ./cmd/orrery
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_ready() { for _ in $(seq 600); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "not ready: $1" >&2; return 1; }
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
rss_mib() { awk -v k="$2:" '$1 == k {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
# metric NAME: the sum of a metric's samples on the server's /metrics (0 if none).
metric() { curl -sf "$base/metrics" | awk -v n="$1" '$1 == n || index($1, n "{") == 1 {s += $2} END {printf "%.6f", s}'; }
# heap_mib: the Go heap in use right after a collection (the heap profile's
# gc=1 runs one), i.e. what is live, not what awaits the collector.
heap_mib() { curl -sf -o /dev/null "$base/debug/pprof/heap?gc=1" || { echo "no /debug/pprof/heap" >&2; return 1; }
  metric go_memstats_heap_inuse_bytes | awk '{printf "%.0f", $1 / 1048576}'; }
calc() { echo "scale=6; $*" | bc; }
fmt() { printf "%.${2:-2}f" "$1"; }

o_port=$(port)
base="http://127.0.0.1:$o_port"
taskset -c "$CPUS" "$work/orrery" server --auth=none --listen "127.0.0.1:$o_port" --data-dir "$work/o" \
  --limits.ingestion-rate=0 --limits.max-active-series=0 --limits.max-anomaly-detector-series=0 --log.level=warn >"$work/o.log" 2>&1 &
pid=$!
wait_ready "$base/-/ready"

ws=$(curl -sf -X POST -H 'Content-Type: application/json' -d '{"alias":"anomaly-bench"}' "$base/workspaces" | jq -r .workspaceId)
wurl="$base/workspaces/$ws/api/v1/remote_write"
total=$((SERIES * 18))
rounds=$((SHINGLE + SAMPLE + 10))
echo "writing $total series × $rounds rounds of history ($SERIES of the gauge) into $ws ..." >&2
"$work/orrery" loadgen --url "$wurl" --series "$total" --rounds "$rounds" --interval "${INTERVAL}s" >"$work/history.log" 2>&1 ||
  { cat "$work/history.log" >&2; exit 1; }
# From now on, every series gets its current sample every INTERVAL, as
# scrapes would bring it.
"$work/orrery" loadgen --url "$wurl" --series "$total" --rounds 100000 --interval "${INTERVAL}s" --start-ago 1ms \
  --rate "$(calc "$total / $INTERVAL")" >"$work/live.log" 2>&1 &
query='max by (pod, envoy_response_code) (envoy_cluster_upstream_cx_active)'
got=$(curl -sfG "$base/workspaces/$ws/api/v1/query" --data-urlencode "query=count($query)" | jq -r '.data.result[0].value[1]')
[ "$got" = "$SERIES" ] || { echo "the query returns $got series, not $SERIES" >&2; exit 1; }

echo "baseline: ${BASELINE_S}s of live writes without a detector ..." >&2
sleep "$INTERVAL" # The first live round lands.
c0=$(cpu_seconds "$pid"); t0=$(date +%s.%N)
sleep "$BASELINE_S"
c1=$(cpu_seconds "$pid"); t1=$(date +%s.%N)
idle=$(calc "($c1 - $c0) / ($t1 - $t0)") # CPU s per s without the detector.
rss0=$(rss_mib "$pid" VmRSS); heap0=$(heap_mib)

body=$(jq -nc --arg q "$query" --argjson i "$INTERVAL" --argjson sh "$SHINGLE" --argjson sa "$SAMPLE" \
  '{alias: "bench", evaluationIntervalInSeconds: $i, configuration: {randomCutForest: {query: $q, shingleSize: $sh, sampleSize: $sa}}}')
echo "creating the detector: $body" >&2
c2=$(cpu_seconds "$pid"); t2=$(date +%s.%N)
det=$(curl -sf -X POST -H 'Content-Type: application/json' -d "$body" "$base/workspaces/$ws/anomalydetectors" | jq -r .anomalyDetectorId)
status=
for _ in $(seq 1800); do
  status=$(curl -sf "$base/workspaces/$ws/anomalydetectors/$det" | jq -r .anomalyDetector.status.statusCode)
  [ "$status" = CREATING ] || break
  sleep 1
done
c3=$(cpu_seconds "$pid"); t3=$(date +%s.%N)
[ "$status" = ACTIVE ] || { echo "detector $det is $status: $(curl -sf "$base/workspaces/$ws/anomalydetectors/$det")" >&2; exit 1; }
train_s=$(calc "$t3 - $t2"); train_cpu=$(calc "$c3 - $c2 - $idle * ($t3 - $t2)")

count() { metric orrery_anomaly_evaluation_duration_seconds_count | awk '{printf "%d", $1}'; }
echo "ACTIVE after ${train_s}s; measuring $EVALS evaluations ..." >&2
# The window starts just after an evaluation, found by asking /metrics once
# a second; within it nothing is asked of the server (a scrape of /metrics
# costs CPU too), and it ends a few seconds after the EVALS-th evaluation
# from its start: the save that may follow it is in.
n=$(count); end=$(($(date +%s) + 3 * INTERVAL))
while [ "$(count)" -le "$n" ]; do
  [ "$(date +%s)" -lt "$end" ] || { echo "no evaluation within $((3 * INTERVAL))s" >&2; exit 1; }
  sleep 1
done
n4=$(count); s4=$(metric orrery_anomaly_evaluation_duration_seconds_sum); c4=$(cpu_seconds "$pid"); t4=$(date +%s.%N)
sleep $((EVALS * INTERVAL + 5))
n5=$(count); s5=$(metric orrery_anomaly_evaluation_duration_seconds_sum); c5=$(cpu_seconds "$pid"); t5=$(date +%s.%N)
rss1=$(rss_mib "$pid" VmRSS); hwm=$(rss_mib "$pid" VmHWM); heap1=$(heap_mib)
failures=$(metric orrery_anomaly_evaluation_failures_total | awk '{printf "%d", $1}')
modelled=$(metric orrery_anomaly_series | awk '{printf "%d", $1}')
scored=$(curl -sfG "$base/workspaces/$ws/api/v1/query" --data-urlencode "query=count(anomaly_detector:score{anomaly_detector_id=\"$det\"})" |
  jq -r '.data.result[0].value[1] // 0')
model=$({ find "$work/o/anomaly" -name '*.model' -printf '%s\n' 2>/dev/null || true; } | awk '{s += $1} END {printf "%.1f", s / 1048576}')

evals=$((n5 - n4))
cpu=$(calc "$c5 - $c4 - $idle * ($t5 - $t4)")
per_eval=$(calc "$cpu / $evals")
mean=$(calc "($s5 - $s4) / $evals")
echo "evaluations=$evals failures=$failures series_modelled=$modelled series_scored=$scored idle_cpu_per_s=$idle" \
  "window_s=$(calc "$t5 - $t4") window_cpu_s=$(calc "$c5 - $c4")" >&2
grep -v 'level=WARN msg="auth disabled' "$work/o.log" | tail -5 >&2 || true

echo "| series | training to ACTIVE s (CPU s) | evaluations | CPU s / evaluation | CPU ms / series-evaluation | series-evaluations / core-s | mean evaluation s (metric) | RSS before → after MiB | peak RSS MiB | Go heap before → after MiB | MiB / series (heap; peak RSS) | saved model MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
echo "| $SERIES | $(fmt "$train_s" 0) ($(fmt "$train_cpu" 0)) | $evals | $(fmt "$per_eval" 2) | $(fmt "$(calc "$per_eval * 1000 / $SERIES")" 2) |" \
  "$(fmt "$(calc "$SERIES / $per_eval")" 0) | $(fmt "$mean" 2) | $rss0 → $rss1 | $hwm | $heap0 → $heap1 |" \
  "$(fmt "$(calc "($heap1 - $heap0) / $SERIES")" 2); $(fmt "$(calc "($hwm - $rss0) / $SERIES")" 2) | $model |"
