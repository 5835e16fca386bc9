#!/usr/bin/env bash
# t_storage_interop.sh - objects written by `tessera store` are read back by
# Debian's s3cmd, and objects written by s3cmd are read by `tessera store`,
# byte for byte, against the suite's S3 server (tests/servers/s3.sh); small
# objects and multipart ones (parts of 5 MiB on both sides).
set -u
BIN=${BUILD:-build}/bin/tessera
N=t_storage_interop
T=$(mktemp -d "${TMPDIR:-/tmp}/t_storage_interop-XXXXXX"); trap 'rm -rf "$T"' EXIT

skip_all() { echo "skip $N/all"; echo "    skipped: $1"; exit 0; }
[ -n "${TESSERA_TEST_S3_ENDPOINT:-}" ] ||
  skip_all "no S3 test server: TESSERA_TEST_S3_* unset (tests/run.sh starts tests/servers/s3.sh; see ${BUILD:-build}/test-logs/server-s3.log)"
command -v s3cmd >/dev/null || skip_all "s3cmd is not installed (make deps)"

ok() { echo "ok   $N/$1"; }
fail() { echo "FAIL $N/$1"; shift; for l in "$@"; do printf '    %s\n' "$l"; done; }
check() { # name, command...
  local name=$1; shift
  local out
  if out=$("$@" 2>&1); then ok "$name"; else fail "$name" "command: $*" "$(head -c 600 <<<"$out")"; fi
}

# s3cmd against the local server: path-style (host_bucket without %(bucket)s),
# signature v4, region auto, plain http, credentials from the suite.
host=${TESSERA_TEST_S3_ENDPOINT#http://}
cat >"$T/s3cfg" <<EOF
[default]
access_key = $TESSERA_TEST_S3_ACCESS_KEY
secret_key = $TESSERA_TEST_S3_SECRET_KEY
host_base = $host
host_bucket = $host
bucket_location = $TESSERA_TEST_S3_REGION
use_https = False
signature_v2 = False
check_ssl_certificate = False
multipart_chunk_size_mb = 5
progress_meter = False
EOF
chmod 600 "$T/s3cfg"
s3c() { s3cmd -c "$T/s3cfg" --no-check-md5 "$@"; }
prefix="t/interop-$$"
B=s3://$TESSERA_TEST_S3_BUCKET/$prefix
URL="$B?endpoint=$TESSERA_TEST_S3_ENDPOINT&region=$TESSERA_TEST_S3_REGION"
export AWS_ACCESS_KEY_ID=$TESSERA_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$TESSERA_TEST_S3_SECRET_KEY
ts() { local verb=$1; shift; "$BIN" store "$verb" -q --part-size 5242880 "$@"; }

gen() { /usr/bin/python3 -c 'import random,sys; random.seed(int(sys.argv[1])); sys.stdout.buffer.write(random.randbytes(int(sys.argv[2])))' "$1" "$2"; }
gen 1 1000000 >"$T/small.bin"
gen 2 $((40 * 1048576 + 17)) >"$T/big.bin"
gen 3 1048576 >"$T/s3cmd-small.bin"
gen 4 $((23 * 1048576 + 5)) >"$T/s3cmd-big.bin"
ukey="dir with space/ünïcødé ☃.bin"

# tessera -> s3cmd
check tessera-put-small ts put "$URL" "$ukey" "$T/small.bin"
check tessera-put-multipart ts put "$URL" big.bin "$T/big.bin"
s3cmd_reads() { s3c get --force "$B/$1" "$T/got.bin" >/dev/null && cmp "$2" "$T/got.bin"; }
check s3cmd-reads-tessera-small s3cmd_reads "$ukey" "$T/small.bin"
check s3cmd-reads-tessera-multipart s3cmd_reads big.bin "$T/big.bin"
s3cmd_lists() { s3c ls -r "$B/" | grep -F -- "$B/$ukey" | grep -q " 1000000 "; }
check s3cmd-lists-tessera-keys s3cmd_lists

# s3cmd -> tessera
check s3cmd-put-small s3c put "$T/s3cmd-small.bin" "$B/from s3cmd/small.bin"
check s3cmd-put-multipart s3c put "$T/s3cmd-big.bin" "$B/from s3cmd/big.bin"
tessera_reads() { ts get "$URL" "$1" "$T/got2.bin" && cmp "$2" "$T/got2.bin"; }
check tessera-reads-s3cmd-small tessera_reads "from s3cmd/small.bin" "$T/s3cmd-small.bin"
check tessera-reads-s3cmd-multipart tessera_reads "from s3cmd/big.bin" "$T/s3cmd-big.bin"
to_stdout() { ts get "$URL" "from s3cmd/small.bin" | cmp - "$T/s3cmd-small.bin"; }
check tessera-reads-s3cmd-to-stdout to_stdout
stat_size() { ts stat --json "$URL" "from s3cmd/big.bin" | grep -q "\"size\": $((23 * 1048576 + 5)),"; }
check tessera-stats-s3cmd-multipart stat_size
lists() { local out; out=$(ts ls "$URL" "from s3cmd/" 2>/dev/null) &&
  grep -q " 1048576  from s3cmd/small.bin$" <<<"$out" && grep -q "from s3cmd/big.bin$" <<<"$out"; }
check tessera-lists-s3cmd-keys lists

# deletes are seen by the other tool
check tessera-rm ts rm "$URL" "$ukey" big.bin "from s3cmd/small.bin" "from s3cmd/big.bin"
empty() { [ -z "$(s3c ls -r "$B/")" ]; }
check s3cmd-sees-deletes empty
exit 0
