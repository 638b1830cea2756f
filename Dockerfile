# syntax=docker/dockerfile:1
# The `crowdgate` image: the binary (core, settle, host, ops, ...), the two
# Spin components, spin.toml and the demo crowdgate.toml. One image for every
# part; the first argument picks it (`core`, `settle`, `host --manifest
# /app/spin.toml`, ...). deploy/ runs it; docs/DEPLOY.md explains it.
#
#   docker build -t registry.example.com/crowdgate/crowdgate:0.1.0 .

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=trixie

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
RUN rustup target add wasm32-wasip2
WORKDIR /src
# The whole workspace: cargo needs every member's manifest.
COPY . .
# Cache mounts keep the registry and build output between builds; the
# results are copied out of them within the same step. The release profile
# keeps line tables for backtraces; compressing them takes the binary from
# about 180 MB to about 70 MB.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release -p crowdgate \
 && cargo build --locked --target wasm32-wasip2 --profile component -p waiting-room -p edge \
 && mkdir -p /out/target/wasm32-wasip2/component \
 && objcopy --compress-debug-sections=zlib target/release/crowdgate /out/crowdgate \
 && cp target/wasm32-wasip2/component/waiting_room.wasm \
       target/wasm32-wasip2/component/edge.wasm \
       /out/target/wasm32-wasip2/component/

FROM debian:${DEBIAN_RELEASE}-slim
RUN groupadd --system --gid 10001 crowdgate \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin crowdgate \
 && mkdir -p /var/cache/crowdgate \
 && chown crowdgate:crowdgate /var/cache/crowdgate
COPY --from=build /out/crowdgate /usr/local/bin/crowdgate
# spin.toml names its components under target/wasm32-wasip2/component/,
# relative to itself: keep that layout (and leave CARGO_TARGET_DIR unset).
COPY --from=build /out/target /app/target
COPY spin.toml crowdgate.toml /app/
WORKDIR /app
# `crowdgate host` keeps compiled components here unless --compile-cache
# says otherwise.
ENV XDG_CACHE_HOME=/var/cache
USER 10001:10001
# core 8080, the edge host 3000, metrics: host 9101, settle 9102.
EXPOSE 8080 3000 9101 9102
ENTRYPOINT ["crowdgate"]
CMD ["--help"]
