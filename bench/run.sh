#!/usr/bin/env bash
# run.sh - runs every benchmark: build/bench/bench_* binaries and bench/b_*.sh
# scripts.  Each prints its figures and the command that reproduces them.
#   BUILD=build bash bench/run.sh [FILTER...]
set -uo pipefail
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
export TESSERA_REPO=$PWD
status=0
matches() {
  local name=$1; shift
  [ $# -eq 0 ] && return 0
  for f in "$@"; do [[ $name == *"$f"* ]] && return 0; done
  return 1
}
echo "# tessera benchmarks on $(hostname), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
for b in "$BUILD"/bench/bench_* bench/b_*.sh; do
  [ -e "$b" ] || continue
  name=$(basename "$b")
  matches "$name" "$@" || continue
  # the lab's comparison takes hours on a CPU: only when it is asked for by name
  if [ "$name" = b_lab.sh ] && ! { [ $# -gt 0 ] && matches "$name" "$@"; }; then
    echo
    echo "## $name: not run (about 3.5 hours on 2 cores): make bench BENCH_ARGS=b_lab"
    continue
  fi
  echo
  echo "## $name"
  if [[ $b == *.sh ]]; then bash "$b" || status=1; else "$b" || status=1; fi
done
exit $status
