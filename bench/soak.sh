#!/usr/bin/env bash
# soak.sh - the soak (issue 19, scenario 6; `make soak`): a local subnet runs
# SOAK_WINDOWS windows (100) with one validator and 12 miners that join and
# leave on a seeded schedule, and one validator restart half way.  Every
# window it samples each node's RSS (VmRSS) and open file descriptors
# (/proc/PID/fd) about once a second, and the objects and bytes of every
# bucket.  At the end every node is stopped with SIGTERM and:
#   1. RSS is flat after warm-up: for every process that lived at least 12
#      windows, the largest RSS over the last third of its life is at most
#      the largest over its second third plus max(2 MiB, 5 %).  Why that
#      tolerance: a node's RSS moves within a window with what it holds
#      (gathered uploads, evaluation batches, glibc's arenas), by a few
#      hundred KB on the tiny model; a leak of 64 KB a window or more adds
#      2 MiB over the last third of a 100-window run and fails.  The growth
#      rate (least squares over the last two thirds, KB a window) is printed
#      beside it.
#   2. Open file descriptors are exactly bounded: the smallest count seen in
#      each window (what stays open between the window's transient opens: a
#      leaked descriptor raises it for good) over the last third is at most
#      its largest over the second third, for the same processes.
#   3. Buckets are bounded by the retention: once retention_windows windows
#      have passed, every windowed prefix of a bucket (gradients/, debug/,
#      aggregates/, peers/: one object or directory per window) holds at most
#      retention_windows + 3 windows, checkpoints/ at most
#      (retention_windows + checkpoint_interval) / checkpoint_interval + 2
#      checkpoints, and the other objects (start_window, LATEST) do not grow.
#   4. Every state file loads: the validator's gauntlet.state (`tessera
#      gauntlet state`), every node's model (`tessera eval --init`), node.json
#      that vouches for the model beside it (its hash) and a miner's
#      ef.safetensors (every parameter's name, shape and size, all finite),
#      as tests/t_signals.sh checks them.
#   5. The validator processed windows after its restart, all after the last
#      one before it, none twice (windows.jsonl), at least half of those that
#      passed while it ran; every SIGTERM stopped its node with status 0.
#
# Run parameters: 10 s windows (SUBNET_BLOCKS=10, 1 s blocks), 4 inner steps
# a window (the demo's 16 take 4x the CPU), 16 held-out and 16 evaluation
# samples (32 in the demo): a soak tests resources, not learning, and 13
# nodes share this 2-core machine with what else runs, so 100 windows take
# about 18 minutes.  retention_windows 8 (24 by default; at least 2 x
# checkpoint_interval + 1 = 7) so that every bucket reaches its bound within
# the first 12 windows, long before the second third begins.
#
# The schedule (SOAK_SEED, default 1, picks who is stopped when): miners
# m1..m12 start two a window; m11 leaves for good at 35 % of the run and m13
# joins a window later; the validator is stopped with SIGTERM at 50 % and
# restarted a window later; m12 leaves for good at 55 % and m14 joins a
# window later; from window 6 to 85 % of the run, every 4 windows, one of
# m3..m10 that is running is stopped with SIGTERM and restarted 1-3 windows
# later.  m1, m2 (and whoever the seed spares) run throughout.
#
#   BUILD=build bash bench/soak.sh            (make soak)
#   SOAK_WINDOWS=12 bash bench/soak.sh        a short run
#   SUBNET_S3=1 bash bench/soak.sh            buckets in the suite's S3 server
# SOAK_DIR (default $BUILD/soak) keeps the run: logs/, state/, stores/ and
# the samples (soak-nodes.tsv, soak-buckets.tsv).
set -u
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
N=${SOAK_WINDOWS:-100}
SEED=${SOAK_SEED:-1}
RET=8
CI=3
export SUBNET_BLOCKS=${SUBNET_BLOCKS:-10}
export SUBNET_EVAL_SAMPLES=${SUBNET_EVAL_SAMPLES:-16} SUBNET_VAL_SAMPLES=${SUBNET_VAL_SAMPLES:-16}
SUBNET_PARAMS_EXTRA="\"inner_steps\": 4, \"retention_windows\": $RET, \"checkpoint_interval\": $CI,"
SUBNET_QUIET=1
PY=/usr/bin/python3
DIR=${SOAK_DIR:-$BUILD/soak}
# shellcheck source=tools/subnet_lib.sh
source tools/subnet_lib.sh
trap 'subnet_stop_all' EXIT

