#!/usr/bin/env bash
# chopsticks.sh - a real subtensor runtime for the tests, run offline by
# @acala-network/chopsticks from a raw chain spec (the spec embeds the
# compiled runtime; it is never part of this repository: point
# TESSERA_TEST_CHAINSPEC at a copy kept elsewhere).
#
#   bash tests/chopsticks.sh start DIR   prints CHOPSTICKS_URL=http://127.0.0.1:PORT
#   bash tests/chopsticks.sh stop DIR    stops it (and its block driver)
#   bash tests/chopsticks.sh status DIR  exit 0 when it answers
#
# Blocks are made on demand (--build-block-mode Manual): call dev_newBlock,
# or set TESSERA_CHOPSTICKS_BLOCK_MS=N to have a driver make one every N ms.
# The same port serves JSON-RPC over HTTP POST and WebSocket.
#
# Environment:
#   TESSERA_TEST_CHAINSPEC     raw chain spec JSON (required)
#   TESSERA_CHOPSTICKS_ARGS    extra chopsticks flags, e.g.
#                              "--wasm-override FILE --allow-unresolved-imports"
#   TESSERA_CHOPSTICKS_BLOCK_MS  make a block every N ms (unset: none)
#   TESSERA_CHOPSTICKS_WALLCLOCK=1  with BLOCK_MS: each block's Timestamp.Now
#                              is the wall clock (otherwise chopsticks adds
#                              one Aura slot, 3 s on raonet, per block)
#   TESSERA_CHOPSTICKS_LIFETIME  seconds before it stops by itself (1800), so
#                              a test that dies cannot leave it behind
#   TESSERA_CHOPSTICKS_WAIT    seconds to wait for it to answer (240)
#
# DIR holds its state: pid (its process group), driver.pid, port, url, log.  "start"
# exits 1 with the reason on stderr when the spec is missing, npm cannot
# install chopsticks, or the runtime does not come up.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CHOPSTICKS_PKGS=(@acala-network/chopsticks@1.5.1 @polkadot/api@16.5.6 @polkadot/keyring@14.0.3
  @polkadot/util-crypto@14.0.3 @polkadot/util@14.0.3)

block_driver='
import json, os, sys, time, urllib.request
port, ms, pg, wall = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
url = "http://127.0.0.1:%d/" % port
def call(method, params):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=30).read()).get("result")
slot = 0
if wall:
    # each block adds the Aura slot to Timestamp.Now; set it back by one slot
    # before each block so the block carries the wall-clock time
    slot = int.from_bytes(bytes.fromhex(call("state_call", ["AuraApi_slot_duration", "0x"])[2:]), "little")
nxt = time.monotonic()
while True:
    try:
        os.kill(-pg, 0)
    except OSError:
        break
    try:
        if wall:
            call("dev_timeTravel", [int(time.time() * 1000) - slot])
        call("dev_newBlock", [])
    except Exception as e:
        print("block driver: %s" % e, flush=True)
    nxt += ms / 1000.0
    time.sleep(max(0.0, nxt - time.monotonic()))
    if time.monotonic() - nxt > 5:
        nxt = time.monotonic()  # far behind (slow blocks): do not burst
'

die() {
  echo "chopsticks.sh: $*" >&2
  exit 1
}

if [ $# -ne 2 ]; then
  echo "usage: $0 start|stop|status DIR" >&2
  exit 2
fi
cmd=$1
dir=$2

rpc() { # rpc PORT METHOD [PARAMS]: the raw answer, or nothing
  curl -s --max-time 10 -H 'Content-Type: application/json' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$2\",\"params\":${3:-[]}}" "http://127.0.0.1:$1/" 2>/dev/null
}

alive() { # the process group in DIR/pid still has a member
  [ -f "$dir/pid" ] && kill -0 -- "-$(cat "$dir/pid")" 2>/dev/null
}

kill_group() { # kill_group FILE: TERM, then KILL, the process group named in FILE
  [ -f "$1" ] || return 0
  local pg
  pg=$(cat "$1")
  if [[ "$pg" =~ ^[0-9]+$ ]] && [ "$pg" -gt 1 ]; then
    kill -TERM -- "-$pg" 2>/dev/null
    for _ in $(seq 50); do
      kill -0 -- "-$pg" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$pg" 2>/dev/null
  fi
  rm -f "$1"
}

stop() {
  kill_group "$dir/driver.pid"
  kill_group "$dir/pid"
  rm -f "$dir/url" "$dir/port"
}

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

case "$cmd" in
stop)
  stop
  exit 0
  ;;
