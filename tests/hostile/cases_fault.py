"""Faults around mtlsd: a backend that hangs or resets mid-stream, a CRL
file that disappears, a reload during shutdown, SIGTERM with 1,000 active
transfers. (A backend refusing connections is tests/integration's
backend_refuses_connection.) Each prints its figures."""

import os
import shutil
import signal
import ssl
import time

from harness import case, wait_until
from daemon import Mtlsd, standard_config, two_partner_config
from expect import valid_client_works
import peers
from cases_hostile import fault_backend
from hostile_util import figure, raise_nofile, rss_kib

NAMES = ["backend_hangs_idle_timeout_closes", "backend_resets_midstream_client_closed",
         "crl_disappears_reload_refused_old_serves", "reload_during_shutdown_exits_cleanly",
         "sigterm_1000_transfers_none_truncated"]


def ends_closed(client, limit=30):
    """Read until the connection ends. Returns how it ended: 'close_notify',
    'tls error: ...' (a FIN without close_notify, an alert) or 'reset'; fails if it
    is still open after limit seconds (a silent hang)."""
    client.deadline = time.monotonic() + limit
    try:
        client.recv_until_close(lambda d: None, eof_ok=False)
        return "close_notify"
    except peers.TlsError as e:
        return "tls error: %s" % str(e)[:60]
    except ConnectionError as e:
        return "reset (%s)" % type(e).__name__


@case("backend_hangs_idle_timeout_closes")
def backend_hangs_idle_timeout_closes(ctx):
    """The backend takes the connection and the PROXY header, then never
    answers and never reads. The client's connection is not held forever:
    the idle timeout (2s) closes both sides; other partners are served."""
    addr, events, _ = fault_backend(ctx, "hang", "hang")
    good = ctx.backend("good")
    mtlsd = Mtlsd(ctx, two_partner_config(ctx, addr, good.addr),
                  extra_flags=["--idle-timeout", "2s"])
    c = peers.TlsClient(ctx, mtlsd.port, "client-ec")
    c.send(b"hello, anybody there?\n")
    start = time.monotonic()
    how = ends_closed(c)
    waited = time.monotonic() - start
    valid_client_works(ctx, mtlsd, good, audit_n=2, conn=1, leaf="client-partner2",
                       partner="partner2")
    figure("backend_hangs", idle_timeout_s=2, client_closed_after_s="%.1f" % waited, how=how)
    assert waited >= 1.0, "closed after %.1fs, before the idle timeout" % waited


@case("backend_resets_midstream_client_closed")
def backend_resets_midstream_client_closed(ctx):
    """The backend resets after 64 KiB of payload. The client, mid-upload,
    sees its connection end (never a silent hang), the audit trail has the
    close, and mtlsd serves the next client."""
    addr, events, _ = fault_backend(ctx, "reset", "reset", after=65536)
    good = ctx.backend("good")
    mtlsd = Mtlsd(ctx, two_partner_config(ctx, addr, good.addr))
    c = peers.TlsClient(ctx, mtlsd.port, "client-ec")
    sent = 0
    how = None
    try:
        for _ in range(64):  # up to 4 MiB; the reset comes after 64 KiB
            c.send(os.urandom(65536))
            sent += 65536
    except (peers.TlsError, ConnectionError, AssertionError) as e:
        how = "send failed: %s" % type(e).__name__
    if how is None:
        how = ends_closed(c)
    wait_until("the backend's reset", lambda: any(e["event"] == "reset" for e in events()))
    valid_client_works(ctx, mtlsd, good, audit_n=2, conn=1, leaf="client-partner2",
                       partner="partner2")
    figure("backend_resets", reset_after_bytes=65536, client_sent=sent, how=how)


@case("crl_disappears_reload_refused_old_serves")
def crl_disappears_reload_refused_old_serves(ctx):
    """The partner's CRL file is deleted, then mtlsd is told to reload
    (SIGHUP). The reload is refused naming the file; the running
    generation, with the CRL it loaded, keeps serving: valid clients pass
    and the revoked one is still refused."""
    crl = os.path.join(ctx.dir, "crls.pem")
    shutil.copy(ctx.fx.path("pki", "crls.pem"), crl)
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr, crl=crl))
    os.unlink(crl)
    mtlsd.signal(signal.SIGHUP)
    line = mtlsd.proc.wait_line(r"reload \(SIGHUP\) refused.*")
    assert crl in line.group(0) or crl in mtlsd.log(), \
        "the refused reload does not name %s:\n%s" % (crl, mtlsd.log()[-2000:])
    valid_client_works(ctx, mtlsd, backend, audit_n=1, conn=1)
    r = peers.s_client(ctx, mtlsd.port, "client-revoked", send=b"revoked\n")
    assert b"revoked\n" not in r.stdout, r
    line = mtlsd.wait_audit(2)
    assert line.get("outcome") == "revoked", line
    figure("crl_disappears", reload="refused", valid="served", revoked="still refused")


