"""What a resumed session may skip, and what it may not (issue 14): a
session never outlives the verification it was accepted with (a chain
certificate or a CRL that expired since, session_lifetime), and the
seed-style trust package (root and policy CA in `ca`, CRLs of every level
including the issuing CA that clients present) works as handed over.

The expiries here are real: certificates and CRLs made for the case with
the openssl CLI, valid for a few seconds; the case polls the clock until
they have passed, then resumes with the ticket of the first handshake."""

import os
import subprocess
import time

from harness import case, wait_until
from daemon import Config, Mtlsd, standard_config
from expect import assert_audit_ok, assert_audit_rejected, assert_echoed, assert_not_relayed
import minipki
import peers

SHORT = 25  # seconds a short-lived CA or CRL lives: room for start-up and two handshakes


def full(ctx, mtlsd, leaf, sess, extra=()):
    """A full handshake that leaves its session in sess."""
    probe = b"full handshake\n"
    r = peers.s_client(ctx, mtlsd.port, leaf, send=probe, expect=probe,
                       extra=["-sess_out", sess] + list(extra))
    assert_echoed(r, probe)
    wait_until("a session in " + sess, lambda: os.path.exists(sess) and os.path.getsize(sess) > 0)


def offer(ctx, mtlsd, leaf, sess, accepted, extra=()):
    """Offer the session of sess; accepted: whether the client must be
    served (else: closed, nothing relayed)."""
    probe = b"with the old session\n"
    r = peers.s_client(ctx, mtlsd.port, leaf, send=probe, expect=probe if accepted else None,
                       extra=["-sess_in", sess] + list(extra))
    if accepted:
        assert_echoed(r, probe)
    else:
        assert_not_relayed(r, probe)


def wait_past(what, when):
    """Poll the clock (never sleep for correctness) until `when` is 1 s past."""
    wait_until(what, lambda: time.time() > when + 1, timeout=when - time.time() + 60)


def short_lived_issuing_ca(ctx):
    """Root -> an issuing CA valid for SHORT seconds -> a client valid for a
    day: the chain expires long before its leaf. Returns (bundle, leaf dir,
    the CA's notAfter)."""
    root = minipki.self_signed(ctx, "root", "/O=short/CN=short Root CA")
    ca_key, ca_cert = minipki.issue(ctx, root, "issuing", "/O=short/CN=short Issuing CA", SHORT,
                                    is_ca=True)
    ca = minipki.Authority(ctx, "issuing", ca_key, ca_cert)
    key, cert = minipki.issue(ctx, ca, "client", "/O=short/CN=short-client", 86400,
                              uri="spiffe://short.example/prod/app")
    bundle = ctx.concat("short-bundle.pem", root.cert, ca_cert)
    return bundle, minipki.leaf_dir(ctx, "short-client", key, cert, ca_cert), minipki.not_after(ca_cert)


@case("resumption_refused_after_intermediate_expires")
def resumption_refused_after_intermediate_expires(ctx):
    """The issuing CA expires between the full handshake and the
    resumption: the ticket is not used, the full handshake refuses the
    client as expired (depth 1). The twin: resumed while the CA is valid.
    Before issue 14 only the leaf's dates were re-checked on resumption."""
    bundle, leaf, ca_expiry = short_lived_issuing_ca(ctx)
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, Config().server_cert(ctx.fx).partner("short", backend.addr, bundle))
    sess = os.path.join(ctx.dir, "session.pem")
    full(ctx, mtlsd, leaf, sess)
    offer(ctx, mtlsd, leaf, sess, accepted=True)
    assert mtlsd.wait_audit(2).get("resumed") is True, mtlsd.audit()
    wait_past("the issuing CA to expire", ca_expiry)
    offer(ctx, mtlsd, leaf, sess, accepted=False)
    line = mtlsd.wait_audit(3)
    assert line.get("resumed") is False, "resumed past the issuing CA's notAfter: %r" % line
    assert_audit_rejected(ctx, line, "expired", leaf)
    assert "depth 1" in line["reason"] and "short Issuing CA" in line["reason"], line
    assert backend.connections() == 2, "the refused client reached the backend"


