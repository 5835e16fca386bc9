#!/usr/bin/env bash
# t_wallet.sh - Bittensor wallets, read and written as btcli does:
#  - a wallet written by tests/wallet_pynacl.py the way btcli writes one (an
#    encrypted coldkey, coldkeypub.txt, an unencrypted hotkey and its
#    defaultpub.txt) opens in tessera: wallet show / list without a password,
#    keys show on its hotkey, and its coldkey decrypted with the password;
#  - a coldkey tessera encrypts opens in PyNaCl with the same password and
#    yields the same keys (derived independently in Python), and so do
#    tessera's hotkeys and public key files;
#  - a wrong password, no password, a truncated file, Ansible Vault and
#    Fernet legacy files, a world-readable key file and an Ed25519 key file
#    of an earlier Tessera each give one clear line and exit 1 (no crash);
#  - keys are never overwritten; files are 0600 and directories 0700;
#  - the wallet root: --wallet-path, TESSERA_WALLET_PATH, $TESSERA_HOME/
#    wallets, else ~/.bittensor/wallets.
# argon2i (512 MiB, ~3 s a run) runs five times in all: the encrypted
# round trips, one each way, and the wrong password.
set -u
BUILD=${BUILD:-build}
BIN=$BUILD/bin
PY=/usr/bin/python3
HELPER=$(dirname "$0")/wallet_pynacl.py
N=t_wallet
T=$(mktemp -d "${TMPDIR:-/tmp}/t_wallet-XXXXXX"); trap 'chmod -R u+rwX "$T" 2>/dev/null; rm -rf "$T"' EXIT
export TESSERA_HOME=$T/home
unset TESSERA_WALLET_PATH TESSERA_COLDKEY_PASSWORD TESSERA_HOTKEY_PASSWORD TESSERA_WALLET TESSERA_HOTKEY \
  TESSERA_CONFIG TESSERA_JSON
R=$T/bt # a btcli-style wallet root, given with --wallet-path
PW='correct horse 7'

ok() { echo "ok   $N/$1"; }
fail() { # name, why...
  local name=$1; shift
  echo "FAIL $N/$name"; printf '%s\n' "$@" | head -12 | sed 's/^/    /'
}
skip() { echo "skip $N/$1"; echo "    skipped: $2"; }

# tessera without a controlling terminal: a password it wants and is not
# given in the environment cannot be asked (and a test never hangs on it)
ts() { setsid -w "$BIN/tessera" "$@" </dev/null; }

