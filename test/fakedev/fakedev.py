#!/usr/bin/env python3
"""
Fake network devices for the outbound-batch tests (test/fakedev/README.md).

Python 3 standard library only (http.server, ThreadingHTTPServer, ssl), plus
the openssl CLI for the certificates it makes at start.  One device per
loopback address: every address given with --addresses gets its own
listening sockets (plain HTTP and HTTPS; Linux routes all of 127/8 to lo,
so 127.0.1.2 needs no set-up), all on the same two kernel-picked ports.  A
device is its local address.  Each device speaks, by path:

  POST /command-api         Arista eAPI (JSON-RPC 2.0 runCmds)
  POST /ins                 Cisco NX-API (ins_api, cli_show / cli_conf)
  /restconf/data/...        RESTCONF (RFC 8040, application/yang-data+json),
  /.well-known/host-meta    an in-memory tree per device
  /api/v1/...               the Meraki Dashboard API: resources in memory,
                            10 requests/s per organization (429 with
                            Retry-After), action batches with status polling
  anything else             a plain HTTP echo (JSON of the request);
                            /status/N answers N, /delay/MS sleeps, /text
                            answers text/plain

Faults, per device (the control endpoint or --config): slow_ms, hang, drop,
status (+ retry_after), malformed, huge_bytes, bad_tls, each optionally for
the next "times" requests only.  Counters per device: requests, connections,
the most concurrent connections and requests, statuses, tls errors.

Control (JSON, on 127.0.0.1:<control port>, and under /_control/ on every
device):
  GET  /stats                 counters of every device;  GET /stats/ADDR
  POST /reset                 counters, request log and device state cleared
  PUT  /faults/ADDR  {fault}  set a device's fault;  DELETE /faults/ADDR
  GET  /faults                all faults
  GET  /state/ADDR            hostname, config log, RESTCONF tree, Meraki store
  GET  /log                   the request log (last 1000)

Once listening it writes --port-file (atomically, JSON): {"http": P,
"https": P, "control": P, "ca": "<CA certificate PEM path>", "addresses":
[...]}, and exits after --lifetime seconds whatever happens.
"""

import argparse
import base64
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
FAULTS = {}         # addr -> fault dict
STATS = {}          # addr -> counters
STATE = {}          # addr -> device state
LOG = []            # request log
BUCKETS = {}        # meraki org/key -> [tokens, last]
BATCHES = {}        # meraki batch id -> batch
CONFIG = {"users": {}, "enable_password": None, "api_keys": [],
          "batch_delay_ms": 200, "rate_per_sec": 10.0, "burst": 10.0}
NEXT_ID = [1000]


def new_stats():
    return {"requests": 0, "connections": 0, "open_connections": 0,
            "max_concurrent_connections": 0, "in_flight": 0,
            "max_concurrent_requests": 0, "statuses": {}, "tls_errors": 0,
            "rate_limited": 0, "paths": {}, "action_batches": 0,
            "batch_actions": 0, "running_batches": 0, "max_running_batches": 0}


def new_state(addr):
    return {"hostname": "dev-" + addr.replace(".", "-"), "config_log": [],
            "restconf": {}, "meraki": {}}


def stats(addr):
    if addr not in STATS:
        STATS[addr] = new_stats()
    return STATS[addr]


def state(addr):
    if addr not in STATE:
        STATE[addr] = new_state(addr)
    return STATE[addr]


def take_fault(addr):
    """The device's fault for this request (its "times" counted down)."""
    with LOCK:
        f = FAULTS.get(addr)
        if not f:
            return None
        if "times" in f:
            f["times"] -= 1
            if f["times"] <= 0:
                del FAULTS[addr]
        return dict(f)


def json_bytes(obj):
    return json.dumps(obj).encode()


# ---------------------------------------------------------------- eAPI

