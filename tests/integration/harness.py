"""Shared machinery of the integration tests: the test registry, one temp
dir per test, the mtlsd and backend processes, waiting without sleeping.

Every wait polls for an observable fact (a readiness line, an audit line, a
backend record) up to a generous deadline: the machine has two shared cores
and other engineers' tests run beside these. Every process a test starts is
registered on the test's ExitStack and killed when the test ends, pass or
fail.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# Generous: a 2-core machine running two test processes, each with mtlsd,
# a backend and a TLS peer, can be slow to schedule any one of them.
READY_TIMEOUT = 30.0
EVENT_TIMEOUT = 30.0
POLL_INTERVAL = 0.05


class Skip(Exception):
    """The machine lacks something the test needs (exit 77)."""


CASES = {}


def case(name):
    """Register a test function under the name meson shows."""
    def register(fn):
        if name in CASES:
            raise RuntimeError("duplicate integration test name " + name)
        CASES[name] = fn
        return fn
    return register


def wait_until(what, predicate, timeout=EVENT_TIMEOUT, alive=None):
    """Poll predicate() until it returns a true value, which is returned.
    alive(), when given, is checked too: it raises if a process we depend
    on died, so a crash fails fast with its own message."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if alive:
            alive()
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(POLL_INTERVAL)


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def read_json_lines(path):
    """Complete JSON lines of a file another process is appending to."""
    out = []
    for line in read_text(path).splitlines(keepends=True):
        if line.endswith("\n") and line.strip():
            out.append(json.loads(line))
    return out


def free_port(host="127.0.0.1"):
    """A port nobody listens on right now. mtlsd binds every worker's socket
    with SO_REUSEPORT, so it cannot be given port 0; a collision with a
    parallel test is handled by Mtlsd.start retrying."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def bracket(host):
    """"::1" -> "[::1]" for host:port strings."""
    return "[%s]" % host if ":" in host else host


class Fixtures:
    """Paths into the fixture set of tests/fixtures.md."""

    def __init__(self, root):
        self.root = root
        if not os.path.isdir(os.path.join(root, "pki")):
            raise AssertionError("MTLS_FIXTURES=%s holds no pki/: did the `fixtures` "
                                 "target run?" % root)

    def path(self, *parts):
        """A fixture file; an absolute first part (a certificate directory
        a test made with mtlsctl) is taken as it is."""
        return os.path.join(self.root, *parts)

    def leaf(self, name):
        """(cert.pem, key.pem, chain.pem) of a fixture leaf."""
        return (self.path(name, "cert.pem"), self.path(name, "key.pem"),
                self.path(name, "chain.pem"))


class Process:
    """A child process whose stdout+stderr go to a log file in the test dir
    (never a pipe nobody drains)."""

    def __init__(self, name, argv, logdir, env=None):
        self.name = name
        self.argv = argv
        self.log = os.path.join(logdir, name + ".log")
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)

    def output(self):
        return read_text(self.log)

    def exited(self):
        return self.proc.poll() is not None

    def check_alive(self):
        if self.proc.poll() is not None:
            raise AssertionError("%s exited with %s; its output:\n%s"
                                 % (self.name, self.proc.returncode, tail(self.output())))

    def wait_line(self, pattern, timeout=READY_TIMEOUT):
        """The first match of pattern in the output; fails if the process
        exits first."""
        rx = re.compile(pattern, re.M)
        return wait_until("%s to print /%s/" % (self.name, pattern),
                          lambda: rx.search(self.output()), timeout, self.check_alive)

    def stop(self):
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


class Backend:
    """tests/integration/backend.py in one of its modes."""

    def __init__(self, ctx, name, mode, proxy="v2", unix=False):
        self.name = name
        self.record = os.path.join(ctx.dir, name + ".jsonl")
        argv = [sys.executable, os.path.join(HERE, "backend.py"), "--mode", mode,
                "--proxy", proxy, "--record", self.record]
        if unix:
            argv += ["--unix", os.path.join(ctx.dir, name + ".sock")]
        self.proc = ctx.spawn(name, argv)
        self.addr = self.proc.wait_line(r"^backend ready: (\S+)$").group(1)

    def events(self, kind=None):
        evs = read_json_lines(self.record)
        return [e for e in evs if kind is None or e["event"] == kind]

    def connections(self):
        return len(self.events("accept"))

    def closed(self, conn):
        """The close record of connection number conn, waiting for it."""
        return wait_until("backend %s to close connection %d" % (self.name, conn),
                          lambda: next((e for e in self.events("close") if e["conn"] == conn),
                                       None), alive=self.proc.check_alive)

    def identity(self, conn):
        """The decoded PROXY header of connection conn (waits for it)."""
        def find():
            for e in self.events():
                if e.get("conn") == conn and e["event"] == "proxy_error":
                    raise AssertionError("backend %s: bad PROXY header on connection %d: %s"
                                         % (self.name, conn, e["error"]))
                if e.get("conn") == conn and e["event"] == "proxy":
                    return e["header"]
            return None
        return wait_until("the PROXY header of connection %d" % conn, find,
                          alive=self.proc.check_alive)


class Ctx:
    """Everything one test owns: its temp dir, processes and fixtures."""

    def __init__(self, name, stack):
        self.name = name
        self.stack = stack
        self.mtlsd_bin = require_env("MTLSD")
        self.mtlsctl_bin = require_env("MTLSCTL")
        self.srcdir = require_env("MTLS_SRCDIR")
        self.fx = Fixtures(require_env("MTLS_FIXTURES"))
        self.dir = tempfile.mkdtemp(prefix="mtls-it-%s-" % name)

    def spawn(self, name, argv, env=None):
        p = Process(name, argv, self.dir, env)
        self.stack.callback(p.stop)
        return p

    def backend(self, name="backend", mode="echo", proxy="v2", unix=False):
        return Backend(self, name, mode, proxy, unix)

    def write(self, name, text, mode=0o600):
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def concat(self, name, *paths):
        """One file holding the given PEM files, in order."""
        return self.write(name, "".join(read_text(p) for p in paths))

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def require_env(var):
    value = os.environ.get(var)
    if not value:
        raise AssertionError("%s is not set: run through `meson test` (tests/meson.build "
                             "sets it)" % var)
    return value
