# subnet_lib.sh - sourced by tools/demo.sh and the end-to-end tests: builds a
# local subnet on this machine and starts its nodes.
#
#   subnet_setup DIR MODEL NAME...   run parameters, subnet, keys, registration;
#                                    the first NAME is the validator (staked);
#                                    SUBNET_VALIDATORS="a b" stakes more names as
#                                    validators (500, 250, ... TAO), and
#                                    SUBNET_PARAMS_EXTRA='"key": value,' adds run
#                                    parameters; SUBNET_EVAL_SAMPLES and
#                                    SUBNET_VAL_SAMPLES (32) set the validator's
#                                    evaluation and held-out samples;
#                                    SUBNET_TEMPO (SUBNET_BLOCKS - 1: an epoch
#                                    every window) sets the local subnet's tempo
#                                    SUBNET_GAUNTLET_EXTRA='"key": value,' adds
#                                    scoring parameters;
#                                    SUBNET_GAUNTLET_DEFAULTS=1 leaves the
#                                    "gauntlet" object empty: the protocol's
#                                    default scoring parameters;
#                                    SUBNET_GATHER_DELAY (0.5 s) sets
#                                    gather_delay_s
#   subnet_start NAME [args...]      starts a node in the background (pid in
#                                    SUBNET_PID[NAME]); logs in DIR/logs/NAME.log;
#                                    SUBNET_ENV[NAME]="VAR=value ..." gives that
#                                    node alone more environment (e.g. the device
#                                    emulator's TESSERA_CUDA_LIB, with --device
#                                    cuda among its args)
#   subnet_stop NAME [SIGNAL]        stops one node and waits for it
#   subnet_stop_all                  stops every node it started (and the S3 server)
#
# Set SUBNET_S3=1 before subnet_setup to use a prefix per participant in the
# suite's S3 server (Swift's S3 layer) instead of local directories.
#
# Set SUBNET_NETNS=TAG (root only) to give every participant and the S3 server
# a host of its own (tests/net/hosts.sh: network namespaces on one bridge,
# 10.77.0.N) with S3 (implies SUBNET_S3=1) behind the fault-injecting proxy
# (tests/net/faultproxy.py) at http://10.77.0.2:9000:
#   subnet_fault NAME RULE    sets the proxy's rule for NAME's address (RULE
#                             is its JSON, e.g. '{"delay_ms": 300, "loss":
#                             0.02}'; '' removes it); NAME "all" is
#                             everyone else (the default rule)
#   subnet_link NAME up|down  cuts or restores NAME's link
#   subnet_host NAME CMD...   runs CMD on NAME's host ("s3": the server's)
# SUBNET_S3_STATS is the proxy's per-address counters (JSON, every second).
#
# Set SUBNET_CHAIN_SPEC=FILE (a raw subtensor chain spec) to run the subnet on
# Bittensor's chain instead of a local one: a subtensor runtime run by
# chopsticks (tests/chopsticks.sh), blocks made every SUBNET_BLOCK_MS ms
# (1000) with wall-clock timestamps (tools/devchain.py), netuid 1.  The
# participants' hotkeys are registered with `tessera chain register` (paid by
# the demo wallet's coldkey, funded by dev_setStorage), the validator is made
# the subnet owner and given stake (dev_setStorage: what governance and
# staking do on a real chain), and it publishes the run with `tessera chain
# publish-run`; every node then reads the run from the chain.  SUBNET_CHAIN is
# the nodes' --chain URL either way.

: "${BUILD:=build}"
SUBNET_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUBNET_BIN=$SUBNET_REPO/$BUILD/bin
SUBNET_S3=${SUBNET_S3:-0}
SUBNET_NETNS=${SUBNET_NETNS:-}
[ -n "$SUBNET_NETNS" ] && SUBNET_S3=1
declare -A SUBNET_RULE
SUBNET_PROXY_PID=""
SUBNET_BLOCKS=${SUBNET_BLOCKS:-12}
SUBNET_TEMPO=${SUBNET_TEMPO:-$((SUBNET_BLOCKS - 1))}
SUBNET_SIGMA=${SUBNET_SIGMA:-4}
declare -A SUBNET_PID
declare -A SUBNET_ENV
SUBNET_S3_STARTED=0
SUBNET_CHAIN_STARTED=0
SUBNET_BLOCK_MS=${SUBNET_BLOCK_MS:-1000}

