#!/usr/bin/env bash
# RedisCache hit path beside redis-benchmark GET on the same fresh redis-server, at
# concurrency 1 and 16, in one run; prints both rates and the ratio. Also runs the LRU
# benchmark. Usage: bench/cache/redis_bench.sh [path/to/cache_bench]
set -euo pipefail
bench=${1:-build/release/bench/cache/cache_bench}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
redis-cli -p "$port" set key:__rand_int__ "$(printf '{"email":"ada@example.com","name":"Ada"}')" >/dev/null

"$bench" --benchmark_filter=LruZipf
json=$(DATAFLOW_BENCH_REDIS=127.0.0.1:$port "$bench" --benchmark_filter=RedisHit \
         --benchmark_format=json 2>/dev/null)
for c in 1 16; do
  # -r unset: every GET reads the one key written above, like the cache hit path.
  rb=$(redis-benchmark -p "$port" -t get -c "$c" -n 200000 -q --csv | tail -1 |
       awk -F'","' '{gsub(/"/,"",$2); print $2}')
  ours=$(echo "$json" | python3 -c "import json,sys; d=json.load(sys.stdin);
print(next(b['items_per_second'] for b in d['benchmarks'] if b['name'].endswith('threads:$c')))")
  python3 -c "print(f'concurrency $c: RedisCache {float($ours):,.0f}/s  redis-benchmark GET {float($rb):,.0f}/s  ratio {float($ours)/float($rb):.2f}')"
done
