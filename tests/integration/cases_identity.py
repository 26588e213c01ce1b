"""The identity a backend is told is the identity that was checked (issue
14): a certificate with two SPIFFE IDs or two CNs is refused with the rule
named in its audit line, its single-identity twins are accepted and the
backend's decoded PROXY header names exactly the checked names; with
multiple_identities = allow the backend is told the matched SPIFFE ID, not
the first. Serials RFC 5280 does not allow (zero, negative) are refused,
and a client certificate too big for one buffer still gets its whole
PROXY header, up to the protocol's 64 KiB. Certificates are made at test
time (certgen.py)."""

import os

from harness import case, read_text, wait_until
from daemon import Mtlsd, standard_config
from expect import (assert_echoed, assert_not_relayed, cert_facts, normalize_serial, pp2_view)
import certgen
import peers

ACME_PROD = "spiffe://acme.example/prod/*"
ADMIN = "spiffe://acme.example/admin"
APP1 = "spiffe://acme.example/prod/app1"


def refused(ctx, mtlsd, leaf, n, outcome="policy_denied"):
    """leaf is refused: the connection closes, nothing comes back, and the
    n-th audit line says outcome and names the certificate. Returns it."""
    probe = b"must never reach the backend\n"
    r = peers.s_client(ctx, mtlsd.port, leaf, send=probe, expect=None)
    assert r.returncode is not None, "mtlsd kept a refused connection open: %r" % r
    assert_not_relayed(r, probe)
    line = mtlsd.wait_audit(n)
    assert line.get("outcome") == outcome, ("expected %s" % outcome, line)
    facts = cert_facts(os.path.join(leaf, "cert.pem"))
    assert normalize_serial(line.get("serial", "")) == normalize_serial(facts["serial"]), (facts, line)
    return line


def accepted(ctx, mtlsd, backend, leaf, n, conn):
    """leaf is relayed: its bytes come back, the n-th audit line is ok, and
    the backend's connection number conn carried a PROXY header. Returns
    (audit line, the header's view)."""
    probe = b"hello from %s\n" % os.path.basename(leaf).encode()
    assert_echoed(peers.s_client(ctx, mtlsd.port, leaf, send=probe, expect=probe), probe)
    line = mtlsd.wait_audit(n)
    assert line.get("outcome") == "ok", line
    return line, pp2_view(backend.identity(conn))


def assert_identity_is(line, view, spiffe, cn):
    """The backend was told exactly (spiffe, cn), and the audit line says
    the same: what the backend is told is what the operator reads."""
    assert (view["spiffe"], view["cn"]) == (spiffe, cn), ("PROXY identity", spiffe, cn, view)
    assert (line.get("spiffe_id"), line.get("cn")) == (spiffe, cn), ("audit identity", line)


@case("identity_two_spiffe_ids_two_cns_refused")
def identity_two_spiffe_ids_two_cns_refused(ctx):
    """The issue's certificate: subject O=Acme/CN=admin/CN=svc-1, URIs
    .../admin and .../prod/app1, against allow_uri = .../prod/*. Before the
    fix it passed and the backend was told CN admin and .../admin. Its twin
    with one URI and one CN passes and names exactly those."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr, allow_uri=ACME_PROD))
    both = certgen.issue_client(ctx, "both", "/O=Acme/CN=admin/CN=svc-1", uris=(ADMIN, APP1))
    line = refused(ctx, mtlsd, both, 1)
    assert "2 SPIFFE IDs" in line["reason"] and "multiple_identities = refuse" in line["reason"], line
    assert "spiffe_id" not in line and "cn" not in line, ("a refused client named as one", line)
    assert line.get("sans") == ["URI:" + ADMIN, "URI:" + APP1], line
    assert line.get("subject") == "CN=svc-1,CN=admin,O=Acme", line

    twin = certgen.issue_client(ctx, "twin", "/O=Acme/CN=svc-1", uris=(APP1,))
    line, view = accepted(ctx, mtlsd, backend, twin, 2, conn=1)
    assert_identity_is(line, view, APP1, "svc-1")
    assert backend.connections() == 1, ("the refused client reached the backend", backend.events())


@case("identity_two_cns_refused")
def identity_two_cns_refused(ctx):
    """One SPIFFE ID that matches, but two CNs: which one would the backend
    be told? Refused, the rule named; the one-CN twin passes."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr, allow_uri=ACME_PROD))
    two = certgen.issue_client(ctx, "two-cns", "/O=Acme/CN=admin/CN=svc-1", uris=(APP1,))
    line = refused(ctx, mtlsd, two, 1)
    assert "2 CNs" in line["reason"] and "multiple_identities = refuse" in line["reason"], line
    one = certgen.issue_client(ctx, "one-cn", "/O=Acme/CN=admin", uris=(APP1,))
    line, view = accepted(ctx, mtlsd, backend, one, 2, conn=1)
    assert_identity_is(line, view, APP1, "admin")
    assert backend.connections() == 1, backend.events()


