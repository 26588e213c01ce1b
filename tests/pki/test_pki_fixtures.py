#!/usr/bin/env python3
"""The fixture set every test uses (tests/fixtures.md), checked with openssl
and GnuTLS's certtool: each good fixture verifies, each negative one fails
for exactly its reason, and `mtlsctl cert check` names the same reason.
"""
import os
import unittest

from pkitest import count_certs, ctl, gnutls_verify, mode, openssl, verify, x509_text

FIX = os.environ.get("MTLS_FIXTURES", "")

# name -> (hierarchy, purpose, openssl error or None, cert check line that fails or None)
FIXTURES = {
    "server": ("pki", "sslserver", None, None),
    "server-rsa": ("pki-rsa", "sslserver", None, None),
    "client-ec": ("pki", "sslclient", None, None),
    "client-rsa": ("pki", "sslclient", None, None),
    "client-badsan": ("pki", "sslclient", None, None),  # only mtlsd's allow-list rejects it
    "client-partner2": ("partner2-pki", "sslclient", None, None),
    "client-expired": ("pki", "sslclient", "certificate has expired", "validity"),
    "client-notyet": ("pki", "sslclient", "certificate is not yet valid", "validity"),
    "client-revoked": ("pki", "sslclient", "certificate revoked", "revocation"),
    "client-servereku": ("pki", "sslclient", "unsuitable certificate purpose", "eku"),
    "client-rsa1024": ("pki", "sslclient", "EE certificate key too weak", "key"),
    "client-cacert": ("pki", "sslclient", "unsuitable certificate purpose", "leaf"),
    "client-unknownca": ("pki", "sslclient", "unable to get local issuer certificate", "chain"),
    "client-deep": ("deep-pki", "sslclient", "certificate chain too long", "depth"),
}


# GnuTLS's verdicts (certtool, profile medium). It has no depth limit option,
# and it accepts client-cacert: a CA certificate without EKU passes its
# purpose check and it does not look at keyUsage, so refusing a CA as a
# client leaf is up to mtlsd's own policy.
GNUTLS = {
    "client-expired": "expired",
    "client-notyet": "not yet valid",
    "client-revoked": "revoked",
    "client-servereku": "does not match the intended purpose",
    "client-rsa1024": "insecure algorithm",
    "client-unknownca": "issuer is unknown",
}


def path(*parts):
    return os.path.join(FIX, *parts)


