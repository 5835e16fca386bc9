#!/usr/bin/env bash
# demo.sh - a whole Tessera subnet on this machine (`make demo`).
#
# A local subnet (a file-backed chain), one validator and five miners on the
# CPU: three honest, one copycat that re-signs uid 1's upload as its own, one
# that uploads garbage.  Each participant's bucket is a local directory (or,
# with --s3, a prefix in the suite's Swift S3 server).  After the windows it
# prints the global model's held-out loss per window, each miner's final score,
# weight and penalties, and the verification of the validator's checkpoints;
# then it stops every process it started.
#
#   bash tools/demo.sh [--windows N] [--s3] [--model tiny|small] [--dir DIR] [--quiet]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$PWD/$BUILD/bin
WINDOWS=10
USE_S3=0
MODEL=tiny
DIR=$PWD/$BUILD/demo
QUIET=0
BLOCKS=12
while [ $# -gt 0 ]; do
  case $1 in
    --windows) WINDOWS=$2; shift 2 ;;
    --s3) USE_S3=1; shift ;;
    --model) MODEL=$2; shift 2 ;;
    --dir) DIR=$2; shift 2 ;;
    --blocks-per-window) BLOCKS=$2; shift 2 ;;
    --quiet) QUIET=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "demo: unknown option $1" >&2; exit 2 ;;
  esac
done
say() { [ "$QUIET" = 1 ] || echo "demo: $*"; }

CORPUS=$PWD/$BUILD/corpus
[ -d "$CORPUS/train" ] || bash tools/make_corpus.sh "$CORPUS"

# The run starts from a briefly pre-trained model, as a real run continues
# from a checkpoint: on a model fresh from its initialisation every update
# helps all data alike, and the validator could not tell a miner that trained
# on its own pages from one that did not.  Built once and reused.
INIT=$PWD/$BUILD/demo-init/$MODEL
if [ ! -f "$INIT/model.safetensors" ]; then
  say "pre-training the starting model ($MODEL, 300 steps; once)"
  rm -rf "$INIT.tmp"
  OMP_WAIT_POLICY=passive "$BIN/tessera" train --model "$MODEL" --data "$CORPUS/train" --batch 16 --seq 64 \
    --steps 300 --lr 3e-3 --seed 1 --out "$INIT.tmp" >/dev/null 2>"$PWD/$BUILD/demo-init.log" ||
    { echo "demo: pre-training failed; see $PWD/$BUILD/demo-init.log" >&2; exit 1; }
  rm -rf "$INIT" && mv "$INIT.tmp" "$INIT"
fi
INIT_HASH=$(b2sum -l 256 "$INIT/model.safetensors" | cut -d' ' -f1)

rm -rf "$DIR"
mkdir -p "$DIR"/{logs,state,stores}
DIR=$(cd "$DIR" && pwd)
export TESSERA_HOME=$DIR/home
# Six processes share this machine's cores: one thread each, and threads that
# sleep instead of spinning while they wait.
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive

PIDS=()
S3_STARTED=0
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$S3_STARTED" = 1 ]; then bash tests/servers/s3.sh stop "$DIR/s3" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT INT TERM

# --- run parameters: the subnet owner's choices, kept in the genesis -------
SIGMA=4
cat > "$DIR/params.json" <<EOF
{
  "model": {"preset": "$MODEL"},
  "data": "$CORPUS/train",
  "val_data": "$CORPUS/val",
  "init": "$INIT/model.safetensors",
  "init_hash": "$INIT_HASH",
  "seq_len": 64,
  "batch_size": 8,
  "inner_steps": 16,
  "optimizer": {"lr": 0.003, "warmup_steps": 8, "total_steps": 2000},
  "upload_grace_s": 3,
  "upload_delay_s": 0.5,
  "gather_delay_s": 0.5,
  "checkpoint_interval": 3,
  "val_samples": 32,
  "gauntlet": {"peers_interval": 1, "weights_interval": 1, "openskill_sigma": $SIGMA}
}
EOF
# A short demo shortens the windows (1 s blocks) and starts ratings from a
# smaller uncertainty (sigma 4 instead of 25/3) so scores settle within ten
# windows; everything else is the protocol's default.

say "creating a local subnet in $DIR/subnet"
"$BIN/tessera" localnet init --dir "$DIR/subnet" --run-id demo --block-time 1 --blocks-per-window "$BLOCKS" \
  --params "$DIR/params.json" >"$DIR/logs/init.log"
NAMES=(validator honest1 honest2 honest3 copycat garbage)
for k in "${NAMES[@]}"; do
  "$BIN/tessera" keygen --wallet demo --hotkey "$k" >>"$DIR/logs/init.log"
  "$BIN/tessera" localnet register --dir "$DIR/subnet" --wallet demo --hotkey "$k" >>"$DIR/logs/init.log"
