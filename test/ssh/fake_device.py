#!/usr/bin/python3
"""Fake CLI devices over SSH for the ssh driver's tests (issue #12).

One asyncssh server per loopback address, all on the same port.  Each
address is a device named sw<last octet> with a Cisco-like CLI:

  sw1>  show version | show clock | show long (60 lines) | enable
  sw1#  the same, terminal length 0, configure terminal
  sw1(config)#  interface X, description X, hostname X, vlan N, name X,
                ip ..., no ..., snmp-server ...  (accepted and counted),
                bogus ...  (% Invalid input), end, exit
  anything else: % Invalid input detected at '^' marker.

Paging is on (24 lines, " --More-- ", erased with backspaces after a key)
until "terminal length 0".  Exec channels run a tiny shell: echo, hostname,
false (exit 1), and any of the show commands.

  --dir DIR   DIR/known_hosts is written at start (the key of every address
              but those of --other-key); DIR/faults.json is read at every
              command: {"<address>" or "*": {"delay_ms": N (before each
              command but the session setup: paging, enable, configure,
              end), "hang": true, "hang_match": "text" (hang on a line
              holding it),
              "disconnect_mid_output": true, "no_paging_off": true,
              "auth_delay_ms": N}}; DIR/counts.json is written after every
              event: {"<address>": {"connections", "logins", "commands",
              "config_lines", "config_log": [...]}}.
  --config F  {"users": {"name": {"password", "enable_password",
              "authorized_keys" (OpenSSH public key lines), "methods"}},
              "styles": {"<address>": "nxos" | "junos"}}: NX-OS logs in
              at "sw1#"; Junos prompts "user@sw1> ", turns paging off with
              "set cli screen-length 0", configures with "configure",
              "set ...", "commit and-quit", and complains "syntax error."
              / "unknown command.".  "show run" prints the configuration
              lines received so far.
  --ready F   written once every address listens.

It exits with its parent (the test), or after --lifetime seconds, so a
failed test cannot leave it running.
"""
import argparse
import asyncio
import ipaddress
import json
import os
import sys

import asyncssh

ARGS = None
# session setup, answered at once whatever delay_ms says (a device's cost
# is in its real commands)
SETUP = {"terminal length 0", "set cli screen-length 0", "enable",
         "configure terminal", "configure", "end", "commit and-quit"}
COUNTS = {}
USERS = {}
STYLES = {}
RUNNING = {}

VERSION = ("Cisco IOS Software, Fake Software (FAKE-UNIVERSALK9-M), Version 15.2(4)E10\r\n"
           "{host} uptime is 1 day, 2 hours, 3 minutes\r\n"
           "System image file is \"flash:fake.bin\"")
LONG = "\r\n".join("line %02d of the long output" % i for i in range(1, 61))


def faults(addr):
    try:
        with open(os.path.join(ARGS.dir, "faults.json")) as f:
            all_faults = json.load(f)
    except (OSError, ValueError):
        return {}
    merged = dict(all_faults.get("*", {}))
    merged.update(all_faults.get(addr, {}))
    return merged


def count(addr, key, value=1):
    c = COUNTS.setdefault(addr, {"connections": 0, "logins": 0, "commands": 0,
                                 "config_lines": 0, "config_log": []})
    if isinstance(c.get(key), list):
        c[key].append(value)
    else:
        c[key] = c.get(key, 0) + value
    tmp = os.path.join(ARGS.dir, "counts.json.tmp")
    with open(tmp, "w") as f:
        json.dump(COUNTS, f)
    os.replace(tmp, os.path.join(ARGS.dir, "counts.json"))


def hostname(addr):
    return "sw" + addr.split(".")[-1]


class Server(asyncssh.SSHServer):
    def __init__(self, addr):
        self.addr = addr
        self.user = None

    def connection_made(self, conn):
        count(self.addr, "connections")

    def begin_auth(self, username):
        self.user = USERS.get(username)
        return True

    def _method(self, name):
        if self.user is None:
            return name != "publickey"
        return name in self.user.get("methods", ["publickey", "password",
                                                 "keyboard-interactive"])

    def password_auth_supported(self):
        return self._method("password")

    def kbdint_auth_supported(self):
        return self._method("keyboard-interactive")

    def public_key_auth_supported(self):
        return self._method("publickey")

    async def _check(self, ok):
        await asyncio.sleep(faults(self.addr).get("auth_delay_ms", 0) / 1000.0)
        if ok:
            count(self.addr, "logins")
        return ok

    async def validate_password(self, username, password):
        return await self._check(self.user is not None and
                                 self.user.get("password") == password)

    def get_kbdint_challenge(self, username, lang, submethods):
        return "", "", "", [("Password: ", False)]

    async def validate_kbdint_response(self, username, responses):
        return await self._check(self.user is not None and len(responses) == 1 and
                                 self.user.get("password") == responses[0])

    async def validate_public_key(self, username, key):
        if self.user is None:
            return False
        for line in self.user.get("authorized_keys", []):
            if asyncssh.import_public_key(line).public_data == key.public_data:
                return await self._check(True)
        return False


