"""One mtlsd per address (dataplane/engine/listener.c, dataplane/control/control.c).

Workers listen with SO_REUSEPORT, so without a check a second mtlsd on the
same address would join the first one's group and the kernel would split
new connections between two configurations. A second mtlsd is refused,
naming the address and the first one's pid, on a listen address and on the
control socket; `--takeover` (a binary upgrade) starts it beside the first
and hands it the control socket. A quick restart is not a second instance:
sockets in TIME_WAIT do not count.
"""

import contextlib
import os
import re
import signal
import ssl
import subprocess

from harness import READY_TIMEOUT, case, free_port, wait_until
from daemon import READY_LINE, Mtlsd, standard_config
from expect import assert_audit_rejected, valid_client_works
import peers


class MtlsdOn(Mtlsd):
    """An mtlsd on a port the test chose (another instance's): started once,
    never moved to another port."""

    def __init__(self, ctx, config, port, **kw):
        self.fixed_port = port
        super().__init__(ctx, config, **kw)

    def _start(self):
        proc = self.ctx.spawn(self.name, self.argv(self.fixed_port))
        rx = re.compile(READY_LINE)
        wait_until("%s to print '%s' or exit" % (self.name, READY_LINE),
                   lambda: rx.search(proc.output()) or proc.exited(), timeout=READY_TIMEOUT)
        proc.check_alive()
        self.proc, self.port = proc, self.fixed_port


def start_refused(ctx, name, argv):
    """argv must exit 1 before it is ready; its output."""
    proc = ctx.spawn(name, argv)
    rx = re.compile(READY_LINE)
    wait_until("%s to exit (or, wrongly, print '%s')" % (name, READY_LINE),
               lambda: rx.search(proc.output()) or proc.exited(), timeout=READY_TIMEOUT)
    out = proc.output()
    assert not rx.search(out), "%s started beside the first mtlsd:\n%s" % (name, out)
    assert proc.proc.wait() == 1, "%s: exit %s, not 1:\n%s" % (name, proc.proc.returncode, out)
    return out


def second_argv(ctx, name, port, conf):
    return [ctx.mtlsd_bin, "--config", conf, "--listen", "127.0.0.1:%d" % port,
            "--audit-log", os.path.join(ctx.dir, name + "-audit.jsonl")]


def status_pid(ctx, sock):
    r = subprocess.run([ctx.mtlsctl_bin, "status", "--socket", sock], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    return int(re.search(r"^pid\s+(\d+)$", r.stdout, re.M).group(1))


@case("second_mtlsd_same_address_refused")
def second_mtlsd_same_address_refused(ctx):
    """A second mtlsd on the first one's address (its own control socket, so
    only the address is shared) is refused, naming the address, the first
    one's pid and --takeover; the first keeps all the traffic."""
    backend = ctx.backend()
    config = standard_config(ctx, backend.addr)
    first = Mtlsd(ctx, config)
    conf = ctx.write("second.conf", open(first.conf_path).read().replace(
        first.control_socket, os.path.join(ctx.dir, "second.sock")))
    out = start_refused(ctx, "second", second_argv(ctx, "second", first.port, conf))
    want = "listen 127.0.0.1:%d: address already in use by pid %d (mtlsd)" % (
        first.port, first.proc.proc.pid)
    assert want in out and "--takeover" in out, "expected %r in:\n%s" % (want, out)
    for n in range(1, 4):
        valid_client_works(ctx, first, backend, audit_n=n, conn=n)


@case("second_mtlsd_same_control_socket_refused")
def second_mtlsd_same_control_socket_refused(ctx):
    """Another address but the first one's control socket: refused rather
    than run where mtlsctl cannot reach it, naming the socket and the pid."""
    backend = ctx.backend()
    first = Mtlsd(ctx, standard_config(ctx, backend.addr))
    out = start_refused(ctx, "second", second_argv(ctx, "second", free_port(),
                                                   first.conf_path))
    want = "control socket %s: another mtlsd (pid %d) answers on it" % (
        first.control_socket, first.proc.proc.pid)
    assert want in out and "--takeover" in out, "expected %r in:\n%s" % (want, out)
    assert status_pid(ctx, first.control_socket) == first.proc.proc.pid
    valid_client_works(ctx, first, backend, audit_n=1, conn=1)


@case("second_mtlsd_takeover_starts_and_takes_control")
def second_mtlsd_takeover_starts_and_takes_control(ctx):
    """The twin, the binary upgrade of docs/operations.md: with --takeover
    the second mtlsd starts on the same address with the same control
    socket, which then answers for it; the first drains on SIGTERM without
    removing the socket, and the second serves everything after."""
    backend = ctx.backend()
    config = standard_config(ctx, backend.addr)
    first = Mtlsd(ctx, config)
    config.sections.insert(0, ("mtlsd", [("control_socket", first.control_socket)]))
    second = MtlsdOn(ctx, config, first.port, name="second", extra_flags=["--takeover"])
    assert status_pid(ctx, first.control_socket) == second.proc.proc.pid
    assert not os.path.exists(first.control_socket + ".takeover")
    first.signal(signal.SIGTERM)
    assert first.wait_exit() == 0, first.log()
    assert status_pid(ctx, first.control_socket) == second.proc.proc.pid
    for n in range(1, 4):
        valid_client_works(ctx, second, backend, audit_n=n, conn=n)


def no_certificate_client_closes_last(ctx, port):
    """A TLS 1.3 client without a certificate: its side of the handshake
    completes, mtlsd refuses it with an alert and closes; the client reads
    to the end and closes after."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls.minimum_version = ssl.TLSVersion.TLSv1_3
    tls.load_verify_locations(ctx.fx.path("pki", "root", "ca.crt"))
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = tls.wrap_bio(inc, out, server_hostname="localhost")
    raw = peers.raw_connect(port)
    try:
        with contextlib.suppress(ssl.SSLError):
            while True:
                try:
                    client.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    raw.sendall(out.read())
                    data = raw.recv(65536)
                    if not data:
                        break
                    inc.write(data)
        raw.sendall(out.read())  # Finished and the empty Certificate
        peers.read_until_closed(raw)  # the certificate_required alert, then FIN
    finally:
        raw.close()


@case("restart_same_port_with_time_wait_starts")
def restart_same_port_with_time_wait_starts(ctx):
    """A quick restart is not a second instance: connections mtlsd closed
    leave sockets in TIME_WAIT on its port, and the next mtlsd on that port
    starts at once."""
    backend = ctx.backend()
    config = standard_config(ctx, backend.addr)
    first = Mtlsd(ctx, config)
    # Refused handshakes: mtlsd closes first, so the TIME_WAIT is on its side.
    # The client writes nothing after its handshake and closes only after
    # mtlsd's FIN: bytes left unread in mtlsd's socket would make its close
    # an RST (no TIME_WAIT), and a segment into the TIME_WAIT would end it.
    for n in range(1, 4):
        no_certificate_client_closes_last(ctx, first.port)
        assert_audit_rejected(ctx, first.wait_audit(n), "no_certificate")
    first.signal(signal.SIGTERM)
    assert first.wait_exit() == 0, first.log()
    ss = subprocess.run(["ss", "-Htan", "state", "time-wait", "( sport = :%d )" % first.port],
                        capture_output=True, text=True, timeout=30).stdout
    assert ss.strip(), "no TIME_WAIT socket on port %d: the test would prove nothing" % first.port
    again = MtlsdOn(ctx, config, first.port, name="again")
    valid_client_works(ctx, again, backend, audit_n=1, conn=1)
