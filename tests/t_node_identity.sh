#!/usr/bin/env bash
# t_node_identity.sh - one node per state directory, one node per hotkey.
#   - a second process on a running node's state directory refuses to start
#     (a lock), naming the process that holds it;
#   - a second process started with a running node's hotkey and another
#     bucket re-publishes that hotkey's commitment: the first notices the
#     commitment changed under it and stops with a clear error (else peers
#     would gather a different upload for that uid than it used);
#   - a node whose shards are not the ones the run's data_hash names (here:
#     the held-out split given as training data) refuses to start, naming
#     both hashes; with the run's shards the node logs that they match.
# No validator runs: the miners wait for the run's start, refreshing the
# chain, which is all these checks need.
set -u
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
T=$(mktemp -d "${TMPDIR:-/tmp}/tessera-identity-XXXXXX")
SUBNET_QUIET=1
# shellcheck source=tools/subnet_lib.sh
source tools/subnet_lib.sh
trap 'subnet_stop_all; rm -rf "$T"' EXIT

ok() { echo "ok   t_node_identity/$1"; }
fail() { echo "FAIL t_node_identity/$1"; shift; for l in "$@"; do echo "    $l"; done; }

if ! subnet_setup "$T/s" tiny validator m1 m2; then
  fail setup "$(tail -n 5 "$T/s/logs/init.log" 2>/dev/null)"
  exit 0
fi
D=$SUBNET_DIR
BIN=$SUBNET_BIN
M=(--chain "local:$D/subnet" --wallet demo)

# 1. the state directory's lock
subnet_start m1
for _ in $(seq 100); do grep -q "waiting for the run's start" "$D/logs/m1.log" && break; sleep 0.1; done
out=$(timeout 20 "$BIN/tessera-miner" "${M[@]}" --hotkey m2 --store-url "file://$D/stores/m2" --state-dir "$D/state/m1" 2>&1)
rc=$?
[ $rc -eq 124 ] && out="still running after 20 s on a state directory another process uses"
pid=${SUBNET_PID[m1]}
if [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -q "in use by another process (pid $pid)" <<<"$out"; then
  ok second_process_on_a_state_dir_refused
  echo "    $(tail -n 1 <<<"$out")"
else
  fail second_process_on_a_state_dir_refused "exit $rc: $out"
fi

# 2. a second process with m1's hotkey and another bucket
"$BIN/tessera-miner" "${M[@]}" --hotkey m1 --store-url "file://$D/stores/m1-other" --state-dir "$D/state/m1-other" \
  >"$D/logs/m1-other.log" 2>&1 &
other=$!
deadline=$((SECONDS + 30))
while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
if kill -0 "$pid" 2>/dev/null; then
  fail first_node_stops_when_its_commitment_changes "m1 still runs 30 s after another process re-published its commitment"
  tail -n 5 "$D/logs/m1.log" | sed 's/^/    /'
else
  wait "$pid"
  rc=$?
  unset "SUBNET_PID[m1]"
  if [ $rc -eq 1 ] && grep -q "another process runs with this hotkey" "$D/logs/m1.log"; then
    ok first_node_stops_when_its_commitment_changes
    echo "    $(grep -m1 "another process runs with this hotkey" "$D/logs/m1.log" | cut -c1-200)"
  else
    fail first_node_stops_when_its_commitment_changes "exit $rc" "$(tail -n 3 "$D/logs/m1.log")"
  fi
fi
kill "$other" 2>/dev/null
wait "$other" 2>/dev/null

# 3. the state directory is free again once its process is gone (a crash leaves no stale lock)
# (the node logs the run it joins once it holds the directory: wait for that
# line of this start, not a fixed time, so a loaded machine cannot pass a
# refusal that came late)
echo "--- restart ---" >>"$D/logs/m1.log"
subnet_start m1 --max-windows 1
deadline=$((SECONDS + 60))
since() { sed -n '/^--- restart ---$/,$p' "$D/logs/m1.log" | sed '1d'; }
while ! since | grep -q "run demo,\|in use by another process" && kill -0 "${SUBNET_PID[m1]}" 2>/dev/null &&
  [ $SECONDS -lt $deadline ]; do sleep 0.2; done
if kill -0 "${SUBNET_PID[m1]}" 2>/dev/null && since | grep -q "run demo," && ! since | grep -q "in use by another process"; then
  ok lock_released_when_the_process_dies
else
  fail lock_released_when_the_process_dies "$(tail -n 3 "$D/logs/m1.log")"
fi

# 4. the run's dataset hash: the right shards match, others are refused
out=$(timeout 60 "$BIN/tessera-miner" "${M[@]}" --hotkey m2 --store-url "file://$D/stores/m2" \
  --state-dir "$D/state/m2" --data "$BUILD/corpus/val" 2>&1)
rc=$?
if [ $rc -eq 1 ] && grep -q "training data .* has dataset hash .*, the run names" <<<"$out" &&
  grep -q "training data .*: dataset hash matches the run's" "$D/logs/m1.log"; then
  ok other_shards_than_the_runs_refused
  echo "    $(grep -m1 "has dataset hash" <<<"$out" | cut -c1-220)"
else
  fail other_shards_than_the_runs_refused "exit $rc: $(tail -n 3 <<<"$out")" "m1: $(grep -m1 "dataset hash" "$D/logs/m1.log")"
fi
exit 0
