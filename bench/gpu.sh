#!/usr/bin/env bash
# gpu.sh - the one prepared script for a GPU machine (an H100/H200; about
# eight minutes including the build).  Everything goes to $OUT (default
# build-gpu/out): the build log, the kernel test driver's results on the real
# GPU, the training benchmark beside PyTorch, the transformers check, and
# summary.txt, one table with the exact commands.
#
#   bash bench/gpu.sh                 # on the GPU machine, from the repository
#
# 1. build: make -j16 CUDA=1 BUILD=build-gpu (every kernel for sm_80/sm_90;
#    a register spill or a warning fails it)
# 2. tests/backend_*.c on the GPU: every op against its CPU twin (the same
#    cases and tolerances as under the emulator), the tiny/small training
#    steps against the CPU, the codec's upload bytes and aggregation
# 3. training: tokens/s, MFU and GPU memory of `124m` at seq 1024 and `1b` at
#    seq 2048, tessera beside PyTorch (same config.json, batch and sequence;
#    bf16 autocast, fused AdamW), as a ratio
# 4. codec: compress, decode + aggregate and outer-step GB/s (124m, 1b; k 64,
#    128), and a `1b` validator window (20 uploads, 15 miners evaluated)
# 5. transformers: a `124m` checkpoint from `tessera model init` loaded with
#    LlamaForCausalLM.from_pretrained; its logits against `tessera model
#    logits --device cuda` on the same tokens
#
# MFU = tokens/s x (6 N + 12 L T Q) / peak, N the parameter count, L layers,
# T the sequence, Q = heads x head_dim (PaLM's estimate of training FLOPs per
# token, attention included); peak = the dense bf16 tensor peak of the GPU
# found: 989 TFLOP/s for H100/H200 SXM (PEAK_TFLOPS overrides).
#
# The machine has no network.  When it lacks the C libraries' headers, the
# script unpacks .gpudeps/*.deb (made beforehand by bench/gpu_deps.sh on a
# machine with network, and carried along) into .gpudeps/root.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BUILD=build-gpu
OUT=${OUT:-$REPO/$BUILD/out}
W=$REPO/$BUILD/gpu-work   # intermediates; $OUT keeps at most four files
mkdir -p "$OUT" "$W"
SUM=$OUT/summary.txt
: >"$SUM"
say() { echo "$@" | tee -a "$SUM"; }
T0=$SECONDS
export PYTHONUNBUFFERED=1

say "# bench/gpu.sh $(date -u +%Y-%m-%dT%H:%MZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
say "# device: ${GPU:-no nvidia-smi}; nvcc $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo missing)"

