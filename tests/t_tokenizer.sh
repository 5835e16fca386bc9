#!/usr/bin/env bash
# t_tokenizer.sh - the tokenizer.json tokenizer against independent
# implementations from npm (pinned, installed into a cache outside the
# repository by tests/npm_oracle.sh; skipped when npm cannot be reached):
#  - GPT-2: a tokenizer.json built from js-tiktoken's ranks (its merges
#    recovered by running tiktoken's BPE on each token with lower ranks
#    only); tessera's token ids equal js-tiktoken's on the demo corpus's
#    text and on adversarial text (tests/tok_texts.py: every Unicode
#    category, invalid UTF-8, long runs, emoji, NUL, contractions, special
#    tokens' text), both with special tokens matched and as plain text;
#  - Llama 3: a tokenizer.json built from llama3-tokenizer-js's vocabulary
#    and merges (ignore_merges, its 256 special tokens); ids equal that
#    package's on the same texts;
#  - U+0085 and U+FEFF, where JavaScript's \s and Oniguruma's differ: the
#    pieces split as Oniguruma (the Rust library's engine) splits them, each
#    piece encoding as the oracle encodes it;
#  - decode(encode(x)) == x for valid UTF-8, and for invalid UTF-8 the
#    lossy decoding of x;
#  - the same tokens from prep on 1 and on 2 threads, shards of uint32
#    tokens for Llama 3's vocabulary, and `data inspect --tokenizer` decoding;
#  - bad tokenizer.json files refused with the reason.
set -u
BUILD=${BUILD:-build}
TS=$BUILD/bin/tessera
PY=/usr/bin/python3
N=t_tokenizer
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/t_tokenizer-XXXXXX"); trap 'rm -rf "$T"' EXIT

ok() { echo "ok   $N/$1"; }
fail() { local name=$1; shift; echo "FAIL $N/$name"; printf '%s\n' "$@" | head -12 | sed 's/^/    /'; }
skip() { echo "skip $N/$1"; echo "    skipped: $2"; }

ALL="gpt2-json llama3-json gpt2-adversarial gpt2-special gpt2-corpus llama3-adversarial llama3-special
     llama3-corpus nel-bom-pieces roundtrip prep-threads prep-uint32 inspect-decodes refuses-bad-json"