def eapi_show(st, cmd):
    if cmd == "show version":
        return {"modelName": "DCS-7050TX-64", "version": "4.30.1F",
                "serialNumber": "FAKE" + st["hostname"], "hostname": st["hostname"],
                "architecture": "x86_64"}
    if cmd == "show hostname":
        return {"hostname": st["hostname"], "fqdn": st["hostname"] + ".lab"}
    if cmd == "show clock":
        return {"utcTime": 1764676800.0, "timezone": "UTC"}
    if cmd == "show running-config":
        return {"cmds": {"hostname " + st["hostname"]: None},
                "lines": list(st["config_log"])}
    return None


def eapi_reply(addr, req):
    rid = req.get("id")
    params = req.get("params") or {}
    cmds = params.get("cmds")
    if req.get("method") != "runCmds" or not isinstance(cmds, list):
        return {"jsonrpc": "2.0", "id": rid,
                "error": {"code": -32601, "message": "Method not found"}}
    fmt = params.get("format", "json")
    st = state(addr)
    results = []
    mode = "exec"
    for i, c in enumerate(cmds):
        text = c.get("cmd") if isinstance(c, dict) else c
        inp = c.get("input") if isinstance(c, dict) else None
        res, err = eapi_one(st, text, inp, mode)
        if err:
            shown = json.dumps(c) if isinstance(c, dict) else text
            results.append({"errors": [err]})
            return {"jsonrpc": "2.0", "id": rid, "error": {
                "code": 1002, "message": "CLI command %d of %d '%s' failed: invalid command"
                % (i + 1, len(cmds), shown), "data": results}}
        if text == "configure":
            mode = "config"
        elif text == "end":
            mode = "exec"
        if fmt == "text":
            res = {"output": json.dumps(res) + "\n"}
        results.append(res)
    return {"jsonrpc": "2.0", "id": rid, "result": results}


def eapi_one(st, text, inp, mode):
    """(result, error text) of one eAPI command."""
    if text == "enable":
        want = CONFIG.get("enable_password")
        if want is not None and inp != want:
            return None, "Bad secret"
        return {}, None
    if text in ("configure", "end"):
        return {}, None
    if mode == "config":
        if text.startswith("bogus") or text.startswith("show"):
            return None, "Invalid input (at token 0: '%s')" % text.split()[0]
        if text.startswith("hostname "):
            st["hostname"] = text.split(None, 1)[1]
        st["config_log"].append(text)
        return {}, None
    res = eapi_show(st, text)
    if res is None:
        words = text.split()
        return None, "Invalid input (at token %d: '%s')" % (
            len(words) - 1, words[-1] if words else "")
    return res, None


# ---------------------------------------------------------------- NX-API

def nxapi_show(st, cmd):
    if cmd == "show version":
        return {"host_name": st["hostname"], "nxos_ver_str": "10.3(1)",
                "chassis_id": "Nexus9000 C9300v Chassis"}
    if cmd == "show hostname":
        return {"hostname": st["hostname"]}
    if cmd == "show clock":
        return {"simple_time": "12:00:00.000 UTC Tue Dec 02 2026"}
    return None


def nxapi_reply(addr, req):
    ins = req.get("ins_api") if isinstance(req, dict) else None
    if not isinstance(ins, dict) or not isinstance(ins.get("input"), str):
        return 400, {"ins_api": {"outputs": {"output": {
            "code": "400", "msg": "Request format is invalid"}}}}
    kind = ins.get("type")
    st = state(addr)
    outputs = []
    failed = False
    for cmd in [c.strip() for c in ins["input"].split(";") if c.strip()]:
        if failed:
            break
        if kind == "cli_show":
            body = nxapi_show(st, cmd)
            if body is None:
                failed = True
                outputs.append({"input": cmd, "msg": "Input CLI command error",
                                "code": "400",
                                "clierror": "% Invalid command at '^' marker.\n"})
            else:
                outputs.append({"input": cmd, "msg": "Success", "code": "200",
                                "body": body})
        elif kind == "cli_conf":
            if cmd.startswith("bogus") or cmd.startswith("show"):
                failed = True
                outputs.append({"input": cmd, "msg": "Input CLI command error",
                                "code": "400", "clierror": "% Invalid command\n"})
                continue
            if cmd.startswith("hostname "):
                st["hostname"] = cmd.split(None, 1)[1]
            st["config_log"].append(cmd)
            outputs.append({"input": cmd, "msg": "Success", "code": "200",
                            "body": {}})
        else:
            outputs.append({"input": cmd, "msg": "Message type not supported",
                            "code": "501"})
            failed = True
    output = outputs[0] if len(outputs) == 1 else outputs
    return 200, {"ins_api": {"type": kind, "version": "1.0", "sid": "eoc",
                             "outputs": {"output": output}}}


