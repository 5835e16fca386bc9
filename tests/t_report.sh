#!/usr/bin/env bash
# t_report.sh - tessera report's "on chain" column: on a local subnet where
# two validators set different weights, it shows the weights of the state
# directory's validator (named with --hotkey, or by the daemons' default state
# directory $TESSERA_HOME/nodes/HOTKEY), never another validator's.  The state
# directory is written by hand: one windows.jsonl line and an empty
# gauntlet.state (docs/FORMATS.md section 10).
set -u
BIN=${BUILD:-build}/bin
PY=/usr/bin/python3
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export TESSERA_HOME=$T/home
unset TESSERA_WALLET TESSERA_HOTKEY TESSERA_CHAIN TESSERA_STATE_DIR TESSERA_JSON TESSERA_SVG

ok() { echo "ok   t_report/$1"; }
fail() { # name, why, output
  echo "FAIL t_report/$1"; echo "    $2"; printf '%s\n' "$3" | head -15 | sed 's/^/    | /'
}
# The "on chain" cell of a uid's row in the text table.
cell() { awk -v u="$2" '$1 == "uid" && $2 == "final" { t = 1; next } t && $1 == u { print $4; exit }' <<<"$1"; }
expect_cells() { # name, output, uid=cell...
  local name=$1 out=$2; shift 2
  local kv got
  for kv in "$@"; do
    got=$(cell "$out" "${kv%%=*}")
    if [ "$got" != "${kv#*=}" ]; then
      fail "$name" "uid ${kv%%=*}: on chain '$got', want '${kv#*=}'" "$out"; return
    fi
  done
  ok "$name"
}

# ----------------------------------------------------------- the subnet
# uids: 0 v1, 1 v2 (both staked validators), 2 and 3 miners, 4 v3 (staked,
# sets no weights).  Quantized (largest 65535): v1 2=65535 3=16384,
# v2 2=32768 3=65535.
S=$T/subnet
setup() {
  "$BIN/tessera" localnet init --dir "$S" --run-id t-report || return 1
  local k
  for k in v1 v2 m1 m2 v3; do
    "$BIN/tessera" keygen --wallet w --hotkey "$k" && "$BIN/tessera" localnet register --dir "$S" --wallet w --hotkey "$k" || return 1
  done
  for k in v1 v2 v3; do "$BIN/tessera" localnet stake --dir "$S" --wallet w --hotkey "$k" --amount 100 || return 1; done
  "$BIN/tessera" localnet set-weights --dir "$S" --wallet w --hotkey v1 --weights 2=1,3=0.25 &&
    "$BIN/tessera" localnet set-weights --dir "$S" --wallet w --hotkey v2 --weights 2=0.5,3=1
}
if out=$(setup 2>&1); then ok subnet; else fail subnet "setting up the local subnet failed" "$out"; exit 0; fi

# A validator state directory: what report reads.
state_dir() {
  mkdir -p "$1" &&
    echo '{"window":3,"time":0,"held_out_loss":3.25,"model_hash":"00112233445566778899aabbccddeeff","gathered":[2,3],'`
      `'"evaluated":[{"uid":2,"status":"ok","final_score":0.5},{"uid":3,"status":"ok","final_score":0.25}],'`
      `'"weights":{"2":0.75,"3":0.25}}' >"$1/windows.jsonl" &&
    $PY - "$1/gauntlet.state" <<'EOF'
import hashlib, struct, sys
# magic, version 1, header 48, record 256, 0 records, window "never", reserved
h = b"TSGSTATE" + struct.pack("<IIIIQ", 1, 48, 256, 0, 2**64 - 1) + bytes(16)
open(sys.argv[1], "wb").write(h + hashlib.blake2b(h, digest_size=32).digest())
EOF
}
D=$T/state/validator
if out=$(state_dir "$D" 2>&1 && "$BIN/tessera" gauntlet state "$D/gauntlet.state" 2>&1); then ok state-dir; else
  fail state-dir "writing the state directory failed" "$out"; exit 0; fi
C=local:$S

