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
echo "--- killed (SIGKILL) during an evaluation ---" >>"$D/logs/validator.log"
subnet_start validator

# 2. SIGKILL a miner at the moment of its upload (0.5 s after a window boundary).
next=$("$SUBNET_BIN/tessera" localnet status --dir "$D/subnet" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["next_window_time"])')
$PY -c "import time,sys; t=float(sys.argv[1])+0.5; time.sleep(max(0, t-time.time()))" "$next"
subnet_stop m2 KILL
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
for k in validator m1 m2 m3; do
  $PY -c "import json,sys; json.load(open(sys.argv[1]))" "$D/state/$k/node.json" 2>/dev/null || bad+=("$k/node.json does not parse")
  "$SUBNET_BIN/tessera" eval --model tiny --init "$D/state/$k/model.safetensors" --data "$BUILD/corpus/val" --seq 64 \
    --samples 1 >/dev/null 2>&1 || bad+=("$k/model.safetensors does not load")
done
for k in m1 m2 m3; do
  $PY -c "
import json, struct, sys
d = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', d[:8])[0]
json.loads(d[8:8 + n])" "$D/state/$k/ef.safetensors" 2>/dev/null || bad+=("$k/ef.safetensors is damaged")
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
print(f"{compared} records compared over windows {last}; " + ("; ".join(msgs) or "all identical"))
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
