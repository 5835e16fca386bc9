#!/usr/bin/env bash
# t_model_cli.sh - tessera model init|info, train and eval end to end on the
# tiny preset: determinism, the held-out loss matching `eval`, and bad input
# (inconsistent config, broken shards, out-of-vocabulary tokens, a damaged
# checkpoint, a backend without model ops) giving one clear line and a
# non-zero exit.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
T=$BUILD/bin/tessera
W=$(mktemp -d "${TMPDIR:-/tmp}/tessera-modelcli-XXXXXX")
trap 'rm -rf "$W"' EXIT

ok() { echo "ok   t_model_cli/$1"; }
fail() { echo "FAIL t_model_cli/$1"; shift; for l in "$@"; do echo "    $l"; done; }
# expect_fail NAME PATTERN CMD...: the command must exit non-zero with PATTERN on stderr
expect_fail() {
  local name=$1 pat=$2; shift 2
  local err
  if err=$("$@" 2>&1 >/dev/null); then
    fail "$name" "exited 0: $*"
  elif ! grep -q -- "$pat" <<<"$err"; then
    fail "$name" "expected '$pat' in: $err"
  elif [ "$(wc -l <<<"$err")" -gt 2 ]; then
    fail "$name" "more than one line: $err"
  else
    ok "$name"
  fi
}

if [ ! -x "$T" ]; then fail binary "$T is missing; run make"; exit 1; fi

# byte-level shards: a text, and one with a token outside tiny's vocabulary
/usr/bin/python3 - "$W" <<'EOF'
import sys, numpy as np
w = sys.argv[1]
def shard(path, toks, magic=20240520):
    h = np.zeros(256, dtype="<i4"); h[0], h[1], h[2] = magic, 1, len(toks)
    open(path, "wb").write(h.tobytes() + np.asarray(toks, dtype="<u2").tobytes())
text = (b"the quick brown fox jumps over the lazy dog. " * 400)
t = np.frombuffer(text, dtype=np.uint8)
shard(f"{w}/train.bin", t[:15000]); shard(f"{w}/val.bin", t[15000:])
bad = t[:2000].astype(np.int64); bad[100] = 300
shard(f"{w}/oov.bin", bad)
shard(f"{w}/magic.bin", t[:2000], magic=1234)
open(f"{w}/short.bin", "wb").write(b"\x00" * 100)
EOF

if "$T" model init --preset tiny --seed 3 --out "$W/init" >"$W/init.out" 2>&1 &&
   [ -s "$W/init/model.safetensors" ] && [ -s "$W/init/config.json" ]; then ok init; else fail init "$(cat "$W/init.out")"; fi

if "$T" model info --model "$W/init" | grep -q "config hash" &&
   "$T" model info --model tiny --json |
     /usr/bin/python3 -c 'import json,sys; c=json.load(sys.stdin); sys.exit(0 if c["tie_word_embeddings"] and c["hidden_size"] == 64 else 1)'
then ok info; else fail info "$("$T" model info --model tiny --json)"; fi

train() { "$T" train --model "$W/init" --data "$W/train.bin" --val-data "$W/val.bin" --val-samples 8 \
            --batch 4 --seq 64 --steps 20 --lr 3e-3 --warmup 2 --threads 2 "$@"; }
