#!/usr/bin/env bash
# t_disk_full.sh - a full disk under a miner's and the validator's
# --state-dir: each save fails cleanly (an error line naming the uid and "No
# space left on device"), the state saved before stays on disk whole and
# unchanged, no temporary file is left to hold the space, the nodes go on
# (training, scoring, outer steps) and save again every window, and when the
# space returns they write fresh state, agree with the others and the
# validator scores and checkpoints again (README "What a node survives").
#
# One validator and two miners on a local subnet (tiny model, 12 s windows);
# the validator's and m1's state directories are 2 MiB tmpfs mounts, m2's is
# on the ordinary disk (the reference that never fills).  Two stages:
#   A. a filler leaves 160 KiB free, less than the model (364 KB): the model
#      write fails in its middle, after writing what fits;
#   B. the filler takes the last byte: every write fails, the small ones
#      (node.json, gauntlet.state, windows.jsonl) too.
# Then the filler is removed.  Every wait is on an event (a log line, a file)
# with a generous deadline, so the test holds on a loaded 2-core machine; it
# takes about two minutes (100 to 130 s measured).
set -u
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
PY=/usr/bin/python3

ok() { echo "ok   t_disk_full/$1"; }
fail() { echo "FAIL t_disk_full/$1"; shift; for l in "$@"; do echo "    $l"; done; }

