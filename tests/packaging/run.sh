#!/usr/bin/env bash
# Packaging tests (ctest label "packaging"): dataflow as an embedder consumes it.
#   run.sh install      BUILD_DIR PREFIX            cmake --install the libraries into PREFIX
#   run.sh find_package SOURCE_DIR PREFIX WORK VERSION   consumer project via find_package
#   run.sh subdirectory SOURCE_DIR WORK VERSION          consumer project via FetchContent
#   run.sh pkg_config   SOURCE_DIR PREFIX WORK           one program from pkg-config flags
# The consumer builds only two small programs (unoptimised, through ccache when present).
set -euo pipefail
mode=$1
shift
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

build_and_run() {  # SOURCE_DIR WORK VERSION extra-cmake-args...
  local src=$1 work=$2 version=$3
  shift 3
  rm -rf "$work"
  cmake -S "$src/tests/packaging/consumer" -B "$work" -G Ninja "${launcher[@]}" \
    -DDATAFLOW_SOURCE_DIR="$src" "$@"
  cmake --build "$work"
  "$work/streaming_example"
  "$work/consumer_check" "$version"
}

case $mode in
  install)
    rm -rf "$2"
    cmake --install "$1" --prefix "$2" --component devel
    ;;
  find_package)
    build_and_run "$1" "$3" "$4" -DDATAFLOW_CONSUMER_MODE=find_package -DCMAKE_PREFIX_PATH="$2"
    ;;
  subdirectory)
    build_and_run "$1" "$2" "$3" -DDATAFLOW_CONSUMER_MODE=subdirectory
    ;;
  pkg_config)
    src=$1 prefix=$2 work=$3
    rm -rf "$work" && mkdir -p "$work"
    libdir=$(dirname "$(find "$prefix" -name dataflow.pc -print -quit)")
    export PKG_CONFIG_PATH=$libdir
    cflags=$(pkg-config --cflags dataflow)
    libs=$(pkg-config --libs dataflow)
    echo "pkg-config --cflags --libs dataflow: $cflags $libs"
    # Compiled and linked apart: ccache caches only compilations.
    # shellcheck disable=SC2086  # the flags are words
    ${launcher:+ccache} c++ $cflags -c -o "$work/streaming_example.o" \
      "$src/examples/messagepipeline/streaming_example.cc"
    # shellcheck disable=SC2086
    c++ -o "$work/streaming_example" "$work/streaming_example.o" $libs
    "$work/streaming_example"
    ;;
  *)
    echo "usage: see the header of $0" >&2
    exit 2
    ;;
esac