# ---------------------------------------------------------------- RESTCONF

def rc_error(status, etype, tag, message):
    return status, {"ietf-restconf:errors": {"error": [
        {"error-type": etype, "error-tag": tag, "error-message": message}]}}


def restconf_reply(addr, method, path, body, ctype):
    tree = state(addr)["restconf"]
    key = urllib.parse.unquote(path[len("/restconf/data"):]).strip("/")
    if method in ("POST", "PUT", "PATCH"):
        if not (ctype or "").startswith("application/yang-data+json"):
            return rc_error(415, "protocol", "invalid-value",
                            "Content-Type must be application/yang-data+json")
        try:
            doc = json.loads(body or b"null")
        except ValueError:
            return rc_error(400, "protocol", "malformed-message",
                            "the body is not JSON")
        if not isinstance(doc, dict):
            return rc_error(400, "application", "invalid-value",
                            "the body must be an object")
    with LOCK:
        if method == "GET":
            if key == "":
                return 200, {"ietf-restconf:data": tree}
            if key not in tree:
                return rc_error(404, "application", "invalid-value",
                                "uri keypath not found")
            return 200, tree[key]
        if method == "POST":
            child = key + "/" + next(iter(doc)) if doc else key
            if child in tree:
                return rc_error(409, "application", "data-exists",
                                "object already exists: /" + child)
            tree[child] = doc
            return 201, None
        if method == "PUT":
            existed = key in tree
            tree[key] = doc
            return (204 if existed else 201), None
        if method == "PATCH":
            if key not in tree:
                return rc_error(404, "application", "invalid-value",
                                "uri keypath not found")
            tree[key].update(doc)
            return 204, None
        if method == "DELETE":
            if key not in tree:
                return rc_error(404, "application", "data-missing",
                                "uri keypath not found")
            del tree[key]
            return 204, None
    return rc_error(405, "protocol", "operation-not-supported",
                    "method not allowed")


# ---------------------------------------------------------------- Meraki

def meraki_rate_ok(bucket):
    """Token bucket: rate_per_sec, burst; True if this request may go."""
    now = time.monotonic()
    with LOCK:
        tokens, last = BUCKETS.get(bucket, (CONFIG["burst"], now))
        tokens = min(CONFIG["burst"], tokens + (now - last) * CONFIG["rate_per_sec"])
        if tokens < 1.0:
            BUCKETS[bucket] = (tokens, now)
            return False
        BUCKETS[bucket] = (tokens - 1.0, now)
        return True


def meraki_key(headers):
    key = headers.get("X-Cisco-Meraki-API-Key")
    auth = headers.get("Authorization") or ""
    if key is None and auth.startswith("Bearer "):
        key = auth[7:]
    return key


def meraki_apply(store, action):
    """Apply one action; (created resource or None, error text or None)."""
    res = action.get("resource") or ""
    op = action.get("operation")
    body = action.get("body") or {}
    if len(str(body.get("name", ""))) > 64:
        return None, "'name' must be at most 64 characters"
    if op == "create":
        NEXT_ID[0] += 1
        rid = str(NEXT_ID[0])
        store[res + "/" + rid] = dict(body, id=rid)
        return {"id": rid, "uri": "/api/v1" + res + "/" + rid}, None
    if op == "update":
        store.setdefault(res, {}).update(body)
        return None, None
    if op == "destroy":
        if res not in store:
            return None, "Resource not found: " + res
        del store[res]
        return None, None
    return None, "Unsupported operation: %s" % op