subnet_say() { [ "${SUBNET_QUIET:-0}" = 1 ] || echo "demo: $*"; }

subnet_setup() { # dir model names...
  SUBNET_DIR=$1 SUBNET_MODEL=$2
  shift 2
  SUBNET_NAMES=("$@")
  local corpus=$SUBNET_REPO/$BUILD/corpus
  [ -d "$corpus/train" ] || bash "$SUBNET_REPO/tools/make_corpus.sh" "$corpus" >/dev/null

  # The run starts from a briefly pre-trained model, as a real run continues
  # from a checkpoint: on a model fresh from its initialisation every update
  # helps all data alike, and a validator could not tell a miner that trained
  # on its own pages from one that did not.  Built once and reused.
  local init=$SUBNET_REPO/$BUILD/demo-init/$SUBNET_MODEL
  if [ ! -f "$init/model.safetensors" ]; then
    subnet_say "pre-training the starting model ($SUBNET_MODEL, 300 steps; done once)"
    rm -rf "$init.tmp"
    OMP_WAIT_POLICY=passive "$SUBNET_BIN/tessera" train --model "$SUBNET_MODEL" --data "$corpus/train" --batch 16 \
      --seq 64 --steps 300 --lr 3e-3 --seed 1 --out "$init.tmp" >/dev/null 2>"$SUBNET_REPO/$BUILD/demo-init.log" ||
      { echo "demo: pre-training failed; see $SUBNET_REPO/$BUILD/demo-init.log" >&2; return 1; }
    rm -rf "$init" && mv "$init.tmp" "$init"
  fi
  local init_hash
  init_hash=$(b2sum -l 256 "$init/model.safetensors" | cut -d' ' -f1)
  # the dataset hashes every node checks its shards against (tessera data hash)
  local data_hash val_hash
  data_hash=$("$SUBNET_BIN/tessera" data hash "$corpus/train" | cut -d' ' -f1) &&
    val_hash=$("$SUBNET_BIN/tessera" data hash "$corpus/val" | cut -d' ' -f1) ||
    { echo "demo: hashing the corpus failed" >&2; return 1; }

  rm -rf "$SUBNET_DIR"
  mkdir -p "$SUBNET_DIR"/{logs,state,stores}
  SUBNET_DIR=$(cd "$SUBNET_DIR" && pwd)
  export TESSERA_HOME=$SUBNET_DIR/home
  # Several nodes share this machine's cores: one thread each, and threads
  # that sleep instead of spinning while they wait.
  export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive

  # The run parameters: the subnet owner's choices, kept in the genesis.  A
  # short demo shortens the windows (1 s blocks) and starts ratings from a
  # smaller uncertainty (sigma 4 instead of 25/3) so that scores settle
  # within ten windows.  With a model this small, honest miners starting from
  # the same checkpoint pick up to 45 % of the same top-k indices in the first
  # windows (measured; it falls to about 12 % once outer steps run), so the
  # copycat thresholds move from 0.4 / 0.5 / 0.6 to 0.6 / 0.75 / 0.9; a copy
  # shares 100 %.  And losses are summed over 32 samples instead of 8: with
  # 8, a tiny model's own-versus-random comparison comes out wrong for an
  # honest miner about one time in eight in the first windows (measured),
  # enough to leave one without weight after eight windows now and then.
  # Copycat checks start at once (Templar waits 20 windows, longer than the
  # whole demo).  Everything else is the protocol's default.
  cat >"$SUBNET_DIR/params.json" <<EOF
{
  "model": {"preset": "$SUBNET_MODEL"},
  "data": "$corpus/train",
  "val_data": "$corpus/val",
  "data_hash": "$data_hash",
  "val_data_hash": "$val_hash",
  "init": "$init/model.safetensors",
  "init_hash": "$init_hash",
  "seq_len": 64,
  "batch_size": 8,
  "inner_steps": 16,
  "optimizer": {"lr": 0.003, "warmup_steps": 8, "total_steps": 2000},
  "upload_grace_s": 3,
  "upload_delay_s": 0.5,
  "gather_delay_s": ${SUBNET_GATHER_DELAY:-0.5},
  "checkpoint_interval": 3,
  "val_samples": ${SUBNET_VAL_SAMPLES:-32},
  ${SUBNET_PARAMS_EXTRA:-}
  "gauntlet": {"peers_interval": 1, "weights_interval": 1, "openskill_sigma": $SUBNET_SIGMA,
               "copycat_slash_overlap": 0.6, "copycat_reset_overlap": 0.75, "copycat_ban_overlap": 0.9,
               "copycat_start_windows": 0, ${SUBNET_GAUNTLET_EXTRA:-}
               "eval_samples": ${SUBNET_EVAL_SAMPLES:-32}}
}
EOF
  # SUBNET_GAUNTLET_DEFAULTS=1: none of the tuning above, every scoring
  # parameter at the protocol's default (tests/t_adversaries.sh)
  if [ "${SUBNET_GAUNTLET_DEFAULTS:-0}" = 1 ]; then
    /usr/bin/python3 -c 'import json, sys; p = json.load(open(sys.argv[1])); p["gauntlet"] = {}
json.dump(p, open(sys.argv[1], "w"), indent=2)' "$SUBNET_DIR/params.json" || return 1
  fi
  if [ -n "${SUBNET_CHAIN_SPEC:-}" ]; then
    subnet_chain_setup || return 1
    if [ "$SUBNET_S3" = 1 ]; then
      subnet_say "starting the S3 server (Swift's S3 layer) on loopback"
      subnet_s3_up || return 1
    fi
    return 0
  fi
  SUBNET_CHAIN="local:$SUBNET_DIR/subnet"
  subnet_say "creating a local subnet in $SUBNET_DIR/subnet"
  # Epochs (Yuma consensus, emission) every SUBNET_TEMPO + 1 blocks: with the
  # default, one a window, so that a demo of ten windows sees several.
  "$SUBNET_BIN/tessera" localnet init --dir "$SUBNET_DIR/subnet" --run-id demo --block-time 1 \
    --blocks-per-window "$SUBNET_BLOCKS" --tempo "$SUBNET_TEMPO" --params "$SUBNET_DIR/params.json" \
    >"$SUBNET_DIR/logs/init.log" || return 1
  local k
  for k in "${SUBNET_NAMES[@]}"; do
    "$SUBNET_BIN/tessera" keygen --wallet demo --hotkey "$k" >>"$SUBNET_DIR/logs/init.log" &&
      "$SUBNET_BIN/tessera" localnet register --dir "$SUBNET_DIR/subnet" --wallet demo --hotkey "$k" \
        >>"$SUBNET_DIR/logs/init.log" || return 1
  done
  "$SUBNET_BIN/tessera" localnet stake --dir "$SUBNET_DIR/subnet" --wallet demo --hotkey "${SUBNET_NAMES[0]}" \
    --amount 1000 >>"$SUBNET_DIR/logs/init.log" || return 1
  # more validators (SUBNET_VALIDATORS names them; the first NAME is always
  # one) with decreasing stake: 500, 250, ...
  local amount=500
  for k in ${SUBNET_VALIDATORS:-}; do
    [ "$k" = "${SUBNET_NAMES[0]}" ] && continue
    "$SUBNET_BIN/tessera" localnet stake --dir "$SUBNET_DIR/subnet" --wallet demo --hotkey "$k" \
      --amount "$amount" >>"$SUBNET_DIR/logs/init.log" || return 1
    amount=$((amount / 2))
  done
  if [ "$SUBNET_S3" = 1 ]; then
    subnet_say "starting the S3 server (Swift's S3 layer) on loopback"
    subnet_s3_up || return 1
  fi
}

