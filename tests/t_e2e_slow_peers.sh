#!/usr/bin/env bash
# t_e2e_slow_peers.sh - hostile peer endpoints do not stall a validator.  Two
# registered uids publish commitments naming endpoints on loopback that they
# control: one answers HEAD at once and drips every body at about 1100 B/s
# (above a 1 KB/s stall limit), the other never answers at all.  The
# validator must finish every window inside its schedule (no window
# skipped), score the honest miners as usual, and log why the hostile ones
# count as missing.
set -u
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
T=$(mktemp -d "${TMPDIR:-/tmp}/tessera-slow-XXXXXX")
PY=/usr/bin/python3
SUBNET_QUIET=1
# shellcheck source=tools/subnet_lib.sh
source tools/subnet_lib.sh
PIDS=()
cleanup() {
  subnet_stop_all
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT

ok() { echo "ok   t_e2e_slow_peers/$1"; }
fail() { echo "FAIL t_e2e_slow_peers/$1"; shift; for l in "$@"; do echo "    $l"; done; }

if ! subnet_setup "$T/s" tiny validator m1 m2 m3 drip dead; then
  fail setup "$(tail -n 5 "$T/s/logs/init.log" 2>/dev/null)"
  exit 0
fi
D=$SUBNET_DIR
for mode in drip stall; do
  read -r port pid < <($PY tests/servers/fake_s3.py "$mode" "$T/$mode.log" --lifetime 400)
  PIDS+=("$pid")
  name=$mode
  [ "$mode" = stall ] && name=dead
  "$SUBNET_BIN/tessera" localnet commit --dir "$D/subnet" --wallet demo --hotkey "$name" \
    --data "s3://AKHOSTILE:hostilesecret@bucket/$name?endpoint=http://127.0.0.1:$port&region=auto" >/dev/null ||
    { fail setup "cannot commit the $name endpoint"; exit 0; }
done
for k in validator m1 m2 m3; do subnet_start "$k"; done

deadline=$((SECONDS + 240))
while [ "$(subnet_windows_done)" -lt 7 ] && [ $SECONDS -lt $deadline ]; do sleep 1; done
# SIGKILL: a validator stuck in a request to a hostile endpoint would not stop in time
for k in validator m1 m2 m3; do subnet_stop "$k" KILL; done
window_s=$("$SUBNET_BIN/tessera" localnet status --dir "$D/subnet" --json |
  $PY -c 'import json,sys; s=json.load(sys.stdin); print(s["block_time"] * s["blocks_per_window"])')

# Every window processed, none skipped, each inside its schedule (a window's
# processing must end before the next one's begins: one window length).
detail=$($PY - "$D" "$window_s" <<'EOF'
import json, os, re, sys
d, L = sys.argv[1], float(sys.argv[2])
p = os.path.join(d, "state/validator/windows.jsonl")
rows = [json.loads(l) for l in open(p)] if os.path.exists(p) else []
if not rows:
    print("the validator processed no window"); sys.exit(1)
ws = [r["window"] for r in rows]
took = [float(m.group(2)) for m in re.finditer(r"window (\d+) done in ([0-9.]+)s", open(os.path.join(d, "logs/validator.log")).read())]
bad = []
if len(ws) < 7: bad.append(f"only {len(ws)} windows processed")
if ws != list(range(ws[0], ws[0] + len(ws))): bad.append(f"windows skipped: {ws}")
slow = [t for t in took if t >= L]
if slow: bad.append(f"windows took {slow} s, longer than a window ({L} s)")
print("; ".join(bad) or f"windows {ws} processed in {max(took):.1f} s at most (a window is {L:.0f} s)")
sys.exit(1 if bad else 0)
EOF
)
if [ $? -eq 0 ]; then ok windows_on_schedule; echo "    $detail"; else fail windows_on_schedule "$detail"; fi

# The honest miners are scored as usual; the hostile ones count as missing,
# with the reason.
detail=$($PY - "$D" <<'EOF'
import json, os, sys
d = sys.argv[1]
p = os.path.join(d, "state/validator/windows.jsonl")
rows = [json.loads(l) for l in open(p)] if os.path.exists(p) else []
if not rows:
    print("the validator processed no window"); sys.exit(1)
last = rows[-1]
w = {int(k): v for k, v in last["weights"].items()}
bad = [f"honest uid {u} has weight {w.get(u, 0)}" for u in (1, 2, 3) if not w.get(u, 0) > 0]
hostile = [e for r in rows for e in r["evaluated"] if e["uid"] in (4, 5)]
if not hostile: bad.append("the hostile uids were never evaluated")
if any(e["status"] == "ok" for e in hostile): bad.append("a hostile uid's upload counted")
if any(w.get(u, 0) > 0 for u in (4, 5)): bad.append(f"a hostile uid has weight: {w}")
reasons = sorted({e.get("reason", "")[:70] for e in hostile})
print("; ".join(bad) or f"weights {w}; hostile uploads: {reasons}")
sys.exit(1 if bad else 0)
EOF
)
if [ $? -eq 0 ]; then ok honest_scored_hostile_missing; echo "    $detail"; else fail honest_scored_hostile_missing "$detail"; fi

# The endpoints were really tried (and given up on), and the log says why.
if [ -s "$T/drip.log" ] && [ -s "$T/stall.log" ] && grep -q "timed out\|Timeout\|timeout" "$D/logs/validator.log"; then
  ok hostile_endpoints_tried_and_timed_out
  echo "    $(wc -l <"$T/drip.log") requests to the dripping endpoint, $(wc -l <"$T/stall.log") to the silent one"
else
  fail hostile_endpoints_tried_and_timed_out "drip log $(wc -l <"$T/drip.log" 2>/dev/null), stall log $(wc -l <"$T/stall.log" 2>/dev/null)" \
    "$(grep -i "s3 " "$D/logs/validator.log" | tail -n 3)"
fi
exit 0