class Cli:
    """One interactive session."""

    def __init__(self, process, addr, user, username):
        self.p = process
        self.addr = addr
        self.host = hostname(addr)
        self.user = user or {}
        self.username = username
        self.style = STYLES.get(addr, "ios")
        self.mode = "enable" if self.style == "nxos" else "user"
        self.paging = True
        self.running = RUNNING.setdefault(addr, [])

    def prompt(self):
        if self.style == "junos":
            return "%s@%s%s " % (self.username, self.host,
                                 "#" if self.mode == "config" else ">")
        suffix = {"user": ">", "enable": "#", "config": "(config)#",
                  "config-if": "(config-if)#"}[self.mode]
        return self.host + suffix

    async def readline(self, echo=True):
        """A line as typed (CR, LF or CR LF ends it), echoed unless echo
        is false; None at the end of input.  Input is read in chunks: what
        follows the line waits in self.pending."""
        buf = ""
        while True:
            if not getattr(self, "pending", ""):
                data = await self.p.stdin.read(4096)
                if not data:
                    return None
                self.pending = data
            data, self.pending = self.pending, ""
            if getattr(self, "skip_lf", False) and data.startswith("\n"):
                data = data[1:]
            self.skip_lf = False
            for i, ch in enumerate(data):
                if ch in ("\r", "\n"):
                    self.skip_lf = ch == "\r"
                    self.pending = data[i + 1:]
                    if self.skip_lf and self.pending.startswith("\n"):
                        self.pending = self.pending[1:]
                        self.skip_lf = False
                    if echo:
                        self.p.stdout.write(data[:i] + "\r\n")
                    return buf + data[:i]
            if echo:
                self.p.stdout.write(data)
            buf += data

    async def page(self, text, f):
        lines = text.split("\r\n")
        out = []
        for i, line in enumerate(lines):
            if f.get("disconnect_mid_output") and i == 3:
                self.p.stdout.write("\r\n".join(out) + "\r\n")
                await asyncio.sleep(0.05)
                self.p.close()
                raise ConnectionError("disconnect fault")
            out.append(line)
            if self.paging and len(out) == 23 and i < len(lines) - 1:
                self.p.stdout.write("\r\n".join(out) + "\r\n --More-- ")
                key = await self.p.stdin.read(1)
                if not key:
                    return
                self.p.stdout.write("\b" * 10 + " " * 10 + "\b" * 10)
                out = []
        self.p.stdout.write("\r\n".join(out) + "\r\n")

    def invalid(self, line):
        self.p.stdout.write(" " * (len(self.prompt()) + 1) + "^\r\n"
                            "% Invalid input detected at '^' marker.\r\n\r\n")

    async def junos(self, line, words, f):
        if self.mode == "config":
            if line == "commit and-quit":
                self.p.stdout.write("commit complete\r\nExiting configuration mode\r\n\r\n")
                self.mode = "user"
            elif words[0] in ("set", "delete"):
                count(self.addr, "config_lines")
                count(self.addr, "config_log", line)
                self.running.append(line)
                self.p.stdout.write("\r\n[edit]\r\n")
            else:
                self.p.stdout.write("                  ^\r\nsyntax error.\r\n\r\n[edit]\r\n")
            return
        if line == "set cli screen-length 0":
            self.paging = False
            self.p.stdout.write("Screen length set to 0\r\n\r\n")
        elif line == "show version":
            await self.page("Hostname: %s\r\nModel: fake-mx\r\nJunos: 21.4R3\r\n" % self.host, f)
        elif line == "configure":
            self.p.stdout.write("Entering configuration mode\r\n\r\n[edit]\r\n")
            self.mode = "config"
        else:
            self.p.stdout.write("                  ^\r\nunknown command.\r\n\r\n")

    async def command(self, line, f):
        words = line.split()
        if not words:
            return
        if self.style == "junos":
            return await self.junos(line, words, f)
        if line == "show run" and self.mode != "user":
            return await self.page("\r\n".join(["hostname " + self.host] + self.running), f)
        if self.mode in ("config", "config-if"):
            return await self.config_line(line, words)
        if line == "terminal length 0" and self.mode in ("user", "enable"):
            if not f.get("no_paging_off"):
                self.paging = False
            return
        if line == "show version":
            return await self.page(VERSION.format(host=self.host), f)
        if line == "show clock":
            return await self.page("12:00:00.000 UTC Wed Dec 2 2026", f)
        if line == "show long":
            return await self.page(LONG, f)
        if line == "enable" and self.mode == "user":
            secret = self.user.get("enable_password")
            if secret is None:
                self.mode = "enable"
                return
            self.p.stdout.write("Password: ")
            given = await self.readline(echo=False)
            self.p.stdout.write("\r\n")
            if given == secret:
                self.mode = "enable"
            else:
                self.p.stdout.write("% Access denied\r\n\r\n")
            return
        if line == "configure terminal" and self.mode == "enable":
            self.p.stdout.write("Enter configuration commands, one per line.  End with CNTL/Z.\r\n")
            self.mode = "config"
            return
        self.invalid(line)

    async def config_line(self, line, words):
        if line == "end":
            self.mode = "enable"
            return
        if line == "exit":
            self.mode = "config" if self.mode == "config-if" else "enable"
            return
        if words[0] in ("interface", "description", "hostname", "vlan", "name",
                        "ip", "no", "snmp-server", "shutdown"):
            count(self.addr, "config_lines")
            count(self.addr, "config_log", line)
            self.running.append(line)
            if words[0] == "interface":
                self.mode = "config-if"
            return
        self.invalid(line)

    async def run(self):
        self.p.stdout.write("\r\nFake device %s\r\n\r\n%s" % (self.host, self.prompt()))
        while True:
            line = await self.readline()
            if line is None:
                break
            f = faults(self.addr)
            count(self.addr, "commands")
            if f.get("hang") or (f.get("hang_match") and f["hang_match"] in line):
                await asyncio.sleep(3600)
            if line.strip() not in SETUP:
                await asyncio.sleep(f.get("delay_ms", 0) / 1000.0)
            try:
                await self.command(line.strip(), f)
            except ConnectionError:
                return
            self.p.stdout.write(self.prompt())
        self.p.exit(0)


