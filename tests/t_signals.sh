#!/usr/bin/env bash
# t_signals.sh - SIGTERM and SIGINT stop a node cleanly: the step under way
# and its state write finish, the process exits 0 and says so; a second
# signal during the stop exits at once (128 + its number); the state on disk
# loads, and the restarted nodes resume (README "What a node survives").
#
# One validator and two miners on a local subnet (tiny model, 12 s windows).
# Every wait is on an event (a log line, a file) with a generous deadline, so
# the test holds on a loaded 2-core machine; it takes about two minutes.
set -u
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
T=$(mktemp -d "${TMPDIR:-/tmp}/tessera-signals-XXXXXX")
PY=/usr/bin/python3
SUBNET_QUIET=1
# shellcheck source=tools/subnet_lib.sh
source tools/subnet_lib.sh
trap 'subnet_stop_all; rm -rf "$T"' EXIT

ok() { echo "ok   t_signals/$1"; }
fail() { echo "FAIL t_signals/$1"; shift; for l in "$@"; do echo "    $l"; done; }
logs() { for f in "$SUBNET_DIR"/logs/*.log; do echo "    --- $f"; tail -n 12 "$f" | sed 's/^/    /'; done; }
count() { grep -c -- "$2" "$SUBNET_DIR/logs/$1.log" 2>/dev/null; }

# Waits until the log of $1 holds more than $3 lines matching $2 (deadline $4 s).
wait_log() {
  local deadline=$((SECONDS + $4))
  while [ "$(count "$1" "$2")" -le "$3" ]; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.05
  done
}

# The stop bound: 6 s, half a window.  A clean stop waits for one inner step
# (tiny: well under a second), one miner's evaluation (three losses over 32
# samples), or a state write (milliseconds), plus the 0.2 s at which sleeps
# look at the stop flag; 6 s leaves room for a loaded machine, and a node
# that waited for the window's end or the next window would take longer.
STOP_BOUND=6

# Waits for node $1 (pid $2) to exit within $3 s; sets RC (its exit status,
# or "running" when it outlived the deadline) and SECS (how long it took from
# $4, an EPOCHREALTIME).
await_exit() {
  local deadline=$((SECONDS + $3 + 1)) st
  while st=$(ps -o stat= -p "$2" 2>/dev/null) && [[ $st != Z* ]]; do
    if [ $SECONDS -ge $deadline ]; then RC=running; SECS=">$3"; return; fi
    sleep 0.02
  done
  SECS=$($PY -c "import sys,time; print(f'{time.time() - float(sys.argv[1]):.2f}')" "$4")
  wait "$2"
  RC=$?
  unset "SUBNET_PID[$1]"
}

# Whether a node's state files load: subnet_state_loads (tools/subnet_lib.sh).
state_loads() { subnet_state_loads "$@"; }

if ! subnet_setup "$T/s" tiny validator m1 m2; then
  fail setup "$(tail -n 5 "$T/s/logs/init.log" 2>/dev/null)"
  exit 0
fi
D=$SUBNET_DIR
for k in validator m1 m2; do subnet_start "$k"; done

# The run under way: the validator has processed two windows and both miners
# have saved state after an outer step (so there is a model and an error
# feedback on disk to keep whole).
deadline=$((SECONDS + 180))
while [ "$(subnet_windows_done)" -lt 2 ] || [ "$(count m1 ': outer step')" -lt 1 ] ||
  [ "$(count m2 ': outer step')" -lt 1 ]; do
  if [ $SECONDS -ge $deadline ]; then
    fail run_starts "in 180 s: the validator processed $(subnet_windows_done) windows, m1 made" \
      "$(count m1 ': outer step') outer steps, m2 $(count m2 ': outer step')"
    logs
    exit 0
  fi
  sleep 0.5
done
ok run_starts

# The three signals land in one window: the validator's evaluation of window
# w and the miners' outer step of w both run just after w's acceptance
# window closes.
n0=$(count validator ': evaluating') n1=$(count m1 ': outer step') n2=$(count m2 ': outer step')

# (b) SIGINT to the validator as it starts evaluating a window.
# Pass: it exits 0 within STOP_BOUND s, its log says "stopped on SIGINT",
# and the window it was evaluating is either finished or left out whole
# (no line for it in windows.jsonl), never half done.
if ! wait_log validator ': evaluating' "$n0" 40; then
  fail validator_sigint "the validator started no evaluation in 40 s"
  logs
  exit 0
fi
t0=$EPOCHREALTIME
kill -INT "${SUBNET_PID[validator]}"
vw=$(grep ': evaluating' "$D/logs/validator.log" | tail -n 1 | sed 's/.*window \([0-9]*\): evaluating.*/\1/')

# (a) SIGTERM to m1 right after it logs its outer step of a window: it is
# then publishing its sync record, saving its state or starting the next
# window's training.
# Pass: it exits 0 within STOP_BOUND s, its log says "stopped on SIGTERM",
# and its state (node.json, model, error feedback) loads and agrees.
wait_log m1 ': outer step' "$n1" 20
m1_was=$(tail -n 1 "$D/logs/m1.log" | cut -c 1-160)
t1=$EPOCHREALTIME
kill -TERM "${SUBNET_PID[m1]}"

# (c) m2 gets two signals before its stop can finish: it is frozen (SIGSTOP)
# just after its outer step, sent SIGTERM and SIGINT, and resumed, so both
# are pending when it runs again.  (Sent one after the other to a running
# process, the first stop could be over before the second arrives; the same
# signal twice while pending would count once.)  Which of the two its
# threads take first is the kernel's choice: the first begins the stop, the
# second ends the process.
# Pass: it exits 130 or 143 (128 + the second signal's number: the
# documented forced stop; a clean stop would be 0) within 2 s, its log says
# "second signal: stopping at once" and not "stopped on" (no clean path
# ran), and every state file is whole (atomic writes: each is the old or the
# new one, never a part).
wait_log m2 ': outer step' "$n2" 20
t2=$EPOCHREALTIME
kill -STOP "${SUBNET_PID[m2]}"
kill -TERM "${SUBNET_PID[m2]}"
kill -INT "${SUBNET_PID[m2]}"
kill -CONT "${SUBNET_PID[m2]}"

await_exit validator "${SUBNET_PID[validator]}" $STOP_BOUND "$t0"
v_rc=$RC v_secs=$SECS
await_exit m1 "${SUBNET_PID[m1]}" $STOP_BOUND "$t1"
m1_rc=$RC m1_secs=$SECS
await_exit m2 "${SUBNET_PID[m2]}" 2 "$t2"
m2_rc=$RC m2_secs=$SECS
for k in validator m1 m2; do
  [ -n "${SUBNET_PID[$k]:-}" ] && { kill -KILL "${SUBNET_PID[$k]}" 2>/dev/null; wait "${SUBNET_PID[$k]}" 2>/dev/null; unset "SUBNET_PID[$k]"; }
done

# (a)
bad=()
[ "$m1_rc" = 0 ] || bad+=("exit status $m1_rc after ${m1_secs}s, wanted 0 within ${STOP_BOUND}s")
grep -q "stopped on SIGTERM" "$D/logs/m1.log" || bad+=("no 'stopped on SIGTERM' in its log")
msg=$(state_loads m1 strict 2>&1) || bad+=("$msg")
if [ ${#bad[@]} -eq 0 ]; then
  ok miner_sigterm_exits_0
  echo "    exited 0 in ${m1_secs}s; its last line before the signal: ${m1_was#*Z }"
else fail miner_sigterm_exits_0 "${bad[@]}"; logs; fi

# (b)
bad=()
[ "$v_rc" = 0 ] || bad+=("exit status $v_rc after ${v_secs}s, wanted 0 within ${STOP_BOUND}s")
grep -q "stopped on SIGINT" "$D/logs/validator.log" || bad+=("no 'stopped on SIGINT' in its log")
"$SUBNET_BIN/tessera" gauntlet state "$D/state/validator/gauntlet.state" >"$T/gs.out" 2>&1 ||
  bad+=("tessera gauntlet state: $(tail -n 1 "$T/gs.out")")
msg=$(state_loads validator strict 2>&1) || bad+=("$msg")
if grep -q "window $vw: stopping before the end of its evaluation" "$D/logs/validator.log"; then
  how="left window $vw unscored"
  $PY -c 'import json,sys; sys.exit(any(json.loads(l)["window"] == int(sys.argv[2]) for l in open(sys.argv[1])))' \
    "$D/state/validator/windows.jsonl" "$vw" || bad+=("window $vw was left unscored, yet windows.jsonl has a line for it")
else
  how="finished window $vw first"
  grep -q "window $vw done" "$D/logs/validator.log" || bad+=("window $vw neither finished nor left out")
fi
if [ ${#bad[@]} -eq 0 ]; then
  ok validator_sigint_exits_0
  echo "    exited 0 in ${v_secs}s; $how; gauntlet.state at $(sed -n 's/^window *//p' "$T/gs.out" | head -n 1)"
else fail validator_sigint_exits_0 "${bad[@]}"; logs; fi

# (c)
bad=()
[ "$m2_rc" = 130 ] || [ "$m2_rc" = 143 ] || bad+=("exit status $m2_rc after ${m2_secs}s, wanted 130 or 143 within 2 s")
grep -q "second signal: stopping at once" "$D/logs/m2.log" || bad+=("no 'second signal: stopping at once' in its log")
grep -q "stopped on" "$D/logs/m2.log" && bad+=("its log says 'stopped on': the clean stop ran")
msg=$(state_loads m2 whole 2>&1) || bad+=("$msg")
if [ ${#bad[@]} -eq 0 ]; then
  ok second_signal_stops_at_once
  echo "    exited $m2_rc in ${m2_secs}s; state files whole"
else fail second_signal_stops_at_once "${bad[@]}"; logs; fi

# (d) Restart all three.
# Pass: the validator resumes its scores at the window it saved, then
# processes at least two more windows, all after the last one it had
# processed, none twice (windows.jsonl); m1 resumes its saved state; both
# miners upload again in a window after the restart, and their sync records
# of a window processed after the restart hold the validator's model hash.
gs_window=$(sed -n 's/^window *//p' "$T/gs.out" | head -n 1)
rows_before=$(subnet_windows_done)
m1_next=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["next_window"])' "$D/state/m1/node.json")
for k in validator m1 m2; do echo "--- restart ---" >>"$D/logs/$k.log"; done
for k in validator m1 m2; do subnet_start "$k"; done
deadline=$((SECONDS + 120))
after_up() { sed -n '/^--- restart ---$/,$p' "$D/logs/$1.log" | grep -c ': uploaded'; }
while [ "$(subnet_windows_done)" -lt $((rows_before + 2)) ] || [ "$(after_up m1)" -lt 1 ] ||
  [ "$(after_up m2)" -lt 1 ]; do
  [ $SECONDS -lt $deadline ] || break
  sleep 0.5
done
# the miners publish their sync records of a window about when the validator
# logs it: wait for those of the last window processed (20 s at most)
lw=$(tail -n 1 "$D/state/validator/windows.jsonl" | $PY -c 'import json,sys; print(json.loads(sys.stdin.read())["window"])')
deadline=$((SECONDS + 20))
while { [ ! -f "$D/stores/m1/debug/$lw/1" ] || [ ! -f "$D/stores/m2/debug/$lw/2" ]; } && [ $SECONDS -lt $deadline ]; do
  sleep 0.2
done
detail=$($PY - "$D" "$rows_before" "$gs_window" "$m1_next" <<'EOF'
import json, os, re, sys
d, rows_before, gs_window, m1_next = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
rows = [json.loads(l) for l in open(os.path.join(d, "state/validator/windows.jsonl"))]
ws = [r["window"] for r in rows]
old, new = ws[:rows_before], ws[rows_before:]
msgs = []
if len(new) < 2: msgs.append(f"the validator processed {len(new)} windows after the restart, wanted 2")
if len(set(ws)) != len(ws): msgs.append(f"windows processed twice: {sorted({w for w in ws if ws.count(w) > 1})}")
if ws != sorted(ws): msgs.append(f"windows out of order: {ws}")
if old and new and min(new) <= max(old): msgs.append(f"after the restart window {min(new)}, not after {max(old)}")
vlog = open(os.path.join(d, "logs/validator.log")).read().split("--- restart ---\n")[-1]
m = re.search(r"resumed scores of \d+ uids at window (\d+)", vlog)
if not m: msgs.append("the validator did not resume its scores")
elif m.group(1) != gs_window: msgs.append(f"the validator resumed scores at window {m.group(1)}, saved at {gs_window}")
m1log = open(os.path.join(d, "logs/m1.log")).read().split("--- restart ---\n")[-1]
m = re.search(r"resumed local state: model at window (\d+)", m1log)
if not m or int(m.group(1)) != m1_next: msgs.append(f"m1 did not resume its state at window {m1_next}")
up = {}
for name in ("m1", "m2"):
    log = open(os.path.join(d, f"logs/{name}.log")).read().split("--- restart ---\n")
    before = [int(w) for w in re.findall(r"window (\d+): uploaded", log[0])]
    after = [int(w) for w in re.findall(r"window (\d+): uploaded", log[-1])]
    up[name] = after
    if not after or (before and min(after) <= max(before)):
        msgs.append(f"{name} uploaded windows {after} after the restart (before: up to {max(before, default=None)})")
agree = []
for w, h in [(r["window"], r["model_hash"]) for r in rows[rows_before:]][-2:]:
    for name, uid in (("m1", 1), ("m2", 2)):
        p = os.path.join(d, "stores", name, "debug", str(w), str(uid))
        if os.path.exists(p):
            if json.load(open(p))["model_hash"] != h: msgs.append(f"window {w}: {name}'s model differs from the validator's")
            else: agree.append(f"{name}@{w}")
if not agree: msgs.append("no miner's sync record of a window after the restart to compare")
print(f"windows before {old[-2:]}, after {new}; uploads after: m1 {up['m1']}, m2 {up['m2']}; same model: {' '.join(agree)}"
      + ("; " + "; ".join(msgs) if msgs else ""))
sys.exit(1 if msgs else 0)
EOF
)
if [ $? -eq 0 ]; then ok restart_resumes; echo "    $detail"; else fail restart_resumes "$detail"; logs; fi
exit 0
