#!/usr/bin/env bash
# t_net.sh - a subnet on a real (if small) network, through a real network's
# faults (README "What a node survives"; issue scenarios 1, 2 and 7).
#
# Every node and the S3 server run on hosts of their own: network namespaces
# joined by veth links to one bridge (tests/net/hosts.sh), the server behind
# a fault-injecting TCP proxy (tests/net/faultproxy.py; these kernels have no
# netem).  One validator (debug logging) and four miners (tiny model, 12 s
# windows, a gather tier of 3 with 2 reserves):
#   m2  a slow, lossy link for the whole run: 300 ms each way, 2 % of its
#       segments lost (each costs a retransmission);
#   m3 or m4 (whichever is a gather peer then) cut from the network for two
#       windows: its uploads are missing, a reserve takes its place in the
#       gather, and once back it catches up and earns again;
#   everyone: the S3 server unreachable (its link down) for a whole window,
#       then a window in which it answers every request "503";
#   m5  started with --no-allow-local-peers: it refuses the peers' http://
#       buckets, says so with the uid and the reason, and keeps running.
# Throughout, the validator's and m1's /metrics are scraped every second.
# At the end: no node exited, every state file loads, the validator's
# record of each window matches what happened, and every model agrees.
#
# Needs root (network namespaces); says it was skipped otherwise.  About
# four minutes; every wait is on an event with a generous deadline.
set -u
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
PY=/usr/bin/python3
NAME=t_net
ok() { echo "ok   $NAME/$1"; }
fail() { echo "FAIL $NAME/$1"; shift; for l in "$@"; do echo "    $l"; done; }
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null; then
  echo "skip $NAME/network_faults"
  echo "    not root, or no iproute2: the test hosts are network namespaces"
  exit 0
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/tessera-net-XXXXXX")
SUBNET_QUIET=1
SUBNET_NETNS=n$$
# a gather tier of 3 with 2 reserves: with four miners, a reserve is there to
# replace a missing gather peer
SUBNET_GAUNTLET_EXTRA='"gather_peers": 3, "reserve_peers": 2, "newcomer_slots": 2,'
# shellcheck source=tools/subnet_lib.sh
source tools/subnet_lib.sh
SCRAPER=""
cleanup() {
  [ -n "$SCRAPER" ] && kill "$SCRAPER" 2>/dev/null
  subnet_stop_all
  [ "${KEEP:-0}" = 1 ] || rm -rf "$T"
}
trap cleanup EXIT