# The subnet on a subtensor runtime (see the top of this file).
subnet_chain_setup() {
  local log=$SUBNET_DIR/logs/init.log out k amount ck
  subnet_say "starting a subtensor runtime from $(basename "$SUBNET_CHAIN_SPEC") (chopsticks; blocks every $SUBNET_BLOCK_MS ms)"
  out=$(TESSERA_TEST_CHAINSPEC=$SUBNET_CHAIN_SPEC bash "$SUBNET_REPO/tests/chopsticks.sh" start "$SUBNET_DIR/chain" 2>&1) ||
    { echo "demo: the subtensor runtime did not start: $out" >&2; return 1; }
  SUBNET_CHAIN_STARTED=1
  SUBNET_CHAIN_URL=$(sed -n 's/^CHOPSTICKS_URL=//p' <<<"$out")
  /usr/bin/python3 "$SUBNET_REPO/tools/devchain.py" "$SUBNET_CHAIN_URL" drive "$SUBNET_BLOCK_MS" \
    >"$SUBNET_DIR/logs/blocks.log" 2>&1 &
  SUBNET_DRIVER_PID=$!
  local dev=(/usr/bin/python3 "$SUBNET_REPO/tools/devchain.py" "$SUBNET_CHAIN_URL" set)
  local C=(--chain "subtensor:$SUBNET_CHAIN_URL" --netuid 1)
  "$SUBNET_BIN/tessera" wallet new-coldkey --wallet demo --no-password >"$log" 2>&1 || return 1
  ck=$(sed -n 's/^ss58 *//p' "$log" | head -n 1)
  # what a real subnet has by governance and money: funds, no weights rate
  # limit, room for registrations
  "${dev[@]}" "{\"System\": {\"Account\": [[[\"$ck\"], {\"providers\": 1, \"data\": {\"free\": \"1000000000000000\"}}]]},
    \"SubtensorModule\": {\"WeightsSetRateLimit\": [[[1], 1]], \"MaxRegistrationsPerBlock\": [[[1], 64]],
    \"TargetRegistrationsPerInterval\": [[[1], 64]]}}" >>"$log" 2>&1 || return 1
  subnet_say "registering ${#SUBNET_NAMES[@]} hotkeys on netuid 1 (burned_register, paid by the demo coldkey)"
  for k in "${SUBNET_NAMES[@]}"; do
    "$SUBNET_BIN/tessera" keygen --wallet demo --hotkey "$k" >>"$log" 2>&1 &&
      "$SUBNET_BIN/tessera" chain register "${C[@]}" --wallet demo --hotkey "$k" >>"$log" 2>&1 ||
      { echo "demo: registering $k failed; see $log" >&2; return 1; }
  done
  # the validator (the first name) owns the subnet and holds the most stake;
  # SUBNET_VALIDATORS get 500, 250, ... TAO
  local vss
  vss=$("$SUBNET_BIN/tessera" keys show --wallet demo --hotkey "${SUBNET_NAMES[0]}" --json | sed 's/.*"ss58": "\([^"]*\)".*/\1/')
  local alpha="[[\"$vss\", 1], \"1000000000000\"]"
  amount=500
  for k in ${SUBNET_VALIDATORS:-}; do
    [ "$k" = "${SUBNET_NAMES[0]}" ] && continue
    local kss
    kss=$("$SUBNET_BIN/tessera" keys show --wallet demo --hotkey "$k" --json | sed 's/.*"ss58": "\([^"]*\)".*/\1/')
    alpha+=", [[\"$kss\", 1], \"${amount}000000000\"]"
    amount=$((amount / 2))
  done
  "${dev[@]}" "{\"SubtensorModule\": {\"SubnetOwnerHotkey\": [[[1], \"$vss\"]], \"TotalHotkeyAlpha\": [$alpha]}}" \
    >>"$log" 2>&1 || return 1
  subnet_say "the subnet owner publishes the run (run.json in its bucket, its hash in its commitment)"
  mkdir -p "$SUBNET_DIR/stores/${SUBNET_NAMES[0]}"
  "$SUBNET_BIN/tessera" chain publish-run "${C[@]}" --wallet demo --hotkey "${SUBNET_NAMES[0]}" \
    --store-url "$(subnet_store_url "${SUBNET_NAMES[0]}")" --run-id demo --blocks-per-window "$SUBNET_BLOCKS" \
    --params "$SUBNET_DIR/params.json" >>"$log" 2>&1 || { echo "demo: publishing the run failed; see $log" >&2; return 1; }
  SUBNET_CHAIN="subtensor:$SUBNET_CHAIN_URL?netuid=1"
}