if [ "$(id -u)" != 0 ]; then
  echo "skip t_disk_full/disk_full"
  echo "    not root (tmpfs needs it)"
  exit 0
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/tessera-diskfull-XXXXXX")
SUBNET_QUIET=1
# shellcheck source=tools/subnet_lib.sh
source tools/subnet_lib.sh
MNTS=()
cleanup() {
  subnet_stop_all
  local m
  for m in "${MNTS[@]}"; do umount "$m" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT

logs() { for f in "$SUBNET_DIR"/logs/*.log; do echo "    --- $f"; tail -n 12 "$f" | sed 's/^/    /'; done; }
count() { grep -c -- "$2" "$SUBNET_DIR/logs/$1.log" 2>/dev/null; }
avail() { df -B1 --output=avail "$1" | tail -n 1 | tr -d ' '; }
alive() { kill -0 "${SUBNET_PID[$1]}" 2>/dev/null; }
chain_window() {
  "$SUBNET_BIN/tessera" localnet status --dir "$SUBNET_DIR/subnet" --json |
    $PY -c 'import json,sys; print(json.load(sys.stdin)["window"])'
}
next_window() { # name -> next_window in its node.json (-1 without one)
  $PY -c 'import json,sys
try: print(json.load(open(sys.argv[1]))["next_window"])
except Exception: print(-1)' "$SUBNET_DIR/state/$1/node.json"
}
# what a temporary file of a write would leave behind
leftovers() { find "$SUBNET_DIR/state/$1" \( -name '*.tmp.*' -o -name checkpoint.tmp -o -name download.safetensors \) | sed "s|$SUBNET_DIR/state/||"; }
sums() { # name -> the b2sums of node.json, model.safetensors and (a miner's) ef.safetensors
  local f=(node.json model.safetensors)
  [ -f "$SUBNET_DIR/state/$1/ef.safetensors" ] && f+=(ef.safetensors)
  (cd "$SUBNET_DIR/state/$1" && b2sum "${f[@]}")
}

# Waits (deadline $1 s) until every command in the rest (each one string
# for eval) holds at once.
wait_all() {
  local deadline=$((SECONDS + $1)) _cond all
  shift
  while :; do
    all=1
    for _cond in "$@"; do eval "$_cond" || { all=0; break; }; done
    [ $all = 1 ] && return 0
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}

# Waits for a moment when neither node on a tmpfs is saving: just after the
# validator finished a window (its saves come before that line) and m1 made
# the outer step of the same window (its save follows within milliseconds);
# the next saves are seconds away.
quiet_moment() {
  local n x
  n=$(count validator ' done in ')
  wait_all 60 '[ "$(count validator " done in ")" -gt "$n" ]' || return 1
  x=$(grep ' done in ' "$SUBNET_DIR/logs/validator.log" | tail -n 1 | sed 's/.*window \([0-9]*\) done in.*/\1/')
  wait_all 30 'grep -q "window $x: outer step" "$SUBNET_DIR/logs/m1.log"' || return 1
  sleep 1
}

# Sets the free space of the tmpfs at $1 to about $2 bytes with a filler
# file, twice half a second apart: a save under way at the first setting
# (its temporary file holding space that its rename then frees) cannot leave
# more room than asked for.
fill_to() {
  local f=$1/filler i cur want
  for i in 1 2; do
    cur=$(stat -c %s "$f" 2>/dev/null || echo 0)
    want=$((cur + $(avail "$1") - $2))
    [ $want -lt 0 ] && want=0
    if [ $want -gt "$cur" ]; then fallocate -l $want "$f"; else truncate -s $want "$f"; fi
    [ "$2" = 0 ] && cat /dev/zero >>"$f" 2>/dev/null # the last bytes of a page too
    [ $i = 1 ] && sleep 0.5
  done
}

# Whether a node's state files load and agree: node.json parses and vouches
# for model.safetensors beside it (its hash, what the node checks on load),
# the model loads and evaluates (tessera eval), ef.safetensors (a miner's)
# has every parameter's name, shape and size, all finite; a validator's
# gauntlet.state loads (tessera gauntlet state) and every line of its
# windows.jsonl is a whole JSON object.
state_loads() { # name -> prints what is wrong, returns 1
  local d=$SUBNET_DIR/state/$1
  subnet_state_loads "$1" strict || return 1
  if [ -f "$d/gauntlet.state" ]; then
    "$SUBNET_BIN/tessera" gauntlet state "$d/gauntlet.state" >"$T/gs.out" 2>&1 ||
      { echo "$1/gauntlet.state: $(tail -n 1 "$T/gs.out")"; return 1; }
  fi
  $PY - "$d" <<'EOF'
import json, os, sys
p = os.path.join(sys.argv[1], "windows.jsonl")
if os.path.exists(p):
    b = open(p, "rb").read()
    for i, l in enumerate(b.split(b"\n")[:-1]):
        try: json.loads(l)
        except ValueError: sys.exit(f"windows.jsonl line {i + 1} is not whole: {l[:60]!r}")
    if b and not b.endswith(b"\n"): sys.exit("windows.jsonl ends in a partial line")
EOF
}

if ! subnet_setup "$T/s" tiny validator m1 m2; then
  fail setup "$(tail -n 5 "$T/s/logs/init.log" 2>/dev/null)"
  exit 0
fi
D=$SUBNET_DIR
for k in validator m1; do
  mkdir -p "$D/state/$k"
  if ! mount -t tmpfs -o size=2m tmpfs "$D/state/$k" 2>"$T/mount.err"; then
    echo "skip t_disk_full/disk_full"
    echo "    cannot mount a tmpfs: $(head -n 1 "$T/mount.err")"
    exit 0
  fi
  MNTS+=("$D/state/$k")
done
for k in validator m1 m2; do subnet_start "$k"; done

# The run under way: the validator has processed a window, m1 and m2 have
# made an outer step, and both nodes on a tmpfs have saved their state there.
# Pass: within 180 s.
if ! wait_all 180 '[ "$(subnet_windows_done)" -ge 1 ]' '[ "$(count m1 ": outer step")" -ge 1 ]' \
  '[ "$(count m2 ": outer step")" -ge 1 ]' '[ "$(next_window validator)" -ge 0 ]' '[ "$(next_window m1)" -ge 0 ]'; then
  fail run_starts "in 180 s: the validator processed $(subnet_windows_done) windows, m1 made" \
    "$(count m1 ': outer step') outer steps, m2 $(count m2 ': outer step'); node.json: validator" \
    "$(next_window validator), m1 $(next_window m1)"
  logs
  exit 0
fi
ok run_starts
FULL_SAVE='saving local state: .*No space left on device'

# ---------------------------------------------------- A: full in mid-write
# A filler leaves 160 KiB free on each tmpfs, less than model.safetensors:
# each node's next save writes part of its temporary model file, fails, and
# must remove it.
# Pass (within 45 s): each node logs an error line with its uid and "No space
# left on device" for its state save; afterwards no temporary file is left
# in its state directory and the free space is back to what the filler left
# (give or take 16 KiB: a line of windows.jsonl), so nothing holds the
# space; both are still running.
FREE_A=$((160 * 1024))
va=$(count validator "$FULL_SAVE") ma=$(count m1 "$FULL_SAVE")
quiet_moment || echo "# no quiet moment found in 90 s; filling anyway"
fill_to "$D/state/validator" $FREE_A
fill_to "$D/state/m1" $FREE_A
sums validator >"$T/validator.sums"
sums m1 >"$T/m1.sums"
nw0_v=$(next_window validator) nw0_m=$(next_window m1)
mstep_a=$(count m1 ': outer step') vdone_a=$(count validator ' done in ')
wa=$(chain_window)
echo "# stage A from window $wa: $FREE_A bytes free for the validator and m1"
if wait_all 45 '[ "$(count validator "$FULL_SAVE")" -gt "$va" ]' '[ "$(count m1 "$FULL_SAVE")" -gt "$ma" ]'; then
  bad=()
  for k in validator m1; do
    left=$(leftovers $k)
    [ -z "$left" ] || bad+=("$k left $left")
    free=$(avail "$D/state/$k")
    [ "$free" -ge $((FREE_A - 16384)) ] || bad+=("$k's tmpfs has $free bytes free after the failed save, the filler left $FREE_A")
    alive $k || bad+=("$k is not running")
  done
  vline=$(grep -- "$FULL_SAVE" "$D/logs/validator.log" | tail -n 1)
  mline=$(grep -- "$FULL_SAVE" "$D/logs/m1.log" | tail -n 1)
  [[ $vline == *"validator[uid 0]: "* ]] || bad+=("the validator's error names no uid: $vline")
  [[ $mline == *"miner[uid 1]: "* ]] || bad+=("m1's error names no uid: $mline")
  if [ ${#bad[@]} -eq 0 ]; then
    ok mid_write_fails_cleanly
    echo "    ${mline#* error }" | cut -c 1-200
    echo "    ${vline#* error }" | cut -c 1-200
    echo "    free after the failure: validator $(avail "$D/state/validator"), m1 $(avail "$D/state/m1") bytes (filler left $FREE_A)"
  else
    fail mid_write_fails_cleanly "${bad[@]}"
    logs
  fi
else
  fail mid_write_fails_cleanly "no failed save logged in 45 s (validator: $(count validator "$FULL_SAVE"), m1: $(count m1 "$FULL_SAVE"))"
  logs
fi

# -------------------------------------------------------- B: no byte free
# Pass (within 45 s): each node logs another failed state save, the
# validator also "saving the scores: ... No space left on device" and goes
# on (a window "done" after the filler took the last byte); both are still
# running.
vb=$(count validator "$FULL_SAVE") mb=$(count m1 "$FULL_SAVE")
vdone_b=$(count validator ' done in ')
mstep_b=$(count m1 ': outer step')
fill_to "$D/state/validator" 0
fill_to "$D/state/m1" 0
echo "# stage B from window $(chain_window): no byte free"
if wait_all 45 '[ "$(count validator "$FULL_SAVE")" -gt "$vb" ]' '[ "$(count m1 "$FULL_SAVE")" -gt "$mb" ]' \
  '[ "$(count validator "saving the scores: .*No space left on device")" -ge 1 ]' \
  '[ "$(count validator " done in ")" -gt "$vdone_b" ]'; then
  bad=()
  for k in validator m1; do alive $k || bad+=("$k is not running"); done
  if [ ${#bad[@]} -eq 0 ]; then
    ok full_disk_fails_cleanly
    grep -- 'saving the scores' "$D/logs/validator.log" | tail -n 1 | sed 's/^[^ ]* error /    /' | cut -c 1-200
    grep -- 'windows.jsonl: ' "$D/logs/validator.log" | tail -n 1 | sed 's/^[^ ]* error /    /' | cut -c 1-200
  else
    fail full_disk_fails_cleanly "${bad[@]}"
    logs
  fi
else
  fail full_disk_fails_cleanly "in 45 s: failed state saves: validator $(count validator "$FULL_SAVE") (was $vb)," \
    "m1 $(count m1 "$FULL_SAVE") (was $mb); failed score saves: $(count validator 'saving the scores: .*No space left')"
  logs
fi

# The state saved before the disk filled, after both stages.
# Pass: every state file of both nodes loads and agrees (state_loads), and
# node.json, model.safetensors and ef.safetensors are byte for byte the ones
# saved before the filler (no failed save replaced any of them); no
# temporary file is left; meanwhile both nodes kept working: m1 made outer
# steps and the validator finished windows with the disk full.
bad=()
for k in validator m1; do
  msg=$(state_loads $k 2>&1) || bad+=("$k: $msg")
  sums $k | cmp -s - "$T/$k.sums" || bad+=("$k: state files changed while the disk was full: $(sums $k | tr '\n' ' ')")
  left=$(leftovers $k)
  [ -z "$left" ] || bad+=("$k left $left")
done
[ "$(count m1 ': outer step')" -gt "$mstep_b" ] || bad+=("m1 made no outer step with no byte free")
if [ ${#bad[@]} -eq 0 ]; then
  ok saved_state_intact
  echo "    the files saved before the filler (validator's and m1's node.json at windows $nw0_v and $nw0_m) unchanged" \
    "and loading; with the disk full m1 made $(($(count m1 ': outer step') - mstep_a)) outer steps, the validator" \
    "finished $(($(count validator ' done in ') - vdone_a)) windows"
else
  fail saved_state_intact "${bad[@]}"
  logs
fi

# ------------------------------------------------------ the space returns
# Pass (within 100 s of removing the fillers): both nodes save fresh state
# again (node.json past the window in which space returned, and it loads);
# the validator scores a window processed after that (windows.jsonl has its
# line, with miners evaluated, and gauntlet.state is at that window or
# later) and publishes a checkpoint again; m1's and m2's sync records of a
# window after the space returned hold the validator's model hash, and every
# model hash any of the three published for any window of the run agrees;
# no temporary file is left; both nodes ran throughout.
rm -f "$D/state/validator/filler" "$D/state/m1/filler"
c=$(chain_window)
ckpt0=$(count validator 'published the checkpoint of window')
echo "# space returned in window $c"
rec_ok() { # the validator's line of a window >= c with miners evaluated, and m1's and m2's sync records of it
  $PY - "$D" "$c" <<'EOF'
import json, os, sys
d, c = sys.argv[1], int(sys.argv[2])
try: rows = [json.loads(l) for l in open(os.path.join(d, "state/validator/windows.jsonl"))]
except (OSError, ValueError): sys.exit(1)
for r in rows:
    if r["window"] >= c and r.get("evaluated") and all(
            os.path.exists(os.path.join(d, "stores", n, "debug", str(r["window"]), u)) for n, u in (("m1", "1"), ("m2", "2"))):
        sys.exit(0)
sys.exit(1)
EOF
}
if wait_all 100 '[ "$(next_window validator)" -gt "$c" ]' '[ "$(next_window m1)" -gt "$c" ]' rec_ok \
  '[ "$(count validator "published the checkpoint of window")" -gt "$ckpt0" ]'; then
  sleep 0.5 # a sync record being written as it was seen
  bad=()
  for k in validator m1; do
    msg=$(state_loads $k 2>&1) || bad+=("$k: $msg")
    left=$(leftovers $k)
    [ -z "$left" ] || bad+=("$k left $left")
    alive $k || bad+=("$k is not running")
  done
  gsw=$(sed -n 's/^window *//p' "$T/gs.out" | head -n 1)
  [ "${gsw:-0}" -ge "$c" ] 2>/dev/null || bad+=("gauntlet.state is at window ${gsw:-?}, wanted $c or later")
  detail=$($PY - "$D" "$c" <<'EOF'
import json, os, sys
d, c = sys.argv[1], int(sys.argv[2])
seen = {}
def add(w, h, who): seen.setdefault(w, {}).setdefault(h, []).append(who)
rows = [json.loads(l) for l in open(os.path.join(d, "state/validator/windows.jsonl"))]
for r in rows: add(r["window"], r["model_hash"], "validator")
for name, uid in (("validator", 0), ("m1", 1), ("m2", 2)):
    base = os.path.join(d, "stores", name, "debug")
    for w in os.listdir(base) if os.path.isdir(base) else []:
        p = os.path.join(base, w, str(uid))
        if os.path.exists(p): add(int(w), json.load(open(p))["model_hash"], name + "'s record")
bad = [f"window {w}: " + " vs ".join(f"{h[:12]} ({', '.join(who)})" for h, who in hs.items())
       for w, hs in sorted(seen.items()) if len(hs) > 1]
after = [r for r in rows if r["window"] >= c and r.get("evaluated")]
agree = [r["window"] for r in after
         if {"m1's record", "m2's record"} <= set(seen[r["window"]].get(r["model_hash"], []))]
msg = (f"windows {[r['window'] for r in after]} scored after the space returned (uids "
       f"{sorted({x['uid'] for r in after for x in r['evaluated']})}); m1, m2 and the validator hold one model in "
       f"windows {agree}; {len(seen)} windows compared")
if bad: msg += "; " + "; ".join(bad[:4])
if not agree: msg += "; no window after the space returned where all three agree"
print(msg)
sys.exit(1 if bad or not agree else 0)
EOF
  ) || bad+=("$detail")
  if [ ${#bad[@]} -eq 0 ]; then
    ok recovers_when_space_returns
    echo "    node.json: validator at window $(next_window validator), m1 at $(next_window m1) (were $nw0_v, $nw0_m)"
    echo "    $detail"
    grep -- 'published the checkpoint of window' "$D/logs/validator.log" | tail -n 1 | sed 's/^[^ ]* info  /    /'
  else
    fail recovers_when_space_returns "${bad[@]}"
    logs
  fi
else
  fail recovers_when_space_returns "in 100 s after window $c: node.json next_window validator $(next_window validator)," \
    "m1 $(next_window m1); a scored window with both miners' sync records: $(rec_ok && echo yes || echo no);" \
    "checkpoints published since: $(($(count validator 'published the checkpoint of window') - ckpt0))"
  logs
fi

# Never a crash: neither node exited, and no log holds a crash's marks.
# Pass: all three nodes are running at the end and no log has "FORK",
# "stopped:" (a node that cannot go on), "AddressSanitizer" or "runtime error".
bad=()
for k in validator m1 m2; do
  alive $k || bad+=("$k exited: $(tail -n 2 "$D/logs/$k.log" | tr '\n' ' ')")
  hits=$(grep -E 'FORK|stopped:|AddressSanitizer|runtime error' "$D/logs/$k.log" | head -n 2)
  [ -z "$hits" ] || bad+=("$k: $hits")
done
if [ ${#bad[@]} -eq 0 ]; then
  ok never_crashes
  echo "    failed saves logged: validator $(count validator "$FULL_SAVE") state, $(count validator 'saving the scores') scores;" \
    "m1 $(count m1 "$FULL_SAVE") state"
else
  fail never_crashes "${bad[@]}"
  logs
fi
exit 0
