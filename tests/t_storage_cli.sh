#!/usr/bin/env bash
# t_storage_cli.sh - `tessera store` on a file:// store: put, get, ls, stat,
# rm, standard input and output, one-line errors, bucket commitments.
set -u
BIN=${BUILD:-build}/bin/tessera
N=t_storage_cli
T=$(mktemp -d "${TMPDIR:-/tmp}/t_storage_cli-XXXXXX"); trap 'rm -rf "$T"' EXIT
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN TESSERA_ACCESS_KEY TESSERA_SECRET_KEY

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
expect_fail dotdot-key "'..' segment" "$BIN" store put "$U" "../evil" "$T/in.bin"
expect_fail bad-url "unknown store URL" "$BIN" store ls "ftp://x/y"
expect_fail s3-needs-credentials "AWS_ACCESS_KEY_ID" "$BIN" store ls "s3://bucket?endpoint=https://h.example"
expect_fail missing-args "usage" "$BIN" store put "$U" k
expect_fail unknown-verb "unknown command" "$BIN" store frobnicate

# commitments: the R2 form round-trips, URL forms keep their credentials
acct=0123456789abcdef0123456789abcdef
ak=ABCDEFGHIJKLMNOPQRSTUVWXYZ012345
sk=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ01
check commitment-r2 bash -c "[ \"\$(AWS_ACCESS_KEY_ID=$ak AWS_SECRET_ACCESS_KEY=$sk '$BIN' store commitment 's3://$acct?endpoint=https://$acct.r2.cloudflarestorage.com&region=auto')\" = '$acct$ak$sk' ]"
check decode-r2 bash -c "out=\$('$BIN' store decode '$acct$ak$sk'); grep -q 'https://$acct.r2.cloudflarestorage.com' <<<\"\$out\" && ! grep -q '$sk' <<<\"\$out\""
check commitment-url-form bash -c "c=\$('$BIN' store commitment --access-key 'a:b' --secret-key 's/k' 's3://bkt/run?endpoint=https://minio.example'); [ \"\$c\" = 's3://a%3Ab:s%2Fk@bkt/run?endpoint=https://minio.example&region=auto' ]"
expect_fail decode-refuses-file "refused for remote peers" "$BIN" store decode "file:///etc"
check decode-local-allowed bash -c "'$BIN' store decode --allow-local 'file:///tmp/x' | grep -q 'file:///tmp/x'"
check secret-not-in-help bash -c "! '$BIN' store put --help 2>&1 | grep -qi 'default: .*secret'"
exit 0