@case("reload_during_shutdown_exits_cleanly")
def reload_during_shutdown_exits_cleanly(ctx):
    """SIGTERM with a client connected, then SIGHUPs while mtlsd drains:
    no crash, no reload that resurrects listening, exit 0 within the drain
    timeout, and the connected client is closed, not abandoned."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr), extra_flags=["--drain-timeout", "3s"])
    c = peers.TlsClient(ctx, mtlsd.port, "client-ec")
    c.exchange(b"before\n", 7, lambda d: None)
    mtlsd.signal(signal.SIGTERM)
    for _ in range(5):
        mtlsd.signal(signal.SIGHUP)
        time.sleep(0.05)
    code = mtlsd.wait_exit(timeout=30)
    how = ends_closed(c)
    figure("reload_during_shutdown", exit_code=code, client=how)
    assert code == 0, "mtlsd exited %s:\n%s" % (code, mtlsd.log()[-2000:])


TRANSFERS = 1000
HALF = 16 * 1024


@case("sigterm_1000_transfers_none_truncated")
def sigterm_1000_transfers_none_truncated(ctx):
    """1,000 clients are mid-transfer (each has sent and got back half of
    32 KiB through the echo backend) when mtlsd gets SIGTERM. Each then
    sends its second half. Every one must either get all its bytes back
    or see its connection closed (close_notify, FIN or RST) within the
    drain timeout: none is left hanging with a silently truncated stream.
    mtlsd exits 0."""
    raise_nofile(4 * TRANSFERS + 1024)
    backend = ctx.backend()
    drain = 10
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr), extra_flags=[
        "--drain-timeout", "%ds" % drain, "--max-connections", "4000", "--log-level", "info"])
    rss_before = rss_kib(mtlsd.proc.proc.pid)
    clients = []
    for i in range(TRANSFERS):
        c = peers.TlsClient(ctx, mtlsd.port, "client-ec", timeout=60)
        got = bytearray()
        c.exchange(os.urandom(HALF), HALF, got.extend)
        assert len(got) == HALF, "client %d: %d of %d bytes before SIGTERM" % (i, len(got), HALF)
        clients.append(c)
    rss_loaded = rss_kib(mtlsd.proc.proc.pid)
    t0 = time.monotonic()
    mtlsd.signal(signal.SIGTERM)
    complete, closed, hung = 0, {}, 0

    def ended(how):
        key = how.split(":")[0]
        closed[key] = closed.get(key, 0) + 1

    # Phase 1: every client sends its second half and reads it back.
    for c in clients:
        c.deadline = time.monotonic() + 5
        got = bytearray()
        try:
            if c.exchange(os.urandom(HALF), HALF, got.extend) >= HALF:
                complete += 1
            else:
                c.ended = True
                ended("close_notify")
        except AssertionError:
            pass  # still open, echo pending: phase 2 decides
        except (peers.TlsError, ssl.SSLError, ConnectionError) as e:
            c.ended = True
            ended(type(e).__name__)
    # Phase 2: each connection still open must be closed by mtlsd by the
    # end of the drain (plus slack for a loaded machine), not left hanging.
    for c in clients:
        if not getattr(c, "ended", False):
            try:
                ends_closed(c, limit=max(1, t0 + drain + 20 - time.monotonic()))
            except AssertionError:
                hung += 1
        c.close()
    code = mtlsd.wait_exit(timeout=drain + 30)
    took = time.monotonic() - t0
    figure("sigterm_1000", transfers=TRANSFERS, completed=complete,
           closed_before_complete=sum(closed.values()), closed_how=closed, hung=hung, exit_code=code,
           exit_after_s="%.1f" % took, rss_kib_before=rss_before, rss_kib_loaded=rss_loaded)
    assert hung == 0, "%d transfers hung without a close" % hung
    assert complete + sum(closed.values()) + hung == TRANSFERS, (complete, closed, hung)
    assert code == 0, "mtlsd exited %s" % code
