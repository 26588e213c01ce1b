"""The server side as a client meets it: which certificate it presents,
session resumption, IPv6, and a clean shutdown that drains."""

import os
import re
import signal
import socket
import subprocess

from harness import Skip, case, wait_until
from daemon import Config, Mtlsd, standard_config
from expect import assert_audit_ok, assert_echoed, assert_identity, valid_client_works
import peers

RSA_SIGALGS = "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512"
ECDSA_SIGALGS = "ecdsa_secp256r1_sha256"


def dual_cert_config(ctx, backend_addr):
    """An ECDSA and an RSA server certificate (the RSA one from pki-rsa/)."""
    c = Config().server_cert(ctx.fx).server_cert(ctx.fx, name="rsa", leaf="server-rsa")
    c.sections += standard_config(ctx, backend_addr).sections[1:]
    return c


def served_by(ctx, leaf, sigalgs, server_ca, server_algs):
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, dual_cert_config(ctx, backend.addr))
    probe = b"which certificate?\n"
    # The client trusts only server_ca: the handshake verifies only if
    # mtlsd picked the certificate that root issued.
    r = peers.s_client(ctx, mtlsd.port, leaf, send=probe, expect=probe,
                       extra=["-sigalgs", sigalgs], server_ca=server_ca)
    assert_echoed(r, probe)
    # The PROXY header says which of the two certificates this client got.
    assert_identity(ctx, backend.identity(1), leaf, "partner", server_algs=server_algs)


@case("server_cert_rsa_for_rsa_only_client")
def server_cert_rsa_for_rsa_only_client(ctx):
    # server-rsa is RSA-2048 signed by pki-rsa's RSA-3072 issuing CA.
    served_by(ctx, "client-rsa", RSA_SIGALGS, ctx.fx.path("pki-rsa", "root", "ca.crt"),
              ("sha256WithRSAEncryption", "RSA2048"))


@case("server_cert_ecdsa_for_ecdsa_only_client")
def server_cert_ecdsa_for_ecdsa_only_client(ctx):
    served_by(ctx, "client-ec", ECDSA_SIGALGS, ctx.fx.path("pki", "root", "ca.crt"),
              ("ecdsa-with-SHA256", "EC256"))


def session_from(ctx, mtlsd, sess):
    """A full handshake that leaves its session ticket in sess."""
    probe = b"first, full handshake\n"
    r = peers.s_client(ctx, mtlsd.port, "client-ec", send=probe, expect=probe,
                       extra=["-sess_out", sess])
    assert_echoed(r, probe)
    wait_until("a session ticket in " + sess, lambda: os.path.getsize(sess) > 0
               if os.path.exists(sess) else False)
    # 0-RTT data is replayable and would reach the backend before the
    # client's Finished: mtlsd's tickets must never allow it.
    text = subprocess.run(["openssl", "sess_id", "-in", sess, "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert re.search(r"Max Early Data: 0$", text, re.M), "a ticket allows early data:\n" + text


def resume(ctx, mtlsd, sess):
    probe = b"second, with the ticket\n"
    r = peers.s_client(ctx, mtlsd.port, "client-ec", send=probe, expect=probe,
                       extra=["-sess_in", sess])
    assert_echoed(r, probe)


@case("resumption_keeps_identity")
def resumption_keeps_identity(ctx):
    """A resumed session skips the chain check; the audit line says so, and
    the backend is still told exactly who the client is."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr))
    sess = os.path.join(ctx.dir, "session.pem")
    session_from(ctx, mtlsd, sess)
    resume(ctx, mtlsd, sess)
    first, second = mtlsd.wait_audit(1), mtlsd.wait_audit(2)
    assert first.get("resumed") is False, first
    assert second.get("resumed") is True, "the ticket was not used: %r" % second
    assert_audit_ok(ctx, second, "client-ec", "partner")
    assert_identity(ctx, backend.identity(1), "client-ec", "partner")
    assert_identity(ctx, backend.identity(2), "client-ec", "partner", resumed=True)


@case("resumption_other_instance_full_handshake")
def resumption_other_instance_full_handshake(ctx):
    """The twin: another mtlsd (its own ticket keys) does not resume a
    ticket it did not issue; it verifies the client in full."""
    backend = ctx.backend()
    first = Mtlsd(ctx, standard_config(ctx, backend.addr), name="mtlsd-a")
    other = Mtlsd(ctx, standard_config(ctx, backend.addr), name="mtlsd-b")
    sess = os.path.join(ctx.dir, "session.pem")
    session_from(ctx, first, sess)
    resume(ctx, other, sess)
    line = other.wait_audit(1)
    assert line.get("resumed") is False, "a foreign ticket was accepted: %r" % line
    assert_audit_ok(ctx, line, "client-ec", "partner")


@case("listen_ipv6")
def listen_ipv6(ctx):
    """A listener on [::1]: the PROXY header says TCP6 with the client's
    IPv6 address."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError as e:
        raise Skip("no IPv6 loopback here: %s" % e)
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr), host="::1")
    probe = b"over IPv6\n"
    r = peers.s_client(ctx, mtlsd.port, "client-ec", send=probe, expect=probe, host="::1")
    assert_echoed(r, probe)
    header = backend.identity(1)
    assert header.get("family") == "TCP6", header
    assert (header.get("src_addr"), header.get("dst_addr"), header.get("dst_port")) == \
        ("::1", "::1", mtlsd.port), header
    assert_identity(ctx, header, "client-ec", "partner")


@case("sigterm_drains_then_exits_zero")
def sigterm_drains_then_exits_zero(ctx):
    """SIGTERM: a connection already relaying keeps working until its client
    is done, then mtlsd exits 0."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr))
    client = peers.TlsClient(ctx, mtlsd.port, "client-ec")
    try:
        got = bytearray()
        client.exchange(b"before SIGTERM\n", 15, got.extend)
        mtlsd.signal(signal.SIGTERM)
        mtlsd.proc.wait_line(r"draining")
        more = bytearray()
        client.exchange(b"while draining\n", 15, more.extend)
        assert bytes(more) == b"while draining\n", more
        client.shutdown_write()
        client.recv_until_close(more.extend)
    finally:
        client.close()
    rc = mtlsd.wait_exit()
    assert rc == 0, "mtlsd exited %d after a drain:\n%s" % (rc, mtlsd.log())


@case("sigterm_idle_exits_zero")
def sigterm_idle_exits_zero(ctx):
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr))
    valid_client_works(ctx, mtlsd, backend, audit_n=1, conn=1)
    mtlsd.signal(signal.SIGTERM)
    rc = mtlsd.wait_exit()
    assert rc == 0, "mtlsd exited %d on SIGTERM:\n%s" % (rc, mtlsd.log())
