#!/usr/bin/python3
"""faultproxy.py - a TCP proxy that injects a real network's faults, for the
end-to-end tests (the kernels these tests run on have no netem qdisc).

    faultproxy.py --listen HOST:PORT --upstream HOST:PORT --control FILE
                  [--stats FILE] [--seed N]

Every connection accepted on --listen is forwarded to --upstream.  What
happens to it is decided by the rule for the client's address in the control
file (JSON, re-read within 0.2 s of a change; write it to a temporary file
and rename it into place):

    {"default": RULE, "clients": {"10.77.0.11": RULE, ...}}

    RULE = {"mode": "pass" | "reset" | "503" | "stall",
            "delay_ms": 0,     one-way delay added to every chunk, each way
            "loss": 0.0}       share of chunks "lost": each costs a
                               retransmission (max(200 ms, 2 x delay) more),
                               holding back what follows, as TCP does

    pass    forward, with the delay and loss above
    reset   a store that is down: new connections are reset at once
    503     a store that answers but is unavailable: every request is read
            and answered "503 Service Unavailable" (an S3 error body), then
            the connection is closed
    stall   accept and read, never answer (a hung server)

When a client's mode changes, its open connections are reset (as when a
server restarts or a link fails), so the new mode applies to its next
request even over a kept-alive connection.

Delay does not reduce throughput (as netem's delay: chunks are released at
their arrival time plus the delay).  The random source is seeded (--seed,
plus the connection's number), so a run's losses are reproducible for the
same sequence of connections.

The proxy stops by itself when the control file's directory is removed (a
test that died cannot leave it running).

--stats FILE is rewritten (atomically) every second with per-client counts:
connections, bytes each way, chunks lost, 503 answers, resets.
"""
import argparse
import asyncio
import json
import os
import random
import signal
import socket
import struct
import sys
import time

RULE_DEFAULT = {"mode": "pass", "delay_ms": 0, "loss": 0.0}
MODES = ("pass", "reset", "503", "stall")
CHUNK = 16384
BODY_503 = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code>'
            b'<Message>Please reduce your request rate.</Message></Error>')