if train --out "$W/a" --log-json "$W/a.jsonl" 2>"$W/a.err" && train --out "$W/b" 2>"$W/b.err"; then
  if cmp -s "$W/a/model.safetensors" "$W/b/model.safetensors"; then ok train_is_deterministic
  else fail train_is_deterministic "two identical runs wrote different weights"; fi
  first=$(head -1 "$W/a.jsonl" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["loss"])')
  last=$(tail -1 "$W/a.jsonl" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["loss"])')
  val=$(tail -1 "$W/a.jsonl" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["val_loss"])')
  if /usr/bin/python3 -c "import sys; sys.exit(0 if $last < 0.6 * $first else 1)"; then ok train_lowers_loss
  else fail train_lowers_loss "first $first last $last"; fi
  ev=$("$T" eval --model "$W/a" --data "$W/val.bin" --samples 8 --seq 64 --batch 4 --json 2>&1)
  if /usr/bin/python3 -c "import json,sys; e=json.loads('''$ev''')['loss']; sys.exit(0 if abs(e - $val) <= 1e-6 * abs($val) else 1)" 2>/dev/null
  then ok eval_matches_held_out_loss; else fail eval_matches_held_out_loss "eval: $ev" "train's held-out loss: $val"; fi
  if "$T" train --model tiny --init "$W/a" --data "$W/train.bin" --batch 2 --seq 32 --steps 1 --out "$W/c" \
       --save-grads "$W/g.safetensors" 2>"$W/c.err" && [ -s "$W/g.safetensors" ]; then ok preset_with_init_and_save_grads
  else fail preset_with_init_and_save_grads "$(cat "$W/c.err")"; fi
else
  fail train "$(tail -3 "$W/a.err" "$W/b.err" 2>/dev/null)"
fi

# bad input: one line, non-zero exit
printf '{"vocab_size": 257, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 3}' >"$W/bad.json"
expect_fail inconsistent_config "num_key_value_heads" "$T" model init --config "$W/bad.json" --out "$W/x"
expect_fail unknown_preset "preset" "$T" model init --preset enormous --out "$W/x"
expect_fail oov_tokens "outside the vocabulary" "$T" eval --model "$W/init" --data "$W/oov.bin" --samples 4 --seq 64
expect_fail bad_shard_magic "magic" "$T" eval --model "$W/init" --data "$W/magic.bin" --samples 1 --seq 64
expect_fail short_shard "header" "$T" eval --model "$W/init" --data "$W/short.bin" --samples 1 --seq 64
expect_fail no_shards "no shard matches" "$T" train --model tiny --data "$W/none-*.bin" --out "$W/x"
expect_fail too_many_samples "holds only" "$T" eval --model "$W/init" --data "$W/val.bin" --samples 100000 --seq 64
expect_fail seq_too_long "max_position_embeddings" "$T" eval --model "$W/init" --data "$W/train.bin" --samples 1 --seq 4000
mkdir -p "$W/broken"
cp "$W/init/config.json" "$W/broken/"
head -c 3000 "$W/init/model.safetensors" >"$W/broken/model.safetensors"
expect_fail truncated_checkpoint "checkpoint" "$T" eval --model "$W/broken" --data "$W/val.bin" --samples 1 --seq 64

# --device: without a GPU, cuda stops in one line and auto falls back with a
# note; the emulated GPU (the device emulator's library) trains, evaluates and
# writes logits in agreement with the CPU
if "$T" devices | grep -q '^cuda:0 '; then
  echo "skip t_model_cli/gpu_backend_refused (this machine has a GPU)"
  echo "skip t_model_cli/gpu_auto_falls_back (this machine has a GPU)"
else
  expect_fail gpu_backend_refused "device 'cuda': no GPU" "$T" train --model tiny --data "$W/train.bin" --steps 1 --device cuda --out "$W/x"
  if "$T" eval --model "$W/init" --data "$W/val.bin" --samples 4 --seq 64 --device auto >/dev/null 2>"$W/auto.err" &&
     grep -q "note: --device auto: no usable GPU" "$W/auto.err" && [ "$(wc -l <"$W/auto.err")" -eq 1 ]
  then ok gpu_auto_falls_back; else fail gpu_auto_falls_back "$(cat "$W/auto.err")"; fi
fi
# compare.py A B [REF]: squared distance of two safetensors files' tensors,
# over the squared norm of B (or of B - REF); prints the ratio
cat >"$W/compare.py" <<'PYEOF'
import json, struct, sys, numpy as np
def load(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: np.frombuffer(b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]], "<f4").astype(float)
            for k, v in h.items() if k != "__metadata__"}
