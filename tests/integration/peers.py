"""The clients the tests point at mtlsd.

Real TLS peers: `openssl s_client`, `curl` and `gnutls-cli` (a second TLS
stack, so mtlsd is not only tested against OpenSSL). For what the CLIs
cannot do precisely (32 MiB each way with checksums, a TLS half-close, a
reset mid-stream, knowing the client's source port) a Python ssl client
over memory BIOs, which gives the test control of every byte on the wire.
Raw sockets for the non-TLS inputs (garbage, a stalled ClientHello).
"""

import contextlib
import os
import re
import selectors
import socket
import ssl
import struct
import subprocess
import threading
import time

from harness import EVENT_TIMEOUT, bracket

CHUNK = 65536
PEM_CERT = r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----"


class PeerResult:
    def __init__(self, stdout, stderr, returncode, matched):
        self.stdout = stdout
        self.stderr = stderr
        self.returncode = returncode  # None when the test stopped the peer
        self.matched = matched        # the expected bytes arrived

    def __repr__(self):
        return ("PeerResult(rc=%s, matched=%s, stdout=%r, stderr=%r)"
                % (self.returncode, self.matched, self.stdout[-400:], self.stderr[-800:]))


class CliPeer:
    """A CLI TLS client driven step by step: its stdin stays open (so EOF
    on stdin never closes the connection), its output is collected by two
    reader threads, and the test waits for bytes or for the exit."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self.out, self.err = bytearray(), bytearray()
        self.changed = threading.Condition()
        self.stdout_closed = False
        self.readers = [threading.Thread(target=self._drain, args=(self.proc.stdout, self.out),
                                         daemon=True),
                        threading.Thread(target=self._drain, args=(self.proc.stderr, self.err),
                                         daemon=True)]
        for t in self.readers:
            t.start()

    def _drain(self, pipe, buf):
        for chunk in iter(lambda: pipe.read1(CHUNK), b""):
            with self.changed:
                buf.extend(chunk)
                self.changed.notify_all()
        with self.changed:
            if buf is self.out:
                self.stdout_closed = True
            self.changed.notify_all()

    def send(self, data):
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def wait_for(self, data, timeout=EVENT_TIMEOUT):
        """True once data appeared on stdout; False if stdout closed or the
        timeout passed first."""
        with self.changed:
            self.changed.wait_for(lambda: data in self.out or self.stdout_closed, timeout)
            return data in self.out

    def wait_closed(self, timeout=EVENT_TIMEOUT):
        """The exit status once the peer ended by itself (the server closed
        the connection), or None if it is still running after timeout."""
        with self.changed:
            self.changed.wait_for(lambda: self.stdout_closed, timeout)
        # Its stdout closed: the peer is on its way out. Collect its status.
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.proc.wait(timeout=10 if self.stdout_closed else 0)
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for t in self.readers:
            t.join(5)
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()

    def result(self, returncode, matched):
        return PeerResult(bytes(self.out), bytes(self.err).decode(errors="replace"),
                          returncode, matched)


def run_interactive(argv, send, until, timeout=EVENT_TIMEOUT):
    """Run a CLI peer, write `send`, and wait until `until` comes back (then
    stop it) or, when until is None, until it exits by itself."""
    peer = CliPeer(argv)
    try:
        peer.send(send)
        if until is not None:
            matched = peer.wait_for(until, timeout)
            rc = peer.proc.poll()
        else:
            matched, rc = False, peer.wait_closed(timeout)
    finally:
        peer.stop()
    return peer.result(rc, matched)


def intermediates(ctx, leaf):
    """The CA certificates a leaf presents after itself: its chain.pem
    without the leaf (s_client would otherwise send the leaf twice). leaf
    is a fixture name or the directory of a certificate mtlsctl issued."""
    name = os.path.basename(leaf.rstrip("/")) + "-intermediates.pem"
    path = os.path.join(ctx.dir, name)
    if not os.path.exists(path):
        with open(ctx.fx.path(leaf, "chain.pem"), encoding="ascii") as f:
            pems = re.findall(PEM_CERT, f.read(), re.S)
        ctx.write(name, "".join(p + "\n" for p in pems[1:]), 0o644)
    return path


def s_client_argv(ctx, port, leaf=None, extra=(), host="127.0.0.1", server_ca=None,
                  quiet=True):
    """openssl s_client as the partner's client. leaf: fixture leaf name or
    None for no client certificate. server_ca: the root the client trusts
    for the server's certificate (default pki/'s). quiet=False keeps
    s_client's interactive commands (R: renegotiate)."""
    fx = ctx.fx
    argv = ["openssl", "s_client", "-connect", "%s:%d" % (bracket(host), port),
            "-CAfile", server_ca or fx.path("pki", "root", "ca.crt"), "-verify_return_error"]
    if not any(flag in extra for flag in ("-servername", "-noservername")):
        argv += ["-servername", "localhost"]
    # -quiet (or -ign_eof) would also turn the commands off.
    argv += ["-quiet"] if quiet else []
    if leaf:
        argv += ["-cert", fx.path(leaf, "cert.pem"), "-key", fx.path(leaf, "key.pem"),
                 "-cert_chain", intermediates(ctx, leaf)]
    return argv + list(extra)


