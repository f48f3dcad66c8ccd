#!/usr/bin/env python3
"""
Mock HTTP(S) server for the URL import tests (test/t/03*.pl).

Python 3 standard library only.  Binds 127.0.0.1 only (or another loopback
address given with --host, e.g. 127.0.0.2), on the first free
port of --ports (default 18080-18089; "0" lets the kernel pick a free
one, which is what the TAP tests do), plus a second one for HTTPS when
--cert/--key are given, writes "HTTP_PORT [HTTPS_PORT]" to --ready once it
is listening, logs every request to --log, and exits by itself after
--lifetime seconds (default 600) whatever happens.

Every path may be prefixed with /allowed (the same content), so that a test
can set batch_ops.fetch_url_prefixes to http://127.0.0.1:PORT/allowed/.
Paths are read as many servers (nginx) read them: percent-decoded, runs of
"/" merged, "." and ".." segments resolved -- so "/allowed/%2e%2e/secret.csv"
is /secret.csv, as a URL-prefix check must foresee.

Content: rows of "id,name,qty" (a header line, then i,name-i,i%10 for i in
1..rows).  Paths:

  /data.csv?rows=N[&norange=1]      Content-Length; Range requests get 206
                                    (unless norange=1: always the whole 200)
      [&range=MODE[&by=K]]          how a Range request is answered wrongly
                                    (here and for /slow.csv):
                                      from0   206 from byte 0, Content-Range
                                              saying so
                                      earlier 206 from K bytes before the
                                              requested one, said so
                                      later   206 from K bytes after it
                                      nocr    206 from byte 0 without any
                                              Content-Range
                                      garbled 206, Content-Range "bytes junk"
                                      star    206, right, total "*"
                                      short   206 of only K bytes
                                      grown   206, right, but the file has
                                              K more bytes (total and body)
                                      416     416 with "bytes */START": the
                                              file would end at the
                                              requested byte
  /secret.csv                       a small file of "secret" rows (ids
                                    9001-9003) for the prefix tests
  /stall.csv?rows=N&after=B[&hold=S][&headers=0]
                                    Content-Length of all N rows, the first
                                    B bytes, then nothing for S seconds
                                    (default 300) before closing; headers=0:
                                    not even the status line
  /slow.csv?rows=N&piece=B&delay=S[&norange=1]
                                    as /data.csv, but sent B bytes at a time
                                    with S seconds between pieces
  /chunked.csv?rows=N&piece=B[&delay=S]
                                    Transfer-Encoding: chunked, no
                                    Content-Length, pieces of B bytes with
                                    S seconds (default 0) between them
  /drop.csv?rows=N&after=K          Content-Length of all N rows, but the
                                    connection is closed after the header,
                                    K complete rows and half of row K+1
  /mixed.csv                        a fixed file with good and bad rows
                                    (see MIXED below)
  /multiline.csv                    a quoted line end, then a bad row
  /redirect.csv                     302 to /data.csv?rows=5&from=redirect
                                    (redirects must not be
                                    followed by the importer)
  anything else                     404

The request log has one line per request:
  METHOD PATH range=<Range header or ->
"""

import argparse
import os
import posixpath
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

# A file with good and bad rows for the table
#   items (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL CHECK (qty >= 0))
# Line numbers as COPY counts them: physical lines, the header is line 1,
# and an error in a record that spans lines is reported at its last line.
MIXED = (
    "id,name,qty\n"                # 1 header
    "1,alpha,5\n"                  # 2 good
    "2,beta,abc\n"                 # 3 type error (qty)
    "3,gamma,-1\n"                 # 4 CHECK violation
    "4,delta\n"                    # 5 malformed: a field missing
    "5,epsilon,7,extra\n"          # 6 malformed: an extra field
    '6,"multi\nline",2\n'          # 7-8 good: a quoted field with a line end
    "7,eta,3\n"                    # 9 good
    "8,,4\n"                       # 10 NOT NULL violation (empty unquoted = NULL)
    "1,dup,1\n"                    # 11 duplicate key (of line 2)
    '9,"the ""quoted"" one",0\n'   # 12 good: doubled quotes
    '12,"two\nlines",-5\n'         # 13-14 CHECK violation, spans two lines
    "10,iota,1\n"                  # 15 good
    '11,"open,1'                   # 16 malformed: unterminated quoted field
)

# For comparing line numbers with COPY's: a quoted line end, then a bad row.
MULTILINE = (
    "id,name,qty\n"
    '1,"a\nb",1\n'
    "2,c,bad\n"
)