async def run_exec(process, addr):
    cmd = process.command.strip()
    f = faults(addr)
    count(addr, "commands")
    if f.get("hang"):
        await asyncio.sleep(3600)
    await asyncio.sleep(f.get("delay_ms", 0) / 1000.0)
    words = cmd.split()
    if words and words[0] == "echo":
        process.stdout.write(" ".join(words[1:]) + "\n")
        status = 0
    elif cmd == "hostname":
        process.stdout.write(hostname(addr) + "\n")
        status = 0
    elif cmd == "false":
        process.stderr.write("false: failed\n")
        status = 1
    elif words and words[0] == "touch":
        count(addr, "config_lines")
        count(addr, "config_log", cmd)
        status = 0
    else:
        process.stderr.write("sh: 1: %s: not found\n" % (words[0] if words else ""))
        status = 127
    process.exit(status)


def make_handler(addr, servers):
    async def handle(process):
        try:
            if process.command is not None:
                await run_exec(process, addr)
            else:
                username = process.get_extra_info("username")
                await Cli(process, addr, USERS.get(username), username).run()
        except (asyncssh.BreakReceived, asyncssh.TerminalSizeChanged, BrokenPipeError,
                ConnectionError, asyncssh.DisconnectError):
            pass
        except Exception as e:  # noqa: BLE001 -- a test device must not die
            print("session error: %r" % (e,), file=sys.stderr)
            process.exit(1)
    return handle


def address_range(spec):
    first, _, last = spec.partition("-")
    a = ipaddress.ip_address(first)
    b = ipaddress.ip_address(last or first)
    return [str(ipaddress.ip_address(i)) for i in range(int(a), int(b) + 1)]


async def main():
    global ARGS, USERS, STYLES
    ap = argparse.ArgumentParser()
    ap.add_argument("--addresses", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--config")
    ap.add_argument("--other-key", default="")
    ap.add_argument("--ready")
    ap.add_argument("--lifetime", type=float, default=600)
    ARGS = ap.parse_args()
    if ARGS.config:
        with open(ARGS.config) as f:
            conf = json.load(f)
        USERS = conf.get("users", {})
        STYLES = conf.get("styles", {})
    key = asyncssh.generate_private_key("ssh-ed25519")
    other = asyncssh.generate_private_key("ssh-ed25519")
    other_addrs = set(a for a in ARGS.other_key.split(",") if a)
    addrs = address_range(ARGS.addresses)
    servers = []
    known = []
    for addr in addrs:
        k = other if addr in other_addrs else key
        servers.append(await asyncssh.create_server(
            lambda addr=addr: Server(addr), addr, ARGS.port,
            server_host_keys=[k], process_factory=make_handler(addr, servers),
            line_editor=False, allow_scp=False, x11_forwarding=False,
            agent_forwarding=False, reuse_address=True))
        if addr not in other_addrs:
            pub = key.export_public_key().decode().strip()
            known.append(("[%s]:%d %s" % (addr, ARGS.port, pub)))
    with open(os.path.join(ARGS.dir, "known_hosts"), "w") as f:
        f.write("\n".join(known) + "\n")
    if ARGS.ready:
        with open(ARGS.ready, "w") as f:
            f.write("ready\n")
    # gone with the test that started it (or after its lifetime)
    parent = os.getppid()
    for _ in range(int(ARGS.lifetime)):
        await asyncio.sleep(1)
        if os.getppid() != parent:
            break


if __name__ == "__main__":
    asyncio.run(main())
