#!/usr/bin/env bash
# b_storage.sh - object storage throughput: `tessera store put/get` beside
# Debian's s3cmd on the same objects, against a private local S3 server
# (tests/servers/s3.sh: OpenStack Swift's S3 layer on loopback), in one run.
#
#   BUILD=build bash bench/b_storage.sh            1 MB, 64 MB, 512 MB
#   B_STORAGE_SIZES="1 64" bash bench/b_storage.sh sizes in MiB
#
# Each figure is the median of REPS runs (5 for 1 MiB, 3 for 64 MiB, 2 above)
# of the whole command, process start included, both tools with their default
# settings (tessera: 16 MiB parts, 4 in parallel, multipart above 64 MiB;
# s3cmd: 15 MB parts, one at a time).  Every download is compared with the
# upload byte for byte.  "ratio" is tessera's throughput over s3cmd's: above
# 1 means tessera is faster.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$BUILD/bin/tessera
SIZES=${B_STORAGE_SIZES:-1 64 512}

if [ ! -x "$BIN" ]; then echo "b_storage: $BIN is missing (make benches)" >&2; exit 1; fi
if ! command -v s3cmd >/dev/null; then echo "b_storage: s3cmd is not installed (make deps)" >&2; exit 1; fi

W=$(mktemp -d "${TMPDIR:-/tmp}/b_storage-XXXXXX")
cleanup() { bash tests/servers/s3.sh stop "$W/s3" >/dev/null 2>&1 || true; rm -rf "$W"; }
trap cleanup EXIT

# The server: two proxy and two object workers (the machine's two cores).
env_out=$(TESSERA_S3_PROXY_WORKERS=2 TESSERA_S3_OBJECT_WORKERS=2 bash tests/servers/s3.sh start "$W/s3")
while IFS= read -r kv; do [[ $kv == *=* ]] && export "${kv?}"; done <<<"$env_out"
host=${TESSERA_TEST_S3_ENDPOINT#http://}
cat >"$W/s3cfg" <<EOF
[default]
access_key = $TESSERA_TEST_S3_ACCESS_KEY
secret_key = $TESSERA_TEST_S3_SECRET_KEY
host_base = $host
host_bucket = $host
bucket_location = $TESSERA_TEST_S3_REGION
use_https = False
signature_v2 = False
progress_meter = False
EOF
export AWS_ACCESS_KEY_ID=$TESSERA_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$TESSERA_TEST_S3_SECRET_KEY
B=s3://$TESSERA_TEST_S3_BUCKET/bench
URL="$B?endpoint=$TESSERA_TEST_S3_ENDPOINT&region=$TESSERA_TEST_S3_REGION"

now() { date +%s.%N; }
# seconds taken by a command (its output discarded; a failure stops the bench)
timed() {
  local t0 t1
  t0=$(now)
  if ! "$@" >"$W/cmd.log" 2>&1; then echo "b_storage: failed: $*" >&2; tail -5 "$W/cmd.log" >&2; exit 1; fi
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}'
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
mbps() { awk -v n="$1" -v t="$2" 'BEGIN {print n / 1048576 / t}'; }

echo "# storage throughput against a local Swift S3 server ($(nproc) cores), MiB/s, median of REPS runs"
printf "%-8s %-4s %5s %12s %12s %8s\n" size op reps tessera s3cmd ratio
for mib in $SIZES; do
  bytes=$((mib * 1048576))
  head -c "$bytes" /dev/urandom >"$W/obj.bin"
  reps=2
  [ "$mib" -le 1 ] && reps=5
  [ "$mib" -gt 1 ] && [ "$mib" -le 64 ] && reps=3
  : >"$W/tp" ; : >"$W/tg" ; : >"$W/sp" ; : >"$W/sg"
  for r in $(seq 1 "$reps"); do
    k="o$mib-$r"
    # alternate which tool goes first
    for who in $( [ $((r % 2)) -eq 1 ] && echo "t s" || echo "s t"); do
      if [ "$who" = t ]; then
        timed "$BIN" store put -q "$URL" "t/$k" "$W/obj.bin" >>"$W/tp"
        timed "$BIN" store get -q "$URL" "t/$k" "$W/t.out" >>"$W/tg"
        cmp -s "$W/obj.bin" "$W/t.out" || { echo "b_storage: tessera download differs" >&2; exit 1; }
        "$BIN" store rm -q "$URL" "t/$k"
      else
        timed s3cmd -c "$W/s3cfg" put "$W/obj.bin" "$B/s/$k" >>"$W/sp"
        timed s3cmd -c "$W/s3cfg" get --force "$B/s/$k" "$W/s.out" >>"$W/sg"
        cmp -s "$W/obj.bin" "$W/s.out" || { echo "b_storage: s3cmd download differs" >&2; exit 1; }
        s3cmd -c "$W/s3cfg" del "$B/s/$k" >/dev/null
      fi
    done
  done
  for op in put get; do
    tt=$(median <"$W/t${op:0:1}") ts=$(median <"$W/s${op:0:1}")
    a=$(mbps "$bytes" "$tt") b=$(mbps "$bytes" "$ts")
    printf "%-8s %-4s %5d %12.1f %12.1f %8.2f\n" "${mib}MiB" "$op" "$reps" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN {print a / b}')"
  done
  rm -f "$W/obj.bin" "$W/t.out" "$W/s.out"
done
echo "# reproduce: make benches && BUILD=$BUILD B_STORAGE_SIZES=\"$SIZES\" bash bench/b_storage.sh"
echo "# (or: make bench BENCH_ARGS=b_storage)"
