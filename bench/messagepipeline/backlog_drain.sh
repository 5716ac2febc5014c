#!/usr/bin/env bash
# The embedded pipeline (config/local.yaml, end-to-end acknowledgement) draining an MQTT backlog,
# beside mosquitto_sub -c draining the same backlog on the same broker, in one run.
#
# For each of RUNS rounds: start Mosquitto on a free loopback port; create two persistent
# sessions subscribed to devices/+/telemetry (the pipeline's, by starting and stopping
# `dataflow run config/local.yaml`, and mosquitto_sub's); queue COUNT QoS 1 readings for both
# while neither is connected (`dataflow loadgen mqtt`); then time
#   - `dataflow run config/local.yaml` from its start until every reading is a row in SQLite
#     and a line in the gzip archive (each PUBACK waits for both), and
#   - `mosquitto_sub -c` from its start until it has printed COUNT messages.
# Prints both rates per round, then the medians and their ratio (target: >= 0.5).
#
#   cmake --preset release && cmake --build build/release --target dataflow
#   bench/messagepipeline/backlog_drain.sh [build-dir]     (default: build/release)
#   COUNT=20000 RUNS=3 bench/messagepipeline/backlog_drain.sh
#   CONFIG=my.yaml bench/messagepipeline/backlog_drain.sh   (another pipeline config; default
#                                                           config/local.yaml)
# Each round also prints the sinks' SQLite commits and archive objects (from /metrics, after
# the timing): every one of them costs an fsync.
#   PERF_DATA=/tmp/drain.perf bench/messagepipeline/backlog_drain.sh
#     records a `perf record` profile of each timed drain, once it is ready, as
#     /tmp/drain.perf.<run>; PERF_ARGS replaces perf's options (default -g).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build/release}
COUNT=${COUNT:-20000}
RUNS=${RUNS:-3}
DEVICES=${DEVICES:-20}
CONFIG=${CONFIG:-$ROOT/config/local.yaml}
DATAFLOW=$BUILD/apps/dataflow/dataflow
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
for exe in "$DATAFLOW" "$MOSQUITTO" "$(command -v mosquitto_sub)" "$(command -v sqlite3)"; do
  [[ -x $exe ]] || { echo "missing $exe" >&2; exit 1; }
done

