#!/usr/bin/env bash
# t_cli.sh - the three binaries: --help, --version, error lines, keys, and
# localnet status, which shows what a commitment names but never its secrets
# and what the last epoch gave each uid.
#
# Every check tests the command's exit status (pipefail where it pipes) and
# the content it claims, so that an empty or wrong output fails.
set -u
BIN=${BUILD:-build}/bin
PY=/usr/bin/python3
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export TESSERA_HOME=$T/home

check() { # name, command...
  local name=$1; shift
  local out
  if out=$("$@" 2>&1); then echo "ok   t_cli/$name"; else
    echo "FAIL t_cli/$name"; printf '%s\n' "$out" | head -8 | sed 's/^/    /'; fi
}
expect_fail() { # name, pattern, command...
  local name=$1 pat=$2; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ $rc -ne 0 ] && grep -q -- "$pat" <<<"$out" && [ "$(wc -l <<<"$out")" -le 2 ]; then
    echo "ok   t_cli/$name"
  else
    echo "FAIL t_cli/$name"; echo "    rc=$rc, want a short error matching '$pat':"; printf '%s\n' "$out" | head -5 | sed 's/^/    /'
  fi
}
# no WHY...: prints why a check fails and fails (CONDITION || no "why" || return)
no() { printf '%s\n' "$@"; return 1; }

for b in tessera tessera-miner tessera-validator; do
  check "$b-version" bash -o pipefail -c "$BIN/$b --version | grep -q '^$b [0-9]'"
  check "$b-help" bash -o pipefail -c "$BIN/$b --help | grep -qi 'usage'"
done
check tessera-help-lists-commands bash -c "h=\$($BIN/tessera --help) && grep -q '^ *keygen ' <<<\"\$h\" && grep -q '^ *devices ' <<<\"\$h\" || { echo \"\$h\"; exit 1; }"
expect_fail tessera-unknown-command "unknown command 'frobnicate'" "$BIN/tessera" frobnicate
expect_fail keygen-needs-hotkey "hotkey is required" "$BIN/tessera" keygen
expect_fail keygen-unknown-flag "unknown option '--hotky'" "$BIN/tessera" keygen --hotky x

# keygen prints the new key's public key and SS58 address; both must be the
# ones in the key file it wrote (compared in keys-show-matches).
KEYFILE=$TESSERA_HOME/wallets/w/hotkeys/h
keygen_prints_key() {
  local out
  out=$("$BIN/tessera" keygen --wallet w --hotkey h) || no "keygen failed: $out" || return
  [ -s "$KEYFILE" ] || no "no key file $KEYFILE" || return
  printf '%s\n' "$out" >"$T/keygen.out"
  grep -qE '^public key  0x[0-9a-f]{64}$' <<<"$out" && grep -qE '^ss58        5[1-9A-HJ-NP-Za-km-z]{47}$' <<<"$out" ||
    no "keygen did not print a public key and an SS58 address:" "$out"
}
check keygen keygen_prints_key
check keygen-mode bash -c "[ \"\$(stat -c %a $KEYFILE)\" = 600 ]"
expect_fail keygen-no-overwrite "refusing to overwrite" "$BIN/tessera" keygen --wallet w --hotkey h