REPRO="SOAK_WINDOWS=$N SOAK_SEED=$SEED SUBNET_S3=$SUBNET_S3 make soak BUILD=$BUILD"
[ -x "$SUBNET_BIN/tessera-miner" ] || { echo "soak: build first (make BUILD=$BUILD all corpus)"; exit 2; }
[ "$N" -ge 12 ] || { echo "soak: SOAK_WINDOWS must be at least 12"; exit 2; }
NAMES=(validator m1 m2 m3 m4 m5 m6 m7 m8 m9 m10 m11 m12 m13 m14)
echo "# soak: $N windows of $SUBNET_BLOCKS s, 1 validator + 12 miners (14 miner hotkeys), seed $SEED," \
  "retention_windows $RET, checkpoint_interval $CI, stores $([ "$SUBNET_S3" = 1 ] && echo S3 || echo file://)"
echo "# $(hostname), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
T_START=$SECONDS
if ! subnet_setup "$DIR" tiny "${NAMES[@]}"; then
  echo "soak: setup failed: $(tail -n 5 "$DIR/logs/init.log" 2>/dev/null)"
  exit 1
fi
D=$SUBNET_DIR
NS=$D/soak-nodes.tsv BS=$D/soak-buckets.tsv EV=$D/soak-events.tsv
: >"$NS"
: >"$BS"
: >"$EV"
# the chain's window, from its genesis (block time x blocks a window), in us
read -r GT_US WIN_US <<<"$($PY -c 'import json,sys; g=json.load(open(sys.argv[1])); print(round(g["genesis_time"] * 1e6), round(g["block_time"] * 1e6) * int(sys.argv[2]))' "$D/subnet/genesis.json" "$SUBNET_BLOCKS")"
chain_window() { local now=${EPOCHREALTIME/./}; echo $(((now - GT_US) / WIN_US)); }

# ---- the schedule: EVENT[step] = "start NAME" / "stop NAME" ... (seeded)
declare -A EVENT
ev() { EVENT[$1]+="$2 $3;"; }
for i in 0 1 2 3 4 5; do ev $i start "m$((2 * i + 1))"; ev $i start "m$((2 * i + 2))"; done
r() { echo $(( ($1 * N + 50) / 100 )); }
L1=$(r 35); [ "$L1" -ge 7 ] || L1=7
J1=$((L1 + 1))
VS=$(r 50); [ "$VS" -gt "$J1" ] || VS=$((J1 + 1))
VR=$((VS + 1))
L2=$(r 55); [ "$L2" -gt "$VR" ] || L2=$((VR + 1))
J2=$((L2 + 1))
ev "$L1" gone m11; ev "$J1" start m13
ev "$VS" stop validator; ev "$VR" start validator
ev "$L2" gone m12; ev "$J2" start m14
RANDOM=$SEED
declare -A BUSY # a churned miner's stop..restart steps
for ((s = 6; s <= N * 85 / 100; s += 4)); do
  for try in 1 2 3 4 5 6; do
    k=m$((3 + RANDOM % 8))
    back=$((s + 1 + RANDOM % 3))
    clash=0
    for ((x = s; x <= back; x++)); do [ -n "${BUSY[$k.$x]:-}" ] && clash=1; done
    [ $clash = 0 ] && break
  done
  [ $clash = 1 ] && continue
  for ((x = s; x <= back; x++)); do BUSY[$k.$x]=1; done
  ev "$s" stop "$k"
  ev "$back" start "$k"
done

# ---- nodes
declare -A RUN_PID # name -> pid (running)
declare -A RESTARTS
STOP_BAD=()
node_start() {
  [ "${RESTARTS[$1]:-0}" -gt 0 ] && echo "--- restart ---" >>"$D/logs/$1.log"
  RESTARTS[$1]=$((${RESTARTS[$1]:-0} + 1))
  subnet_start "$1"
  RUN_PID[$1]=${SUBNET_PID[$1]}
}
node_stop() { # name: SIGTERM, waits, records the status
  local pid=${RUN_PID[$1]:-} rc
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  wait "$pid"
  rc=$?
  [ "$rc" = 0 ] || STOP_BAD+=("$1 (pid $pid) exited $rc after SIGTERM")
  unset "RUN_PID[$1]" "SUBNET_PID[$1]"
}

