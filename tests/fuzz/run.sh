#!/usr/bin/env bash
# run.sh [SECONDS] - fuzz the codec's decoders (the upload wire format, the
# body records, the catch-up bundle) with libFuzzer under AddressSanitizer
# and UBSan, for SECONDS (default 600).  `make fuzz FUZZ_SECONDS=N` calls it.
#
#   build-fuzz/fuzz_codec      the target (tests/fuzz/fuzz_codec.c + common/ + codec/)
#   build-fuzz/corpus          the working corpus (grows while fuzzing)
#   tests/fuzz/corpus          the kept corpus: the seeds (seed-*) plus every
#                              input that adds coverage to them, minimized by
#                              libFuzzer's merge; the suite replays it
#                              (test_codec/fuzz_corpus_replays_without_a_fault)
#   build-fuzz/fuzz.log        libFuzzer's output
#
# Exits non-zero when the fuzzer found a crash, a leak, a timeout or a
# sanitizer report (the reproducer is left in build-fuzz/).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-600}
[ -n "$SECS" ] || SECS=600
OUT=build-fuzz
KEEP=tests/fuzz/corpus
CC=${FUZZ_CC:-clang}
command -v "$CC" >/dev/null || { echo "fuzz: $CC not found (make deps installs clang and libclang-rt-14-dev)"; exit 1; }
mkdir -p "$OUT/obj" "$OUT/corpus" "$KEEP"

FLAGS=(-std=gnu11 -O1 -g -D_GNU_SOURCE -I. -ffp-contract=off -fno-omit-frame-pointer
       -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -w)
objs=()
for src in common/*.c codec/*.c; do
  obj="$OUT/obj/${src//\//_}.o"
  if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ codec/codec.h -nt "$obj" ] || [ codec/internal.h -nt "$obj" ] ||
     [ common/common.h -nt "$obj" ]; then
    "$CC" "${FLAGS[@]}" -c "$src" -o "$obj"
  fi
  objs+=("$obj")
done
"$CC" "${FLAGS[@]}" -fsanitize=fuzzer -DSPL_FUZZ_MAIN tests/fuzz/fuzz_codec.c "${objs[@]}" \
  -o "$OUT/fuzz_codec" -lsodium -lcjson -lzstd -lm -lpthread
echo "fuzz: built $OUT/fuzz_codec"

# Seeds: valid objects of every input mode (regenerated; they are deterministic).
SPL_FUZZ_WRITE_SEEDS="$KEEP" "$OUT/fuzz_codec" >/dev/null 2>&1
cp -n "$KEEP"/* "$OUT/corpus/" 2>/dev/null || true

rm -f "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* "$OUT"/oom-* "$OUT"/slow-unit-*
echo "fuzz: running for ${SECS}s (log: $OUT/fuzz.log)"
status=0
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$OUT/fuzz_codec" -max_total_time="$SECS" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$OUT/" "$OUT/corpus" >"$OUT/fuzz.log" 2>&1 || status=$?

# Keep the seeds plus whatever adds coverage to them, minimized.
rm -rf "$OUT/min" && mkdir -p "$OUT/min"
cp "$KEEP"/seed-* "$OUT/min/"
"$OUT/fuzz_codec" -merge=1 -max_len=8192 "$OUT/min" "$OUT/corpus" >"$OUT/merge.log" 2>&1 || true
find "$KEEP" -type f ! -name 'seed-*' -delete
for f in "$OUT/min"/*; do
  b=$(basename "$f")
  [[ $b == seed-* ]] || cp "$f" "$KEEP/$b"
done

runs=$(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$OUT/fuzz.log" | tail -1 || true)
cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$OUT/fuzz.log" | tail -1 || true)
echo "fuzz: ${runs:-no completion line} | ${cov:-no coverage line} | kept corpus: $(ls "$KEEP" | wc -l) files, $(du -sh "$KEEP" | cut -f1)"
grep -E 'stat::' "$OUT/fuzz.log" || true
found=$(ls "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* "$OUT"/oom-* 2>/dev/null || true)
if [ $status -ne 0 ] || [ -n "$found" ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$OUT/fuzz.log"; then
  echo "fuzz: FAILED (exit $status); see $OUT/fuzz.log ${found:+and $found}"
  tail -n 40 "$OUT/fuzz.log"
  exit 1
fi
echo "fuzz: no crash, leak, timeout or sanitizer report"