def meraki_run_batch(addr, batch):
    """Run a confirmed batch atomically, as Meraki does: all its actions or
    none (they run on a copy of the store, kept only if every one passed)."""
    time.sleep(CONFIG["batch_delay_ms"] / 1000.0)
    with LOCK:
        store = state(addr)["meraki"]
        trial = json.loads(json.dumps(store))
        errors, created = [], []
        for a in batch["actions"]:
            c, e = meraki_apply(trial, a)
            if e:
                errors.append(e)
                break
            if c:
                created.append(c)
        if not errors:
            store.clear()
            store.update(trial)
        batch["status"] = {"completed": not errors, "failed": bool(errors),
                           "errors": errors,
                           "createdResources": [] if errors else created}
        stats(addr)["running_batches"] -= 1


def meraki_reply(addr, method, path, body, headers):
    keys = CONFIG.get("api_keys") or []
    key = meraki_key(headers)
    if keys and key not in keys:
        return 401, {"errors": ["Invalid API key"]}, {}
    parts = path[len("/api/v1"):].split("?")[0].rstrip("/")
    segs = parts.strip("/").split("/")
    org = segs[1] if len(segs) >= 2 and segs[0] == "organizations" else None
    if not meraki_rate_ok("org:" + org if org else "key:%s" % key):
        with LOCK:
            stats(addr)["rate_limited"] += 1
        return 429, {"errors": ["API rate limit exceeded for organization"]}, \
            {"Retry-After": "1"}
    try:
        doc = json.loads(body) if body else {}
    except ValueError:
        return 400, {"errors": ["The request body is not valid JSON"]}, {}
    if org and len(segs) >= 3 and segs[2] == "actionBatches":
        return meraki_batches(addr, method, org, segs[3:], doc)
    store = state(addr)["meraki"]
    if method == "GET":
        with LOCK:
            if parts in store:
                return 200, store[parts], {}
        return 404, {"errors": ["Resource not found"]}, {}
    op = {"POST": "create", "PUT": "update", "DELETE": "destroy"}.get(method)
    if op is None:
        return 405, {"errors": ["Method not allowed"]}, {}
    with LOCK:
        created, err = meraki_apply(store, {"resource": parts, "operation": op,
                                            "body": doc})
        if err:
            return (404 if err.startswith("Resource not found") else 400), \
                {"errors": [err]}, {}
        if op == "create":
            return 201, store[parts + "/" + created["id"]], {}
        if op == "update":
            return 200, store[parts], {}
    return 204, None, {}


def meraki_batches(addr, method, org, rest, doc):
    if method == "POST" and not rest:
        actions = doc.get("actions") or []
        if len(actions) > 100:
            return 400, {"errors": ["At most 100 actions per batch"]}, {}
        sync = bool(doc.get("synchronous"))
        if sync and len(actions) > 20:
            return 400, {"errors": ["At most 20 actions in a synchronous batch"]}, {}
        with LOCK:
            running = [b for b in BATCHES.values() if b["organizationId"] == org
                       and b["confirmed"] and not b["status"]["completed"]
                       and not b["status"]["failed"]]
            if doc.get("confirmed") and len(running) >= 5:
                return 400, {"errors": [
                    "Too many concurrently executing batches. Maximum is 5 "
                    "confirmed but not yet executed batches."]}, {}
            NEXT_ID[0] += 1
            batch = {"id": str(NEXT_ID[0]), "organizationId": org,
                     "confirmed": bool(doc.get("confirmed")), "synchronous": sync,
                     "status": {"completed": False, "failed": False,
                                "errors": [], "createdResources": []},
                     "actions": actions}
            BATCHES[batch["id"]] = batch
            st = stats(addr)
            st["action_batches"] += 1
            st["batch_actions"] += len(actions)
            if batch["confirmed"]:
                st["running_batches"] += 1
                st["max_running_batches"] = max(st["max_running_batches"],
                                                st["running_batches"])
        if batch["confirmed"]:
            if sync:
                meraki_run_batch(addr, batch)
            else:
                threading.Thread(target=meraki_run_batch, args=(addr, batch),
                                 daemon=True).start()
        return 201, batch, {}
    if method == "GET" and len(rest) == 1:
        with LOCK:
            b = BATCHES.get(rest[0])
            if b and b["organizationId"] == org:
                return 200, json.loads(json.dumps(b)), {}
        return 404, {"errors": ["Action batch not found"]}, {}
    return 405, {"errors": ["Method not allowed"]}, {}