# ---- sampling: RSS (kB) and fds of every running node, builtins only
declare -A S_RSS S_FMIN S_FMAX S_N
sample_nodes() {
  local k pid key v rss f
  for k in "${!RUN_PID[@]}"; do
    pid=${RUN_PID[$k]}
    rss=""
    while read -r key v _; do [ "$key" = VmRSS: ] && { rss=$v; break; }; done 2>/dev/null <"/proc/$pid/status"
    [ -n "$rss" ] || continue
    f=(/proc/"$pid"/fd/*)
    f=${#f[@]}
    key=$k.$pid
    [ "${S_RSS[$key]:-0}" -ge "$rss" ] || S_RSS[$key]=$rss
    [ -n "${S_FMIN[$key]:-}" ] && [ "${S_FMIN[$key]}" -le "$f" ] || S_FMIN[$key]=$f
    [ "${S_FMAX[$key]:-0}" -ge "$f" ] || S_FMAX[$key]=$f
    S_N[$key]=$((${S_N[$key]:-0} + 1))
  done
}
flush_nodes() { # step
  local key
  for key in "${!S_N[@]}"; do
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "${key%%.*}" "${key#*.}" "${S_RSS[$key]}" "${S_FMIN[$key]}" \
      "${S_FMAX[$key]}" "${S_N[$key]}" >>"$NS"
  done
  S_RSS=() S_FMIN=() S_FMAX=() S_N=()
}
# buckets: one line per bucket: step, name, objects, bytes, then JSON of
# {prefix: [objects, distinct windows]}
sample_buckets() { # step
  local urls=() k
  for k in "${NAMES[@]}"; do urls+=("$k=$(subnet_store_url "$k")"); done
  $PY - "$1" "$D/stores" "$SUBNET_S3" "$SUBNET_BIN/tessera" "${urls[@]}" >>"$BS" <<'EOF'
import json, os, subprocess, sys
step, root, s3, tessera, urls = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4], sys.argv[5:]
for nu in urls:
    name, url = nu.split("=", 1)
    objs = []
    if s3:
        try:
            out = subprocess.run([tessera, "store", "ls", "--json", url], capture_output=True, text=True, timeout=30).stdout
            objs = [(o["key"], o["size"]) for o in json.loads(out or "[]")]
        except Exception:
            continue
    else:
        top = os.path.join(root, name)
        for dp, _, fs in os.walk(top):
            for f in fs:
                p = os.path.join(dp, f)
                try: objs.append((os.path.relpath(p, top), os.path.getsize(p)))
                except OSError: pass
    pre = {}
    for key, size in objs:
        parts = key.split("/")
        if len(parts) > 1 and parts[1].isdigit():
            o = pre.setdefault(parts[0], [0, set()])
            o[0] += 1
            o[1].add(int(parts[1]))
        else:
            o = pre.setdefault("other", [0, set()])
            o[0] += 1
    print(f"{step}\t{name}\t{len(objs)}\t{sum(s for _, s in objs)}\t" +
          json.dumps({p: [c, len(w), min(w) if w else -1, max(w) if w else -1] for p, (c, w) in pre.items()}))
EOF
}

# ---- the run
W0=$(($(chain_window) + 1))
while [ "$(chain_window)" -lt "$W0" ]; do sleep 0.2; done
node_start validator
echo "# first window $W0; schedule: m11 leaves at step $L1, m13 joins at $J1, validator stopped at $VS and" \
  "restarted at $VR, m12 leaves at $L2, m14 joins at $J2; churn: $(for ((s = 6; s < N; s++)); do
    [[ ${EVENT[$s]:-} == *stop\ m* ]] && printf '%s@%s ' "$(sed 's/.*stop \(m[0-9]*\);.*/\1/' <<<"${EVENT[$s]}")" "$s"; done)"
T_RUN=$SECONDS
for ((i = 0; i < N; i++)); do
  IFS=';' read -ra evs <<<"${EVENT[$i]:-}"
  for e in "${evs[@]}"; do
    read -r what who <<<"$e"
    [ -n "$what" ] || continue
    case $what in
      start) node_start "$who" ;;
      stop | gone) node_stop "$who" ;;
    esac
    printf '%s\t%s\t%s\t%s\n' "$i" "$what" "$who" "$(chain_window)" >>"$EV"
  done
  while [ "$(chain_window)" -lt $((W0 + i + 1)) ]; do
    sample_nodes
    sleep 1
  done
  sample_nodes
  flush_nodes "$i"
  sample_buckets "$i"
  # the progress line
  read -r procs rss fds < <(awk -F'\t' -v s="$i" '$1 == s { n++; if ($4 > r) { r = $4 }; f += $6 } END { printf "%d %.1f %d\n", n, r / 1024, f }' "$NS")
  read -r objs bytes < <(awk -F'\t' -v s="$i" '$1 == s { o += $3; b += $4 } END { printf "%d %.1f\n", o, b / 1048576 }' "$BS")
  printf 'window %d/%d (chain %d): %d processes, max RSS %s MB, fds %d, store objects %d (%s MB), validator at %d windows\n' \
    $((i + 1)) "$N" $((W0 + i)) "$procs" "$rss" "$fds" "$objs" "$bytes" "$(subnet_windows_done)"
