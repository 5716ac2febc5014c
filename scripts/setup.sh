#!/usr/bin/env bash
# Installs everything dataflow needs on Debian 12: Debian packages with apt-get and the
# npm packages pinned in package-lock.json. Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# One package a line; keep in sync with docs/dependencies.md.
DEBIAN_PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache g++ clang libclang-rt-14-dev clang-format clang-tidy
  git pkg-config ca-certificates
  # libraries
  libabsl-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libhiredis-dev libpaho-mqtt-dev libpaho-mqttpp-dev libyaml-cpp-dev libcli11-dev
  libcpp-httplib-dev libcurl4-openssl-dev libssl-dev libsqlite3-dev zlib1g-dev libdeflate-dev
  libjemalloc-dev prometheus-cpp-dev
  # servers and tools used by tests, benchmarks and the demo
  redis-server redis-tools mosquitto mosquitto-clients sqlite3 curl procps
  prometheus  # only for promtool, which checks the /metrics output in the tests
)
# Node.js and Java may come from elsewhere on a machine (nodesource, a JDK); only ask Debian
# for them when the commands are missing, so we never fight an existing install.
command -v node >/dev/null && command -v npm >/dev/null || DEBIAN_PACKAGES+=(nodejs npm)
command -v java >/dev/null || DEBIAN_PACKAGES+=(default-jre-headless)

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "setup: not root and no sudo; install these packages yourself: ${DEBIAN_PACKAGES[*]}" >&2
    exit 1
  fi
fi

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Google's Pub/Sub and Firestore emulators come with the Google Cloud CLI. Debian does not
# ship it; where its apt source is configured (as on the project's machines) we install the
# two emulator components from it, otherwise the integration tests that need them say so.
if ! command -v gcloud >/dev/null; then
  if apt-cache policy google-cloud-cli 2>/dev/null | grep -q Candidate:.*[0-9]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq google-cloud-cli \
      google-cloud-cli-pubsub-emulator google-cloud-cli-firestore-emulator
  else
    echo "setup: note: google-cloud-cli is not available from apt here; emulator tests will be skipped" >&2
  fi
fi

# npm packages (protos, Google's Node clients used as cross-checks, the storage emulator).
if [[ -f package-lock.json ]]; then
  stamp=node_modules/.dataflow-lock.sha256
  want=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
    echo "setup: installing npm packages from package-lock.json"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" >"$stamp"
  fi
fi
echo "setup: ok"
