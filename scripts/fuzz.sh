#!/usr/bin/env bash
# libFuzzer campaigns: builds every tests/fuzz/fuzz_<parser>.c with clang
# (-fsanitize=fuzzer,address,undefined; the libraries get coverage instrumentation too) into
# build/fuzz, then runs each target for SECONDS over a scratch copy of its corpus
# tests/fuzz/corpus/<parser>/. Inputs that merely add coverage stay in the scratch copy;
# a crash (or a leak, a timeout, an out-of-memory) is copied into tests/fuzz/corpus/<parser>/,
# where CTest's replay turns it into a regression test, and printed with its report.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (default 60 s each, every target)
#        e.g. scripts/fuzz.sh 30 fuzz_import
# Environment: MU_FUZZ_BUILD_DIR (default build/fuzz), MU_FUZZ_ARGS (more libFuzzer flags).
# Exit status: 0 no crash, 1 at least one crash found, 2 build or set-up failure.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
BUILD=${MU_FUZZ_BUILD_DIR:-build/fuzz}
SECONDS_EACH=${1:-60}
shift || true
case "$SECONDS_EACH" in
'' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

# clang and its sanitizer/libFuzzer runtimes (Debian 12: clang-14, libclang-rt-14-dev).
if ! command -v clang >/dev/null; then
    echo "fuzz: clang is missing; installing it"
    apt-cache policy clang | sed -n '1,3p'
    apt-get install -y --no-install-recommends clang >/dev/null
fi
probe=$(mktemp -d)
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' \
    >"$probe/p.c"
if ! clang -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" 2>/dev/null; then
    ver=$(clang -dumpversion | cut -d. -f1)
    echo "fuzz: clang cannot link libFuzzer; installing libclang-rt-$ver-dev"
    apt-cache policy "libclang-rt-$ver-dev" | sed -n '1,3p'
    apt-get install -y --no-install-recommends "libclang-rt-$ver-dev" >/dev/null
fi
rm -rf "$probe"

# A build directory configured with another compiler would be reconfigured by CMake from
# scratch, silently dropping the flags below: start afresh instead.
if [ -f "$BUILD/CMakeCache.txt" ]; then
    have=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
    if [ "$(readlink -f "$(command -v "$have")")" != "$(readlink -f "$(command -v clang)")" ]; then
        echo "fuzz: $BUILD was configured with $have; reconfiguring it for clang"
        rm -rf "$BUILD"
    fi
fi
# MU_SANITIZE adds ASan+UBSan (UB aborts); fuzzer-no-link instruments the libraries for
# coverage; MU_FUZZ links the targets with libFuzzer. Only the fuzz targets are built.
cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DMU_FUZZ=ON \
    -DMU_SANITIZE=ON -DMU_WERROR=OFF \
    -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link -g -O1" >/dev/null || exit 2
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
cmake --build "$BUILD" -j"$(nproc)" --target "${targets[@]}" || exit 2

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
WORK=$(mktemp -d /tmp/mu-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
found=0
summary=()
for t in "${targets[@]}"; do
    parser=${t#fuzz_}
    corpus=$SRC/tests/fuzz/corpus/$parser
    bin=$BUILD/tests/fuzz/$t
    [ -x "$bin" ] || { echo "fuzz: $bin was not built" >&2; exit 2; }
    mkdir -p "$WORK/$t/corpus" "$WORK/$t/artifacts"
    [ -d "$corpus" ] && cp -r "$corpus/." "$WORK/$t/corpus/"
    before=$(ls "$WORK/$t/corpus" | wc -l)
    dict=()
    [ -f "$SRC/tests/fuzz/$parser.dict" ] && dict=(-dict="$SRC/tests/fuzz/$parser.dict")
    echo "=== $t: ${SECONDS_EACH}s over $before corpus files"
    rc=0
    # shellcheck disable=SC2086
    "$bin" "$WORK/$t/corpus" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$WORK/$t/artifacts/" -print_final_stats=1 "${dict[@]}" \
        ${MU_FUZZ_ARGS:-} >"$WORK/$t/log" 2>&1 || rc=$?
    runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$WORK/$t/log")
    cov=$(grep -o 'cov: [0-9]*' "$WORK/$t/log" | tail -1 | awk '{print $2}')
    after=$(ls "$WORK/$t/corpus" | wc -l)
    crashers=("$WORK/$t/artifacts"/*)
    [ -e "${crashers[0]}" ] || crashers=()
    if [ "$rc" -ne 0 ] || [ ${#crashers[@]} -gt 0 ]; then
        found=1
        echo "!!! $t: exit $rc"
        grep -E 'ERROR: |runtime error:|SUMMARY:|Test unit written|^ *#[0-9]+ ' "$WORK/$t/log" |
            head -40
        mkdir -p "$corpus"
        for c in "${crashers[@]}"; do
            cp "$c" "$corpus/"
            echo "!!! kept $corpus/$(basename "$c") ($(wc -c <"$c") bytes):"
            head -c 300 "$c" | od -c | head -8
        done
        [ ${#crashers[@]} -gt 0 ] || tail -30 "$WORK/$t/log"
        summary+=("$t: CRASH (${#crashers[@]} input(s) kept), ${runs:-?} runs")
    else
        summary+=("$t: ok, ${runs:-?} runs in ${SECONDS_EACH}s, coverage ${cov:-?}, corpus $before -> $after (scratch copy, not kept)")
    fi
done
echo "=== summary"
printf '%s\n' "${summary[@]}"
exit "$found"
