#!/usr/bin/env python3
"""`mtlsctl cert inspect` on certificates whose makers chose every byte of
the names (issue 14, item 8): C1 controls (U+0085 NEL, U+009B CSI) and
ANSI escape sequences in the subject CN and O and in the DNS and URI SANs,
and bytes that are not UTF-8 in the SANs (OpenSSL refuses to decode a name
whose UTF8String is not UTF-8, so only a SAN's IA5String can carry them
into a parsed certificate). Nothing a terminal would act on reaches stdout: the
output is valid UTF-8 without a control character but newlines, and each
hostile byte is shown as \\XX. The twin: plain UTF-8 ("Zürich",
"Société") is printed as is, not as \\C3\\BC.

The certificates are made by tests/helpers/client_flood --write, which puts
the bytes into UTF8String / IA5String fields exactly as given.
"""
import os
import subprocess
import tempfile
import unittest

MTLSCTL = os.environ.get("MTLSCTL", "mtlsctl")
CLIENT_FLOOD = os.environ.get("CLIENT_FLOOD", "client_flood")


def make(path, cn, o, dns, uri):
    subprocess.run([CLIENT_FLOOD, "--write", path, "--count", "1", "--cn", cn, "--o", o,
                    "--dns", dns, "--uri", uri], check=True, capture_output=True)


def inspect(path):
    p = subprocess.run([MTLSCTL, "cert", "inspect", path], capture_output=True)
    if p.returncode != 0:
        raise AssertionError("cert inspect failed: %r" % (p,))
    return p.stdout


def line(out, field):
    for text in out.splitlines():
        if text.strip().startswith(field + " "):
            return text
    raise AssertionError("no %r line in:\n%s" % (field, out))


class TestCertInspectHostile(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="mtls-inspect-")
        self.addCleanup(self.tmp.cleanup)

    def test_cert_inspect_escapes_controls_and_invalid_utf8(self):
        path = os.path.join(self.tmp.name, "hostile.pem")
        make(path, cn=r"\xc2\x9b31mcsi\x1b[2Jesc", o=r"t61:o\x85nel\x1b]0;t\x07",
             dns=r"d\x1b[1m\xc2\x9b\xffx.example", uri=r"spiffe://x.example/\xc2\x85\x1b\xfe")
        raw = inspect(path)
        out = raw.decode("utf-8")  # raises on a byte that is not UTF-8
        for ch in out:
            self.assertFalse(ch != "\n" and (ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f),
                             "control %r reaches the terminal:\n%s" % (ch, out))
        subject = line(out, "subject")
        self.assertIn(r"CN=\C2\9B31mcsi\1B[2Jesc", subject)
        # A TeletexString is Latin-1: its byte 0x85 is U+0085 (NEL).
        self.assertIn(r"O=o\C2\85nel\1B]0\;t\07", subject)
        sans = line(out, "names (SAN)")
        self.assertIn(r"DNS:d\1B[1m\C2\9B\FFx.example", sans)
        self.assertIn(r"URI:spiffe://x.example/\C2\85\1B\FE", sans)

    def test_cert_inspect_prints_utf8_as_is(self):
        path = os.path.join(self.tmp.name, "utf8.pem")
        make(path, cn=r"Z\xc3\xbcrich", o=r"Soci\xc3\xa9t\xc3\xa9", dns="zurich.example",
             uri="spiffe://zurich.example/app")
        out = inspect(path).decode("utf-8")
        subject = line(out, "subject")
        self.assertIn("CN=Zürich", subject)
        self.assertIn("O=Société", subject)
        self.assertNotIn(r"\C3", out)
        self.assertIn("URI:spiffe://zurich.example/app, DNS:zurich.example",
                      line(out, "names (SAN)"))
        # The issuer is the certificate itself (self-signed): same words.
        self.assertIn("CN=Zürich", line(out, "issuer"))


if __name__ == "__main__":
    unittest.main()
