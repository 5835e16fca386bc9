#!/usr/bin/python3
"""subtensor_proxy.py - a JSON-RPC proxy in front of a real subtensor node
(chopsticks) for tests/t_subtensor.sh: it forwards every request, and
misbehaves the way a broken or upgraded node would, chosen by MODE:

    rename_call   the runtime metadata with the call set_weights renamed
                  set_weightz (same length, so the metadata stays well formed):
                  a runtime that lacks a call Tessera needs
    garbage       answers every request with an HTML page
    slow          answers every request after 5 s
    truncate      answers with half of the real answer
    file:PATH     the mode written in PATH, read at each request ("pass"
                  forwards unchanged): a node that breaks and recovers

  subtensor_proxy.py UPSTREAM_URL MODE PORTFILE
Listens on a free loopback port and writes it to PORTFILE.
"""
import http.server
import json
import socketserver
import sys
import time
import urllib.request

UPSTREAM, MODE, PORTFILE = sys.argv[1], sys.argv[2], sys.argv[3]


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, code, body, ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        req = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        mode = MODE
        if mode.startswith("file:"):
            try:
                with open(mode[5:]) as f:
                    mode = f.read().strip()
            except OSError:
                mode = "pass"
        if mode == "garbage":
            return self.reply(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
        if mode == "slow":
            time.sleep(5)
        up = urllib.request.Request(UPSTREAM, req, {"Content-Type": "application/json"})
        with urllib.request.urlopen(up, timeout=60) as r:
            body = r.read()
        if mode == "rename_call" and json.loads(req).get("method") == "state_getMetadata":
            ans = json.loads(body)
            old = b"set_weights".hex()
            new = b"set_weightz".hex()
            # the name as SCALE writes it: compact length 11 (0x2c), then the bytes
            ans["result"] = ans["result"].replace("2c" + old, "2c" + new)
            body = json.dumps(ans).encode()
        if mode == "truncate":
            body = body[: len(body) // 2]
        self.reply(200, body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


srv = Server(("127.0.0.1", 0), Handler)
with open(PORTFILE + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os  # noqa: E402

os.rename(PORTFILE + ".tmp", PORTFILE)
srv.serve_forever()
