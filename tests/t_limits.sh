#!/usr/bin/env bash
# t_limits.sh - numbers a user or a peer gives are checked at their limits:
#  - the daemons refuse every out-of-range option at start-up, with a short
#    error naming the option as it was given (flag, TESSERA_* variable or
#    config key), a non-zero exit and no crash (exit status < 128), on a
#    subnet where nothing else is wrong (so the range check is what stops
#    them: before it, --threads 100000 crashed in libgomp);
#  - the codec tools refuse a zstd bomb (a signed upload whose 120 KB body
#    declares 4 GB) quickly and within a bounded memory: by default they
#    decompress at most 1 GiB, --max-size changes it;
#  - the codec tools' own numeric options have ranges.
set -u
BUILD=${BUILD:-build}
BIN=$BUILD/bin
PY=/usr/bin/python3
N=t_limits
T=$(mktemp -d "${TMPDIR:-/tmp}/t_limits-XXXXXX"); trap 'rm -rf "$T"' EXIT
export TESSERA_HOME=$T/home
unset TESSERA_CONFIG TESSERA_THREADS TESSERA_METRICS_PORT TESSERA_STORE_TIMEOUT TESSERA_STORE_RETRIES \
  TESSERA_MAX_WINDOWS TESSERA_COPY_UID

ok() { echo "ok   $N/$1"; }
fail() { # name, why...
  local name=$1; shift
  echo "FAIL $N/$name"; printf '%s\n' "$@" | head -8 | sed 's/^/    /'
}

# --- the daemons --------------------------------------------------------
NET=$T/net
setup() {
  "$BIN/tessera" data synth --out "$T/corpus" --tokens 20000 --seed 1 --val-fraction 0.1 >"$T/init.log" 2>&1 &&
    printf '{"model": "tiny", "seq_len": 32, "data": "%s", "val_data": "%s"}\n' "$T/corpus/train" "$T/corpus/val" \
      >"$T/params.json" &&
    "$BIN/tessera" localnet init --dir "$NET" --run-id limits --block-time 1 --blocks-per-window 10 \
      --params "$T/params.json" >>"$T/init.log" 2>&1 &&
    "$BIN/tessera" keygen --hotkey m >>"$T/init.log" 2>&1 &&
    "$BIN/tessera" keygen --hotkey v >>"$T/init.log" 2>&1 &&
    "$BIN/tessera" localnet register --dir "$NET" --hotkey m >>"$T/init.log" 2>&1 &&
    "$BIN/tessera" localnet register --dir "$NET" --hotkey v >>"$T/init.log" 2>&1 &&
    mkdir -p "$T/store-m" "$T/store-v"
}
if setup; then ok subnet-setup; else fail subnet-setup "$(cat "$T/init.log")"; fi

