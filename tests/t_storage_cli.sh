#!/usr/bin/env bash
# t_storage_cli.sh - `tessera store` on a file:// store: put, get, ls, stat,
# rm, standard input and output, one-line errors, symbolic links refused,
# --log-level on every verb, bucket commitments.
set -u
BIN=${BUILD:-build}/bin/tessera
N=t_storage_cli
T=$(mktemp -d "${TMPDIR:-/tmp}/t_storage_cli-XXXXXX"); trap 'rm -rf "$T"' EXIT
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN TESSERA_STORE_ACCESS_KEY TESSERA_STORE_SECRET_KEY

check() { # name, command...
  local name=$1; shift
  local out
  if out=$("$@" 2>&1); then echo "ok   $N/$name"; else
    echo "FAIL $N/$name"; printf '%s\n' "$out" | head -5 | sed 's/^/    /'; fi
}
expect_fail() { # name, pattern, command...: non-zero exit and one short line matching
  local name=$1 pat=$2; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ $rc -ne 0 ] && grep -q -- "$pat" <<<"$out" && [ "$(wc -l <<<"$out")" -le 2 ]; then
    echo "ok   $N/$name"
  else
    echo "FAIL $N/$name"; echo "    rc=$rc, want a short error matching '$pat':"; printf '%s\n' "$out" | head -5 | sed 's/^/    /'
  fi
}

U="file://$T/store"
head -c 300000 /dev/zero | tr '\0' 'a' >"$T/in.bin"
check put "$BIN" store put "$U" "runs/a b/obj.bin" "$T/in.bin"
check get-file bash -c "'$BIN' store get '$U' 'runs/a b/obj.bin' '$T/out.bin' && cmp '$T/in.bin' '$T/out.bin'"
check get-stdout bash -c "'$BIN' store get '$U' 'runs/a b/obj.bin' | cmp - '$T/in.bin'"
check put-stdin bash -c "echo hello | '$BIN' store put '$U' greeting - && [ \"\$('$BIN' store get '$U' greeting)\" = hello ]"
check plain-path-is-a-file-store bash -c "[ \"\$('$BIN' store get '$T/store' greeting)\" = hello ]"
check ls bash -c "out=\$('$BIN' store ls '$U' 2>/dev/null); grep -q ' 300000  runs/a b/obj.bin\$' <<<\"\$out\" && grep -q '       6  greeting\$' <<<\"\$out\""
check ls-prefix bash -c "[ \"\$('$BIN' store ls '$U' runs/ 2>/dev/null | wc -l)\" = 1 ]"
check ls-json bash -c "'$BIN' store ls --json '$U' | /usr/bin/python3 -c 'import json,sys; v=json.load(sys.stdin); assert [x[\"key\"] for x in v]==[\"greeting\",\"runs/a b/obj.bin\"] and v[1][\"size\"]==300000'"
check stat bash -c "'$BIN' store stat '$U' greeting | grep -q '^size           6\$'"
check stat-json bash -c "'$BIN' store stat --json '$U' greeting | /usr/bin/python3 -c 'import json,sys,time; v=json.load(sys.stdin); assert v[\"size\"]==6 and abs(v[\"last_modified\"]-time.time())<600'"
check rm bash -c "'$BIN' store rm '$U' greeting 'runs/a b/obj.bin' && [ -z \"\$('$BIN' store ls '$U' 2>/dev/null)\" ]"
check rm-missing-is-fine "$BIN" store rm "$U" greeting
expect_fail get-missing "no such object" "$BIN" store get "$U" nope "$T/x"
check get-missing-leaves-no-file bash -c "[ ! -e '$T/x' ]"
expect_fail get-over-cap "over the limit" bash -c "'$BIN' store put '$U' k '$T/in.bin' && '$BIN' store get --max-size 1000 '$U' k '$T/x'"
# To standard output the object is held in memory: 256 MiB at most unless
# --max-size says otherwise, and never without a limit.  (A sparse 300 MB
# object placed in the store's directory: refused before a byte is read.)
truncate -s 300M "$T/store/big"
expect_fail get-stdout-default-cap "over the limit of 268435456 (--max-size: 256 MiB by default" \
  bash -c "'$BIN' store get '$U' big >/dev/null"
