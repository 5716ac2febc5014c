#!/usr/bin/env bash
# The README's demo command: install what is missing, build the dataflow program (release),
# and run the demo. Extra arguments go to `dataflow demo` (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
# ccache keys independent of where the clone lives, so a fresh clone reuses earlier builds.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1

./scripts/setup.sh
cmake --preset demo >/dev/null
cmake --build --preset demo -j "$JOBS"
exec build/demo/apps/dataflow/dataflow demo --out build/demo-output "$@"
