#!/usr/bin/env bash
# Builds the container image from the Dockerfile with whichever of docker, podman or buildah
# is installed.   scripts/image.sh [TAG]   (default dataflow:<version>)
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^project(dataflow VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
tag=${1:-dataflow:$version}
if command -v docker >/dev/null; then
  exec docker build -t "$tag" .
elif command -v podman >/dev/null; then
  exec podman build -t "$tag" .
elif command -v buildah >/dev/null; then
  exec buildah bud -t "$tag" .
fi
echo "image.sh: no docker, podman or buildah found" >&2
exit 2
