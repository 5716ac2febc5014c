#!/usr/bin/env bash
# Enriched messages/s through EnrichmentService (in-process broker in and out): all-hit L1,
# 90 % L1 / 10 % Redis, and the same miss rate over a free in-memory L2, beside the core
# StreamingService with a no-op stage in the same run; then Redis GET per key vs MGET from
# the service's worker count. Builds a Release tree, starts redis-server on a free loopback
# port, prints medians of REPS repetitions and the ratios.
#
#   bench/enrichment/run.sh [build-dir] [repetitions]   (default build/bench-enrichment, 3)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build/bench-enrichment}
REPS=${2:-3}
export CCACHE_BASEDIR=$ROOT CCACHE_NOHASHDIR=1
cd "$ROOT"
cmake --preset release -B "$BUILD" -DDATAFLOW_PACKAGES="messagepipeline;cache;enrichment" \
  -DDATAFLOW_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$BUILD" --target enrichment_bench

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done

DATAFLOW_LOG_LEVEL=${DATAFLOW_LOG_LEVEL:-warn} DATAFLOW_BENCH_REDIS=127.0.0.1:$port "$BUILD/bench/enrichment/enrichment_bench" \
  --benchmark_repetitions="$REPS" --benchmark_report_aggregates_only=true \
  --benchmark_enable_random_interleaving=true
