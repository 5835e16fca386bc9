#!/usr/bin/env bash
# t_yuma_runtime.sh - Tessera's Yuma consensus (yuma/yuma.c, through
# `tessera chain yuma --in FILE`) against the real runtime's own epoch on the
# same weights and stakes.
#
# The runtime is mainnet subtensor spec 143 (classic Yuma, opentensor/subtensor
# commit bc8a966cd): the code substitute of block 2585476 run by chopsticks
# (tests/chopsticks.sh) as a wasm override over the testfinney genesis (spec
# 103; the first block upgrades it).  Neither file is part of this repository;
# point the test at copies kept elsewhere (from opentensor/subtensor):
#   TESSERA_TEST_YUMA_SPEC  chainspecs/raw_spec_testfinney.json
#   TESSERA_TEST_YUMA_WASM  node/src/chain_spec/code_substitute_2585476.txt
#                           (hex text, with or without 0x, or a .wasm binary)
#
# tests/npm/yuma_runtime.mjs builds a subnet (4 validators with different
# stakes, one so small its bonds store as zeros; 5 miners), sets weights that
# disagree (one validator off the majority, a self-weight, a validator
# weighting a validator), and runs six epochs (no permits yet; weights without
# bonds; bonds from the previous epoch, an outdated registration and a permit
# that moves; an inactive validator; a permit moving to a newly staked uid;
# no active stake at all), recording before each epoch block
# everything the epoch reads and after it everything it stored.  Each epoch's
# input goes through `tessera chain yuma`, and every field of every uid must
# equal the runtime's exactly: one line per epoch and quantity group.
#
# Without the two variables (or when npm cannot install chopsticks) the test
# says it was skipped.
set -u
BUILD=${BUILD:-build}
BIN=$BUILD/bin
N=t_yuma_runtime
ok() { echo "ok   $N/$1"; }
fail() { # name, why...
  local name=$1
  shift
  echo "FAIL $N/$name"
  printf '%s\n' "$@" | head -12 | sed 's/^/    /'
}
skip() { echo "skip $N"; echo "    skipped: $1"; exit 0; }

SPEC=${TESSERA_TEST_YUMA_SPEC:-}
WASM=${TESSERA_TEST_YUMA_WASM:-}
if [ -z "$SPEC" ] || [ -z "$WASM" ]; then
  skip "TESSERA_TEST_YUMA_SPEC and TESSERA_TEST_YUMA_WASM are not both set (subtensor's raw_spec_testfinney.json and code_substitute_2585476.txt: runtime spec 143)"
fi
for f in "$SPEC" "$WASM"; do
  [ -f "$f" ] || { fail setup "$f does not exist"; exit 0; }
done
[ -x "$BIN/tessera" ] || { fail setup "$BIN/tessera is not built"; exit 0; }

T=$(mktemp -d "${TMPDIR:-/tmp}/t_yuma_runtime-XXXXXX")
cleanup() {
  bash tests/chopsticks.sh stop "$T/cs" >/dev/null 2>&1
  rm -rf "$T"
}
trap cleanup EXIT

# chopsticks takes the override as a binary .wasm or as text starting "0x"
if [ "$(head -c 2 "$WASM")" = "0x" ]; then
  cp "$WASM" "$T/runtime.wasm.hex"
elif ! LC_ALL=C grep -q '[^0-9a-fA-F[:space:]]' "$WASM"; then # hex text without 0x
  { printf '0x'; tr -d ' \t\r\n' <"$WASM"; } >"$T/runtime.wasm.hex"
else
  cp "$WASM" "$T/runtime.wasm.hex" # a binary: chopsticks hex-encodes it itself
fi

if ! out=$(TESSERA_TEST_CHAINSPEC=$SPEC TESSERA_CHOPSTICKS_ARGS="--wasm-override $T/runtime.wasm.hex --allow-unresolved-imports" \
  TESSERA_CHOPSTICKS_BLOCK_MS='' TESSERA_CHOPSTICKS_LIFETIME=600 bash tests/chopsticks.sh start "$T/cs" 2>&1); then
  if grep -q "npm install\|registry\|node and npm" <<<"$out"; then skip "chopsticks could not be installed from npm: $(tail -n 1 <<<"$out")"; fi
  fail chopsticks_starts "$out"
  exit 0
