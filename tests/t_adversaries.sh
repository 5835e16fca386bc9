#!/usr/bin/env bash
# t_adversaries.sh - the four cheaters of `tessera-miner --adversary` against
# the protocol's DEFAULT scoring parameters (issue 19, scenario 8).
#
# One validator, three honest miners and one miner each of `lazy` (trains on
# pages that are not its own, claims its own), `late` (uploads a second after
# the acceptance window closes), `copycat` (re-signs honest1's upload as its
# own and backdates it) and `garbage` (random bytes behind the codec's magic),
# on a local subnet with the tiny model.  Unlike the demo and t_e2e, the
# "gauntlet" object of params.json is empty (SUBNET_GAUNTLET_DEFAULTS=1): sigma
# 25/3, 8 evaluation samples, copycat thresholds 0.4 / 0.5 / 0.6, copycat
# checks only once the validator's state has applied 20 windows, weights
# every 3 windows and a peer list every 5.  Nothing is tuned here: where a
# default misjudges, a check fails and prints the figures.
#
# copycat_start_windows counts the windows the validator's scoring state has
# applied, from the first window this validator processed (its state's
# "started" window), not from the run's start: the run must go past 20 of
# the validator's windows, so the validator processes WINDOWS (24) windows:
# 20 without copycat checks, then 4 with them.  With 10 s windows
# (SUBNET_BLOCKS 10; the validator's work for a window takes a few seconds
# here) the test takes about five minutes.  Every wait is on an event (the
# validator's exit after its last window, windows.jsonl lines) with a
# generous deadline.
set -u
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
T=$(mktemp -d "${TMPDIR:-/tmp}/tessera-adversaries-XXXXXX")
PY=/usr/bin/python3
SUBNET_QUIET=1
SUBNET_GAUNTLET_DEFAULTS=1
SUBNET_BLOCKS=${TESSERA_ADV_BLOCKS:-10}
# uploads are kept for the whole run (a storage setting, not a scoring one),
# so that the honest miners' overlaps can be measured afterwards
SUBNET_PARAMS_EXTRA='"retention_windows": 40,'
# gathers start 2 s after the acceptance window closes, the protocol's
# default (the demo's 0.5 s): the late miner uploads 1 s after the close, so
# the validator sees its upload and judges it late; with 0.5 s it would look
# before the upload lands and count it missing (charged alike, but not what
# this test is about)
SUBNET_GATHER_DELAY=2
WINDOWS=${TESSERA_ADV_WINDOWS:-24}
# shellcheck source=tools/subnet_lib.sh
source tools/subnet_lib.sh
trap 'subnet_stop_all; rm -rf "$T"' EXIT

