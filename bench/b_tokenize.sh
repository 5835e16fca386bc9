#!/usr/bin/env bash
# b_tokenize.sh - tokenizer speed: MB/s of text to tokens for GPT-2 and
# Llama 3 (tokenizer.json files built from the npm packages, as
# tests/t_tokenizer.sh does), on one core (`tessera data tokenize`) and on
# all cores (`tessera data prep --threads 0`), beside tiktoken's wasm build,
# js-tiktoken and llama3-tokenizer-js on the same text in the same run.
# (docs/BENCHMARKS.md, "Tokenizer").
#
#   BUILD=build bash bench/b_tokenize.sh        (or: make bench BENCH_ARGS=b_tokenize)
#
# The text: the demo corpus's fortune files, repeated to TOK_MB megabytes
# (default 10).  The tokenizer.json's load time is measured apart and taken
# out of the encoding figures.  Needs node and npm (skipped without them).
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
TS=$BUILD/bin/tessera
MB=${TOK_MB:-10}
DIR=$(bash tests/npm_oracle.sh tokenizer-bench js-tiktoken@1.0.21 tiktoken@1.0.22 llama3-tokenizer-js@1.2.0) || {
  echo "b_tokenize: skipped: npm unreachable"; exit 0; }
export NODE_PATH=$DIR/node_modules
ORACLE="node tests/npm/tokenizer_oracle.mjs"
T=$(mktemp -d "${TMPDIR:-/tmp}/b_tokenize-XXXXXX"); trap 'rm -rf "$T"' EXIT
for m in gpt2 llama3; do
  [ -s "$DIR/$m.json" ] || { $ORACLE $m-json "$DIR/$m.json.tmp" && mv "$DIR/$m.json.tmp" "$DIR/$m.json"; }
done
mkdir -p "$T/text"
src=$(find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | sort)
[ -n "$src" ] || { echo "b_tokenize: skipped: no fortune files (tools/deps.sh installs them)"; exit 0; }
# shellcheck disable=SC2086
while [ "$(du -sm "$T/text" | cut -f1)" -lt "$MB" ]; do
  i=$(ls "$T/text" | wc -l)
  cat $src >"$T/text/part$(printf %04d "$i").txt"
done
cat "$T"/text/* >"$T/all.txt"
bytes=$(stat -c %s "$T/all.txt")
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u +%Y-%m-%dT%H:%MZ)"
echo "text: $bytes bytes (the fortune files, repeated)"
secs() { local t0=$EPOCHREALTIME; "$@" >/dev/null 2>&1 || return 1; awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }'; }
for m in gpt2 llama3; do
  load=$(secs "$TS" data tokenize -t "$DIR/$m.json" --count x)
  one=$(secs "$TS" data tokenize -t "$DIR/$m.json" --count --files "$T/all.txt")
  p1=$(secs "$TS" data prep -q -t "$DIR/$m.json" --threads 1 --doc-sep % --out "$T/p1-$m" "$T/text")
  pn=$(secs "$TS" data prep -q -t "$DIR/$m.json" --threads 0 --doc-sep % --out "$T/pn-$m" "$T/text")
  js=$($ORACLE bench "$m" "$T/all.txt")
  python3 - "$m" "$bytes" "$load" "$one" "$p1" "$pn" "$js" "$(nproc)" <<'PY'
import json, sys
m, n, load, one, p1, pn, js, cores = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:7]), json.loads(sys.argv[7]), int(sys.argv[8])
mbs = lambda s: n / 1e6 / max(s, 1e-9)
t1 = mbs(one - load)
print(f"{m}: load {load:.2f} s; tessera one core {t1:.2f} MB/s (data tokenize); "
      f"prep 1 thread {mbs(p1 - load):.2f} MB/s, {cores} threads {mbs(pn - load):.2f} MB/s")
for k, v in js.items():
    if k == "mb": continue
    print(f"{m}: {k} {v['mb_s']:.2f} MB/s ({v['tokens']} tokens); tessera one core / {k} = {t1 / v['mb_s']:.2f}x")
PY
done
echo "command: BUILD=$BUILD TOK_MB=$MB bash bench/b_tokenize.sh"
