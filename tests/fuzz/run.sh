#!/usr/bin/env bash
# Builds one libFuzzer target with clang (ASan + UBSan) and runs it for a
# bounded time over its seed corpus.
#   run.sh SOURCE_DIR BUILD_DIR TARGET SECONDS
# A longer run: run.sh . build fuzz_conn 3600  (new inputs go to
# BUILD_DIR/fuzz/TARGET-corpus; copy interesting ones into corpus/TARGET).
set -euo pipefail
src=$(cd "$1" && pwd); build=$(cd "$2" && pwd); target=$3; seconds=$4
out="$build/fuzz"
mkdir -p "$out/$target-corpus"
command -v clang >/dev/null || { echo "clang not found: apt-get install clang libclang-rt-14-dev" >&2; exit 1; }

daemon_srcs=()
if [ "$target" = fuzz_conn ]; then
  for f in "$src"/daemon/*.c; do
    [ "$(basename "$f")" = main.c ] || daemon_srcs+=("$f")
  done
fi
# Extra libraries that daemon modules need, when present.
extra_pkgs=""
for p in libpq libcurl; do
  pkg-config --exists "$p" && extra_pkgs="$extra_pkgs $p"
done

clang -g -O1 -std=gnu11 -D_GNU_SOURCE -DPORTER_FUZZING -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined \
  -I"$src/proto" -I"$build/proto" -I"$src/client/include" -I"$src/daemon" \
  "$src/tests/fuzz/$target.c" "${daemon_srcs[@]}" \
  "$src"/proto/*.c \
  "$build/proto/porter.pb-c.c" \
  $(pkg-config --cflags --libs libprotobuf-c libuv $extra_pkgs) -lpthread \
  -o "$out/$target"

cd "$out"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  "./$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -max_len=65536 -print_final_stats=1 "$target-corpus" "$src/tests/fuzz/corpus/$target"