subnet_s3_up() {
  local kv
  if [ -n "$SUBNET_NETNS" ]; then
    subnet_net_up || return 1
    unset TESSERA_TEST_S3_ENDPOINT
    while IFS= read -r kv; do [[ $kv == *=* ]] && export "${kv?}"; done \
      < <(net_exec s3 bash "$SUBNET_REPO/tests/servers/s3.sh" start "$SUBNET_DIR/s3")
    [ -n "${TESSERA_TEST_S3_ENDPOINT:-}" ] || { echo "demo: the S3 server did not start" >&2; return 1; }
    SUBNET_S3_STARTED=1
    # everyone reaches the server through the proxy, on the server's host
    SUBNET_S3_STATS=$SUBNET_DIR/s3/proxy-stats.json
    subnet_fault_write || return 1
    ip netns exec "${NET_NS[s3]}" /usr/bin/python3 "$SUBNET_REPO/tests/net/faultproxy.py" --listen "${NET_ADDR[s3]}:9000" \
      --upstream "${TESSERA_TEST_S3_ENDPOINT#http://}" --control "$SUBNET_DIR/s3/proxy.json" \
      --stats "$SUBNET_S3_STATS" >"$SUBNET_DIR/logs/proxy.out" 2>"$SUBNET_DIR/logs/proxy.log" &
    SUBNET_PROXY_PID=$!
    local i
    for i in $(seq 100); do grep -q ready "$SUBNET_DIR/logs/proxy.out" 2>/dev/null && break; sleep 0.1; done
    grep -q ready "$SUBNET_DIR/logs/proxy.out" || { echo "demo: the fault proxy did not start" >&2; return 1; }
    TESSERA_TEST_S3_ENDPOINT=http://${NET_ADDR[s3]}:9000
  else
    while IFS= read -r kv; do [[ $kv == *=* ]] && export "${kv?}"; done \
      < <(bash "$SUBNET_REPO/tests/servers/s3.sh" start "$SUBNET_DIR/s3")
    [ -n "${TESSERA_TEST_S3_ENDPOINT:-}" ] || { echo "demo: the S3 server did not start" >&2; return 1; }
    SUBNET_S3_STARTED=1
  fi
  export AWS_ACCESS_KEY_ID=$TESSERA_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$TESSERA_TEST_S3_SECRET_KEY
}