# the refusals need no oracle: a tiny hand-written tokenizer.json
refusals() {
  local base='"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}'
  local cases=(
    "not JSON|{|not JSON"
    "no model|{\"x\":1}|no \"model\""
    "WordPiece|{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}|WordPiece.*not supported"
    "merge unknown|{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}|not in the vocabulary"
    "duplicate id|{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}|twice"
    "bad id|{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}|no valid id"
    "dropout|{\"model\":{\"type\":\"BPE\",\"dropout\":0.1,\"vocab\":{\"a\":0},\"merges\":[]}}|dropout"
    "bad regex|{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\"},$base}|bad regex"
    "normalizer|{\"normalizer\":{\"type\":\"NFKC\"},$base}|NFKC.*not supported"
    "byte-level gaps|{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},$base}|lacks byte"
    "no eot|{$base}|no end-of-document token"
  )
  local c bad=""
  for c in "${cases[@]}"; do
    IFS='|' read -r name json pat <<<"$c"
    printf '%s' "$json" >"$T/bad.json"
    out=$("$TS" data tokenize -t "$T/bad.json" hi 2>&1)
    rc=$?
    if [ $rc -ne 1 ] || ! grep -qE -- "$pat" <<<"$out"; then bad="$bad
$name: exit $rc: $out"; fi
  done
  # a tiny SentencePiece-style tokenizer (Replace + Prepend normalizer, byte
  # fallback, Strip decoder): ids worked out by hand
  cat >"$T/sp.json" <<'EOF'
{"added_tokens":[{"id":3,"content":"</s>","special":true}],
 "normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]},
 "pre_tokenizer":null,
 "decoder":{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]},
 "model":{"type":"BPE","byte_fallback":true,"unk_token":"<unk>",
  "vocab":{"<unk>":0,"<s>":1,"<pad>":2,"▁":4,"h":5,"i":6,"▁h":7,"▁hi":8,"é":9
EOF
  local b
  for b in $(seq 0 255); do printf ',"<0x%02X>":%d' "$b" $((10 + b)) >>"$T/sp.json"; done
  printf '},"merges":["▁ h","▁h i"]}}\n' >>"$T/sp.json"
  # "hi hé☃": ▁hi ▁h é, then ☃ (E2 98 83) by bytes: 10+0xE2, 10+0x98, 10+0x83
  got=$("$TS" data tokenize -t "$T/sp.json" "hi hé☃" 2>&1)
  want="8 7 9 236 162 141"
  [ "$got" = "$want" ] || bad="$bad
sentencepiece: got '$got', want '$want'"
  back=$("$TS" data detokenize -t "$T/sp.json" $want 2>&1)
  [ "$back" = "hi hé☃" ] || bad="$bad
sentencepiece decode: '$back'"
  if [ -z "$bad" ]; then ok refuses-bad-json; else fail refuses-bad-json "$bad"; fi
}

DIR=$(bash "$HERE/npm_oracle.sh" tokenizers js-tiktoken@1.0.21 llama3-tokenizer-js@1.2.0 2>&1) || {
  refusals
  for t in $ALL; do [ "$t" = refuses-bad-json ] || skip "$t" "npm unreachable: $DIR"; done
  exit 0
}
export NODE_PATH=$DIR/node_modules
ORACLE="node $HERE/npm/tokenizer_oracle.mjs"

# tokenizer.json files, built once per oracle install
for m in gpt2 llama3; do
  if [ ! -s "$DIR/$m.json" ]; then
    $ORACLE $m-json "$DIR/$m.json.tmp" && mv "$DIR/$m.json.tmp" "$DIR/$m.json"
  fi
  if [ -s "$DIR/$m.json" ] && "$TS" data tokenize -t "$DIR/$m.json" --count x >/dev/null 2>"$T/err"; then ok "$m-json"
  else fail "$m-json" "$(cat "$T/err")"; fi
done

mkdir -p "$T/adv" "$T/corpus"
$PY "$HERE/tok_texts.py" "$T/adv"
# the demo corpus's text: the fortune files tools/make_corpus.sh reads
n=0
for f in /usr/share/games/fortunes/*; do
  case $f in *.dat|*.u8) continue ;; esac
  [ -f "$f" ] || continue
  cp "$f" "$T/corpus/$(basename "$f").txt"
  n=$((n + 1))
  [ $n -ge 12 ] && break
done

# compare NAME MODEL DIR [--special]: ids of every file of DIR, both ways
compare() {
  local name=$1 m=$2 dir=$3 sp=${4:-}
  local files; files=$(find "$dir" -type f | sort)
  if [ -z "$files" ]; then skip "$name" "no text files in $dir"; return; fi
  # shellcheck disable=SC2086
  $ORACLE encode "$m" $sp $files >"$T/want" 2>"$T/err.o" || { fail "$name" "oracle failed" "$(head -5 "$T/err.o")"; return; }
  # shellcheck disable=SC2086
  "$TS" data tokenize --json $sp -t "$DIR/$m.json" --files $files >"$T/got" 2>"$T/err.t" || {
    fail "$name" "tessera failed" "$(head -5 "$T/err.t")"; return; }
  local i=0 bad="" f toks=0
  for f in $files; do
    i=$((i + 1))
    if ! cmp -s <(sed -n "${i}p" "$T/want") <(sed -n "${i}p" "$T/got"); then
      bad="$bad $(basename "$f")"
    fi
  done
  toks=$(tr ',' '\n' <"$T/got" | wc -l)
  if [ -z "$bad" ]; then ok "$name"; echo "    $(echo "$files" | wc -l) files, $toks tokens identical"
  else fail "$name" "ids differ on:$bad"; fi
}

# the Llama 3 package always matches special tokens: compare plain text
# without the specials file, and that file with --special
mkdir -p "$T/adv-nospecial"
for f in "$T"/adv/*; do [ "$(basename "$f")" = specials.txt ] || cp "$f" "$T/adv-nospecial/"; done
mkdir -p "$T/specials"; cp "$T/adv/specials.txt" "$T/specials/"

compare gpt2-adversarial gpt2 "$T/adv"
compare gpt2-special gpt2 "$T/adv" --special
compare gpt2-corpus gpt2 "$T/corpus"
compare llama3-adversarial llama3 "$T/adv-nospecial"
compare llama3-special llama3 "$T/specials" --special
compare llama3-corpus llama3 "$T/corpus"

# U+0085 is \s for Oniguruma, not for JavaScript; U+FEFF the reverse.  The
# text below splits, in the Rust library (Oniguruma), into these pieces
# (worked out by hand from each pattern; JavaScript's engine would glue
# U+0085 U+0085 together for GPT-2, and split " " from U+FEFF).  Each piece
# alone is split no further by the oracle, so its ids are the piece's BPE.
bad=""
printf 'a \xef\xbb\xbfb\xc2\x85 c\xc2\x85\xc2\x85x \xef\xbb\xbf 1\xc2\x85\xef\xbb\xbf' >"$T/nb.txt"
declare -A PIECES=(
  [gpt2]='a| \xef\xbb\xbf|b|\xc2\x85| c|\xc2\x85|\xc2\x85|x| \xef\xbb\xbf| 1|\xc2\x85|\xef\xbb\xbf'
  [llama3]='a| \xef\xbb\xbf|b|\xc2\x85| c|\xc2\x85|\xc2\x85x| \xef\xbb\xbf| |1|\xc2\x85|\xef\xbb\xbf'
)
for m in gpt2 llama3; do
  mkdir -p "$T/pieces-$m"
  i=0
  IFS='|' read -r -a ps <<<"${PIECES[$m]}"
  for p in "${ps[@]}"; do i=$((i + 1)); printf "$p" >"$T/pieces-$m/$(printf %02d $i)"; done
  want=$($ORACLE encode "$m" $(ls "$T/pieces-$m"/* | sort) | tr -d '[]' | tr '\n' ',' | sed 's/,,*/,/g; s/^,//; s/,$//')
  got=$("$TS" data tokenize --json -t "$DIR/$m.json" --files "$T/nb.txt" | tr -d '[]\n')
  [ "$want" = "$got" ] || bad="$bad
$m: want $want
$m: got  $got"
done
if [ -z "$bad" ]; then ok nel-bom-pieces; else fail nel-bom-pieces "$bad"; fi

# decode(encode(x)) == x (valid UTF-8), == lossy(x) otherwise
bad=""
for m in gpt2 llama3; do
  for f in "$T"/adv/* "$T"/corpus/*; do
    "$TS" data tokenize -t "$DIR/$m.json" --files "$f" >"$T/ids" || { bad="$bad $m:$(basename "$f")(encode)"; continue; }
    "$TS" data detokenize -t "$DIR/$m.json" <"$T/ids" >"$T/back" || { bad="$bad $m:$(basename "$f")(decode)"; continue; }
    $PY -c 'import sys; a=open(sys.argv[1],"rb").read(); b=open(sys.argv[2],"rb").read(); sys.exit(0 if a.decode("utf-8","replace").encode()==b else 1)' \
      "$f" "$T/back" || bad="$bad $m:$(basename "$f")"
  done
done
if [ -z "$bad" ]; then ok roundtrip; else fail roundtrip "not the text back:$bad"; fi

# prep: the same shards on 1 and 2 threads; Llama 3's ids need uint32
bad=""
for th in 1 2; do
  OMP_NUM_THREADS=$th "$TS" data prep -q --tokenizer "$DIR/gpt2.json" --threads $th --out "$T/p$th" \
    --doc-sep '%' --val-fraction 0.1 "$T/corpus" >"$T/prep$th.log" 2>&1 || bad="$bad
prep on $th threads failed: $(tail -3 "$T/prep$th.log")"
done
if [ -z "$bad" ]; then
  for f in $(cd "$T/p1" && find train val -name '*.bin' | sort); do cmp -s "$T/p1/$f" "$T/p2/$f" || bad="$bad $f"; done
  [ "$(cd "$T/p1" && find . -name '*.bin' | sort)" = "$(cd "$T/p2" && find . -name '*.bin' | sort)" ] || bad="$bad (shard lists)"
fi
if [ -z "$bad" ]; then ok prep-threads; echo "    $(ls "$T/p1/train" | wc -l) train shards identical on 1 and 2 threads"
else fail prep-threads "$bad"; fi

"$TS" data prep -q --tokenizer "$DIR/llama3.json" --out "$T/l3" "$T/corpus" >"$T/l3.log" 2>&1
out=$("$TS" data inspect "$T/l3/train" --json 2>&1)
if $PY -c 'import json,sys; d=json.loads(sys.argv[1]); s=d[0]["shards"][0] if isinstance(d[0],dict) and "shards" in d[0] else d[0]; print(s); sys.exit(0 if s.get("width")==4 or s.get("version")==2 else 1)' "$out" >"$T/w" 2>&1; then
  ok prep-uint32
else fail prep-uint32 "$(cat "$T/l3.log")" "$(head -c 600 <<<"$out")" "$(cat "$T/w")"; fi

# inspect decodes a sample with the tokenizer: the corpus's first words
first=$(head -c 40 "$(find "$T/corpus" -type f | sort | head -1)" | tr -d '\n' | cut -c1-20)
out=$("$TS" data inspect "$T/p1/train" --seq 64 --tokenizer "$DIR/gpt2.json" 2>&1)
if grep -qF -- "$first" <<<"$(tr -d '\n' <<<"$out")"; then ok inspect-decodes
else fail inspect-decodes "no '$first' in:" "$(head -20 <<<"$out")"; fi

refusals
