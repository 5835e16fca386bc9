#!/usr/bin/env bash
# t_e2e_faults.sh - nodes killed with SIGKILL and restarted: the validator in
# the middle of a window's evaluation, a miner at the moment of its upload.
# The run goes on, no saved state is corrupt, and the restarted nodes catch
# up to the same model hash as everyone else.
set -u
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
T=$(mktemp -d "${TMPDIR:-/tmp}/tessera-faults-XXXXXX")
PY=/usr/bin/python3
SUBNET_QUIET=1
# shellcheck source=tools/subnet_lib.sh
source tools/subnet_lib.sh
trap 'subnet_stop_all; rm -rf "$T"' EXIT

ok() { echo "ok   t_e2e_faults/$1"; }
fail() { echo "FAIL t_e2e_faults/$1"; shift; for l in "$@"; do echo "    $l"; done; }
logs() { for f in "$SUBNET_DIR"/logs/*.log; do echo "    --- $f"; tail -n 12 "$f" | sed 's/^/    /'; done; }

wait_windows() { # n timeout_s: until the validator has processed n windows
  local deadline=$((SECONDS + $2))
  while [ "$(subnet_windows_done)" -lt "$1" ]; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}

if ! subnet_setup "$T/f" tiny validator m1 m2 m3; then
  fail setup "$(cat "$T/f/logs/init.log" 2>/dev/null | tail -n 5)"
  exit 0
fi
D=$SUBNET_DIR
for k in validator m1 m2 m3; do subnet_start "$k"; done

# Let the run start and the first outer steps happen.
if ! wait_windows 4 240; then
  fail run "the validator processed $(subnet_windows_done) windows in 240 s"
  logs
  exit 0
fi
ok run_starts

# 1. SIGKILL the validator while it evaluates a window, and restart it.
before=$(subnet_windows_done)
n0=$(grep -c ": evaluating" "$D/logs/validator.log")
deadline=$((SECONDS + 60))
while [ "$(grep -c ": evaluating" "$D/logs/validator.log")" -le "$n0" ] && [ $SECONDS -lt $deadline ]; do sleep 0.02; done
subnet_stop validator KILL
# confirm the kill came mid-evaluation: the window it was evaluating never
# finished (no "done" line for it)
kw=$(grep ": evaluating" "$D/logs/validator.log" | tail -n 1 | sed 's/.*window \([0-9]*\): evaluating.*/\1/')
if [ -n "$kw" ] && ! grep -q "window $kw done" "$D/logs/validator.log"; then
  ok killed_during_evaluation
  echo "    SIGKILL while evaluating window $kw"
else
  fail killed_during_evaluation "the last window the validator started evaluating ($kw) had finished before the kill"
fi
echo "--- killed (SIGKILL) during an evaluation ---" >>"$D/logs/validator.log"
subnet_start validator

# 2. SIGKILL a miner at the moment of its upload (0.5 s after a window boundary).
next=$("$SUBNET_BIN/tessera" localnet status --dir "$D/subnet" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["next_window_time"])')
$PY -c "import time,sys; t=float(sys.argv[1])+0.5; time.sleep(max(0, t-time.time()))" "$next"
subnet_stop m2 KILL
killed_at=$($PY -c 'import time; print(time.time())')
# confirm the kill came at the upload: the window's training had finished and
# its upload had not been logged yet, or was logged within a second before
detail=$($PY - "$D/logs/m2.log" "$killed_at" <<'EOF'
import datetime, re, sys
lines = open(sys.argv[1]).read().splitlines()
killed = float(sys.argv[2])
trained = [l for l in lines if re.search(r"window \d+: \d+ inner steps", l)]
if not trained:
    print("m2 never finished a window's training"); sys.exit(1)
w = re.search(r"window (\d+): \d+ inner steps", trained[-1]).group(1)
up = [l for l in lines if f"window {w}: uploaded" in l]
if not up:
    print(f"killed after training window {w}, before its upload"); sys.exit(0)
t = datetime.datetime.strptime(up[-1][:23], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc).timestamp()
print(f"window {w} uploaded {killed - t:.2f}s before the kill")
sys.exit(0 if killed - t < 1.0 else 1)
EOF
)
if [ $? -eq 0 ]; then ok killed_at_upload; echo "    $detail"; else fail killed_at_upload "$detail"; fi
echo "--- killed (SIGKILL) at its upload ---" >>"$D/logs/m2.log"
sleep 1
subnet_start m2

# 3. The run goes on: the restarted validator processes more windows.
if wait_windows $((before + 5)) 300; then ok run_continues_after_restarts; else
  fail run_continues_after_restarts "validator at $(subnet_windows_done) windows, wanted $((before + 5))"
  logs
fi
subnet_stop_all

# 4. No saved state is corrupt.
bad=()
"$SUBNET_BIN/tessera" gauntlet state "$D/state/validator/gauntlet.state" >/dev/null 2>"$T/gs.err" ||
  bad+=("gauntlet.state: $(cat "$T/gs.err")")
# Each node's state is what its loader accepts: node.json vouches for the model
# it sits beside (the model hash the node checks on load), the model loads
# and evaluates, and a miner's error feedback has every parameter's name,
# shape and size, all finite.
for k in validator m1 m2 m3; do
  "$SUBNET_BIN/tessera" eval --model tiny --init "$D/state/$k/model.safetensors" --data "$BUILD/corpus/val" --seq 64 \
    --samples 1 >/dev/null 2>&1 || bad+=("$k/model.safetensors does not load")
  msg=$($PY - "$D/state/$k" 2>&1 <<'EOF'
import hashlib, json, math, os, struct, sys
d = sys.argv[1]
def st(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]
s = json.load(open(os.path.join(d, "node.json")))
hdr, data = st(os.path.join(d, "model.safetensors"))
if s.get("format") != "tessera-node-state" or s.get("version") != 1: sys.exit("node.json: wrong format")
if hashlib.blake2b(data, digest_size=32).hexdigest() != s["model_hash"]: sys.exit("node.json does not vouch for model.safetensors")
if s["error_feedback"]:
    eh, ed = st(os.path.join(d, "ef.safetensors"))
    for name, t in hdr.items():
        if name == "__metadata__": continue
        e = eh.get(name)
        if not e or e["dtype"] != "F32" or e["shape"] != t["shape"]: sys.exit(f"ef.safetensors: {name} missing or misshaped")
        a, b = e["data_offsets"]
        if b - a != 4 * math.prod(t["shape"]): sys.exit(f"ef.safetensors: {name} has the wrong size")
        vals = struct.unpack(f"<{(b - a) // 4}f", ed[a:b])
        if not all(math.isfinite(v) for v in vals): sys.exit(f"ef.safetensors: {name} is not finite")
EOF
  ) || bad+=("$k: $msg")
done
if [ ${#bad[@]} -eq 0 ]; then ok state_files_intact; else fail state_files_intact "${bad[@]}"; fi

# 5. The restarted nodes hold the same model as everyone else afterwards:
#    compare every miner's signed sync records with the validator's model hash
#    over the last three windows, and the windows were scored once each.
detail=$($PY - "$D" <<'EOF'
import json, os, sys
d = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(d, "state/validator/windows.jsonl"))]
by_w = {r["window"]: r["model_hash"] for r in rows}
last = sorted(by_w)[-3:]
msgs, compared = [], 0
for w in last:
    for name, uid in (("m1", 1), ("m2", 2), ("m3", 3)):
        p = os.path.join(d, "stores", name, "debug", str(w), str(uid))
        if not os.path.exists(p):
            msgs.append(f"no sync record of {name} for window {w}")
            continue
        compared += 1
        h = json.load(open(p))["model_hash"]
        if h != by_w[w]:
            msgs.append(f"window {w}: {name} {h[:16]} != validator {by_w[w][:16]}")
ws = [r["window"] for r in rows]
dups = sorted({w for w in ws if ws.count(w) > 1})
if dups: msgs.append(f"windows scored more than once: {dups}")
if ws != sorted(ws): msgs.append(f"windows scored out of order: {ws}")
print(f"{compared} records compared over windows {last}; {len(ws)} windows scored once each; " + ("; ".join(msgs) or "all identical"))
sys.exit(0 if compared >= 8 and not msgs else 1)
EOF
)
if [ $? -eq 0 ]; then ok restarted_nodes_catch_up_same_model; echo "    $detail"; else
  fail restarted_nodes_catch_up_same_model "$detail"
  logs
fi
if grep -q "resumed local state\|caught up window\|loaded the leader" "$D/logs/m2.log" && grep -q "resumed scores" "$D/logs/validator.log"; then
  ok restarted_nodes_resumed_from_state
else
  fail restarted_nodes_resumed_from_state "no resume line in the logs of m2 / the validator"
fi
exit 0