# The hosts (SUBNET_NETNS): the S3 server's and one per participant.
subnet_net_up() {
  # shellcheck source=tests/net/hosts.sh
  source "$SUBNET_REPO/tests/net/hosts.sh"
  local why k
  why=$(net_why_not)
  [ -z "$why" ] || { echo "demo: no test hosts: $why" >&2; return 1; }
  net_init "$SUBNET_NETNS" && net_host s3 || { echo "demo: cannot make the test hosts" >&2; return 1; }
  for k in "${SUBNET_NAMES[@]}"; do net_host "$k" || return 1; done
}

# Writes the proxy's control file from SUBNET_RULE (atomically).
subnet_fault_write() {
  local k first=1 f=$SUBNET_DIR/s3/proxy.json def='{}'
  [ -n "${SUBNET_RULE[all]:-}" ] && def=${SUBNET_RULE[all]}
  {
    printf '{"default": %s, "clients": {' "$def"
    for k in "${!SUBNET_RULE[@]}"; do
      [ "$k" = all ] && continue
      [ $first = 1 ] || printf ', '
      first=0
      printf '"%s": %s' "${NET_ADDR[$k]}" "${SUBNET_RULE[$k]}"
    done
    printf '}}\n'
  } >"$f.tmp" && mv "$f.tmp" "$f"
}

