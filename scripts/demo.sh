#!/usr/bin/env bash
# The README's demo command: install what is missing, build (release), run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}

./scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$JOBS"

if [[ -x build/release/apps/dataflow/dataflow ]]; then
  exec build/release/apps/dataflow/dataflow demo "$@"
fi
# Until the dataflow program lands: the messagepipeline example pipelines.
echo "=== streaming pipeline (in-process broker)"
build/release/examples/messagepipeline/messagepipeline_streaming_example
echo "=== batching pipeline (in-process broker)"
build/release/examples/messagepipeline/messagepipeline_batching_example
