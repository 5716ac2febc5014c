#!/usr/bin/env bash
# Our Pub/Sub client beside Google's Node.js client on one emulator, 1 and 4 streams.
#   bench/pubsub/compare_with_node.sh <build-dir> [messages]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: compare_with_node.sh <build-dir> [messages]}
n=${2:-20000}
sdk=$(gcloud info --format='value(installation.sdk_root)' 2>/dev/null || echo /usr/lib/google-cloud-sdk)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
setsid "$sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator" --host=127.0.0.1 --port="$port" \
  >/tmp/pubsub-bench-emulator.log 2>&1 &
pid=$!
# The emulator's launcher and its Java child share the new session's process group.
trap 'kill -- -$(ps -o pgid= -p $pid 2>/dev/null | tr -d " ") 2>/dev/null || kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/v1/projects/p/topics" && break
  sleep 0.5
done
export PUBSUB_EMULATOR_HOST=127.0.0.1:$port METADATA_SERVER_DETECTION=none
for streams in 1 4; do
  cpp=$("$build/bench/pubsub/emulator_bench" "$n" "$streams")
  node=$(node "$here/node_bench.js" "$n" "$streams")
  echo "$cpp"
  echo "$node"
  python3 - "$cpp" "$node" <<'PY'
import sys
def parse(line): return {k: float(v) for k, v in (f.split("=") for f in line.split()[1:])}
c, n = parse(sys.argv[1]), parse(sys.argv[2])
print(f"ratio streams={int(c['streams'])} publish={c['publish_msgs_per_s']/n['publish_msgs_per_s']:.2f} "
      f"consume={c['consume_msgs_per_s']/n['consume_msgs_per_s']:.2f}")
PY
done