@case("resumption_refused_after_crl_next_update")
def resumption_refused_after_crl_next_update(ctx):
    """With crl_expired = fail, a CRL the chain was checked against passes
    its nextUpdate: the session is not resumed, the full handshake refuses
    the client (crl_unavailable). The twin: resumed before it."""
    fx = ctx.fx
    issuing = minipki.Authority(ctx, "pki-issuing", fx.path("pki", "issuing", "ca.key"),
                                fx.path("pki", "issuing", "ca.crt"))
    crl = issuing.crl(os.path.join(ctx.dir, "issuing-short.crl.pem"), seconds=SHORT)
    crls = ctx.concat("crls-short.pem", fx.path("pki", "root", "crl.pem"),
                      fx.path("pki", "intermediate", "crl.pem"), crl)
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr, crl=crls, crl_expired="fail"))
    sess = os.path.join(ctx.dir, "session.pem")
    full(ctx, mtlsd, "client-ec", sess)
    offer(ctx, mtlsd, "client-ec", sess, accepted=True)
    assert mtlsd.wait_audit(2).get("resumed") is True, mtlsd.audit()
    wait_past("the issuing CA's CRL to pass its nextUpdate", minipki.next_update(crl))
    offer(ctx, mtlsd, "client-ec", sess, accepted=False)
    line = mtlsd.wait_audit(3)
    assert line.get("resumed") is False, "resumed past a CRL's nextUpdate: %r" % line
    assert_audit_rejected(ctx, line, "crl_unavailable", "client-ec")
    assert backend.connections() == 2, "the refused client reached the backend"


def lifetime_case(ctx, cache, tls):
    """session_lifetime = 5s: resumed at once, a full handshake (accepted)
    once 5 s have passed since the full verification."""
    backend = ctx.backend()
    config = standard_config(ctx, backend.addr).section("mtlsd", session_lifetime="5s",
                                                         session_cache=cache)
    mtlsd = Mtlsd(ctx, config)
    for i, version in enumerate(tls):
        sess = os.path.join(ctx.dir, "session-%s.pem" % version)
        full(ctx, mtlsd, "client-ec", sess, extra=["-" + version])
        verified = time.time()
        offer(ctx, mtlsd, "client-ec", sess, accepted=True, extra=["-" + version])
        assert mtlsd.wait_audit(3 * i + 2).get("resumed") is True, (version, mtlsd.audit())
        wait_past("session_lifetime to pass", verified + 5)
        offer(ctx, mtlsd, "client-ec", sess, accepted=True, extra=["-" + version])
        line = mtlsd.wait_audit(3 * i + 3)
        assert line.get("resumed") is False, "%s: resumed after session_lifetime: %r" % (version, line)
        assert_audit_ok(ctx, line, "client-ec", "partner")


@case("session_lifetime_ends_resumption")
def session_lifetime_ends_resumption(ctx):
    """Tickets (TLS 1.3 and 1.2): session_lifetime counts from the full
    verification; past it the client is verified in full, not refused."""
    lifetime_case(ctx, "tickets", ["tls1_3", "tls1_2"])


@case("session_lifetime_ends_stateful_resumption")
def session_lifetime_ends_stateful_resumption(ctx):
    """The stateful cache (no ticket callback sees it) obeys the same
    lifetime, TLS 1.3 and TLS 1.2 session IDs."""
    lifetime_case(ctx, "stateful", ["tls1_3", "tls1_2"])


# ---- the seed-style trust package (item 8) ---------------------------------

def trust_package_config(ctx, backend, crl):
    """Partner "partner" as its trust package hands it over: ca = root +
    policy (intermediate) CA; the issuing CA only reaches mtlsd in the
    clients' chains."""
    return standard_config(ctx, backend.addr, ca=ctx.fx.path("pki", "trust-package", "ca-bundle.pem"),
                           crl=crl)


def served(ctx, mtlsd, leaf, audit_n, outcome):
    probe = b"trust package\n"
    r = peers.s_client(ctx, mtlsd.port, leaf, send=probe, expect=probe if outcome == "ok" else None)
    line = mtlsd.wait_audit(audit_n)
    if outcome == "ok":
        assert_echoed(r, probe)
        assert_audit_ok(ctx, line, leaf, "partner")
    else:
        assert_not_relayed(r, probe)
        assert_audit_rejected(ctx, line, outcome, leaf)
    return line


