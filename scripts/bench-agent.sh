#!/usr/bin/env bash
# Agent benchmark: `orrery agent`, Debian's Prometheus 2.42 in agent mode
# and (if built: make deps) the Prometheus 3 agent of the embedded version,
# one after the other on this machine in one run, scraping the same targets
# (`orrery loadgen --serve-targets`, Envoy-like series whose values change
# at every scrape) and remote-writing to the same Orrery receiver.
#
#   scripts/bench-agent.sh [SERIES] [TARGETS] [DURATION_S] [INTERVAL]
#
# Prints a Markdown table row per agent: CPU seconds, CPU seconds per 100k
# series per minute, peak RSS, peak RSS per 100k series, samples sent.
#
# With SIGV4=1 the receiver runs with --auth=sigv4 and the agents sign their
# remote writes (remote_write sigv4) into workspaces made through the
# control plane; Debian's Prometheus 2.42, whose build has no SigV4, is then
# left out.
set -euo pipefail
SERIES=${1:-100000}
TARGETS=${2:-100}
DURATION=${3:-300}
INTERVAL=${4:-10s}
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/orrery-bench-agent.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/orrery" ./cmd/orrery
command -v prometheus >/dev/null || { echo "install Debian's prometheus: apt-get install prometheus" >&2; exit 1; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14+$15)/hz}' "/proc/$1/stat"; }
peak_rss_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
wait_ready() { for _ in $(seq 300); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "not ready: $1" >&2; return 1; }
sent() { curl -s "$1" | awk '/^prometheus_remote_storage_samples_total/ {s+=$2} END {printf "%d", s}'; }
# failed METRICS_URL: samples the receiver refused (a wrong signature would).
failed() { curl -s "$1" | awk '/^prometheus_remote_storage_samples_failed_total/ {s+=$2} END {printf "%d", s}'; }

"$work/orrery" loadgen --serve-targets "$TARGETS" --series "$SERIES" --targets-file "$work/targets.json" 2>"$work/targets.log" &
r_port=$(port)
auth=none
if [ "${SIGV4:-0}" = 1 ]; then . scripts/signed.sh; auth=sigv4; fi
"$work/orrery" server --auth=$auth --listen "127.0.0.1:$r_port" --data-dir "$work/receiver" --limits.ingestion-rate=0 \
  --limits.max-active-series=0 --log.level=warn >"$work/receiver.log" 2>&1 &
wait_ready "http://127.0.0.1:$r_port/-/ready"
# workspace N: the workspace agent N writes to.
workspace() {
  if [ "$auth" = sigv4 ]; then new_workspace "$work/orrery" "http://127.0.0.1:$r_port"; else echo "ws-00000000-0000-4000-8000-00000000000$1"; fi
}
for _ in $(seq 100); do [ -s "$work/targets.json" ] && break; sleep 0.1; done

config() { # WORKSPACE
  cat <<YAML
global: {scrape_interval: $INTERVAL, scrape_timeout: $INTERVAL}
scrape_configs:
  - job_name: envoy-sidecars
    file_sd_configs: [{files: ["$work/targets.json"]}]
remote_write:
  - url: http://127.0.0.1:$r_port/workspaces/$1/api/v1/remote_write
YAML
  if [ "$auth" = sigv4 ]; then
    echo "    sigv4: {region: $SIGV4_REGION, access_key: $AWS_ACCESS_KEY_ID, secret_key: $AWS_SECRET_ACCESS_KEY}"
  fi
}

run() { # NAME METRICS_URL CMD...
  local name=$1 metrics=$2; shift 2
  "$@" >"$work/agent.log" 2>&1 &
  local pid=$!
  wait_ready "${metrics%/metrics}/-/ready"
  local cpu0; cpu0=$(cpu_seconds "$pid")
  echo "== $name: $SERIES series in $TARGETS targets every $INTERVAL for ${DURATION}s" >&2
  sleep "$DURATION"
  local cpu1 rss n
  cpu1=$(cpu_seconds "$pid"); rss=$(peak_rss_kib "$pid"); n=$(sent "$metrics")
  local bad; bad=$(failed "$metrics")
  [ "$bad" = 0 ] || { echo "$name: the receiver refused $bad samples" >&2; exit 1; }
  kill "$pid"; wait "$pid" || true
  local cpu; cpu=$(echo "$cpu1 - $cpu0" | bc)
  printf '| %s | %d | %.1f | %.2f | %d | %d | %d |\n' "$name" "$SERIES" "$cpu" \
    "$(echo "$cpu * 100000 / $SERIES * 60 / $DURATION" | bc -l)" $((rss / 1024)) $((rss * 100000 / SERIES / 1024)) "$n"
}

echo "| agent | series | CPU s | CPU s per 100k series·min | peak RSS MiB | peak RSS MiB per 100k series | samples sent |"
echo "|---|---|---|---|---|---|---|"
config "$(workspace a)" >"$work/orrery.yml"
a_port=$(port)
run "orrery agent $(git rev-parse --short HEAD)" "http://127.0.0.1:$a_port/metrics" \
  "$work/orrery" agent --config.file "$work/orrery.yml" --storage.path "$work/orrery-wal" --listen "127.0.0.1:$a_port" --log.level=warn
if [ "$auth" = none ]; then
  config "$(workspace b)" >"$work/prom.yml"
  p_port=$(port)
  run "Prometheus $(prometheus --version 2>&1 | awk 'NR==1 {print $3}') agent" "http://127.0.0.1:$p_port/metrics" \
    prometheus --enable-feature=agent --config.file="$work/prom.yml" --storage.agent.path="$work/prom-wal" \
    --web.listen-address="127.0.0.1:$p_port" --log.level=warn
fi
if [ -x bin/prometheus3 ]; then
  config "$(workspace c)" >"$work/prom3.yml"
  p3_port=$(port)
  run "Prometheus 3.16 (embedded module) agent" "http://127.0.0.1:$p3_port/metrics" \
    bin/prometheus3 --agent --config.file="$work/prom3.yml" --storage.agent.path="$work/prom3-wal" \
    --web.listen-address="127.0.0.1:$p3_port" --log.level=warn
fi