subnet_fault() { # name rule-json ('' removes it)
  if [ -z "$2" ]; then unset "SUBNET_RULE[$1]"; else SUBNET_RULE[$1]=$2; fi
  subnet_fault_write
}

subnet_link() { net_link "$1" "$2"; }

subnet_host() {
  local name=$1
  shift
  if [ -n "$SUBNET_NETNS" ]; then net_exec "$name" "$@"; else "$@"; fi
}

# The store URL of a participant (its bucket, or its prefix of the S3 bucket).
subnet_store_url() {
  if [ "$SUBNET_S3" = 1 ]; then
    echo "s3://$TESSERA_TEST_S3_BUCKET/$1?endpoint=$TESSERA_TEST_S3_ENDPOINT&region=$TESSERA_TEST_S3_REGION"
  else
    echo "file://$SUBNET_DIR/stores/$1"
  fi
}

subnet_start() { # name, extra args...
  local name=$1
  shift
  local role=tessera-miner k
  [ "$name" = "${SUBNET_NAMES[0]}" ] && role=tessera-validator
  for k in ${SUBNET_VALIDATORS:-}; do [ "$name" = "$k" ] && role=tessera-validator; done
  local store
  store=$(subnet_store_url "$name")
  local commit=()
  if [ "$SUBNET_S3" = 1 ]; then
    # peers read with the test account's credentials (a real node publishes
    # read-only keys); `tessera store commitment` encodes them properly
    local text
    text=$("$SUBNET_BIN/tessera" store commitment "$store") || return 1
    commit=(--store-commitment "$text")
  fi
  # on a subtensor runtime on this machine, peers' buckets are local
  # directories too (a local: chain allows them by default)
  [ -n "${SUBNET_CHAIN_SPEC:-}" ] && [ "$SUBNET_S3" != 1 ] && commit+=(--allow-local-peers)
  local envs=()
  [ -n "${SUBNET_ENV[$name]:-}" ] && read -ra envs <<<"${SUBNET_ENV[$name]}"
  local host=()
  [ -n "$SUBNET_NETNS" ] && host=(ip netns exec "${NET_NS[$name]}")
  "${host[@]}" env "${envs[@]}" "$SUBNET_BIN/$role" --chain "$SUBNET_CHAIN" --wallet demo --hotkey "$name" \
    --store-url "$store" "${commit[@]}" --state-dir "$SUBNET_DIR/state/$name" "$@" >>"$SUBNET_DIR/logs/$name.log" 2>&1 &
  SUBNET_PID[$name]=$!
}

subnet_stop() { # name [signal]
  local pid=${SUBNET_PID[$1]:-}
  [ -n "$pid" ] || return 0
  kill "-${2:-TERM}" "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "SUBNET_PID[$1]"
}

subnet_stop_all() {
  local k
  for k in "${!SUBNET_PID[@]}"; do kill "${SUBNET_PID[$k]}" 2>/dev/null || true; done
  for k in "${!SUBNET_PID[@]}"; do wait "${SUBNET_PID[$k]}" 2>/dev/null || true; done
  SUBNET_PID=()
  if [ "$SUBNET_S3_STARTED" = 1 ]; then
    bash "$SUBNET_REPO/tests/servers/s3.sh" stop "$SUBNET_DIR/s3" >/dev/null 2>&1 || true
    SUBNET_S3_STARTED=0
  fi
  if [ -n "$SUBNET_PROXY_PID" ]; then
    kill "$SUBNET_PROXY_PID" 2>/dev/null
    wait "$SUBNET_PROXY_PID" 2>/dev/null
    SUBNET_PROXY_PID=""
  fi
  [ -n "$SUBNET_NETNS" ] && declare -F net_cleanup >/dev/null && net_cleanup
  subnet_chain_stop
}

