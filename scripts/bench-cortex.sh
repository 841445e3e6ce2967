#!/usr/bin/env bash
# Ingestion benchmark of the Cortex engine: the same Envoy-like load
# (`orrery loadgen`, remote write 1.0, 2000 samples per request, 4 senders)
# written to Cortex's distributor directly, then through an Orrery replica
# (--engine=cortex) in front of the same Cortex, in one run on this machine.
#
#   scripts/bench-cortex.sh [SERIES] [ROUNDS]
#
# Needs bin/cortex (make deps) and Debian's postgresql (the catalog). Prints
# a Markdown table row per run (each path twice, alternating): samples/s,
# p99 request latency, CPU seconds of Cortex and of Orrery during the load,
# CPU-µs per sample.
#
# With SIGV4=1 a second Orrery replica (--auth=sigv4, the same catalog and
# Cortex) is also fed SigV4-signed requests into a workspace made through
# the control plane.
set -euo pipefail
SERIES=${1:-50000}
ROUNDS=${2:-40}
cd "$(dirname "$0")/.."
[ -x bin/cortex ] || { echo "bin/cortex missing: make deps builds it (test/cortex)" >&2; exit 1; }
work=$(mktemp -d /tmp/orrery-bench-cortex.XXXXXX)
chmod 755 "$work"
trap 'kill $(jobs -p) 2>/dev/null || true; sleep 1; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
go build -o "$work/orrery" ./cmd/orrery
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14+$15)/hz}' "/proc/$1/stat"; }
wait_ready() { for _ in $(seq 600); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "not ready: $1" >&2; return 1; }

# PostgreSQL for the catalog, as the postgres user when run as root.
pgbin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | tail -1)")
as_pg=(); [ "$(id -u)" = 0 ] && { chown postgres "$work"; as_pg=(runuser -u postgres --); }
pg_port=$(port)
"${as_pg[@]}" "$pgbin/initdb" -D "$work/pg" -U orrery --auth=trust --no-sync >/dev/null
"${as_pg[@]}" "$pgbin/postgres" -D "$work/pg" -h 127.0.0.1 -p "$pg_port" -k "$work" -F -c fsync=off >"$work/pg.log" 2>&1 &
for _ in $(seq 100); do "$pgbin/pg_isready" -h 127.0.0.1 -p "$pg_port" >/dev/null 2>&1 && break; sleep 0.1; done

c_port=$(port); g_port=$(port)
mkdir -p "$work/cortex"
cat >"$work/cortex.yaml" <<YAML
auth_enabled: true
name_validation_scheme: utf8
server: {http_listen_address: 127.0.0.1, http_listen_port: $c_port, grpc_listen_address: 127.0.0.1, grpc_listen_port: $g_port, log_level: warn,
  grpc_server_max_recv_msg_size: 104857600, grpc_server_max_send_msg_size: 104857600}
distributor: {shard_by_all_labels: true, remote_writev2_enabled: true, ring: {instance_addr: 127.0.0.1, kvstore: {store: inmemory}}}
ingester:
  lifecycler: {address: 127.0.0.1, min_ready_duration: 0s, final_sleep: 0s, join_after: 0s, num_tokens: 128,
    ring: {kvstore: {store: inmemory}, replication_factor: 1}}
blocks_storage: {backend: filesystem, filesystem: {dir: $work/cortex/blocks}, tsdb: {dir: $work/cortex/tsdb}, bucket_store: {sync_dir: $work/cortex/sync}}
compactor: {data_dir: $work/cortex/compactor, sharding_ring: {instance_addr: 127.0.0.1, kvstore: {store: inmemory}}}
store_gateway: {sharding_ring: {instance_addr: 127.0.0.1, kvstore: {store: inmemory}}}
querier: {active_query_tracker_dir: $work/cortex/active-query-tracker}
ruler: {enable_api: true, rule_path: $work/cortex/ruler-tmp, ring: {instance_addr: 127.0.0.1, kvstore: {store: inmemory}}}
ruler_storage: {backend: filesystem, filesystem: {dir: $work/cortex/rules}}
alertmanager: {enable_api: true, external_url: http://127.0.0.1:$c_port/alertmanager, data_dir: $work/cortex/am-data,
  sharding_ring: {instance_addr: 127.0.0.1, kvstore: {store: inmemory}}}
alertmanager_storage: {backend: filesystem, filesystem: {dir: $work/cortex/am}}
limits: {ingestion_rate: 100000000, ingestion_burst_size: 200000000, max_series_per_metric: 0, max_series_per_user: 0,
  max_label_names_per_series: 70, enable_native_histograms: true}
YAML
bin/cortex -target=all -config.file="$work/cortex.yaml" >"$work/cortex.log" 2>&1 &
c_pid=$!
wait_ready "http://127.0.0.1:$c_port/ready"

o_port=$(port)
"$work/orrery" server --engine=cortex --cortex.url "http://127.0.0.1:$c_port" --db "postgres://orrery@127.0.0.1:$pg_port/postgres?sslmode=disable" \
  --secrets-key-file "$work/secrets.key" --data-dir "$work/orrery-data" --auth=none --listen "127.0.0.1:$o_port" \
  --limits.ingestion-rate=0 --limits.max-active-series=0 --log.level=warn >"$work/orrery.log" 2>&1 &