status)
  alive && [ -f "$dir/port" ] && rpc "$(cat "$dir/port")" system_chain | grep -q '"result"'
  exit
  ;;
start) ;;
*)
  echo "usage: $0 start|stop|status DIR" >&2
  exit 2
  ;;
esac

ms=${TESSERA_CHOPSTICKS_BLOCK_MS:-}
if [ -n "$ms" ] && { ! [[ "$ms" =~ ^[0-9]+$ ]] || [ "$ms" -eq 0 ]; }; then
  die "TESSERA_CHOPSTICKS_BLOCK_MS: '$ms' is not a positive integer"
fi
spec=${TESSERA_TEST_CHAINSPEC:-}
[ -n "$spec" ] || die "TESSERA_TEST_CHAINSPEC is not set (a raw subtensor chain spec JSON)"
[ -f "$spec" ] || die "TESSERA_TEST_CHAINSPEC: $spec does not exist"
spec=$(cd "$(dirname "$spec")" && pwd)/$(basename "$spec")
command -v curl >/dev/null || die "curl is not installed"
mkdir -p "$dir" || die "cannot create $dir"
dir=$(cd "$dir" && pwd)
if alive; then
  die "already running in $dir (stop it first)"
fi
stop

# npm retries a dead registry for minutes by default; fail sooner (a cached
# install does not touch the network at all)
export npm_config_fetch_retries=${npm_config_fetch_retries:-1}
export npm_config_fetch_retry_mintimeout=${npm_config_fetch_retry_mintimeout:-2000}
export npm_config_fetch_retry_maxtimeout=${npm_config_fetch_retry_maxtimeout:-10000}
npmdir=$(bash "$here/npm_oracle.sh" chopsticks "${CHOPSTICKS_PKGS[@]}") ||
  die "cannot install chopsticks from npm (see above)"
bin=$npmdir/node_modules/.bin/chopsticks
[ -x "$bin" ] || die "$bin is missing after the install"

lifetime=${TESSERA_CHOPSTICKS_LIFETIME:-1800}
wait_s=${TESSERA_CHOPSTICKS_WAIT:-240}
read -r -a extra <<<"${TESSERA_CHOPSTICKS_ARGS:-}"

for try in 1 2 3; do
  port=$(free_port) || die "cannot find a free port"
  : >"$dir/log"
  # its own process group (setsid), so stop takes chopsticks, its workers and
  # the block driver together; timeout bounds its life.  cwd is DIR in case
  # it writes anything.
  (
    cd "$dir" &&
      exec setsid timeout -s KILL "$lifetime" "$bin" --genesis "$spec" --host 127.0.0.1 --port "$port" \
        --build-block-mode Manual "${extra[@]}" </dev/null >>"$dir/log" 2>&1
  ) &
  pid=$!
  echo "$pid" >"$dir/pid"
  echo "$port" >"$dir/port"
  up=0
  for _ in $(seq $((wait_s * 2))); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    if rpc "$port" system_chain | grep -q '"result"' &&
      rpc "$port" chain_getHeader | grep -q '"number"'; then
      up=1
      break
    fi
    sleep 0.5
  done
  [ "$up" = 1 ] && break
  stop
  if grep -q "EADDRINUSE" "$dir/log" 2>/dev/null && [ "$try" -lt 3 ]; then continue; fi
  echo "chopsticks.sh: chopsticks did not answer on port $port within ${wait_s}s; the end of $dir/log:" >&2
  tail -n 20 "$dir/log" >&2
  exit 1
done

if [ "$(ps -o pgid= -p "$pid" | tr -d ' ')" != "$pid" ]; then
  kill "$pid" 2>/dev/null
  rm -f "$dir/pid"
  die "chopsticks (pid $pid) did not get its own process group"
fi
url=http://127.0.0.1:$port
echo "$url" >"$dir/url"

if [ -n "$ms" ]; then
  # the block driver: its own process group too (DIR/driver.pid); it ends by
  # itself when chopsticks is gone
  (exec setsid timeout -s KILL "$lifetime" /usr/bin/python3 -c "$block_driver" "$port" "$ms" "$(cat "$dir/pid")" "${TESSERA_CHOPSTICKS_WALLCLOCK:-0}" \
    </dev/null >>"$dir/log" 2>&1) &
  echo "$!" >"$dir/driver.pid"
fi
echo "CHOPSTICKS_URL=$url"