class TestFixtures(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # The build always makes them (target `fixtures`): missing is a failure.
        if not (FIX and os.path.isfile(os.path.join(FIX, "client-ec", "cert.pem"))):
            raise AssertionError(f"MTLS_FIXTURES={FIX!r} holds no fixtures: build the "
                                 "`fixtures` target")

    def openssl_verdict(self, name):
        pki, purpose, _, _ = FIXTURES[name]
        # -auth_level 2 makes OpenSSL refuse RSA-1024 as mtlsd does; -verify_depth 2
        # allows leaf + 2 intermediates below the anchor (mtlsd verify_depth 3).
        return verify(path(pki, "root", "ca.crt"), path(name, "chain.pem"), path(name, "cert.pem"),
                      purpose, crl=path(pki, "crls.pem"),
                      extra=("-auth_level", "2", "-verify_depth", "2"))

    def test_pki_fixtures_openssl_verdicts(self):
        for name, (_, _, error, _) in FIXTURES.items():
            with self.subTest(fixture=name):
                p = self.openssl_verdict(name)
                out = p.stdout + p.stderr
                if error is None:
                    self.assertEqual(p.returncode, 0, out)
                else:
                    self.assertNotEqual(p.returncode, 0, out)
                    self.assertIn(error, out)

    def test_pki_fixtures_gnutls_verdicts(self):
        for name, (pki, purpose, error, _) in FIXTURES.items():
            if name in ("client-cacert", "client-deep"):
                continue  # see GNUTLS above
            with self.subTest(fixture=name):
                ok, line = gnutls_verify(path(pki, "root", "ca.crt"), path(name, "chain.pem"),
                                         purpose, crl=path(pki, "crls.pem"))
                if error is None:
                    self.assertTrue(ok, line)
                else:
                    self.assertFalse(ok, line)
                    self.assertIn(GNUTLS[name], line)

    def test_pki_fixtures_cert_check_verdicts(self):
        for name, (pki, purpose, _, failing) in FIXTURES.items():
            with self.subTest(fixture=name):
                p = ctl("cert", "check", path(name, "chain.pem"),
                        "--ca", path(pki, "root", "ca.crt"),
                        "--crl", path(pki, "crls.pem"),
                        "--purpose", "server" if purpose == "sslserver" else "client")
                failed = {l.split()[1] for l in p.stdout.splitlines() if l.startswith("FAIL ")}
                if failing is None:
                    self.assertEqual(p.returncode, 0, p.stdout)
                    self.assertEqual(failed, set())
                else:
                    self.assertEqual(p.returncode, 1, p.stdout)
                    self.assertIn(failing, failed)

    def test_pki_fixtures_unknown_ca_verifies_under_its_own_root(self):
        # The rejecting twin of "unknown CA": the certificate itself is fine.
        p = verify(path("unknown-pki", "root", "ca.crt"), path("client-unknownca", "chain.pem"),
                   path("client-unknownca", "cert.pem"), "sslclient")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_pki_fixtures_deep_chain_verifies_without_depth_limit(self):
        p = verify(path("deep-pki", "root", "ca.crt"), path("client-deep", "chain.pem"),
                   path("client-deep", "cert.pem"), "sslclient")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(count_certs(path("client-deep", "chain.pem")), 4)

    def test_pki_fixtures_layout(self):
        for name, (pki, _, _, _) in FIXTURES.items():
            with self.subTest(fixture=name):
                self.assertEqual(mode(path(name, "key.pem")), 0o600)
                with open(path(name, "chain.pem")) as f:
                    chain = f.read()
                with open(path(pki, "root", "ca.crt")) as f:
                    self.assertNotIn(f.read(), chain, "chain.pem must never hold the root")
        for pki in ("pki", "pki-rsa", "partner2-pki", "unknown-pki", "deep-pki"):
            for f in ("root/ca.crt", "intermediate/ca.crt", "issuing/ca.crt", "chain.pem",
                      "ca-bundle.pem", "crls.pem", "trust-package/POLICY.txt"):
                self.assertTrue(os.path.isfile(path(pki, f)), f"{pki}/{f}")

    def test_pki_fixtures_shared_serial(self):
        def serial(name):
            return openssl("x509", "-in", path(name, "cert.pem"), "-noout", "-serial",
                           check=True).stdout.strip()
        self.assertEqual(serial("client-ec"), serial("client-partner2"))
        self.assertNotEqual(serial("client-ec"), serial("client-rsa"))
        self.assertGreaterEqual(len(serial("client-ec").split("=")[1]), 16)  # >= 64 bits

    def test_pki_fixtures_identities(self):
        def text(name):
            return x509_text(path(name, "cert.pem"))
        self.assertIn("URI:spiffe://partner.example/prod/app1", text("client-ec"))
        self.assertIn("DNS:app1.partner.example", text("client-ec"))
        self.assertIn("URI:spiffe://partner.example/dev/app9", text("client-badsan"))
        self.assertIn("URI:spiffe://partner2.example/svc/a", text("client-partner2"))
        server = x509_text(path("server", "cert.pem"))
        self.assertIn("DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1", server)
        self.assertIn("(2048 bit)", x509_text(path("server-rsa", "cert.pem")))
        self.assertIn("(3072 bit)", x509_text(path("pki-rsa", "root", "ca.crt")))
        self.assertIn("(1024 bit)", x509_text(path("client-rsa1024", "cert.pem")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