a, b = load(sys.argv[1]), load(sys.argv[2])
r = load(sys.argv[3]) if len(sys.argv) > 3 else {k: 0 * v for k, v in b.items()}
assert a.keys() == b.keys() and all(a[k].size == b[k].size for k in a)
print(f"{sum(((a[k] - b[k]) ** 2).sum() for k in a) / sum(((b[k] - r[k]) ** 2).sum() for k in b):.3g}")
PYEOF
EMU=$PWD/$BUILD/lib/libtessera_cudaemu.so
if [ ! -e "$EMU" ]; then
  fail gpu_emulated "$EMU is missing (make tests builds it)"
else
  if TESSERA_CUDA_LIB=$EMU "$T" devices | grep -q '^cuda:0 .*emulator'; then ok devices_lists_the_emulated_gpu
  else fail devices_lists_the_emulated_gpu "$(TESSERA_CUDA_LIB=$EMU "$T" devices 2>&1)"; fi
  gtrain() { "$T" train --model "$W/init" --data "$W/train.bin" --batch 2 --seq 48 --steps 3 --lr 3e-3 --warmup 1 --threads 2 "$@"; }
  if gtrain --out "$W/cpu3" 2>"$W/cpu3.err" && TESSERA_CUDA_LIB=$EMU gtrain --device cuda --out "$W/gpu3" 2>"$W/gpu3.err"; then
    # the GPU's update against the CPU's: within a few percent (AdamW turns the
    # bf16 products' small gradient differences into larger early updates)
    d=$(/usr/bin/python3 "$W/compare.py" "$W/gpu3/model.safetensors" "$W/cpu3/model.safetensors" "$W/init/model.safetensors")
    if /usr/bin/python3 -c "import sys; sys.exit(0 if 0 < $d < 1e-2 else 1)"; then ok gpu_train_emulated_matches_cpu
    else fail gpu_train_emulated_matches_cpu "squared distance of the weights over the CPU's update: $d"; fi
    ce=$("$T" eval --model "$W/gpu3" --data "$W/val.bin" --samples 4 --seq 48 --batch 2 --json 2>/dev/null)
    ge=$(TESSERA_CUDA_LIB=$EMU "$T" eval --model "$W/gpu3" --data "$W/val.bin" --samples 4 --seq 48 --batch 2 --json --device cuda 2>/dev/null)
    if /usr/bin/python3 -c "import json,sys; a=json.loads(sys.argv[1])['loss']; b=json.loads(sys.argv[2])['loss']; sys.exit(0 if abs(a - b) <= 1e-3 * a else 1)" "$ce" "$ge" 2>/dev/null
    then ok gpu_eval_emulated_matches_cpu; else fail gpu_eval_emulated_matches_cpu "cpu: $ce" "cuda: $ge"; fi
    if TESSERA_CUDA_LIB=$EMU "$T" model logits --device cuda --model "$W/gpu3" --data "$W/val.bin" --samples 2 --seq 16 --out "$W/lg.safetensors" 2>"$W/lg.err" &&
       "$T" model logits --model "$W/gpu3" --data "$W/val.bin" --samples 2 --seq 16 --out "$W/lc.safetensors" 2>>"$W/lg.err"; then
      d=$(/usr/bin/python3 "$W/compare.py" "$W/lg.safetensors" "$W/lc.safetensors")
      if /usr/bin/python3 -c "import sys; sys.exit(0 if $d < 1e-4 else 1)"; then ok gpu_logits_emulated_match_cpu
      else fail gpu_logits_emulated_match_cpu "NSE $d"; fi
    else
      fail gpu_logits_emulated_match_cpu "$(cat "$W/lg.err")"
    fi
  else
    fail gpu_train_emulated "$(tail -3 "$W/cpu3.err" "$W/gpu3.err")"
  fi
fi
if "$T" model info --model 1b --batch 8 --seq 2048 --device cuda >"$W/plan.out" 2>&1 &&
   grep -q "GEMM bf16 staging" "$W/plan.out" && grep -q "on a GPU" "$W/plan.out"
then ok model_info_gpu_plan; else fail model_info_gpu_plan "$(cat "$W/plan.out")"; fi