done
"$BIN/tessera" localnet stake --dir "$DIR/subnet" --wallet demo --hotkey validator --amount 1000 >>"$DIR/logs/init.log"

# --- buckets ----------------------------------------------------------------
store_args() { # name -> --store-url (and --store-commitment) arguments
  local name=$1
  if [ "$USE_S3" = 1 ]; then
    local ep="$TESSERA_TEST_S3_ENDPOINT" b="$TESSERA_TEST_S3_BUCKET" r="$TESSERA_TEST_S3_REGION"
    echo "--store-url s3://$b/$name?endpoint=$ep&region=$r --store-commitment s3://$TESSERA_TEST_S3_ACCESS_KEY:$TESSERA_TEST_S3_SECRET_KEY@$b/$name?endpoint=$ep&region=$r"
  else
    echo "--store-url file://$DIR/stores/$name"
  fi
}
if [ "$USE_S3" = 1 ]; then
  say "starting the S3 server (Swift's S3 layer) on loopback"
  while IFS= read -r kv; do [[ $kv == *=* ]] && export "${kv?}"; done < <(bash tests/servers/s3.sh start "$DIR/s3")
  S3_STARTED=1
  export AWS_ACCESS_KEY_ID=$TESSERA_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$TESSERA_TEST_S3_SECRET_KEY
fi

start() { # name, extra args...
  local name=$1; shift
  local role=tessera-miner
  [ "$name" = validator ] && role=tessera-validator
  # shellcheck disable=SC2046
  "$BIN/$role" --chain "local:$DIR/subnet" --wallet demo --hotkey "$name" $(store_args "$name") \
    --state-dir "$DIR/state/$name" "$@" >"$DIR/logs/$name.log" 2>&1 &
  PIDS+=($!)
}
say "starting 1 validator and 5 miners (3 honest, 1 copycat, 1 garbage sender); logs in $DIR/logs"
start validator --max-windows "$WINDOWS"
start honest1
start honest2
start honest3
start copycat --adversary copycat --copy-uid 1
start garbage --adversary garbage

# --- run until the validator has processed its windows ------------------------
VPID=${PIDS[0]}
T0=$SECONDS
last=""
while kill -0 "$VPID" 2>/dev/null; do
  sleep 2
  if [ -f "$DIR/state/validator/windows.jsonl" ]; then
    n=$(wc -l <"$DIR/state/validator/windows.jsonl")
    line=$(tail -n 1 "$DIR/state/validator/windows.jsonl")
    if [ "$line" != "$last" ]; then
      last=$line
      w=$(sed 's/.*"window":\([0-9]*\).*/\1/' <<<"$line")
      loss=$(sed -n 's/.*"held_out_loss":\([0-9.]*\).*/\1/p' <<<"$line")
      say "window $w processed ($n of $WINDOWS): held-out loss ${loss:-?} ($((SECONDS - T0))s)"
    fi
  fi
  for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null && [ "$i" != 0 ]; then
      echo "demo: ${NAMES[$i]} stopped unexpectedly; its log:" >&2
      tail -n 20 "$DIR/logs/${NAMES[$i]}.log" >&2
      exit 1
    fi
  done
done
wait "$VPID" || { echo "demo: the validator failed; its log:" >&2; tail -n 30 "$DIR/logs/validator.log" >&2; exit 1; }
PIDS=("${PIDS[@]:1}")
cleanup
PIDS=()

# --- the result ---------------------------------------------------------------
echo
echo "uids: 0 validator, 1-3 honest miners, 4 copycat (copies uid 1), 5 garbage sender"
echo
"$BIN/tessera" report --state-dir "$DIR/state/validator" --chain "local:$DIR/subnet" --svg "$DIR/report.svg"
echo
echo "Checkpoint verification (the leader's store):"
if [ "$USE_S3" = 1 ]; then
  # the server was stopped with the processes: start it again to read the bucket
  while IFS= read -r kv; do [[ $kv == *=* ]] && export "${kv?}"; done < <(bash tests/servers/s3.sh start "$DIR/s3")
  S3_STARTED=1
  url="s3://$TESSERA_TEST_S3_BUCKET/validator?endpoint=$TESSERA_TEST_S3_ENDPOINT&region=$TESSERA_TEST_S3_REGION"
else
  url="$DIR/stores/validator"
fi
"$BIN/tessera" ckpt verify "$url" --chain "local:$DIR/subnet" | sed 's/^/  /'
echo
echo "demo: done in $((SECONDS - T0))s; everything is in $DIR"
