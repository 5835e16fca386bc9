#!/usr/bin/env bash
# b_model_curve.sh - a short training run of the `small` preset on a text
# corpus, printing the held-out loss as it falls (the curve recorded in
# docs/BENCHMARKS.md, "Model (CPU)").
#
#   BUILD=build bash bench/b_model_curve.sh [STEPS]
#
# Corpus: the demo corpus (`make corpus`: byte-level shards made from the text
# Debian's fortunes packages install, with a held-out split).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
STEPS=${1:-300}
TESSERA=$BUILD/bin/tessera
[ -x "$TESSERA" ] || { echo "b_model_curve: $TESSERA is missing (make)"; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tessera-curve-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
CORPUS=$BUILD/corpus
[ -d "$CORPUS/train" ] || bash tools/make_corpus.sh "$CORPUS"

CMD=("$TESSERA" train --model small --data "$CORPUS/train" --val-data "$CORPUS/val"
     --batch 8 --seq 256 --steps "$STEPS" --lr 1e-3 --warmup 30 --val-every 25 --val-samples 64
     --threads 2 --out "$WORK/ckpt" --log-json "$WORK/log.jsonl")
echo "command: ${CMD[*]}"
"${CMD[@]}" 2>"$WORK/train.err" || { cat "$WORK/train.err"; exit 1; }
/usr/bin/python3 - "$WORK/log.jsonl" <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
print("| step | train loss (mean of the last 25) | held-out loss |")
print("|---:|---:|---:|")
vals = []
for r in recs:
    if "val_loss" in r:
        window = [x["loss"] for x in recs if r["step"] - 25 < x["step"] <= r["step"]]
        print(f"| {r['step']} | {sum(window) / len(window):.4f} | {r['val_loss']:.4f} |")
        vals.append(r["val_loss"])
rises = sum(b > a for a, b in zip(vals, vals[1:]))
tps = sum(r["tokens_per_s"] for r in recs) / len(recs)
print(f"held-out loss {vals[0]:.4f} -> {vals[-1]:.4f} (best {min(vals):.4f}); it rose at {rises} of "
      f"{len(vals) - 1} evaluations; mean throughput {tps:.0f} tokens/s")
EOF
