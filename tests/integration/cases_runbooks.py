"""The runbooks of docs/operations.md, run as written.

Every fenced block marked `sh runbook=NAME` in docs/operations.md is taken
from the markdown and run by bash, in the order the page gives, against a
running mtlsd that drops to a service user (`user = nobody`), with a PKI
made by mtlsctl. The only changes to the text: /etc/mtlsd and /srv/pki/acme
point into the test's directory, the service user `mtlsd` is `nobody`, and
the example serial is the real one of the certificate revoked. Between the
blocks and after them the test checks what the page promises (the new
certificate is served, the revoked client is refused and cut off, old
tickets resume until their key leaves the file). A command the page shows
that fails, or a runbook whose block disappears, fails its test: the docs
cannot drift from the binaries again.
"""

import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess

from harness import Skip, case, read_text, wait_until
from daemon import Config, Mtlsd
from expect import assert_audit_ok, assert_audit_rejected, assert_echoed, assert_not_relayed, \
    normalize_serial
import peers

CA_PASS = "runbook-test-passphrase"
EXAMPLE_SERIAL = "4F:A2:91:0C:55:E1:03:7B"
SERVICE_USER = "nobody"


def runbook_blocks(ctx, name):
    """The text of every block marked runbook=NAME, in page order."""
    text = read_text(os.path.join(ctx.srcdir, "docs", "operations.md"))
    blocks = re.findall(r"^```sh runbook=%s\n(.*?)^```$" % re.escape(name), text, re.M | re.S)
    assert blocks, "docs/operations.md has no block marked `sh runbook=%s`" % name
    return blocks