done
T_RUN=$((SECONDS - T_RUN))

# ---- stop everything with SIGTERM, then the checks
for k in "${!RUN_PID[@]}"; do [ "$k" = validator ] || node_stop "$k"; done
node_stop validator
SB=$D/soak-state.txt
: >"$SB"
for k in "${NAMES[@]}"; do
  d=$D/state/$k
  [ -d "$d" ] || continue
  {
    printf '%s\t' "$k"
    bad=""
    if [ -f "$d/gauntlet.state" ]; then
      "$SUBNET_BIN/tessera" gauntlet state "$d/gauntlet.state" >"$D/gs-$k.out" 2>&1 || bad+="gauntlet.state does not load: $(tail -n 1 "$D/gs-$k.out"); "
    fi
    # the checks of tools/subnet_lib.sh (node.json vouches for the model, the
    # model evaluates, the error feedback is whole and finite)
    msg=$(subnet_state_loads "$k" strict 2>&1) || bad+="$msg; "
    if [ -z "$bad" ]; then
      files="node.json, model.safetensors"
      [ -f "$d/ef.safetensors" ] && files+=", ef.safetensors"
      [ -f "$d/gauntlet.state" ] && files+=", gauntlet.state"
      msg="next_window $($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["next_window"])' "$d/node.json"); $files"
    fi
    if [ -n "$bad" ]; then printf 'FAIL\t%s\n' "$bad"; else printf 'ok\t%s\n' "$msg"; fi
  } >>"$SB"
done

$PY - "$D" "$N" "$RET" "$CI" "$VS" "$VR" "$T_RUN" "$((SECONDS - T_START))" "$REPRO" "${STOP_BAD[@]}" <<'EOF'
import json, os, re, sys
from collections import defaultdict
d, N, R, CI, VS, VR, t_run, t_all, repro = sys.argv[1], *map(int, sys.argv[2:9]), sys.argv[9]
stop_bad = sys.argv[10:]
fails = []
# --- processes
procs = defaultdict(list)  # (name, pid) -> [(step, rss, fmin, fmax)]
for l in open(os.path.join(d, "soak-nodes.tsv")):
    s, name, pid, rss, fmin, fmax, n = l.split("\t")
    procs[(name, int(pid))].append((int(s), int(rss), int(fmin), int(fmax)))
def slope(xs, ys):
    n = len(xs)
    if n < 2: return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0
print("\n## per process (RSS in MB, fds: smallest count in a window / largest)")
print(f"{'process':<20} {'windows':>9} {'RSS warm-up':>11} {'RSS 2nd 1/3':>11} {'RSS last 1/3':>12} {'growth KB/w':>11} "
      f"{'fds 2nd 1/3':>11} {'fds last 1/3':>12} {'fds max':>7}  verdict")
