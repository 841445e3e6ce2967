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