# The column is the named validator's row, whichever comes last on chain.
out=$("$BIN/tessera" report --state-dir "$D" --chain "$C" --wallet w --hotkey v1 2>&1)
expect_cells hotkey-v1 "$out" 2=65535 3=16384
if grep -q "on chain: the weights uid 0 " <<<"$out"; then ok hotkey-v1-says-whose; else
  fail hotkey-v1-says-whose "no line naming uid 0 as the validator" "$out"; fi
out=$("$BIN/tessera" report --state-dir "$D" --chain "$C" --wallet w --hotkey v2 2>&1)
expect_cells hotkey-v2 "$out" 2=32768 3=65535
pk=$("$BIN/tessera" keys show --wallet w --hotkey v1 --json | sed -n 's/.*"public_key": *"\(0x[0-9a-f]*\)".*/\1/p')
out=$("$BIN/tessera" report --state-dir "$D" --chain "$C" --hotkey "$pk" 2>&1)
expect_cells hotkey-as-0x-key "$out" 2=65535 3=16384

# --json carries the same numbers.
out=$("$BIN/tessera" report --state-dir "$D" --chain "$C" --wallet w --hotkey v1 --json 2>&1)
if $PY -c '
import json, sys
m = {o["uid"]: o.get("on_chain", "absent") for o in json.loads(sys.argv[1])}
sys.exit(0 if m == {2: 65535, 3: 16384} else 1)' "$out" 2>/dev/null; then ok json-on-chain; else
  fail json-on-chain "want on_chain 65535 for uid 2 and 16384 for uid 3" "$out"; fi

# The daemons' default state directory names the hotkey (wallet from the
# environment, as the daemon reads it).
N=$TESSERA_HOME/nodes/v1
state_dir "$N" >/dev/null 2>&1
out=$(TESSERA_WALLET=w "$BIN/tessera" report --state-dir "$N" --chain "$C" 2>&1)
expect_cells default-state-dir "$out" 2=65535 3=16384

# Nothing names the validator: no one else's weights are shown.
out=$("$BIN/tessera" report --state-dir "$D" --chain "$C" 2>&1)
expect_cells unnamed-shows-dash "$out" 2=- 3=-
if grep -q "on chain: not shown: name this validator with --hotkey" <<<"$out"; then ok unnamed-says-why; else
  fail unnamed-says-why "no line asking for --hotkey" "$out"; fi
out=$("$BIN/tessera" report --state-dir "$D" --chain "$C" --json 2>&1)
if $PY -c '
import json, sys
sys.exit(0 if all(o.get("on_chain", 0) is None for o in json.loads(sys.argv[1])) else 1)' "$out" 2>/dev/null; then
  ok unnamed-json-null; else fail unnamed-json-null "want on_chain null" "$out"; fi

# A validator with no weights on chain, and a hotkey that names nothing.
out=$("$BIN/tessera" report --state-dir "$D" --chain "$C" --wallet w --hotkey v3 2>&1)
expect_cells no-weights-shows-dash "$out" 2=- 3=-
if grep -q "on chain: none: uid 4 .* has set no weights" <<<"$out"; then ok no-weights-says-why; else
  fail no-weights-says-why "no line saying uid 4 set no weights" "$out"; fi
out=$("$BIN/tessera" report --state-dir "$D" --chain "$C" --wallet w --hotkey nope 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "hotkey 'nope'" <<<"$out" && [ "$(wc -l <<<"$out")" -le 2 ]; then ok unknown-hotkey-fails; else
  fail unknown-hotkey-fails "rc=$rc, want a short error naming the hotkey" "$out"; fi

# Without --chain the report is unchanged: no on_chain key.
out=$("$BIN/tessera" report --state-dir "$D" --json 2>&1)
if $PY -c '
import json, sys
sys.exit(0 if all("on_chain" not in o for o in json.loads(sys.argv[1])) else 1)' "$out" 2>/dev/null; then
  ok no-chain-json-unchanged; else fail no-chain-json-unchanged "on_chain without --chain" "$out"; fi
exit 0
