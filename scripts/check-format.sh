#!/usr/bin/env bash
# Fails if a C file differs from the checked-in .clang-format style.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=()
while IFS= read -r f; do
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(git ls-files '*.c' '*.h')
if [ ${#bad[@]} -gt 0 ]; then
    echo "check-format: not clang-formatted (run clang-format -i): ${bad[*]}" >&2
    exit 1
fi
echo "check-format: all C files formatted"