# keys show (text and JSON) prints the public key and SS58 address of the key
# file keygen wrote, the same keygen printed, the address is the SS58 encoding
# of that public key (computed here), and the secret seed is shown nowhere.
keys_show_matches() {
  local js txt
  js=$("$BIN/tessera" keys show --wallet w --hotkey h --json) || no "keys show --json failed: $js" || return
  txt=$("$BIN/tessera" keys show --wallet w --hotkey h) || no "keys show failed: $txt" || return
  $PY - "$KEYFILE" "$T/keygen.out" "$js" "$txt" <<'EOF'
import hashlib, json, re, sys
key = json.load(open(sys.argv[1]))
gen, js, txt = open(sys.argv[2]).read(), sys.argv[3], sys.argv[4]
pk, ss, seed = key["publicKey"], key["ss58Address"], key["secretSeed"]
if not re.fullmatch("0x[0-9a-f]{64}", pk):
    sys.exit(f"key file public key {pk!r}")
# SS58 (prefix 42): base58(42 || pk || blake2b-512("SS58PRE" || 42 || pk)[:2])
A = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
d = bytes([42]) + bytes.fromhex(pk[2:])
n = int.from_bytes(d + hashlib.blake2b(b"SS58PRE" + d).digest()[:2], "big")
want = ""
while n:
    n, r = divmod(n, 58)
    want = A[r] + want
if ss != want:
    sys.exit(f"key file address {ss} is not the SS58 of {pk} ({want})")
try:
    show = json.loads(js)
except ValueError:
    sys.exit(f"keys show --json printed no JSON: {js!r}")
if show != {"wallet": "w", "hotkey": "h", "public_key": pk, "ss58": ss}:
    sys.exit(f"keys show --json: {show}, key file: {pk} {ss}")
for name, out in (("keys show", txt), ("keygen", gen)):
    if f"public key  {pk}\n" not in out + "\n":
        sys.exit(f"{name} lacks public key {pk}: {out!r}")
    if f"ss58        {ss}\n" not in out + "\n":
        sys.exit(f"{name} lacks address {ss}: {out!r}")
for name, out in (("keys show", txt), ("keys show --json", js), ("keygen", gen)):
    if seed[2:].lower() in out.lower():
        sys.exit(f"{name} shows the secret seed")
EOF
}
check keys-show-matches keys_show_matches
expect_fail keys-show-missing "No such file" "$BIN/tessera" keys show --wallet w --hotkey nope
# Key file permissions, as ssh has them: keygen makes 0600 in 0700; a secret
# key file group or others can read or write, or a key directory group or
# others can write, is refused by every command that loads it (keys show
# included), naming the file, its mode and the chmod to run.
KEYDIR=${KEYFILE%/*}
check keygen-dir-mode bash -c "[ \"\$(stat -c %a '$KEYDIR')\" = 700 ]"
for m in 644 640 604 660 777; do
  chmod "$m" "$KEYFILE"
  expect_fail "keys-show-refuses-mode-$m" "$KEYFILE: secret key file has mode 0$m: .*refused (run: chmod 600 $KEYFILE)" \
    "$BIN/tessera" keys show --wallet w --hotkey h
done
chmod 400 "$KEYFILE"
check keys-show-mode-400 bash -c "'$BIN/tessera' keys show --wallet w --hotkey h >/dev/null"
chmod 600 "$KEYFILE"
chmod 777 "$KEYDIR"
expect_fail keys-show-refuses-dir-777 "$KEYDIR: key directory has mode 0777: .*refused (run: chmod 700 $KEYDIR)" \
  "$BIN/tessera" keys show --wallet w --hotkey h
expect_fail keygen-refuses-dir-777 "chmod 700 $KEYDIR" "$BIN/tessera" keygen --wallet w --hotkey h9
check keygen-refused-wrote-nothing bash -c "[ ! -e '$KEYDIR/h9' ]"
chmod 755 "$KEYDIR"
check keys-show-dir-755 bash -c "'$BIN/tessera' keys show --wallet w --hotkey h >/dev/null"
chmod 700 "$KEYDIR"
check keys-show-after-chmod bash -c "'$BIN/tessera' keys show --wallet w --hotkey h >/dev/null"
check devices bash -o pipefail -c "$BIN/tessera devices | grep -qE '^(cuda:0 |no GPU found)'"

# --- localnet status: a commitment is read credentials; the status names the
# store (bucket, prefix, endpoint; R2 account; file path) and prints no part of
# an access key or a secret, in the table and in --json.
NET=$T/net
S3_AK=AKTESSERAQ7XW3VB           # access key of the s3 URL commitment
S3_SK=sk9Vq2ZpLm4Rt8YxKd6Hf3Ns   # its secret
R2_ACCT=feedc0defeedc0defeedc0defeedc0de
R2_AK=R2AKQZ7XW3VB9N4M1P6L8K2J5H0G3F7D
R2_SK=r2SecretMq8Wz3Kv7Xn1Bp5Lt9Hd2Fg6Js4Rc0Yw8Ue3Ta7Ni5Oh1Pk9Zm2Qx6Vb
JUNK=junk-Zq8Wv3Lk5Tr1Gx7    # unparsable: shown only as its size
localnet_setup() {
  local out i
  out=$("$BIN/tessera" localnet init --dir "$NET" --run-id clitest --block-time 1 --blocks-per-window 10 2>&1) || no "$out" || return
  for i in 0 1 2 3; do
    out=$("$BIN/tessera" keygen --wallet lw --hotkey k$i 2>&1) || no "$out" || return
    out=$("$BIN/tessera" localnet register --dir "$NET" --wallet lw --hotkey k$i 2>&1) || no "$out" || return
  done
  out=$("$BIN/tessera" localnet commit --dir "$NET" --wallet lw --hotkey k0 \
    --data "s3://$S3_AK:$S3_SK@bkt-tessera/run7?endpoint=https://minio.example:9000&region=auto" 2>&1) || no "$out" || return
  out=$("$BIN/tessera" localnet commit --dir "$NET" --wallet lw --hotkey k1 --data "$R2_ACCT$R2_AK$R2_SK" 2>&1) || no "$out" || return
  out=$("$BIN/tessera" localnet commit --dir "$NET" --wallet lw --hotkey k2 --data "file:///srv/buckets/k2" 2>&1) || no "$out" || return
  out=$("$BIN/tessera" localnet commit --dir "$NET" --wallet lw --hotkey k3 --data "$JUNK" 2>&1) || no "$out" || return
  "$BIN/tessera" localnet status --dir "$NET" >"$T/status.txt" 2>&1 || no "localnet status failed:" "$(cat "$T/status.txt")" || return
  "$BIN/tessera" localnet status --dir "$NET" --json >"$T/status.json" 2>&1 || no "localnet status --json failed:" "$(cat "$T/status.json")"
}
check localnet-setup localnet_setup
# no_secrets FILE: no 8-character piece of any access key or secret in FILE
no_secrets() {
  $PY - "$1" "$S3_AK" "$S3_SK" "$R2_AK" "$R2_SK" "$JUNK" <<'EOF'
import sys
text = open(sys.argv[1]).read()
for s in sys.argv[2:]:
    for i in range(len(s) - 7):
        if s[i:i + 8] in text:
            line = next(l for l in text.splitlines() if s[i:i + 8] in l)
            sys.exit(f"{sys.argv[1].rsplit('/', 1)[1]} shows '{s[i:i + 8]}' of the secret {s}:\n{line.strip()}")
EOF
}
status_table() {
  no_secrets "$T/status.txt" || return
  local t; t=$(cat "$T/status.txt")
  grep -qE '^  0 .* s3 bkt-tessera/run7 @ minio\.example:9000 ' <<<"$t" &&
    grep -qE "^  1 .* r2 $R2_ACCT " <<<"$t" &&
    grep -qE '^  2 .* file:///srv/buckets/k2 ' <<<"$t" &&
    grep -qE "^  3 .* unparsable \\(${#JUNK} bytes\\) " <<<"$t" || no "the table does not name each store:" "$t"
}
check localnet-status-no-secrets status_table
status_json() {
  no_secrets "$T/status.json" || return
  $PY - "$T/status.json" "$R2_ACCT" "${#JUNK}" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
u = {x["uid"]: x for x in d["uids"]}
want = {
    0: ("s3", "s3 bkt-tessera/run7 @ minio.example:9000", "s3://bkt-tessera/run7?endpoint=https://minio.example:9000&region=auto"),
    1: ("r2", f"r2 {sys.argv[2]}", f"s3://{sys.argv[2]}?endpoint=https://{sys.argv[2]}.r2.cloudflarestorage.com&region=auto"),
    2: ("file", "file:///srv/buckets/k2", "file:///srv/buckets/k2"),
    3: ("unparsable", f"unparsable ({sys.argv[3]} bytes)", None),
}
for uid, (kind, summary, store) in want.items():
    got = (u[uid].get("commitment_kind"), u[uid].get("commitment_summary"), u[uid].get("commitment_store"))
    if got != (kind, summary, store):
        sys.exit(f"uid {uid}: {got}, want {(kind, summary, store)}")
    if not isinstance(u[uid].get("commitment_block"), (int, float)):
        sys.exit(f"uid {uid}: no commitment_block")
EOF
}
check localnet-status-json-no-secrets status_json

# --- localnet status: what the last epoch gave each uid.  A subnet of 0.1 s
# blocks and tempo 4 (an epoch every 5 blocks): one validator weights uid 1
# at 0.75 and uid 2 at 0.25; after a few epochs the table shows incentive
# and dividends as fractions, the epoch's emission and the earned total in
# TAO, and the epoch line the emission split with the owner (1 TAO a block,
# 18 % to the owner: 5 x 0.820004577 TAO to the uids); --json the same.
NET2=$T/net2
localnet_epochs() {
  local out i
  out=$("$BIN/tessera" localnet init --dir "$NET2" --run-id eptest --netuid 2 --block-time 0.1 --tempo 4 2>&1) || no "$out" || return
  grep -q 'epochs     every 5 blocks (tempo 4)' <<<"$out" || no "init does not show the epochs:" "$out" || return
  for i in 0 1 2; do
    out=$("$BIN/tessera" localnet register --dir "$NET2" --wallet lw --hotkey k$i 2>&1) || no "$out" || return
  done
  out=$("$BIN/tessera" localnet stake --dir "$NET2" --wallet lw --hotkey k0 --amount 100 2>&1) || no "$out" || return
  # weights set in the block a uid registered in do not count for it (as on
  # subtensor: last update <= registration masks them); leave a block or two
  sleep 0.3
  out=$("$BIN/tessera" localnet set-weights --dir "$NET2" --wallet lw --hotkey k0 --weights 1=0.75,2=0.25 2>&1) ||
    no "$out" || return
  sleep 1.6 # 16 blocks: the weights are in at least two epochs
  "$BIN/tessera" localnet status --dir "$NET2" >"$T/st2.txt" 2>&1 || no "localnet status failed:" "$(cat "$T/st2.txt")" || return
  "$BIN/tessera" localnet status --dir "$NET2" --json >"$T/st2.json" 2>&1 || no "localnet status --json failed:" "$(cat "$T/st2.json")"
}
check localnet-epochs-setup localnet_epochs
status_epoch_table() {
  local t; t=$(cat "$T/st2.txt")
  grep -qE '^UID .* ACTIVE  INCENTIVE  DIVIDENDS  EMISSION \(TAO\)    EARNED \(TAO\)  COMMITMENT' <<<"$t" ||
    no "no epoch columns in the header:" "$t" || return
  grep -qE '^epoch [0-9]+ at block [0-9]+ \(tempo 4, next at block [0-9]+\): 4\.100022885 TAO to the uids, 0\.89997711 TAO to the owner' <<<"$t" ||
    no "no epoch line:" "$t" || return
  # uid 0 validates (all the dividends), uids 1 and 2 mine (incentive 0.75, 0.25)
  grep -qE '^  0 .* 0\.0000     1\.0000  +[0-9.]+  +[0-9.]+  ' <<<"$t" &&
    grep -qE '^  1 .* 0\.7500     0\.0000  +[0-9.]+  +[0-9.]+  ' <<<"$t" &&
    grep -qE '^  2 .* 0\.2500     0\.0000  +[0-9.]+  +[0-9.]+  ' <<<"$t" || no "the rows do not show the epoch:" "$t"
}
check localnet-status-epoch-columns status_epoch_table
status_epoch_json() {
  $PY - "$T/st2.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
e, u = d["epoch"], {x["uid"]: x for x in d["uids"]}
if d["tempo"] != 4 or e["emission_rao"] != 5 * 820004577 or e["owner_emission_rao"] != 5 * 179995422:
    sys.exit(f"epoch {e}, tempo {d['tempo']}")
if (e["block"] + 2 + 2) % 5 or e["next_block"] != e["block"] + 5 or e["count"] < 2:
    sys.exit(f"epoch block {e['block']} (netuid 2, tempo 4: (b + 4) % 5 == 0)")
want = {0: (0, 1), 1: (0.75, 0), 2: (0.25, 0)}
for i, (inc, div) in want.items():
    if abs(u[i]["incentive"] - inc) > 1e-4 or abs(u[i]["dividends"] - div) > 1e-4:
        sys.exit(f"uid {i}: incentive {u[i]['incentive']}, dividends {u[i]['dividends']}, want {inc}, {div}")
    if not u[i]["earned_rao"] >= u[i]["emission_rao"] > 0:
        sys.exit(f"uid {i}: earned {u[i]['earned_rao']}, emission {u[i]['emission_rao']}")
total = sum(x["emission_rao"] for x in u.values())
if not e["emission_rao"] - 3 <= total <= e["emission_rao"]:
    sys.exit(f"the uids got {total} rao of {e['emission_rao']}")
# emission is not stake: the stake is what the owner staked
if u[0]["stake_rao"] != 100 * 10**9 or u[1]["stake_rao"] != 0:
    sys.exit("stake changed")
EOF
}
check localnet-status-epoch-json status_epoch_json

# --- localnet init --params: parameters every node would refuse are refused
# before anything is written (the nodes' own check, naming the key); valid
# ones still make a subnet.
init_params() { # DIR JSON
  printf '%s\n' "$2" >"$T/params-${1##*/}.json"
  "$BIN/tessera" localnet init --dir "$1" --run-id ptest --params "$T/params-${1##*/}.json"
}
expect_fail params-uids-per-window "uids_per_window.*-3" init_params "$T/p1" '{"gauntlet": {"uids_per_window": -3}}'
check params-uids-per-window-wrote-nothing bash -c "[ ! -e '$T/p1/genesis.json' ]"
expect_fail params-codec-k "codec.*k = 0" init_params "$T/p2" '{"codec": {"k": 0}}'
check params-codec-k-wrote-nothing bash -c "[ ! -e '$T/p2/genesis.json' ]"
expect_fail params-batch-size-huge "'batch_size'" init_params "$T/p3" '{"batch_size": 9223372036854775807}'
check params-batch-size-huge-wrote-nothing bash -c "[ ! -e '$T/p3/genesis.json' ]"
expect_fail params-batch-size-range "'batch_size' = 5000 is outside" init_params "$T/p4" '{"batch_size": 5000}'
expect_fail params-not-an-object "must be a JSON object" init_params "$T/p5" '[1, 2]'
check params-refused-wrote-nothing bash -c "[ ! -e '$T/p4/genesis.json' ] && [ ! -e '$T/p5/genesis.json' ]"
valid_params() {
  local out
  out=$(init_params "$T/p6" '{"model": "tiny", "seq_len": 32, "batch_size": 4, "codec": {"k": 32}}' 2>&1) || no "$out" || return
  [ -s "$T/p6/genesis.json" ] || no "no genesis.json" || return
  $PY -c 'import json,sys; p=json.load(open(sys.argv[1]))["params"]; sys.exit(0 if p["batch_size"] == 4 and p["codec"]["k"] == 32 else 1)' \
    "$T/p6/genesis.json" || no "genesis.json does not hold the parameters:" "$(cat "$T/p6/genesis.json")"
}
check params-valid valid_params

# --log-level and --log-json are common to every command (README, Configuration)
log_level_everywhere() {
  local c out
  for c in "keys show --wallet w --hotkey h" "localnet status --dir $T/p6" "model info --model tiny" \
    "gauntlet params" "devices"; do
    # shellcheck disable=SC2086
    out=$("$BIN/tessera" $c --log-level warn 2>&1) || no "tessera $c --log-level warn: $out" || return
    # shellcheck disable=SC2086
    out=$("$BIN/tessera" $c --log-level=error --log-json 2>&1) || no "tessera $c --log-level=error --log-json: $out" || return
  done
}
check log-level-every-command log_level_everywhere
expect_fail log-level-bad-refused "log-level must be debug, info, warn or error, not 'loud'" \
  "$BIN/tessera" model info --model tiny --log-level loud
exit 0
