"""Per-partner options and process limits as an operator sets them: what
reaches the backend (PROXY off, the client certificate, a unix socket),
CRL availability, idle and connection limits."""

import hashlib
import re
import subprocess
import time

from harness import case, read_text, wait_until
from daemon import Mtlsd, standard_config
from expect import (assert_audit_ok, assert_audit_rejected, assert_echoed, assert_identity,
                    assert_not_relayed, valid_client_works)
import peers


@case("backend_unix_socket")
def backend_unix_socket(ctx):
    backend = ctx.backend(unix=True)
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr))
    valid_client_works(ctx, mtlsd, backend, audit_n=1, conn=1)


@case("proxy_protocol_off_relays_raw_bytes")
def proxy_protocol_off_relays_raw_bytes(ctx):
    """proxy_protocol = off: the backend's first byte is the client's."""
    backend = ctx.backend(proxy="none")
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr, proxy_protocol="off"))
    probe = b"no header before me\n"
    r = peers.s_client(ctx, mtlsd.port, "client-ec", send=probe, expect=probe)
    assert_echoed(r, probe)
    # The echo proves the relay; the backend's record of everything it
    # received (written when s_client's exit closed the connection) proves
    # nothing came before the client's bytes.
    closed = backend.closed(1)
    assert closed["sha256_in"] == hashlib.sha256(probe).hexdigest(), closed


@case("proxy_send_cert_der")
def proxy_send_cert_der(ctx):
    """proxy_send_cert = yes: the SSL TLV carries the client certificate,
    byte for byte (the other tests check it is absent by default)."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr, proxy_send_cert="yes"))
    probe = b"with my certificate\n"
    r = peers.s_client(ctx, mtlsd.port, "client-ec", send=probe, expect=probe)
    assert_echoed(r, probe)
    assert_identity(ctx, backend.identity(1), "client-ec", "partner", send_cert=True)


def root_crl_only(ctx):
    """pki/'s root CRL alone: the issuing and intermediate CAs have none."""
    pems = re.findall(r"-----BEGIN X509 CRL-----.*?-----END X509 CRL-----",
                      read_text(ctx.fx.path("pki", "crls.pem")), re.S)
    root_name = openssl_name("x509", "-subject", ctx.fx.path("pki", "root", "ca.crt"))
    for i, pem in enumerate(pems):
        path = ctx.write("crl-%d.pem" % i, pem + "\n", 0o644)
        if openssl_name("crl", "-issuer", path) == root_name:
            return path
    raise AssertionError("no CRL of the root in pki/crls.pem")


def openssl_name(kind, which, path):
    """`openssl x509 -subject` / `openssl crl -issuer` of a file, as text."""
    out = subprocess.run(["openssl", kind, "-in", path, "-noout", which],
                         capture_output=True, text=True, check=True).stdout
    return out.split("=", 1)[1].strip()


@case("reject_crl_unavailable")
def reject_crl_unavailable(ctx):
    """CRLs are configured but the issuing CA's is missing: with the default
    crl_missing = fail the client is refused (crl_unavailable)."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr, crl=root_crl_only(ctx)))
    probe = b"revocation status unknown\n"
    r = peers.s_client(ctx, mtlsd.port, "client-ec", send=probe, expect=None)
    assert_not_relayed(r, probe)
    assert_audit_rejected(ctx, mtlsd.wait_audit(1), "crl_unavailable", "client-ec")
    assert backend.connections() == 0, backend.events()


@case("crl_missing_allow_accepts")
def crl_missing_allow_accepts(ctx):
    """The twin: crl_missing = allow accepts the same client."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr, crl=root_crl_only(ctx),
                                       crl_missing="allow"))
    valid_client_works(ctx, mtlsd, backend, audit_n=1, conn=1)


@case("idle_timeout_closes_quiet_connection")
def idle_timeout_closes_quiet_connection(ctx):
    """An established connection with no traffic is closed at the idle
    timeout (1s here), on both sides."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr), extra_flags=["--idle-timeout", "1s"])
    client = peers.TlsClient(ctx, mtlsd.port, "client-ec")
    try:
        got = bytearray()
        client.exchange(b"then silence\n", 13, got.extend)
        start = time.monotonic()
        # Like nginx, mtlsd closes a timed-out connection without a
        # close_notify: a bare EOF is the expected end here.
        client.recv_until_close(got.extend, eof_ok=True)
        waited = time.monotonic() - start
    finally:
        client.close()
    assert waited >= 0.5, "closed after %.2fs, before the idle timeout" % waited
    backend.closed(1)
    mtlsd.check_alive()


@case("max_connections_refuses_beyond_limit")
def max_connections_refuses_beyond_limit(ctx):
    """--max-connections 1: while one client is connected a second is
    closed without reaching the backend; once the first leaves, clients are
    served again."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr),
                  extra_flags=["--max-connections", "1", "--max-handshakes", "1"])
    holder = peers.TlsClient(ctx, mtlsd.port, "client-ec")
    try:
        got = bytearray()
        holder.exchange(b"holding the only slot\n", 22, got.extend)
        probe = b"one too many\n"
        r = peers.s_client(ctx, mtlsd.port, "client-ec", send=probe, expect=None)
        assert_not_relayed(r, probe)
        assert backend.connections() == 1, backend.events()
        holder.shutdown_write()
        holder.recv_until_close(got.extend)
    finally:
        holder.close()
    backend.closed(1)
    # The slot is free once mtlsd has closed the first connection: poll
    # with real clients until one is served.
    probe = b"the slot is free again\n"
    wait_until("a client to be served after the first left",
               lambda: peers.s_client(ctx, mtlsd.port, "client-ec", send=probe,
                                      expect=probe).matched)
    assert_audit_ok(ctx, mtlsd.audit()[-1], "client-ec", "partner")


def policy_case(ctx, leaf, allowed, **policy):
    """The standard partner with policy as its allow-list: leaf is served
    when allowed, refused as policy_denied otherwise."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr, **policy))
    if allowed:
        valid_client_works(ctx, mtlsd, backend, audit_n=1, conn=1, leaf=leaf)
        return
    probe = b"not on the list\n"
    r = peers.s_client(ctx, mtlsd.port, leaf, send=probe, expect=None)
    assert_not_relayed(r, probe)
    assert_audit_rejected(ctx, mtlsd.wait_audit(1), "policy_denied", leaf)
    assert backend.connections() == 0, backend.events()


@case("allow_cn_accepts_listed")
def allow_cn_accepts_listed(ctx):
    policy_case(ctx, "client-ec", True, allow_cn="client-ec")


@case("allow_cn_refuses_other")
def allow_cn_refuses_other(ctx):
    policy_case(ctx, "client-rsa", False, allow_cn="client-ec")


@case("allow_dns_accepts_match")
def allow_dns_accepts_match(ctx):
    """'*' matches one DNS label: app1.partner.example."""
    policy_case(ctx, "client-ec", True, allow_dns="*.partner.example")


@case("allow_dns_refuses_deeper_name")
def allow_dns_refuses_deeper_name(ctx):
    """client-badsan's app9.dev.partner.example is two labels deep."""
    policy_case(ctx, "client-badsan", False, allow_dns="*.partner.example")
