# Sourced by the benchmark scripts when SIGV4=1: the admin key that
# `orrery server --auth=sigv4` creates at its first start, exported as the
# AWS credentials that `orrery loadgen --sigv4`, the agents' remote_write
# sigv4 and curl's --aws-sigv4 sign with.
export ORRERY_ADMIN_ACCESS_KEY_ID=AKIABENCHMARK0000001 ORRERY_ADMIN_SECRET_ACCESS_KEY=bench-secret-key
export AWS_ACCESS_KEY_ID=$ORRERY_ADMIN_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$ORRERY_ADMIN_SECRET_ACCESS_KEY
SIGV4_REGION=us-east-1
# curl_sigv4 are curl's arguments signing a request with that key.
curl_sigv4=(--aws-sigv4 "aws:amz:$SIGV4_REGION:aps" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY")
# new_workspace ORRERY_BINARY URL: makes a workspace through the control
# plane (signed) and prints its id.
new_workspace() { "$1" workspaces create --url "$2" --alias bench; }
# start_signed "[PREFIX...] ORRERY_BINARY" DATA_DIR [SERVER_FLAGS...]:
# starts `orrery server --auth=sigv4` on a free port (behind PREFIX, e.g.
# taskset -c 0-1), waits until it is ready, and makes a workspace in it:
# sets s_port, s_pid and s_ws (the caller kills s_pid).
start_signed() {
  local cmd; read -ra cmd <<<"$1"
  s_port=$(port)
  "${cmd[@]}" server --auth=sigv4 --listen "127.0.0.1:$s_port" --data-dir "$2" --log.level=warn "${@:3}" >"$2.log" 2>&1 &
  s_pid=$!
  wait_ready "http://127.0.0.1:$s_port/-/ready"
  s_ws=$(new_workspace "${cmd[-1]}" "http://127.0.0.1:$s_port")
}