@case("identity_two_spiffe_ids_refused")
def identity_two_spiffe_ids_refused(ctx):
    """One CN, two SPIFFE IDs of which the second matches: refused (an
    X.509-SVID has exactly one); the one-URI twin passes."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr, allow_uri=ACME_PROD))
    two = certgen.issue_client(ctx, "two-uris", "/O=Acme/CN=svc-1", uris=(ADMIN, APP1))
    line = refused(ctx, mtlsd, two, 1)
    assert "2 SPIFFE IDs" in line["reason"], line
    one = certgen.issue_client(ctx, "one-uri", "/O=Acme/CN=svc-1", uris=(APP1,))
    line, view = accepted(ctx, mtlsd, backend, one, 2, conn=1)
    assert_identity_is(line, view, APP1, "svc-1")
    assert backend.connections() == 1, backend.events()


@case("identity_multiple_allowed_reports_matched")
def identity_multiple_allowed_reports_matched(ctx):
    """multiple_identities = allow: the issue's certificate passes, and the
    backend is told the SPIFFE ID that matched (.../prod/app1), not the
    first (.../admin); no CN, since nothing chose between admin and svc-1.
    With allow_cn = svc-*, the CN that matched. Twin: the same setting
    refuses a certificate none of whose names match."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr, allow_uri=ACME_PROD,
                                       multiple_identities="allow"))
    both = certgen.issue_client(ctx, "both", "/O=Acme/CN=admin/CN=svc-1", uris=(ADMIN, APP1))
    line, view = accepted(ctx, mtlsd, backend, both, 1, conn=1)
    assert_identity_is(line, view, APP1, None)
    neither = certgen.issue_client(ctx, "neither", "/O=Acme/CN=admin/CN=svc-1",
                                   uris=(ADMIN, "spiffe://acme.example/dev/app1"))
    refused(ctx, mtlsd, neither, 2)

    backend2 = ctx.backend("backend-cn")
    by_cn = Mtlsd(ctx, standard_config(ctx, backend2.addr, allow_uri=ACME_PROD, allow_cn="svc-*",
                                       multiple_identities="allow"), name="mtlsd-cn")
    line, view = accepted(ctx, by_cn, backend2, both, 1, conn=1)
    assert_identity_is(line, view, APP1, "svc-1")
    assert backend.connections() == 1, backend.events()


@case("identity_refused_kind_not_reported")
def identity_refused_kind_not_reported(ctx):
    """allow_uri and allow_cn: a client admitted by its CN whose SPIFFE ID
    allow_uri refused is relayed without a SPIFFE ID (before: the refused
    one was sent). Twin: when both match, both are told."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr, allow_uri=ACME_PROD, allow_cn="client-*"))
    dev = certgen.issue_client(ctx, "dev", "/O=Acme/CN=client-a",
                               uris=("spiffe://acme.example/dev/app9",))
    line, view = accepted(ctx, mtlsd, backend, dev, 1, conn=1)
    assert_identity_is(line, view, None, "client-a")
    prod = certgen.issue_client(ctx, "prod", "/O=Acme/CN=client-b", uris=(APP1,))
    line, view = accepted(ctx, mtlsd, backend, prod, 2, conn=2)
    assert_identity_is(line, view, APP1, "client-b")


# ---- serials ----------------------------------------------------------------

def check_serial_refused(ctx, serial, audit_serial, why):
    """A serial RFC 5280 does not allow is policy_denied with the reason,
    and printed with its sign: the audit's serial is the DER content. The
    twin with the same digits, positive, passes with another serial."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr, allow_uri=ACME_PROD))
    bad = certgen.issue_client(ctx, "bad-serial", "/O=Acme/CN=svc-1", uris=(APP1,), serial=serial)
    probe = b"must never reach the backend\n"
    r = peers.s_client(ctx, mtlsd.port, bad, send=probe, expect=None)
    assert_not_relayed(r, probe)
    line = mtlsd.wait_audit(1)
    assert line.get("outcome") == "policy_denied" and why in line.get("reason", ""), line
    assert line.get("serial") == audit_serial, ("the serial printed without its sign", line)
    good = certgen.issue_client(ctx, "good-serial", "/O=Acme/CN=svc-1", uris=(APP1,),
                                serial=serial.lstrip("-") if serial != "0" else "1")
    line, view = accepted(ctx, mtlsd, backend, good, 2, conn=1)
    assert line.get("serial") != audit_serial and view["serial"] == line.get("serial"), (line, view)
    assert backend.connections() == 1, backend.events()


