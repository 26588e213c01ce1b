"""Valid clients: bytes relayed both ways, and the backend told exactly who
the client is (PROXY v2 CN, partner, serial, SPIFFE ID), through three TLS
stacks. The rejecting twins of these are in cases_reject.py."""

import json

from harness import case
from daemon import Mtlsd, standard_config, two_partner_config
from expect import (assert_audit_ok, assert_audit_rejected, assert_echoed, assert_identity,
                    assert_not_relayed, pp2_view, valid_client_works)
import peers


def valid_via_s_client(ctx, leaf):
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr))
    probe = b"hello through mtlsd from %s\n" % leaf.encode()
    r = peers.s_client(ctx, mtlsd.port, leaf, send=probe, expect=probe)
    assert_echoed(r, probe)
    assert_audit_ok(ctx, mtlsd.wait_audit(1), leaf, "partner")
    assert_identity(ctx, backend.identity(1), leaf, "partner")
    assert backend.connections() == 1, backend.events()


@case("valid_ec_openssl")
def valid_ec_openssl(ctx):
    valid_via_s_client(ctx, "client-ec")


@case("valid_rsa2048_openssl")
def valid_rsa2048_openssl(ctx):
    valid_via_s_client(ctx, "client-rsa")


def valid_via_curl(ctx, leaf):
    backend = ctx.backend(mode="http-ok")
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr))
    rc, body, err = peers.curl(ctx, mtlsd.port, leaf, path="/whoami")
    assert rc == 0, "curl failed (rc %d): %s\nmtlsd log:\n%s" % (rc, err, mtlsd.log())
    seen = json.loads(body)
    assert seen["request_line"] == "GET /whoami HTTP/1.1", seen
    assert_identity(ctx, seen["proxy"], leaf, "partner")
    assert_audit_ok(ctx, mtlsd.wait_audit(1), leaf, "partner")
    assert backend.connections() == 1, backend.events()


@case("valid_tls12_openssl")
def valid_tls12_openssl(ctx):
    """TLS 1.2 (certificate in the handshake, before Finished) as well as
    1.3; the identity is the same."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr))
    probe = b"hello over TLS 1.2\n"
    r = peers.s_client(ctx, mtlsd.port, "client-ec", send=probe, expect=probe, extra=["-tls1_2"])
    assert_echoed(r, probe)
    line = mtlsd.wait_audit(1)
    assert_audit_ok(ctx, line, "client-ec", "partner")
    assert line.get("tls_version") == "TLSv1.2", line
    assert_identity(ctx, backend.identity(1), "client-ec", "partner")


@case("valid_ec_curl")
def valid_ec_curl(ctx):
    valid_via_curl(ctx, "client-ec")


@case("valid_rsa2048_curl")
def valid_rsa2048_curl(ctx):
    valid_via_curl(ctx, "client-rsa")


@case("reject_no_client_cert_curl")
def reject_no_client_cert_curl(ctx):
    """The curl twin: without a certificate curl gets no answer, and the
    backend no connection."""
    backend = ctx.backend(mode="http-ok")
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr))
    rc, body, err = peers.curl(ctx, mtlsd.port, None)
    assert rc != 0 and not body, "curl without a certificate got %r (rc %d)" % (body, rc)
    assert_audit_rejected(ctx, mtlsd.wait_audit(1), "no_certificate")
    valid_via_curl_again(ctx, mtlsd, backend, audit_n=2)


def valid_via_curl_again(ctx, mtlsd, backend, audit_n):
    rc, body, err = peers.curl(ctx, mtlsd.port, "client-ec")
    assert rc == 0, "curl failed (rc %d): %s" % (rc, err)
    assert_audit_ok(ctx, mtlsd.wait_audit(audit_n), "client-ec", "partner")
    assert backend.connections() == 1, backend.events()


@case("valid_ec_gnutls")
def valid_ec_gnutls(ctx):
    """GnuTLS as the client: mtlsd must not only interoperate with OpenSSL."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr))
    probe = b"hello from gnutls-cli\n"
    r = peers.gnutls_cli(ctx, mtlsd.port, "client-ec", send=probe, expect=probe)
    assert_echoed(r, probe)
    assert_audit_ok(ctx, mtlsd.wait_audit(1), "client-ec", "partner")
    assert_identity(ctx, backend.identity(1), "client-ec", "partner")


