#!/usr/bin/env python3
"""The whole PKI lifecycle, every outcome checked with the openssl CLI:
init -> issue server and client -> verify -> revoke -> crl -> verify again.
"""
import datetime
import os
import re
import tempfile
import unittest

from pkitest import (MTLSCTL, PASS, PkiDirTest, count_certs, ctl, extension, gnutls_verify, mode,
                     openssl, run, verify, x509_text)


def not_after(path):
    out = openssl("x509", "-in", path, "-noout", "-enddate", check=True).stdout
    return datetime.datetime.strptime(out.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z")


def lifetime_days(path):
    out = openssl("x509", "-in", path, "-noout", "-startdate", "-enddate", check=True).stdout
    d = dict(line.split("=", 1) for line in out.strip().splitlines())
    fmt = "%b %d %H:%M:%S %Y %Z"
    delta = (datetime.datetime.strptime(d["notAfter"], fmt) -
             datetime.datetime.strptime(d["notBefore"], fmt))
    return delta.days


class TestHierarchy(PkiDirTest):
    def test_pki_init_ca_extensions(self):
        for tier, pathlen, days in (("root", 2, 7305), ("intermediate", 1, 3653),
                                    ("issuing", 0, 730)):
            with self.subTest(tier=tier):
                text = x509_text(os.path.join(self.dir, tier, "ca.crt"))
                bc, critical = extension(text, "X509v3 Basic Constraints")
                self.assertEqual(bc, f"CA:TRUE, pathlen:{pathlen}")
                self.assertTrue(critical)
                ku, critical = extension(text, "X509v3 Key Usage")
                self.assertEqual(ku, "Certificate Sign, CRL Sign")
                self.assertTrue(critical)
                self.assertIsNotNone(extension(text, "X509v3 Subject Key Identifier")[0])
                self.assertIsNotNone(extension(text, "X509v3 Authority Key Identifier")[0])
                self.assertIn("prime256v1", text)
                self.assertEqual(extension(text, "X509v3 Extended Key Usage")[0], None)
                self.assertIn(lifetime_days(os.path.join(self.dir, tier, "ca.crt")),
                              (days, days + 1))

    def test_pki_init_chain_verifies(self):
        # The issuing CA verifies up to the root as a CA; the root alone does not
        # vouch for an unrelated certificate (the rejecting twin).
        issuing = os.path.join(self.dir, "issuing", "ca.crt")
        inter = os.path.join(self.dir, "intermediate", "ca.crt")
        p = openssl("verify", "-CAfile", self.root, "-untrusted", inter, issuing)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        p = openssl("verify", "-CAfile", inter, issuing)
        self.assertNotEqual(p.returncode, 0)

    def test_pki_init_key_files(self):
        for tier, encrypted in (("root", True), ("intermediate", True), ("issuing", False)):
            with self.subTest(tier=tier):
                path = os.path.join(self.dir, tier, "ca.key")
                self.assertEqual(mode(path), 0o600)
                with open(path) as f:
                    head = f.readline().strip()
                if encrypted:
                    self.assertEqual(head, "-----BEGIN ENCRYPTED PRIVATE KEY-----")
                    asn = openssl("asn1parse", "-in", path, check=True).stdout
                    self.assertIn("aes-256-cbc", asn)
                    ok = openssl("pkey", "-in", path, "-passin", f"pass:{PASS}", "-noout")
                    self.assertEqual(ok.returncode, 0, ok.stderr)
                    bad = openssl("pkey", "-in", path, "-passin", "pass:wrong-passphrase", "-noout")
                    self.assertNotEqual(bad.returncode, 0)
                else:
                    self.assertEqual(head, "-----BEGIN PRIVATE KEY-----")

    def test_pki_init_bundles(self):
        self.assertEqual(count_certs(os.path.join(self.dir, "chain.pem")), 2)
        self.assertEqual(count_certs(os.path.join(self.dir, "ca-bundle.pem")), 3)
        with open(os.path.join(self.dir, "chain.pem")) as f:
            chain = f.read()
        with open(self.root) as f:
            self.assertNotIn(f.read(), chain)
        with open(os.path.join(self.dir, "crls.pem")) as f:
            self.assertEqual(f.read().count("-----BEGIN X509 CRL-----"), 3)

    def test_pki_init_trust_package(self):
        tp = os.path.join(self.dir, "trust-package")
        self.assertEqual(sorted(os.listdir(tp)),
                         ["POLICY.txt", "ca-bundle.pem", "crls.pem", "intermediate.crt",
                          "root.crt"])
        self.assertEqual(count_certs(os.path.join(tp, "ca-bundle.pem")), 2)
        with open(os.path.join(tp, "POLICY.txt")) as f:
            policy = f.read()
        for tier in ("root", "intermediate", "issuing"):
            fp = openssl("x509", "-in", os.path.join(self.dir, tier, "ca.crt"), "-noout",
                         "-fingerprint", "-sha256", check=True).stdout.strip().split("=", 1)[1]
            self.assertIn(fp, policy)
        self.assertNotIn("PRIVATE", policy)

    def test_pki_init_refuses_existing_dir(self):
        p = ctl("pki", "init", self.dir, env=self.env)
        self.assertEqual(p.returncode, 2)
        self.assertIn("already holds a CA hierarchy", p.stderr)
        other = os.path.join(self.tmp.name, "not-empty")
        os.mkdir(other)
        with open(os.path.join(other, "notes.txt"), "w") as f:
            f.write("mine")
        p = ctl("pki", "init", other, env=self.env)
        self.assertEqual(p.returncode, 2)
        self.assertIn("not empty", p.stderr)
        self.assertEqual(os.listdir(other), ["notes.txt"])
        # Twin: an existing empty directory is fine, and no staging dir remains.
        empty = os.path.join(self.tmp.name, "empty")
        os.mkdir(empty)
        p = ctl("pki", "init", empty + "/", env=self.env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.isfile(os.path.join(empty, "root", "ca.crt")))
        self.assertEqual([n for n in os.listdir(self.tmp.name) if ".init-" in n], [])
        self.assertEqual(mode(empty), 0o755)


class TestIssue(PkiDirTest):
    def test_pki_issue_server(self):
        serial, out = self.issue("server", "web", "--dns", "web.acme.example", "--ip", "127.0.0.1",
                                 "--ip", "::1")
        cert, chain = os.path.join(out, "cert.pem"), os.path.join(out, "chain.pem")
        self.assertEqual(verify(self.root, chain, cert, "sslserver").returncode, 0)
        self.assertNotEqual(verify(self.root, chain, cert, "sslclient").returncode, 0)
        self.assertTrue(gnutls_verify(self.root, chain, "sslserver")[0])
        self.assertFalse(gnutls_verify(self.root, chain, "sslclient")[0])
        text = x509_text(cert)
        self.assertEqual(extension(text, "X509v3 Extended Key Usage")[0],
                         "TLS Web Server Authentication")
        self.assertEqual(extension(text, "X509v3 Key Usage"), ("Digital Signature", True))
        self.assertEqual(extension(text, "X509v3 Basic Constraints"), ("CA:FALSE", True))
        self.assertEqual(extension(text, "X509v3 Subject Alternative Name")[0],
                         "DNS:web.acme.example, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1")
        got = openssl("x509", "-in", cert, "-noout", "-serial", check=True).stdout
        self.assertEqual(got.strip().split("=")[1], serial.replace(":", ""))
        self.assertEqual(lifetime_days(cert), 90)
        self.assertEqual(mode(os.path.join(out, "key.pem")), 0o600)
        self.assertEqual(count_certs(chain), 3)

    def test_pki_issue_client_spiffe(self):
        _, out = self.issue("client", "app1", "--uri", "spiffe://acme.example/prod/app1")
        cert, chain = os.path.join(out, "cert.pem"), os.path.join(out, "chain.pem")
        self.assertEqual(verify(self.root, chain, cert, "sslclient").returncode, 0)
        self.assertNotEqual(verify(self.root, chain, cert, "sslserver").returncode, 0)
        self.assertTrue(gnutls_verify(self.root, chain, "sslclient")[0])
        self.assertFalse(gnutls_verify(self.root, chain, "sslserver")[0])
        text = x509_text(cert)
        self.assertEqual(extension(text, "X509v3 Extended Key Usage")[0],
                         "TLS Web Client Authentication")
        self.assertEqual(extension(text, "X509v3 Key Usage"), ("Digital Signature", True))
        self.assertEqual(extension(text, "X509v3 Subject Alternative Name")[0],
                         "URI:spiffe://acme.example/prod/app1")
        self.assertEqual(lifetime_days(cert), 30)

    def test_pki_issue_key_types(self):
        for key, needle in (("ec-p384", "secp384r1"), ("rsa-2048", "(2048 bit)")):
            with self.subTest(key=key):
                _, out = self.issue("client", f"k-{key}", "--key", key)
                cert, chain = os.path.join(out, "cert.pem"), os.path.join(out, "chain.pem")
                self.assertIn(needle, x509_text(cert))
                self.assertEqual(verify(self.root, chain, cert, "sslclient").returncode, 0)

    def test_pki_issue_new_key_and_serial_each_time(self):
        s1, out1 = self.issue("client", "rot")
        with open(os.path.join(out1, "key.pem")) as f:
            k1 = f.read()
        p = ctl("pki", "issue", "client", "rot", "--dir", self.dir)
        self.assertEqual(p.returncode, 2)  # exists: needs --replace
        s2, _ = self.issue("client", "rot", "--replace")
        with open(os.path.join(out1, "key.pem")) as f:
            k2 = f.read()
        self.assertNotEqual(s1, s2)
        self.assertNotEqual(k1, k2)
        self.assertGreaterEqual(len(s1.split(":")), 8)  # at least 64 bits

    def test_pki_issue_lifetime_policy(self):
        p = ctl("pki", "issue", "client", "long", "--dir", self.dir, "--days", "91")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--allow-long-lifetime", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "issued", "long")))
        _, out = self.issue("client", "long", "--days", "91", "--allow-long-lifetime")
        self.assertEqual(lifetime_days(os.path.join(out, "cert.pem")), 91)

    def test_pki_issue_out_dir(self):
        out = os.path.join(self.tmp.name, "elsewhere")
        p = ctl("pki", "issue", "server", "x", "--dir", self.dir, "--dns", "x.example",
                "--out", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sorted(os.listdir(out)), ["cert.pem", "chain.pem", "key.pem"])
        self.assertFalse(os.path.exists(os.path.join(self.dir, "issued", "x")))

    def test_pki_issue_dir_from_environment(self):
        p = ctl("pki", "issue", "client", "envdir", env={"MTLS_PKI_DIR": self.dir})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "issued", "envdir", "cert.pem")))
        p = ctl("pki", "issue", "client", "envdir2", env={"MTLS_PKI_DIR": self.tmp.name})
        self.assertEqual(p.returncode, 2)


