#!/usr/bin/env bash
# Our Pub/Sub client beside Google's Node.js client on one emulator, at equal stream counts.
#   bench/pubsub/compare_with_node.sh <build-dir> [messages] [rounds]
#   STREAMS="1 4" (default) picks the StreamingPull stream counts.
# Both clients first run once, not counted (the emulator's JVM warms up); then each round
# runs both, in alternating order so neither always meets the emulator first. Prints every
# run, then per stream count the medians, the ratio ours/Node, each client's CPU per message,
# and the CPU cores the emulator used, which shows who saturates: consume is paced by the
# emulator (about 100 messages per 50 ms per stream), not by either client.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: compare_with_node.sh <build-dir> [messages] [rounds]}
n=${2:-20000}
rounds=${3:-3}
streams_list=${STREAMS:-1 4}
cpp_bench=$build/bench/pubsub/emulator_bench
[[ -x $cpp_bench ]] || { echo "missing $cpp_bench (build the target pubsub_emulator_bench)" >&2; exit 1; }
sdk=$(gcloud info --format='value(installation.sdk_root)' 2>/dev/null || echo /usr/lib/google-cloud-sdk)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
setsid "$sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator" --host=127.0.0.1 --port="$port" \
  >/tmp/pubsub-bench-emulator.log 2>&1 &
pid=$!
# The emulator's launcher and its Java child share the new session's process group.
trap 'kill -- -$pid 2>/dev/null || kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/v1/projects/p/topics" && break
  sleep 0.5
done
export PUBSUB_EMULATOR_HOST=127.0.0.1:$port METADATA_SERVER_DETECTION=none
DATAFLOW_BENCH_EMULATOR_PIDS=$(pgrep -g "$pid" | tr '\n' ' ')
export DATAFLOW_BENCH_EMULATOR_PIDS

# The emulator's JIT takes a few tens of thousands of messages to settle.
warm_streams=${streams_list##* }
echo "warm-up: $n messages each at $warm_streams stream(s) (not counted)"
"$cpp_bench" "$n" "$warm_streams" >/dev/null 2>&1
node "$here/node_bench.js" "$n" "$warm_streams" >/dev/null

results=$(mktemp)
trap 'rm -f "$results"; kill -- -$pid 2>/dev/null || kill $pid 2>/dev/null || true' EXIT
for round in $(seq "$rounds"); do
  for streams in $streams_list; do
    runs=("$cpp_bench $n $streams" "node $here/node_bench.js $n $streams")
    if ((round % 2 == 0)); then runs=("${runs[1]}" "${runs[0]}"); fi
    for run in "${runs[@]}"; do
      line=$($run 2>/dev/null)
      echo "round $round: $line"
      echo "$line" >>"$results"
    done
  done
done

python3 - "$results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    client, *fields = line.split()
    f = {k: float(v) for k, v in (x.split("=") for x in fields)}
    rows.setdefault((int(f["streams"]), client), []).append(f)
def med(streams, client, key):
    return statistics.median(r[key] for r in rows[(streams, client)])
for streams in sorted({s for s, _ in rows}):
    print(f"\n{streams} stream(s), medians of {len(rows[(streams, 'cpp')])} runs "
          f"(emulator pace ~{2000 * streams} msg/s for consume):")
    for phase in ("publish", "consume"):
        c, n = med(streams, "cpp", f"{phase}_msgs_per_s"), med(streams, "node", f"{phase}_msgs_per_s")
        print(f"  {phase:8} ours {c:8.0f} msg/s  node {n:8.0f} msg/s  ratio {c / n:4.2f}   "
              f"CPU us/msg ours {med(streams, 'cpp', f'{phase}_cpu_us_per_msg'):5.1f} "
              f"node {med(streams, 'node', f'{phase}_cpu_us_per_msg'):5.1f}   "
              f"emulator cores ours-run {med(streams, 'cpp', f'emulator_cores_{phase}'):4.2f} "
              f"node-run {med(streams, 'node', f'emulator_cores_{phase}'):4.2f}")
PY
