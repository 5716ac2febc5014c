#!/usr/bin/env bash
# What the container image runs, without a container runtime (ctest packaging_staged_run):
# installs the runtime component into a staging root the way the Dockerfile's build stage
# does, checks the staged binary's libraries against the runtime stage's package list, and
# runs it on config/local.yaml through tests/e2e/ops_e2e_test.cc (Mosquitto, /readyz 200,
# JSON logs, /metrics through promtool, exit 0 on SIGTERM), and runs the shipped test files.
#   staged.sh BUILD_DIR SOURCE_DIR OPS_E2E_TEST_BINARY
set -euo pipefail
build=$1 src=$2 ops_test=$3
stage=$build/tests/packaging/staging
rm -rf "$stage"
DESTDIR=$stage cmake --install "$build" --prefix /usr --component runtime >/dev/null
bin=$stage/usr/bin/dataflow
test -x "$bin"

if ldd "$bin" | grep -q 'not found'; then
  ldd "$bin" | grep 'not found' >&2
  echo "staged.sh: the staged binary misses libraries" >&2
  exit 1
fi

# The runtime stage's packages (the apt-get install after FROM debian:12-slim), and what
# the slim base image already has.
runtime=$(sed -n '/^FROM debian:12-slim/,/useradd/p' "$src/Dockerfile" | grep -v '^#' |
  grep -oE '\b(lib[a-z0-9.+-]+|zlib1g|ca-certificates)\b' | sort -u)
allowed=$(printf '%s\nlibc6\nlibgcc-s1\nlibstdc++6\n' "$runtime")
declare -A path_of
for lib in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
  path_of[$lib]=$(readlink -f "$(ldd "$bin" | awk -v l="$lib" '$1 == l {print $3}')")
done
# One dpkg -S for all (each call takes half a second). Debian 12 is merged-/usr: dpkg may
# know a file under /lib rather than /usr/lib, so both names are asked for.
owners=$(for p in "${path_of[@]}"; do echo "$p" "${p#/usr}"; done | xargs dpkg -S 2>/dev/null || true)
missing=0
for lib in "${!path_of[@]}"; do
  p=${path_of[$lib]}
  pkg=$(awk -F': ' -v a="$p" -v b="${p#/usr}" '$2 == a || $2 == b {print $1; exit}' <<<"$owners")
  pkg=${pkg%%:*}
  if ! grep -qx "$pkg" <<<"$allowed"; then
    echo "staged.sh: $lib comes from package '${pkg:-?}', not in the Dockerfile's runtime stage" >&2
    missing=1
  fi
done
[ "$missing" = 0 ]

"$bin" --version
# The shipped test files run against the shipped configs, as a user of the package would.
"$bin" test "$stage/usr/share/dataflow/examples/local.test.yaml" \
  "$stage/usr/share/dataflow/examples/emulators.test.yaml"
DATAFLOW_TEST_BINARY=$bin "$ops_test"
