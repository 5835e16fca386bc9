#!/usr/bin/env bash
# t_clock_skew.sh - a miner whose clock is off (issue 19, scenario 3): its
# uploads stay inside the acceptance window where the grace allows and are
# charged late where not; a miner checks its own upload against the store's
# date (LastModified) and T(w+1), re-uploads one dated early once the window
# is open, warns with the measured offset, and from then on moves its upload
# and gather by that offset (README "What a node survives").
#
# A validator and five miners on a local subnet (tiny model, 1 s blocks,
# 12-block windows, upload_grace_s 3, upload_delay_s 0.5).  Three miners run
# under libfaketime with a fixed offset: b2 2 s behind, b5 5 s behind, a5 5 s
# ahead; m1 and m2 are honest and on time.  On a local subnet a node's view
# of the current block comes from its own clock, so without a correction b2
# uploads 2.5 s into the window (inside the 3 s grace), b5 5.5 s in (late)
# and a5 4.5 s before it opens (early).  The store is a file:// bucket: its
# LastModified is the file's mtime, stamped by the kernel's (real) clock,
# which stands for the store's clock.
#
# libfaketime options: FAKETIME="-5s" shifts CLOCK_REALTIME (time, gettimeofday,
# clock_gettime) and timed waits; FAKETIME_DONT_FAKE_MONOTONIC=1 keeps
# CLOCK_MONOTONIC real (a skewed wall clock does not move the monotonic one;
# the logger's elapsed times use it); NO_FAKE_STAT=1 passes stat() through
# unaltered, so that the miner reads the store's date as the store wrote it
# (by default libfaketime shifts file times by the same offset, which would
# hide the skew from the miner, as no real store would).  Sleeps are relative
# and unaffected.
#
# Every wait is on an event (a line of windows.jsonl) with a generous
# deadline; the test takes about two and a half minutes.
set -u
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
T=$(mktemp -d "${TMPDIR:-/tmp}/tessera-skew-XXXXXX")
PY=/usr/bin/python3
SUBNET_QUIET=1
# shellcheck source=tools/subnet_lib.sh
source tools/subnet_lib.sh
trap 'subnet_stop_all; rm -rf "$T"' EXIT