def s_client(ctx, port, leaf=None, send=b"ping from s_client\n", expect=None, extra=(),
             host="127.0.0.1", server_ca=None):
    """s_client (see s_client_argv) sends `send`; expect: bytes to wait for
    (None: wait for the server to close the connection)."""
    return run_interactive(s_client_argv(ctx, port, leaf, extra, host, server_ca), send, expect)


def gnutls_cli(ctx, port, leaf, send=b"ping from gnutls\n", expect=None):
    """gnutls-cli (GnuTLS) as the client: the chain file holds leaf and
    intermediates, which GnuTLS presents in order."""
    fx = ctx.fx
    argv = ["gnutls-cli", "--x509cafile", fx.path("pki", "root", "ca.crt"),
            "--x509certfile", fx.path(leaf, "chain.pem"),
            "--x509keyfile", fx.path(leaf, "key.pem"),
            "--sni-hostname", "localhost", "-p", str(port), "127.0.0.1"]
    return run_interactive(argv, send, expect)


def curl(ctx, port, leaf, path="/hello", timeout=EVENT_TIMEOUT):
    """curl over https with a client certificate (leaf None: without one).
    Returns (rc, body, stderr)."""
    fx = ctx.fx
    argv = ["curl", "-sS", "--max-time", str(int(timeout)),
            "--resolve", "localhost:%d:127.0.0.1" % port,
            "--cacert", fx.path("pki", "root", "ca.crt")]
    if leaf:
        argv += ["--cert", fx.path(leaf, "chain.pem"), "--key", fx.path(leaf, "key.pem")]
    argv += ["https://localhost:%d%s" % (port, path)]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout + 10)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


class TlsError(Exception):
    """The TLS layer failed (alert, handshake failure)."""