o_pid=$!
wait_ready "http://127.0.0.1:$o_port/-/ready"

run() { # NAME URL [loadgen flags]
  local name=$1 url=$2 c0 o0 out; shift 2
  c0=$(cpu_seconds "$c_pid"); o0=$(cpu_seconds "$o_pid")
  echo "== $name: $SERIES series × $ROUNDS rounds" >&2
  out=$("$work/orrery" loadgen --url "$url" --series "$SERIES" --rounds "$ROUNDS" --interval 15s "$@")
  echo "$out" >&2
  local c1 o1 sps p99 samples
  c1=$(cpu_seconds "$c_pid"); o1=$(cpu_seconds "$o_pid")
  sps=$(sed -E 's/.*samples_per_s=([0-9]+).*/\1/' <<<"$out"); p99=$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$out")
  samples=$((SERIES * ROUNDS))
  printf '| %s | %d | %s | %s | %.1f | %.1f | %.2f |\n' "$name" "$samples" "$sps" "$p99" "$(echo "$c1 - $c0" | bc)" \
    "$(echo "$o1 - $o0" | bc)" "$(echo "($c1 - $c0 + $o1 - $o0) * 1000000 / $samples" | bc -l)"
}

echo "| path | samples | samples/s | p99 request ms | Cortex CPU s | Orrery CPU s | CPU-µs/sample |"
echo "|---|---|---|---|---|---|---|"
direct() { run "Cortex /api/v1/push directly" "http://127.0.0.1:$c_port/api/v1/push" --tenant "bench-direct-$1"; }
# PROFILE=FILE: a CPU profile of Orrery during its first run (8 s of it,
# after the first round) goes to FILE.
through() {
  if [ -n "${PROFILE:-}" ] && [ "$1" = 1 ]; then
    (sleep 3; curl -sf -o "$PROFILE" "http://127.0.0.1:$o_port/debug/pprof/profile?seconds=8") &
  fi
  run "Orrery $(git rev-parse --short HEAD) → Cortex" "http://127.0.0.1:$o_port/workspaces/ws-00000000-0000-4000-8000-00000000000$1/api/v1/remote_write"
}
# Each path twice, alternating, each time into a new tenant: the second
# run of either meets an ingester already holding the other's series.
direct 1; through 1; through 2; direct 2
if [ "${SIGV4:-0}" = 1 ]; then
  . scripts/signed.sh
  start_signed "$work/orrery" "$work/orrery-sigv4-data" --engine=cortex --cortex.url "http://127.0.0.1:$c_port" \
    --db "postgres://orrery@127.0.0.1:$pg_port/postgres?sslmode=disable" --secrets-key-file "$work/secrets.key" \
    --limits.ingestion-rate=0 --limits.max-active-series=0
  # run counts the first replica's CPU: the signed one is o_pid for this run.
  u_pid=$o_pid; o_pid=$s_pid
  run "Orrery $(git rev-parse --short HEAD) → Cortex, SigV4" "http://127.0.0.1:$s_port/workspaces/$s_ws/api/v1/remote_write" --sigv4
  o_pid=$u_pid
fi
# Remote write 2.0 senders: Cortex converts 2.0 to 1.0 itself (its
# experimental remote_writev2_enabled); Orrery decodes, validates and
# re-encodes it as 1.0.
[ -n "${SKIP_RW2:-}" ] || run "Cortex /api/v1/push directly, RW 2.0" "http://127.0.0.1:$c_port/api/v1/push" --tenant bench-direct-5 --protocol 2
[ -n "${SKIP_RW2:-}" ] || run "Orrery $(git rev-parse --short HEAD) → Cortex, RW 2.0" "http://127.0.0.1:$o_port/workspaces/ws-00000000-0000-4000-8000-000000000005/api/v1/remote_write" --protocol 2

# Latency below saturation: the same load paced to RATE samples/s (default
# 50000, 25 requests/s of 2000 samples), where a request's time is the
# receivers' work rather than queueing behind the other senders.
RATE=${RATE:-50000}
lat() { # NAME URL [flags]
  local name=$1 url=$2 out; shift 2
  out=$("$work/orrery" loadgen --url "$url" --series 20000 --rounds 30 --interval 15s --rate "$RATE" "$@" 2>/dev/null)
  printf '| %s | %s | %s | %s |\n' "$name" "$RATE" "$(sed -E 's/.*p50_ms=([0-9.]+).*/\1/' <<<"$out")" "$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$out")"
}
echo
echo "| path (paced) | samples/s | p50 request ms | p99 request ms |"
echo "|---|---|---|---|"
for i in 3 4; do
  lat "Cortex /api/v1/push directly" "http://127.0.0.1:$c_port/api/v1/push" --tenant "bench-direct-$i"
  lat "Orrery $(git rev-parse --short HEAD) → Cortex" "http://127.0.0.1:$o_port/workspaces/ws-00000000-0000-4000-8000-00000000000$i/api/v1/remote_write"
done