ok() { echo "ok   t_clock_skew/$1"; }
fail() { echo "FAIL t_clock_skew/$1"; shift; for l in "$@"; do echo "    $l"; done; }
logs() { for f in "$SUBNET_DIR"/logs/*.log; do echo "    --- $f"; tail -n 12 "$f" | sed 's/^/    /'; done; }

FTLIB=/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1
if [ ! -f "$FTLIB" ]; then
  # not an allowed skip in tests/run.sh: the suite's set-up installs it
  echo "skip t_clock_skew/all"
  echo "    skipped: no $FTLIB (Debian package faketime)"
  exit 0
fi
FT="LD_PRELOAD=$FTLIB FAKETIME_DONT_FAKE_MONOTONIC=1 NO_FAKE_STAT=1"

# (a) libfaketime does what the test needs of it.
# Pass: under each miner's settings the wall clock reads its offset (within
# 0.3 s) from the real one, CLOCK_MONOTONIC is the real one (within 0.3 s),
# and stat() of a file written just now gives its real mtime (within 0.3 s).
touch "$T/probe"
bad=() seen=()
for off in -2 -5 +5; do
  out=$(env LD_PRELOAD="$FTLIB" FAKETIME_DONT_FAKE_MONOTONIC=1 NO_FAKE_STAT=1 FAKETIME="${off}s" $PY -c '
import os, sys, time
print(time.time(), time.clock_gettime(time.CLOCK_MONOTONIC), os.stat(sys.argv[1]).st_mtime)' "$T/probe")
  real=$($PY -c 'import os, sys, time; print(time.time(), time.clock_gettime(time.CLOCK_MONOTONIC), os.stat(sys.argv[1]).st_mtime)' "$T/probe")
  msg=$($PY - "$off" "$out" "$real" <<'EOF'
import sys
off = float(sys.argv[1]); f = [float(x) for x in sys.argv[2].split()]; r = [float(x) for x in sys.argv[3].split()]
w, m, s = f[0] - r[0], f[1] - r[1], f[2] - r[2]
print(f"{off:+.0f}s: wall {w:+.2f}s monotonic {m:+.2f}s stat {s:+.2f}s")
sys.exit(0 if abs(w - off) < 0.3 and abs(m) < 0.3 and abs(s) < 0.01 else 1)
EOF
  ) || bad+=("$msg")
  seen+=("$msg")
done
if [ ${#bad[@]} -eq 0 ]; then ok faketime_offsets; echo "    ${seen[*]}"; else fail faketime_offsets "${bad[@]}"; exit 0; fi

if ! subnet_setup "$T/s" tiny validator m1 m2 b2 b5 a5; then
  fail setup "$(tail -n 5 "$T/s/logs/init.log" 2>/dev/null)"
  exit 0
fi
D=$SUBNET_DIR
SUBNET_ENV[b2]="$FT FAKETIME=-2s"
SUBNET_ENV[b5]="$FT FAKETIME=-5s"
SUBNET_ENV[a5]="$FT FAKETIME=+5s"
for k in validator m1 m2 b2 b5 a5; do subnet_start "$k"; done

# The run: the validator's record (windows.jsonl) holds three windows after
# the first one every miner uploaded for (the first is the skewed miners'
# uncorrected upload; the later ones corrected), and the miners' sync records
# of the last recorded window are out.
analyse() {
  $PY - "$D" "$@" <<'EOF'
import json, os, re, sys
d = sys.argv[1]
mode = sys.argv[2] if len(sys.argv) > 2 else "report"
names = {1: "m1", 2: "m2", 3: "b2", 4: "b5", 5: "a5"}
rows = []
p = os.path.join(d, "state/validator/windows.jsonl")
if os.path.exists(p):
    rows = [json.loads(l) for l in open(p) if l.strip()]
uploads = {}
for uid, name in names.items():
    log = open(os.path.join(d, f"logs/{name}.log")).read()
    uploads[name] = sorted({int(w) for w in re.findall(r"window (\d+): uploaded", log)})
first_all = max((u[0] for u in uploads.values() if u), default=None) if all(uploads.values()) else None
later = [r for r in rows if first_all is not None and r["window"] > first_all]
if mode == "wait":
    sys.exit(0 if len(later) >= 3 else 1)
# where each upload's object is dated (its mtime: the store's clock) against
# T(w+1) = genesis_time + (w + 1) * blocks_per_window * block_time
g = json.load(open(os.path.join(d, "subnet/genesis.json")))
dates = {}
for uid, name in names.items():
    for w in uploads[name]:
        p = os.path.join(d, "stores", name, "gradients", str(w), str(uid))
        if os.path.exists(p):
            t = g["genesis_time"] + (w + 1) * g["blocks_per_window"] * g["block_time"]
            dates.setdefault(name, {})[str(w)] = round(os.stat(p).st_mtime - t, 2)
print(json.dumps({"rows": rows, "uploads": uploads, "first_all": first_all, "dates": dates}))
EOF
}
deadline=$((SECONDS + 170))
until analyse wait; do
  if [ $SECONDS -ge $deadline ]; then
    fail run "in 170 s the validator recorded $(subnet_windows_done) windows; uploads: $(analyse report | $PY -c 'import json,sys; print(json.load(sys.stdin)["uploads"])')"
    logs
    exit 0
  fi
  sleep 0.5
done
sleep 2 # the miners' sync records of the last recorded window
"$SUBNET_BIN/tessera" gauntlet state "$D/state/validator/gauntlet.state" >"$T/gs.out" 2>&1
subnet_stop_all
analyse report >"$T/run.json"

# Each check reads the validator's record, the gauntlet state and the logs.
check() { # name -> prints detail lines; returns 1 on failure
  $PY - "$D" "$T/run.json" "$T/gs.out" "$1" <<'EOF'
import json, os, re, sys
d, run, gs, check = sys.argv[1], json.load(open(sys.argv[2])), open(sys.argv[3]).read(), sys.argv[4]
names = {1: "m1", 2: "m2", 3: "b2", 4: "b5", 5: "a5"}
uid_of = {v: k for k, v in names.items()}
rows, uploads, dates = run["rows"], run["uploads"], run["dates"]
def dated(name):
    return "LastModified - T(w+1) " + " ".join(f"{w}:{o:+.2f}s" for w, o in sorted(dates.get(name, {}).items(), key=lambda x: int(x[0])))
def statuses(name):
    """[(window, status, reason)] of the validator's record, from the miner's first upload on"""
    out = []
    for r in rows:
        if not uploads[name] or r["window"] < uploads[name][0]: continue
        for x in r.get("evaluated", []):
            if x["uid"] == uid_of[name]: out.append((r["window"], x["status"], x.get("reason", "")))
    return out
def counts(name):
    """penalty counts (miss, early, late) from `tessera gauntlet state`"""
    for line in gs.splitlines():
        f = line.split()
        if f and f[0] == str(uid_of[name]) and len(f) >= 11:
            c = f[9].split("/")
            return int(c[0]), int(c[1]), int(c[2])
    return None
def log(name): return open(os.path.join(d, f"logs/{name}.log")).read()
def offsets(name):
    return [(m.group(1), float(m.group(2)), m.group(3)) for m in
            re.finditer(r"(window \d+: uid \d+: [^\n]*?)\(clock about ([0-9.]+) s (ahead of|behind) the store's\)", log(name))]
def inside(name): return all(0 <= o <= 3.0 for o in dates.get(name, {}).values()) and dates.get(name)
def fmt(st): return " ".join(f"{w}:{s}" for w, s, _ in st)
msgs, info = [], []
if check == "honest_unaffected":
    # Pass: m1 and m2 are judged "ok" in every recorded window from their
    # first upload on (at least 4), the gauntlet charged them no missing,
    # early or late upload, and neither logged a clock offset.
    for name in ("m1", "m2"):
        st = statuses(name)
        info.append(f"{name}: {fmt(st)}; gauntlet miss/early/late {counts(name)}; {dated(name)}")
        if len(st) < 4 or any(s != "ok" for _, s, _ in st): msgs.append(f"{name} is not ok in every window")
        if counts(name) != (0, 0, 0): msgs.append(f"{name} was charged {counts(name)}")
        if "clock about" in log(name): msgs.append(f"{name} logged a clock offset")
        if not inside(name): msgs.append(f"{name}'s uploads are not all dated inside [T(w+1), T(w+1) + 3 s]")
elif check == "behind_2s_inside_grace":
    # Pass: b2 (2 s behind: its first upload lands 2.5 s into the 3 s grace)
    # is "ok" in every recorded window (at least 4), no early or late charge;
    # its log measures its offset as 2 s behind (1.5 to 2.5 s).
    st, off = statuses("b2"), offsets("b2")
    info.append(f"b2: {fmt(st)}; gauntlet miss/early/late {counts('b2')}; {dated('b2')}")
    info += [f"b2 log: {t}(clock about {o} s {a} the store's)" for t, o, a in off[:1]]
    if len(st) < 4 or any(s != "ok" for _, s, _ in st): msgs.append("b2 is not ok in every window")
    if not inside("b2"): msgs.append("b2's uploads are not all dated inside [T(w+1), T(w+1) + 3 s]")
    c = counts("b2")
    if not c or c[1] or c[2]: msgs.append(f"b2 was charged early/late: {c}")
    m = re.search(r"clock about ([0-9.]+) s behind the store's; correcting", log("b2"))
    if not m or not 1.5 <= float(m.group(1)) <= 2.5: msgs.append("b2 did not measure its clock as about 2 s behind")
    else: info.append(f"b2 measured {m.group(1)} s behind; corrected later windows")
elif check == "behind_5s_charged_then_corrected":
    # Pass: b5's first upload is dated more than the 3 s grace after T(w+1)
    # (its object's mtime: about 5.5 s) and the validator's record charges
    # that window: "late", or "missing" when the object came after the
    # validator had looked (PROTOCOL.md 2: a late upload counts as missing);
    # the gauntlet state's missing + late count equals the number of such
    # windows (at least 1) and it has no early one; the miner's log says so
    # with the measured offset (4.5 to 5.5 s behind); every later window (at
    # least 2) is dated inside [T(w+1), T(w+1) + 3 s] and "ok": the miner
    # moved its upload by the offset.
    st = statuses("b5")
    info.append(f"b5: {fmt(st)}; gauntlet miss/early/late {counts('b5')}; {dated('b5')}")
    charged = [w for w, s, _ in st if s in ("late", "missing")]
    info += [f"validator: window {w}: {s}" + (f" ({r})" if r else "") for w, s, r in st if s in ("late", "missing")][:1]
    dd = dates.get("b5", {})
    if not st or st[0][1] not in ("late", "missing"): msgs.append("b5's first upload is not charged")
    elif not dd.get(str(st[0][0]), 0) > 3.0: msgs.append("b5's first upload is not dated after the grace")
    if len(st) < 3 or any(s != "ok" for _, s, _ in st[1:]): msgs.append("b5's later uploads are not all ok")
    if any(not 0 <= dd.get(str(w), -1) <= 3.0 for w, _, _ in st[1:]): msgs.append("b5's later uploads are not all dated inside the window")
    c = counts("b5")
    if not c or c[0] + c[2] != len(charged) or not charged or c[1]: msgs.append(f"gauntlet count {c}, charged windows {charged}")
    m = re.search(r"(window \d+: uid 4: upload dated [0-9.]+s after the acceptance window closed \(clock about ([0-9.]+) s behind the store's\): validators count it as missing \(too late\))", log("b5"))
    if not m or not 4.5 <= float(m.group(2)) <= 5.5: msgs.append("b5 did not log its late upload with an offset of about 5 s behind")
    else: info.append(f"b5 log: {m.group(1)}")
    if "correcting training end, upload and gather times by -" not in log("b5"): msgs.append("b5 did not log its correction")
elif check == "ahead_5s_reuploads":
    # Pass: a5's first upload is dated before the acceptance window (its log
    # says so, 4 to 5.5 s ahead) and is put again once the window is open
    # ("re-upload dated ... into the acceptance window"); the validator
    # judges a5 "ok" in every recorded window (at least 4) and the gauntlet
    # charged no early or late upload; the miner logs its correction
    # (+4 to +5.5 s) and after the first window no upload is dated early
    # (the correction moved them).
    st = statuses("a5")
    info.append(f"a5: {fmt(st)}; gauntlet miss/early/late {counts('a5')}; {dated('a5')}")
    if len(st) < 4 or any(s != "ok" for _, s, _ in st): msgs.append("a5 is not ok in every window")
    if not inside("a5"): msgs.append("a5's uploads (the last put of each) are not all dated inside [T(w+1), T(w+1) + 3 s]")
    c = counts("a5")
    if not c or c[1] or c[2]: msgs.append(f"a5 was charged early/late: {c}")
    early = re.findall(r"window (\d+): uid 5: upload dated ([0-9.]+)s before the acceptance window opened \(clock about ([0-9.]+) s ahead of the store's\)", log("a5"))
    re_up = re.findall(r"window (\d+): uid 5: re-upload dated ([0-9.]+)s into the acceptance window", log("a5"))
    if not early or not 4.0 <= float(early[0][2]) <= 5.5: msgs.append(f"a5 did not log an early upload about 5 s ahead: {early}")
    else: info.append(f"a5 log: window {early[0][0]}: dated {early[0][1]}s before the window opened, clock about {early[0][2]} s ahead")
    if not re_up or not early or re_up[0][0] != early[0][0]: msgs.append(f"a5 did not re-upload inside the window: {re_up}")
    else: info.append(f"a5 log: window {re_up[0][0]}: re-upload dated {re_up[0][1]}s into the acceptance window")
    if len(early) != 1: msgs.append(f"a5 uploaded early {len(early)} times (wanted once, before the correction)")
    m = re.search(r"clock about ([0-9.]+) s ahead of the store's; correcting [^\n]*", log("a5"))
    if not m: msgs.append("a5 did not log its correction")
    else: info.append(f"a5 log: {m.group(0)}")
elif check == "models_agree":
    # Pass: in the last two recorded windows every miner's sync record
    # (stores/NAME/debug/W/UID) holds the validator's model hash, and no
    # miner logged a fork.
    agree = []
    for r in rows[-2:]:
        for uid, name in names.items():
            p = os.path.join(d, "stores", name, "debug", str(r["window"]), str(uid))
            if not os.path.exists(p): msgs.append(f"window {r['window']}: no sync record from {name}")
            elif json.load(open(p))["model_hash"] != r["model_hash"]: msgs.append(f"window {r['window']}: {name}'s model differs")
            else: agree.append(f"{name}@{r['window']}")
        if "forked" in "".join(log(n) for n in names.values()): msgs.append("a miner logged a fork")
    info.append(f"same model as the validator ({rows[-1]['model_hash'][:16]}...): {' '.join(agree)}")
for l in info + msgs: print(l)
sys.exit(1 if msgs else 0)
EOF
}
for c in honest_unaffected behind_2s_inside_grace behind_5s_charged_then_corrected ahead_5s_reuploads models_agree; do
  if detail=$(check "$c" 2>&1); then ok "$c"; else fail "$c"; any_failed=1; fi
  echo "$detail" | sed 's/^/    /'
done
[ "${any_failed:-0}" = 1 ] && logs
grep -q . "$T/gs.out" && sed -n '1,2p' "$T/gs.out" | sed 's/^/    gauntlet state: /'
exit 0