class TlsClient:
    """A TLS client over a non-blocking socket and memory BIOs: the test
    decides when every byte is sent, when to half-close, when to reset."""

    def __init__(self, tctx, port, leaf, timeout=EVENT_TIMEOUT):
        fx = tctx.fx
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(fx.path("pki", "root", "ca.crt"))
        if leaf:
            ctx.load_cert_chain(fx.path(leaf, "chain.pem"), fx.path(leaf, "key.pem"))
        self.deadline = time.monotonic() + timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.sock.setblocking(False)
        self.local_port = self.sock.getsockname()[1]
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")
        self.wbuf = b""
        self.eof = False
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ)
        self.handshake()

    def close(self):
        self.sel.close()
        self.sock.close()

    def _remaining(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("TLS client: timed out")
        return left

    def _pump(self, want_write):
        """One round of I/O: send pending ciphertext, receive some."""
        self.wbuf += self.out.read()
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.wbuf else 0)
        self.sel.modify(self.sock, events)
        for _, ev in self.sel.select(min(self._remaining(), 1.0)):
            if ev & selectors.EVENT_WRITE and self.wbuf:
                n = self.sock.send(self.wbuf)
                self.wbuf = self.wbuf[n:]
            if ev & selectors.EVENT_READ and not self.eof:
                data = self.sock.recv(CHUNK)
                if data:
                    self.inc.write(data)
                else:
                    self.eof = True
                    self.inc.write_eof()

    def _flush(self):
        self.wbuf += self.out.read()
        while self.wbuf:
            self._pump(True)

    def handshake(self):
        while True:
            try:
                self.tls.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                if self.eof:
                    raise TlsError("connection closed during the handshake")
                self._pump(True)
            except ssl.SSLError as e:
                raise TlsError(str(e)) from e

    def _read_available(self, sink, eof_ok=False):
        """Decrypt what has arrived. Returns False at close_notify, or at a
        bare EOF when eof_ok (else that truncation is an error)."""
        while True:
            try:
                data = self.tls.read(CHUNK)
            except ssl.SSLWantReadError:
                return not self.eof
            except ssl.SSLZeroReturnError:
                return False
            except ssl.SSLEOFError as e:
                if eof_ok:
                    return False
                raise TlsError(str(e)) from e
            except ssl.SSLError as e:
                raise TlsError(str(e)) from e
            if not data:
                return False
            sink(data)

    def exchange(self, payload, expect_len, sink):
        """Send payload while receiving: stops when expect_len bytes were
        received (or the peer closed). Both directions at once, as a real
        proxy client would, so neither side's buffers fill up and stall."""
        received = [0]

        def count(data):
            received[0] += len(data)
            sink(data)

        sent, open_ = 0, True
        while open_ and (sent < len(payload) or self.wbuf or self.out.pending
                         or received[0] < expect_len):
            if sent < len(payload) and len(self.wbuf) + self.out.pending < 4 * CHUNK:
                sent += self.tls.write(payload[sent:sent + CHUNK])
            self._pump(True)
            open_ = self._read_available(count)
        return received[0]

    def send(self, data):
        self.exchange(data, 0, lambda d: None)

    def recv_until_close(self, sink, eof_ok=False):
        """Read until close_notify (or a bare EOF, when eof_ok)."""
        while self._read_available(sink, eof_ok):
            self._pump(False)

    def shutdown_write(self):
        """TLS half-close: send close_notify, then FIN; keep reading."""
        with contextlib.suppress(ssl.SSLWantReadError):
            self.tls.unwrap()
        self._flush()
        self.sock.shutdown(socket.SHUT_WR)

    def reset(self):
        """Abortive close (RST)."""
        self.sel.close()
        reset(self.sock)


def reset(sock):
    """Abortive close: SO_LINGER 0 makes close() send RST, not FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def raw_connect(port, timeout=EVENT_TIMEOUT):
    s = socket.create_connection(("127.0.0.1", port), timeout)
    s.settimeout(timeout)
    return s


def read_until_closed(sock):
    """Everything the server sends until it closes (FIN or RST)."""
    data = bytearray()
    with contextlib.suppress(ConnectionResetError):
        while True:
            chunk = sock.recv(CHUNK)
            if not chunk:
                break
            data.extend(chunk)
    return bytes(data)


def partial_client_hello():
    """The first bytes of a TLS handshake record announcing a 512-byte
    ClientHello that never comes: a handshake that stalls."""
    body_len = 508
    return bytes([0x16, 0x03, 0x01]) + (512).to_bytes(2, "big") + \
        bytes([0x01]) + body_len.to_bytes(3, "big") + bytes([0x03, 0x03]) + os.urandom(16)