def mtlsctl(ctx, *args):
    env = dict(os.environ, MTLS_CA_PASS=CA_PASS)
    r = subprocess.run([ctx.mtlsctl_bin] + list(args), env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, "mtlsctl %s: %s%s" % (args, r.stdout, r.stderr)
    return r.stdout


class Site:
    """One gateway host as docs/operations.md describes it: the files under
    /etc/mtlsd (here self.etc), the partner acme's PKI under /srv/pki/acme
    (self.pki, made with mtlsctl pki init), and mtlsd running with
    user = nobody, so every reload reads the files as the service user."""

    def __init__(self, ctx, tickets=False):
        if os.geteuid() != 0:
            raise Skip("the runbooks run as root, with mtlsd dropping to a service user")
        try:
            self.user = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            raise Skip("no user %s to run mtlsd as" % SERVICE_USER)
        self.ctx = ctx
        os.chmod(ctx.dir, 0o755)  # the service user reads the files on reload
        self.etc = os.path.join(ctx.dir, "etc-mtlsd")
        self.pki = os.path.join(ctx.dir, "srv-pki-acme")
        self.work = os.path.join(ctx.dir, "work")
        for d in ("certs", "private", "partners/acme"):
            os.makedirs(os.path.join(self.etc, d), mode=0o755)
        os.makedirs(self.work)
        mtlsctl(ctx, "pki", "init", self.pki, "--name", "Acme", "--passphrase-env", "MTLS_CA_PASS")
        self.root = os.path.join(self.pki, "root", "ca.crt")
        self.server_serial = self.issue("server", "gw", "--dns", "localhost")
        self.install("issued/gw/key.pem", "private/gw-ecdsa.key", 0o600, owner=True)
        self.install("issued/gw/chain.pem", "certs/gw-ecdsa-chain.pem", 0o644)
        self.install("ca-bundle.pem", "partners/acme/ca.pem", 0o644)
        self.install("crls.pem", "partners/acme/crls.pem", 0o644)
        mtlsd_keys = [("user", SERVICE_USER)]
        if tickets:
            keys = os.path.join(self.etc, "ticket.keys")
            with open(keys, "wb") as f:
                f.write(os.urandom(80))
            os.chmod(keys, 0o600)
            os.chown(keys, self.user.pw_uid, -1)
            mtlsd_keys.append(("ticket_key_file", keys))
        self.backend = ctx.backend()
        config = Config()
        config.sections.append(("mtlsd", mtlsd_keys))
        config.section("server_cert.ecdsa", cert=os.path.join(self.etc, "certs/gw-ecdsa-chain.pem"),
                       key=os.path.join(self.etc, "private/gw-ecdsa.key"))
        config.partner("acme", self.backend.addr, os.path.join(self.etc, "partners/acme/ca.pem"),
                       crl=os.path.join(self.etc, "partners/acme/crls.pem"),
                       allow_uri="spiffe://acme.example/prod/*")
        self.mtlsd = Mtlsd(ctx, config)
        os.chmod(self.mtlsd.conf_path, 0o644)  # root's, read again on reload by the service user
        self.audits = 0

    def issue(self, kind, name, *args):
        out = mtlsctl(self.ctx, "pki", "issue", kind, name, "--dir", self.pki, *args)
        return re.search(r"^([0-9A-F:]+)$", out, re.M).group(1)

    def client(self, name):
        serial = self.issue("client", name, "--uri", "spiffe://acme.example/prod/" + name)
        return os.path.join(self.pki, "issued", name), serial

    def install(self, src, dst, mode, owner=False):
        path = os.path.join(self.etc, dst)
        shutil.copyfile(os.path.join(self.pki, src), path)
        os.chmod(path, mode)
        if owner:
            os.chown(path, self.user.pw_uid, -1)

    def run(self, block, serial=None):
        """One runbook block through bash, as written but for the paths, the
        service user and the example serial. Its output; fails on any error."""
        script = block.replace("/etc/mtlsd", self.etc).replace("/srv/pki/acme", self.pki)
        script = re.sub(r"(-o |chown )mtlsd\b", r"\g<1>" + SERVICE_USER, script)
        if serial:
            script = script.replace(EXAMPLE_SERIAL, serial)
        bindirs = {os.path.dirname(self.ctx.mtlsctl_bin), os.path.dirname(self.ctx.mtlsd_bin)}
        env = dict(os.environ, PATH=os.pathsep.join(sorted(bindirs)) + os.pathsep + os.environ["PATH"],
                   MTLSD_CONTROL_SOCKET=self.mtlsd.control_socket, MTLS_CA_PASS=CA_PASS)
        r = subprocess.run(["bash", "-c", "set -eu\numask 022\n" + script], cwd=self.work, env=env,
                           capture_output=True, text=True, timeout=120)
        out = r.stdout + r.stderr
        assert r.returncode == 0, "the runbook stopped (exit %d):\n%s\n--- its output:\n%s\n--- mtlsd:\n%s" % (
            r.returncode, script, out, self.mtlsd.log()[-3000:])
        self.mtlsd.check_alive()
        return out

    def handshake(self, leaf, ok=True, extra=()):
        """A client handshake through s_client; its audit line."""
        probe = b"runbook probe\n"
        r = peers.s_client(self.ctx, self.mtlsd.port, leaf, send=probe, expect=probe if ok else None,
                           server_ca=self.root, extra=list(extra))
        (assert_echoed if ok else assert_not_relayed)(r, probe)
        self.audits += 1
        return self.mtlsd.wait_audit(self.audits)

    def served_serial(self):
        """The serial of the certificate mtlsd presents now."""
        s = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.mtlsd.port,
                            "-servername", "localhost", "-CAfile", self.root],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30).stdout
        self.audits += 1  # no client certificate: an audit line of its own
        self.mtlsd.wait_audit(self.audits)
        r = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=s, capture_output=True,
                           timeout=30)
        return normalize_serial(r.stdout.decode().strip().split("=")[1])


@case("runbook_rotate_server_certificate")
def runbook_rotate_server_certificate(ctx):
    """"Rotate the server certificate": the new key and chain installed as
    shown, one reload; mtlsctl certs shows the new one and clients get it."""
    site = Site(ctx)
    leaf, _ = site.client("billing")
    assert_audit_ok(ctx, site.handshake(leaf), leaf, "acme")
    assert site.served_serial() == normalize_serial(site.server_serial)
    new = site.issue("server", "gw-next", "--dns", "localhost")
    shutil.copyfile(os.path.join(site.pki, "issued/gw-next/key.pem"), os.path.join(site.work, "new-gw.key"))
    shutil.copyfile(os.path.join(site.pki, "issued/gw-next/chain.pem"),
                    os.path.join(site.work, "new-gw-chain.pem"))
    out = site.run(runbook_blocks(ctx, "rotate-server-certificate")[0])
    assert normalize_serial(new) in normalize_serial(out), \
        "`mtlsctl certs` does not show the new serial %s:\n%s" % (new, out)
    assert site.served_serial() == normalize_serial(new), "the old certificate is still served"
    assert_audit_ok(ctx, site.handshake(leaf), leaf, "acme")


