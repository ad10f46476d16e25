# syntax=docker/dockerfile:1
# Build: the same locked release build .ci/run makes.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
COPY benches ./benches
COPY tests ./tests
RUN cargo build --locked --release --bin dns64d

# Runtime: glibc-based distroless (the binary is dynamically linked to glibc).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/dns64d /usr/local/bin/dns64d
COPY config/node-local.toml /etc/dns64d/dns64d.toml
USER nonroot
EXPOSE 53/udp 53/tcp 9153/tcp
ENTRYPOINT ["/usr/local/bin/dns64d", "--config", "/etc/dns64d/dns64d.toml"]