logs() { for f in "$SUBNET_DIR"/logs/*.log; do echo "    --- $f"; tail -n 15 "$f" | sed 's/^/    /'; done; }
status_json() { "$SUBNET_BIN/tessera" localnet status --dir "$SUBNET_DIR/subnet" --json; }
chain_window() { status_json | $PY -c 'import json,sys; print(json.load(sys.stdin)["window"])'; }
window_time() { # the wall-clock time window $1 starts (its first block)
  status_json | $PY -c 'import json,sys; s=json.load(sys.stdin); print(s["next_window_time"] + (int(sys.argv[1]) - s["window"] - 1) * s["block_time"] * s["blocks_per_window"])' "$1"
}
sleep_until() { $PY -c 'import sys,time; time.sleep(max(0, float(sys.argv[1]) - time.time()))' "$1"; }
last_window() { # the newest window the validator has processed (-1 before any)
  local f=$SUBNET_DIR/state/validator/windows.jsonl
  [ -s "$f" ] || { echo -1; return; }
  tail -n 1 "$f" | $PY -c 'import json,sys; print(json.loads(sys.stdin.read())["window"])'
}
wait_processed() { # window timeout: until the validator has processed `window`
  local deadline=$((SECONDS + $2))
  while [ "$(last_window)" -lt "$1" ]; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}
alive() { # every node still running: prints the ones that exited
  local k st out=()
  for k in "${!SUBNET_PID[@]}"; do
    st=$(ps -o stat= -p "${SUBNET_PID[$k]}" 2>/dev/null) && [[ $st != Z* ]] || out+=("$k")
  done
  echo "${out[*]}"
}

if ! subnet_setup "$T/n" tiny validator m1 m2 m3 m4 m5; then
  echo "FAIL $NAME/setup"
  tail -n 5 "$T/n/logs/init.log" 2>/dev/null | sed 's/^/    /'
  exit 0
fi
D=$SUBNET_DIR

# ---- the run: m2 on its slow, lossy link from the start
subnet_fault m2 '{"delay_ms": 300, "loss": 0.02}'
subnet_start validator --log-level debug --metrics-port 9100
subnet_start m1 --log-level debug --metrics-port 9100
for k in m2 m3 m4; do subnet_start "$k" --metrics-port 9100; done

# Scrapes /metrics of the validator and the miners every second (each on its
# own host, port 9100 of its loopback): one file per scrape (named NODE.N), and
# a line per attempt with the time.
scrape() {
  local n=0 k
  mkdir -p "$T/metrics"
  while :; do
    for k in validator m1 m2 m3 m4; do
      if net_exec "$k" curl -s -m 2 http://127.0.0.1:9100/metrics >"$T/metrics/$k.$n" 2>/dev/null; then
        echo "$k $n ok $EPOCHREALTIME"
      else
        echo "$k $n failed $EPOCHREALTIME"
        rm -f "$T/metrics/$k.$n"
      fi
    done >>"$T/metrics/attempts"
    n=$((n + 1))
    sleep 1
  done
}
scrape &
SCRAPER=$!

if ! wait_processed 3 300; then
  fail run_starts "the validator processed windows up to $(last_window) in 300 s"
  logs
  exit 0
fi
ok run_starts

UIDS='{"validator": 0, "m1": 1, "m2": 2, "m3": 3, "m4": 4, "m5": 5}'
VSTORE=$(subnet_store_url validator)
# The validator's peer list in force for window $1, as JSON
# {"window": W, "gather": [...], "reserve": [...]}.
peers_for() {
  local key
  key=$(net_exec s3 "$SUBNET_BIN/tessera" store ls "$VSTORE" peers/ 2>/dev/null |
    $PY -c 'import sys; w=int(sys.argv[1]); ks=[int(l.split()[-1].split("/")[1]) for l in sys.stdin if "peers/" in l]; ks=[k for k in ks if k <= w]; print(max(ks) if ks else "")' "$1")
  [ -n "$key" ] || return 1
  net_exec s3 "$SUBNET_BIN/tessera" store get "$VSTORE" "peers/$key" 2>/dev/null
}

# m5 refuses the peers' http:// buckets (--no-allow-local-peers), from now on
subnet_start m5 --no-allow-local-peers

# ---- 2. a gather peer cut from the network for two windows
# The victim is m3 or m4 in the gather tier of the list in force, in a window
# whose reserves hold a miner with a healthy link (m1, or the other of m3/m4):
# m2's uploads come over the slow link and m5 has only just started, so a list
# whose reserves are only those two may have no reserve to offer. Up to four
# windows are tried.
c=$(chain_window)
victim=""
for W in $((c + 1)) $((c + 2)) $((c + 3)) $((c + 4)); do
  sleep_until "$($PY -c 'import sys; print(float(sys.argv[1]) + 1)' "$(window_time $W)")"
  pl=$(peers_for $W) || continue
  victim=$($PY -c '
import json, sys
p, u = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for n in ("m3", "m4"):
    healthy = {u[h] for h in ("m1", "m3", "m4") if h != n}
    if u[n] in p["gather"] and healthy & set(p.get("reserve", [])):
        print(n); break
' "$pl" "$UIDS")
  echo "    window $W: $($PY -c 'import json,sys; p=json.loads(sys.argv[1]); print("gather", p["gather"], "reserve", p.get("reserve", []))' "$pl"); victim: ${victim:-none}"
  [ -n "$victim" ] && break
done
if [ -z "$victim" ]; then
  fail cut_link_charged_and_replaced_by_reserve "no window $((c + 1))..$((c + 4)) had m3 or m4 in its gather tier and a healthy miner in its reserves"
  victim=m4 no_pick=1
fi
echo "    cutting $victim in window $W"
subnet_link "$victim" down
cut_at=$W
sleep_until "$($PY -c 'import sys; print(float(sys.argv[1]) + 1)' "$(window_time $((W + 2)))")"
subnet_link "$victim" up
echo "    $victim back at window $(chain_window)"

# ---- 1. the S3 server unreachable for a whole window, then answering 503
X=$(( $(chain_window) + 1 ))
# from 3 s into window X: the uploads of X-1 (made 0.5 s into X; m2's take
# about 1.5 s on its link) are in
sleep_until "$($PY -c 'import sys; print(float(sys.argv[1]) + 3)' "$(window_time $X)")"
subnet_link s3 down
echo "    S3 down from window $X"
sleep_until "$($PY -c 'import sys; print(float(sys.argv[1]) + 6)' "$(window_time $((X + 1)))")"
subnet_link s3 up
Y=$((X + 2))
sleep_until "$($PY -c 'import sys; print(float(sys.argv[1]) + 3)' "$(window_time $Y)")"
subnet_fault all '{"mode": "503"}'
echo "    S3 answering 503 from window $Y"
sleep_until "$($PY -c 'import sys; print(float(sys.argv[1]) + 6)' "$(window_time $((Y + 1)))")"
subnet_fault all ''
echo "    S3 back at window $(chain_window)"
# m5 has run for the whole time; it stops on SIGTERM (exit 0)
m5_pid=${SUBNET_PID[m5]}
kill -TERM "$m5_pid"
wait "$m5_pid"
m5_rc=$?
unset "SUBNET_PID[m5]"
if ! wait_processed $((Y + 4)) 200; then
  fail run_continues "the validator processed windows up to $(last_window), wanted $((Y + 4))"
  logs
fi
exited=$(alive)
kill "$SCRAPER" 2>/dev/null
wait "$SCRAPER" 2>/dev/null
SCRAPER=""

# the miners' sync records (debug/W/UID in each one's bucket) of the last
# two windows, for the agreement checks below; a miner publishes its record
# of a window after its outer step, about when the validator finishes the
# window (m2's link is slow): up to 20 s for them
mkdir -p "$T/sync"
lw=$(last_window)
deadline=$((SECONDS + 20))
while :; do
  missing=0
  for name in m1 m2 m3 m4; do
    uid=$($PY -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$UIDS" "$name")
    for w in $((lw - 1)) "$lw"; do
      [ -s "$T/sync/$w.$uid" ] && continue
      net_exec s3 "$SUBNET_BIN/tessera" store get "$(subnet_store_url "$name")" "debug/$w/$uid" "$T/sync/$w.$uid" \
        >/dev/null 2>&1 || { rm -f "$T/sync/$w.$uid"; missing=1; }
    done
  done
  [ $missing = 0 ] || [ $SECONDS -ge $deadline ] && break
  sleep 1
done
cp "$SUBNET_S3_STATS" "$T/proxy-stats.json"
subnet_stop_all
# the validator's scores and penalties per uid, as saved at its stop
"$SUBNET_BIN/tessera" report --state-dir "$D/state/validator" --json >"$T/report.json" 2>"$T/report.err" ||
  echo '[]' >"$T/report.json"

# The whole run's record, for the checks below: the validator's windows, the
# timeline, the miners' logs.
cat >"$T/facts.json" <<EOF
{"cut": "$victim", "cut_from": $cut_at, "store_down": $X, "store_503": $Y, "last": $lw, "uids": $UIDS, "grace": 3}
EOF
check() { # name: runs the Python check on stdin with the facts; ok when it exits 0
  local name=$1 out
  if out=$($PY - "$D" "$T" 2>&1); then ok "$name"; [ -n "$out" ] && echo "$out" | sed 's/^/    /'
  else fail "$name" "$out"; fi
}
PRELUDE='
import glob, json, os, re, sys
D, T = sys.argv[1], sys.argv[2]
F = json.load(open(os.path.join(T, "facts.json")))
U = F["uids"]
name_of = {v: k for k, v in U.items()}
rows = [json.loads(l) for l in open(os.path.join(D, "state/validator/windows.jsonl"))]
by_w = {r["window"]: r for r in rows}
def status(w, name):
    r = by_w.get(w)
    if not r: return None
    return next((e["status"] for e in r["evaluated"] if e["uid"] == U[name]), None)
def log(name): return open(os.path.join(D, "logs", name + ".log")).read()
'

# (a) No node exited on its own: the faults cost windows, never a process.
# Pass: every node still ran when the test stopped it, and m5 exited 0 on SIGTERM.
if [ -z "$exited" ] && [ "$m5_rc" = 0 ]; then ok no_node_exited; else
  fail no_node_exited "exited by themselves: ${exited:-none}; m5 exit status on SIGTERM: $m5_rc"
  logs
fi

# (b) Scenario 2, a link cut for two windows.  Pass: the cut miner's uploads
# of the two windows are charged missing; in the first, where it was a gather
# peer, a reserve replaces it (the validator's log says so, and the window's
# gather holds the reserve, not the cut miner); after the link is back it
# uploads again (status ok) within two windows and holds weight in the last
# window.
[ -n "${no_pick:-}" ] || check cut_link_charged_and_replaced_by_reserve <<EOF
$PRELUDE
v, w0 = F["cut"], F["cut_from"]
uid = U[v]
bad = []
for w in (w0, w0 + 1):
    if status(w, v) != "missing": bad.append(f"window {w}: {v} is {status(w, v)}, wanted missing")
m = re.search(rf"window {w0}: reserve (\d+) replaces peer {uid}\b", log("validator"))
if not m: bad.append(f"window {w0}: no 'reserve N replaces peer {uid}' in the validator's log")
else:
    r = int(m.group(1))
    g = by_w[w0]["gathered"]
    if r not in g or uid in g: bad.append(f"window {w0}: gathered {g}: wanted the reserve {r} and not {uid}")
back = [w for w in range(w0 + 2, w0 + 5) if status(w, v) == "ok"]
if not back: bad.append(f"{v} has no accepted upload in windows {w0 + 2}..{w0 + 4}: " + str([status(w, v) for w in range(w0 + 2, w0 + 5)]))
last = rows[-1]
if str(uid) not in last["weights"] or last["weights"][str(uid)] <= 0:
    bad.append(f"{v} holds no weight in window {last['window']}: {last['weights']}")
print(f"{v} (uid {uid}) cut in windows {w0}, {w0 + 1}: {status(w0, v)}, {status(w0 + 1, v)}; "
      + (f"reserve uid {m.group(1)} gathered in its place; " if m else "")
      + f"accepted again from window {back[0] if back else None}; weight {last['weights'].get(str(uid), 0):.2f} in window {last['window']}")
if bad: print("\n".join(bad)); sys.exit(1)
EOF

# (c) Scenario 1, the S3 server unreachable for a whole window (its link down
# from 3 s into window X to 6 s into X+1, past X's acceptance window).  Pass:
# the validator still processes window X, once (its row exists), and charges
# every miner's upload of X as not accepted (missing or late: the uploads
# could not be made inside the acceptance window); no honest uid is banned
# for it (every miner is accepted again within three windows).
check store_down_for_a_window <<EOF
$PRELUDE
X = F["store_down"]
bad = []
ws = [r["window"] for r in rows]
if ws.count(X) != 1: bad.append(f"window {X} processed {ws.count(X)} times")
st = {n: status(X, n) for n in ("m1", "m2", "m3", "m4")}
if any(s not in ("missing", "late") for s in st.values()): bad.append(f"window {X}: {st}: wanted every upload missing or late")
again = {n: next((w for w in range(X + 1, X + 5) if status(w, n) == "ok"), None) for n in st}
if any(a is None for a in again.values()): bad.append(f"accepted again at: {again}")
print(f"window {X}: {st}; accepted again from windows {again}")
if bad: print("\n".join(bad)); sys.exit(1)
EOF

# (d) Scenario 1, the store answering 503 to everyone for a whole window (from
# 3 s into window Y to 6 s into Y+1).  Pass: every node's requests got 503s
# (the proxy's counts), the uploads of window Y are charged missing or late,
# and everyone is accepted again within three windows.
check store_503_for_a_window <<EOF
$PRELUDE
Y = F["store_503"]
st = json.load(open(os.path.join(T, "proxy-stats.json")))["clients"]
bad = []
# the hosts are 10.77.0.2 (S3), then the names in order: validator, m1, ...
addr = {n: f"10.77.0.{3 + i}" for i, n in enumerate(["validator", "m1", "m2", "m3", "m4", "m5"])}
n503 = {n: st.get(addr[n], {}).get("answered_503", 0) for n in ("validator", "m1", "m2", "m3", "m4")}
if any(v == 0 for n, v in n503.items() if n != "m2"): bad.append(f"503 answers per node: {n503}")
s = {n: status(Y, n) for n in ("m1", "m2", "m3", "m4")}
if any(v not in ("missing", "late") for n, v in s.items() if n != "m2"): bad.append(f"window {Y}: {s}")
again = {n: next((w for w in range(Y + 1, Y + 5) if status(w, n) == "ok"), None) for n in s}
if any(a is None for a in again.values()): bad.append(f"accepted again at: {again}")
print(f"503 answers: {n503}; window {Y}: {s}; accepted again from windows {again}")
if bad: print("\n".join(bad)); sys.exit(1)
EOF

# (e) Scenario 2, the slow, lossy link (m2: 300 ms each way, 2 % of segments
# lost, for the whole run).  Pass: the proxy did delay and lose m2's traffic;
# each of m2's windows is charged as its upload was: its own log dates every
# upload against the acceptance window (the store's LastModified), and the
# validator's status agrees (inside: ok; after: late, or missing when it came
# after the validator looked; within 0.5 s of an edge: either).
check slow_lossy_link_charged_as_such <<EOF
$PRELUDE
st = json.load(open(os.path.join(T, "proxy-stats.json")))["clients"].get("10.77.0.5", {})
bad = []
if st.get("lost", 0) < 1: bad.append(f"the proxy lost none of m2's segments: {st}")
lg = log("m2")
mine = {}
for m in re.finditer(r"window (\d+): uploaded [^(]*\((-?[\d.]+)s into the acceptance window\)", lg):
    mine[int(m.group(1))] = float(m.group(2))
for m in re.finditer(r"window (\d+): uid \d+: (?:re-)?upload dated (-?[\d.]+)s (into|after|before)", lg):
    x = float(m.group(2))
    mine[int(m.group(1))] = {"into": x, "after": F["grace"] + x, "before": -x}[m.group(3)]
agree, mism = 0, []
for w in sorted(by_w):
    s = status(w, "m2")
    if s is None or w not in mine: continue
    x = mine[w]
    # late and early uploads count as missing (PROTOCOL 2); one that lands
    # after the validator looked is missing to it
    want = ("ok",) if 0 <= x <= F["grace"] else (("late", "missing") if x > F["grace"] else ("early", "missing"))
    near = min(abs(x), abs(x - F["grace"])) < 0.5
    if s in want or near: agree += 1
    else: mism.append(f"window {w}: upload {x:+.1f}s into the window, charged {s}")
if mism: bad += mism
if agree < 4: bad.append(f"only {agree} of m2's uploads could be compared")
print(f"m2's traffic: {st.get('connections')} connections, {st.get('lost')} segments lost; {agree} uploads charged as they were dated; "
      f"statuses {[status(w, 'm2') for w in sorted(by_w)]}")
if bad: print("\n".join(bad)); sys.exit(1)
EOF

# (f) Everything agrees again after the faults.  Pass: in each of the last
# two windows (at least four after the last fault) the validator accepted
# every miner's upload (m1-m4), every miner's signed sync record holds the
# validator's model hash, and in the last one (or, when the validator went
# on before it was stopped, a later one) every miner has weight again, but
# for one that the gather rule banned (Templar's: missing half of its last 8
# gathers bans for 20 windows; the slow-link miner loses windows to its link
# besides the two outages everyone lost): such a miner must hold the ban in
# the validator's state and have at least four uploads not accepted in the
# last twelve windows, the misses that explain it; or one whose binary
# moving average (Templar: under 0.1 scores 0) is under 0.1 and rising over
# the last three windows, climbing back from the windows it lost.
check everything_agrees_after <<EOF
$PRELUDE
bad, same = [], []
last = F["last"]
for w in (last - 1, last):
    r = by_w[w]
    for n in ("m1", "m2", "m3", "m4"):
        if status(w, n) != "ok": bad.append(f"window {w}: {n} {status(w, n)}")
        p = os.path.join(T, "sync", f"{w}.{U[n]}")
        if not os.path.exists(p): bad.append(f"window {w}: no sync record of {n}"); continue
        h = json.load(open(p))["model_hash"]
        if h != r["model_hash"]: bad.append(f"window {w}: {n} holds {h[:16]}, the validator {r['model_hash'][:16]}")
        else: same.append(f"{n}@{w}")
rep = {x["uid"]: x for x in json.load(open(os.path.join(T, "report.json")))}
banned = []
for n in ("m1", "m2", "m3", "m4"):
    m = re.search(r"missed half its gathers: banned until window (\d+)", rep.get(U[n], {}).get("penalties", ""))
    misses = sum(1 for w in range(last - 11, last + 1) if status(w, n) not in (None, "ok"))
    if m and int(m.group(1)) > last and misses >= 4: banned.append(n)
    # Templar's binary-MA rule: a moving average of the +1/-1 indicator
    # under 0.1 scores 0; the windows a miner lost pulled it down, and it
    # climbs back one accepted window at a time
    ma = [e.get("binary_ma") for w in range(last - 2, last + 1) for e in by_w.get(w, {}).get("evaluated", [])
          if e["uid"] == U[n] and e.get("binary_ma") is not None]
    if n not in banned and by_w[last]["weights"].get(str(U[n]), 0) <= 0 and len(ma) >= 2 and ma[-1] < 0.1 and ma[-1] > ma[0]:
        banned.append(n)
        print(f"{n}: binary MA {', '.join(f'{x:.3f}' for x in ma)} over windows {last - 2}..{last}: under 0.1, so its score is 0 while it recovers")
earners = [n for n in ("m1", "m2", "m3", "m4") if n not in banned]
wrow = next((r for r in rows if r["window"] >= last and all(r["weights"].get(str(U[n]), 0) > 0 for n in earners)), None)
if not wrow: bad.append(f"no window from {last} on gives {earners} weight: {[(r['window'], r['weights']) for r in rows if r['window'] >= last]}")
if banned: print(f"not required to earn yet (gather ban, or binary MA recovering): {banned}")
print(f"windows {last - 1}, {last}: same model {' '.join(same)}; weights in window {wrow['window'] if wrow else None}: "
      + (", ".join(f"{name_of[int(k)]} {v:.2f}" for k, v in sorted(wrow["weights"].items())) if wrow else ""))
if bad: print("\n".join(bad)); sys.exit(1)
EOF

# (g) Scenario 7, metrics.  Pass: the scrapes of every node succeeded at least
# 90 % of the time, during the outages too (the endpoint is the node's, not the
# store's); every metric the README names (the GPU-only ones aside) appears on
# the validator, and every miner metric on m1; tessera_window advances.
check metrics_scraped_every_second <<EOF
$PRELUDE
att = [l.split() for l in open(os.path.join(T, "metrics/attempts"))]
bad = []
for n in ("validator", "m1", "m2", "m3", "m4"):
    a = [x for x in att if x[0] == n]
    okn = sum(1 for x in a if x[2] == "ok")
    if not a or okn < 0.9 * len(a): bad.append(f"{n}: {okn} of {len(a)} scrapes answered")
common = ["tessera_window", "tessera_uid", "tessera_train_loss", "tessera_tokens_per_second", "tessera_upload_bytes",
          "tessera_upload_seconds", "tessera_upload_failures_total", "tessera_gather_peers",
          "tessera_gather_success_ratio", "tessera_device_info"]
vonly = ["tessera_held_out_loss", "tessera_final_score", "tessera_ordinal"]
def seen(n):
    names = set()
    for f in glob.glob(os.path.join(T, "metrics", n + ".*")):
        for l in open(f):
            if l and not l.startswith("#"): names.add(re.split(r"[{ ]", l, 1)[0])
    return names
vs, ms = seen("validator"), seen("m1")
need_v = [m for m in common if m not in ("tessera_train_loss", "tessera_tokens_per_second", "tessera_upload_bytes",
                                           "tessera_upload_seconds", "tessera_upload_failures_total")] + vonly
miss_v = [m for m in need_v if m not in vs]
miss_m = [m for m in common if m not in ms]
if miss_v: bad.append(f"never on the validator: {miss_v}")
if miss_m: bad.append(f"never on m1: {miss_m}")
def series(n, metric):
    out = []
    for f in sorted(glob.glob(os.path.join(T, "metrics", n + ".*")), key=lambda p: int(p.rsplit(".", 1)[1])):
        for l in open(f):
            if l.startswith(metric + " ") or l.startswith(metric + "{"): out.append(float(l.split()[-1])); break
    return out
win = series("validator", "tessera_window")
if not win or win[-1] <= win[0]: bad.append(f"tessera_window did not advance: {win[:1]} .. {win[-1:]}")
print(f"{len(att)} scrapes; the validator showed {len(vs)} metric names, m1 {len(ms)}; tessera_window {win[0] if win else None} -> {win[-1] if win else None}; "
      f"answered: " + ", ".join(f"{n} {sum(1 for x in att if x[0] == n and x[2] == 'ok')}/{sum(1 for x in att if x[0] == n)}" for n in ("validator", "m1", "m2", "m3", "m4")))
if bad: print("\n".join(bad)); sys.exit(1)
EOF

# (h) Scenario 7, no credential in any log line.  Pass: neither the S3
# secret key nor any hotkey's secret (secretSeed, privateKey) appears in any
# log of the run: the nodes' (two of them at debug level), the proxy's, the
# S3 server's, the set-up's.
secret=$TESSERA_TEST_S3_SECRET_KEY
check credentials_never_logged <<EOF
$PRELUDE
secrets = {"the S3 secret key": "$secret"}
for f in glob.glob(os.path.join(D, "home/wallets/demo/hotkeys/*")):
    if f.endswith("pub.txt"): continue
    k = json.load(open(f))
    for field in ("secretSeed", "privateKey"):
        if k.get(field): secrets[f"{os.path.basename(f)}'s {field}"] = k[field][2:]
files = glob.glob(os.path.join(D, "logs/*")) + glob.glob(os.path.join(D, "s3/log/*"))
lines, hits = 0, []
for p in files:
    for l in open(p, errors="replace"):
        lines += 1
        for what, v in secrets.items():
            if len(v) >= 16 and v.lower() in l.lower(): hits.append(f"{os.path.basename(p)}: {what}")
print(f"{len(secrets)} secrets looked for in {lines} lines of {len(files)} logs")
if hits: print("\n".join(sorted(set(hits)))); sys.exit(1)
EOF

# (i) Scenario 7, http:// peers refused without --allow-local-peers.  Pass:
# m5 (--no-allow-local-peers) says, as a warning naming the uid and the
# reason, that it refuses uid 0's http:// bucket, says it at most once a
# minute (not every turn of its loop), and never uploaded.
check http_peers_refused_without_allow_local_peers <<EOF
$PRELUDE
lg = log("m5")
ref = [l for l in lg.splitlines() if "warn" in l and "uid 0's commitment" in l and "plain http endpoint" in l]
bad = []
if not ref: bad.append("no warning that uid 0's http:// commitment is refused")
if len(ref) > 4: bad.append(f"the refusal was logged {len(ref)} times")
if "uploaded" in lg: bad.append("m5 uploaded")
print((ref[0][ref[0].find("waiting"):][:160] if ref else "") + f" ({len(ref)} time(s))")
if bad: print("\n".join(bad)); sys.exit(1)
EOF

# (j) Every state file loads after the run (tests/t_signals.sh explains the
# checks): the validator's scores, and every node's model and error feedback.
bad=()
"$SUBNET_BIN/tessera" gauntlet state "$D/state/validator/gauntlet.state" >/dev/null 2>"$T/gs.err" ||
  bad+=("gauntlet.state: $(cat "$T/gs.err")")
for k in validator m1 m2 m3 m4; do
  msg=$(subnet_state_loads "$k" strict 2>&1) || bad+=("$msg")
done
if [ ${#bad[@]} -eq 0 ]; then ok state_files_load; else fail state_files_load "${bad[@]}"; fi
exit 0
