#!/usr/bin/env bash
# t_e2e_failover.sh - one model for everyone: two validators (uid 0 with 1000
# TAO, uid 1 with 500) and miners on a local subnet, through the failures that
# used to fork it or stall it:
#   1. all up: both validators evaluate and set weights;
#   2. the leader SIGKILLed for four windows while a new miner joins: the other
#      validator takes over within leader_liveness_windows + 1 windows, the
#      model moves every window, the newcomer earns;
#   3. the old leader returns, replays the other's bundles exactly, leads again;
#   4. a fork planted on disk (a validator's and a miner's model perturbed while
#      stopped): detected, logged, healed, never published;
#   5. an older, validly signed LATEST put back in the leader's bucket while a
#      fresh miner starts, and a fresh miner whose disk is full while it
#      downloads the checkpoint: neither forks;
#   6. a validator stopped longer than the retention: it recovers from a
#      checkpoint and agrees.
# Throughout, every model hash any node published for a window (validators'
# window logs, every sync record) must be the same, and `tessera ckpt verify
# --replay` must accept the leader's checkpoints and refuse a forged one.
set -u
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
T=$(mktemp -d "${TMPDIR:-/tmp}/tessera-failover-XXXXXX")
PY=/usr/bin/python3
SUBNET_QUIET=1
SUBNET_VALIDATORS="validator validator2"
# short windows; a retention two checkpoint intervals long, so that a short
# outage outlives it; a validator is live for two windows after its last
# heartbeat
SUBNET_PARAMS_EXTRA='"retention_windows": 5, "checkpoint_interval": 2, "leader_liveness_windows": 2,'
LIVENESS=2
# shellcheck source=tools/subnet_lib.sh
source tools/subnet_lib.sh
MNT=""
cleanup() {
  subnet_stop_all
  [ -n "$MNT" ] && umount "$MNT" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT

ok() { echo "ok   t_e2e_failover/$1"; }
fail() { echo "FAIL t_e2e_failover/$1"; shift; for l in "$@"; do echo "    $l"; done; }
logs() { for f in "$SUBNET_DIR"/logs/*.log; do echo "    --- $f"; tail -n 15 "$f" | sed 's/^/    /'; done; }
check() { # name detail-command...: ok when the command exits 0; its output is the detail
  local name=$1; shift
  local out
  if out=$("$@" 2>&1); then ok "$name"; [ -n "$out" ] && echo "    $out"; else fail "$name" "$out"; fi
}

# the newest window a validator has processed (-1 before any)
last_window() {
  local f=$SUBNET_DIR/state/$1/windows.jsonl
  [ -s "$f" ] || { echo -1; return; }
  tail -n 1 "$f" | $PY -c 'import json,sys; print(json.loads(sys.stdin.read())["window"])'
}
chain_window() {
  "$SUBNET_BIN/tessera" localnet status --dir "$SUBNET_DIR/subnet" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["window"])'
}
wait_window() { # validator window timeout: until it has processed `window`
  local deadline=$((SECONDS + $3))
  while [ "$(last_window "$1")" -lt "$2" ]; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}
# Plants a fork: flips one low mantissa bit of a parameter in a stopped node's
# model and rewrites node.json to vouch for it (the model hash is BLAKE2b-256
# of the safetensors data section: the parameter buffer in codec order).
plant_fork() {
  $PY - "$SUBNET_DIR/state/$1" <<'EOF'
import hashlib, json, os, struct, sys
d = sys.argv[1]
p = os.path.join(d, "model.safetensors")
b = bytearray(open(p, "rb").read())
n = struct.unpack("<Q", b[:8])[0]
b[8 + n + 4 * 1000] ^= 1
open(p, "wb").write(bytes(b))
h = hashlib.blake2b(bytes(b[8 + n:]), digest_size=32).hexdigest()
s = json.load(open(os.path.join(d, "node.json")))
s["model_hash"] = h
json.dump(s, open(os.path.join(d, "node.json"), "w"))
EOF
}

if ! subnet_setup "$T/f" tiny validator validator2 m1 m2 m3 m4 m5 m6; then
  fail setup "$(tail -n 5 "$T/f/logs/init.log" 2>/dev/null)"
  exit 0
fi
D=$SUBNET_DIR
for k in validator validator2 m1 m2 m3; do subnet_start "$k"; done

# ---- 1. all up
if ! wait_window validator 5 300 || ! wait_window validator2 5 120; then
  fail run "validators at windows $(last_window validator) / $(last_window validator2)"
  logs
  exit 0
fi
ok run_starts
cp "$D/stores/validator/checkpoints/LATEST" "$T/old_latest"
old_latest_w=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["window"])' "$T/old_latest")
"$SUBNET_BIN/tessera" localnet status --dir "$D/subnet" --json >"$T/status1.json"
check both_validators_evaluate_and_set_weights $PY - "$D" "$T/status1.json" <<'EOF'
import json, os, sys
d, st = sys.argv[1], json.load(open(sys.argv[2]))
bad = []
for name in ("validator", "validator2"):
    rows = [json.loads(l) for l in open(os.path.join(d, "state", name, "windows.jsonl"))]
    ev = sum(1 for r in rows for e in r["evaluated"] if e["status"] == "ok")
    if ev < 3: bad.append(f"{name} evaluated {ev} uploads")
w = {u["uid"]: u.get("weights") for u in st["uids"]}
for uid in (0, 1):
    if not w.get(uid): bad.append(f"uid {uid} has set no weights on chain")
print("; ".join(bad) or "both validators evaluated uploads and have weights on chain")
sys.exit(1 if bad else 0)
EOF

# ---- 2. the leader SIGKILLed for four windows; a new miner joins meanwhile
subnet_stop validator KILL
echo "--- killed (SIGKILL) ---" >>"$D/logs/validator.log"
K=$(chain_window)
echo "# leader killed in window $K"
subnet_start m4
if ! wait_window validator2 $((K + 4)) 200; then
  fail takeover_run "validator2 at window $(last_window validator2), wanted $((K + 4))"
  logs
fi
subnet_start validator
echo "--- restarted ---" >>"$D/logs/validator.log"
R=$(chain_window)
echo "# leader restarted in window $R"

# ---- 3. it returns, catches up, and leads again
wait_window validator $((R + 3)) 200 || { fail return_run "validator at window $(last_window validator)"; logs; }

# ---- 4. planted forks: a validator and a miner perturbed on disk while stopped
subnet_stop validator2
subnet_stop m1
plant_fork validator2
plant_fork m1
F=$(chain_window)
echo "# forks planted in window $F"
subnet_start validator2
subnet_start m1
wait_window validator2 $((F + 2)) 200 || { fail fork_run "validator2 at window $(last_window validator2)"; logs; }

# ---- 5. an older LATEST put back; a fresh miner starts. A fresh miner whose
#         disk is full. And validator2 stops for longer than the retention.
cp "$T/old_latest" "$D/stores/validator/checkpoints/LATEST"
echo "# LATEST of window $old_latest_w put back in the leader's bucket (and again, for 20 s, after each checkpoint)"
# every 0.1 s: the leader's own LATEST, written after each checkpoint, is
# back in place for at most that long, so the fresh miner below (which reads
# LATEST once, when it starts) all but surely meets the older one
( for _ in $(seq 200); do cp "$T/old_latest" "$D/stores/validator/checkpoints/LATEST.t" &&
    mv "$D/stores/validator/checkpoints/LATEST.t" "$D/stores/validator/checkpoints/LATEST"; sleep 0.1; done ) &
ROLLBACK=$!
verify_old=$("$SUBNET_BIN/tessera" ckpt verify "$D/stores/validator" --chain "local:$D/subnet" --uid 0 --seen none 2>&1)
verify_old_rc=$?
subnet_start m5
full_disk=0
MNT=$T/m6-state
mkdir -p "$MNT"
if mount -t tmpfs -o size=160k tmpfs "$MNT" 2>/dev/null; then
  full_disk=1
  subnet_start m6 --state-dir "$MNT"
else
  MNT=""
fi
subnet_stop validator2
O=$(chain_window)
echo "# validator2 stopped in window $O"
sleep 25
if [ "$full_disk" = 1 ]; then
  mount -o remount,size=16m "$MNT"
  echo "# m6's disk has room again"
fi
wait "$ROLLBACK" 2>/dev/null
wait_window validator $((O + 7)) 240 || { fail outage_run "validator at window $(last_window validator)"; logs; }
subnet_start validator2
echo "--- restarted after an outage ---" >>"$D/logs/validator2.log"
B=$(chain_window)
wait_window validator2 $((B + 2)) 200 || { fail outage_recovery_run "validator2 at window $(last_window validator2)"; logs; }
wait_window validator $((B + 3)) 120
subnet_stop_all
echo "# stopped in window $(chain_window)"

# ---------------------------------------------------------------- the checks

# Every hash any node published for a window is the same.
check bit_identical_on_every_node $PY - "$D" <<'EOF'
import json, os, sys
d = sys.argv[1]
seen = {}  # window -> {hash: [who]}
def add(w, h, who): seen.setdefault(w, {}).setdefault(h, []).append(who)
for v in ("validator", "validator2"):
    for l in open(os.path.join(d, "state", v, "windows.jsonl")):
        r = json.loads(l); add(r["window"], r["model_hash"], v)
uids = {"validator": 0, "validator2": 1, "m1": 2, "m2": 3, "m3": 4, "m4": 5, "m5": 6, "m6": 7}
records = 0
for name, uid in uids.items():
    base = os.path.join(d, "stores", name, "debug")
    if not os.path.isdir(base): continue
    for w in os.listdir(base):
        p = os.path.join(base, w, str(uid))
        if os.path.exists(p):
            add(int(w), json.load(open(p))["model_hash"], name); records += 1
bad = [f"window {w}: " + " vs ".join(f"{h[:12]} ({','.join(who)})" for h, who in hs.items())
       for w, hs in sorted(seen.items()) if len(hs) > 1]
full = [w for w, hs in seen.items() if sum(len(x) for x in hs.values()) >= 5]
print(f"{len(seen)} windows, {records} sync records and both validators' logs compared; "
      f"{len(full)} windows with 5 or more nodes; " + ("; ".join(bad[:4]) or "one model per window"))
sys.exit(1 if bad or len(full) < 5 else 0)
EOF

# Leadership moves within the bound and comes back; no null round.
check leader_failover_no_null_round $PY - "$D" "$K" "$R" "$LIVENESS" <<'EOF'
import json, os, sys
d, K, R, L = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = {}
for v in ("validator2", "validator"):  # validator2 ran through the leader's outage
    for l in open(os.path.join(d, "state", v, "windows.jsonl")):
        r = json.loads(l); rows.setdefault(r["window"], r)
ws = sorted(rows)
bad = []
took = [w for w in ws if K + L + 1 <= w < R and rows[w].get("leader") != 1]
if took: bad.append(f"windows {took} still led by the dead leader (bound: {L} + 1 windows after {K})")
if not any(rows[w].get("leader") == 1 for w in ws): bad.append("validator2 never led")
back = [w for w in ws if w >= R + 4]
if not back or any(rows[w].get("leader") != 0 for w in back):
    bad.append(f"leadership did not return to uid 0 after window {R + 4}: " + str([(w, rows[w].get('leader')) for w in back][:5]))
first = next((w for w in ws if rows[w]["gathered"]), None)
null = [w for w in ws if first is not None and w > first and not rows[w]["gathered"]]
still = [w for w in ws if first is not None and w > first and w - 1 in rows and rows[w]["model_hash"] == rows[w - 1]["model_hash"]]
if null: bad.append(f"null rounds after warm-up at windows {null}")
if still: bad.append(f"the model did not move at windows {still}")
led = sorted({rows[w].get("leader") for w in ws})
print("; ".join(bad) or f"leaders by window: {[(w, rows[w].get('leader')) for w in ws]}; the model moved in every window from {first}")
sys.exit(1 if bad else 0)
EOF

check old_leader_caught_up_exactly bash -c "grep -m1 \"caught up window .* from validator uid 1's bundle\" '$D/logs/validator.log' && ! grep -q FORK '$D/logs/validator.log'"

# The newcomer that joined while the leader was down is gathered and earns.
check newcomer_gathered_and_earns $PY - "$D" "$K" <<'EOF'
import json, os, sys
d, K = sys.argv[1], int(sys.argv[2])
rows = {}
for v in ("validator2", "validator"):
    for l in open(os.path.join(d, "state", v, "windows.jsonl")):
        r = json.loads(l); rows.setdefault(r["window"], r)
g = [w for w in sorted(rows) if 5 in rows[w]["gathered"]]
e = [w for w in sorted(rows) if rows[w]["weights"].get("5", 0) > 0]
print(f"uid 5 started in window {K}: first gathered in window {g[0] if g else None}, first weight in window {e[0] if e else None} (bound: 6 windows)")
sys.exit(0 if g and e and g[0] <= K + 6 and e[0] <= K + 6 else 1)
EOF

# Planted forks: detected, logged, healed; the forked validator published no
# checkpoint of its fork.
check planted_fork_detected_and_healed bash -c "grep -m1 'FORK' '$D/logs/validator2.log' && grep -m1 'FORK' '$D/logs/m1.log' && grep -q 'resynchronised' '$D/logs/validator2.log' && grep -q 'resynchronised' '$D/logs/m1.log'"
check forked_validator_published_no_forked_checkpoint $PY - "$D" <<'EOF'
import json, os, sys
d = sys.argv[1]
ref = {}
for l in open(os.path.join(d, "state", "validator", "windows.jsonl")):
    r = json.loads(l); ref[r["window"]] = r["model_hash"]
base = os.path.join(d, "stores", "validator2", "checkpoints")
bad, n = [], 0
for w in sorted(os.listdir(base)):
    p = os.path.join(base, w, "manifest.json")
    if not os.path.exists(p): continue
    m = json.load(open(p)); n += 1
    if int(w) in ref and m["model_hash"] != ref[int(w)]:
        bad.append(f"checkpoint {w}: {m['model_hash'][:12]} != leader {ref[int(w)][:12]}")
print(f"{n} checkpoints of validator2 compared with the leader's models; " + ("; ".join(bad) or "all on the reference chain"))
sys.exit(1 if bad or n == 0 else 0)
EOF

# An older LATEST: refused by ckpt verify and by a fresh node, which agrees.
check older_latest_refused bash -c "[ $verify_old_rc -ne 0 ] && grep -q 'older LATEST' <<<\"\$1\" && grep -m1 'older LATEST' '$D/logs/m5.log' && grep -q 'loaded validator uid' '$D/logs/m5.log'" _ "$verify_old"

# A full disk during a fresh node's download: it retries, never starts from
# the initial model, and loads the checkpoint once there is room.
if [ "$full_disk" = 1 ]; then
  check full_disk_never_falls_back bash -c "grep -m1 'loading a checkpoint (retrying' '$D/logs/m6.log' && ! grep -q \"initial model at window\" '$D/logs/m6.log' && grep -m1 'loaded validator uid' '$D/logs/m6.log'"
else
  echo "skip t_e2e_failover/full_disk_never_falls_back (cannot mount a tmpfs here: not root?)"
fi

# An outage longer than the retention: recovered from a checkpoint.
check outage_past_retention_recovers_from_checkpoint bash -c "sed -n '/restarted after an outage/,\$p' '$D/logs/validator2.log' | grep -m1 \"loaded validator uid 0's checkpoint\" && ! sed -n '/restarted after an outage/,\$p' '$D/logs/validator2.log' | grep -q FORK"

# ckpt verify --replay: the leader's checkpoints are what its bundles produce;
# a forged checkpoint (perturbed weights, manifest and LATEST re-signed with
# the leader's own key) passes plain verification but not the replay.
check ckpt_verify_replay_accepts "$SUBNET_BIN/tessera" ckpt verify "$D/stores/validator" --chain "local:$D/subnet" --uid 0 --replay --seen none
rm -rf "$T/forged" && cp -r "$D/stores/validator" "$T/forged"
$PY - "$T/forged" "$SUBNET_BIN/tessera" <<'EOF'
import hashlib, json, os, struct, subprocess, sys, tempfile
store, tessera = sys.argv[1], sys.argv[2]
# the leader's key (wallet demo, hotkey validator): `tessera keys sign` signs
# with it, as the node signs its objects (sr25519, tag tessera/object/v1)
key = ["--wallet", "demo", "--hotkey", "validator"]
pk = json.loads(subprocess.run([tessera, "keys", "show", *key, "--json"], capture_output=True, text=True,
                               check=True).stdout)["public_key"]
def canon(o, prefix="", top=True):
    # the canonical text of node/objects.c (node_obj_canonical; FORMATS 11.1):
    # "key=value\n" by sorted key, nested objects as "outer.inner", the
    # top-level signature and config left out
    out = []
    for k in sorted(o):
        if top and k in ("signature", "config"): continue
        name = prefix + ("." if prefix else "") + k
        v = o[k]
        if isinstance(v, dict): out += canon(v, name, False); continue
        if isinstance(v, bool): t = "true" if v else "false"
        elif isinstance(v, (int, float)): t = "%d" % v
        elif isinstance(v, list): t = ",".join("%d" % x for x in v)
        else: t = v
        out.append(f"{name}={t}\n")
    return out
def sign(o):
    # as node_obj_sign: scheme and signer are signed members
    o["scheme"] = "sr25519"
    o["signer"] = pk[2:]
    o.pop("signature", None)
    text = ("tessera-object-v1\n" + "".join(canon(o))).encode()
    with tempfile.NamedTemporaryFile() as f:
        f.write(text)
        f.flush()
        sig = subprocess.run([tessera, "keys", "sign", *key, "--tag", "tessera/object/v1", "--in", f.name],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert len(sig) == 128, sig
    o["signature"] = sig
    return json.dumps(o, indent=1).encode()
latest = json.load(open(os.path.join(store, "checkpoints/LATEST")))
w = latest["window"]
mp = os.path.join(store, latest["manifest_key"])
man = json.load(open(mp))
wp = os.path.join(store, man["weights_key"])
b = bytearray(open(wp, "rb").read())
n = struct.unpack("<Q", b[:8])[0]
b[8 + n + 4 * 1234] ^= 1
open(wp, "wb").write(bytes(b))
man["weights_hash"] = hashlib.blake2b(bytes(b), digest_size=32).hexdigest()
man["model_hash"] = hashlib.blake2b(bytes(b[8 + n:]), digest_size=32).hexdigest()
text = sign(man)
open(mp, "wb").write(text)
latest["manifest_hash"] = hashlib.blake2b(text, digest_size=32).hexdigest()
open(os.path.join(store, "checkpoints/LATEST"), "wb").write(sign(latest))
EOF
plain=$("$SUBNET_BIN/tessera" ckpt verify "$T/forged" --chain "local:$D/subnet" --uid 0 --seen none 2>&1)
plain_rc=$?
replay=$("$SUBNET_BIN/tessera" ckpt verify "$T/forged" --chain "local:$D/subnet" --uid 0 --replay --seen none 2>&1)
replay_rc=$?
check ckpt_verify_replay_refuses_forged_checkpoint bash -c "[ $plain_rc -eq 0 ] && [ $replay_rc -ne 0 ] && grep -m1 'not what they produce' <<<\"\$1\"" _ "$replay"
[ $plain_rc -eq 0 ] || echo "    plain verification of the forged store: $(tail -n 1 <<<"$plain")"
exit 0
