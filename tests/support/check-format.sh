#!/usr/bin/env bash
# Fails when a tracked C source or header differs from .clang-format's style.
# Fix with: git ls-files '*.c' '*.h' | xargs clang-format -i
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v clang-format >/dev/null || { echo "clang-format not found: apt-get install clang-format" >&2; exit 1; }
files=$(git ls-files '*.c' '*.h')
[ -n "$files" ] || { echo "no C files found (not a git checkout?)" >&2; exit 1; }
echo "$files" | xargs clang-format --dry-run --Werror
echo "format: $(echo "$files" | wc -l) files match .clang-format"