expect_fail get-dash-default-cap "over the limit of 268435456 (--max-size" bash -c "'$BIN' store get '$U' big - >/dev/null"
expect_fail get-stdout-over-max-size "over the limit of 1000 (--max-size 1000)" \
  bash -c "'$BIN' store get --max-size 1000 '$U' k >/dev/null"
check get-stdout-under-max-size bash -c "'$BIN' store get --max-size 300000 '$U' k | cmp - '$T/in.bin'"
expect_fail get-stdout-no-limit-refused "needs a FILE" bash -c "'$BIN' store get --max-size 0 '$U' k >/dev/null"
check get-file-no-limit bash -c "'$BIN' store get --max-size 0 '$U' k '$T/k.bin' && cmp '$T/k.bin' '$T/in.bin'"
expect_fail get-max-size-range "--max-size: -2 is outside \[-1, " "$BIN" store get --max-size -2 "$U" k
expect_fail get-max-size-env-range "TESSERA_MAX_SIZE: -5 is outside \[-1, " env TESSERA_MAX_SIZE=-5 "$BIN" store get "$U" k
check get-help-states-the-default bash -c "'$BIN' store get --help | grep -q -- '--max-size INT .*256 MiB to standard output'"
rm -f "$T/store/big"
expect_fail dotdot-key "'..' segment" "$BIN" store put "$U" "../evil" "$T/in.bin"
expect_fail bad-url "unknown store URL" "$BIN" store ls "ftp://x/y"
expect_fail s3-needs-credentials "AWS_ACCESS_KEY_ID" "$BIN" store ls "s3://bucket?endpoint=https://h.example"
expect_fail missing-args "usage" "$BIN" store put "$U" k
expect_fail unknown-verb "unknown command" "$BIN" store frobnicate

# symbolic links inside a file store are refused, never followed: nothing
# outside the store is read, written or deleted through sym/gradients ->
# outside or sym/a/b -> ../../outside
mkdir -p "$T/outside/sub" "$T/sym/a"
echo SECRET-KEY-MATERIAL >"$T/outside/secret"
echo f >"$T/outside/sub/f"
ln -s "$T/outside" "$T/sym/gradients"
ln -s ../../outside "$T/sym/a/b"
SU="file://$T/sym"
expect_fail symlink-get "gradients/secret: refused: 'gradients' is a symbolic link" "$BIN" store get "$SU" gradients/secret
check symlink-get-prints-nothing bash -c "! '$BIN' store get '$SU' a/b/secret 2>&1 | grep -q SECRET-KEY-MATERIAL"
expect_fail symlink-get-nested "a/b/secret: refused: 'a/b' is a symbolic link" "$BIN" store get "$SU" a/b/secret
expect_fail symlink-stat "symbolic link" "$BIN" store stat "$SU" gradients/secret
expect_fail symlink-put "a/b/new: refused: 'a/b' is a symbolic link" "$BIN" store put "$SU" a/b/new "$T/in.bin"
expect_fail symlink-put-mkdir "symbolic link" "$BIN" store put "$SU" gradients/7/1 "$T/in.bin"
check symlink-put-wrote-nothing-outside bash -c "[ ! -e '$T/outside/new' ] && [ ! -e '$T/outside/7' ]"
expect_fail symlink-rm "a/b/sub/f: refused: 'a/b' is a symbolic link" "$BIN" store rm "$SU" a/b/sub/f
expect_fail symlink-rm-top "symbolic link" "$BIN" store rm "$SU" gradients/secret
check symlink-rm-deleted-nothing-outside bash -c "[ -f '$T/outside/secret' ] && [ -f '$T/outside/sub/f' ] && [ -L '$T/sym/a/b' ] && [ -L '$T/sym/gradients' ]"
check symlink-ls-shows-nothing bash -c "out=\$('$BIN' store ls '$SU' 2>&1) && [ \"\$(grep -c secret <<<\"\$out\")\" = 0 ] && grep -q '^0 objects' <<<\"\$out\""