kinds = defaultdict(list)
judged = 0
for (name, pid), rows in sorted(procs.items(), key=lambda kv: (kv[0][0] != "validator", int(kv[0][0][1:] or 0) if kv[0][0] != "validator" else 0, kv[1][0][0])):
    rows.sort()
    n = len(rows)
    label = f"{name} (pid {pid})"
    span = f"{rows[0][0]}-{rows[-1][0]}"
    if n < 12:
        print(f"{label:<20} {span:>9} {'':>11} {'':>11} {max(r[1] for r in rows) / 1024:>12.1f} {'':>11} {'':>11} "
              f"{max(r[2] for r in rows):>12} {max(r[3] for r in rows):>7}  short-lived ({n} windows): not judged")
        continue
    judged += 1
    a, b = n // 3, 2 * n // 3
    warm, mid, last = rows[:a], rows[a:b], rows[b:]
    rw, rm, rl = (max(r[1] for r in x) for x in (warm, mid, last))
    fm, fl = max(r[2] for r in mid), max(r[2] for r in last)
    fx = max(r[3] for r in rows)
    g = slope([r[0] for r in rows[a:]], [r[1] for r in rows[a:]])
    tol = max(2048, rm * 0.05)
    bad = []
    if rl > rm + tol: bad.append(f"RSS grew {rl - rm} kB (> {tol:.0f} kB)")
    if fl > fm: bad.append(f"fds grew {fm} -> {fl}")
    print(f"{label:<20} {span:>9} {rw / 1024:>11.1f} {rm / 1024:>11.1f} {rl / 1024:>12.1f} {g:>11.1f} {fm:>11} {fl:>12} {fx:>7}  "
          + ("ok" if not bad else "FAIL: " + "; ".join(bad)))
    if bad: fails.append(f"{label}: " + "; ".join(bad))
    kinds["validator" if name == "validator" else "miner"].append((rw, rl, fm, fl, fx, g))
if judged == 0: fails.append("no process lived 12 windows: nothing to judge (run longer)")
for k, v in kinds.items():
    print(f"{k + 's'}: {len(v)} long-lived; RSS at warm-up {min(x[0] for x in v) / 1024:.1f}-{max(x[0] for x in v) / 1024:.1f} MB, "
          f"at the end {min(x[1] for x in v) / 1024:.1f}-{max(x[1] for x in v) / 1024:.1f} MB; growth over the last two thirds "
          f"{min(x[5] for x in v):.1f} to {max(x[5] for x in v):.1f} KB a window; fds {min(x[3] for x in v)}-{max(x[3] for x in v)} "
          f"between windows, at most {max(x[4] for x in v)}")
# --- buckets
bk = defaultdict(list)
for l in open(os.path.join(d, "soak-buckets.tsv")):
    s, name, objs, byts, pre = l.rstrip("\n").split("\t")
    bk[name].append((int(s), int(objs), int(byts), json.loads(pre)))