@case("serial_zero_refused")
def serial_zero_refused(ctx):
    check_serial_refused(ctx, "0", "00", "serial number is zero")


@case("serial_negative_refused")
def serial_negative_refused(ctx):
    """-0x2003: before, accepted and printed '20:03', the positive 0x2003's
    spelling. Its DER content is DF:FD."""
    check_serial_refused(ctx, "-8195", "DF:FD", "serial number is negative")


# ---- PROXY header size ---------------------------------------------------------

def big_client(ctx, name, n_dns):
    dns = ["host-%05d.a-rather-long-service-name.partner.example" % i for i in range(n_dns)]
    return certgen.issue_client(ctx, name, "/O=Acme/CN=svc-big", uris=(APP1,), dns=dns)


@case("proxy_header_large_cert_whole")
def proxy_header_large_cert_whole(ctx):
    """proxy_send_cert with a ~40 KiB client certificate (many SANs): the
    PROXY header is sized to its content, not to one 20 KiB buffer (before:
    closed as no_memory), and the backend decodes the certificate byte for
    byte. Twin: the same client without proxy_send_cert, a small header."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr, allow_uri=ACME_PROD,
                                       proxy_send_cert="yes"))
    big = big_client(ctx, "big", 700)
    facts = cert_facts(os.path.join(big, "cert.pem"))
    assert 32768 < len(facts["der"]) // 2 < 60000, len(facts["der"]) // 2
    line, view = accepted(ctx, mtlsd, backend, big, 1, conn=1)
    assert view["cert_der"] == facts["der"], "the certificate in the PROXY header differs"
    assert_identity_is(line, view, APP1, "svc-big")

    backend2 = ctx.backend("backend-nocert")
    plain = Mtlsd(ctx, standard_config(ctx, backend2.addr, allow_uri=ACME_PROD), name="mtlsd-nocert")
    line, view = accepted(ctx, plain, backend2, big, 1, conn=1)
    assert view["cert_der"] is None and view["spiffe"] == APP1, view


@case("proxy_header_over_limit_closed")
def proxy_header_over_limit_closed(ctx):
    """A client certificate that cannot fit the PROXY v2 header (its length
    field is 16 bits: 65535 bytes after the fixed 16) with proxy_send_cert:
    the connection is closed before the backend is contacted, with its own
    close reason and an audit line saying why. The next client is served.
    Session tickets are off: OpenSSL cannot seal a ticket holding a client
    certificate that large (its length is 16 bits too) and fails such a
    handshake itself, before mtlsd gets to the PROXY header."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr, allow_uri=ACME_PROD,
                                       proxy_send_cert="yes").section("mtlsd", session_cache="off"))
    huge = big_client(ctx, "huge", 1300)
    assert certgen.der_len(os.path.join(huge, "cert.pem")) > 65535
    probe = b"must never reach the backend\n"
    r = peers.s_client(ctx, mtlsd.port, huge, send=probe, expect=None)
    assert r.returncode is not None and probe not in r.stdout, r
    assert mtlsd.wait_audit(1).get("outcome") == "ok", mtlsd.audit()
    events = wait_until("the proxy_header_too_large audit line",
                        lambda: mtlsd.audit_events("proxy_header_too_large"), alive=mtlsd.check_alive)
    assert len(events) == 1 and "65535" in events[0].get("reason", "") and \
        "proxy_send_cert" in events[0].get("reason", ""), (events, read_text(mtlsd.audit_path)[-2000:])
    assert "proxy_header_too_large" in mtlsd.log(), mtlsd.log()[-3000:]
    small = certgen.issue_client(ctx, "small", "/O=Acme/CN=svc-1", uris=(APP1,))
    accepted(ctx, mtlsd, backend, small, 2, conn=1)
    assert backend.connections() == 1, backend.events()
