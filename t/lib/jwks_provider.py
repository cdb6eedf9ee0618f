#!/usr/bin/env python3
"""An identity provider's key endpoint for the tests (standard library only).

    jwks_provider.py PORTFILE

Listens on a free loopback port, writes it to PORTFILE, and serves a key
set per path.  Each path has a mode, set with
    GET /_set?path=/keys1&mode=ok&file=/path/set.json[&delay=0.5]
ok serves the file, 500 answers 500, hang holds the request without an
answer (for 60 s, or until the mode changes), garbage answers 200 with a
body that is not JSON.  delay holds every answer that long first.
    GET /_stats
answers {"/keys1": {"fetches": N, "headers": ["host", ...]}, ...}: the
fetches counted per path and the names of every request header seen.
"""

import json
import os
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
PATHS = {}  # path -> {"mode", "file", "delay", "fetches", "headers", "gen"}


def state(path):
    return PATHS.setdefault(path, {"mode": "500", "file": None, "delay": 0,
                                   "fetches": 0, "headers": [], "gen": 0})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))

        if url.path == "/_set":
            with LOCK:
                s = state(query["path"])
                for k in ("mode", "file"):
                    if k in query:
                        s[k] = query[k]
                if "delay" in query:
                    s["delay"] = float(query["delay"])
                s["gen"] += 1
            return self.answer(200, b"{}")

        if url.path == "/_stats":
            with LOCK:
                out = {p: {"fetches": s["fetches"],
                           "headers": sorted(set(s["headers"]))}
                       for p, s in PATHS.items()}
            return self.answer(200, json.dumps(out).encode())

        with LOCK:
            s = state(url.path)
            s["fetches"] += 1
            s["headers"].extend(k.lower() for k in self.headers.keys())
            mode, path, delay, gen = s["mode"], s["file"], s["delay"], s["gen"]

        if delay:
            time.sleep(delay)

        if mode == "hang":
            end = time.time() + 60
            while time.time() < end and state(url.path)["gen"] == gen:
                time.sleep(0.05)
            return

        if mode == "garbage":
            return self.answer(200, b"<html>not a key set</html>", "text/html")

        if mode == "ok":
            with open(path, "rb") as f:
                return self.answer(200, f.read())

        return self.answer(500, b"{\"error\":\"down\"}")


def main():
    # stopped by TERM: a clean exit, so the test's exit status stays its own
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    # the port file appears whole
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
