#!/usr/bin/env bash
# The C bench row: the same C echo server and client (capi/tests/c/echo.c,
# liburing's API, one ring and thread each, 64-byte messages, one in flight per
# connection) on the kernel's io_uring over 127.0.0.1 and on ringline's
# loopback wire (libringline, release build).
#
#   scripts/bench-capi.sh [CONNS] [SECONDS]      # default 16 connections, 5 s
#
# Prints one line per run: requests/s and round-trip p50/p99. Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-16}
SECS=${2:-5}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

cargo build --release -q -p ringline-capi
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
ln -s "$(realpath "$TARGET_DIR/release/libringline.so")" "$OUT/libringline.so"
ln -s "$(realpath "$TARGET_DIR/release/libringline.so")" "$OUT/libringline.so.0"
gcc -O2 -pthread -o "$OUT/echo-kernel" capi/tests/c/echo.c -luring
gcc -O2 -pthread -o "$OUT/echo-ringline" capi/tests/c/echo.c -L"$OUT" -lringline -Wl,-rpath,"$OUT"

# ringline's engines poll for RINGLINE_BUSY_POLL_US (default 1000) before
# they block: right with a core per engine, costly when the two rings' threads
# share fewer cores with other work. Both settings are shown.
for mode in "" sqpoll; do
    echo "kernel io_uring ${mode:-inline}: $(timeout $((SECS + 30)) "$OUT/echo-kernel" 127.0.0.1 "$CONNS" "${SECS}s" $mode)"
    echo "ringline ${mode:-inline} busy_poll 1000us: $(timeout $((SECS + 30)) "$OUT/echo-ringline" 10.0.0.1 "$CONNS" "${SECS}s" $mode)"
    echo "ringline ${mode:-inline} busy_poll 0: $(RINGLINE_BUSY_POLL_US=0 timeout $((SECS + 30)) "$OUT/echo-ringline" 10.0.0.1 "$CONNS" "${SECS}s" $mode)"
done
