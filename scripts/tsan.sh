#!/usr/bin/env bash
# ThreadSanitizer run: a separate build (build/tsan, -fsanitize=thread, no ASan/UBSan) of
# everything, then the unit and integration tests under TSan. Any report fails the run,
# whichever process made it (a test binary, mutualisd started by an integration test, the
# CLI): reports go to files under the build directory and are printed at the end.
# The only suppression is tests/tsan.supp (cJSON's global error position).
#
# Usage: scripts/tsan.sh [ctest arguments...]     e.g. scripts/tsan.sh -R integ_api
# Tests labelled libvirt (real libvirt nodes, guests) are left out unless MU_TSAN_LIBVIRT=1.
# Environment: CC (default clang, else gcc; CC=gcc works too), MU_TSAN_BUILD_DIR (default
# build/tsan), MU_WERROR (default OFF: warnings are policed by the GCC development build;
# optimised builds add warnings of their own, such as -Wformat-truncation).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
BUILD=${MU_TSAN_BUILD_DIR:-build/tsan}

if [ -z "${CC:-}" ]; then
    if command -v clang >/dev/null; then CC=clang; else CC=gcc; fi
fi
FLAGS="-fsanitize=thread -g -O1 -fno-omit-frame-pointer"
# A build directory configured with another compiler would be reconfigured by CMake from
# scratch, silently dropping the flags below: start afresh instead.
if [ -f "$BUILD/CMakeCache.txt" ]; then
    have=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
    if [ "$(readlink -f "$(command -v "$have")")" != "$(readlink -f "$(command -v "$CC")")" ]; then
        echo "tsan: $BUILD was configured with $have; reconfiguring it for $CC"
        rm -rf "$BUILD"
    fi
fi
cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=Debug \
    -DMU_SANITIZE=OFF -DMU_FUZZ=OFF -DMU_WERROR="${MU_WERROR:-OFF}" \
    -DCMAKE_C_FLAGS="$FLAGS" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
if ! nm "$BUILD/mutualisd" | grep __tsan_func_entry >/dev/null; then # not -q: no SIGPIPE
    echo "tsan: $BUILD/mutualisd is not instrumented (remove $BUILD and retry)" >&2
    exit 2
fi

REPORTS="$SRC/$BUILD/tsan-reports"
rm -rf "$REPORTS"
mkdir -p "$REPORTS"
# halt_on_error=0: collect every report of the run rather than the first; exitcode=66 makes
# a process that reported exit non-zero anyway, and the report files catch the rest (a
# daemon whose exit status a test does not look at).
export TSAN_OPTIONS="suppressions=$SRC/tests/tsan.supp:halt_on_error=0:exitcode=66:second_deadlock_stack=1:history_size=4:log_path=$REPORTS/tsan:${MU_TSAN_EXTRA:-}"
unset ASAN_OPTIONS UBSAN_OPTIONS
# GLib (under libvirt) recycles memory through per-thread GSlice magazines that TSan cannot
# see into, which shows up as races on freshly allocated blocks: make it use malloc.
export G_SLICE=always-malloc

exclude=(-LE libvirt)
[ "${MU_TSAN_LIBVIRT:-0}" = 1 ] && exclude=()
status=0
(cd "$BUILD" && ctest -L 'unit|integration' "${exclude[@]}" -j2 --output-on-failure \
    --timeout 1800 "$@") || status=$?

shopt -s nullglob
reports=("$REPORTS"/tsan.*)
if [ ${#reports[@]} -gt 0 ]; then
    echo "=== ThreadSanitizer reports (${#reports[@]} file(s)) ==="
    for f in "${reports[@]}"; do
        echo "--- $f"
        cat "$f"
    done
    [ "$status" -ne 0 ] || status=66
else
    echo "tsan: no ThreadSanitizer report"
fi
exit "$status"
