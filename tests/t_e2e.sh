#!/usr/bin/env bash
# t_e2e.sh - the whole subnet, end to end (a shorter `make demo`): one
# validator and five miners (three honest, a copycat, a garbage sender) on a
# local subnet with local-directory buckets.  Asserts that the global model
# improves, that honest miners earn and cheaters don't, that every node holds
# the bit-identical model after each outer step, and that the published
# checkpoint verifies, loads, and is refused once a byte is flipped.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$PWD/$BUILD/bin
T=$(mktemp -d "${TMPDIR:-/tmp}/tessera-e2e-XXXXXX")
trap 'rm -rf "$T"' EXIT
export TESSERA_HOME=$T/home # ckpt verify records what it verified there
PY=/usr/bin/python3

ok() { echo "ok   t_e2e/$1"; }
fail() { echo "FAIL t_e2e/$1"; shift; for l in "$@"; do echo "    $l"; done; }
check() { # name, condition command..., (detail on failure from $detail)
  local name=$1; shift
  if "$@"; then ok "$name"; else fail "$name" "${detail:-}"; fi
}

WINDOWS=${TESSERA_E2E_WINDOWS:-8}
if ! bash tools/demo.sh --dir "$T/demo" --windows "$WINDOWS" --quiet >"$T/demo.out" 2>&1; then
  fail run "the demo failed:" "$(tail -n 30 "$T/demo.out")"
  for f in "$T"/demo/logs/*.log; do echo "    --- $f"; tail -n 8 "$f" | sed 's/^/    /'; done
  exit 0
fi
ok run
D=$T/demo
W=$D/state/validator/windows.jsonl

# 1. the global model improves on held-out data
detail=$($PY - "$W" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
first, last = rows[0]["held_out_loss"], rows[-1]["held_out_loss"]
print(f"held-out loss {first:.4f} -> {last:.4f} over {len(rows)} windows")
sys.exit(0 if last < first - 0.05 else 1)
EOF
)
check held_out_loss_falls test $? -eq 0
echo "    $detail"

# 2. honest miners earn; the copycat and the garbage sender do not (the
#    validator's last weights, and the weights on chain)
detail=$($PY - "$W" <<'EOF'
import json, sys
last = [json.loads(l) for l in open(sys.argv[1])][-1]
w = {int(k): v for k, v in last["weights"].items()}
bad = [f"uid {u} (honest) has weight {w.get(u, 0)}" for u in (1, 2, 3) if not w.get(u, 0) > 0]
bad += [f"uid {u} (cheater) has weight {w[u]}" for u in (4, 5) if w.get(u, 0) > 0]
print("; ".join(bad) or f"weights {w}")
sys.exit(1 if bad else 0)
EOF
)
check weights_honest_positive_cheaters_zero test $? -eq 0
echo "    $detail"
status=$("$BIN/tessera" localnet status --dir "$D/subnet" --json)
detail=$($PY -c '
import json, sys
s = json.load(sys.stdin)
w = {}
for u in s["uids"]:
    if u["uid"] == s["leader"] and "weights" in u:
        w = {int(k): v for k, v in u["weights"]["u16"].items()}
bad = [x for x in (1, 2, 3) if not w.get(x, 0) > 0] + [x for x in (4, 5) if w.get(x, 0) > 0]
print(f"on chain (u16): {w}")
sys.exit(1 if bad or not w else 0)
' <<<"$status")
check chain_weights_match test $? -eq 0
echo "    $detail"
report=$("$BIN/tessera" report --state-dir "$D/state/validator" --json)
detail=$($PY - <<EOF
import json
rows = {r["uid"]: r for r in json.loads('''$report''')}
bad = []
if not rows.get(4, {}).get("banned"): bad.append("the copycat (uid 4) is not banned")
if not rows.get(5, {}).get("invalid", 0) > 0: bad.append("the garbage sender (uid 5) has no invalid uploads")
for u in (1, 2, 3):
    if "copycat" in rows.get(u, {}).get("penalties", "") or rows.get(u, {}).get("banned"):
        bad.append(f"honest uid {u} was charged as a copycat: {rows[u]['penalties']}")
print("; ".join(bad) or "copycat banned, garbage sender's uploads invalid, honest miners not charged")
raise SystemExit(1 if bad else 0)
EOF
)
check penalties_reasons test $? -eq 0
echo "    $detail"

# 3. after each outer step every node holds the bit-identical model: the
#    validator's model hash against each miner's signed sync record
detail=$($PY - "$W" "$D/stores" <<'EOF'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
stores = sys.argv[2]
checked = mismatched = 0
msgs = []
for r in rows:
    if not r["gathered"]:
        continue
    w = r["window"]
    for name, uid in (("honest1", 1), ("honest2", 2), ("honest3", 3), ("copycat", 4), ("garbage", 5)):
        p = os.path.join(stores, name, "debug", str(w), str(uid))
        if not os.path.exists(p):
            continue
        h = json.load(open(p))["model_hash"]
        checked += 1
        if h != r["model_hash"]:
            mismatched += 1
            msgs.append(f"window {w} uid {uid}: {h[:16]} != validator {r['model_hash'][:16]}")
print(f"{checked} miner records compared with the validator's model, {mismatched} differ " + "; ".join(msgs[:3]))
sys.exit(0 if checked >= 10 and mismatched == 0 else 1)
EOF
)
check models_bit_identical test $? -eq 0
echo "    $detail"

# 4. the checkpoint verifies (signature by the leader on chain, hashes, loads)
out=$("$BIN/tessera" ckpt verify "$D/stores/validator" --chain "local:$D/subnet" 2>&1)
rc=$?
detail=$(tail -n 3 <<<"$out")
check checkpoint_verifies test $rc -eq 0 -a -n "$(grep 'signer matches' <<<"$out")"
latest_w=$(sed -n 's/^verified: newest checkpoint is window \([0-9]*\).*/\1/p' <<<"$out")
# ... and the fetched weights are the validator's model of that window, bit
# for bit (the model hash is BLAKE2b-256 of the parameter buffer, which is the
# safetensors data section), so they evaluate exactly as the validator's did
"$BIN/tessera" ckpt verify "$D/stores/validator" --chain "local:$D/subnet" --fetch "$T/ckpt.safetensors" >/dev/null 2>&1
detail=$($PY - "$T/ckpt.safetensors" "$W" "$latest_w" <<'EOF'
import hashlib, json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = hashlib.blake2b(b[8 + n:], digest_size=32).hexdigest()
rows = {json.loads(l)["window"]: json.loads(l) for l in open(sys.argv[2])}
w = int(sys.argv[3])
want = rows.get(w, {}).get("model_hash")
print(f"checkpoint of window {w}: model {h[:16]}, the validator's model after window {w}: {(want or '?')[:16]}")
sys.exit(0 if want == h else 1)
EOF
)
check checkpoint_is_the_validators_model test $? -eq 0
echo "    $detail"
ev=$("$BIN/tessera" eval --model tiny --init "$T/ckpt.safetensors" --data "$BUILD/corpus/val" --seq 64 --samples 8 2>&1 | tail -n 1)
check checkpoint_loads_and_evaluates $PY -c 'import re,sys,math; m=re.search(r"loss ([0-9.]+)", sys.argv[1]); sys.exit(0 if m and 0 < float(m.group(1)) < math.log(257) else 1)' "$ev"
echo "    $ev"

# 5. one flipped byte anywhere in the weights, the manifest or LATEST is refused
flip() { # file offset
  $PY -c "import sys; p,o=sys.argv[1],int(sys.argv[2]); b=bytearray(open(p,'rb').read()); o=o%len(b); b[o]^=1; open(p,'wb').write(bytes(b))" "$1" "$2"
}
for what in weights manifest latest; do
  rm -rf "$T/tamper" && cp -r "$D/stores/validator" "$T/tamper"
  case $what in
    weights) f=$T/tamper/checkpoints/$latest_w/model.safetensors; off=$(( $(stat -c %s "$f") / 2 )) ;;
    manifest) f=$T/tamper/checkpoints/$latest_w/manifest.json; off=40 ;;
    latest) f=$T/tamper/checkpoints/LATEST; off=60 ;;
  esac
  flip "$f" "$off"
  out=$("$BIN/tessera" ckpt verify "$T/tamper" --chain "local:$D/subnet" 2>&1)
  rc=$?
  detail=$(grep FAILED <<<"$out" || tail -n 1 <<<"$out")
  check "flipped_byte_in_${what}_refused" test $rc -ne 0 -a -n "$(grep FAILED <<<"$out")"
  echo "    $detail"
done
exit 0