# ---------------------------------------------------------------- control

def control(method, path, body):
    parts = path.split("?")[0].strip("/").split("/")
    with LOCK:
        if method == "GET" and parts[0] == "stats":
            return 200, STATS.get(parts[1], new_stats()) if len(parts) > 1 else STATS
        if method == "POST" and parts[0] == "reset":
            for a in list(STATS):
                STATS[a] = new_stats()
            for a in list(STATE):
                STATE[a] = new_state(a)
            LOG.clear()
            BUCKETS.clear()
            BATCHES.clear()
            return 200, {"reset": True}
        if parts[0] == "faults":
            if method == "GET":
                return 200, FAULTS
            if method in ("PUT", "POST") and len(parts) == 2:
                FAULTS[parts[1]] = json.loads(body or b"{}")
                return 200, FAULTS[parts[1]]
            if method == "DELETE" and len(parts) == 2:
                FAULTS.pop(parts[1], None)
                return 200, {"deleted": parts[1]}
        if method == "GET" and parts[0] == "state" and len(parts) == 2:
            return 200, state(parts[1])
        if method == "GET" and parts[0] == "log":
            return 200, LOG
        if method == "POST" and parts[0] == "config":
            CONFIG.update(json.loads(body or b"{}"))
            return 200, CONFIG
    return 404, {"error": "no such control path"}