def log(msg):
    sys.stderr.write("%s faultproxy: %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), msg))
    sys.stderr.flush()


def check_rule(r, where):
    if not isinstance(r, dict):
        raise ValueError("%s: a rule is an object" % where)
    out = dict(RULE_DEFAULT)
    for k, v in r.items():
        if k not in RULE_DEFAULT:
            raise ValueError("%s: unknown key %r" % (where, k))
        out[k] = v
    if out["mode"] not in MODES:
        raise ValueError("%s: mode %r is not one of %s" % (where, out["mode"], ", ".join(MODES)))
    if not isinstance(out["delay_ms"], (int, float)) or not 0 <= out["delay_ms"] <= 60000:
        raise ValueError("%s: delay_ms must be in [0, 60000]" % where)
    if not isinstance(out["loss"], (int, float)) or not 0 <= out["loss"] < 1:
        raise ValueError("%s: loss must be in [0, 1)" % where)
    return out


class Control:
    def __init__(self, path):
        self.path = path
        self.mtime = None
        self.default = dict(RULE_DEFAULT)
        self.clients = {}
        self.load()

    def load(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        key = (st.st_mtime_ns, st.st_ino, st.st_size)
        if key == self.mtime:
            return False
        self.mtime = key
        try:
            with open(self.path) as f:
                c = json.load(f)
            default = check_rule(c.get("default", {}), "default")
            clients = {ip: check_rule(r, ip) for ip, r in c.get("clients", {}).items()}
        except (ValueError, OSError) as e:
            log("control file %s refused, rules unchanged: %s" % (self.path, e))
            return False
        self.default, self.clients = default, clients
        log("rules: default %s; %s" % (json.dumps(default, sort_keys=True),
                                        json.dumps(clients, sort_keys=True)))
        return True

    def rule(self, ip):
        return self.clients.get(ip, self.default)


class Proxy:
    def __init__(self, a):
        self.upstream = a.upstream
        self.control = Control(a.control)
        self.stats_path = a.stats
        self.seed = a.seed
        self.nconn = 0
        self.conns = {}  # id -> (client address, mode it was opened under, writers)
        self.stats = {}

    def count(self, ip, key, n=1):
        s = self.stats.setdefault(ip, {"connections": 0, "bytes_up": 0, "bytes_down": 0, "lost": 0,
                                       "answered_503": 0, "reset": 0, "stalled": 0})
        s[key] += n

    async def watch(self):
        last = 0.0
        while True:
            await asyncio.sleep(0.2)
            # the test that started it is gone with its directory: so is it
            if not os.path.isdir(os.path.dirname(os.path.abspath(self.control.path))):
                log("the control file's directory is gone: stopping")
                os._exit(0)
            if self.control.load():
                # A connection lives under the mode it was opened with: when
                # its client's mode changes (the store goes down, starts
                # answering 503, comes back), it is reset, as a server
                # restarting or a link failing breaks the connections open
                # through it; the client's next connection gets the new mode.
                for cid, (ip, mode, ws) in list(self.conns.items()):
                    if self.control.rule(ip)["mode"] != mode:
                        for w in ws:
                            abort(w)
                        self.count(ip, "reset")
            if self.stats_path and time.time() - last >= 1.0:
                last = time.time()
                tmp = self.stats_path + ".tmp"
                with open(tmp, "w") as f:
                    json.dump({"time": last, "clients": self.stats}, f, sort_keys=True)
                os.replace(tmp, self.stats_path)

    async def handle(self, reader, writer):
        ip = writer.get_extra_info("peername")[0]
        self.nconn += 1
        cid = self.nconn
        rule = self.control.rule(ip)
        self.count(ip, "connections")
        rng = random.Random(self.seed * 1000003 + cid)
        try:
            if rule["mode"] == "reset":
                self.count(ip, "reset")
                abort(writer)
                return
            if rule["mode"] == "503":
                await self.answer_503(reader, writer, ip)
                return
            if rule["mode"] == "stall":
                self.count(ip, "stalled")
                self.conns[cid] = (ip, "stall", [writer])
                while await reader.read(CHUNK):
                    pass
                return
            host, port = self.upstream.rsplit(":", 1)
            try:
                ur, uw = await asyncio.open_connection(host, int(port))
            except OSError as e:
                log("connection %d from %s: upstream %s: %s" % (cid, ip, self.upstream, e))
                abort(writer)
                return
            self.conns[cid] = (ip, "pass", [writer, uw])
            await asyncio.gather(self.pump(reader, uw, ip, "bytes_up", rng),
                                 self.pump(ur, writer, ip, "bytes_down", rng))
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.conns.pop(cid, None)
            try:
                writer.close()
            except Exception:
                pass

    async def answer_503(self, reader, writer, ip):
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            b = await reader.read(CHUNK)
            if not b:
                return
            head += b
        self.count(ip, "answered_503")
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY_503) + BODY_503)
        await writer.drain()
        writer.close()

    async def pump(self, reader, writer, ip, key, rng):
        """Copies reader to writer; each chunk is released delay (plus, when
        lost, a retransmission) after it arrived, in order."""
        q = asyncio.Queue()

        async def release():
            while True:
                at, data = await q.get()
                wait = at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    try:
                        writer.write_eof()
                    except (OSError, RuntimeError):
                        pass
                    return
                writer.write(data)
                await writer.drain()

        task = asyncio.ensure_future(release())
        hold = 0.0  # the release time of the last chunk: order is kept
        try:
            while True:
                data = await reader.read(CHUNK)
                rule = self.control.rule(ip)
                d = rule["delay_ms"] / 1000.0
                at = time.monotonic() + d
                if data and rule["loss"] > 0 and rng.random() < rule["loss"]:
                    at += max(0.2, 2 * d)
                    self.count(ip, "lost")
                at = max(at, hold)
                hold = at
                q.put_nowait((at, data or None))
                if not data:
                    break
                self.count(ip, key, len(data))
            await task
        finally:
            if not task.done():
                task.cancel()


def abort(writer):
    """Closes with a reset (SO_LINGER 0), as a host that went away."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    except Exception:
        pass


async def main(a):
    p = Proxy(a)
    host, port = a.listen.rsplit(":", 1)
    server = await asyncio.start_server(p.handle, host, int(port), reuse_address=True)
    log("listening on %s, forwarding to %s" % (a.listen, a.upstream))
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, lambda: stop.done() or stop.set_result(None))
    watch = asyncio.ensure_future(p.watch())
    await stop
    watch.cancel()
    server.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--control", required=True)
    ap.add_argument("--stats")
    ap.add_argument("--seed", type=int, default=1)
    asyncio.run(main(ap.parse_args()))
