#!/usr/bin/env bash
# Runs every `ringline bench` scenario and the criterion benches, writing the
# tables, JSON and SVG plots into an output directory (default docs/bench/),
# as docs/performance.md reports them. Takes about 20 minutes on 2 cores.
# Run it on an otherwise idle machine: the benchmarks busy-poll both cores.
#
#   bash scripts/bench-all.sh [OUT_DIR] [extra `ringline bench` options, e.g. --realtime 10]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/bench}
shift || true
EXTRA=("$@")
mkdir -p "$OUT"
cargo build --release -p ringline-apps
B=${CARGO_TARGET_DIR:-target}/release/ringline

run() { # name, then the bench arguments
    local name=$1
    shift
    echo "== $name: ringline bench $* ${EXTRA[*]}"
    "$B" bench "$@" "${EXTRA[@]}" --json "$OUT/$name.json" --plot "$OUT/$name.svg" 2>&1 |
        tee "$OUT/$name.txt"
}

run echo-1000 echo --connections 1000 --duration 5 --server-recv both --repeat 3
run echo-1 echo --connections 1 --duration 5 --repeat 3
run accept-storm accept-storm --server-accept both --repeat 3
run stream stream --repeat 3
run poll poll --repeat 3
run scale scale --duration 3 --repeat 3
"$B" bench floor "${EXTRA[@]}" --json "$OUT/floor.json" 2>&1 | tee "$OUT/floor.txt"
"$B" bench memory --json "$OUT/memory.json" 2>&1 | tee "$OUT/memory.txt"
cargo bench -p ringline-apps --bench ring_nop --bench engine_ingress 2>&1 |
    grep -E '^(ring_nop|engine_)|time:|thrpt:' | tee "$OUT/criterion.txt"
