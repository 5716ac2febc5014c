# The dataflow program as a container image: built on Debian 12, run on Debian 12 slim with
# only the runtime libraries. scripts/image.sh builds it with docker, podman or buildah.
#
#   docker run -v $PWD/my.yaml:/etc/dataflow/config.yaml:ro -p 9464:9464 dataflow:0.2.0
#
# Logs are JSON (DATAFLOW_LOG_FORMAT=json) for Cloud Logging and other collectors; the ops
# endpoint (/healthz, /readyz, /metrics) listens on 9464, config key ops.port.

FROM debian:12 AS build
# The build packages of scripts/setup.sh that the program needs (no test servers), and npm
# for the pinned googleapis protos (package-lock.json).
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake ninja-build g++ pkg-config ca-certificates nodejs npm \
      libabsl-dev nlohmann-json3-dev libspdlog-dev libfmt-dev \
      libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc \
      libhiredis-dev libpaho-mqtt-dev libpaho-mqttpp-dev libyaml-cpp-dev libcli11-dev \
      libcpp-httplib-dev libcurl4-openssl-dev libssl-dev libsqlite3-dev zlib1g-dev libdeflate-dev \
      libjemalloc-dev prometheus-cpp-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
# The staging root is what CI checks (tests/packaging/staged.sh): the same install command.
RUN cmake --preset release -DDATAFLOW_BUILD_BENCH=OFF -DDATAFLOW_BUILD_EXAMPLES=OFF \
      -DCMAKE_INSTALL_PREFIX=/usr \
    && cmake --build build/release --target dataflow \
    && DESTDIR=/staging cmake --install build/release --component runtime

FROM debian:12-slim
# Runtime packages only: the shared libraries the program needs (tests/packaging/staged.sh
# checks this list against the binary's NEEDED entries) and CA certificates for TLS.
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libabsl20220623 libcpp-httplib0.11 libcurl4 libdeflate0 libfmt9 \
      libgrpc++1.51 libgrpc29 libhiredis0.14 libjemalloc2 libpaho-mqtt1.3 libpaho-mqttpp3-1 \
      libprometheus-cpp-core1.0 libprotobuf32 libspdlog1.10 libsqlite3-0 libssl3 libyaml-cpp0.7 \
      zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/dataflow --create-home dataflow
COPY --from=build /staging/usr/ /usr/
USER 10001:10001
WORKDIR /var/lib/dataflow
ENV DATAFLOW_LOG_FORMAT=json
EXPOSE 9464
STOPSIGNAL SIGTERM
ENTRYPOINT ["dataflow", "run", "/etc/dataflow/config.yaml"]