subnet_chain_stop() {
  if [ "$SUBNET_CHAIN_STARTED" = 1 ]; then
    kill "$SUBNET_DRIVER_PID" 2>/dev/null || true
    bash "$SUBNET_REPO/tests/chopsticks.sh" stop "$SUBNET_DIR/chain" >/dev/null 2>&1 || true
    SUBNET_CHAIN_STARTED=0
  fi
}

# The uid a participant holds (on a local subnet: its place in NAMES; on
# subtensor after the genesis' own uids).
subnet_uid() {
  local pk
  pk=$("$SUBNET_BIN/tessera" keys show --wallet demo --hotkey "$1" --json | sed 's/.*"public_key": "\([^"]*\)".*/\1/')
  "$SUBNET_BIN/tessera" chain metagraph --chain "$SUBNET_CHAIN" --json |
    /usr/bin/python3 -c 'import json,sys; print([n["uid"] for n in json.load(sys.stdin)["neurons"] if n["hotkey"] == sys.argv[1]][0])' "$pk"
}

# The number of windows the validator has processed (lines of its log).
subnet_windows_done() {
  local f=$SUBNET_DIR/state/${SUBNET_NAMES[0]}/windows.jsonl
  if [ -f "$f" ]; then wc -l <"$f"; else echo 0; fi
}

# Whether a node's state files load (prints what is wrong, returns 1): each
# must be whole: node.json parses, model.safetensors loads and evaluates
# (tessera eval), ef.safetensors (a miner's) has every parameter's name,
# shape and size, all finite.  With "strict", node.json must also vouch for
# the model beside it (its hash): a clean stop never leaves them from
# different windows.  (After a forced stop they may be, one rename done and
# the next not: the loader then ignores the pair and the node catches up.)
subnet_state_loads() { # name strict|whole
  local d=$SUBNET_DIR/state/$1
  "$SUBNET_BIN/tessera" eval --model "$SUBNET_MODEL" --init "$d/model.safetensors" --data "$SUBNET_REPO/$BUILD/corpus/val" \
    --seq 64 --samples 1 >/dev/null 2>&1 || { echo "$1/model.safetensors does not load"; return 1; }
  /usr/bin/python3 - "$d" "$2" <<'EOF'
import hashlib, json, math, os, struct, sys
d, strict = sys.argv[1], sys.argv[2] == "strict"
name = os.path.basename(d)
def st(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    end = max([t["data_offsets"][1] for k, t in h.items() if k != "__metadata__"] or [0])
    if len(b) != 8 + n + end: sys.exit(f"{name}/{os.path.basename(p)}: {len(b)} bytes, its header says {8 + n + end}")
    return h, b[8 + n:]
s = json.load(open(os.path.join(d, "node.json")))
if s.get("format") != "tessera-node-state" or s.get("version") != 1: sys.exit(f"{name}/node.json: wrong format")
hdr, data = st(os.path.join(d, "model.safetensors"))
if strict and hashlib.blake2b(data, digest_size=32).hexdigest() != s["model_hash"]:
    sys.exit(f"{name}/node.json does not vouch for model.safetensors")
if os.path.exists(os.path.join(d, "ef.safetensors")):
    eh, ed = st(os.path.join(d, "ef.safetensors"))
    for k, t in hdr.items():
        if k == "__metadata__": continue
        e = eh.get(k)
        if not e or e["dtype"] != "F32" or e["shape"] != t["shape"]: sys.exit(f"{name}/ef.safetensors: {k} missing or misshaped")
        a, b = e["data_offsets"]
        if b - a != 4 * math.prod(t["shape"]): sys.exit(f"{name}/ef.safetensors: {k} has the wrong size")
        if not all(math.isfinite(v) for v in struct.unpack(f"<{(b - a) // 4}f", ed[a:b])):
            sys.exit(f"{name}/ef.safetensors: {k} is not finite")
elif s.get("error_feedback"):
    sys.exit(f"{name}/node.json names an error feedback, ef.safetensors is missing")
EOF
}