# ---- 0. libraries
if ! echo '#include <sodium.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <zstd.h>' | gcc -E -x c - >/dev/null 2>&1; then
  if ls .gpudeps/*.deb >/dev/null 2>&1; then
    R=$REPO/.gpudeps/root
    mkdir -p "$R"
    for d in .gpudeps/*.deb; do dpkg-deb -x "$d" "$R"; done
    L=$R/usr/lib/x86_64-linux-gnu
    ob=$(ls -d "$R"/usr/include/x86_64-linux-gnu/openblas*-openmp 2>/dev/null | head -1)
    obl=$(ls -d "$L"/openblas*-openmp 2>/dev/null | head -1)
    export EXTRA_CFLAGS="-I$R/usr/include -I$R/usr/include/x86_64-linux-gnu ${ob:+-I$ob}"
    export EXTRA_LDFLAGS="-L$L ${obl:+-L$obl -Wl,-rpath,$obl} -Wl,-rpath,$L -Wl,-rpath-link,$L"
    export LD_LIBRARY_PATH="$L${obl:+:$obl}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    say "# C libraries from .gpudeps ($(ls .gpudeps/*.deb | wc -l) packages)"
  else
    say "FAIL: the C libraries' headers are missing and no .gpudeps/ was carried (run bench/gpu_deps.sh first)"
    exit 1
  fi
fi

# ---- 1. build
b0=$SECONDS
DRIVERS=$(for f in tests/backend_*.c; do echo "$BUILD/tests/$(basename "$f" .c)"; done)
if ! make -j16 CUDA=1 BUILD=$BUILD all benches $DRIVERS >"$OUT/build.log" 2>&1; then
  say "FAIL: build (see build.log)"
  tail -30 "$OUT/build.log"
  exit 1
fi
grep -iE 'spill|lmem|warning' "$OUT/build.log" >"$W/spills.txt" || true
say "build: $((SECONDS - b0)) s; nvcc spill/warning lines: $(wc -l <"$W/spills.txt")"

# ---- 2. the kernel test drivers on the GPU
d0=$SECONDS
: >"$OUT/backend_ops.txt"
drc=0
for d in $DRIVERS; do $d >>"$OUT/backend_ops.txt" 2>&1 || drc=1; done
say "kernel drivers: $(grep -c '^ok ' "$OUT/backend_ops.txt") ok, $(grep -c '^FAIL' "$OUT/backend_ops.txt") FAIL, status $drc, $((SECONDS - d0)) s"
grep -E '^FAIL|^    ' "$OUT/backend_ops.txt" | head -40 | tee -a "$SUM"
say "  reproduce: make -j16 CUDA=1 BUILD=$BUILD $(echo $DRIVERS) && for d in $(echo $DRIVERS); do \$d; done"

# ---- 3. training beside PyTorch
PEAK=${PEAK_TFLOPS:-989}
say ""
say "# training step (fwd+bwd+clip+AdamW); MFU over ${PEAK} TFLOP/s dense bf16"
printf '%-5s %5s %5s  %12s %12s %7s  %6s %6s  %10s %10s\n' model batch seq "tessera t/s" "torch t/s" ratio "MFU" "MFU pt" "GPU MB" "torch MB" | tee -a "$SUM"
for spec in "124m 16 1024 2 5" "1b 8 2048 2 4"; do
  set -- $spec
  preset=$1 batch=$2 seq=$3 warm=$4 steps=$5
  $BUILD/bin/tessera model info --model "$preset" --json >"$W/$preset.config.json"
  tcmd="$BUILD/bench/bench_model --preset $preset --batch $batch --seq $seq --steps $steps --warmup $warm --threads 16 --device cuda --json"
  pcmd="python3 bench/gpu_torch.py train --config $W/$preset.config.json --batch $batch --seq $seq --steps $steps --warmup $warm"
  c=$(timeout 150 $tcmd 2>>"$OUT/bench_stderr.txt") || c='{}'
  t=$(timeout 150 $pcmd 2>>"$OUT/bench_stderr.txt") || t='{}'
  echo "$c" >"$W/$preset.tessera.json"
  echo "$t" >"$W/$preset.torch.json"
  python3 - "$c" "$t" "$W/$preset.config.json" "$seq" "$PEAK" <<'PYEOF' | tee -a "$SUM"
import json, sys
c, t, cfg = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.load(open(sys.argv[3]))
T, peak = int(sys.argv[4]), float(sys.argv[5]) * 1e12
L, C, V, F = cfg["num_hidden_layers"], cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
hd = cfg.get("head_dim") or C // nh
Q = nh * hd
N = V * C + L * (C * (Q + 2 * nkv * hd) + Q * C + 3 * C * F + 2 * C) + C + (0 if cfg.get("tie_word_embeddings") else V * C)
fpt = 6 * N + 12 * L * T * Q
ct, tt = c.get("tokens_per_s", 0.0), t.get("tokens_per_s", 0.0)
print(f"{c.get('preset', '?'):<5} {c.get('batch', 0):>5} {T:>5}  {ct:>12.0f} {tt:>12.0f} {ct / tt if tt else 0:>6.2f}x"
      f"  {100 * ct * fpt / peak:>5.1f}% {100 * tt * fpt / peak:>5.1f}%  {c.get('gpu_mem_mb', 0):>10.0f} {t.get('gpu_mem_mb', 0):>10.0f}")
PYEOF
  say "  tessera: $c"
  say "  torch:   $t"
  say "  reproduce: $tcmd"
  say "             $pcmd"
done

# ---- 4. the codec and a validator's window on the GPU
say ""
say "# codec on the GPU (GB/s of fp32 model size; targets >= 200 compress and aggregate) and a 1b validator window (target < 60 s)"
for spec in "124m 64" "124m 128" "1b 64" "1b 128"; do
  set -- $spec
  ccmd="$BUILD/bench/bench_window codec --preset $1 --k $2 --device cuda --reps 3"
  say "  $(timeout 120 $ccmd 2>>"$OUT/bench_stderr.txt" | head -1 || echo "codec $1 k $2: failed (see bench_stderr.txt)")"
done
wcmd="$BUILD/bench/bench_window window --preset 1b --peers 20 --miners 15 --samples 8 --seq 2048 --device cuda"
say "  $(timeout 240 $wcmd 2>>"$OUT/bench_stderr.txt" | head -1 || echo "window: failed (see bench_stderr.txt)")"
say "  reproduce: $BUILD/bench/bench_window codec --preset P --k K --device cuda --reps 3"
say "             $wcmd"

# ---- 5. transformers loads tessera's checkpoint
say ""
M=$W/ckpt124m
$BUILD/bin/tessera model init --preset 124m --seed 7 --out "$M" >/dev/null
python3 bench/gpu_torch.py shard --out "$W/tokens.bin" --tokens 1000 --vocab 50304 --seed 3
$BUILD/bin/tessera model logits --device cuda --model "$M" --data "$W/tokens.bin" --samples 2 --seq 128 --out "$W/logits.safetensors" 2>>"$OUT/bench_stderr.txt"
x=$(python3 bench/gpu_torch.py logits --model "$M" --data "$W/tokens.bin" --samples 2 --seq 128 --tessera "$W/logits.safetensors" 2>>"$OUT/bench_stderr.txt") || x="failed (see bench_stderr.txt)"
say "transformers LlamaForCausalLM.from_pretrained on a tessera 124m checkpoint, logits vs tessera --device cuda: $x"
say "  reproduce: $BUILD/bin/tessera model init --preset 124m --seed 7 --out M && python3 bench/gpu_torch.py shard --out tok.bin --tokens 1000 --vocab 50304 --seed 3"
say "             $BUILD/bin/tessera model logits --device cuda --model M --data tok.bin --samples 2 --seq 128 --out l.safetensors"
say "             python3 bench/gpu_torch.py logits --model M --data tok.bin --samples 2 --seq 128 --tessera l.safetensors"
rm -rf "$M" "$W/logits.safetensors"
say ""
say "total: $((SECONDS - T0)) s"