@case("valid_rsa2048_gnutls")
def valid_rsa2048_gnutls(ctx):
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr))
    probe = b"hello from gnutls-cli (RSA)\n"
    r = peers.gnutls_cli(ctx, mtlsd.port, "client-rsa", send=probe, expect=probe)
    assert_echoed(r, probe)
    assert_identity(ctx, backend.identity(1), "client-rsa", "partner")


@case("reject_unknown_ca_gnutls")
def reject_unknown_ca_gnutls(ctx):
    """The GnuTLS twin: a client of a CA nobody trusts is refused."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr))
    probe = b"from an unknown CA via gnutls\n"
    r = peers.gnutls_cli(ctx, mtlsd.port, "client-unknownca", send=probe, expect=None)
    assert r.returncode is not None, "mtlsd kept a rejected connection open: %r" % r
    assert_not_relayed(r, probe)
    assert_audit_rejected(ctx, mtlsd.wait_audit(1), "unknown_ca", "client-unknownca")
    valid_client_works(ctx, mtlsd, backend, audit_n=2, conn=1)
    assert backend.connections() == 1, backend.events()


@case("valid_flags_only")
def valid_flags_only(ctx):
    """The single-partner case needs no config file: the flags make partner
    "default"."""
    fx = ctx.fx
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, None, extra_flags=[
        "--cert", fx.path("server", "chain.pem"), "--key", fx.path("server", "key.pem"),
        "--client-ca", fx.path("pki", "ca-bundle.pem"), "--crl", fx.path("pki", "crls.pem"),
        "--backend", backend.addr, "--proxy-protocol", "v2"])
    valid_client_works(ctx, mtlsd, backend, audit_n=1, conn=1, partner="default")


@case("proxy_v2_addresses")
def proxy_v2_addresses(ctx):
    """The PROXY header names the client's real address and port and the
    address it connected to."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr))
    client = peers.TlsClient(ctx, mtlsd.port, "client-ec")
    try:
        got = bytearray()
        client.exchange(b"x", 1, got.extend)
        ident = backend.identity(1)
    finally:
        client.close()
    view = pp2_view(ident)
    assert view["src"] == ("127.0.0.1", client.local_port), view
    assert view["dst"] == ("127.0.0.1", mtlsd.port), view


@case("two_partners_partner2")
def two_partners_partner2(ctx):
    """A client of partner2 is attributed to partner2 and goes to partner2's
    backend; partner1's backend sees nothing of it."""
    b1, b2 = ctx.backend("backend1"), ctx.backend("backend2")
    mtlsd = Mtlsd(ctx, two_partner_config(ctx, b1.addr, b2.addr))
    probe = b"partner2 says hi\n"
    r = peers.s_client(ctx, mtlsd.port, "client-partner2", send=probe, expect=probe)
    assert_echoed(r, probe)
    assert_audit_ok(ctx, mtlsd.wait_audit(1), "client-partner2", "partner2")
    assert_identity(ctx, b2.identity(1), "client-partner2", "partner2")
    assert b1.connections() == 0, b1.events()


@case("two_partners_partner1")
def two_partners_partner1(ctx):
    """The twin: with the same config a client of partner 1 goes to partner
    1's backend only (client-ec and client-partner2 share a serial, so only
    the issuer tells them apart)."""
    b1, b2 = ctx.backend("backend1"), ctx.backend("backend2")
    mtlsd = Mtlsd(ctx, two_partner_config(ctx, b1.addr, b2.addr))
    valid_client_works(ctx, mtlsd, b1, audit_n=1, conn=1)
    assert b2.connections() == 0, b2.events()


def authority_seen(ctx, sni_flags):
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr))
    probe = b"which name did I ask for?\n"
    r = peers.s_client(ctx, mtlsd.port, "client-ec", send=probe, expect=probe, extra=sni_flags)
    assert_echoed(r, probe)
    return backend.identity(1).get("authority")


@case("proxy_v2_authority_is_sni")
def proxy_v2_authority_is_sni(ctx):
    """The server name the client asked for reaches the backend (PROXY
    AUTHORITY TLV), so one mtlsd can front several virtual hosts."""
    got = authority_seen(ctx, ["-servername", "billing.api.example"])
    assert got == "billing.api.example", got


@case("proxy_v2_no_authority_without_sni")
def proxy_v2_no_authority_without_sni(ctx):
    got = authority_seen(ctx, ["-noservername"])
    assert got is None, "AUTHORITY %r sent for a client that gave no SNI" % got
