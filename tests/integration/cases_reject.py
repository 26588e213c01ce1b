"""Rejected clients: each is refused with the right outcome in its audit
line, and NOTHING reaches the backend. Each test then sends a valid client
through the same mtlsd and asserts the backend saw exactly that one
connection: the backend's count is checked after an event that must come
later than any leaked connection, not after a sleep."""

from harness import case
from daemon import Mtlsd, standard_config
from expect import assert_audit_rejected, assert_not_relayed, valid_client_works
import peers

# s_client refuses to load an RSA-1024 key or offer TLS 1.1 at Debian's
# default security level 2: level 0 makes the SERVER the one that refuses.
SECLEVEL0 = ["-cipher", "DEFAULT@SECLEVEL=0"]


def check_rejected(ctx, leaf, outcome, config=None, backend=None, extra=(),
                   expect_leaf_in_audit=True):
    """Run `leaf` (None: no certificate) against mtlsd with config (default:
    the standard one in front of a fresh echo backend)."""
    backend = backend or ctx.backend()
    mtlsd = Mtlsd(ctx, config or standard_config(ctx, backend.addr))
    probe = b"must never reach the backend\n"
    r = peers.s_client(ctx, mtlsd.port, leaf, send=probe, expect=None, extra=extra)
    assert r.returncode is not None, "mtlsd kept a rejected connection open: %r" % r
    assert_not_relayed(r, probe)
    assert_audit_rejected(ctx, mtlsd.wait_audit(1), outcome,
                          leaf if expect_leaf_in_audit else None)
    valid_client_works(ctx, mtlsd, backend, audit_n=2, conn=1)
    assert backend.connections() == 1, ("the rejected client reached the backend: %r"
                                        % backend.events())


@case("reject_no_client_cert")
def reject_no_client_cert(ctx):
    check_rejected(ctx, None, "no_certificate")


@case("reject_unknown_ca")
def reject_unknown_ca(ctx):
    check_rejected(ctx, "client-unknownca", "unknown_ca")


@case("reject_expired")
def reject_expired(ctx):
    check_rejected(ctx, "client-expired", "expired")


@case("reject_not_yet_valid")
def reject_not_yet_valid(ctx):
    check_rejected(ctx, "client-notyet", "not_yet_valid")


@case("reject_revoked")
def reject_revoked(ctx):
    check_rejected(ctx, "client-revoked", "revoked")


@case("reject_eku_serverauth_only")
def reject_eku_serverauth_only(ctx):
    check_rejected(ctx, "client-servereku", "bad_eku")


@case("reject_san_not_allowed")
def reject_san_not_allowed(ctx):
    """client-badsan's URI is spiffe://partner.example/dev/app9; the partner
    allows spiffe://partner.example/prod/* only."""
    check_rejected(ctx, "client-badsan", "policy_denied")


@case("reject_chain_too_deep")
def reject_chain_too_deep(ctx):
    """The partner also trusts deep-pki's root, so client-deep's chain
    leads to an anchor, but 4 CA levels up: past verify_depth 3. (The depth
    is checked while the chain is built, before revocation, so deep-pki's
    CRLs are not needed.)"""
    backend = ctx.backend()
    bundle = ctx.concat("partner-and-deep.pem", ctx.fx.path("pki", "ca-bundle.pem"),
                        ctx.fx.path("deep-pki", "root", "ca.crt"))
    config = standard_config(ctx, backend.addr, ca=bundle, verify_depth="3")
    check_rejected(ctx, "client-deep", "chain_too_deep", config=config, backend=backend)


@case("reject_rsa1024")
def reject_rsa1024(ctx):
    check_rejected(ctx, "client-rsa1024", "weak_key", extra=SECLEVEL0)


@case("reject_tls11")
def reject_tls11(ctx):
    """A TLS 1.1 client is refused by the server's minimum version; no
    certificate is ever sent, so the audit line names none."""
    check_rejected(ctx, "client-ec", "protocol_error", extra=["-tls1_1"] + SECLEVEL0,
                   expect_leaf_in_audit=False)


@case("reject_ca_cert_as_client")
def reject_ca_cert_as_client(ctx):
    """A CA certificate (CA:TRUE, keyCertSign) is not a client identity."""
    check_rejected(ctx, "client-cacert", "bad_eku")


@case("reject_tls12_revoked")
def reject_tls12_revoked(ctx):
    """In TLS 1.2 the refusal comes inside the handshake, before Finished."""
    check_rejected(ctx, "client-revoked", "revoked", extra=["-tls1_2"])


@case("reject_tls12_cbc_only_client")
def reject_tls12_cbc_only_client(ctx):
    """A TLS 1.2 client offering only a CBC, non-forward-secret suite finds
    no cipher in common."""
    check_rejected(ctx, "client-ec", "protocol_error",
                   extra=["-tls1_2", "-cipher", "AES128-SHA"], expect_leaf_in_audit=False)
