# syntax=docker/dockerfile:1
# dns64d container image.
#   docker build -t dns64d .
#   docker run --rm -p 53:53/udp -p 53:53/tcp -p 9153:9153 dns64d
# Health: GET :9153/health (alive) and :9153/ready (an upstream answers); the
# runtime image has no shell, so probe from the orchestrator (see docs/DEPLOY.md).

# Build: the same locked release build .ci/run makes and the benchmarks measure
# (profile.release: fat LTO, one codegen unit, unwinding panics so one bad
# query task cannot take the process down).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
COPY benches ./benches
COPY tests ./tests
RUN cargo build --locked --release

# Runtime: distroless with glibc (the binary links glibc dynamically), no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/dns64d /usr/local/bin/dns64d
COPY config/node-local.toml /etc/dns64d/dns64d.toml
# distroless "nonroot" is 65532; port 53 needs CAP_NET_BIND_SERVICE (granted
# by the orchestrator: Kubernetes securityContext, docker --cap-add).
USER 65532:65532
EXPOSE 53/udp 53/tcp 9153/tcp
ENTRYPOINT ["/usr/local/bin/dns64d"]
CMD ["--config", "/etc/dns64d/dns64d.toml"]