class CrlNumbers:
    def crl_number(self, tier):
        text = openssl("crl", "-in", os.path.join(self.dir, tier, "crl.pem"), "-noout", "-text",
                       check=True).stdout
        return int(re.search(r"X509v3 CRL Number: \n\s+(\d+)", text).group(1))


class TestRevocation(PkiDirTest, CrlNumbers):
    def test_pki_revoke_then_crl(self):
        _, srv = self.issue("server", "srv", "--dns", "srv.example")
        serial, bad = self.issue("client", "bad")
        _, good = self.issue("client", "good")
        crls = os.path.join(self.dir, "crls.pem")

        def check(out, purpose):
            return verify(self.root, os.path.join(out, "chain.pem"),
                          os.path.join(out, "cert.pem"), purpose, crl=crls)

        self.assertEqual(check(bad, "sslclient").returncode, 0)
        before = {t: self.crl_number(t) for t in ("root", "intermediate", "issuing")}
        # Lower case without colons is accepted too.
        p = ctl("pki", "revoke", serial.replace(":", "").lower(), "--reason", "keyCompromise",
                "--dir", self.dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = ctl("pki", "crl", "--dir", self.dir, "--next-update-days", "3", env=self.env)
        self.assertEqual(p.returncode, 0, p.stderr)

        r = check(bad, "sslclient")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("certificate revoked", r.stdout + r.stderr)
        self.assertEqual(check(good, "sslclient").returncode, 0)
        self.assertEqual(check(srv, "sslserver").returncode, 0)
        # GnuTLS agrees.
        ok, line = gnutls_verify(self.root, os.path.join(bad, "chain.pem"), "sslclient", crl=crls)
        self.assertFalse(ok)
        self.assertIn("revoked", line)
        ok, line = gnutls_verify(self.root, os.path.join(good, "chain.pem"), "sslclient", crl=crls)
        self.assertTrue(ok, line)
        for t in before:
            self.assertEqual(self.crl_number(t), before[t] + 1)
        text = openssl("crl", "-in", os.path.join(self.dir, "issuing", "crl.pem"), "-noout",
                       "-text", check=True).stdout
        self.assertIn("Key Compromise", text)
        nxt = re.search(r"Next Update: (.*)", text).group(1).strip()
        left = datetime.datetime.strptime(nxt, "%b %d %H:%M:%S %Y %Z") - datetime.datetime.utcnow()
        self.assertTrue(datetime.timedelta(days=2.9) < left < datetime.timedelta(days=3.1))
        # The partner's copy is updated too.
        with open(os.path.join(self.dir, "trust-package", "crls.pem")) as a, open(crls) as b:
            self.assertEqual(a.read(), b.read())

        # cert check agrees with openssl, line by line.
        p = ctl("cert", "check", os.path.join(bad, "chain.pem"), "--ca", self.root, "--crl", crls)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stdout, r"FAIL revocation .*revoked.*keyCompromise")
        p = ctl("cert", "check", os.path.join(good, "chain.pem"), "--ca", self.root, "--crl", crls)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertRegex(p.stdout, r"PASS revocation ")

    def test_pki_crl_issuing_only_without_passphrase(self):
        before = {t: self.crl_number(t) for t in ("root", "intermediate", "issuing")}
        p = ctl("pki", "crl", "--dir", self.dir, "--ca", "issuing")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.crl_number("issuing"), before["issuing"] + 1)
        self.assertEqual(self.crl_number("root"), before["root"])
        self.assertEqual(self.crl_number("intermediate"), before["intermediate"])
        # The full refresh needs the passphrase (rejecting twin).
        p = ctl("pki", "crl", "--dir", self.dir)
        self.assertEqual(p.returncode, 2)
        self.assertIn("MTLS_CA_PASS", p.stderr)


