#!/usr/bin/env bash
# b_lab.sh - training quality of the subnet's algorithm against its baselines
# (`tessera lab`): held-out loss at equal tokens, bytes each miner sends and
# their ratio to DiLoCo's, and an SVG plot (docs/BENCHMARKS.md, "Lab").
#
#   BUILD=build bash bench/b_lab.sh [OUT_DIR]     (or: make bench BENCH_ARGS=b_lab)
#
# The default is the recorded configuration: the `small` preset on the demo
# corpus, 8 miners, H = 20, B = 8, T = 256, 30 outer steps; ddp, diloco,
# sparseloco at k = 32, 64, 128 with 4 bins, and single.  Every run trains
# the same 9.8 M tokens: about 35 minutes a run on 2 cores (3.5 hours in all).
# The environment changes it:
#   LAB_MODEL LAB_MINERS LAB_H LAB_B LAB_T LAB_ROUNDS LAB_SEED LAB_LR
#   LAB_RUNS   one run per line, "label|flags" (flags as `tessera lab` takes
#              them), instead of the default runs: a sweep, for instance
#              LAB_RUNS=$'a=0.5|--codec-k 64 --codec-alpha 0.5\na=2|--codec-k 64 --codec-alpha 2'
#   LAB_VAL    held-out samples per measurement (default 64)
# Results: OUT_DIR (default $BUILD/lab-bench) holds each run's JSON lines,
# results.jsonl (all of them), lab.svg and table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
TESSERA=$BUILD/bin/tessera
[ -x "$TESSERA" ] || { echo "b_lab: $TESSERA is missing (make)"; exit 1; }
OUT=${1:-$BUILD/lab-bench}
CORPUS=$BUILD/corpus
[ -d "$CORPUS/train" ] || bash tools/make_corpus.sh "$CORPUS"
MODEL=${LAB_MODEL:-small}
N=${LAB_MINERS:-8}
H=${LAB_H:-20}
B=${LAB_B:-8}
T=${LAB_T:-256}
R=${LAB_ROUNDS:-30}
SEED=${LAB_SEED:-1}
LR=${LAB_LR:-1e-3}
VAL=${LAB_VAL:-64}
DEFAULT_RUNS='ddp|--method ddp
diloco|--method diloco
sparseloco k=32|--method sparseloco --codec-k 32 --codec-bins 4
sparseloco k=64|--method sparseloco --codec-k 64 --codec-bins 4
sparseloco k=128|--method sparseloco --codec-k 128 --codec-bins 4
single|--method single'
RUNS=${LAB_RUNS:-$DEFAULT_RUNS}
mkdir -p "$OUT"
: >"$OUT/results.jsonl"
COMMON=(--model "$MODEL" --data "$CORPUS/train" --val-data "$CORPUS/val" --miners "$N" --inner-steps "$H"
        --batch "$B" --seq "$T" --rounds "$R" --seed "$SEED" --lr "$LR" --val-samples "$VAL")
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u +%Y-%m-%dT%H:%MZ)"
i=0
while IFS='|' read -r label flags; do
  [ -n "$label" ] || continue
  i=$((i + 1))
  # shellcheck disable=SC2206
  CMD=("$TESSERA" lab "${COMMON[@]}" $flags --label "$label" --out "$OUT/run$i.jsonl")
  echo "command: ${CMD[*]}"
  "${CMD[@]}"
  cat "$OUT/run$i.jsonl" >>"$OUT/results.jsonl"
done <<<"$RUNS"
"$TESSERA" lab plot --out "$OUT/lab.svg" \
  --title "tessera lab: $MODEL, $N miners, H $H, B $B, T $T, $R outer steps" "$OUT/results.jsonl"
/usr/bin/python3 - "$OUT/results.jsonl" "$R" >"$OUT/table.md" <<'EOF'
import json, sys
R = int(sys.argv[2])
runs = {}
for l in open(sys.argv[1]):
    j = json.loads(l)
    runs.setdefault(j["label"], []).append(j)
marks = sorted({max(1, R // 3), max(1, 2 * R // 3), R})
def at(rows, r): return next((x for x in rows if x["round"] == r), None)
ref = {name: at(runs[name], R) for name in ("diloco", "ddp") if name in runs}
head = "| run | " + " | ".join(f"held-out at {at(next(iter(runs.values())), m)['tokens'] / 1e6:.2f} M tokens (round {m})" for m in marks)
print(head + " | vs DiLoCo | vs DDP | bytes per miner per round | DiLoCo's bytes / these | wall |")
print("|---" * (len(marks) + 6) + "|")
dil_bytes = None
if "diloco" in runs:
    dil_bytes = at(runs["diloco"], R)["bytes_total"] / R
for name, rows in runs.items():
    last = at(rows, R)
    if last is None:
        continue
    cells = [f"{at(rows, m)['val_loss']:.4f}" for m in marks]
    rel = []
    for k in ("diloco", "ddp"):
        if k in ref and ref[k] and name != k:
            rel.append(f"{100 * (last['val_loss'] / ref[k]['val_loss'] - 1):+.2f} %")
        else:
            rel.append("")
    per = last["bytes_total"] / R
    ratio = f"{dil_bytes / per:.3g}x" if dil_bytes and per > 0 else ""
    def mb(x): return f"{x / 1e6:.3g} MB" if x >= 1e5 else f"{x / 1e3:.3g} KB"
    print(f"| {name} | " + " | ".join(cells) + f" | {rel[0]} | {rel[1]} | {mb(per) if per else '0'} | {ratio} | {last['wall_s']:.0f} s |")
EOF
cat "$OUT/table.md"
echo "plot: $OUT/lab.svg"
echo "reproduce: BUILD=$BUILD LAB_MODEL=$MODEL LAB_MINERS=$N LAB_H=$H LAB_B=$B LAB_T=$T LAB_ROUNDS=$R LAB_SEED=$SEED LAB_LR=$LR LAB_VAL=$VAL bash bench/b_lab.sh"