# Rows outside any allowed prefix: a prefix check that lets a URL reach
# them has failed.
SECRET = (
    "id,name,qty\n"
    "9001,secret-1,1\n"
    "9002,secret-2,2\n"
    "9003,secret-3,3\n"
)


def server_path(raw):
    """The path as a decoding, normalising server reads it."""
    path = unquote(raw, errors="replace")
    while "//" in path:
        path = path.replace("//", "/")
    norm = posixpath.normpath(path) if path else "/"
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    return norm


def rows_body(n):
    out = ["id,name,qty\n"]
    for i in range(1, n + 1):
        out.append("%d,name-%d,%d\n" % (i, i, i % 10))
    return "".join(out).encode("ascii")


def log_line(path, text):
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(text + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "batch_ops-mock/1"

    def log_message(self, fmt, *args):  # quiet: our own log instead
        pass

    def qint(self, q, name, default):
        try:
            return int(q.get(name, [default])[0])
        except ValueError:
            return default

    def qfloat(self, q, name, default):
        try:
            return float(q.get(name, [default])[0])
        except ValueError:
            return default

    def do_HEAD(self):
        self.do_GET(head=True)

    def do_GET(self, head=False):
        log_line(self.server.request_log,
                 "%s %s range=%s" % (self.command, self.path,
                                     self.headers.get("Range") or "-"))
        parts = urlsplit(self.path)
        path = server_path(parts.path)
        if path.startswith("/allowed/"):
            path = path[len("/allowed"):]
        q = parse_qs(parts.query)
        try:
            if path == "/data.csv":
                self.send_body(rows_body(self.qint(q, "rows", 100)), q, head)
            elif path == "/slow.csv":
                self.send_body(rows_body(self.qint(q, "rows", 100)), q, head,
                               piece=max(1, self.qint(q, "piece", 64)),
                               delay=self.qfloat(q, "delay", 0.05))
            elif path == "/secret.csv":
                self.send_body(SECRET.encode("ascii"), q, head)
            elif path == "/stall.csv":
                self.send_stalled(rows_body(self.qint(q, "rows", 100)),
                                  self.qint(q, "after", 0),
                                  self.qfloat(q, "hold", 300.0),
                                  self.qint(q, "headers", 1) != 0, head)
            elif path == "/mixed.csv":
                self.send_body(MIXED.encode("ascii"), q, head)
            elif path == "/multiline.csv":
                self.send_body(MULTILINE.encode("ascii"), q, head)
            elif path == "/chunked.csv":
                self.send_chunked(rows_body(self.qint(q, "rows", 100)),
                                  max(1, self.qint(q, "piece", 100)),
                                  self.qfloat(q, "delay", 0.0), head)
            elif path == "/drop.csv":
                self.send_dropped(self.qint(q, "rows", 100),
                                  self.qint(q, "after", 10), head)
            elif path == "/redirect.csv":
                self.send_response(302)
                self.send_header("Location", "/data.csv?rows=5&from=redirect")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                body = b"not found\n"
                self.send_response(404)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            # the client went away (a cancelled job, a shutdown): fine
            self.close_connection = True

    def send_body(self, body, q, head, piece=None, delay=0.0):
        total = len(body)
        start = 0
        status = 200
        content_range = None
        rng = self.headers.get("Range")
        if rng and "norange" not in q and rng.startswith("bytes="):
            first = rng[len("bytes="):].split(",")[0].split("-")[0]
            if first.isdigit():
                start = int(first)
                if start >= total or q.get("range", [""])[0] == "416":
                    total = min(total, start)
                    self.send_response(416)
                    self.send_header("Content-Range", "bytes */%d" % total)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
                body, start, content_range = self.bad_range(
                    body, start, q.get("range", [""])[0],
                    max(1, self.qint(q, "by", 10)))
                total = len(body)
        data = body[start:]
        if status == 206 and q.get("range", [""])[0] == "short":
            data = data[:max(1, self.qint(q, "by", 10))]
        self.send_response(status)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(data)))
        if "norange" not in q:
            self.send_header("Accept-Ranges", "bytes")
        if content_range is not None:
            self.send_header("Content-Range", content_range)
        self.end_headers()
        if head:
            return
        if piece is None:
            self.wfile.write(data)
            return
        for i in range(0, len(data), piece):
            self.wfile.write(data[i:i + piece])
            self.wfile.flush()
            if i + piece < len(data):
                time.sleep(delay)

    @staticmethod
    def bad_range(body, start, mode, by):
        """(body, first byte sent, Content-Range) for a Range request."""
        total = len(body)
        if mode == "from0":
            start = 0
        elif mode == "earlier":
            start = max(0, start - by)
        elif mode == "later":
            start = min(total - 1, start + by)
        elif mode == "nocr":
            return body, 0, None
        elif mode == "garbled":
            return body, start, "bytes junk"
        elif mode == "star":
            return body, start, "bytes %d-%d/*" % (start, total - 1)
        elif mode == "short":
            return body, start, "bytes %d-%d/%d" % (
                start, min(total, start + by) - 1, total)
        elif mode == "grown":
            body = body + b"".join(b"%d,grown-%d,0\n" % (900000 + i, i)
                                   for i in range(by))
            total = len(body)
        return body, start, "bytes %d-%d/%d" % (start, total - 1, total)

    def send_stalled(self, body, after, hold, headers, head):
        if headers:
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head and after > 0:
                self.wfile.write(body[:after])
            self.wfile.flush()
        deadline = time.monotonic() + hold
        while time.monotonic() < deadline:
            time.sleep(0.05)
        self.close_connection = True

    def send_chunked(self, body, piece, delay, head):
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if head:
            return
        for i in range(0, len(body), piece):
            part = body[i:i + piece]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.flush()
            if delay and i + piece < len(body):
                time.sleep(delay)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def send_dropped(self, rows, after, head):
        body = rows_body(rows)
        lines = body.splitlines(keepends=True)
        sent = b"".join(lines[:after + 1])        # header + `after` rows
        if after + 1 < len(lines):
            nxt = lines[after + 1]
            sent += nxt[:max(1, len(nxt) // 2)]   # half a row, no line end
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if head:
            return
        self.wfile.write(sent)
        self.wfile.flush()
        time.sleep(0.2)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_log = None
    ssl_ctx = None

    def finish_request(self, request, client_address):
        # TLS handshake in the request's own thread, not in the accept loop
        if self.ssl_ctx is not None:
            try:
                request = self.ssl_ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return      # e.g. the client refused our certificate
            try:
                super().finish_request(request, client_address)
            finally:
                try:
                    request.close()
                except OSError:
                    pass
            return
        super().finish_request(request, client_address)


def bind_first_free(ports, ssl_ctx=None, request_log=None, host="127.0.0.1"):
    last = None
    for port in ports:
        try:
            srv = Server((host, port), Handler)
        except OSError as e:
            last = e
            continue
        srv.request_log = request_log
        srv.ssl_ctx = ssl_ctx
        # port 0: the kernel picked a free one
        return srv, srv.server_address[1]
    raise SystemExit("no free port in %s: %s" % (ports, last))


def parse_ports(spec):
    if "-" in spec:
        a, b = spec.split("-", 1)
        return list(range(int(a), int(b) + 1))
    return [int(p) for p in spec.split(",")]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ports", default="18080-18089",
                    help="ports to try, on 127.0.0.1 only (a-b or a,b,c;"
                         " 0: a free port the kernel picks)")
    ap.add_argument("--host", default="127.0.0.1",
                    help="loopback address to bind (127.x.y.z only)")
    ap.add_argument("--cert", help="PEM certificate: also serve HTTPS")
    ap.add_argument("--key", help="PEM private key of --cert")
    ap.add_argument("--ready", help="write the port(s) here once listening")
    ap.add_argument("--log", help="append one line per request here")
    ap.add_argument("--lifetime", type=float, default=600,
                    help="exit after this many seconds (default 600)")
    args = ap.parse_args()

    # Whatever happens, never outlive the test by long.
    killer = threading.Timer(args.lifetime, lambda: os._exit(0))
    killer.daemon = True
    killer.start()

    if not args.host.startswith("127."):
        raise SystemExit("--host must be a loopback address (127.x.y.z)")
    ports = parse_ports(args.ports)
    servers = []
    http_srv, http_port = bind_first_free(ports, None, args.log, args.host)
    servers.append(http_srv)
    ready = [str(http_port)]
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        rest = [p for p in ports if p != http_port]
        https_srv, https_port = bind_first_free(rest, ctx, args.log, args.host)
        servers.append(https_srv)
        ready.append(str(https_port))

    for srv in servers[1:]:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    if args.ready:
        tmp = args.ready + ".tmp"
        with open(tmp, "w") as f:
            f.write(" ".join(ready) + "\n")
        os.rename(tmp, args.ready)
    try:
        servers[0].serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
