#!/usr/bin/env bash
# t_e2e_s3.sh - the subnet with every bucket in a real S3 server (Swift's S3
# layer, SigV4-checked): each node writes its prefix with the write
# credentials and reads its peers through the commitments they published.
# A validator and three honest miners for five windows: the model improves,
# miners earn (at least two of the three: the scoring itself is t_e2e.sh's to
# check over more windows), every node holds the same model after each outer
# step (read back from S3), and the checkpoint verifies through its s3:// URL.
set -u
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
T=$(mktemp -d "${TMPDIR:-/tmp}/tessera-e2e-s3-XXXXXX")
PY=/usr/bin/python3
SUBNET_QUIET=1
SUBNET_S3=1
# shellcheck source=tools/subnet_lib.sh
source tools/subnet_lib.sh
trap 'subnet_stop_all; rm -rf "$T"' EXIT

ok() { echo "ok   t_e2e_s3/$1"; }
fail() { echo "FAIL t_e2e_s3/$1"; shift; for l in "$@"; do echo "    $l"; done; }

if ! subnet_setup "$T/s" tiny validator m1 m2 m3 2>"$T/setup.err"; then
  if grep -q "did not start" "$T/setup.err"; then
    echo "skip t_e2e_s3/run"; echo "    skipped: the S3 test server did not start ($(tail -n 1 "$T/setup.err"))"
  else
    fail run "set-up failed: $(tail -n 3 "$T/setup.err")"
  fi
  exit 0
fi
D=$SUBNET_DIR
subnet_start validator --max-windows 5
for k in m1 m2 m3; do subnet_start "$k"; done
if ! wait "${SUBNET_PID[validator]}"; then
  fail run "the validator failed:" "$(tail -n 10 "$D/logs/validator.log")"
  exit 0
fi
unset "SUBNET_PID[validator]"
for k in m1 m2 m3; do subnet_stop "$k"; done
ok run

detail=$($PY - "$D/state/validator/windows.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
first, last = rows[0]["held_out_loss"], rows[-1]["held_out_loss"]
w = {int(k): v for k, v in rows[-1]["weights"].items()}
print(f"held-out loss {first:.4f} -> {last:.4f}; weights {w}")
# scoring itself is t_e2e.sh's to check (over more windows); here the model
# must improve through S3 and the validator must reward miners it read there
sys.exit(0 if last < first - 0.02 and sum(w.get(u, 0) > 0 for u in (1, 2, 3)) >= 2 else 1)
EOF
)
if [ $? -eq 0 ]; then ok loss_falls_and_miners_earn; else fail loss_falls_and_miners_earn "$detail"; fi
echo "    $detail"

# every miner's sync record, read back from its S3 prefix, against the validator
mismatch=() compared=0
while IFS=' ' read -r w hash gathered; do
  [ "$gathered" -gt 0 ] || continue
  for uid in 1 2 3; do
    url=$(subnet_store_url "m$uid")
    rec=$("$SUBNET_BIN/tessera" store get -q "$url" "debug/$w/$uid" 2>/dev/null) || { mismatch+=("no record of m$uid for window $w"); continue; }
    got=$($PY -c 'import json,sys; print(json.load(sys.stdin)["model_hash"])' <<<"$rec")
    compared=$((compared + 1))
    [ "$got" = "$hash" ] || mismatch+=("window $w m$uid ${got:0:16} != ${hash:0:16}")
  done
done < <($PY -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l); print(r["window"], r["model_hash"], len(r["gathered"]))' "$D/state/validator/windows.jsonl")
if [ ${#mismatch[@]} -eq 0 ] && [ "$compared" -ge 6 ]; then
  ok models_bit_identical; echo "    $compared records read from S3, all equal to the validator's model"
else
  fail models_bit_identical "$compared compared" "${mismatch[@]}"
fi

out=$("$SUBNET_BIN/tessera" ckpt verify "$(subnet_store_url validator)" --chain "local:$D/subnet" 2>&1)
if [ $? -eq 0 ] && grep -q "signer matches" <<<"$out"; then ok checkpoint_verifies_over_s3; else
  fail checkpoint_verifies_over_s3 "$(tail -n 3 <<<"$out")"; fi
exit 0
