#!/usr/bin/env bash
# demo.sh - a whole Tessera subnet on this machine (`make demo`).
#
# A local subnet (a file-backed chain), one validator and five miners on the
# CPU: three honest, one copycat that re-signs uid 1's upload as its own, one
# that uploads garbage.  Each participant's bucket is a local directory (or,
# with --s3, a prefix in the suite's S3 server, Swift's S3 layer).  After the
# windows it prints the global model's held-out loss per window, each miner's
# final score, weight and penalties, what the chain's last epoch (Yuma
# consensus over the validator's weights, every tempo) gave each uid, and the
# verification of the validator's checkpoints; then it stops every process it
# started.
#
# With --chain-spec FILE (a raw subtensor chain spec, e.g. opentensor/subtensor's
# scripts/specs/raonet.json) the subnet runs on Bittensor's chain instead: a
# subtensor runtime run by chopsticks (see tools/subnet_lib.sh), and the demo
# ends by reading the validator's weights back from subtensor's storage.
#
#   bash tools/demo.sh [--windows N] [--s3] [--chain-spec FILE] [--model tiny|small] [--dir DIR] [--quiet]
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
WINDOWS=10
MODEL=tiny
DIR=$PWD/$BUILD/demo
while [ $# -gt 0 ]; do
  case $1 in
    --windows) WINDOWS=$2; shift 2 ;;
    --s3) SUBNET_S3=1; shift ;;
    --chain-spec) SUBNET_CHAIN_SPEC=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --dir) DIR=$2; shift 2 ;;
    --quiet) SUBNET_QUIET=1; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "demo: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
# shellcheck source=tools/subnet_lib.sh
source tools/subnet_lib.sh
trap subnet_stop_all EXIT
trap 'exit 130' INT TERM

NAMES=(validator honest1 honest2 honest3 copycat garbage)
subnet_setup "$DIR" "$MODEL" "${NAMES[@]}"
DIR=$SUBNET_DIR
subnet_say "starting 1 validator and 5 miners (3 honest, 1 copycat, 1 garbage sender); logs in $DIR/logs"
subnet_start validator --max-windows "$WINDOWS"
subnet_start honest1
subnet_start honest2
subnet_start honest3
subnet_start copycat --adversary copycat --copy-uid "$(subnet_uid honest1)"
subnet_start garbage --adversary garbage

# Run until the validator has processed its windows, showing each one.
T0=$SECONDS
shown=0
VPID=${SUBNET_PID[validator]}
while kill -0 "$VPID" 2>/dev/null; do
  sleep 1
  n=$(subnet_windows_done)
  if [ "$n" -gt "$shown" ]; then
    shown=$n
    line=$(tail -n 1 "$DIR/state/validator/windows.jsonl")
    w=$(sed 's/.*"window":\([0-9]*\).*/\1/' <<<"$line")
    loss=$(sed -n 's/.*"held_out_loss":\([0-9.]*\).*/\1/p' <<<"$line")
    subnet_say "window $w processed ($n of $WINDOWS): held-out loss ${loss:0:6} ($((SECONDS - T0))s)"
  fi
  for k in "${NAMES[@]:1}"; do
    if ! kill -0 "${SUBNET_PID[$k]}" 2>/dev/null; then
      echo "demo: $k stopped unexpectedly; its log:" >&2
      tail -n 20 "$DIR/logs/$k.log" >&2
      exit 1
    fi
  done
done
if ! wait "$VPID"; then
  echo "demo: the validator failed; its log:" >&2
  tail -n 30 "$DIR/logs/validator.log" >&2
  exit 1
fi
unset "SUBNET_PID[validator]"
s3=$SUBNET_S3_STARTED cs=$SUBNET_CHAIN_STARTED
SUBNET_S3_STARTED=0 SUBNET_CHAIN_STARTED=0 # keep the S3 server and the chain up to read the results
subnet_stop_all
SUBNET_S3_STARTED=$s3 SUBNET_CHAIN_STARTED=$cs

echo
if [ -n "${SUBNET_CHAIN_SPEC:-}" ]; then
  echo "uids on netuid 1 follow registration order after the genesis' own (see tessera chain metagraph)"
else
  echo "uids: 0 validator, 1-3 honest miners, 4 copycat (copies uid 1), 5 garbage sender"
