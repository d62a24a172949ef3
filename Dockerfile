# syntax=docker/dockerfile:1
# causeway: one static-ish binary on a distroless base (glibc, no shell).
#   docker build -t causeway:dev .
# The chart runs it as uid 65532 with a read-only root filesystem.

FROM rust:1.95-slim-bookworm AS build
# aws-lc-rs builds AWS-LC from source: a C toolchain, cmake and perl.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang perl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin causeway \
 && cp target/release/causeway /causeway

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /causeway /usr/local/bin/causeway
USER 65532:65532
# QUIC (UDP), federation gRPC and catalog watch, DNS, admin.
EXPOSE 15443/udp 15010/tcp 15011/tcp 15053/udp 15053/tcp 15000/tcp
ENTRYPOINT ["/usr/local/bin/causeway"]
CMD ["--help"]
