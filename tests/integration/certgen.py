"""Client certificates a test needs and the fixtures do not have (several
CNs, several SPIFFE IDs, a chosen or non-positive serial, thousands of SAN
entries), made with the openssl CLI at test time under a fixture CA, so
no key material is committed. Each lands in its own directory of the
test's temp dir with cert.pem, key.pem (0600) and chain.pem (leaf, issuing,
intermediate), the layout peers.py takes as a leaf."""

import os
import secrets
import subprocess


def issue_client(ctx, name, subject, uris=(), dns=(), serial=None, ca="pki"):
    """A clientAuth leaf of fixture hierarchy `ca` (its issuing CA signs).
    subject: openssl's one-line form, in DER order ("/O=Acme/CN=admin/CN=svc-1");
    serial: what `openssl x509 -set_serial` takes ("0", "-8195", "0x96ED..."),
    default 16 random octets. Returns the directory (a peers.py leaf)."""
    fx = ctx.fx
    d = os.path.join(ctx.dir, "cert-" + name)
    os.makedirs(d)
    key, csr, crt, ext = (os.path.join(d, n) for n in ("key.pem", "req.csr", "cert.pem", "ext.cnf"))
    sans = ["URI.%d = %s" % (i, u) for i, u in enumerate(uris)]
    sans += ["DNS.%d = %s" % (i, n) for i, n in enumerate(dns)]
    with open(ext, "w") as f:
        f.write("basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n"
                "extendedKeyUsage = clientAuth\n")
        if sans:
            f.write("subjectAltName = @alt_names\n[alt_names]\n" + "\n".join(sans) + "\n")
    if serial is None:  # positive, no leading zero octet, as mtlsctl makes them
        octets = bytearray(secrets.token_bytes(16))
        octets[0] = (octets[0] & 0x7f) | 0x01
        serial = "0x" + octets.hex()
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-subj", subject, "-out", csr],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", fx.path(ca, "issuing", "ca.crt"),
                    "-CAkey", fx.path(ca, "issuing", "ca.key"), "-set_serial", serial,
                    "-days", "7", "-sha256", "-extfile", ext, "-out", crt],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    with open(os.path.join(d, "chain.pem"), "w") as out:
        for part in (crt, fx.path(ca, "issuing", "ca.crt"), fx.path(ca, "intermediate", "ca.crt")):
            with open(part) as f:
                out.write(f.read())
    return d


def der_len(path):
    """Size of a certificate's DER encoding."""
    return len(subprocess.run(["openssl", "x509", "-in", path, "-outform", "DER"],
                              capture_output=True, check=True).stdout)
