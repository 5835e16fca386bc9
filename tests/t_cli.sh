#!/usr/bin/env bash
# t_cli.sh - the three binaries: --help, --version, error lines, keys.
set -u
BIN=${BUILD:-build}/bin
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export TESSERA_HOME=$T/home

check() { # name, command...
  local name=$1; shift
  local out
  if out=$("$@" 2>&1); then echo "ok   t_cli/$name"; else
    echo "FAIL t_cli/$name"; printf '%s\n' "$out" | head -5 | sed 's/^/    /'; fi
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

for b in tessera tessera-miner tessera-validator; do
  check "$b-version" bash -c "$BIN/$b --version | grep -q '^$b [0-9]'"
  check "$b-help" bash -c "$BIN/$b --help | grep -qi 'usage'"
done
check tessera-help-lists-commands bash -c "$BIN/tessera --help | grep -q keygen && $BIN/tessera --help | grep -q devices"
expect_fail tessera-unknown-command "unknown command 'frobnicate'" "$BIN/tessera" frobnicate
expect_fail keygen-needs-hotkey "hotkey is required" "$BIN/tessera" keygen
expect_fail keygen-unknown-flag "unknown option '--hotky'" "$BIN/tessera" keygen --hotky x
check keygen bash -c "$BIN/tessera keygen --wallet w --hotkey h | grep -q 'public key  0x'"
check keygen-mode bash -c "[ \"\$(stat -c %a $TESSERA_HOME/wallets/w/hotkeys/h)\" = 600 ]"
expect_fail keygen-no-overwrite "refusing to overwrite" "$BIN/tessera" keygen --wallet w --hotkey h
check keys-show-matches bash -c "a=\$($BIN/tessera keys show --wallet w --hotkey h --json | sed 's/.*public_key\": \"\\([^\"]*\\)\".*/\\1/'); grep -q \"\$a\" $TESSERA_HOME/wallets/w/hotkeys/h"
expect_fail keys-show-missing "No such file" "$BIN/tessera" keys show --wallet w --hotkey nope
check devices bash -c "$BIN/tessera devices | grep -qE '^(cuda:0 |no GPU found)'"
exit 0