# ---------------------------------------------------------------- server

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakedev/1.0"

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        self.addr = self.server.addr
        if self.server.is_control:
            return
        with LOCK:
            s = stats(self.addr)
            s["connections"] += 1
            s["open_connections"] += 1
            s["max_concurrent_connections"] = max(
                s["max_concurrent_connections"], s["open_connections"])

    def finish(self):
        try:
            super().finish()
        finally:
            if self.server.is_control:
                return
            with LOCK:
                stats(self.addr)["open_connections"] -= 1

    def send(self, status, body=b"", ctype="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json_bytes(body)
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        if self.server.is_control:
            return
        with LOCK:
            st = stats(self.addr)["statuses"]
            st[str(status)] = st.get(str(status), 0) + 1

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def do_any(self):
        body = self.read_body()
        if self.server.is_control or self.path.startswith("/_control/"):
            path = self.path[len("/_control"):] if self.path.startswith("/_control/") else self.path
            status, obj = control(self.command, path, body)
            return self.send(status, json_bytes(obj))
        with LOCK:
            s = stats(self.addr)
            s["requests"] += 1
            s["in_flight"] += 1
            s["max_concurrent_requests"] = max(s["max_concurrent_requests"],
                                               s["in_flight"])
            p = self.path.split("?")[0]
            s["paths"][p] = s["paths"].get(p, 0) + 1
            LOG.append({"addr": self.addr, "method": self.command,
                        "path": self.path, "time": time.time(),
                        "tls": self.server.tls})
            del LOG[:-1000]
        try:
            if self.apply_fault():
                return
            self.dispatch(body)
        finally:
            with LOCK:
                stats(self.addr)["in_flight"] -= 1

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_any

    def apply_fault(self):
        """True if the fault answered (or dropped) the request."""
        f = take_fault(self.addr)
        if not f:
            return False
        if f.get("slow_ms"):
            time.sleep(f["slow_ms"] / 1000.0)
        if f.get("hang"):
            time.sleep(f.get("hang_s", 3600))
            self.close_connection = True
            return True
        if f.get("drop"):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return True
        if f.get("status"):
            hdrs = {}
            if f.get("retry_after") is not None:
                hdrs["Retry-After"] = str(f["retry_after"])
            self.send(int(f["status"]), json_bytes(f.get("body", {"errors": ["fault %s" % f["status"]]})),
                      headers=hdrs)
            return True
        if f.get("malformed"):
            self.send(200, b'{"jsonrpc": "2.0", "result": [{"truncated": ')
            return True
        if f.get("huge_bytes"):
            n = int(f["huge_bytes"])
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(n + 2))
            self.end_headers()
            self.wfile.write(b'"')
            chunk = b"x" * 65536
            left = n
            while left > 0:
                self.wfile.write(chunk[:min(left, len(chunk))])
                left -= min(left, len(chunk))
            self.wfile.write(b'"')
            return True
        return False

    def authorized(self):
        users = CONFIG.get("users") or {}
        if not users:
            return True
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("Basic "):
            return False
        try:
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return False
        return users.get(user) == pw

    def dispatch(self, body):
        path = self.path
        m = self.command
        if path.startswith("/api/v1/") or path == "/api/v1":
            status, obj, hdrs = meraki_reply(self.addr, m, path, body, self.headers)
            return self.send(status, json_bytes(obj) if obj is not None else b"",
                             headers=hdrs)
        if path in ("/command-api", "/ins") or path.startswith("/restconf"):
            if not self.authorized():
                return self.send(401, b"Unable to authenticate", "text/plain",
                                 {"WWW-Authenticate": 'Basic realm="fakedev"'})
        if path == "/command-api" and m == "POST":
            try:
                req = json.loads(body)
            except ValueError:
                return self.send(200, json_bytes({"jsonrpc": "2.0", "id": None, "error": {
                    "code": -32700, "message": "Parse error"}}))
            with LOCK:
                reply = eapi_reply(self.addr, req)
            return self.send(200, json_bytes(reply))
        if path == "/ins" and m == "POST":
            try:
                req = json.loads(body)
            except ValueError:
                req = None
            with LOCK:
                status, reply = nxapi_reply(self.addr, req)
            return self.send(status, json_bytes(reply))
        if path == "/.well-known/host-meta":
            return self.send(200, b'<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">'
                             b'<Link rel="restconf" href="/restconf"/></XRD>',
                             "application/xrd+xml")
        if path.startswith("/restconf/data"):
            accept = self.headers.get("Accept") or "*/*"
            if "yang-data+json" not in accept and "*/*" not in accept:
                status, obj = rc_error(406, "protocol", "invalid-value",
                                       "Accept must allow application/yang-data+json")
            else:
                status, obj = restconf_reply(self.addr, m, path, body,
                                             self.headers.get("Content-Type"))
            return self.send(status, json_bytes(obj) if obj is not None else b"",
                             "application/yang-data+json")
        return self.echo(body)

    def echo(self, body):
        p = self.path.split("?")[0]
        if p.startswith("/status/"):
            return self.send(int(p[8:]), json_bytes({"status": int(p[8:])}))
        if p.startswith("/delay/"):
            time.sleep(int(p[7:]) / 1000.0)
        if p == "/text":
            return self.send(200, b"plain text from " + self.addr.encode(), "text/plain")
        return self.send(200, json_bytes({
            "device": self.addr, "method": self.command, "path": self.path,
            "headers": {k: v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace")}))


class DeviceServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    request_queue_size = 128

    def __init__(self, addr, port, tls, contexts):
        self.addr = addr
        self.tls = tls
        self.contexts = contexts
        self.is_control = False
        super().__init__((addr, port), Handler)

    def finish_request(self, request, client_address):
        if self.tls:
            f = FAULTS.get(self.addr) or {}
            ctx = self.contexts["bad" if f.get("bad_tls") else "good"]
            try:
                request.settimeout(30)
                request = ctx.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (ssl.SSLError, OSError):
                with LOCK:
                    stats(self.addr)["tls_errors"] += 1
                return
        self.RequestHandlerClass(request, client_address, self)

    def handle_error(self, request, client_address):
        pass


def expand(spec):
    out = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-")
            a = int(ipaddress.IPv4Address(a))
            b = int(ipaddress.IPv4Address(b)) if "." in b else (a & ~0xff) | int(b)
            out += [str(ipaddress.IPv4Address(i)) for i in range(a, b + 1)]
        else:
            out.append(part)
    for a in out:
        if not ipaddress.ip_address(a).is_loopback:
            sys.exit("fakedev: %s is not a loopback address" % a)
    return out


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_certs(d, addresses):
    san = ",".join(["DNS:localhost"] + ["IP:" + a for a in addresses])
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=fakedev CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", d + "/ca.key", "-out", d + "/ca.pem")
    openssl("req", *ec, "-subj", "/CN=fakedev", "-keyout", d + "/srv.key",
            "-out", d + "/srv.csr")
    with open(d + "/ext.cnf", "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n" % san)
    openssl("x509", "-req", "-in", d + "/srv.csr", "-CA", d + "/ca.pem",
            "-CAkey", d + "/ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", d + "/ext.cnf", "-out", d + "/srv.pem")
    # bad_tls: self-signed, so no client that trusts the CA accepts it
    openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=fakedev self-signed",
            "-addext", "subjectAltName=" + san,
            "-keyout", d + "/bad.key", "-out", d + "/bad.pem")
    ctxs = {}
    for name, cert, key in (("good", "srv.pem", "srv.key"), ("bad", "bad.pem", "bad.key")):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(d + "/" + cert, d + "/" + key)
        ctxs[name] = ctx
    return ctxs


def bind_all(addresses, tls, contexts):
    """Servers on every address, all on one kernel-picked port."""
    for _ in range(50):
        servers = []
        try:
            first = DeviceServer(addresses[0], 0, tls, contexts)
            servers.append(first)
            port = first.server_address[1]
            for a in addresses[1:]:
                servers.append(DeviceServer(a, port, tls, contexts))
            return port, servers
        except OSError:
            for s in servers:
                s.server_close()
    sys.exit("fakedev: could not bind one port on every address")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--addresses", default="127.0.0.1",
                    help="e.g. 127.0.1.1-127.0.1.20,127.0.2.1")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--config", help="JSON: faults, users, enable_password, "
                    "api_keys, batch_delay_ms, rate_per_sec, burst")
    ap.add_argument("--no-tls", action="store_true")
    ap.add_argument("--dir", help="where the certificates go (default: a temp dir)")
    ap.add_argument("--lifetime", type=float, default=600)
    args = ap.parse_args()

    addresses = expand(args.addresses)
    if args.config:
        with open(args.config) as f:
            conf = json.load(f)
        FAULTS.update(conf.pop("faults", {}))
        CONFIG.update(conf)
    d = args.dir or tempfile.mkdtemp(prefix="fakedev")
    contexts = None if args.no_tls else make_certs(d, addresses)

    http_port, servers = bind_all(addresses, False, None)
    https_port = None
    if contexts:
        https_port, tls_servers = bind_all(addresses, True, contexts)
        servers += tls_servers
    ctl = DeviceServer("127.0.0.1", 0, False, None)
    ctl.is_control = True
    servers.append(ctl)
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()

    info = {"http": http_port, "https": https_port,
            "control": ctl.server_address[1],
            "ca": d + "/ca.pem" if contexts else None, "addresses": addresses,
            "pid": os.getpid()}
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info, f)
    os.rename(tmp, args.port_file)
    time.sleep(args.lifetime)
    os._exit(0)


if __name__ == "__main__":
    main()
