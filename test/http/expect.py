#!/usr/bin/env python3
"""
Expected values for test/t/034_import_http.pl, computed from the very
bytes that mock_server.py serves (so the test never hard-codes sizes).

  expect.py md5 N             md5 of rows 1..N as the test's query prints
                              them: "id,name,qty" lines joined by \\n
  expect.py drop-remaining N K
                              bytes /drop.csv?rows=N&after=K leaves unsent
  expect.py rows-before N OFFSET
                              data rows of /data.csv?rows=N before byte
                              OFFSET, or -1 if OFFSET is not the start of
                              a line (or 0: nothing was skipped)
  expect.py fetch URL [CAFILE] the body of URL on stdout (HTTPS verified
                              against CAFILE)
"""

import hashlib
import os
import ssl
import sys
import urllib.request

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mock_server  # noqa: E402


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "md5":
        n = int(argv[2])
        text = "\n".join("%d,name-%d,%d" % (i, i, i % 10) for i in range(1, n + 1))
        print(hashlib.md5(text.encode("ascii")).hexdigest())
    elif cmd == "drop-remaining":
        n, k = int(argv[2]), int(argv[3])
        body = mock_server.rows_body(n)
        lines = body.splitlines(keepends=True)
        sent = len(b"".join(lines[:k + 1])) + max(1, len(lines[k + 1]) // 2)
        print(len(body) - sent)
    elif cmd == "rows-before":
        n, off = int(argv[2]), int(argv[3])
        body = mock_server.rows_body(n)
        if off <= 0 or off > len(body) or body[off - 1:off] != b"\n":
            print(-1)
        else:
            print(body[:off].count(b"\n") - 1)     # minus the header
    elif cmd == "fetch":
        ctx = ssl.create_default_context(cafile=argv[3]) if len(argv) > 3 else None
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=ctx))
        with opener.open(argv[2], timeout=10) as r:
            sys.stdout.buffer.write(r.read())
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
