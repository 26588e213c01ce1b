"""Resources come back: after a burst of every kind of connection (valid,
refused, garbage, reset in the handshake, reset mid-stream) mtlsd holds
exactly the file descriptors it held before, and every backend connection
it opened is closed."""

import contextlib
import os
import re
import resource
import subprocess

from harness import case, wait_until
from daemon import Mtlsd, standard_config
from expect import valid_client_works
import cases_relay
import peers

ROUNDS = 10


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def one_of_each(ctx, port):
    cases_relay.relay_one(ctx, port, "client-ec", 64 * 1024)
    assert cases_relay.refused_one(ctx, port, "client-revoked") == 0
    with peers.raw_connect(port) as s:
        s.sendall(b"\x00" * 64 + os.urandom(64))
        peers.read_until_closed(s)
    s = peers.raw_connect(port)
    s.sendall(peers.partial_client_hello())
    peers.reset(s)
    client = peers.TlsClient(ctx, port, "client-rsa")
    client.exchange(os.urandom(128 * 1024), 1, lambda data: None)
    client.reset()


@case("no_fd_leak_after_mixed_traffic")
def no_fd_leak_after_mixed_traffic(ctx):
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr))
    # One valid client first, so whatever mtlsd opens lazily is open.
    valid_client_works(ctx, mtlsd, backend, audit_n=1, conn=1)
    wait_until("the first backend connection to close", lambda: backend.events("close"))
    pid = mtlsd.proc.proc.pid
    baseline = open_fds(pid)
    for _ in range(ROUNDS):
        one_of_each(ctx, mtlsd.port)
    mtlsd.check_alive()
    # Closing is asynchronous (in-flight io_uring requests complete first):
    # poll until the count is back, with a generous deadline.
    wait_until("mtlsd's open descriptors to return to %d" % baseline,
               lambda: open_fds(pid) == baseline)
    wait_until("every backend connection to be closed",
               lambda: len(backend.events("close")) == backend.connections())
    assert backend.connections() == 1 + 2 * ROUNDS, backend.events("accept")


@contextlib.contextmanager
def soft_nofile(limit):
    """Processes started inside inherit this soft RLIMIT_NOFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def doctor_nofile(ctx, conf):
    r = subprocess.run([ctx.mtlsctl_bin, "doctor", "--config", conf], capture_output=True,
                       text=True, timeout=60)
    return next(l for l in r.stdout.splitlines() if re.search(r"\bnofile\b", l))


@case("nofile_below_need_warned_at_start")
def nofile_below_need_warned_at_start(ctx):
    """max_connections = 10000 under a soft open-files limit of 1024: mtlsd
    starts (and serves) but says so at start, with the same figure as
    `mtlsctl doctor` (one computation, config_fds_needed) and the fix."""
    backend = ctx.backend()
    with soft_nofile(1024):
        mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr),
                      extra_flags=["--max-connections", "10000"])
        doctor = doctor_nofile(ctx, mtlsd.conf_path)
    m = re.search(r"warning: open-files limit 1024 \(hard \S+\) is below the (\d+) descriptors "
                  r"max_connections = 10000 needs", mtlsd.log())
    assert m, mtlsd.log()
    assert "LimitNOFILE=%s" % m.group(1) in mtlsd.log(), mtlsd.log()
    # doctor reads the file, not the flag: the figure is the default's, 10000 too.
    assert "the %s that max_connections=10000 needs" % m.group(1) in doctor, doctor
    valid_client_works(ctx, mtlsd, backend, audit_n=1, conn=1)


@case("nofile_covering_need_no_warning")
def nofile_covering_need_no_warning(ctx):
    """The twin: max_connections = 100 fits in 1024 descriptors: no word."""
    backend = ctx.backend()
    with soft_nofile(1024):
        mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr),
                      extra_flags=["--max-connections", "100", "--max-handshakes", "100"])
    valid_client_works(ctx, mtlsd, backend, audit_n=1, conn=1)
    assert "open-files limit" not in mtlsd.log(), mtlsd.log()
