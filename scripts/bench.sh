#!/usr/bin/env bash
# Runs the benchmarks (not part of the test suite) on an optimised build without sanitizers.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh all
cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DMU_WERROR=OFF >/dev/null
cmake --build build/bench -j"$(nproc)"
export MU_BINARY_DIR=$PWD/build/bench
for b in tests/bench/bench_*.py; do
    echo "### $b"
    python3 "$b" build/bench
done
for b in tests/bench/bench_*.sh; do
    echo "### $b"
    "$b" build/bench
done
for b in build/bench/tests/bench/bench_*; do
    [ -x "$b" ] || continue
    echo "### $b"
    "$b"
done
