#!/usr/bin/env bash
# Installs what is missing, builds once with ASan+UBSan and -Werror, checks formatting,
# and runs the whole CTest suite (unit, fuzz corpus replay, integration with real daemons).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh all

BUILD=${MU_BUILD_DIR:-build/test}
cmake -S . -B "$BUILD" -DMU_SANITIZE=ON -DMU_WERROR=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$BUILD" -j"$(nproc)"

./scripts/check-format.sh

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# The browser tests (label e2e) fail instead of skipping when chromium or their node modules
# are missing: install-deps.sh all installs them.
export MU_REQUIRE_E2E=${MU_REQUIRE_E2E:-1}
cd "$BUILD"
ctest -j2 --output-on-failure --timeout 900 "$@"
