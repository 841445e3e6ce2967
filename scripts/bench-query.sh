#!/usr/bin/env bash
# Query latency benchmark: Orrery and Debian's Prometheus 2.42, each loaded
# with the same Envoy-like data by `orrery loadgen` (SERIES series, one hour
# of 15 s scrapes), then asked the same queries RUNS times each, one receiver
# at a time. Prints the median and p90 latency per query in a Markdown table.
#
#   scripts/bench-query.sh [SERIES] [RUNS]
set -euo pipefail
SERIES=${1:-100000}
RUNS=${2:-20}
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/orrery-qbench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/orrery" ./cmd/orrery
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_ready() { for _ in $(seq 200); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "not ready: $1" >&2; return 1; }
now=$(date +%s)
queries=(
  "query?query=sum+by+(envoy_cluster_name)+(rate(envoy_cluster_upstream_rq_total[5m]))&time=$now"
  "query_range?query=histogram_quantile(0.99,+sum+by+(le,+envoy_cluster_name)+(rate(envoy_cluster_upstream_rq_time_bucket[1m])))&start=$((now-3600))&end=$now&step=15"
  "query_range?query=topk(5,+sum+by+(pod)+(rate(envoy_http_downstream_rq_total[5m])))&start=$((now-3600))&end=$now&step=60"
  "series?match[]=envoy_server_live&start=$((now-3600))&end=$now"
  "label/pod/values"
)
measure() { # NAME API_BASE
  for q in "${queries[@]}"; do
    curl -gsf -o /dev/null "$2/$q" || { echo "query failed: $2/$q" >&2; exit 1; }
    times=$(for _ in $(seq "$RUNS"); do curl -gs -o /dev/null -w '%{time_total}\n' "$2/$q"; done | sort -n)
    p50=$(sed -n "$((RUNS / 2))p" <<<"$times"); p90=$(sed -n "$((RUNS * 9 / 10))p" <<<"$times")
    printf '| %s | `%s` | %.1f | %.1f |\n' "$1" "${q%%\?*}: $(sed -E 's/^[^=]*=([^&]*).*/\1/; s/\+/ /g' <<<"$q" | cut -c1-70)" \
      "$(echo "$p50 * 1000" | bc)" "$(echo "$p90 * 1000" | bc)"
  done
}
load() { "$work/orrery" loadgen --url "$1" --series "$SERIES" --rounds 240 --start-ago 1h >/dev/null 2>&1; }

echo "| receiver | query | p50 ms | p90 ms |"
echo "|---|---|---|---|"
o_port=$(port)
ws=ws-00000000-0000-4000-8000-000000000000
"$work/orrery" server --auth=none --listen "127.0.0.1:$o_port" --data-dir "$work/o" --limits.ingestion-rate=0 --log.level=warn >"$work/o.log" 2>&1 &
o_pid=$!
wait_ready "http://127.0.0.1:$o_port/-/ready"
load "http://127.0.0.1:$o_port/workspaces/$ws/api/v1/remote_write"
measure Orrery "http://127.0.0.1:$o_port/workspaces/$ws/api/v1"
kill "$o_pid"; wait "$o_pid" || true

p_port=$(port)
echo "global: {}" >"$work/p.yml"
prometheus --config.file="$work/p.yml" --storage.tsdb.path="$work/p" --web.listen-address="127.0.0.1:$p_port" \
  --web.enable-remote-write-receiver --log.level=warn >"$work/p.log" 2>&1 &
p_pid=$!
wait_ready "http://127.0.0.1:$p_port/-/ready"
load "http://127.0.0.1:$p_port/api/v1/write"
measure "Prometheus 2.42" "http://127.0.0.1:$p_port/api/v1"
kill "$p_pid"; wait "$p_pid" || true
