#!/usr/bin/env bash
# t_e2e_gpu.sh - a miner and the validator with --device cuda beside CPU
# miners on a local subnet (the `tiny` model, a few windows).  Without a GPU
# the two run on the device emulator (TESSERA_CUDA_LIB=BUILD/lib/
# libtessera_cudaemu.so: a fake "cuda:0" whose device memory is host memory),
# given to those two nodes alone.  Asserts that every node holds the
# bit-identical model after every outer step (each miner's signed sync
# record against the validator's hash), that the GPU miner's uploads are
# gathered, that the GPU nodes report cuda:0 (and its memory) in their
# metrics and the CPU miners cpu, and that state saved on one device resumes
# on the other (model and error feedback).
set -u
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
BIN=$PWD/$BUILD/bin
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/tessera-e2e-gpu-XXXXXX")

ok() { echo "ok   t_e2e_gpu/$1"; }
fail() { echo "FAIL t_e2e_gpu/$1"; shift; for l in "$@"; do echo "    $l"; done; }
check() { # name, condition command..., (detail on failure from $detail)
  local name=$1; shift
  if "$@"; then ok "$name"; else fail "$name" "${detail:-}"; fi
}

# A real GPU runs the CUDA library; else the emulator stands in for it.
GPU_ENV=""
if "$BIN/tessera" devices 2>/dev/null | grep -q '^cuda:0 ' && ! "$BIN/tessera" devices 2>/dev/null | grep -q emulator; then
  GPU_ENV=""
elif [ -f "$PWD/$BUILD/lib/libtessera_cudaemu.so" ]; then
  GPU_ENV="TESSERA_CUDA_LIB=$PWD/$BUILD/lib/libtessera_cudaemu.so"
else
  echo "skip t_e2e_gpu/run"
  echo "    skipped: no GPU and no device emulator ($BUILD/lib/libtessera_cudaemu.so; make tests builds it)"
  rm -rf "$T"
  exit 0
fi

# The emulator runs kernels on one core, some 50x slower than the CPU
# backend: longer windows (16 s) and a validator that evaluates on 16
# samples keep the emulated validator inside each window, so that no node
# falls behind and catches up (which is tested elsewhere).
SUBNET_BLOCKS=${SUBNET_BLOCKS:-16}
SUBNET_EVAL_SAMPLES=16
SUBNET_VAL_SAMPLES=16
source tools/subnet_lib.sh
SUBNET_QUIET=1
trap 'subnet_stop_all; [ -n "${TESSERA_E2E_KEEP:-}" ] || rm -rf "$T"' EXIT
WINDOWS=${TESSERA_E2E_GPU_WINDOWS:-4}
NAMES=(validator gpu1 cpu1 cpu2)
if ! subnet_setup "$T/net" tiny "${NAMES[@]}" >"$T/setup.out" 2>&1; then
  fail run "setting up the subnet failed:" "$(tail -n 20 "$T/setup.out")"
  exit 0
fi
D=$SUBNET_DIR
SUBNET_ENV[validator]=$GPU_ENV
SUBNET_ENV[gpu1]=$GPU_ENV
subnet_start validator --device cuda --max-windows "$WINDOWS" --metrics-port 0
subnet_start gpu1 --device cuda --metrics-port 0
subnet_start cpu1 --device cpu --metrics-port 0
subnet_start cpu2 --device cpu