# refused NAME PATTERN [VAR=VALUE...] -- DAEMON ARGS...: a valid command line
# but for one value; the daemon must stop at once (exit 1..127, not the
# timeout's 124) with a short message matching PATTERN.
refused() {
  local name=$1 pat=$2; shift 2
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  local d=$1; shift
  local role=${d#tessera-}
  local out rc
  out=$(env "${envs[@]}" timeout 20 "$BIN/$d" --chain "local:$NET" --hotkey "${role:0:1}" \
    --store-url "file://$T/store-${role:0:1}" --state-dir "$T/state-$role" --max-windows 1 "$@" 2>&1)
  rc=$?
  if [ $rc -ge 1 ] && [ $rc -lt 128 ] && [ $rc -ne 124 ] && grep -q -- "$pat" <<<"$out" &&
    [ "$(wc -l <<<"$out")" -le 2 ]; then
    ok "$name"
  else
    fail "$name" "rc=$rc (want 1..127, not 124), want a short error matching '$pat':" "$out"
  fi
}

for d in tessera-miner tessera-validator; do
  r=${d#tessera-}
  refused "$r-threads-huge" "^$d: --threads: 100000 is outside \[0, [0-9]*\]$" -- $d --threads 100000
  refused "$r-threads-negative" "^$d: --threads: -5 is outside \[0, " -- $d --threads -5
  refused "$r-metrics-port-negative" "^$d: --metrics-port: -7 is outside \[-1, 65535\]$" -- $d --metrics-port -7
  refused "$r-metrics-port-huge" "^$d: --metrics-port: 65536 is outside" -- $d --metrics-port=65536
  refused "$r-store-timeout-negative" "^$d: --store-timeout: -5 is outside (0, 3600\]$" -- $d --store-timeout -5
  refused "$r-store-timeout-zero" "^$d: --store-timeout: 0 is outside (0, 3600\]$" -- $d --store-timeout 0
  refused "$r-store-retries-negative" "^$d: --store-retries: -3 is outside \[0, 100\]$" -- $d --store-retries -3
  refused "$r-max-windows-negative" "^$d: --max-windows: -1 is outside \[0, inf)$" -- $d --max-windows -1
  # the environment and the config file, named as given
  refused "$r-threads-env" "^$d: TESSERA_THREADS: 100000 is outside \[0, " TESSERA_THREADS=100000 -- $d
  refused "$r-retries-env" "^$d: TESSERA_STORE_RETRIES: -3 is outside \[0, 100\]$" TESSERA_STORE_RETRIES=-3 -- $d
  printf '{"threads": 100000, "store": {"timeout": 30}}\n' >"$T/$r-threads.json"
  refused "$r-threads-config" "config key 'threads': 100000 is outside \[0, " -- $d --config "$T/$r-threads.json"
  printf '{"store": {"timeout": -5}}\n' >"$T/$r-timeout.json"
  refused "$r-timeout-config" "$r-timeout.json: config key 'store.timeout': -5 is outside (0, 3600\]$" \
    -- $d --config "$T/$r-timeout.json"
  printf '{"metrics_port": -7}\n' >"$T/$r-port.json"
  refused "$r-port-config-env" "config key 'metrics_port': -7 is outside" TESSERA_CONFIG="$T/$r-port.json" -- $d
done
refused miner-copy-uid "^tessera-miner: --copy-uid: 4096 is outside \[-1, 4095\]$" -- tessera-miner --copy-uid 4096
refused miner-copy-uid-negative "^tessera-miner: --copy-uid: -2 is outside \[-1, 4095\]$" -- tessera-miner --copy-uid -2
# the range check comes before any other (a missing --chain included)
out=$("$BIN/tessera-miner" --threads 100000 2>&1); rc=$?
if [ $rc -eq 2 ] && grep -q -- '--threads: 100000 is outside' <<<"$out"; then ok range-before-required
else fail range-before-required "rc=$rc" "$out"; fi
# --help states each range
out=$("$BIN/tessera-miner" --help 2>&1)
if grep -q -- '--threads INT .* in \[0, [0-9]*\]' <<<"$out" && grep -q -- '--metrics-port INT .* in \[-1, 65535\]' <<<"$out" &&
  grep -q -- '--store-timeout NUM .* in (0, 3600\]' <<<"$out" && grep -q -- '--copy-uid INT .* in \[-1, 4095\]' <<<"$out"; then
  ok help-shows-ranges
else fail help-shows-ranges "$out"; fi

# --- the codec tools: zstd bombs ----------------------------------------
# bomb FILE B [FCS]: a signed upload (its own key; the tools check the
# signature against the key it names) whose body is one zstd frame of RLE
# blocks, 4 bytes for each 128 KiB, that inflates to B bytes: B also declared
# in the header.  FCS 0: the frame does not declare its size.  The header is
# valid (signature scheme 1, sr25519; reserved bytes zero) and the signature
# is made by `tessera keys sign` with the hotkey bomb/b (fixed seed 07..07,
# created below), so a tool gets past the scheme and the signature and the
# size is what stops it.
BOMB_SEED=0x$(printf '07%.0s' $(seq 32))
bomb() {
  "$PY" - "$BIN/tessera" "$@" <<'EOF'
import hashlib, json, struct, subprocess, sys
tessera, path, B = sys.argv[1], sys.argv[2], int(sys.argv[3])
fcs = len(sys.argv) < 5 or sys.argv[4] != "0"
key = ["--wallet", "bomb", "--hotkey", "b"]
pk = bytes.fromhex(json.loads(subprocess.run([tessera, "keys", "show", *key, "--json"], capture_output=True,
                                             text=True, check=True).stdout)["public_key"][2:])
assert len(pk) == 32
blk = 1 << 17
frame = bytearray(b"\x28\xb5\x2f\xfd")
frame += bytes([0xE0]) + struct.pack("<Q", B) if fcs else bytes([0x00, (17 - 10) << 3])
left = B
while left > 0:
    n = min(left, blk)
    left -= n
    frame += struct.pack("<I", (n << 3) | (1 << 1) | (left == 0))[:3] + b"\x00"
run = b"bomb"
# magic, version, flags, header size, run id; byte 81 the signature scheme
# (1, sr25519), 82..83 reserved zero (docs/FORMATS.md 7.1)
h = b"TESSGRAD" + struct.pack("<HHI", 1, 0, 264) + bytes([len(run)]) + run.ljust(64, b"\0") + b"\x01\0\0"
h += struct.pack("<IQ", 0, 1) + pk + b"\0" * 96
h += struct.pack("<HHHH", 64, 4, 64, 0) + struct.pack("<fff", 0.95, 1.0, 6.0)
h += struct.pack("<IQQ", 1, B, len(frame))
assert len(h) == 264 and h[81] == 1
w = h + bytes(frame)
digest = hashlib.blake2b(w, digest_size=32).digest()
sig = subprocess.run([tessera, "keys", "sign", *key, "--tag", "tessera/gradient/v1", "--hex", digest.hex()],
                     capture_output=True, text=True, check=True).stdout.strip()
assert len(sig) == 128
open(path, "wb").write(w + bytes.fromhex(sig))
EOF
}

# bounded OUT CMD...: runs CMD with its output in OUT, under a 1 GiB address
# space limit (not under AddressSanitizer, which reserves terabytes of it),
# and prints "rc seconds peak-RSS-KiB".
ASAN=0
ldd "$BIN/tessera" 2>/dev/null | grep -q libasan && ASAN=1
bounded() {
  "$PY" - "$ASAN" "$@" <<'EOF'
import resource, subprocess, sys, time
asan, out, cmd = sys.argv[1] == "1", sys.argv[2], sys.argv[3:]
def limit():
    if not asan:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
t0 = time.monotonic()
with open(out, "wb") as f:
    try:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, preexec_fn=limit, timeout=60).returncode
    except subprocess.TimeoutExpired:
        rc = 124
dt = time.monotonic() - t0
print(rc, "%.2f" % dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
EOF
}

BIG=$T/big.g SMALL=$T/small.g SMALL0=$T/small0.g
if "$BIN/tessera" wallet new-hotkey --wallet bomb --hotkey b --seed "$BOMB_SEED" >"$T/bomb.log" 2>&1 &&
  bomb "$BIG" 4000000000 2>>"$T/bomb.log" && bomb "$SMALL" 8388608 2>>"$T/bomb.log" &&
  bomb "$SMALL0" 8388608 0 2>>"$T/bomb.log" && [ "$(stat -c %s "$BIG")" -lt 200000 ]; then
  ok codec-bombs-built
else fail codec-bombs-built "could not build the bombs:" "$(cat "$T/bomb.log")"; fi
# the bombs are valid but for their size: each one's signature verifies under
# the key its header names (tessera keys verify, over the BLAKE2b-256 of all
# but the last 64 bytes), so the refusals below are for the size
BOMB_PK=$("$BIN/tessera" keys show --wallet bomb --hotkey b --json 2>/dev/null |
  "$PY" -c 'import json, sys; print(json.load(sys.stdin)["public_key"])' 2>/dev/null)
bad=""
for f in "$BIG" "$SMALL" "$SMALL0"; do
  read -r hdr digest sig < <("$PY" -c '
import hashlib, sys
w = open(sys.argv[1], "rb").read()
print(w[81:84].hex() + w[96:128].hex(), hashlib.blake2b(w[:-64], digest_size=32).hexdigest(), w[-64:].hex())' "$f" 2>&1)
  out=$("$BIN/tessera" keys verify --pubkey "$BOMB_PK" --tag tessera/gradient/v1 --sig "$sig" --hex "$digest" 2>&1)
  [ "$hdr" = "010000${BOMB_PK#0x}" ] && [ "$out" = ok ] || bad="$bad $(basename "$f"): header $hdr, keys verify: $out;"
done
if [ -n "$BOMB_PK" ] && [ -z "$bad" ]; then ok codec-bombs-signed-sr25519
else fail codec-bombs-signed-sr25519 "key ${BOMB_PK:-?}:$bad"; fi

# refused_bomb NAME CMD...: exit 1, "oversized" with the limit and --max-size
# named, in under 5 s and 256 MiB.
refused_bomb() {
  local name=$1; shift
  local res rc dt rss out
  res=$(bounded "$T/out" "$@"); read -r rc dt rss <<<"$res"
  out=$(cat "$T/out")
  if [ "$rc" = 1 ] && grep -q 'over the limit of 1073741824' <<<"$out" && grep -q -- '--max-size' <<<"$out" &&
    "$PY" -c "import sys; sys.exit(0 if $dt < 5 and $rss < 262144 else 1)"; then
    ok "$name"
  else
    fail "$name" "rc=$rc, ${dt}s, peak RSS ${rss} KiB; want exit 1, the 1 GiB limit and --max-size named, < 5 s, < 256 MiB:" "$out"
  fi
}
refused_bomb codec-inspect-bomb "$BIN/tessera" codec inspect "$BIG"
if grep -q '"reason":	"oversized"' "$T/out"; then ok codec-inspect-bomb-reason
else fail codec-inspect-bomb-reason "$(cat "$T/out")"; fi
refused_bomb codec-decode-bomb "$BIN/tessera" codec decode "$BIG" --out "$T/dense.safetensors"
refused_bomb codec-aggregate-bomb "$BIN/tessera" codec aggregate "$BIG" "$SMALL" --out "$T/g.safetensors"
refused_bomb codec-overlap-bomb "$BIN/tessera" codec overlap "$BIG" "$SMALL"
[ ! -e "$T/dense.safetensors" ] && [ ! -e "$T/g.safetensors" ] && ok codec-bomb-writes-nothing ||
  fail codec-bomb-writes-nothing "an output file was written"

# --max-size moves the limit: 8 MiB declared is refused under 1 MiB (either
# frame form), and decompressed (then refused for its records) under 16 MiB.
for f in "$SMALL" "$SMALL0"; do
  out=$("$BIN/tessera" codec inspect --max-size 1048576 "$f" 2>&1); rc=$?
  if [ $rc -eq 1 ] && grep -q '"reason":	"oversized"' <<<"$out" && grep -q 'over the limit of 1048576' <<<"$out"; then
    ok "codec-max-size-refuses-$(basename "$f" .g)"
  else fail "codec-max-size-refuses-$(basename "$f" .g)" "rc=$rc" "$out"; fi
done
out=$("$BIN/tessera" codec inspect --max-size 16777216 "$SMALL" 2>&1); rc=$?
# (past the signature, which held: the bomb's own key signed it)
if [ $rc -eq 1 ] && grep -q '"reason":	"bad_record"' <<<"$out" && grep -q '"signature_valid":	true' <<<"$out"; then
  ok codec-max-size-allows
else fail codec-max-size-allows "rc=$rc" "$out"; fi
out=$("$BIN/tessera" codec decode "$SMALL" --max-size=1048576 --out "$T/d.safetensors" 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -q 'over the limit of 1048576 (--max-size)' <<<"$out" && [ ! -e "$T/d.safetensors" ]; then
  ok codec-decode-max-size
else fail codec-decode-max-size "rc=$rc" "$out"; fi
# the file itself is capped too: no more than an upload of such a body
head -c 100000 /dev/zero >"$T/junk.g"
out=$("$BIN/tessera" codec inspect --max-size 1000 "$T/junk.g" 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -q 'over the limit of .*--max-size' <<<"$out"; then ok codec-max-size-caps-the-file
else fail codec-max-size-caps-the-file "rc=$rc" "$out"; fi

# --- the codec tools' numeric options -------------------------------------
# expect_fail NAME PATTERN CMD...: exit 2 and one line matching
expect_fail() {
  local name=$1 pat=$2; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ $rc -eq 2 ] && grep -q -- "$pat" <<<"$out" && [ "$(wc -l <<<"$out")" -le 1 ]; then ok "$name"
  else fail "$name" "rc=$rc, want exit 2 and one line matching '$pat':" "$out"; fi
}
expect_fail codec-max-size-zero "--max-size: 0 is outside \[1, " "$BIN/tessera" codec inspect --max-size 0 "$SMALL"
expect_fail codec-max-size-huge "--max-size: 1099511627777 is outside" \
  "$BIN/tessera" codec overlap --max-size 1099511627777 "$SMALL" "$SMALL"
C=("$BIN/tessera" codec compress --delta "$T/none" --out "$T/o" --ef-out "$T/e" --hotkey m --run r --window 1 --uid 1)
expect_fail codec-k-small "--k: 1 is outside \[2, 4096\]" "${C[@]}" --k 1
expect_fail codec-k-large "--k: 5000 is outside \[2, 4096\]" "${C[@]}" --k 5000
expect_fail codec-bins "--bins: 1000 is outside \[4, 256\]" "${C[@]}" --bins 1000
expect_fail codec-chunk "--chunk: 65 is outside \[1, 64\]" "${C[@]}" --chunk 65
expect_fail codec-zstd-level "--zstd-level: 99 is outside \[1, 22\]" "${C[@]}" --zstd-level 99
expect_fail codec-beta "--beta: 1.5 is outside \[0, 1\]" "${C[@]}" --beta 1.5
expect_fail codec-range "--range: 0 is outside (0, " "${C[@]}" --range 0
expect_fail codec-window "--window: -1 is outside \[0, " "${C[@]}" --window -1
expect_fail codec-uid "--uid: 4294967296 is outside \[0, 4294967295\]" "${C[@]}" --uid 4294967296
# --- every other tessera subcommand's numeric options ----------------------
# ranged NAME PATTERN CMD...: a non-zero exit below 128 and a short error
# naming the option (the range check comes before any other, so CMD needs
# nothing else to be valid)
ranged() {
  local name=$1 pat=$2; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ $rc -ge 1 ] && [ $rc -lt 128 ] && grep -q -- "$pat" <<<"$out" && [ "$(wc -l <<<"$out")" -le 2 ]; then
    ok "$name"
  else fail "$name" "rc=$rc (want 1..127), want a short error matching '$pat':" "$out"; fi
}
# each line: verb words | option | a value outside its range
while IFS='|' read -r verb opt val; do
  [ -n "$verb" ] || continue
  read -r -a words <<<"$verb"
  ranged "${verb// /-}-${opt#--}" "$opt: $val is outside" "$BIN/tessera" "${words[@]}" "$opt" "$val"
done <<'EOF'
model init|--threads|100000
model init|--vocab|16777217
model init|--seed|-1
model info|--seq|2000000
model info|--batch|-1
model logits|--samples|0
model logits|--seq|0
train|--batch|0
train|--seq|1048577
train|--steps|-1
train|--lr|-0.1
train|--warmup|-2
train|--lr-total|-1
train|--min-lr-ratio|1.5
train|--weight-decay|-1
train|--beta1|1
train|--beta2|-0.5
train|--eps|0
train|--clip|-1
train|--start-sample|-1
train|--val-every|-1
train|--val-samples|-1
train|--save-every|-1
train|--threads|-5
eval|--samples|0
eval|--batch|65537
data prep|--shard-tokens|1
data synth|--tokens|1
data synth|--val-fraction|-0.5
data inspect|--seq|16777217
data inspect|--sample|-1
data inspect|--show|-1
data pages|--uid|4294967295
data pages|--window|-2
data pages|--count|-2
data pages|--count|16777217
data pages|--seq|0
ckpt verify|--uid|4096
ckpt verify|--from|-2
ckpt verify|--to|-2
gauntlet sim|--windows|0
gauntlet sim|--seed|-1
store ls|--parallel|0
store put|--part-size|1048576
store get|--retries|101
store stat|--stall-timeout|0
store rm|--connect-timeout|3601
store abort|--older-than|-1
localnet init|--netuid|65536
localnet init|--block-time|0.0001
localnet init|--blocks-per-window|0
localnet init|--max-uids|4097
localnet init|--max-validators|0
localnet init|--immunity-period|-1
localnet init|--weights-rate-limit|-1
localnet init|--genesis-time|-1
EOF
# --help states the ranges
out=$("$BIN/tessera" train --help 2>&1)
if grep -q -- '--batch INT .* in \[1, 65536\]' <<<"$out" && grep -q -- '--eps NUM .* in (0, 1\]' <<<"$out"; then
  ok train-help-shows-ranges
else fail train-help-shows-ranges "$out"; fi
exit 0