ok() { echo "ok   t_adversaries/$1"; }
fail() { echo "FAIL t_adversaries/$1"; shift; for l in "$@"; do echo "    $l"; done; }
logs() { for f in "$SUBNET_DIR"/logs/*.log; do echo "    --- $f"; tail -n 12 "$f" | sed 's/^/    /'; done; }
# check NAME DETAIL-PROGRAM: runs the Python program (stdin) with the results
# directory; exit 0 passes; its output is the detail, printed either way
check() {
  local name=$1 out rc
  out=$($PY - "$T/r" 2>&1)
  rc=$?
  if [ $rc -eq 0 ]; then ok "$name"; sed 's/^/    /' <<<"$out"; else fail "$name" "$out"; fi
}

NAMES=(validator honest1 honest2 honest3 lazy late copycat garbage) # uids 0..7
if ! subnet_setup "$T/s" tiny "${NAMES[@]}"; then
  fail setup "$(tail -n 5 "$T/s/logs/init.log" 2>/dev/null)"
  exit 0
fi
D=$SUBNET_DIR

# default_parameters: the run's "gauntlet" object holds no override, and the
# defaults it then gets are the protocol's (copycat 0.4 / 0.5 / 0.6 from the
# state's 20th window, 8 evaluation samples, sigma 25/3).
mkdir -p "$T/r"
"$SUBNET_BIN/tessera" gauntlet params >"$T/r/defaults.json" 2>&1
cp "$D/params.json" "$T/r/params.json"
check default_parameters <<'EOF'
import json, os, sys
r = sys.argv[1]
g = json.load(open(os.path.join(r, "params.json"))).get("gauntlet")
d = json.load(open(os.path.join(r, "defaults.json")))
want = {"copycat_slash_overlap": 0.4, "copycat_reset_overlap": 0.5, "copycat_ban_overlap": 0.6,
        "copycat_start_windows": 20, "eval_samples": 8, "weights_interval": 3, "peers_interval": 5}
bad = [f"{k} {d.get(k)} (wanted {v})" for k, v in want.items() if d.get(k) != v]
if g != {}: bad.insert(0, f"params.json's gauntlet object is {g}, wanted {{}}")
run = json.load(open(os.path.join(r, "params.json")))
print("; ".join(bad) if bad else "params.json: \"gauntlet\": {}; defaults: " +
      ", ".join(f"{k} {d[k]}" for k in want) + f", openskill_sigma {d.get('openskill_sigma'):.4f}; "
      f"run: upload_grace_s {run['upload_grace_s']}, gather_delay_s {run['gather_delay_s']}")
sys.exit(1 if bad else 0)
EOF

subnet_start validator --max-windows "$WINDOWS"
for k in honest1 honest2 honest3; do subnet_start "$k"; done
subnet_start lazy --adversary lazy
subnet_start late --adversary late
subnet_start copycat --adversary copycat --copy-uid "$(subnet_uid honest1)"
subnet_start garbage --adversary garbage

# run: the validator processes its WINDOWS windows and exits 0, every miner
# runs throughout, and the validator keeps up: consecutive windows, each
# finished ("window W done in X s") well within a window.
VPID=${SUBNET_PID[validator]}
deadline=$((SECONDS + (WINDOWS + 10) * SUBNET_BLOCKS * 2))
died=""
while kill -0 "$VPID" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || break
  for k in "${NAMES[@]:1}"; do
    kill -0 "${SUBNET_PID[$k]}" 2>/dev/null || died+=" $k"
  done
  [ -z "$died" ] || break
  sleep 1
done
if [ -n "$died" ] || kill -0 "$VPID" 2>/dev/null; then
  fail run "${died:+stopped unexpectedly:$died; }the validator processed $(subnet_windows_done) of $WINDOWS windows" \
    "in $((SECONDS - deadline + (WINDOWS + 10) * SUBNET_BLOCKS * 2)) s"
  logs
  exit 0
fi
wait "$VPID"
vrc=$?
unset "SUBNET_PID[validator]"
subnet_stop_all
cp "$D/state/validator/windows.jsonl" "$T/r/windows.jsonl"
cp "$D/logs/validator.log" "$T/r/validator.log"
"$SUBNET_BIN/tessera" report --state-dir "$D/state/validator" --json >"$T/r/report.json" 2>"$T/r/report.err"
"$SUBNET_BIN/tessera" gauntlet state "$D/state/validator/gauntlet.state" >"$T/r/state.txt" 2>&1
echo "$vrc $SUBNET_BLOCKS $WINDOWS" >"$T/r/run"
# the honest miners' overlaps, measured on their stored uploads (every window
# the validator processed; the validator itself logs only pairs at 40 % and
# above)
for w in $($PY -c 'import json,sys; print(" ".join(str(json.loads(l)["window"]) for l in open(sys.argv[1])))' "$T/r/windows.jsonl"); do
  for p in "1 2" "1 3" "2 3"; do
    set -- $p
    a=$D/stores/honest$1/gradients/$w/$1 b=$D/stores/honest$2/gradients/$w/$2
    [ -f "$a" ] && [ -f "$b" ] && "$SUBNET_BIN/tessera" codec overlap --json "$a" "$b" 2>/dev/null
  done
done >"$T/r/overlaps.jsonl"

# Everything below reads $T/r: windows.jsonl (per window: who was evaluated,
# each status, final score, the weights), report.json (`tessera report
# --state-dir`), state.txt (`tessera gauntlet state`), the validator's log.
cat >"$T/r/lib.py" <<'EOF'
import json, os, re, sys
r = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(r, "windows.jsonl"))]
rep = {x["uid"]: x for x in json.load(open(os.path.join(r, "report.json")))}
state_txt = open(os.path.join(r, "state.txt")).read()
m = re.search(r"^started +window (\d+)", state_txt, re.M)
first = int(m.group(1)) if m else rows[0]["window"]
vlog = open(os.path.join(r, "validator.log")).read()
HONEST, LAZY, LATE, COPYCAT, GARBAGE = (1, 2, 3), 4, 5, 6, 7
def weights(row): return {int(k): v for k, v in row["weights"].items()}
last_w = weights(rows[-1])
def statuses(uid): return [e["status"] for row in rows for e in row["evaluated"] if e["uid"] == uid]
def fmt(x): return f"{x:.4g}"
EOF

check run <<'EOF'
import os, sys
exec(open(os.path.join(sys.argv[1], "lib.py")).read())
vrc, blocks, want = map(int, open(os.path.join(r, "run")).read().split())
ws = [row["window"] for row in rows]
done = [float(x) for x in re.findall(r"window \d+ done in ([0-9.]+)s", vlog)]
bad = []
if vrc != 0: bad.append(f"the validator exited {vrc}")
if len(ws) != want: bad.append(f"{len(ws)} windows processed, wanted {want}")
if ws != list(range(ws[0], ws[0] + len(ws))): bad.append(f"windows not consecutive: {ws}")
# the validator starts a window's work when its acceptance window closes (3.5 s
# in) and must be done before the next one closes
if not done or max(done) > blocks - 1: bad.append(f"a window took {max(done, default=0):.1f} s (windows of {blocks} s)")
print(f"{len(ws)} windows ({ws[0]}..{ws[-1]}) of {blocks} s, state started at window {first}; the validator's "
      f"work per window: median {sorted(done)[len(done) // 2]:.1f} s, max {max(done):.1f} s" if done else "no 'done in' lines")
for b in bad: print(b)
sys.exit(1 if bad else 0)
EOF

# lazy_charged: the lazy miner's update helps its own pages no more than
# random ones, so its indicator is a coin flip and its binary moving average
# stays near 0 (below 0.10 it counts as 0 after the 10-window warm-up).
# Pass: at the end its final score and its weight (the validator's last
# weights) are below every honest miner's, and every honest miner has weight.
check lazy_charged <<'EOF'
import os, sys
exec(open(os.path.join(sys.argv[1], "lib.py")).read())
def last_eval(u):
    for row in reversed(rows):
        for e in row["evaluated"]:
            if e["uid"] == u and "binary_ma" in e: return e
    return {}
fin = {u: rep.get(u, {}).get("final_score", 0) for u in (*HONEST, LAZY)}
wt = {u: last_w.get(u, 0) for u in (*HONEST, LAZY)}
bma = {u: last_eval(u).get("binary_ma", 0) for u in (*HONEST, LAZY)}
paid = [row["window"] for row in rows if row["window"] >= first + 10 and weights(row).get(LAZY, 0) > 0]
# the indicator of each evaluation, from the moving average (bma = 0.95 bma + 0.05 ind)
def plus(u):
    prev, ind = 0.0, []
    for row in rows:
        for e in row["evaluated"]:
            if e["uid"] == u and e["status"] == "ok" and "binary_ma" in e:
                ind.append(e["binary_ma"] - 0.95 * prev > 0)
                prev = e["binary_ma"]
    return f"{sum(ind)}/{len(ind)}"
bad = []
if not all(wt[h] > 0 for h in HONEST): bad.append("an honest miner has no weight")
if not fin[LAZY] < min(fin[h] for h in HONEST): bad.append("the lazy miner's final score is not below every honest miner's")
if not wt[LAZY] < min(wt[h] for h in HONEST): bad.append("the lazy miner's weight is not below every honest miner's")
for u, n in ((1, "honest1"), (2, "honest2"), (3, "honest3"), (LAZY, "lazy")):
    print(f"{n} (uid {u}): final {fmt(fin[u])}, weight {fmt(wt[u])}, indicator average {fmt(bma[u])} "
          f"(+1 in {plus(u)} evaluations)")
print(f"lazy weighted in {len(paid)} of the {sum(1 for row in rows if row['window'] >= first + 10)} windows past the warm-up"
      + (f" ({paid})" if paid else ""))
for b in bad: print(b)
sys.exit(1 if bad else 0)
EOF

# late_charged_late: the late miner uploads a second after the acceptance
# window closes (the validator looks a second later).  Pass: the validator
# records at least half of its uploads as "late" (status in windows.jsonl;
# "missing" only where nothing was there), never "ok"; it never has weight in
# any window and its final score is 0.
check late_charged_late <<'EOF'
import os, sys
exec(open(os.path.join(sys.argv[1], "lib.py")).read())
st = statuses(LATE)
paid = [row["window"] for row in rows if weights(row).get(LATE, 0) > 0]
fin = rep.get(LATE, {}).get("final_score", 0)
bad = []
if st.count("late") < len(rows) // 2: bad.append(f"{st.count('late')} uploads recorded as late in {len(rows)} windows")
if st.count("ok"): bad.append(f"{st.count('ok')} uploads accepted as on time")
if paid: bad.append(f"weight in windows {paid}")
if fin > 0: bad.append(f"final score {fin}")
print(f"{len(st)} evaluations: " + ", ".join(f"{st.count(k)} {k}" for k in ("late", "missing", "ok", "invalid", "early") if st.count(k))
      + f"; weight in no window; final {fmt(fin)}; report: {rep.get(LATE, {}).get('penalties', '?')}")
for b in bad: print(b)
sys.exit(1 if bad else 0)
EOF

# copycat_banned: the copycat's uploads are honest1's (100 % of the indices
# in common).  Copycat checks start once the validator's state has applied
# copycat_start_windows (20) windows, counted from the first window this
# validator processed ("started" in its state).  Pass: the copycat is banned
# (report), its first ban (the validator's "uid N banned as a copycat" line;
# a copycat still copying is banned again, which moves ban_until on) came in
# one of the first three windows with checks (windows started + 20 .. + 22),
# never before, and it has no weight in the last window.
check copycat_banned <<'EOF'
import os, sys
exec(open(os.path.join(sys.argv[1], "lib.py")).read())
x = rep.get(COPYCAT, {})
m = re.search(rf"window (\d+): uid {COPYCAT} banned as a copycat until window", vlog)
ban = int(m.group(1)) if m else None
seen = sorted({int(w) for w, a, b, s, later in
               re.findall(r"window (\d+): uploads of uids (\d+) and (\d+) share (\d+)% of their indices; (\d+) appeared later", vlog)
               if {int(a), int(b)} == {1, COPYCAT} and int(later) == COPYCAT and int(s) == 100})
paid_before = [row["window"] for row in rows if row["window"] < first + 20 and weights(row).get(COPYCAT, 0) > 0]
bad = []
if not x.get("banned"): bad.append("not banned")
if ban is None: bad.append("no 'banned as a copycat' line in the validator's log")
if ban is not None and not first + 20 <= ban <= first + 22: bad.append(f"banned at window {ban}, checks start at {first + 20}")
if last_w.get(COPYCAT, 0) > 0: bad.append(f"weight {last_w[COPYCAT]} in the last window")
print(f"state started at window {first}, copycat checks from window {first + 20}; banned at window {ban} "
      f"(report: {x.get('penalties', '?')}); the validator saw its uploads after honest1's, 100 % shared, "
      f"in {len(seen)} windows ({seen[0] if seen else '-'}..{seen[-1] if seen else '-'}); before the checks it "
      f"had weight in {len(paid_before)} of {first + 20 - rows[0]['window']} windows")
for b in bad: print(b)
sys.exit(1 if bad else 0)
EOF

# garbage_invalid: the garbage sender uploads random bytes behind the codec's
# magic.  Pass: every evaluation of it is "invalid" (at least half the
# windows), the report counts them, and it never has weight.
check garbage_invalid <<'EOF'
import os, sys
exec(open(os.path.join(sys.argv[1], "lib.py")).read())
st = statuses(GARBAGE)
reasons = [e.get("reason", "") for row in rows for e in row["evaluated"] if e["uid"] == GARBAGE]
paid = [row["window"] for row in rows if weights(row).get(GARBAGE, 0) > 0]
bad = []
if len(st) < len(rows) // 2: bad.append(f"evaluated in {len(st)} of {len(rows)} windows")
if any(s != "invalid" for s in st): bad.append(f"statuses {st}")
if not rep.get(GARBAGE, {}).get("invalid", 0) > 0: bad.append("the report counts no invalid upload")
if paid: bad.append(f"weight in windows {paid}")
print(f"{st.count('invalid')} of {len(st)} evaluations invalid (last: \"{reasons[-1] if reasons else ''}\"); "
      f"report: {rep.get(GARBAGE, {}).get('invalid')} invalid; weighted in {len(paid)} windows")
for b in bad: print(b)
sys.exit(1 if bad else 0)
EOF

# honest_not_copycats: at the default thresholds (slash 0.4, reset 0.5, ban
# 0.6) no honest miner is charged as a copycat once the checks run.  Honest
# miners of the tiny model share up to 45 % of their top-k indices in the
# first windows (why Templar waits 20 windows) and about 12 % later.  Pass: no
# honest uid has a copycat slash, reset or ban (report, state) nor is banned.
# The detail gives the honest pairs' overlaps measured on their uploads
# (tessera codec overlap) before and after the checks start.
check honest_not_copycats <<'EOF'
import os, sys
exec(open(os.path.join(sys.argv[1], "lib.py")).read())
ov = [json.loads(l) for l in open(os.path.join(r, "overlaps.jsonl")) if l.strip()]
def span(sel):
    v = [o["overlap"] for o in ov if sel(o["window"])]
    return f"max {100 * max(v):.0f} %, mean {100 * sum(v) / len(v):.0f} % ({len(v)} pairs)" if v else "no pairs"
logged = [(int(w), int(a), int(b), int(s)) for w, a, b, s in
          re.findall(r"window (\d+): uploads of uids (\d+) and (\d+) share (\d+)%", vlog)
          if int(a) in HONEST and int(b) in HONEST]
bad = []
for h in HONEST:
    x = rep.get(h, {})
    if x.get("banned") or "copycat" in x.get("penalties", ""): bad.append(f"uid {h}: {x.get('penalties')}")
    m = re.search(rf"^ +{h} .* (\d+)/(\d+)/(\d+)/(\d+)/(\d+)/(\d+)/(\d+)/(\d+)/(\d+) ", state_txt, re.M)
    if m and any(int(m.group(k)) for k in (7, 8, 9)): bad.append(f"uid {h}: copycat slash/reset/ban {m.group(7)}/{m.group(8)}/{m.group(9)}")
others = [f"uid {u}: {rep[u]['penalties']}" for u in (LAZY, LATE, GARBAGE) if "copycat" in rep.get(u, {}).get("penalties", "")]
print(f"honest pairs' overlap: first 3 windows {span(lambda w: w < first + 3)}; windows {first}..{first + 19} "
      f"{span(lambda w: w < first + 20)}; with checks ({first + 20}..) {span(lambda w: w >= first + 20)}")
print(f"honest pairs at 40 % or more (validator's log): {len(logged)}, "
      f"{len([l for l in logged if l[0] >= first + 20])} with checks on" + (f" {logged[:6]}" if logged else ""))
if others: print("other uids charged as copycats: " + "; ".join(others))
for b in bad: print(b)
sys.exit(1 if bad else 0)
EOF
exit 0
