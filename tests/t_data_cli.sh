#!/usr/bin/env bash
# t_data_cli.sh - tessera data prep | synth | inspect | pages from the command
# line, their error lines, and tools/make_corpus.sh (sources, idempotency,
# the synthetic fallback).
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
check prep-force bash -c "$TS data prep --in $T/text --out $T/c --doc-sep % --quiet --force >/dev/null"
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
check inspect-scan-json bash -c "
  $TS data inspect $T/c/train --json --scan --seq 8 | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)[0]
assert d[\"tokens\"] == 45 and d[\"samples\"] == 5 and d[\"end_of_document_tokens\"] == 3, d
assert d[\"max_token\"] == 256, d'"
check inspect-decodes-eot bash -c "$TS data inspect $T/c/train --seq 40 | grep -q 'fortune.$' &&
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
check pages-random-differs bash -c "
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
check synth-deterministic bash -c "
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
check corpus-build bash -c "bash tools/make_corpus.sh $T/corpus >$T/mc.log 2>&1 &&
  grep -q 'corpus: 1 text files' $T/mc.log && grep -q '\"documents\":	2' $T/corpus/prep.json || cat $T/mc.log"
check corpus-up-to-date bash -c "out=\$(bash tools/make_corpus.sh $T/corpus) && grep -q 'up to date' <<<\"\$out\""
check corpus-rebuilds-on-change bash -c "printf 'Fortune three.\n' >>$SRC/wisdom; sleep 1; touch $SRC/wisdom;
  bash tools/make_corpus.sh $T/corpus >$T/mc2.log 2>&1 && grep -q 'corpus: 1 text files' $T/mc2.log &&
  grep -q '\"documents\":	3' $T/corpus/prep.json && ! ls -d $T/corpus.tmp.* $T/corpus.old.* 2>/dev/null"
check corpus-synthetic-fallback bash -c "TESSERA_FORTUNES_DIR=$T/empty bash tools/make_corpus.sh $T/synth >$T/fb.log 2>&1 &&
  grep -q 'synthetic corpus' $T/fb.log && [ -f $T/synth/synth.json ] &&
  $TS data inspect $T/synth/train --json | grep -q '\"vocab_size\":	257' || cat $T/fb.log"
exit 0
