#!/usr/bin/env bash
# MqttConsumer vs mosquitto_sub, same broker, same stream, same run.
#
# For each QoS (0 and 1): start Mosquitto on a free loopback port, subscribe MqttConsumer
# (mqtt_consume_bench) and mosquitto_sub to the same topic, publish COUNT simulated device
# readings padded to PAYLOAD bytes as fast as the broker acknowledges them (`dataflow loadgen
# mqtt`, the program's load generator), and time each subscriber from its first to its last
# message. Prints both rates and the ratio. QoS 0 messages a slow subscriber cannot take are
# dropped by the broker, so a subscriber that misses messages is reported, not hidden.
# Repeats RUNS times and reports the median ratio.
#
# Needs a build with the dataflow program and the benchmarks, e.g. the release preset:
#   cmake --preset release && cmake --build build/release --target dataflow mqtt_consume_bench
#   bench/mqttconverter/run.sh [build-dir]      (default: build/release)
#   COUNT=100000 PAYLOAD=256 RUNS=3 bench/mqttconverter/run.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build/release}
COUNT=${COUNT:-100000}
PAYLOAD=${PAYLOAD:-256}
RUNS=${RUNS:-3}
DATAFLOW=$BUILD/apps/dataflow/dataflow
CONSUMER=$BUILD/bench/mqttconverter/mqtt_consume_bench
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
for exe in "$DATAFLOW" "$CONSUMER" "$MOSQUITTO"; do
  [[ -x $exe ]] || { echo "missing $exe (build the targets dataflow and mqtt_consume_bench)" >&2; exit 1; }
done

DIR=$(mktemp -d)
BROKER_PID=
cleanup() {
  if [[ -n $BROKER_PID ]]; then kill "$BROKER_PID" 2>/dev/null || true; wait "$BROKER_PID" 2>/dev/null || true; fi
  rm -rf "$DIR"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$DIR/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
CONF

start_broker() {
  "$MOSQUITTO" -c "$DIR/mosquitto.conf" > "$DIR/mosquitto.log" 2>&1 &
  BROKER_PID=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "mosquitto did not start; see $DIR/mosquitto.log" >&2; exit 1
}
stop_broker() { kill "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null || true; BROKER_PID=; }

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "MqttConsumer vs mosquitto_sub: $COUNT messages of $PAYLOAD bytes per run, $RUNS runs, live stream received by both at once"
for QOS in 0 1; do
  ratios=()
  for run in $(seq "$RUNS"); do
    start_broker
    TOPIC="bench/q$QOS/r$run"
    # Both subscribe first; mosquitto_sub stamps each message it receives (%U).
    mosquitto_sub -h 127.0.0.1 -p "$PORT" -q "$QOS" -t "$TOPIC" -C "$COUNT" -F '%U' \
      > "$DIR/ref.txt" &
    REF_PID=$!
    "$CONSUMER" --broker "tcp://127.0.0.1:$PORT" --topic "$TOPIC" --qos "$QOS" \
      --client-id "dataflow-$run" --count "$COUNT" > "$DIR/ours.txt" &
    OUR_PID=$!
    for _ in $(seq 200); do grep -q ready "$DIR/ours.txt" 2>/dev/null && break; sleep 0.05; done
    sleep 0.5  # mosquitto_sub has no ready signal; give its SUBSCRIBE time to land
    "$DATAFLOW" loadgen mqtt --url "tcp://127.0.0.1:$PORT" --count "$COUNT" \
      --payload-size "$PAYLOAD" --topic "$TOPIC" --qos "$QOS" --quiet > "$DIR/loadgen.txt"
    wait "$REF_PID"
    wait "$OUR_PID" || echo "MqttConsumer did not receive all $COUNT messages" >&2
    stop_broker
    ref_rate=$(awk 'NR==1{f=$1} {l=$1; n=NR} END {printf "%.0f", (n-1)/(l-f)}' "$DIR/ref.txt")
    our_rate=$(grep rate= "$DIR/ours.txt" | sed -E 's/.*rate=([0-9.]+).*/\1/')
    ratio=$(awk -v a="$our_rate" -v b="$ref_rate" 'BEGIN {printf "%.2f", a/b}')
    ratios+=("$ratio")
    echo "qos=$QOS run=$run mqttconsumer=${our_rate}/s mosquitto_sub=${ref_rate}/s ratio=$ratio ($(cat "$DIR/loadgen.txt"))"
  done
  echo "qos=$QOS median ratio (MqttConsumer / mosquitto_sub): $(printf '%s\n' "${ratios[@]}" | median)"
done
