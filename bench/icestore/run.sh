#!/usr/bin/env bash
# Runs the icestore benchmark (medians of REPS runs) and prints each figure beside the
# `gzip -1` baseline measured in the same run. Usage: bench/icestore/run.sh [build dir] [reps]
set -euo pipefail
BUILD=${1:-build/dev}
REPS=${2:-3}
OUT=$(mktemp)
"$BUILD/bench/icestore/icestore_bench" --benchmark_repetitions="$REPS" \
  --benchmark_report_aggregates_only=true --benchmark_format=json >"$OUT"
python3 - "$OUT" <<'PY'
import json, sys
runs = [b for b in json.load(open(sys.argv[1]))["benchmarks"] if b.get("aggregate_name") == "median"]
mbps = lambda b: b["bytes_per_second"] / 1e6
base = next(b for b in runs if b["run_name"].startswith("BM_GzipCli1"))
print(f"baseline gzip -1 (same JSONL bytes): {mbps(base):8.1f} MB/s")
for b in runs:
    name = b["run_name"]
    if name.startswith("BM_GzipCli1"): continue
    extra = f" ratio={b['ratio']:.2f}" if "ratio" in b else ""
    if "items_per_second" in b:
        extra += f" msgs/s={b['items_per_second']:.0f} payload MB/s={b['payload_MBps']/1e6:.1f}"
    print(f"{name:45s} {b.get('label',''):12s} {mbps(b):8.1f} MB/s  x{mbps(b)/mbps(base):.2f} of gzip -1{extra}")
PY
rm -f "$OUT"
