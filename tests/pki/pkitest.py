"""Shared helpers of the PKI tests: run mtlsctl, the openssl CLI and GnuTLS's
certtool.

Every outcome of mtlsctl is checked with independent implementations, never
with mtlsctl itself: the openssl command line tool, and certtool, a second
TLS stack that shares no code with the OpenSSL library mtlsctl is built on.
"""
import hashlib
import os
import re
import stat
import subprocess
import tempfile
import unittest

MTLSCTL = os.environ.get("MTLSCTL", "mtlsctl")
MAKE_FIXTURES = os.environ.get("MTLS_MAKE_FIXTURES", "make_fixtures")
PASS = "correct horse battery staple"


def run(*args, env=None, check=False):
    """Run a command; return CompletedProcess with text stdout/stderr."""
    full_env = dict(os.environ)
    # Only what a test passes explicitly: no ambient test mode, CA directory
    # or passphrase from the meson test environment.
    for var in ("MTLSCTL_TEST", "MTLS_PKI_DIR", "MTLS_CA_PASS", "MTLS_FIXTURE_PASS"):
        full_env.pop(var, None)
    if env:
        full_env.update(env)
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=full_env)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}): {p.stdout}{p.stderr}")
    return p


def ctl(*args, env=None, check=False):
    return run(MTLSCTL, *args, env=env, check=check)


def openssl(*args, check=False):
    return run("openssl", *args, check=check)


def x509_text(path):
    return openssl("x509", "-in", path, "-noout", "-text", check=True).stdout


def verify(root, chain, cert, purpose, crl=None, extra=()):
    """openssl verify with the root as the only anchor and chain as untrusted."""
    args = ["verify", "-CAfile", root, "-untrusted", chain, "-purpose", purpose, *extra]
    if crl:
        args += ["-crl_check_all", "-CRLfile", crl]
    return openssl(*args, cert)


PURPOSE_OID = {"sslserver": "1.3.6.1.5.5.7.3.1", "sslclient": "1.3.6.1.5.5.7.3.2"}


def gnutls_verify(root, chain, purpose, crl=None):
    """certtool --verify of chain (leaf first) against root. Returns
    (verified, verdict line). Profile 'medium' refuses keys under 112-bit
    security (RSA < 2048)."""
    args = ["certtool", "--verify", "--verify-profile", "medium", "--load-ca-certificate", root,
            "--infile", chain, "--verify-purpose", PURPOSE_OID[purpose]]
    if crl:
        args += ["--load-crl", crl]
    p = run(*args)
    line = next((l for l in (p.stdout + p.stderr).splitlines()
                 if l.startswith("Chain verification output:")), "")
    return "Verified." in line and "Not verified" not in line, line


def count_certs(path):
    with open(path) as f:
        return f.read().count("-----BEGIN CERTIFICATE-----")


def dir_digest(path):
    """Hash of every name, mode and content under path: 'nothing written'."""
    h = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(dirs + files):
            p = os.path.join(root, name)
            st = os.lstat(p)
            h.update(f"{os.path.relpath(p, path)}\0{stat.S_IMODE(st.st_mode)}\0".encode())
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def extension(text, name):
    """The value lines of one extension in `openssl x509 -text` output."""
    m = re.search(r"\n\s+" + re.escape(name) + r":( critical)? *\n\s+(.*)", text)
    return (m.group(2).strip(), bool(m.group(1))) if m else (None, False)


class PkiDirTest(unittest.TestCase):
    """A fresh hierarchy in a temp dir for every test class."""

    key = "ec-p256"

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="mtls-pki-")
        cls.dir = os.path.join(cls.tmp.name, "ca")
        cls.env = {"MTLS_CA_PASS": PASS}
        ctl("pki", "init", cls.dir, "--name", "acme", "--key", cls.key, env=cls.env, check=True)
        cls.root = os.path.join(cls.dir, "root", "ca.crt")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def issue(self, kind, name, *args, env=None):
        p = ctl("pki", "issue", kind, name, "--dir", self.dir, *args, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        serial = p.stdout.strip()
        self.assertRegex(serial, r"^([0-9A-F]{2}:){7,19}[0-9A-F]{2}$")
        return serial, os.path.join(self.dir, "issued", name)
