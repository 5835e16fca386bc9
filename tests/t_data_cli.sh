#!/usr/bin/env bash
# t_data_cli.sh - tessera data prep | synth | inspect | pages from the command
# line, their error lines, and tools/make_corpus.sh (sources, idempotency,
# the synthetic fallback).
#
# Every check tests the command's exit status (pipefail where it pipes) and
# the content it claims, so that an empty or wrong output fails.
set -u
BIN=${BUILD:-build}/bin
TS=$BIN/tessera
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

check() { # name, command...
  local name=$1; shift
  local out
  if out=$("$@" 2>&1); then echo "ok   t_data_cli/$name"; else
    echo "FAIL t_data_cli/$name"; printf '%s\n' "$out" | head -8 | sed 's/^/    /'; fi
}
expect_fail() { # name, pattern, command...: non-zero exit, one short line naming the problem
  local name=$1 pat=$2; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ $rc -ne 0 ] && grep -q -- "$pat" <<<"$out" && [ "$(wc -l <<<"$out")" -le 2 ]; then
    echo "ok   t_data_cli/$name"
  else
    echo "FAIL t_data_cli/$name"; echo "    rc=$rc, want a short error matching '$pat':"
    printf '%s\n' "$out" | head -5 | sed 's/^/    /'
  fi
}
# no WHY...: prints why a check fails and fails (CONDITION || no "why" || return)
no() { printf '%s\n' "$@"; return 1; }
# json_is FILE EXPR: the Python expression EXPR over d (FILE's JSON) is true
json_is() {
  /usr/bin/python3 - "$1" "$2" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    sys.exit(f"{sys.argv[1]}: {e}")
if not eval("(" + sys.argv[2] + ")"):
    sys.exit(f"{sys.argv[1]}: not {sys.argv[2]}: {json.dumps(d)[:400]}")
EOF
}

# --- prep on a small tree
mkdir -p "$T/text/sub"
printf 'The first fortune.\n%%\nThe second\none.\n%%\n' >"$T/text/f1"
printf 'Third.\n' >"$T/text/sub/f2"
printf 'x\0y' >"$T/text/sub/blob"
check prep-summary bash -c "
  out=\$($TS data prep --in $T/text --out $T/c --doc-sep % --quiet) || exit 1
  grep -q 'read       2 files (.*), skipped 1 binary' <<<\"\$out\" &&
  grep -q '^train      3 documents, 45 tokens, 1 shard in' <<<\"\$out\" &&
  grep -q '^total      3 documents, 45 tokens, 1 shard (' <<<\"\$out\" || { echo \"\$out\"; exit 1; }"
check prep-json bash -c "grep -q '\"documents\":	3' $T/c/prep.json && grep -q '\"skipped_binary\":	1' $T/c/prep.json"
expect_fail prep-refuses-rerun "use --force" "$TS" data prep --in "$T/text" --out "$T/c" --quiet
check prep-force bash -c "
  out=\$($TS data prep --in $T/text --out $T/c --doc-sep % --quiet --force) || { echo \"\$out\"; exit 1; }
  grep -q '^total      3 documents, 45 tokens, 1 shard (' <<<\"\$out\" && grep -q '\"documents\":	3' $T/c/prep.json || { echo \"\$out\"; exit 1; }"
expect_fail prep-missing-input "nope: No such file" "$TS" data prep --in "$T/nope" --out "$T/c2" --quiet
expect_fail prep-needs-input "no input given" "$TS" data prep --out "$T/c2"
expect_fail prep-bad-fraction "out of range" "$TS" data prep --in "$T/text" --out "$T/c3" --val-fraction 1.5 --quiet
expect_fail prep-bad-shard "shard-tokens" "$TS" data prep --in "$T/text" --out "$T/c3" --shard-tokens 1

# --- inspect: sizes, counts, decoded text, JSON
check inspect-text bash -c "
  out=\$($TS data inspect $T/c --seq 8) || exit 1
  grep -q 'train_000000.bin *1 (u16) *45 *1.11 KB *257 byte' <<<\"\$out\" &&
  grep -q 'total: 1 shard, 45 tokens, 5 samples of 8+1 tokens' <<<\"\$out\" &&
  grep -q '^The first' <<<\"\$out\" || { echo \"\$out\"; exit 1; }"
check inspect-scan-json bash -o pipefail -c "
  $TS data inspect $T/c/train --json --scan --seq 8 | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)[0]
