#!/usr/bin/env python3
"""A receiver of action batch callbacks, for TAP tests (loopback only).

Every request is appended to --log as one JSON line: {"method", "path",
"signature" (the X-Batch-Ops-Signature header or null), "body" (the raw
body as text)}.  The answer depends on the path's first segment:

  /ok/...           200
  /fail/N/...       503 to the first N requests of that path, then 200
  /always503/...    503

The chosen port is written to --ready; the server exits after --lifetime
seconds, so that a test that dies does not leave it behind.
"""
import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNTS = {}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace")
        with LOCK:
            COUNTS[self.path] = COUNTS.get(self.path, 0) + 1
            seen = COUNTS[self.path]
            with open(ARGS.log, "a") as f:
                f.write(json.dumps({
                    "method": self.command, "path": self.path,
                    "signature": self.headers.get("X-Batch-Ops-Signature"),
                    "body": body}) + "\n")
        parts = self.path.split("/")
        status = 200
        if len(parts) > 1 and parts[1] == "always503":
            status = 503
        elif len(parts) > 2 and parts[1] == "fail" and seen <= int(parts[2]):
            status = 503
        reply = b'{"received": true}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--log", required=True)
    p.add_argument("--ready", required=True)
    p.add_argument("--lifetime", type=int, default=300)
    ARGS = p.parse_args()
    srv = ThreadingHTTPServer((ARGS.host, 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    with open(ARGS.ready + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.rename(ARGS.ready + ".tmp", ARGS.ready)
    time.sleep(ARGS.lifetime)


if __name__ == "__main__":
    main()
