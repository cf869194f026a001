#!/usr/bin/env bash
# Runs every test of ringline.
#
#  1. the default workspace (ring, dataplane, stack, apps): no DPDK needed;
#  2. the loom models of the ring's atomic protocols;
#  3. the DPDK tests (cargo feature `dpdk`) when the system DPDK is installed
#     (Debian: libdpdk-dev pkg-config clang libclang-dev); skipped, with a
#     message, when it is not. CI installs it, so CI runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test (default members: ring, dataplane, stack, apps; no DPDK)"
# Not --workspace: that would also build dataplane/dpdk-sys, which needs libdpdk.
cargo test

echo "== loom models (ring)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p ringline-ring --test loom --release

if pkg-config --exists libdpdk 2>/dev/null; then
    echo "== DPDK tests (feature dpdk, DPDK $(pkg-config --modversion libdpdk))"
    cargo test -p ringline-dataplane --features dpdk
else
    echo "== DPDK tests SKIPPED: libdpdk not found by pkg-config"
    echo "   install with: apt-get install -y libdpdk-dev pkg-config clang libclang-dev"
fi

echo "== demo smoke run (loopback, 1 s)"
cargo run --release -q -p ringline-apps -- demo --duration 1 --json