DIR=$(mktemp -d)
BROKER_PID=
PIPELINE_PID=
WAITER_PID=
cleanup() {
  for pid in $WAITER_PID $PIPELINE_PID $BROKER_PID; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
OPS_PORT=$(free_port)
URL="tcp://127.0.0.1:$PORT"
# The pipeline withholds PUBACKs until both sinks have a reading: the broker's in-flight window
# (default 20 per client) must not cap it, and the backlog must not be cut at 1000 messages.
cat > "$DIR/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
max_inflight_messages 0
CONF
python3 - "$DEVICES" > "$DIR/registry.json" <<'PY'
import json, sys
n = int(sys.argv[1])
print(json.dumps({f"device-{i}": {"name": f"Sensor {i}", "location": ["london", "paris"][i % 2]}
                  for i in range(n)}))
PY

now() { date +%s.%N; }
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
start_pipeline() {  # out-dir
  MQTT_URL=$URL DATAFLOW_REGISTRY=$DIR/registry.json DATAFLOW_OUT=$1 DATAFLOW_OPS_PORT=$OPS_PORT \
    DATAFLOW_LOG_LEVEL=warn "$DATAFLOW" run "$CONFIG" > "$1.log" 2>&1 &
  PIPELINE_PID=$!
}
stop_pipeline() { kill -TERM "$PIPELINE_PID"; wait "$PIPELINE_PID" || { echo "dataflow run did not stop cleanly; see $1.log" >&2; exit 1; }; PIPELINE_PID=; }
rows() { sqlite3 "$1/warehouse.db" 'SELECT COUNT(*) FROM readings' 2>/dev/null || echo 0; }
lines() { find "$1/archive" -name '*.gz' -print0 2>/dev/null | xargs -0r zcat | wc -l; }
# User + system CPU seconds of a process (all threads).
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
# The whole machine's CPU counters (/proc/stat: user nice system idle iowait ...): how idle
# it was during the drain says whether the drain was bound by CPU or by waiting.
machine() { awk '$1 == "cpu" {t = 0; for (i = 2; i <= NF; i++) t += $i; print t, $5 + $6}' /proc/stat; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "backlog drain: $COUNT QoS 1 readings queued for a persistent session, $RUNS runs"
ours=()
refs=()
for run in $(seq "$RUNS"); do
  start_broker
  OUT=$DIR/out-$run
  # The two persistent sessions, subscribed before the backlog is published.
  start_pipeline "$OUT"
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$OPS_PORT/readyz" >/dev/null && break; sleep 0.05; done
  stop_pipeline "$OUT"
  rm -rf "$OUT"
  mosquitto_sub -h 127.0.0.1 -p "$PORT" -c -i "ref-drain-$run" -q 1 -t 'devices/+/telemetry' -E
  "$DATAFLOW" loadgen mqtt --url "$URL" --count "$COUNT" --devices "$DEVICES" --qos 1 --quiet \
    > "$DIR/loadgen.txt"

  # The waiter (one light process polls SQLite, then the archive sink's acks: see
  # wait_stored.py) starts first and says when it is ready, so the timing holds neither its
  # start nor its CPU. The lines themselves are counted after the timing.
  mkfifo "$DIR/waiter-$run"
  python3 "$ROOT/bench/messagepipeline/wait_stored.py" "$OUT" "$COUNT" "$OPS_PORT" \
    > "$DIR/waiter-$run" &
  WAITER_PID=$!
  exec 4< "$DIR/waiter-$run"
  read -r _ <&4
  broker_cpu0=$(cpu_of "$BROKER_PID")
  read -r all0 idle0 < <(machine)
  t0=$(now)
  start_pipeline "$OUT"
  PERF_PID=
  if [[ -n ${PERF_DATA:-} ]]; then
    # perf -p follows only the threads that exist: attach once the services run.
    until curl -sf "http://127.0.0.1:$OPS_PORT/readyz" >/dev/null; do sleep 0.01; done
    perf record -q ${PERF_ARGS:--g} -p "$PIPELINE_PID" -o "$PERF_DATA.$run" > "$DIR/perf.log" 2>&1 &
    PERF_PID=$!
  fi
  wait "$WAITER_PID"
  WAITER_PID=
  t1=$(now)
  exec 4<&-
  read -r all1 idle1 < <(machine)
  idle_pct=$(awk -v a="$((all1 - all0))" -v i="$((idle1 - idle0))" 'BEGIN {printf "%.0f", a ? 100 * i / a : 0}')
  broker_cpu=$(awk -v a="$broker_cpu0" -v b="$(cpu_of "$BROKER_PID")" 'BEGIN {printf "%.2f", b - a}')
  # CPU the pipeline used (user + system, all threads) and its threads' context switches: on a
  # shared machine these say more about the pipeline's cost than the rate does.
  cpu=$(cpu_of "$PIPELINE_PID")
  switches=$(cat /proc/"$PIPELINE_PID"/task/*/status 2>/dev/null |
    awk '/ctxt_switches/ {n += $2} END {print n}')
  metric() { curl -sf "http://127.0.0.1:$OPS_PORT/metrics" | awk -v m="$1{service=\"$2\"}" '$1 == m {print $2}'; }
  commits=$(metric dataflow_batches_total bigquery)
  objects=$(metric dataflow_archive_objects_written_total icestore)
  [[ -z $PERF_PID ]] || { kill -INT "$PERF_PID"; wait "$PERF_PID" || true; }
  stop_pipeline "$OUT"
  r=$(rows "$OUT"); l=$(lines "$OUT")
  if [[ $r -ne $COUNT || $l -ne $COUNT ]]; then
    echo "run $run: $r rows and $l archived lines, not $COUNT of each (the archive counts"\
      "duplicates too); see $OUT.log" >&2
    exit 1
  fi

  broker_cpu2=$(cpu_of "$BROKER_PID")
  t2=$(now)
  mosquitto_sub -h 127.0.0.1 -p "$PORT" -c -i "ref-drain-$run" -q 1 -t 'devices/+/telemetry' \
    -C "$COUNT" > "$DIR/ref.txt"
  t3=$(now)
  ref_broker_cpu=$(awk -v a="$broker_cpu2" -v b="$(cpu_of "$BROKER_PID")" 'BEGIN {printf "%.2f", b - a}')
  stop_broker

  our_rate=$(awk -v n="$COUNT" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n/(b-a)}')
  ref_rate=$(awk -v n="$COUNT" -v a="$t2" -v b="$t3" 'BEGIN {printf "%.0f", n/(b-a)}')
  printf 'run %d: pipeline %s msg/s (%s rows in %s commits, %s archived lines in %s objects; %s CPU-s, %.1f us CPU and %.1f context switches per reading; broker %s CPU-s; machine %s%% idle)  mosquitto_sub -c %s msg/s (broker %s CPU-s)  ratio %.2f\n' \
    "$run" "$our_rate" "$r" "${commits:-?}" "$l" "${objects:-?}" "$cpu" \
    "$(awk -v c="$cpu" -v n="$COUNT" 'BEGIN {print c * 1e6 / n}')" \
    "$(awk -v s="$switches" -v n="$COUNT" 'BEGIN {print s / n}')" "$broker_cpu" "$idle_pct" \
    "$ref_rate" "$ref_broker_cpu" "$(awk -v a="$our_rate" -v b="$ref_rate" 'BEGIN {print a/b}')"
  ours+=("$our_rate")
  refs+=("$ref_rate")
done
our_median=$(printf '%s\n' "${ours[@]}" | median)
ref_median=$(printf '%s\n' "${refs[@]}" | median)
printf 'median: pipeline %s msg/s, mosquitto_sub -c %s msg/s, ratio %.2f (target >= 0.5)\n' \
  "$our_median" "$ref_median" "$(awk -v a="$our_median" -v b="$ref_median" 'BEGIN {print a/b}')"
