#!/usr/bin/env bash
# run.sh - runs every test binary (build/tests/test_*) and every test script
# (tests/t_*.sh, tests/t_*.py), prints their lines, and ends with the summary
# line "N passed, N failed".  Test servers the suite needs (the S3 server) are
# started here and stopped on exit.
#
#   BUILD=build bash tests/run.sh [FILTER...]   FILTER matches file names
set -uo pipefail
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
export TESSERA_REPO=$PWD
export PYTHONDONTWRITEBYTECODE=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
LOG_DIR=$BUILD/test-logs
mkdir -p "$LOG_DIR"

passed=0 failed=0 skipped=0
failures=()

want() {
  [ $# -eq 0 ] && return 0
  return 1
}
matches() {
  local name=$1; shift
  [ ${#FILTERS[@]} -eq 0 ] && return 0
  for f in "${FILTERS[@]}"; do [[ $name == *"$f"* ]] && return 0; done
  return 1
}
FILTERS=("$@")

# Skips.  A skip whose reason is something a machine may lack for good
# reasons (a subtensor chain spec the user did not give, an npm registry out
# of reach, a GPU present or absent, docker compose, root for a tmpfs, the
# shared fixtures beside the checkout) stays a skip.  Any other skip (a test
# server that did not start, PyTorch, PyNaCl, numpy, the zstd command, s3cmd,
# a binary not built) is something `make test` installs or builds, so it
# means the set-up is broken: it counts as a failure, unless
# TESSERA_TEST_LENIENT=1 (running the suite by hand without `make deps`).
ALLOWED_SKIP='TESSERA_TEST_CHAINSPEC|TESSERA_TEST_YUMA|npm|oracle|chopsticks|GPU|docker|tmpfs|not root|openskill fixtures|shared/ beside'
LENIENT=${TESSERA_TEST_LENIENT:-0}
bad_skips=()

# Test servers: each tests/servers/*.sh is "start DIR" / "stop DIR"; a start
# prints KEY=VALUE lines that are exported to the tests.  One that does not
# start is a failure (the tests that need it then say so as skips).
SERVER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tessera-servers-XXXXXX")
started=()
server_failed=()
cleanup() {
  for s in "${started[@]}"; do bash "$s" stop "$SERVER_DIR/$(basename "$s" .sh)" >/dev/null 2>&1; done
  rm -rf "$SERVER_DIR"
}
trap cleanup EXIT
for s in tests/servers/*.sh; do
  [ -e "$s" ] || continue
  name=$(basename "$s" .sh)
  if out=$(bash "$s" start "$SERVER_DIR/$name" 2>"$LOG_DIR/server-$name.log"); then
    started+=("$s")
    while IFS= read -r kv; do
      [[ $kv == *=* ]] && export "${kv?}"
    done <<<"$out"
    echo "# server $name started"
  else
    echo "# server $name did not start (tests that need it will say so); see $LOG_DIR/server-$name.log"
    server_failed+=("$name")
  fi
done

count() {
  local out=$1
  local p f s
  p=$(grep -c '^ok ' <<<"$out" || true)
  f=$(grep -c '^FAIL ' <<<"$out" || true)
  s=$(grep -c '^skip ' <<<"$out" || true)
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  while IFS= read -r l; do failures+=("$l"); done < <(grep '^FAIL ' <<<"$out" || true)
  # each skip with its reason: the indented line after it, or the skip
  # line itself ("skip NAME (why)")
  local name="" line
  while IFS= read -r line; do
    if [[ $line == skip\ * ]]; then
      [ -n "$name" ] && classify_skip "$name" ""
      name=${line#skip }
    elif [ -n "$name" ]; then
      classify_skip "$name" "$(sed 's/^ *//; s/^skipped: //' <<<"$line")"
      name=""
    fi
  done < <(grep -A1 '^skip ' <<<"$out" | grep -v '^--$' || true)
  [ -n "$name" ] && classify_skip "$name" ""
}

classify_skip() { # name reason (the name may carry the reason: "NAME (why)")
  if [[ "$1 $2" =~ $ALLOWED_SKIP ]]; then return; fi
  bad_skips+=("$1${2:+: $2}")
}

run_unit() {
  local label=$1; shift
  local log="$LOG_DIR/$label.log"
  local start=$SECONDS
  "$@" >"$log" 2>&1
  local rc=$?
  local out
  out=$(cat "$log")
  grep -E '^(ok|FAIL|skip) |^    ' "$log"
  count "$out"
  # A runner that died without reporting a result counts as a failure.
  if [ $rc -ne 0 ] && ! grep -q '^FAIL ' "$log"; then
    echo "FAIL $label (exit status $rc; see $log)"
    tail -n 20 "$log" | sed 's/^/    | /'
    failed=$((failed + 1)); failures+=("FAIL $label (exit $rc)")
  fi
  echo "# $label: $((SECONDS - start))s"
}

# Every test source has its binary: one missing is a failure, not a test
# that quietly does not run.
for src in tests/test_*.c tests/backend_*.c; do
  [ -e "$src" ] || continue
  name=$(basename "$src" .c)
  matches "$name" || continue
  if [ ! -x "$BUILD/tests/$name" ]; then
    echo "FAIL $name (not built: $BUILD/tests/$name is missing; make tests)"
    failed=$((failed + 1)); failures+=("FAIL $name (not built)")
  fi
done
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  matches "$name" || continue
  run_unit "$name" "$t"
done
for t in tests/t_*.sh; do
  [ -e "$t" ] || continue
  name=$(basename "$t")
  matches "$name" || continue
  run_unit "$name" bash "$t"
done
for t in tests/t_*.py; do
  [ -e "$t" ] || continue
  name=$(basename "$t")
  matches "$name" || continue
  run_unit "$name" /usr/bin/python3 "$t"
done

if [ ${#server_failed[@]} -gt 0 ] && [ "$LENIENT" != 1 ]; then
  for n in "${server_failed[@]}"; do
    echo "FAIL server-$n (the test server did not start; see $LOG_DIR/server-$n.log)"
    failed=$((failed + 1)); failures+=("FAIL server-$n (did not start)")
  done
fi
if [ ${#bad_skips[@]} -gt 0 ]; then
  if [ "$LENIENT" = 1 ]; then
    echo "# skips that make deps / make tests would have prevented (TESSERA_TEST_LENIENT=1: not failures):"
    printf '#   %s\n' "${bad_skips[@]}"
  else
    for b in "${bad_skips[@]}"; do
      echo "FAIL skipped: $b (make deps and make tests provide this; TESSERA_TEST_LENIENT=1 allows it)"
      failed=$((failed + 1)); failures+=("FAIL skipped: $b")
    done
  fi
fi

echo
if [ ${#failures[@]} -gt 0 ]; then
  echo "failures:"
  printf '  %s\n' "${failures[@]}"
fi
echo "$skipped skipped (each says why above)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
