#!/usr/bin/env bash
# InMemoryLruCache under a Zipf(0.99) key distribution at 1 and 2 threads: runs
# cache_bench's BM_LruZipf (one shared cache) and BM_LruZipfPerThread (a private cache per
# thread: the scaling the machine allows) ROUNDS times, 3 repetitions each, and prints the
# median fetches/s and hit ratio. Given a second binary (e.g. built from an older commit)
# it alternates the two round by round, so both see the same machine noise.
# Usage: bench/cache/lru_bench.sh path/to/cache_bench [path/to/baseline_cache_bench] [ROUNDS]
set -euo pipefail
bench=${1:-build/release/bench/cache/cache_bench}
base=${2:-}
rounds=${3:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq "$rounds"); do
  "$bench" --benchmark_filter=LruZipf --benchmark_repetitions=3 --benchmark_format=json \
    >"$out/new.$r.json" 2>/dev/null
  if [ -n "$base" ]; then
    "$base" --benchmark_filter=LruZipf --benchmark_repetitions=3 --benchmark_format=json \
      >"$out/base.$r.json" 2>/dev/null
  fi
done
python3 - "$out" <<'PY'
import glob, json, statistics, sys
out = sys.argv[1]
med = {}
for tag in ("new", "base"):
    runs = {}
    for f in sorted(glob.glob(f"{out}/{tag}.*.json")):
        for b in json.load(open(f))["benchmarks"]:
            if b.get("run_type") != "iteration":
                continue
            name = b["name"].split("/")[0].removeprefix("BM_")
            t = int(b["name"].rsplit("threads:", 1)[1])
            runs.setdefault((name, t), []).append((b["items_per_second"], b["hit_ratio"]))
    for (name, t), xs in sorted(runs.items()):
        m = statistics.median(x[0] for x in xs)
        med[(tag, name, t)] = m
        print(f"{tag:4} {name:17} threads={t}: median {m / 1e6:5.2f} M fetches/s over "
              f"{len(xs)} runs (min {min(x[0] for x in xs) / 1e6:.2f}, "
              f"max {max(x[0] for x in xs) / 1e6:.2f}), "
              f"hit ratio {statistics.median(x[1] for x in xs):.3f}")
for (tag, name, t), m in sorted(med.items()):
    if t == 2 and (tag, name, 1) in med:
        print(f"{tag:4} {name:17} 2 threads / 1 thread: {m / med[(tag, name, 1)]:.2f}")
for (tag, name, t), m in sorted(med.items()):
    if tag == "new" and ("base", name, t) in med:
        print(f"{name:17} threads={t}: new / base {m / med[('base', name, t)]:.2f}")
PY
