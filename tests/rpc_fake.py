#!/usr/bin/python3
"""rpc_fake.py - a scripted JSON-RPC node on loopback for tests/test_rpc.c:
the answers a real node will not give on demand.  The request's method name
picks the behaviour:

    echo          result {"method", "params", "port": the client's port}
    null          result null
    hex           result "0x0102ff"          hex_empty  "0x"
    hex_odd       "0x123"    hex_bad "0xzz"  hex_num    5
    fail          error -32601 with string data
    fail_tx       error 1010 "Invalid Transaction" with string data
    fail_nodata   error -32000 without data
    fail_objdata  error 4003 whose data is an object
    fail_nullid   error -32700 with id null
    cs_notfound   chopsticks' style, no code: "Method not found: cs_notfound"
    cs_stale      chopsticks' style, no code: {"invalid":{"stale":null}}
    cs_other      chopsticks' style, no code: "Function to start was not found."
    cs_nomessage  an error object with neither code nor message
    error_bad     "error": "oops" (not an object)
    wrong_id      a result for id + 1
    no_id         a result without an id
    string_id     a result whose id is the id as a string
    bad_version   "jsonrpc": "1.0"
    both          a result and an error
    neither       neither result nor error
    garbage       200 text/plain "hello, this is not JSON"
    html          200 text/html page
    empty         200 with an empty body
    array         200 [1, 2, 3]
    trailing      a good answer followed by "xyz"
    deep          200 with [[[[...]]]] nested 100000 deep
    slow          sleeps 3 s, then answers
    flaky500      HTTP 500 (text) for the first 2 requests, then echo
    flaky429      HTTP 429 once, then echo
    always500     HTTP 500 every time
    err500        HTTP 500 carrying a JSON-RPC error object (-32603)
    status404     HTTP 404 with an HTML body
    status403     HTTP 403
    drop_once     closes the connection without answering once, then echo
    short         Content-Length 100, 10 bytes, then closes (every time)
    huge          a valid answer of 3 MiB (Content-Length given)
    huge_chunked  the same sent chunked (no Content-Length)
    count         result: requests this server has seen for each method

    rpc_fake.py [--lifetime S]

prints "PORT PID" once listening, then serves in the background and exits
by itself after --lifetime seconds (default 60).
"""
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNTS = {}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # headers and body go out in separate writes: without this, Nagle
        # plus the client's delayed ACK costs 40 ms per answer
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body, ctype="application/json", close=False):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def answer(self, rid, result=None, error=None, status=200, **extra):
        msg = {"jsonrpc": "2.0", "id": rid}
        if error is not None:
            msg["error"] = error
        else:
            msg["result"] = result
        msg.update(extra)
        self.send(status, json.dumps(msg))

    def do_GET(self):
        self.send(405, "POST only\n", "text/plain")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            req = json.loads(raw)
            method, rid, params = req["method"], req["id"], req.get("params")
            assert req["jsonrpc"] == "2.0"
        except Exception:
            self.answer(None, error={"code": -32700, "message": "Parse error"})
            return
        with LOCK:
            COUNTS[method] = COUNTS.get(method, 0) + 1
            seen = COUNTS[method]
        echo = {"method": method, "params": params, "port": self.client_address[1]}
        m = method
        if m == "echo":
            self.answer(rid, echo)
        elif m == "null":
            self.answer(rid, None)
        elif m == "hex":
            self.answer(rid, "0x0102ff")
        elif m == "hex_empty":
            self.answer(rid, "0x")
        elif m == "hex_odd":
            self.answer(rid, "0x123")
        elif m == "hex_bad":
            self.answer(rid, "0xzz")
        elif m == "hex_num":
            self.answer(rid, 5)
        elif m == "fail":
            self.answer(rid, error={"code": -32601, "message": "Method not found", "data": "no such thing"})
        elif m == "fail_tx":
            self.answer(rid, error={"code": 1010, "message": "Invalid Transaction",
                                    "data": "Inability to pay some fees (e.g. account balance too low)"})
        elif m == "fail_nodata":
            self.answer(rid, error={"code": -32000, "message": "Server error\x07\n"})
        elif m == "fail_objdata":
            self.answer(rid, error={"code": 4003, "message": "Client error", "data": {"why": "Execution failed"}})
        elif m == "fail_nullid":
            self.answer(None, error={"code": -32700, "message": "Parse error"})
        elif m == "cs_notfound":
            self.answer(rid, error={"message": "Method not found: cs_notfound"})
        elif m == "cs_stale":
            self.answer(rid, error={"message": '{"invalid":{"stale":null}}'})
        elif m == "cs_other":
            self.answer(rid, error={"message": "Function to start was not found."})
        elif m == "cs_nomessage":
            self.answer(rid, error={"why": "unknown"})
        elif m == "error_bad":
            self.send(200, json.dumps({"jsonrpc": "2.0", "id": rid, "error": "oops"}))
        elif m == "wrong_id":
            self.answer(rid + 1, echo)
        elif m == "no_id":
            self.send(200, json.dumps({"jsonrpc": "2.0", "result": 1}))
        elif m == "string_id":
            self.answer(str(rid), 1)
        elif m == "bad_version":
            self.send(200, json.dumps({"jsonrpc": "1.0", "id": rid, "result": 1}))
        elif m == "both":
            self.send(200, json.dumps({"jsonrpc": "2.0", "id": rid, "result": 1,
                                       "error": {"code": 1, "message": "x"}}))
        elif m == "neither":
            self.send(200, json.dumps({"jsonrpc": "2.0", "id": rid}))
        elif m == "garbage":
            self.send(200, "hello, this is not JSON", "text/plain")
        elif m == "html":
            self.send(200, "<html><body><h1>Welcome to nginx!</h1></body></html>", "text/html")
        elif m == "empty":
            self.send(200, b"")
        elif m == "array":
            self.send(200, "[1, 2, 3]")
        elif m == "trailing":
            self.send(200, json.dumps({"jsonrpc": "2.0", "id": rid, "result": 1}) + "xyz")
        elif m == "deep":
            self.send(200, "[" * 100000 + "]" * 100000)
        elif m == "slow":
            time.sleep(3)
            self.answer(rid, echo)
        elif m == "flaky500":
            if seen <= 2:
                self.send(500, "internal server error\n", "text/plain")
            else:
                self.answer(rid, echo)
        elif m == "flaky429":
            if seen <= 1:
                self.send(429, "slow down\n", "text/plain")
            else:
                self.answer(rid, echo)
        elif m == "always500":
            self.send(500, "internal server error\n", "text/plain")
        elif m == "err500":
            self.answer(rid, error={"code": -32603, "message": "Internal error"}, status=500)
        elif m == "status404":
            self.send(404, "<html><body>404 Not Found</body></html>", "text/html")
        elif m == "status403":
            self.send(403, "forbidden\n", "text/plain")
        elif m == "drop_once":
            if seen <= 1:
                self.close_connection = True
                self.connection.shutdown(2)
            else:
                self.answer(rid, echo)
        elif m == "short":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b'{"jsonrpc"')
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
        elif m == "huge":
            self.answer(rid, "0x" + "ab" * (3 << 19))
        elif m == "huge_chunked":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            parts = [('{"jsonrpc":"2.0","id":%d,"result":"0x' % rid).encode()]
            parts += [b"ab" * 65536] * 24
            parts += [b'"}']
            try:
                for p in parts:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(p), p))
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
            self.close_connection = True
        elif m == "count":
            with LOCK:
                self.answer(rid, dict(COUNTS))
        else:
            self.answer(rid, error={"code": -32601, "message": "Method not found"})


def main(argv):
    lifetime = 60.0
    if len(argv) >= 3 and argv[1] == "--lifetime":
        lifetime = float(argv[2])
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    port = srv.server_address[1]
    pid = os.fork()
    if pid:
        print("%d %d" % (port, pid), flush=True)
        return 0
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    threading.Timer(lifetime, lambda: os._exit(0)).start()
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
