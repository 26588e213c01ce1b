#!/usr/bin/env python3
"""End-to-end checks of mtlsd's event engine that the integration matrix
does not cover: backpressure, the connect timeout, the handshake limit and
how connections are closed at the drain deadline versus the idle timeout.

    test_engine.py MTLSD CASE

Every case has its twin in the same run: the accepting half proves the
setup works, so the refusing half cannot pass for the wrong reason.
Fixtures come from $MTLS_FIXTURES; ports are random and loopback only.
"""
import atexit
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

MTLSD, CASE = sys.argv[1], sys.argv[2]
FX = os.environ["MTLS_FIXTURES"]


def free_port():
    for _ in range(50):
        port = random.randint(20000, 60000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    sys.exit("no free port")


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        sys.exit(1)


class Echo(threading.Thread):
    """A backend that echoes (or, with hold=True, accepts and never reads)."""

    def __init__(self, hold=False, backlog=64):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.hold = hold
        self.held = []

    def run(self):
        while True:
            c, _ = self.sock.accept()
            if self.hold:
                self.held.append(c)
                continue
            threading.Thread(target=self.echo, args=(c,), daemon=True).start()

    @staticmethod
    def echo(c):
        with c:
            try:
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    c.sendall(d)
            except OSError:
                pass  # mtlsd closed the relay: expected in these cases


_started = []


@atexit.register
def _kill_leftovers():
    """A failed case must not leave its mtlsd running: it would keep
    meson's output pipe open and the whole test run would hang."""
    for p in _started:
        if p.poll() is None:
            p.kill()
            p.wait()


_ctl_tmp = []


def _ctl_dir():
    if not _ctl_tmp:
        import tempfile
        d = tempfile.mkdtemp(prefix="mtlsd-engine-")
        atexit.register(lambda: __import__("shutil").rmtree(d, ignore_errors=True))
        _ctl_tmp.append(d)
    return _ctl_tmp[0]


class Mtlsd:
    def __init__(self, backend_port, *flags):
        self.port = free_port()
        args = [MTLSD, "--listen", f"127.0.0.1:{self.port}", "--workers", "1",
                "--cert", f"{FX}/server/chain.pem", "--key", f"{FX}/server/key.pem",
                "--client-ca", f"{FX}/pki/ca-bundle.pem", "--crl", f"{FX}/pki/crls.pem",
                "--backend", f"127.0.0.1:{backend_port}", "--drain-timeout", "2s",
                # Its own control socket: the default one belongs to the
                # host's mtlsd (and a second claimant is refused).
                "--control-socket", os.path.join(_ctl_dir(), f"{self.port}.sock")] + list(flags)
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        _started.append(self.proc)
        self.lines = []
        deadline = time.time() + 20
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            if "mtlsd ready:" in line:
                threading.Thread(target=self.drain_stderr, daemon=True).start()
                return
        sys.exit("mtlsd did not start:\n" + "".join(self.lines))

    def drain_stderr(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def log(self):
        return "".join(self.lines)

    def log_has(self, *texts, timeout=5.0):
        """True once every text is in the log. stderr is read by a thread,
        so a line mtlsd already wrote may not be in self.lines yet."""
        deadline = time.time() + timeout
        while True:
            log = self.log()
            if all(t in log for t in texts):
                return True
            if time.time() >= deadline:
                return False
            time.sleep(0.05)


def client(port, timeout=10):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(f"{FX}/pki/ca-bundle.pem")
    ctx.load_cert_chain(f"{FX}/client-ec/chain.pem", f"{FX}/client-ec/key.pem")
    ctx.check_hostname = False
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(raw, suppress_ragged_eofs=False)


def roundtrip(port, msg=b"ping"):
    with client(port) as c:
        c.sendall(msg)
        got = b""
        while len(got) < len(msg):
            d = c.recv(65536)
            if not d:
                break
            got += d
        return got == msg


def case_backpressure():
    """A client that never reads is stopped by TCP, not buffered by mtlsd."""
    be = Echo()
    be.start()
    m = Mtlsd(be.port)
    before = m.rss_kib()
    clients, pushed = [], []
    for _ in range(4):
        c = client(m.port, timeout=3)
        clients.append(c)
        sent, chunk = 0, os.urandom(1 << 16)
        try:
            while sent < (256 << 20):
                c.sendall(chunk)
                sent += len(chunk)
        except (socket.timeout, TimeoutError):
            pass
        pushed.append(sent)
    grown = (m.rss_kib() - before) >> 10
    check(all(p < (256 << 20) for p in pushed),
          f"each non-reading client is blocked by backpressure (pushed {[p >> 20 for p in pushed]} MiB)")
    # One worker: 16 MiB of receive ring, a few chunks per connection.
    check(grown < 48, f"mtlsd memory grew by {grown} MiB, bounded")
    check(roundtrip(m.port), "twin: a reading client is served meanwhile")
    for c in clients:
        c.close()
    check(m.stop() == 0, "exit 0")


def case_connect_timeout():
    """A backend that never completes the TCP handshake: connect_timeout."""
    # A listener whose accept queue is full drops further SYNs.
    be = Echo(hold=True, backlog=0)
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", be.port))
        fillers.append(s)
    time.sleep(0.2)
    m = Mtlsd(be.port, "--connect-timeout", "1s")
    t0 = time.time()
    with client(m.port) as c:
        c.sendall(b"x")
        try:
            got = c.recv(10)
        except (ssl.SSLEOFError, TimeoutError, socket.timeout):
            got = None
    took = time.time() - t0
    check(got == b"", f"client gets a close_notify after the connect timeout ({took:.1f}s)")
    check(m.log_has("connect timed out after 1000 ms"), "the reason is logged and audited")
    check(m.stop() == 0, "exit 0")
    good = Echo()
    good.start()
    m2 = Mtlsd(good.port, "--connect-timeout", "1s")
    check(roundtrip(m2.port), "twin: a live backend within the same timeout is relayed")
    check(m2.stop() == 0, "exit 0")


def closed_by_mtlsd(sock, timeout=5):
    """True once mtlsd closed sock (EOF or reset) within timeout."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionError:
        return True
    except socket.timeout:
        return False


def case_max_handshakes():
    """Handshakes in flight are limited; established connections are not.
    At the limit a handshake that has not even sent a ClientHello makes
    room for the newcomer (evicted and audited); the twin: when nothing
    may be evicted (every connection is established), the newcomer is
    refused."""
    be = Echo()
    be.start()
    m = Mtlsd(be.port, "--max-handshakes", "1", "--max-connections", "2")
    est = client(m.port)
    est.sendall(b"a")
    check(est.recv(1) == b"a", "an established connection")
    stall = socket.create_connection(("127.0.0.1", m.port))
    time.sleep(0.3)
    check(roundtrip(m.port), "a second handshake while one stalls without a ClientHello is served")
    check(closed_by_mtlsd(stall), "the stalled one was closed to make room")
    check(m.log_has('"event":"evicted"', "max_handshakes (1)"), "and audited as evicted")
    est.sendall(b"b")
    check(est.recv(1) == b"b", "the established connection is untouched")
    # The round trip's connection may take a moment to be gone in mtlsd.
    est2, deadline = None, time.time() + 10
    while est2 is None and time.time() < deadline:
        try:
            est2 = client(m.port)
        except (OSError, ssl.SSLError):
            time.sleep(0.1)
    check(est2 is not None, "a second established connection")
    est2.sendall(b"c")
    check(est2.recv(1) == b"c", "the two established connections fill max_connections")
    try:
        refused = not roundtrip(m.port)
    except (OSError, ssl.SSLError):
        refused = True
    check(refused, "twin: with nothing to evict, the next connection is refused")
    check(m.log_has('"event":"limit"', "max_connections (2) reached"), "and audited as a limit")
    est.sendall(b"d")
    check(est.recv(1) == b"d", "the established connections are untouched")
    est.close()
    est2.close()
    stall.close()
    check(m.stop() == 0, "exit 0")


def case_drain_close_notify():
    """At the drain deadline a relaying client gets close_notify; at the idle
    timeout (its twin) the connection is simply cut."""
    be = Echo()
    be.start()
    m = Mtlsd(be.port, "--drain-timeout", "1s")
    c = client(m.port)
    c.sendall(b"a")
    check(c.recv(1) == b"a", "relaying")
    m.proc.send_signal(signal.SIGTERM)
    try:
        clean = c.recv(10) == b""
    except ssl.SSLEOFError:
        clean = False
    check(clean, "drain deadline: close_notify, not a truncation")
    check(m.proc.wait(timeout=30) == 0, "exit 0 after the drain")
    m2 = Mtlsd(be.port, "--idle-timeout", "1s")
    c = client(m2.port)
    c.sendall(b"a")
    c.recv(1)
    try:
        cut = c.recv(10) != b""
    except ssl.SSLEOFError:
        cut = True
    check(cut, "twin: idle timeout cuts without close_notify")
    check(m2.stop() == 0, "exit 0")


CASES = {
    "backpressure": case_backpressure,
    "connect_timeout": case_connect_timeout,
    "max_handshakes": case_max_handshakes,
    "drain_close_notify": case_drain_close_notify,
}
# A hung case fails with a message instead of meson's bare timeout.
signal.signal(signal.SIGALRM, lambda *_: sys.exit(f"FAIL: case {CASE} hung for 100 s"))
signal.alarm(100)
CASES[CASE]()