# one_line NAME PATTERN CMD...: CMD must exit 1 (not a crash) printing one
# line that matches PATTERN
one_line() {
  local name=$1 pat=$2; shift 2
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [ $rc -eq 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && grep -qE -- "$pat" <<<"$out"; then
    ok "$name"
  else
    fail "$name" "exit $rc, want 1 and one line matching: $pat" "$out"
  fi
}

# json_get JSON EXPR: a value from JSON (EXPR in Python, on d)
json_get() { $PY -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null; }

mode() { stat -c %a "$1"; }

HAVE_NACL=1
$PY -c 'import nacl.pwhash, nacl.secret' 2>/dev/null || HAVE_NACL=0
COLD_SS58=5HDvhV6WDCjCKyrXqGQSDYqQAzkzabNhctmiDYEqgBC66BsX # bittensor-wallet's test vector
COLD_PK=0xe4359ad3e2716c539a1d663ebd0a51bdc5c98a12e663bb4c4402db47828c9446
HOT_PK=0x46ebddef8cd9bb167dc30878d7113b7e168e6f0646beffd77d69d39bad76b47a # the dev phrase's root key
secs() { date +%s.%N; }
elapsed() { $PY -c "print(f'{$(secs) - $1:.1f}')"; }

# --- a wallet btcli wrote opens in tessera --------------------------------
if [ $HAVE_NACL = 0 ]; then
  for t in btcli-wallet-written btcli-wallet-show btcli-hotkey-loads btcli-coldkey-unlocks wrong-password \
    pynacl-opens-tessera-coldkey; do skip $t "PyNaCl is not installed for $PY"; done
else
  t0=$(secs)
  if out=$($PY "$HELPER" btcli-wallet "$R" bw "$PW" 2>&1); then
    ok btcli-wallet-written
    echo "# PyNaCl: argon2i + secretbox of a coldkey in $(elapsed "$t0") s"
  else
    fail btcli-wallet-written "$out"
  fi

  # public information: no password (none in the environment, no terminal)
  js=$(ts wallet show --wallet-path "$R" --wallet bw --json 2>&1)
  if [ "$(json_get "$js" 'd["coldkey"]["ss58"]')" = $COLD_SS58 ] &&
    [ "$(json_get "$js" 'd["coldkey"]["encryption"]')" = nacl ] &&
    [ "$(json_get "$js" '[(h["hotkey"], h["public_key"], h["encryption"]) for h in d["hotkeys"]]')" = \
      "[('default', '$HOT_PK', 'unencrypted')]" ] && [ "$(json_get "$js" '"problem" in str(d)')" = False ]; then
    ok btcli-wallet-show
  else
    fail btcli-wallet-show "$js"
  fi

  # its hotkey loads (secretSeed, privateKey and publicKey checked together)
  js=$(ts keys show --wallet-path "$R" --wallet bw --hotkey default --json 2>&1)
  js2=$(ts wallet show --wallet-path "$R" --wallet bw --hotkey default --json 2>&1)
  if [ "$(json_get "$js" 'd["public_key"]')" = $HOT_PK ] && [ "$(json_get "$js2" 'd["public_key"]')" = $HOT_PK ]; then
    ok btcli-hotkey-loads
  else
    fail btcli-hotkey-loads "$js" "$js2"
  fi

  # its coldkey decrypts with the password (and matches coldkeypub.txt)
  t0=$(secs)
  js=$(TESSERA_COLDKEY_PASSWORD=$PW ts wallet show --wallet-path "$R" --wallet bw --check-password --json 2>&1)
  dt=$(elapsed "$t0")
  if [ "$(json_get "$js" 'd["coldkey_unlocked"]')" = True ] && [ "$(json_get "$js" 'd["coldkey"]["public_key"]')" = $COLD_PK ]; then
    ok btcli-coldkey-unlocks
    echo "# tessera: argon2i + secretbox open of a coldkey in $dt s"
  else
    fail btcli-coldkey-unlocks "$js"
  fi

  one_line wrong-password "^tessera: wrong password for coldkey $R/bw/coldkey" \
    env TESSERA_COLDKEY_PASSWORD=wrong setsid -w "$BIN/tessera" wallet show --wallet-path "$R" --wallet bw --check-password
fi

# no password and no terminal: said so, nothing hangs
if [ -f "$R/bw/coldkey" ]; then
  one_line no-password "no password for coldkey .*set TESSERA_COLDKEY_PASSWORD or run on a terminal" \
    ts wallet show --wallet-path "$R" --wallet bw --check-password
else
  skip no-password "no encrypted coldkey (PyNaCl missing)"
fi

# --- tessera's keys open in PyNaCl / Python --------------------------------
TW=$T/home/wallets/tw
t0=$(secs)
out=$(TESSERA_COLDKEY_PASSWORD=$PW ts wallet new-coldkey --wallet tw 2>&1)
dt=$(elapsed "$t0")
pk=$(sed -n 's/^public key  \(0x[0-9a-f]\{64\}\)$/\1/p' <<<"$out")
if [ -n "$pk" ] && [ "$(head -c 5 "$TW/coldkey")" = '$NACL' ]; then
  ok new-coldkey-encrypted
  echo "# tessera: argon2i + secretbox of a new coldkey in $dt s"
else
  fail new-coldkey-encrypted "$out"
fi
if [ $HAVE_NACL = 0 ]; then
  skip pynacl-opens-tessera-coldkey "PyNaCl is not installed for $PY"
elif [ -n "$pk" ]; then
  t0=$(secs)
  js=$($PY "$HELPER" open "$TW/coldkey" "$PW" 2>&1)
  dt=$(elapsed "$t0")
  pub=$($PY "$HELPER" pub "$TW/coldkeypub.txt" 2>&1)
  if [ "$(json_get "$js" 'd["public_key"]')" = "$pk" ] && [ "$(json_get "$pub" 'd["public_key"]')" = "$pk" ] &&
    [ "$(json_get "$js" 'd["members"]')" = "['accountId', 'privateKey', 'publicKey', 'secretSeed', 'ss58Address']" ]; then
    ok pynacl-opens-tessera-coldkey
    echo "# PyNaCl: argon2i + secretbox open of tessera's coldkey in $dt s"
  else
    fail pynacl-opens-tessera-coldkey "$js" "$pub"
  fi
fi

# hotkeys: keygen (the shortcut), new-hotkey from a URI and from a seed
out1=$(ts keygen --wallet tw --hotkey h1 2>&1)
out2=$(ts wallet new-hotkey --wallet tw --hotkey alice --uri //Alice 2>&1)
out3=$(ts wallet new-hotkey --wallet tw --hotkey s --seed 0xda3cf5b1e9144931a0f0db65664aab662673b099415a7f8121b7245fb0be4143 2>&1)
hk_ok=1
for h in h1 alice s; do
  js=$($PY "$HELPER" open "$TW/hotkeys/$h" 2>&1) && pub=$($PY "$HELPER" pub "$TW/hotkeys/${h}pub.txt" 2>&1) &&
    show=$(ts keys show --wallet tw --hotkey $h --json 2>&1) &&
    [ "$(json_get "$js" 'd["public_key"]')" = "$(json_get "$show" 'd["public_key"]')" ] &&
    [ "$(json_get "$pub" 'd["public_key"]')" = "$(json_get "$show" 'd["public_key"]')" ] || {
    hk_ok=0
    fail python-reads-tessera-hotkeys "$h: $js" "$pub" "$show" "$out1" "$out2" "$out3"
    break
  }
done
if [ $hk_ok = 1 ] && grep -q 'ss58        5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY' <<<"$out2" &&
  grep -q "public key  $COLD_PK" <<<"$out3"; then
  ok python-reads-tessera-hotkeys
elif [ $hk_ok = 1 ]; then
  fail python-reads-tessera-hotkeys "//Alice or the seed gave another key:" "$out2" "$out3"
fi

# keys show keeps its JSON members (scripts read them)
js=$(ts keys show --wallet tw --hotkey h1 --json 2>&1)
if [ "$(json_get "$js" 'sorted(d)')" = "['hotkey', 'public_key', 'ss58', 'wallet']" ]; then ok keys-show-json; else fail keys-show-json "$js"; fi

# --- modes and no overwriting ---------------------------------------------
m="$(mode "$TW") $(mode "$TW/hotkeys") $(mode "$TW/coldkey") $(mode "$TW/coldkeypub.txt") $(mode "$TW/hotkeys/h1") $(mode "$TW/hotkeys/h1pub.txt")"
if [ "$m" = "700 700 600 600 600 600" ]; then ok modes; else fail modes "wallet, hotkeys, coldkey, coldkeypub.txt, h1, h1pub.txt: $m"; fi

sums() { sha256sum "$TW/coldkey" "$TW/coldkeypub.txt" "$TW/hotkeys/h1pub.txt"; }
sum_before=$(sums)
one_line never-overwrites-coldkey "refusing to overwrite" ts wallet new-coldkey --wallet tw --no-password
one_line never-overwrites-hotkey "refusing to overwrite" ts wallet new-hotkey --wallet tw --hotkey h1
one_line never-overwrites-keygen "refusing to overwrite" ts keygen --wallet tw --hotkey h1
rm "$TW/hotkeys/h1"
one_line never-overwrites-pub "h1pub.txt already exists" ts keygen --wallet tw --hotkey h1
if [ "$(sums)" = "$sum_before" ] && [ ! -e "$TW/hotkeys/h1" ]; then
  ok never-overwrites-files-kept
else
  fail never-overwrites-files-kept "a key file changed or appeared" "$sum_before" "$(sums)"
fi

# --- damaged and legacy files: one line each --------------------------------
mkw() { # mkw NAME: an empty wallet with a hotkeys directory
  mkdir -p "$T/home/wallets/$1/hotkeys" && chmod 700 "$T/home/wallets/$1" "$T/home/wallets/$1/hotkeys"
}
put() { # put FILE: stdin into FILE, mode 0600
  cat >"$1" && chmod 600 "$1"
}
mkw trunc
if [ -f "$R/bw/coldkey" ]; then head -c 30 "$R/bw/coldkey"; else printf '$NACL0123456789abcdef01234567'; fi |
  put "$T/home/wallets/trunc/coldkey"
one_line truncated-coldkey "^tessera: .*/trunc/coldkey: truncated encrypted key file" \
  env TESSERA_COLDKEY_PASSWORD=x setsid -w "$BIN/tessera" wallet show --wallet trunc --check-password
head -c 100 "$TW/hotkeys/alice" | put "$T/home/wallets/trunc/hotkeys/h"
one_line truncated-hotkey "^tessera: .*/trunc/hotkeys/h: not a key file \(invalid or truncated JSON\)" \
  ts keys show --wallet trunc --hotkey h
: | put "$T/home/wallets/trunc/hotkeys/empty"
one_line empty-hotkey "^tessera: .*/empty: empty key file" ts keys show --wallet trunc --hotkey empty

mkw legacy
printf '$ANSIBLE_VAULT;1.1;AES256\n61626364656667686970\n' | put "$T/home/wallets/legacy/coldkey"
one_line ansible-vault-coldkey "^tessera: .*/legacy/coldkey: encrypted with Ansible Vault.*re-encrypt it with btcli" \
  env TESSERA_COLDKEY_PASSWORD=x setsid -w "$BIN/tessera" wallet show --wallet legacy --check-password
printf 'gAAAAABlZXhhbXBsZS1mZXJuZXQtdG9rZW4tbm90LXJlYWw=' | put "$T/home/wallets/legacy/hotkeys/f"
one_line fernet-hotkey "^tessera: .*/legacy/hotkeys/f: encrypted with Fernet.*re-encrypt it with btcli" \
  ts keys show --wallet legacy --hotkey f
js=$(ts wallet show --wallet legacy --json 2>&1)
if [ "$(json_get "$js" 'd["coldkey"]["encryption"]')" = ansible-vault ]; then ok legacy-shown; else fail legacy-shown "$js"; fi

mkw old
printf '{\n  "scheme": "ed25519",\n  "publicKey": "0x%s",\n  "secretSeed": "0x%s",\n  "ss58Address": "x"\n}\n' \
  d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a \
  9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60 | put "$T/home/wallets/old/hotkeys/h"
one_line old-ed25519-key \
  "^tessera: .*/old/hotkeys/h: an Ed25519 key from an earlier Tessera; Tessera now uses sr25519 \(Bittensor's scheme\): create a new hotkey with tessera wallet new-hotkey$" \
  ts keys show --wallet old --hotkey h

# world-readable key files are refused, a coldkey before any password is asked
chmod 644 "$TW/hotkeys/alice"
one_line world-readable-hotkey "^tessera: .*/tw/hotkeys/alice: secret key file has mode 0644: .*chmod 600" \
  ts keys show --wallet tw --hotkey alice
chmod 604 "$TW/coldkey"
one_line world-readable-coldkey "^tessera: .*/tw/coldkey: secret key file has mode 0604: .*chmod 600" \
  ts wallet show --wallet tw --check-password
chmod 600 "$TW/coldkey" "$TW/hotkeys/alice"

# --- listing, and the wallet root ------------------------------------------
js=$(ts wallet list --json 2>&1)
if [ "$(json_get "$js" '[w["wallet"] for w in d["wallets"]]')" = "['legacy', 'old', 'trunc', 'tw']" ] &&
  [ "$(json_get "$js" '[h["hotkey"] for w in d["wallets"] if w["wallet"] == "tw" for h in w["hotkeys"]]')" = "['alice', 'h1', 's']" ] &&
  [ "$(json_get "$js" '[w["coldkey"]["public_key"] for w in d["wallets"] if w["wallet"] == "tw"][0]')" = "$pk" ]; then
  ok list-json
else
  fail list-json "$js"
fi
txt=$(ts wallet list --wallet-path "$R" 2>&1)
if [ $HAVE_NACL = 0 ] || grep -qE "^  coldkey  $COLD_SS58 +nacl$" <<<"$txt"; then ok list-text; else fail list-text "$txt"; fi

root_ok=1
out=$(env -u TESSERA_HOME HOME="$T/fakehome" setsid -w "$BIN/tessera" keygen --hotkey x </dev/null 2>&1)
[ -f "$T/fakehome/.bittensor/wallets/default/hotkeys/x" ] || { root_ok=0; fail wallet-root "default root: $out"; }
out=$(TESSERA_WALLET_PATH="$T/envroot" ts wallet new-hotkey --hotkey y 2>&1)
[ -f "$T/envroot/default/hotkeys/ypub.txt" ] || { root_ok=0; fail wallet-root "TESSERA_WALLET_PATH: $out"; }
out=$(TESSERA_WALLET_PATH="$T/envroot" ts keys show --hotkey y --wallet-path "$T/envroot" 2>&1) ||
  { root_ok=0; fail wallet-root "keys show --wallet-path: $out"; }
[ $root_ok = 1 ] && ok wallet-root