class TestRevokeCa(PkiDirTest, CrlNumbers):
    """Its own hierarchy: revoking the issuing CA invalidates every leaf."""

    def test_pki_list_states_and_expiring(self):
        serial, _ = self.issue("client", "listed", "--days", "5")
        long_serial, _ = self.issue("server", "listed-srv", "--dns", "l.example")
        p = ctl("pki", "list", "--dir", self.dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, rf"(?m)^issuing +valid .* {serial} +CN=listed,O=acme$")
        self.assertRegex(p.stdout, r"(?m)^intermediate +valid .* CN=acme Issuing CA,O=acme$")
        # Expiring within 7 days: only the 5-day certificate, and exit 1.
        p = ctl("pki", "list", "--dir", self.dir, "--expiring", "7")
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn(serial, p.stdout)
        self.assertNotIn(long_serial, p.stdout)
        ctl("pki", "revoke", serial, "--reason", "superseded", "--dir", self.dir, check=True)
        p = ctl("pki", "list", "--dir", self.dir, "--expiring", "7")
        self.assertEqual(p.returncode, 0, p.stdout)  # revoked: nothing left to renew
        p = ctl("pki", "list", "--dir", self.dir)
        self.assertRegex(p.stdout, rf"(?m)^issuing +revoked .* superseded +{serial} ")

    def test_pki_crl_one_offline_ca(self):
        before = {t: self.crl_number(t) for t in ("root", "intermediate", "issuing")}
        p = ctl("pki", "crl", "--dir", self.dir, "--ca", "root", env=self.env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.crl_number("root"), before["root"] + 1)
        self.assertEqual(self.crl_number("intermediate"), before["intermediate"])
        self.assertEqual(self.crl_number("issuing"), before["issuing"])
        p = ctl("pki", "crl", "--dir", self.dir, "--ca", "policy", env=self.env)
        self.assertEqual(p.returncode, 2)
        self.assertIn("root, intermediate, issuing", p.stderr)

    def test_pki_revoke_intermediate_issued_ca(self):
        # The issuing CA's serial is in the intermediate's record.
        issuing = os.path.join(self.dir, "issuing", "ca.crt")
        serial = openssl("x509", "-in", issuing, "-noout", "-serial",
                         check=True).stdout.strip().split("=")[1]
        _, leaf = self.issue("client", "under-revoked-ca")
        r = verify(self.root, os.path.join(leaf, "chain.pem"), os.path.join(leaf, "cert.pem"),
                   "sslclient", crl=os.path.join(self.dir, "crls.pem"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        p = ctl("pki", "revoke", serial, "--reason", "cACompromise", "--dir", self.dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("intermediate", p.stdout)
        ctl("pki", "crl", "--dir", self.dir, env=self.env, check=True)
        r = verify(self.root, os.path.join(leaf, "chain.pem"), os.path.join(leaf, "cert.pem"),
                   "sslclient", crl=os.path.join(self.dir, "crls.pem"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("certificate revoked", r.stdout + r.stderr)
        # A revoked CA issues nothing more.
        p = ctl("pki", "issue", "client", "after-revocation", "--dir", self.dir)
        self.assertEqual(p.returncode, 2)
        self.assertIn("the issuing CA is revoked (cACompromise)", p.stderr)


class TestRevokeHint(PkiDirTest, CrlNumbers):
    """`pki revoke` ends with the command that publishes the revocation; it
    must run exactly as printed (it used to say `mtlsctl pki crl`, which
    fails anywhere but in the CA directory, and asks for the offline CAs'
    passphrase). The directory has a blank in it, so the quoting counts."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="mtls-pki-")
        cls.dir = os.path.join(cls.tmp.name, "acme ca")
        cls.env = {"MTLS_CA_PASS": PASS}
        ctl("pki", "init", cls.dir, "--name", "acme", env=cls.env, check=True)
        cls.root = os.path.join(cls.dir, "root", "ca.crt")

    def run_hint(self, revoke_stdout, env=None):
        hint = re.search(r"^publish it: (mtlsctl .*?)(   \(.*)?$", revoke_stdout, re.M)
        self.assertIsNotNone(hint, revoke_stdout)
        bindir = os.path.dirname(os.path.abspath(MTLSCTL))
        full = dict(env or {}, PATH=bindir + os.pathsep + os.environ["PATH"])
        # From another directory than the CA's, as an operator would.
        return run("sh", "-c", "cd / && " + hint.group(1), env=full), hint

    def test_pki_revoke_hint_1_runs_as_printed(self):
        serial, leaf = self.issue("client", "leaked")
        before = self.crl_number("issuing")
        p = ctl("pki", "revoke", serial, "--reason", "keyCompromise", "--dir", self.dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        r, hint = self.run_hint(p.stdout)  # no passphrase: the issuing CA's key is online
        self.assertEqual(r.returncode, 0, hint.group(1) + "\n" + r.stdout + r.stderr)
        self.assertEqual(self.crl_number("issuing"), before + 1)
        r = verify(self.root, os.path.join(leaf, "chain.pem"), os.path.join(leaf, "cert.pem"),
                   "sslclient", crl=os.path.join(self.dir, "crls.pem"))
        self.assertIn("certificate revoked", r.stdout + r.stderr)

    def test_pki_revoke_hint_2_offline_ca_names_the_passphrase(self):
        """The twin (after 1: it revokes the issuing CA): a CA revoked by
        the intermediate (offline) CA; the hint says the passphrase is
        needed, and runs with it."""
        issuing = os.path.join(self.dir, "issuing", "ca.crt")
        serial = openssl("x509", "-in", issuing, "-noout", "-serial",
                         check=True).stdout.strip().split("=")[1]
        before = self.crl_number("intermediate")
        p = ctl("pki", "revoke", serial, "--reason", "cACompromise", "--dir", self.dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("--ca intermediate", p.stdout)
        self.assertIn("MTLS_CA_PASS", p.stdout)
        r, hint = self.run_hint(p.stdout)
        self.assertNotEqual(r.returncode, 0, "no passphrase, yet the offline CA signed")
        r, hint = self.run_hint(p.stdout, env=self.env)
        self.assertEqual(r.returncode, 0, hint.group(1) + "\n" + r.stdout + r.stderr)
        self.assertEqual(self.crl_number("intermediate"), before + 1)


class TestP384Hierarchy(PkiDirTest):
    key = "ec-p384"

    def test_pki_init_p384_signs_with_sha384(self):
        text = x509_text(self.root)
        self.assertIn("secp384r1", text)
        self.assertIn("ecdsa-with-SHA384", text)
        _, out = self.issue("client", "c")
        self.assertEqual(verify(self.root, os.path.join(out, "chain.pem"),
                                os.path.join(out, "cert.pem"), "sslclient").returncode, 0)


class TestCertCommands(PkiDirTest):
    def test_pki_serial_one_spelling(self):
        # One spelling, the DER INTEGER content octets (lib/cert_serial.h):
        # pki issue, pki list, cert inspect and pki revoke print the same
        # text, which keeps the leading zero of 0x096ED7 and the sign octet
        # of the high-bit 0x96ED; any form OpenSSL or an operator types
        # (no colons, lower case, leading zeros dropped or added) is read.
        test = {"MTLSCTL_TEST": "1"}
        for forced, spelled, typed in (("0x096ED7", "09:6E:D7", "96ed7"),
                                       ("96:ED", "00:96:ED", "96ED"),
                                       ("00:00:11:22", "11:22", "00:11:22")):
            with self.subTest(serial=forced):
                name = "spell-" + spelled.replace(":", "")
                p = ctl("pki", "issue", "client", name, "--dir", self.dir, "--test-serial", forced,
                        env=test)
                self.assertEqual((p.returncode, p.stdout.strip()), (0, spelled), p.stderr)
                cert = os.path.join(self.dir, "issued", name, "cert.pem")
                got = openssl("x509", "-in", cert, "-noout", "-serial", check=True).stdout
                self.assertEqual(int(got.strip().split("=", 1)[1], 16), int(spelled.replace(":", ""), 16))
                listed = ctl("pki", "list", "--dir", self.dir).stdout
                self.assertRegex(listed, rf"(?m) {spelled} +CN={name},O=acme$")
                self.assertIn(f"serial         {spelled}\n", ctl("cert", "inspect", cert).stdout)
                p = ctl("pki", "revoke", typed, "--reason", "superseded", "--dir", self.dir)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertTrue(p.stdout.startswith(f"revoked {spelled} (CN={name},O=acme)"), p.stdout)

    def test_cert_inspect_shows_fields(self):
        serial, out = self.issue("client", "insp", "--uri", "spiffe://acme.example/a/b",
                                 "--dns", "insp.acme.example")
        p = ctl("cert", "inspect", os.path.join(out, "chain.pem"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f"serial         {serial}", p.stdout)
        self.assertIn("extended usage clientAuth", p.stdout)
        self.assertIn("URI:spiffe://acme.example/a/b", p.stdout)
        self.assertIn("certificate 3 of 3", p.stdout)
        fp = openssl("x509", "-in", os.path.join(out, "cert.pem"), "-noout", "-fingerprint",
                     "-sha256", check=True).stdout.strip().split("=", 1)[1]
        self.assertIn(fp, p.stdout)
        # The lower-case hex form mtlsd's audit line uses, and the issuing CA's
        # key identifier as issuer_id.
        self.assertIn("sha256 " + fp.replace(":", "").lower(), p.stdout)
        ski = extension(x509_text(os.path.join(self.dir, "issuing", "ca.crt")),
                        "X509v3 Subject Key Identifier")[0]
        self.assertIn("issuer_id " + ski.replace(":", "").lower(), p.stdout)
        p = ctl("cert", "inspect", os.path.join(out, "key.pem"))
        self.assertEqual(p.returncode, 2)

    def openssl_chain(self, digest):
        """A root and a client leaf made by the openssl CLI, signed with digest."""
        d = os.path.join(self.tmp.name, digest)
        os.mkdir(d)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        openssl("req", "-x509", *ec, f"-{digest}", "-subj", f"/CN={digest} root",
                "-keyout", f"{d}/rk.pem", "-out", f"{d}/root.pem", "-days", "30",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", check=True)
        openssl("req", "-new", *ec, "-keyout", f"{d}/lk.pem", "-subj", f"/CN={digest} leaf",
                "-out", f"{d}/leaf.csr", check=True)
        with open(f"{d}/ext", "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=clientAuth\n")
        openssl("x509", "-req", f"-{digest}", "-in", f"{d}/leaf.csr", "-CA", f"{d}/root.pem",
                "-CAkey", f"{d}/rk.pem", "-CAcreateserial", "-days", "20", "-extfile", f"{d}/ext",
                "-out", f"{d}/leaf.pem", check=True)
        return f"{d}/leaf.pem", f"{d}/root.pem"

    def test_cert_check_weak_signature(self):
        leaf, root = self.openssl_chain("sha1")
        p = ctl("cert", "check", leaf, "--ca", root)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertRegex(p.stdout, r"(?m)^FAIL signature +CN=sha1 leaf is signed with "
                                   r"ecdsa-with-SHA1")
        leaf, root = self.openssl_chain("sha256")
        p = ctl("cert", "check", leaf, "--ca", root)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertRegex(p.stdout, r"(?m)^PASS signature +leaf signed with ecdsa-with-SHA256")

    def test_cert_check_pass_and_fail(self):
        _, out = self.issue("server", "chk", "--dns", "chk.example")
        chain = os.path.join(out, "chain.pem")
        p = ctl("cert", "check", chain, "--ca", self.root, "--purpose", "server")
        self.assertEqual(p.returncode, 0, p.stdout)
        for name in ("chain", "depth", "key", "signature", "leaf", "eku", "key-usage", "validity",
                     "lifetime"):
            self.assertRegex(p.stdout, rf"(?m)^PASS {name} ")
        self.assertRegex(p.stdout, r"(?m)^SKIP revocation ")
        p = ctl("cert", "check", chain, "--ca", self.root)  # purpose client: wrong EKU
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stdout, r"(?m)^FAIL eku +has serverAuth but not clientAuth")
        self.assertRegex(p.stdout, r"(?m)^SKIP host ")
        p = ctl("cert", "check", chain, "--ca", self.root, "--purpose", "server",
                "--host", "chk.example")
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertRegex(p.stdout, r"(?m)^PASS host +chk.example matches DNS:chk.example")
        for wrong in ("other.example", "127.0.0.1", "chk"):
            p = ctl("cert", "check", chain, "--ca", self.root, "--purpose", "server",
                    "--host", wrong)
            self.assertEqual(p.returncode, 1, p.stdout)
            self.assertRegex(p.stdout, rf"(?m)^FAIL host +{re.escape(wrong)} is not among")
        p = ctl("cert", "check", chain, "--ca", self.root, "--purpose", "server",
                "--min-days-left", "100")
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stdout, r"(?m)^FAIL validity ")


if __name__ == "__main__":
    unittest.main(verbosity=2)