# the metrics while they run (the port each bound is in its log)
port_of() { sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$D/logs/$1.log" | tail -n 1; }
scrape() { # name -> DIR/NAME.metrics
  local p
  p=$(port_of "$1")
  [ -n "$p" ] && $PY -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
    "http://127.0.0.1:$p/metrics" >"$T/$1.metrics" 2>/dev/null
}
VPID=${SUBNET_PID[validator]}
T0=$SECONDS
scraped=0
died=""
while kill -0 "$VPID" 2>/dev/null; do
  sleep 1
  if [ $scraped = 0 ] && [ "$(subnet_windows_done)" -ge 1 ]; then
    scrape validator && scrape gpu1 && scrape cpu1 && scraped=1
  fi
  for k in gpu1 cpu1 cpu2; do
    kill -0 "${SUBNET_PID[$k]}" 2>/dev/null || died="$died $k"
  done
  [ -n "$died" ] && break
  [ $((SECONDS - T0)) -gt 240 ] && { died=" (timeout: 240s)"; break; }
done
if [ -n "$died" ] || ! wait "$VPID"; then
  fail run "the subnet did not finish $WINDOWS windows${died:+; stopped:$died}"
  for f in "$D"/logs/{validator,gpu1,cpu1}.log; do echo "    --- $f"; tail -n 12 "$f" | sed 's/^/    /'; done
  exit 0
fi
unset "SUBNET_PID[validator]"
subnet_stop_all
ok run
echo "    $WINDOWS windows in $((SECONDS - T0))s"

# 1. the GPU nodes ran on the GPU (the log says so), the CPU miners on the CPU
detail=""
for k in validator gpu1; do
  grep -q 'device cuda:0 ' "$D/logs/$k.log" || detail="$detail $k is not on cuda:0;"
done
grep -q 'device cpu ' "$D/logs/cpu1.log" || detail="$detail cpu1 is not on the CPU;"
check devices test -z "$detail"

# 2. after every outer step every node holds the bit-identical model: each
#    miner's signed sync record against the validator's (GPU) model hash;
#    and the GPU miner's uploads were gathered
detail=$($PY - "$D/state/validator/windows.jsonl" "$D/stores" <<'EOF'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
stores = sys.argv[2]
uids = {"gpu1": 1, "cpu1": 2, "cpu2": 3}
checked = {k: 0 for k in uids}
bad = []
gathered_gpu = 0
for r in rows:
    w = r["window"]
    g = r.get("gathered") or []
    if any((x.get("uid") if isinstance(x, dict) else x) == 1 for x in g):
        gathered_gpu += 1
    for name, uid in uids.items():
        p = os.path.join(stores, name, "debug", str(w), str(uid))
        if not os.path.exists(p):
            continue
        h = json.load(open(p))["model_hash"]
        checked[name] += 1
        if h != r["model_hash"]:
            bad.append(f"window {w} {name}: {h[:16]} != validator {r['model_hash'][:16]}")
print(f"{len(rows)} windows; records compared {checked}; the GPU miner gathered in {gathered_gpu}; "
      + ("; ".join(bad[:4]) or "all identical"))
ok = not bad and all(c >= len(rows) - 2 and c >= 2 for c in checked.values()) and gathered_gpu >= 1
sys.exit(0 if ok else 1)
EOF
)
rc=$?
check models_bit_identical_across_devices test $rc -eq 0
[ $rc = 0 ] && echo "    $detail"

# 3. metrics: the device, and the GPU's memory
detail=""
for k in validator gpu1; do
  f=$T/$k.metrics
  grep -q '^tessera_device_info{device="cuda:0",name="[^"]*"} 1' "$f" 2>/dev/null || detail="$detail $k: no cuda:0 device_info;"
  grep -Eq '^tessera_device_memory_total_bytes [1-9]' "$f" 2>/dev/null || detail="$detail $k: no device memory total;"
  grep -Eq '^tessera_device_memory_used_bytes [0-9]' "$f" 2>/dev/null || detail="$detail $k: no device memory in use;"
done
grep -q '^tessera_device_info{device="cpu",' "$T/cpu1.metrics" 2>/dev/null || detail="$detail cpu1: no cpu device_info;"
check metrics_report_device test -z "$detail"
[ -n "$detail" ] && echo "    $(grep tessera_device "$T"/*.metrics 2>/dev/null | head -n 6 | tr '\n' ' ')"

# 4. state moves between devices: the GPU miner's state resumes on the CPU
#    and a CPU miner's on the GPU, model hash and error feedback included
resumes() { # name -> 0 when the node resumed its local state fully
  local k=$1 i
  for i in $(seq 1 40); do
    grep -q 'resumed local state' "$D/logs/$k.log" && break
    kill -0 "${SUBNET_PID[$k]}" 2>/dev/null || break
    sleep 0.5
  done
  subnet_stop "$k"
  grep -q 'resumed local state' "$D/logs/$k.log" && ! grep -Eq 'error feedback not restored|local model does not match|unreadable' "$D/logs/$k.log"
}
: >"$D/logs/gpu1.log"
: >"$D/logs/cpu1.log"
SUBNET_ENV[gpu1]=""
subnet_start gpu1 --device cpu
SUBNET_ENV[cpu1]=$GPU_ENV
subnet_start cpu1 --device cuda
r1=0 r2=0
resumes gpu1 || r1=1
resumes cpu1 || r2=1
detail="gpu1 on the CPU: $(grep -E 'resumed|not restored|does not match|unreadable' "$D/logs/gpu1.log" | head -n 2 | tr '\n' ' '); cpu1 on cuda: $(grep -E 'resumed|not restored|does not match|unreadable' "$D/logs/cpu1.log" | head -n 2 | tr '\n' ' ')"
check state_moves_between_devices test $r1 -eq 0 -a $r2 -eq 0
