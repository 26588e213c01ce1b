"""Certificates and CRLs a case needs that the fixture set cannot hold:
validity measured in seconds from now, CRLs signed by a key of the test's
choosing. Everything is made with the openssl CLI (`openssl req`, `openssl
ca`), in the case's own directory, so a failing case keeps what it used.
"""

import datetime
import os
import subprocess

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

CA_EXT = ("basicConstraints = critical, CA:TRUE, pathlen:0\n"
          "keyUsage = critical, keyCertSign, cRLSign\n"
          "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n")
CLIENT_EXT = ("basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n"
              "extendedKeyUsage = clientAuth\nauthorityKeyIdentifier = keyid\n"
              "subjectAltName = URI:%s\n")


def utc(seconds):
    """openssl ca's time format, `seconds` from now (negative: ago)."""
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return t.strftime("%y%m%d%H%M%SZ")


def openssl(*args, env=None):
    r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise AssertionError("openssl %s failed:\n%s" % (" ".join(args), r.stderr))
    return r.stdout


class Authority:
    """A CA directory for `openssl ca`: its key, certificate, database."""

    def __init__(self, ctx, name, key, cert, passin=None):
        self.ctx, self.name, self.key, self.cert, self.passin = ctx, name, key, cert, passin
        self.dir = os.path.join(ctx.dir, "ca-" + name)
        os.makedirs(self.dir, exist_ok=True)
        for f, text in (("index.txt", ""), ("serial", "1000\n"), ("crlnumber", "1000\n")):
            if not os.path.exists(os.path.join(self.dir, f)):
                with open(os.path.join(self.dir, f), "w") as out:
                    out.write(text)
        self.cnf = os.path.join(self.dir, "ca.cnf")
        with open(self.cnf, "w") as f:
            f.write("[ca]\ndefault_ca = c\n[c]\ndir = %s\ndatabase = $dir/index.txt\n"
                    "new_certs_dir = $dir\nserial = $dir/serial\ncrlnumber = $dir/crlnumber\n"
                    "default_md = sha256\npolicy = any\nunique_subject = no\n"
                    "copy_extensions = none\n[any]\ncommonName = supplied\n"
                    "organizationName = optional\n" % self.dir)

    def _pass(self):
        return ["-passin", "env:MTLS_FIXTURE_PASS"] if self.passin else []

    def sign(self, csr, out, ext, seconds):
        """Sign csr, valid from a minute ago for `seconds`."""
        extfile = out + ".ext"
        with open(extfile, "w") as f:
            f.write(ext)
        openssl("ca", "-batch", "-notext", "-config", self.cnf, "-keyfile", self.key, "-cert",
                self.cert, "-in", csr, "-out", out, "-startdate", utc(-60), "-enddate",
                utc(seconds), "-extfile", extfile, *self._pass())
        return out

    def crl(self, out, revoked=(), seconds=7 * 86400):
        """A CRL listing `revoked` (certificate files), nextUpdate in `seconds`."""
        for cert in revoked:
            openssl("ca", "-config", self.cnf, "-keyfile", self.key, "-cert", self.cert,
                    "-revoke", cert, "-crl_reason", "keyCompromise", *self._pass())
        openssl("ca", "-config", self.cnf, "-gencrl", "-keyfile", self.key, "-cert", self.cert,
                "-out", out, "-crlsec", str(seconds), *self._pass())
        return out


def self_signed(ctx, name, subject):
    """A self-signed CA (key, certificate) that lives a day."""
    key, cert = (os.path.join(ctx.dir, "%s.%s" % (name, x)) for x in ("key", "crt"))
    openssl("req", "-x509", *EC, "-keyout", key, "-out", cert, "-subj", subject, "-days", "1",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
            "keyUsage=critical,keyCertSign,cRLSign")
    return Authority(ctx, name, key, cert)


def issue(ctx, ca, name, subject, seconds, is_ca=False, uri=None):
    """A new key and a certificate for it from `ca`; returns (key, cert)."""
    key, csr, cert = (os.path.join(ctx.dir, "%s.%s" % (name, x)) for x in ("key", "csr", "crt"))
    openssl("req", "-new", *EC, "-keyout", key, "-out", csr, "-subj", subject)
    os.chmod(key, 0o600)
    ca.sign(csr, cert, CA_EXT if is_ca else CLIENT_EXT % uri, seconds)
    return key, cert


def leaf_dir(ctx, name, key, cert, *chain):
    """A directory shaped like a fixture leaf (cert.pem, key.pem, chain.pem
    = leaf + chain), which peers.s_client takes as `leaf`."""
    d = os.path.join(ctx.dir, name)
    os.makedirs(d, exist_ok=True)
    for src, dst in ((cert, "cert.pem"), (key, "key.pem")):
        with open(src) as f, open(os.path.join(d, dst), "w") as out:
            out.write(f.read())
    os.chmod(os.path.join(d, "key.pem"), 0o600)
    with open(os.path.join(d, "chain.pem"), "w") as out:
        for p in (cert,) + chain:
            with open(p) as f:
                out.write(f.read())
    return d


def not_after(cert):
    """notAfter of a certificate file, as a Unix time."""
    text = openssl("x509", "-in", cert, "-noout", "-enddate").strip().split("=", 1)[1]
    return datetime.datetime.strptime(text, "%b %d %H:%M:%S %Y GMT").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def next_update(crl):
    text = openssl("crl", "-in", crl, "-noout", "-nextupdate").strip().split("=", 1)[1]
    return datetime.datetime.strptime(text, "%b %d %H:%M:%S %Y GMT").replace(
        tzinfo=datetime.timezone.utc).timestamp()
