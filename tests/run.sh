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

# Test servers: each tests/servers/*.sh is "start DIR" / "stop DIR"; a start
# prints KEY=VALUE lines that are exported to the tests.
SERVER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tessera-servers-XXXXXX")
started=()
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

echo
if [ ${#failures[@]} -gt 0 ]; then
  echo "failures:"
  printf '  %s\n' "${failures[@]}"
fi
echo "$skipped skipped (each says why above)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