assert d[\"tokens\"] == 45 and d[\"samples\"] == 5 and d[\"end_of_document_tokens\"] == 3, d
assert d[\"max_token\"] == 256, d'"
check inspect-decodes-eot bash -o pipefail -c "$TS data inspect $T/c/train --seq 40 | grep -q 'fortune.$' &&
  $TS data inspect $T/c/train --seq 40 | grep -q '^<|endoftext|>The second'"

# --- header errors reach the user as one line naming the file
head -c 100 "$T/c/train/train_000000.bin" >"$T/trunc.bin"
expect_fail inspect-truncated "trunc.bin: truncated shard: 100 bytes" "$TS" data inspect "$T/trunc.bin"
/usr/bin/python3 - "$T" <<'EOF'
import struct, sys
t = sys.argv[1]
def w(name, ints, body):
    h = list(ints) + [0] * (256 - len(ints))
    open(f"{t}/{name}", "wb").write(struct.pack("<256i", *h) + body)
w("magic.bin", [1234, 1, 2], b"\0" * 4)
w("version.bin", [20240520, 9, 2], b"\0" * 4)
w("short.bin", [20240520, 1, 10], b"\0" * 4)
w("long.bin", [20240520, 1, 1], b"\0" * 4)
EOF
expect_fail inspect-bad-magic "magic.bin: not a token shard: bad magic 1234" "$TS" data inspect "$T/magic.bin"
expect_fail inspect-bad-version "version.bin: unsupported shard version 9" "$TS" data inspect "$T/version.bin"
expect_fail inspect-count-past-end "short.bin: truncated shard: header says 10 tokens" "$TS" data inspect "$T/short.bin"
expect_fail inspect-trailing "long.bin: shard has 2 bytes after its 1 tokens" "$TS" data inspect "$T/long.bin"
expect_fail inspect-missing "no shard matches" "$TS" data inspect "$T/none_*.bin"

# --- pages
check pages-text bash -c "
  out=\$($TS data pages --data $T/c/train --run r1 --uid 3 --window 9 --count 5 --seq 8) || exit 1
  [ \$(grep -cE '^[0-4]\$' <<<\"\$out\") -eq 5 ] && grep -qE '^digest   [0-9a-f]{64}\$' <<<\"\$out\" &&
  grep -q '^samples  5\$' <<<\"\$out\" || { echo \"\$out\"; exit 1; }"
check pages-random-differs bash -o pipefail -c "
  a=\$($TS data pages --data $T/c/train --run r1 --uid 3 --window 9 --count 5 --seq 8 --json | grep seed)
  b=\$($TS data pages --data $T/c/train --run r1 --random --window 9 --count 5 --seq 8 --json | grep seed)
  [ -n \"\$a\" ] && [ \"\$a\" != \"\$b\" ] && grep -q '\"uid\": 4294967295' <<<\"\$b\""
expect_fail pages-too-many "only 5 samples" "$TS" data pages --data "$T/c/train" --run r1 --uid 1 --window 1 --count 6 --seq 8
expect_fail pages-uid-and-random "not both" "$TS" data pages --data "$T/c/train" --run r1 --uid 1 --random --window 1 --count 1
expect_fail pages-needs-uid "uid must be in" "$TS" data pages --data "$T/c/train" --run r1 --window 1 --count 1
expect_fail pages-bad-run "is not one of" "$TS" data pages --data "$T/c/train" --run 'a/b' --uid 1 --window 1 --count 1
expect_fail pages-needs-window "window is required" "$TS" data pages --data "$T/c/train" --run r --uid 1 --count 1
expect_fail pages-needs-count "count is required" "$TS" data pages --data "$T/c/train" --run r --uid 1 --window 1
expect_fail pages-url "local paths" "$TS" data pages --data s3://b/x --run r --uid 1 --window 1 --count 1

# --- synth
check synth-deterministic bash -o pipefail -c "
  $TS data synth --out $T/s1 --tokens 20000 --seed 5 --quiet >/dev/null &&
  $TS data synth --out $T/s2 --tokens 20000 --seed 5 --quiet >/dev/null &&
  cmp -s $T/s1/train/train_000000.bin $T/s2/train/train_000000.bin &&
  $TS data inspect $T/s1/train --json | grep -q '\"tokens\":	20000'"

# --- the demo corpus script
SRC=$T/fortunes; mkdir -p "$SRC"
printf 'Fortune one.\n%%\nFortune two.\n%%\n' >"$SRC/wisdom"
printf 'index' >"$SRC/wisdom.dat"
ln -s wisdom "$SRC/wisdom.u8"
export TESSERA=$TS TESSERA_FORTUNES_DIR=$SRC TESSERA_DOC_DIR=
# corpus-build: the fortune file is the one source (its .dat index and .u8
# link are left out): 2 documents, 28 tokens, recorded in .sources
corpus_build() {
  bash tools/make_corpus.sh "$T/corpus" >"$T/mc.log" 2>&1 || no "make_corpus.sh exited $?:" "$(cat "$T/mc.log")" || return
  grep -q '^corpus: 1 text files from installed packages' "$T/mc.log" && grep -q '^corpus: done' "$T/mc.log" ||
    no "the log does not report 1 source and done:" "$(cat "$T/mc.log")" || return
  json_is "$T/corpus/prep.json" "d['files'] == 1 and d['inputs'] == ['$SRC/wisdom'] and
    d['train']['documents'] + d['val']['documents'] == 2 and d['train']['tokens'] + d['val']['tokens'] == 28" || return
  [ "$(grep -c "^$SRC/" "$T/corpus/.sources")" = 1 ] && grep -q "^$SRC/wisdom [0-9]* [0-9]*\$" "$T/corpus/.sources" ||
    no ".sources does not list exactly the fortune file:" "$(cat "$T/corpus/.sources")" || return
  [ -s "$T/corpus/train/train_000000.bin" ] || no "no train shard" || return
  ! compgen -G "$T/corpus.tmp.*" >/dev/null || no "a temporary directory is left over"
}
check corpus-build corpus_build
# corpus-up-to-date: an unchanged source list rebuilds nothing
corpus_up_to_date() {
  local before out
  before=$(stat -c '%i %y' "$T/corpus/prep.json") || return
  out=$(bash tools/make_corpus.sh "$T/corpus" 2>&1) || no "make_corpus.sh exited $?:" "$out" || return
  grep -q "^corpus: $T/corpus is up to date\$" <<<"$out" || no "no 'up to date' line:" "$out" || return
  [ "$(stat -c '%i %y' "$T/corpus/prep.json")" = "$before" ] || no "the corpus was rebuilt"
}
check corpus-up-to-date corpus_up_to_date
# corpus-rebuilds-on-change: a changed source rebuilds, replacing the corpus whole
corpus_rebuilds_on_change() {
  printf 'Fortune three.\n' >>"$SRC/wisdom"; sleep 1; touch "$SRC/wisdom"
  bash tools/make_corpus.sh "$T/corpus" >"$T/mc2.log" 2>&1 || no "make_corpus.sh exited $?:" "$(cat "$T/mc2.log")" || return
  grep -q '^corpus: 1 text files' "$T/mc2.log" && grep -q '^corpus: done' "$T/mc2.log" ||
    no "the log does not report a rebuild:" "$(cat "$T/mc2.log")" || return
  json_is "$T/corpus/prep.json" "d['train']['documents'] + d['val']['documents'] == 3" || return
  ! compgen -G "$T/corpus.tmp.*" >/dev/null && ! compgen -G "$T/corpus.old.*" >/dev/null ||
    no "a temporary or old directory is left over:" "$(ls -d "$T"/corpus.*)"
}
check corpus-rebuilds-on-change corpus_rebuilds_on_change
# corpus-synthetic-fallback: with no text found, the synthetic corpus
# (3,000,000 tokens, seed 1, 257-token vocabulary)
corpus_synthetic_fallback() {
  TESSERA_FORTUNES_DIR=$T/empty bash tools/make_corpus.sh "$T/synth" >"$T/fb.log" 2>&1 ||
    no "make_corpus.sh exited $?:" "$(cat "$T/fb.log")" || return
  grep -q '^corpus: no Debian text found.*writing the synthetic corpus' "$T/fb.log" && grep -q '^corpus: done' "$T/fb.log" ||
    no "the log does not report the synthetic corpus:" "$(cat "$T/fb.log")" || return
  [ ! -e "$T/synth/prep.json" ] || no "a prep.json in the synthetic corpus" || return
  json_is "$T/synth/synth.json" "d['tokens'] == 3000000 and d['seed'] == 1 and d['vocab_size'] == 257" || return
  "$TS" data inspect "$T/synth" --json >"$T/fb.json" || no "data inspect failed" || return
  json_is "$T/fb.json" "sum(x['tokens'] for x in d) == 3000000 and
    all(s['vocab_size'] == 257 for x in d for s in x['shards'])"
}
check corpus-synthetic-fallback corpus_synthetic_fallback
exit 0
