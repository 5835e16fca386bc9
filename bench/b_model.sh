#!/usr/bin/env bash
# b_model.sh - training throughput of the CPU model beside PyTorch: tokens/s
# of forward + backward + clip + AdamW for the `small` and `124m` presets at
# sequence 256, the same model (PyTorch gets the very config.json tessera
# writes), batch and thread count in the same run, as a ratio, and the peak
# resident memory of each process.
#
#   BUILD=build bash bench/b_model.sh [THREADS]
#
# PyTorch runs twice: as installed, and with glibc's malloc told to keep
# freed memory (GLIBC_TUNABLES mmap/trim thresholds), which spares it the page
# faults of re-allocating its activations every step -- the better of the two
# is the one to beat.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
THREADS=${1:-2}
BENCH=$BUILD/bench/bench_model
TESSERA=$BUILD/bin/tessera
for f in "$BENCH" "$TESSERA"; do [ -x "$f" ] || { echo "b_model: $f is missing (make benches)"; exit 1; }; done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tessera-bmodel-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
TUNED="glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967295"
echo "# model training step (fwd+bwd+clip+AdamW), seq 256, $THREADS threads, $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %5s  %12s %12s %12s  %7s %7s  %9s %9s %9s\n' model batch "tessera" "torch" "torch+malloc" ratio best "RSS tess" "RSS torch" "RSS t+m"
status=0
for spec in "small 8 2 5" "124m 4 1 3"; do
  set -- $spec
  preset=$1 batch=$2 warm=$3 steps=$4
  "$TESSERA" model info --model "$preset" --json >"$WORK/$preset.json" || { status=1; continue; }
  c=$("$BENCH" --preset "$preset" --batch "$batch" --seq 256 --steps "$steps" --warmup "$warm" --threads "$THREADS" --json) || { status=1; continue; }
  targs=(bench/b_model_torch.py --config "$WORK/$preset.json" --preset "$preset" --batch "$batch" --seq 256 --steps "$steps" --warmup "$warm" --threads "$THREADS")
  t=$(/usr/bin/python3 "${targs[@]}") || { status=1; continue; }
  tm=$(GLIBC_TUNABLES=$TUNED /usr/bin/python3 "${targs[@]}") || { status=1; continue; }
  /usr/bin/python3 - "$c" "$t" "$tm" <<'EOF'
import json, sys
c, t, tm = (json.loads(x) for x in sys.argv[1:4])
best = max(t["tokens_per_s"], tm["tokens_per_s"])
bestb = max(t["best_tokens_per_s"], tm["best_tokens_per_s"])
print(f"{c['preset']:<6} {c['batch']:>5}  {c['tokens_per_s']:>8.0f} t/s {t['tokens_per_s']:>8.0f} t/s {tm['tokens_per_s']:>8.0f} t/s"
      f"  {c['tokens_per_s'] / best:>6.2f}x {c['best_tokens_per_s'] / bestb:>6.2f}x"
      f"  {c['peak_rss_mb']:>6.0f} MB {t['peak_rss_mb']:>6.0f} MB {tm['peak_rss_mb']:>6.0f} MB")
EOF
  echo "  reproduce: $BENCH --preset $preset --batch $batch --seq 256 --steps $steps --warmup $warm --threads $THREADS"
  echo "             $TESSERA model info --model $preset --json > $preset.json"
  echo "             [GLIBC_TUNABLES=$TUNED] /usr/bin/python3 ${targs[*]/$WORK\//}"
done
echo "ratio = tessera / the faster PyTorch run (mean over the timed steps); best = the same with each side's fastest step"
exit $status