def live_connection(site, leaf):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.load_verify_locations(site.root)
    c.load_cert_chain(os.path.join(leaf, "chain.pem"), os.path.join(leaf, "key.pem"))
    s = c.wrap_socket(socket.create_connection(("127.0.0.1", site.mtlsd.port), timeout=30),
                      server_hostname="localhost")
    s.sendall(b"established before the revocation\n")
    got = b""
    while not got.endswith(b"\n"):
        chunk = s.recv(100)
        assert chunk, "mtlsd closed the connection before the runbook"
        got += chunk
    site.audits += 1
    site.mtlsd.wait_audit(site.audits)
    return s


@case("runbook_emergency_revocation")
def runbook_emergency_revocation(ctx):
    """"Emergency revocation": revoke and publish with mtlsctl pki, install
    the CRL, reload, drop. The leaked certificate's live connection is cut,
    its next handshake and its session ticket are refused as revoked, and
    another client of the partner is served throughout."""
    site = Site(ctx)
    leaked, serial = site.client("leaked")
    other, _ = site.client("billing")
    sess = os.path.join(ctx.dir, "leaked-session.pem")
    assert_audit_ok(ctx, site.handshake(leaked, extra=["-sess_out", sess]), leaked, "acme")
    wait_until("the leaked client's session ticket", lambda: os.path.exists(sess) and os.path.getsize(sess))
    live = live_connection(site, leaked)
    out = site.run(runbook_blocks(ctx, "emergency-revocation")[0], serial=serial)
    assert re.search(r"dropped 1 connection\(s\) of serial %s issued by CN=Acme Issuing CA,O=Acme"
                     % re.escape(serial), out), out
    live.settimeout(30)
    try:
        closed = live.recv(100) == b""
    except (ssl.SSLError, OSError):
        closed = True
    assert closed, "the leaked certificate's connection is still open after the drop"
    assert_audit_rejected(ctx, site.handshake(leaked, ok=False), "revoked", leaked)
    # "the revoked client cannot resume either"
    assert_audit_rejected(ctx, site.handshake(leaked, ok=False, extra=["-sess_in", sess]),
                          "revoked", leaked)
    assert_audit_ok(ctx, site.handshake(other), other, "acme")


@case("runbook_rotate_ticket_keys")
def runbook_rotate_ticket_keys(ctx):
    """"Rotate session-ticket keys", both steps: after step 1 a ticket
    sealed by the old key still resumes and new tickets are sealed by the
    new key; after step 2 the old key's ticket gives a full handshake (and
    is served) while the new key's resumes."""
    site = Site(ctx, tickets=True)
    step1, step2 = runbook_blocks(ctx, "rotate-ticket-keys")
    leaf, _ = site.client("billing")
    old, new = os.path.join(ctx.dir, "old.sess"), os.path.join(ctx.dir, "new.sess")

    def ticket(path):
        line = site.handshake(leaf, extra=["-sess_out", path])
        wait_until("a session ticket in " + path, lambda: os.path.exists(path) and os.path.getsize(path))
        assert line.get("resumed") is False, line
        os.chmod(path, 0o600)

    def resumed(path):
        line = site.handshake(leaf, extra=["-sess_in", path])
        assert_audit_ok(ctx, line, leaf, "acme")
        return line.get("resumed")

    ticket(old)
    assert resumed(old) is True, "the ticket does not resume at all: the test would prove nothing"
    site.run(step1)
    assert resumed(old) is True, "after step 1 the old key must still open its tickets"
    ticket(new)
    site.run(step2)
    assert resumed(new) is True, "after step 2 the new key's ticket must resume"
    assert resumed(old) is False, "after step 2 the old key's ticket still resumes"
