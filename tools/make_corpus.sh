#!/usr/bin/env bash
# make_corpus.sh - the demo corpus, built from text Debian packages install
# (no download, and no commit ever holds it).
#
#   bash tools/make_corpus.sh OUT_DIR        (make corpus: OUT_DIR = build/corpus)
#
# Sources, in this order:
#   - the fortune files (package fortunes, fortunes-min: tools/deps.sh), one
#     document per fortune ("%" lines separate them; the .dat indexes and the
#     .u8 links are left out);
#   - the README files of installed packages (/usr/share/doc/*/README*,
#     uncompressed, under 1 MiB), one document each.
# Output: OUT_DIR/train/ and OUT_DIR/val/ (5 % of documents, by content hash)
# in shards of 1,000,000 byte tokens, and OUT_DIR/prep.json (docs/FORMATS.md
# 5.6).  With no such text on the machine it falls back to the deterministic
# synthetic corpus (tessera data synth, 3,000,000 tokens, seed 1).
#
# Idempotent: OUT_DIR/.sources records the source list (paths, sizes,
# modification times) and the settings; when they are unchanged and the
# corpus is complete, nothing is done.  A rebuild happens in a temporary
# directory that replaces OUT_DIR only when complete.
#
# Environment: TESSERA (the binary; default: OUT_DIR/../bin/tessera, then
# $BUILD/bin/tessera), TESSERA_FORTUNES_DIR (default /usr/share/games/fortunes),
# TESSERA_DOC_DIR (default /usr/share/doc; an empty value leaves the READMEs
# out).
set -euo pipefail

OUT=${1:?usage: make_corpus.sh OUT_DIR}
OUT=${OUT%/}
FORTUNES_DIR=${TESSERA_FORTUNES_DIR-/usr/share/games/fortunes}
DOC_DIR=${TESSERA_DOC_DIR-/usr/share/doc}
SETTINGS="make_corpus v1; doc-sep %; val-fraction 0.05; shard-tokens 1000000; synth 3000000/1"

BIN=${TESSERA:-}
if [ -z "$BIN" ]; then
  if [ -x "$(dirname "$OUT")/bin/tessera" ]; then BIN=$(dirname "$OUT")/bin/tessera
  else BIN=${BUILD:-build}/bin/tessera; fi
fi
if [ ! -x "$BIN" ]; then
  echo "corpus: $BIN not found; build it first (make)" >&2
  exit 1
fi

# The source list, in a fixed order (byte-wise sort).
sources=()
if [ -n "$FORTUNES_DIR" ] && [ -d "$FORTUNES_DIR" ]; then
  while IFS= read -r -d '' f; do sources+=("$f"); done < <(
    find "$FORTUNES_DIR" -mindepth 1 -maxdepth 1 -type f ! -name '*.dat' ! -name '.*' -print0 | LC_ALL=C sort -z)
fi
if [ -n "$DOC_DIR" ] && [ -d "$DOC_DIR" ]; then
  while IFS= read -r -d '' f; do sources+=("$f"); done < <(
    find "$DOC_DIR" -mindepth 2 -maxdepth 2 -type f -name 'README*' \
      ! -name '*.gz' ! -name '*.bz2' ! -name '*.xz' ! -name '*.html' ! -name '*.pdf' -size -1024k -print0 |
      LC_ALL=C sort -z)
fi

stamp() {
  echo "$SETTINGS"
  if [ ${#sources[@]} -gt 0 ]; then
    stat -c '%n %s %Y' -- "${sources[@]}"
  else
    echo "synthetic"
  fi
}
want=$(stamp)
if [ -f "$OUT/.sources" ] && { [ -f "$OUT/prep.json" ] || [ -f "$OUT/synth.json" ]; } &&
   [ "$(cat "$OUT/.sources")" = "$want" ]; then
  echo "corpus: $OUT is up to date"
  exit 0
fi

mkdir -p "$(dirname "$OUT")"
TMP=$(mktemp -d "$OUT.tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
if [ ${#sources[@]} -gt 0 ]; then
  echo "corpus: ${#sources[@]} text files from installed packages -> $OUT"
  "$BIN" data prep --out "$TMP" --doc-sep % --val-fraction 0.05 --shard-tokens 1000000 \
    --force -- "${sources[@]}"
else
  echo "corpus: no Debian text found (fortunes, package READMEs); writing the synthetic corpus -> $OUT"
  "$BIN" data synth --out "$TMP" --tokens 3000000 --seed 1 --val-fraction 0.05 --shard-tokens 1000000 --force
fi
printf '%s\n' "$want" >"$TMP/.sources"
if [ -e "$OUT" ]; then
  mv "$OUT" "$OUT.old.$$"
fi
mv "$TMP" "$OUT"
rm -rf "$OUT.old.$$"
trap - EXIT
echo "corpus: done ($OUT/train, $OUT/val)"
