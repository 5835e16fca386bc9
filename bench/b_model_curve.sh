#!/usr/bin/env bash
# b_model_curve.sh - a short training run of the `small` preset on a text
# corpus, printing the held-out loss as it falls (the curve recorded in
# docs/BENCHMARKS.md, "Model (CPU)").
#
#   BUILD=build bash bench/b_model_curve.sh [STEPS]
#
# Corpus: the fortunes Debian installs (/usr/share/games/fortunes), turned
# into byte-level token shards (one token per byte, vocabulary 257) by a few
# lines of Python below; the last 5 % of the bytes are held out.  (To be
# switched to the data module's demo corpus once it exists.)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
STEPS=${1:-300}
TESSERA=$BUILD/bin/tessera
[ -x "$TESSERA" ] || { echo "b_model_curve: $TESSERA is missing (make)"; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tessera-curve-XXXXXX")
trap 'rm -rf "$WORK"' EXIT

if ls /usr/share/games/fortunes/* >/dev/null 2>&1; then
  /usr/bin/python3 - "$WORK" <<'EOF'
import glob, os, sys
import numpy as np
out = sys.argv[1]
files = sorted(f for f in glob.glob("/usr/share/games/fortunes/*")
               if os.path.isfile(f) and not os.path.islink(f) and "." not in os.path.basename(f))
data = b"".join(open(f, "rb").read() for f in files)
tok = np.frombuffer(data, dtype=np.uint8).astype("<u2")
cut = int(len(tok) * 0.95)
for name, t in (("train.bin", tok[:cut]), ("val.bin", tok[cut:])):
    h = np.zeros(256, dtype="<i4")
    h[0], h[1], h[2] = 20240520, 1, len(t)
    with open(os.path.join(out, name), "wb") as f:
        f.write(h.tobytes())
        f.write(t.tobytes())
print(f"corpus: {len(files)} fortune files, {len(data)} bytes ({cut} train, {len(tok) - cut} held out)")
EOF
else
  echo "b_model_curve: no corpus (install fortunes-min fortunes: make deps)"; exit 1
fi

CMD=("$TESSERA" train --model small --data "$WORK/train.bin" --val-data "$WORK/val.bin"
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
