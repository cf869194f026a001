#!/usr/bin/env bash
# Runs every test of ringline.
#
#  1. the default workspace (ring, dataplane, stack, apps): no DPDK needed;
#  2. the loom models of the ring's atomic protocols;
#  3. the DPDK tests (cargo feature `dpdk`) when the system DPDK is installed
#     (Debian: libdpdk-dev pkg-config clang libclang-dev); skipped, with a
#     message, when it is not. CI installs it, so CI runs them all: the
#     dataplane's (net_ring, EAL errors, TAP checksums) and the command's
#     (the echo suite on a net_ring pair and over memif between two
#     processes, a Linux TCP peer through net_tap in a namespace, bulk
#     transfers through the impairing relay, bad configurations). The tests that need root or /dev/net/tun say so and
#     skip where they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test (default members: ring, dataplane, stack, apps, conformance, testkit, capi; no DPDK; capi's C tests need gcc and liburing-dev)"
# Not --workspace: that would also build dataplane/dpdk-sys, which needs libdpdk.
# capi's tests link C programs to libringline.so, which `cargo test` does not
# build (a cdylib is not a test dependency): build it first.
cargo build -p ringline-capi
cargo test

echo "== loom models (ring)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p ringline-ring --test loom --release

if pkg-config --exists libdpdk 2>/dev/null; then
    echo "== DPDK tests (feature dpdk, DPDK $(pkg-config --modversion libdpdk))"
    cargo test -p ringline-dataplane --features dpdk
    cargo test -p ringline-apps --features dpdk
    cargo build -p ringline-capi --features dpdk
    cargo test -p ringline-capi --features dpdk
else
    echo "== DPDK tests SKIPPED: libdpdk not found by pkg-config"
    echo "   install with: apt-get install -y libdpdk-dev pkg-config clang libclang-dev"
fi

echo "== demo smoke run (loopback, 1 s)"
cargo run --release -q -p ringline-apps -- demo --duration 1 --json