fi
URL=$(sed -n 's/^CHOPSTICKS_URL=//p' <<<"$out")
NPM=$(bash tests/npm_oracle.sh chopsticks @acala-network/chopsticks@1.5.1 @polkadot/api@16.5.6 @polkadot/keyring@14.0.3 \
  @polkadot/util-crypto@14.0.3 @polkadot/util@14.0.3) || skip "the chopsticks npm packages could not be installed"

# --- the runtime's epochs -----------------------------------------------------
t0=$(date +%s)
if ! timeout 150 node tests/npm/yuma_runtime.mjs "$NPM" "$URL" "$T/epochs.json" >"$T/runtime.log" 2>&1; then
  fail runtime_runs_the_epochs "$(grep -v '^\s*$' "$T/runtime.log" | tail -n 12)"
  exit 0
fi
ok "runtime_runs_the_epochs (spec 143, $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["epochs"]))' "$T/epochs.json") epochs in $(($(date +%s) - t0)) s)"

# --- Tessera on the same input, field by field ---------------------------------
python3 - "$T/epochs.json" "$T" <<'EOF' >"$T/inputs.txt"
import json, sys
d = json.load(open(sys.argv[1]))
for i, e in enumerate(d["epochs"]):
    p = "%s/in%d.json" % (sys.argv[2], i)
    json.dump(e["input"], open(p, "w"))
    print(e["label"], p)
EOF
while read -r label in; do
  o=${in%.json}.out.json
  if ! "$BIN/tessera" chain yuma --in "$in" >"$o" 2>"$o.err"; then
    fail "$label" "tessera chain yuma --in exited $?:" "$(head -c 2000 "$o.err")"
    continue
  fi
  python3 - "$T/epochs.json" "$label" "$o" <<'EOF'
import json, sys
N = "t_yuma_runtime"
epochs = {e["label"]: e for e in json.load(open(sys.argv[1]))["epochs"]}
e = epochs[sys.argv[2]]
label = sys.argv[2]
try:
    ours = json.load(open(sys.argv[3]))["neurons"]
except Exception as x:
    print("FAIL %s/%s\n    tessera's output is not the yuma.h output JSON: %s" % (N, label, x))
    sys.exit(0)
theirs = e["runtime"]["neurons"]
groups = [
    ("flags", ["active", "validator_permit"]),
    ("consensus", ["consensus", "validator_trust"]),
    ("ranks", ["rank", "trust", "incentive"]),
    ("dividends", ["dividends", "pruning_score"]),
    ("emission", ["emission", "server_emission", "validator_emission"]),
    ("bonds", ["bonds"]),
]
if len(ours) != len(theirs):
    print("FAIL %s/%s\n    tessera has %d uids, the runtime %d" % (N, label, len(ours), len(theirs)))
    sys.exit(0)
def norm(field, v):
    if field == "bonds":
        return [list(x) for x in v]
    if isinstance(v, bool) or field in ("active", "validator_permit"):
        return bool(v)
    return int(v)
for g, fields in groups:
    bad = None
    for u, (a, b) in enumerate(zip(ours, theirs)):
        for f in fields:
            if f not in a:
                bad = "uid %d: tessera has no %s" % (u, f)
            elif norm(f, a[f]) != norm(f, b[f]):
                bad = "uid %d %s: tessera %s, runtime %s" % (u, f, json.dumps(a[f]), json.dumps(b[f]))
            if bad:
                break
        if bad:
            break
    if bad:
        print("FAIL %s/%s/%s\n    block %d: %s" % (N, label, g, e["block"], bad))
    else:
        print("ok   %s/%s/%s (%s equal for all %d uids)" % (N, label, g, " ".join(fields), len(theirs)))
EOF
done <"$T/inputs.txt"
