"""mtlsctl and mtlsd together, the way an operator uses them: a partner's
CA made and a client certificate issued with mtlsctl, accepted by mtlsd;
the certificate revoked and a new CRL published with mtlsctl, and the
restarted mtlsd refuses it."""

import os
import re
import signal
import subprocess

from harness import case
from daemon import Mtlsd, standard_config
from expect import assert_audit_rejected, assert_not_relayed, normalize_serial, valid_client_works
import peers

CA_PASS = "lifecycle-test-passphrase"


def mtlsctl(ctx, *args):
    """Run mtlsctl; the CA passphrase comes from the environment, never argv."""
    env = dict(os.environ, MTLS_CA_PASS=CA_PASS)
    r = subprocess.run([ctx.mtlsctl_bin] + list(args), env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, "mtlsctl %s failed (%d):\n%s%s" % (args, r.returncode,
                                                                r.stdout, r.stderr)
    return r.stdout


@case("lifecycle_issue_accept_revoke_refuse")
def lifecycle_issue_accept_revoke_refuse(ctx):
    pki = os.path.join(ctx.dir, "acme-pki")
    mtlsctl(ctx, "pki", "init", pki, "--name", "Acme", "--passphrase-env", "MTLS_CA_PASS")
    out = mtlsctl(ctx, "pki", "issue", "client", "billing", "--dir", pki,
                  "--uri", "spiffe://acme.example/prod/billing")
    serial = re.search(r"^([0-9A-F:]+)$", out, re.M).group(1)
    leaf = os.path.join(pki, "issued", "billing")

    backend = ctx.backend()
    config = standard_config(ctx, backend.addr, ca=os.path.join(pki, "ca-bundle.pem"),
                             crl=os.path.join(pki, "crls.pem"),
                             allow_uri="spiffe://acme.example/prod/*")
    first = Mtlsd(ctx, config, name="mtlsd-before")
    valid_client_works(ctx, first, backend, audit_n=1, conn=1, leaf=leaf)
    assert normalize_serial(first.wait_audit(1)["serial"]) == normalize_serial(serial)

    mtlsctl(ctx, "pki", "revoke", serial, "--reason", "keyCompromise", "--dir", pki)
    mtlsctl(ctx, "pki", "crl", "--dir", pki, "--passphrase-env", "MTLS_CA_PASS")
    # No reload yet (SIGHUP is reserved): the new CRL takes effect on restart.
    first.signal(signal.SIGTERM)
    assert first.wait_exit() == 0, first.log()

    again = Mtlsd(ctx, config, name="mtlsd-after")
    probe = b"revoked since\n"
    r = peers.s_client(ctx, again.port, leaf, send=probe, expect=None)
    assert_not_relayed(r, probe)
    assert_audit_rejected(ctx, again.wait_audit(1), "revoked", leaf)
    assert backend.connections() == 1, backend.events()
