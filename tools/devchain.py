#!/usr/bin/python3
"""devchain.py - drives a development subtensor chain run by chopsticks
(tests/chopsticks.sh): the blocks, and storage set by hand where a test or
the demo needs a state that real chains reach by governance or by time.

  devchain.py URL set JSON          dev_setStorage with chopsticks' object form,
                                    e.g. '{"SubtensorModule": {"Tempo": [[[1], 3]]}}'
                                    (a value of 0 or false deletes the key: the
                                    runtime default comes back)
  devchain.py URL blocks N          make N blocks now
  devchain.py URL drive MS [PGID]   make a block every MS milliseconds until
                                    killed (or until process group PGID is gone),
                                    keeping each block's timestamp on the wall
                                    clock: chopsticks otherwise stamps a block
                                    one slot (6 or 12 s) after its parent however
                                    fast blocks come, and Tessera's windows are
                                    scheduled by block timestamps
  devchain.py URL now               the head's number and timestamp offset from
                                    the wall clock, in seconds

URL is the chain's HTTP JSON-RPC address (http://127.0.0.1:PORT).
"""
import json
import os
import sys
import time
import urllib.request

TIMESTAMP_NOW = "0xf0c365c3cf59d671eb72da0e7a4113c49f1f0515f462cdcf84e0f1d6045dfcbb"  # Timestamp.Now


def rpc(url, method, params=None, timeout=60):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        ans = json.loads(r.read())
    if "error" in ans:
        raise RuntimeError("%s: %s" % (method, ans["error"]))
    return ans["result"]


def chain_time(url):
    """The head's timestamp in seconds (None before the first block)."""
    h = rpc(url, "state_getStorage", [TIMESTAMP_NOW])
    return int.from_bytes(bytes.fromhex(h[2:]), "little") / 1000.0 if h else None


def head(url):
    return int(rpc(url, "chain_getHeader")["number"], 16)


def drive(url, ms, pgid):
    # Each block is stamped with the wall clock: chopsticks stamps a block at
    # the travelled-to time plus a slot, so travel to (want - adj), with adj
    # learnt from each block.  Timestamps only go forward: a chain ahead of
    # the wall clock steps 50 ms a block until the wall clock catches up.
    adj = 3.0
    plain = False
    nxt = time.monotonic()
    while True:
        if pgid:
            try:
                os.kill(-pgid, 0)
            except OSError:
                return
        try:
            last = chain_time(url)
            before = head(url)
            if last is None or plain:
                # the first block (no timestamp yet), or after a block the
                # runtime refused: a block as chopsticks makes it by itself
                rpc(url, "dev_newBlock")
                plain = False
            else:
                want = max(time.time(), last + 0.05)
                rpc(url, "dev_timeTravel", [int((want - adj) * 1000)])
                rpc(url, "dev_newBlock")
                got = chain_time(url)
                if head(url) == before or got is None:
                    raise RuntimeError("the runtime refused the block (see chopsticks' log); the next one is plain")
                adj = min(max(adj + got - want, 0.0), 60.0)
        except Exception as e:  # a busy or restarting chain: try again next tick
            plain = True
            print("devchain drive: %s" % e, file=sys.stderr, flush=True)
        nxt += ms / 1000.0
        time.sleep(max(0.0, nxt - time.monotonic()))
        if time.monotonic() - nxt > 5:
            nxt = time.monotonic()


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    url, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if cmd == "set" and len(args) == 1:
        rpc(url, "dev_setStorage", [json.loads(args[0])])
    elif cmd == "blocks" and len(args) == 1:
        rpc(url, "dev_newBlock", [{"count": int(args[0])}], timeout=600)
    elif cmd == "drive" and len(args) in (1, 2):
        drive(url, int(args[0]), int(args[1]) if len(args) == 2 else 0)
    elif cmd == "now" and not args:
        print(head(url), round(chain_time(url) - time.time(), 3))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