@case("trust_package_issuing_crl_applies")
def trust_package_issuing_crl_applies(ctx):
    """The package's crls.pem holds the issuing CA's CRL although the
    issuing CA is not in ca: mtlsd loads it and applies it to the chains
    that carry that CA. client-revoked (on it) is refused as revoked, its
    twin client-ec is served. Before issue 14 the file was refused."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, trust_package_config(ctx, backend, ctx.fx.path("pki", "trust-package", "crls.pem")))
    served(ctx, mtlsd, "client-revoked", 1, "revoked")
    served(ctx, mtlsd, "client-ec", 2, "ok")
    assert backend.connections() == 1


def foreign_issuing_crl(ctx, revoke):
    """A CRL naming the issuing CA's exact name, signed by a key that is
    not the issuing CA's, revoking `revoke` (certificate files): newer
    than the real one, so OpenSSL would prefer it for that name."""
    impostor = minipki.self_signed(ctx, "impostor", "/O=partner/CN=partner Issuing CA")
    return impostor.crl(os.path.join(ctx.dir, "foreign-issuing.crl.pem"), revoked=revoke)


@case("trust_package_foreign_crl_never_applies")
def trust_package_foreign_crl_never_applies(ctx):
    """A CRL from a foreign CA that borrows the issuing CA's name, listing
    client-ec, and not client-revoked: beside the real CRL it revokes
    nothing (client-ec served) and un-revokes nothing (client-revoked
    refused); in place of the real CRL it counts as no CRL at all
    (crl_unavailable for both, never ok, never revoked)."""
    fx = ctx.fx
    foreign = foreign_issuing_crl(ctx, [fx.path("client-ec", "cert.pem")])
    backend = ctx.backend()
    both = ctx.concat("crls-with-foreign.pem", fx.path("pki", "trust-package", "crls.pem"), foreign)
    mtlsd = Mtlsd(ctx, trust_package_config(ctx, backend, both), name="with-real")
    served(ctx, mtlsd, "client-ec", 1, "ok")
    served(ctx, mtlsd, "client-revoked", 2, "revoked")

    only = ctx.concat("crls-foreign-only.pem", fx.path("pki", "root", "crl.pem"),
                      fx.path("pki", "intermediate", "crl.pem"), foreign)
    alone = Mtlsd(ctx, trust_package_config(ctx, backend, only), name="foreign-only")
    line = served(ctx, alone, "client-ec", 1, "crl_unavailable")
    assert "unable to get certificate CRL (depth 0" in line["reason"], line
    served(ctx, alone, "client-revoked", 2, "crl_unavailable")
    assert backend.connections() == 1, "only client-ec beside the real CRL may reach the backend"


def status_of(ctx, mtlsd):
    r = subprocess.run([ctx.mtlsctl_bin, "status", "--socket", mtlsd.control_socket],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return {k: v.strip() for k, _, v in (line.partition(" ") for line in r.stdout.splitlines())}


@case("session_cache_default_is_stateful_without_ticket_keys")
def session_cache_default_is_stateful_without_ticket_keys(ctx):
    """Issue 16: with no ticket_key_file a ticket could only resume on this
    host and generation, so the default keeps sessions in memory instead
    (no re-encode and encryption of the session per ticket). The status
    says so, and the client resumes. The twin: a ticket_key_file makes the
    same default issue tickets (a second instance with the same keys
    resumes them: only a ticket can do that)."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr))
    said = status_of(ctx, mtlsd)["session_cache"]
    assert said.startswith("stateful") and "auto: no ticket_key_file" in said, said
    sess = os.path.join(ctx.dir, "session.pem")
    full(ctx, mtlsd, "client-ec", sess)
    offer(ctx, mtlsd, "client-ec", sess, accepted=True)
    assert mtlsd.wait_audit(2).get("resumed") is True, mtlsd.audit()

    keyfile = os.path.join(ctx.dir, "ticket.keys")
    with open(keyfile, "wb") as f:
        f.write(os.urandom(80))
    os.chmod(keyfile, 0o600)
    a, b = (Mtlsd(ctx, standard_config(ctx, backend.addr).section("mtlsd", ticket_key_file=keyfile),
                  name=name) for name in ("mtlsd-a", "mtlsd-b"))
    said = status_of(ctx, a)["session_cache"]
    assert said.startswith("tickets (shared keys"), said
    sess = os.path.join(ctx.dir, "ticket.pem")
    full(ctx, a, "client-ec", sess)
    offer(ctx, b, "client-ec", sess, accepted=True)
    assert b.wait_audit(1).get("resumed") is True, b.audit()


def three_sessions_then_the_first(ctx, size):
    """Three full handshakes (three sessions), then offer the first one
    again: whether it resumed."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr).section(
        "mtlsd", session_cache="stateful", session_cache_size=str(size)), name="mtlsd-%d" % size)
    said = status_of(ctx, mtlsd)["session_cache"]
    assert "of %d sessions" % size in said, said
    sessions = [os.path.join(ctx.dir, "s%d-%d.pem" % (size, i)) for i in range(3)]
    for sess in sessions:
        full(ctx, mtlsd, "client-ec", sess)
    offer(ctx, mtlsd, "client-ec", sessions[0], accepted=True)
    line = mtlsd.wait_audit(4)
    assert_audit_ok(ctx, line, "client-ec", "partner")
    return line.get("resumed")


@case("session_cache_size_evicts_the_oldest")
def session_cache_size_evicts_the_oldest(ctx):
    """session_cache_size = 2 keeps the last two sessions: the first of
    three no longer resumes (its client is verified in full and served).
    The twin: with room for three the same sequence resumes it, so the size
    is what evicted it."""
    assert three_sessions_then_the_first(ctx, 2) is False
    assert three_sessions_then_the_first(ctx, 3) is True
