#!/usr/bin/env bash
# Prints bqstore's encode rate beside the generated-protobuf baseline from the same run
# (median of N repetitions) and the ratio, plus rows/s into SQLite with synchronous=NORMAL
# and FULL (TMPDIR must be on a disk: on a tmpfs fsync costs nothing), and JSON payloads to
# proto rows through a config schema beside the described struct, with the ratio.
# Usage: bench/bqstore/run_bench.sh [build-dir] [repetitions]
set -euo pipefail
build=${1:-build/bqstore}
reps=${2:-5}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$build/bench/bqstore/bqstore_bench" --benchmark_repetitions="$reps" \
  --benchmark_report_aggregates_only=true --benchmark_format=json >"$out"
python3 - "$out" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
med = {b["run_name"]: b["items_per_second"] for b in data["benchmarks"] if b.get("aggregate_name") == "median"}
ours, base = med["BM_DescribedEncode"], med["BM_GeneratedProtoBaseline"]
normal, full = med["BM_SQLiteInsert/full:0/real_time"], med["BM_SQLiteInsert/full:1/real_time"]
print(f"described encode -> AppendRowsRequest: {ours:,.0f} rows/s")
print(f"generated proto  -> AppendRowsRequest: {base:,.0f} rows/s")
print(f"ratio (target >= 0.5): {ours / base:.2f}")
print(f"SQLite insert (batches of 500, WAL, synchronous=NORMAL): {normal:,.0f} rows/s")
print(f"SQLite insert (batches of 500, WAL, synchronous=FULL):   {full:,.0f} rows/s (the sink's default)")
for arg, what in (("1", "JSON text"), ("0", "parsed JSON")):
    described = med[f"BM_JsonToProtoDescribed/{arg}"]
    schema = med[f"BM_JsonToProtoSchema/{arg}"]
    print(f"{what} -> proto row, described struct (FromJson + EncodeRow): {described:,.0f} rows/s")
    print(f"{what} -> proto row, config schema (RowConverter):          {schema:,.0f} rows/s")
    print(f"  ratio schema / described (target >= 0.5): {schema / described:.2f}")
PY