after = max(R + 3, N // 3)  # windowed prefixes are judged from here on
wbound = R + 3
cbound = (R + CI) // CI + 2
print(f"\n## buckets (objects / MB; bound: {wbound} windows a prefix, {cbound} checkpoints, judged from step {after})")
print(f"{'bucket':<10} {'step ' + str(min(after, N - 1)):>16} {'end':>16} {'max after':>10}  {'prefix windows at most (after step ' + str(after) + ')':<48} verdict")
for name in sorted(bk, key=lambda k: (k != "validator", int(k[1:] or 0) if k != "validator" else 0)):
    rows = sorted(bk[name])
    if not any(r[1] for r in rows): continue
    at = lambda s: next((r for r in rows if r[0] >= s), rows[-1])
    ra, re_ = at(min(after, N - 1)), rows[-1]
    late = [r for r in rows if r[0] >= after]
    bad = []
    spans = defaultdict(int)
    for r in late:
        for p, (c, nw, lo, hi) in r[3].items():
            if p == "other": spans[p] = max(spans[p], c)
            else: spans[p] = max(spans[p], nw)
    for p, v in spans.items():
        if p == "checkpoints" and v > cbound: bad.append(f"{p}/ held {v} checkpoints")
        elif p not in ("checkpoints", "other") and v > wbound: bad.append(f"{p}/ held {v} windows")
    mid = [r for r in rows if N // 3 <= r[0] < 2 * N // 3]
    lst = [r for r in rows if r[0] >= 2 * N // 3]
    if mid and lst:
        om = max(r[3].get("other", [0])[0] for r in mid)
        ol = max(r[3].get("other", [0])[0] for r in lst)
        if ol > om: bad.append(f"other objects grew {om} -> {ol}")
    mx = max((r[1] for r in late), default=0)
    sp = ", ".join(f"{p} {v}" for p, v in sorted(spans.items()))
    print(f"{name:<10} {ra[1]:>6} / {ra[2] / 1048576:>6.2f} {re_[1]:>6} / {re_[2] / 1048576:>6.2f} {mx:>10}  {sp:<48} "
          + ("ok" if not bad else "FAIL: " + "; ".join(bad)))
    if bad: fails.append(f"bucket {name}: " + "; ".join(bad))
tot = defaultdict(lambda: [0, 0])
for name, rows in bk.items():
    for s, o, b, _ in rows: tot[s][0] += o; tot[s][1] += b
steps = sorted(tot)
if steps:
    mid = [tot[s][0] for s in steps if N // 3 <= s < 2 * N // 3]
    print(f"all buckets: {tot[steps[min(after, len(steps) - 1)]][0]} objects ({tot[steps[min(after, len(steps) - 1)]][1] / 1048576:.2f} MB) at step {min(after, len(steps) - 1)}, "
          f"{tot[steps[-1]][0]} ({tot[steps[-1]][1] / 1048576:.2f} MB) at the end; at most {max(t[0] for t in tot.values())} objects")
# --- state files
print("\n## state files (after the SIGTERM of every node)")
for l in open(os.path.join(d, "soak-state.txt")):
    name, verdict, msg = l.rstrip("\n").split("\t", 2)
    print(f"{name:<10} {verdict:<5} {msg}")
    if verdict != "ok": fails.append(f"state of {name}: {msg}")
for s in stop_bad: fails.append(f"stop: {s}")
print(f"clean stops (SIGTERM, exit 0): {'all' if not stop_bad else 'not all: ' + '; '.join(stop_bad)}")
# --- the validator's windows
rows = [json.loads(l) for l in open(os.path.join(d, "state/validator/windows.jsonl"))]
ws = [r["window"] for r in rows]
dup = sorted({w for w in ws if ws.count(w) > 1})
print("\n## the validator")
log = open(os.path.join(d, "logs/validator.log")).read().split("--- restart ---\n")
before = [int(w) for w in re.findall(r"window (\d+) done", log[0])]
after_r = [int(w) for w in re.findall(r"window (\d+) done", log[-1])] if len(log) > 1 else []
last_chain = max(ws) if ws else 0
print(f"processed {len(ws)} windows ({min(ws) if ws else '-'}..{max(ws) if ws else '-'}): {len(before)} before its restart "
      f"(last {max(before) if before else '-'}), {len(after_r)} after it (first {min(after_r) if after_r else '-'})"
      + (f"; windows twice: {dup}" if dup else "; none twice"))
if dup: fails.append(f"the validator processed windows twice: {dup}")
if ws != sorted(ws): fails.append("the validator's windows are out of order")
if len(log) > 1:
    elapsed = N - VR
    if len(after_r) < max(1, elapsed // 2): fails.append(f"the validator processed {len(after_r)} windows in the {elapsed} after its restart")
    if before and after_r and min(after_r) <= max(before): fails.append(f"after its restart it processed window {min(after_r)}, not after {max(before)}")
    m = re.search(r"resumed scores of \d+ uids at window (\d+)", log[-1])
    print(f"after the restart: {'resumed scores at window ' + m.group(1) if m else 'no resumed scores'}")
print(f"\nrun: {t_run} s for {N} windows ({t_run / N:.1f} s a window); {t_all} s in all")
print(f"reproduce: {repro}")
if fails:
    print("\nsoak: FAIL")
    for f in fails: print(f"  {f}")
    sys.exit(1)
print("\nsoak: PASS (RSS and fds flat after warm-up, buckets bounded by the retention, every state file loads, the validator resumed)")
EOF