fi
echo
"$SUBNET_BIN/tessera" report --state-dir "$DIR/state/validator" --chain "$SUBNET_CHAIN" --wallet demo --hotkey validator --svg "$DIR/report.svg"
echo
# The chain's side: the last epoch's incentive, dividends and emission per uid
# (on the local subnet an epoch runs every SUBNET_TEMPO + 1 blocks, about one
# a window, so several ran during the demo).
mgj=$("$SUBNET_BIN/tessera" chain metagraph --chain "$SUBNET_CHAIN" --json)
/usr/bin/python3 - "$mgj" "$(for k in "${NAMES[@]}"; do "$SUBNET_BIN/tessera" keys show --wallet demo --hotkey "$k" --json; done)" <<'EOF'
import json, sys
mg = json.loads(sys.argv[1])
keys = [json.loads(l) for l in sys.argv[2].splitlines() if l.strip()]
name = {k["public_key"]: k["hotkey"] for k in keys}
e = mg.get("epoch")
if not e:
    print("The chain's last epoch: none yet")
    sys.exit(0)
tao = lambda rao: "%.4f" % (rao / 1e9) if rao is not None else "-"
frac = lambda x: "%.4f" % x if x is not None else "-"
owner = " and %s TAO to the owner" % tao(e["owner_emission_rao"]) if "owner_emission_rao" in e else ""
print("The chain's last epoch (block %d, every %d blocks): %s TAO to the uids%s" % (
    e["block"], e["tempo"] + 1, tao(e["emission_rao"]), owner))
print("  %-4s %-10s %-10s %-10s %-14s %s" % ("uid", "name", "incentive", "dividends", "emission (TAO)", "earned (TAO)"))
for n in mg["neurons"]:
    print("  %-4d %-10s %-10s %-10s %-14s %s" % (n["uid"], name.get(n["hotkey"], "-"), frac(n.get("incentive")),
          frac(n.get("dividends")), tao(n.get("emission_rao")), tao(n.get("earned_rao"))))
EOF
echo
echo "Checkpoint verification (the leader's store):"
url=$(subnet_store_url validator)
[ "$SUBNET_S3" = 1 ] || url=$DIR/stores/validator
"$SUBNET_BIN/tessera" ckpt verify "$url" --chain "$SUBNET_CHAIN" | sed 's/^/  /'
if [ -n "${SUBNET_CHAIN_SPEC:-}" ]; then
  echo
  echo "The validator's weights as subtensor stores them (SubtensorModule.Weights, netuid 1):"
  wj=$("$SUBNET_BIN/tessera" chain weights --chain "$SUBNET_CHAIN" --json)
  "$SUBNET_BIN/tessera" chain weights --chain "$SUBNET_CHAIN" | sed 's/^/  /'
  # uids: registration order on netuid 1 (the genesis holds uid 0)
  verdict=$(/usr/bin/python3 - "$wj" "$("$SUBNET_BIN/tessera" chain metagraph --chain "$SUBNET_CHAIN" --json)" \
    "$(for k in "${NAMES[@]}"; do "$SUBNET_BIN/tessera" keys show --wallet demo --hotkey "$k" --json; done)" <<'EOF'
import json, sys
rows, mg = json.loads(sys.argv[1]), json.loads(sys.argv[2])
keys = [json.loads(l) for l in sys.argv[3].splitlines() if l.strip()]
uid = {n["hotkey"]: n["uid"] for n in mg["neurons"]}
names = {uid[k["public_key"]]: k["hotkey"] for k in keys if k["public_key"] in uid}
v = [r for r in rows if names.get(r["uid"]) == "validator"]
w = {names.get(int(u), u): x for u, x in v[0]["u16"].items()} if v else {}
honest = all(w.get(h, 0) > 0 for h in ("honest1", "honest2", "honest3"))
cheats = sum(w.get(c, 0) for c in ("copycat", "garbage"))
print("  %s: honest miners weighted %s, copycat and garbage sender %s" % (
    "yes" if honest and cheats == 0 else "NO", {h: w.get(h, 0) for h in ("honest1", "honest2", "honest3")},
    {c: w.get(c, 0) for c in ("copycat", "garbage")}))
EOF
)
  echo "$verdict"
fi
echo
echo "demo: done in $((SECONDS - T0))s; everything is in $DIR"