# --log-level (and --log-json), common to every command, on every store verb
check log-level-put "$BIN" store put --log-level warn "$U" lv "$T/in.bin"
check log-level-get bash -c "'$BIN' store get --log-level warn '$U' lv >/dev/null"
check log-level-ls bash -c "'$BIN' store ls --log-level warn '$U' >/dev/null"
check log-level-stat bash -c "'$BIN' store stat --log-level warn '$U' lv >/dev/null"
check log-level-rm "$BIN" store rm --log-level warn "$U" lv
check log-level-abort bash -c "'$BIN' store abort --log-level warn '$U' >/dev/null"
check log-level-commitment bash -c "'$BIN' store commitment --log-level warn '$U' >/dev/null"
check log-level-decode bash -c "'$BIN' store decode --log-level warn --allow-local 'file:///tmp/x' >/dev/null"
check log-json bash -c "'$BIN' store ls --log-json --log-level debug '$U' >/dev/null"
# a bad level is refused before anything is done, naming the option
for args in "put $U lvbad $T/in.bin" "get $U lvbad $T/x" "ls $U" "stat $U lvbad" "rm $U lvbad" "abort $U" "commitment $U" "decode file:///tmp/x"; do
  # shellcheck disable=SC2086
  expect_fail "log-level-bad-${args%% *}" "--log-level must be debug, info, warn or error, not 'loud'" "$BIN" store $args --log-level loud
done
check log-level-bad-did-nothing bash -c "[ ! -e '$T/x' ] && ! '$BIN' store stat '$U' lvbad >/dev/null 2>&1"

# commitments: the R2 form round-trips, URL forms keep their credentials
acct=0123456789abcdef0123456789abcdef
ak=ABCDEFGHIJKLMNOPQRSTUVWXYZ012345
sk=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ01
check commitment-r2 bash -c "[ \"\$(AWS_ACCESS_KEY_ID=$ak AWS_SECRET_ACCESS_KEY=$sk '$BIN' store commitment 's3://$acct?endpoint=https://$acct.r2.cloudflarestorage.com&region=auto')\" = '$acct$ak$sk' ]"
check decode-r2 bash -c "out=\$('$BIN' store decode '$acct$ak$sk'); grep -q 'https://$acct.r2.cloudflarestorage.com' <<<\"\$out\" && ! grep -q '$sk' <<<\"\$out\""
check commitment-url-form bash -c "c=\$('$BIN' store commitment --store-access-key 'a:b' --store-secret-key 's/k' 's3://bkt/run?endpoint=https://minio.example'); [ \"\$c\" = 's3://a%3Ab:s%2Fk@bkt/run?endpoint=https://minio.example&region=auto' ]"
expect_fail decode-refuses-file "refused for remote peers" "$BIN" store decode "file:///etc"
check decode-local-allowed bash -c "'$BIN' store decode --allow-local 'file:///tmp/x' | grep -q 'file:///tmp/x'"
check env-credentials bash -c "c=\$(TESSERA_STORE_ACCESS_KEY=ak TESSERA_STORE_SECRET_KEY=sk AWS_ACCESS_KEY_ID=no AWS_SECRET_ACCESS_KEY=no '$BIN' store commitment 's3://bkt?endpoint=https://h.example'); [ \"\$c\" = 's3://ak:sk@bkt?endpoint=https://h.example&region=auto' ]"
check secret-not-in-help bash -c "! '$BIN' store put --help 2>&1 | grep -qi 'default: .*secret'"
exit 0
