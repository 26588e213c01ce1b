"""Resources come back: after a burst of every kind of connection (valid,
refused, garbage, reset in the handshake, reset mid-stream) mtlsd holds
exactly the file descriptors it held before, and every backend connection
it opened is closed."""

import os

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
