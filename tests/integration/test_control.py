#!/usr/bin/env python3
"""The control plane end to end (issue 6): mtlsd's control socket, reload
under load, revocation that bites (reload + drop), session tickets shared
between two mtlsd instances. Uses the integration harness (harness.py,
daemon.py, peers.py); one meson test per case:

    python3 test_control.py reload_under_load     (meson sets MTLSD, MTLSCTL, ...)
"""

import datetime
import re
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.request

import certgen
import harness
import it
from harness import case, wait_until
from daemon import Mtlsd, standard_config
from expect import (assert_audit_ok, assert_audit_rejected, assert_echoed, assert_not_relayed,
                    leaf_facts, valid_client_works)
import peers
from cases_server import resume, session_from

RELOADS = 56            # at least 50: half valid changes, half broken files
LOAD_THREADS = 3
LONG_LIVED = 4


# ---- mtlsd with a control socket -----------------------------------------

def ctl_path(ctx):
    return os.path.join(ctx.dir, "ctl", "control.sock")


def with_control(config, ctx, **keys):
    return config.section("mtlsd", control_socket=ctl_path(ctx), **keys)


def mtlsctl(ctx, *args, sock=None, timeout=150):
    return subprocess.run([ctx.mtlsctl_bin] + list(args) + ["--socket", sock or ctl_path(ctx)],
                          capture_output=True, text=True, timeout=timeout)


def status(ctx, sock=None):
    r = mtlsctl(ctx, "status", sock=sock)
    assert r.returncode == 0, "mtlsctl status failed:\n%s%s" % (r.stdout, r.stderr)
    out = {}
    for line in r.stdout.splitlines():
        key, _, value = line.partition(" ")
        out[key] = value.strip()
    return out


def rewrite(ctx, mtlsd, config):
    """Replace mtlsd's config file (Mtlsd wrote it as NAME.conf)."""
    ctx.write(mtlsd.name + ".conf", config.render())


def frame(body):
    return b"MTC\x01" + struct.pack(">I", len(body)) + body


def raw_request(path, data, timeout=10):
    """Send bytes to the control socket, return the whole reply."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return reply
            reply += chunk


# ---- CRLs made for the test by the fixture's issuing CA -------------------

def issuing_crl_set(ctx, tag, revoked=(), seconds=None):
    """crls.pem of pki/ with the issuing CA's CRL replaced by a new one
    listing revoked (hex serials); nextUpdate in 7 days, or in `seconds`."""
    fx = ctx.fx
    d = os.path.join(ctx.dir, "crl-" + tag)
    os.makedirs(d)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%y%m%d%H%M%SZ")
    with open(os.path.join(d, "index.txt"), "w") as f:
        for serial in revoked:
            serial = serial if len(serial) % 2 == 0 else "0" + serial  # openssl wants whole bytes
            f.write("R\t491231235959Z\t%s,keyCompromise\t%s\tunknown\t/CN=revoked\n" % (now, serial))
    with open(os.path.join(d, "crlnumber"), "w") as f:
        f.write("1000\n")
    cnf = os.path.join(d, "ca.cnf")
    with open(cnf, "w") as f:
        f.write("[ca]\ndefault_ca = c\n[c]\ndatabase = %s/index.txt\ncrlnumber = %s/crlnumber\n"
                "default_md = sha256\n" % (d, d))
    out = os.path.join(d, "issuing.crl.pem")
    due = ["-crlsec", str(seconds)] if seconds else ["-crldays", "7"]
    subprocess.run(["openssl", "ca", "-config", cnf, "-gencrl", "-keyfile",
                    fx.path("pki", "issuing", "ca.key"), "-cert", fx.path("pki", "issuing", "ca.crt"),
                    "-out", out] + due, check=True, capture_output=True)
    return ctx.concat("crls-%s.pem" % tag, fx.path("pki", "root", "crl.pem"),
                      fx.path("pki", "intermediate", "crl.pem"), out)


# ---- load --------------------------------------------------------------------

def client_context(ctx, leaf):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.load_verify_locations(ctx.fx.path("pki", "root", "ca.crt"))
    c.load_cert_chain(ctx.fx.path(leaf, "chain.pem"), ctx.fx.path(leaf, "key.pem"))
    return c


def echo_once(sock, payload):
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed after %d of %d echoed bytes" % (len(got), len(payload)))
        got += chunk
    if got != payload:
        raise AssertionError("echo differs")


class Load:
    """Threads making full handshakes and moving data, plus long-lived
    connections exchanging a line every 100 ms, until stopped. Every
    failure is counted and kept."""

    def __init__(self, ctx, port):
        self.port = port
        self.cctx = client_context(ctx, "client-ec")
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.attempted = self.failed = self.exchanges = self.long_broken = 0
        self.errors = []
        self.long = [self.connect() for _ in range(LONG_LIVED)]
        self.threads = [threading.Thread(target=self.handshakes, daemon=True)
                        for _ in range(LOAD_THREADS)]
        self.threads.append(threading.Thread(target=self.long_lived, daemon=True))
        for t in self.threads:
            t.start()

    def connect(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        return self.cctx.wrap_socket(raw, server_hostname="localhost")

    def note(self, what, e):
        with self.lock:
            self.errors.append("%s: %r" % (what, e))

    def handshakes(self):
        payload = os.urandom(4096)
        while not self.stop.is_set():
            with self.lock:
                self.attempted += 1
            try:
                with self.connect() as s:
                    echo_once(s, payload)
            except Exception as e:  # every failure counts, whatever its kind
                with self.lock:
                    self.failed += 1
                self.note("handshake", e)

    def long_lived(self):
        alive = list(self.long)
        while not self.stop.is_set() and alive:
            for s in list(alive):
                try:
                    echo_once(s, b"still here %f\n" % time.time())
                    with self.lock:
                        self.exchanges += 1
                except Exception as e:
                    alive.remove(s)
                    with self.lock:
                        self.long_broken += 1
                    self.note("established", e)
            self.stop.wait(0.1)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(120)
        for s in self.long:
            s.close()


class LoadgenLoop:
    """bench/loadgen (io_uring, C) making full TLS 1.3 handshakes at the
    rate the machine allows, in back-to-back 3-second runs until stopped;
    each run's JSON report is summed. Absent in a build without bench/, in
    which case the Python load alone runs."""

    def __init__(self, ctx, port):
        self.bin = os.path.join(os.environ.get("MTLS_BUILDDIR", ""), "bench", "loadgen")
        self.available = os.access(self.bin, os.X_OK)
        fx = ctx.fx
        self.argv = [self.bin, "--connect", "127.0.0.1:%d" % port, "--servername", "localhost",
                     "--cert", fx.path("client-ec", "chain.pem"), "--key", fx.path("client-ec", "key.pem"),
                     "--ca", fx.path("pki", "ca-bundle.pem"), "--mode", "handshake",
                     "--concurrency", "8", "--duration", "3", "--warmup", "0", "--timeout", "60"]
        self.handshakes = self.errors = self.runs = 0
        self.reports = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        if self.available:
            self.thread.start()

    def loop(self):
        while not self.stop.is_set():
            r = subprocess.run(self.argv, capture_output=True, text=True, timeout=120)
            try:
                d = json.loads(r.stdout)
            except ValueError:
                d = {"errors_total": 1, "handshakes": 0, "stderr": r.stderr[-2000:]}
            self.runs += 1
            self.handshakes += d.get("handshakes", 0)
            self.errors += d.get("errors_total", 0) + (r.returncode != 0)
            if d.get("errors_total") or r.returncode:
                self.reports.append({"rc": r.returncode, "errors": d.get("errors"),
                                     "stderr": r.stderr[-2000:]})

    def finish(self):
        self.stop.set()
        if self.available:
            self.thread.join(180)


# ---- cases ---------------------------------------------------------------------

def reload_variants(ctx, backend, crl_a, crl_b, crl_expired):
    """(kind, config, what the refusal must name) in the order they run."""
    fx = ctx.fx
    garbage = ctx.write("garbage-ca.pem", "-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                        "-----END CERTIFICATE-----\n")
    both_cas = ctx.concat("old-and-new-ca.pem", fx.path("pki", "ca-bundle.pem"),
                          fx.path("partner2-pki", "ca-bundle.pem"))
    # As the rotation runbook does it: the new CA comes with its CRLs.
    both_crls = ctx.concat("old-and-new-crls.pem", crl_b, fx.path("partner2-pki", "crls.pem"))
    missing = os.path.join(ctx.dir, "missing-ca.pem")

    def base(**kw):
        return with_control(standard_config(ctx, backend.addr, **kw), ctx)

    valid = [
        base(crl=crl_a),
        base(crl=crl_a).server_cert(fx, name="rsa", leaf="server-rsa"),  # ECDSA + RSA at once
        base(ca=both_cas, crl=both_crls),                                  # old and new CA at once
        base(crl=crl_b, allow_dns="*.partner.example"),
    ]
    mismatched = with_control(standard_config(ctx, backend.addr, crl=crl_a), ctx)
    mismatched.sections[0] = ("server_cert.ec", [("cert", fx.path("server", "chain.pem")),
                                                 ("key", fx.path("server-rsa", "key.pem"))])
    broken = [
        (base(ca=missing, crl=crl_a), "missing-ca.pem"),
        (mismatched, "does not match"),
        (base(crl=crl_expired), crl_expired),
        (base(ca=garbage, crl=crl_a), "garbage-ca.pem"),
        (base(ca=both_cas, crl=crl_b), "partner2 Root CA"),               # a new CA without its CRL
    ]
    for i in range(RELOADS):
        if i % 2 == 0:
            yield "valid", valid[(i // 2) % len(valid)], None
        else:
            cfg, names = broken[(i // 2) % len(broken)]
            yield "broken", cfg, names


@case("reload_under_load")
def reload_under_load(ctx):
    """Handshakes and data keep flowing while valid and broken reloads
    alternate: nothing fails because of a reload, and no broken
    configuration is ever applied."""
    backend = ctx.backend()
    crl_a = issuing_crl_set(ctx, "a")
    crl_b = issuing_crl_set(ctx, "b")
    crl_expired = issuing_crl_set(ctx, "expired", seconds=1)
    mtlsd = Mtlsd(ctx, with_control(standard_config(ctx, backend.addr, crl=crl_a), ctx),
                  extra_flags=["--log-level", "info"])
    time.sleep(2)  # crl_expired is now past its nextUpdate
    load = Load(ctx, mtlsd.port)
    loadgen = LoadgenLoop(ctx, mtlsd.port)
    applied = refused = 0
    try:
        wait_until("the load to get going", lambda: load.attempted >= 10, alive=mtlsd.check_alive)
        for kind, config, must_name in reload_variants(ctx, backend, crl_a, crl_b, crl_expired):
            rewrite(ctx, mtlsd, config)
            before = status(ctx)["generation"]
            r = mtlsctl(ctx, "reload")
            after = status(ctx)["generation"]
            if kind == "valid":
                assert r.returncode == 0, "valid reload refused:\n%s%s" % (r.stdout, r.stderr)
                assert int(after) == int(before) + 1, (before, after)
                applied += 1
            else:
                assert r.returncode == 1, "broken reload accepted (%s):\n%s" % (must_name, r.stdout)
                assert must_name in r.stderr, "refusal does not name %r:\n%s" % (must_name, r.stderr)
                assert after == before, "a refused reload changed the generation"
                refused += 1
            mtlsd.check_alive()
        time.sleep(1)  # the last generation serves some handshakes too
    finally:
        load.finish()
        loadgen.finish()
    st = status(ctx)
    print("reload-under-load figures: handshakes attempted=%d failed=%d (python clients with "
          "4 KiB echo: %d/%d; bench/loadgen: %d completed, %d errors in %d runs%s); established "
          "connections=%d broken=%d (exchanges=%d); reloads applied=%d refused=%d; "
          "generation=%s; mtlsd handshakes.total=%s"
          % (load.attempted + loadgen.handshakes + loadgen.errors, load.failed + loadgen.errors,
             load.attempted, load.failed, loadgen.handshakes, loadgen.errors, loadgen.runs,
             "" if loadgen.available else ", not built", LONG_LIVED, load.long_broken,
             load.exchanges, applied, refused, st["generation"], st["handshakes.total"]))
    assert load.failed == 0 and load.long_broken == 0, "\n".join(load.errors[:20])
    assert loadgen.errors == 0, json.dumps(loadgen.reports[:3], indent=1)
    assert applied + refused >= 50 and applied and refused
    assert int(st["reloads.applied"]) == applied and int(st["reloads.refused"]) == refused, st
    assert int(st["generation"]) == 1 + applied, st
    assert load.exchanges > LONG_LIVED, "the long-lived connections never talked"


@case("reload_revoked_then_drop")
def reload_revoked_then_drop(ctx):
    """A new CRL through reload refuses the revoked certificate on its next
    handshake while others pass; its live connection survives the reload
    and is closed by `mtlsctl drop --serial`, the other one is not."""
    backend = ctx.backend()
    ec_serial = leaf_facts(ctx, "client-ec")["serial"]
    crl_path = os.path.join(ctx.dir, "crls-live.pem")
    with open(crl_path, "w") as f:
        f.write(harness.read_text(issuing_crl_set(ctx, "none")))
    mtlsd = Mtlsd(ctx, with_control(standard_config(ctx, backend.addr, crl=crl_path), ctx))
    ec_live = client_context(ctx, "client-ec").wrap_socket(
        socket.create_connection(("127.0.0.1", mtlsd.port), timeout=30), server_hostname="localhost")
    rsa_live = client_context(ctx, "client-rsa").wrap_socket(
        socket.create_connection(("127.0.0.1", mtlsd.port), timeout=30), server_hostname="localhost")
    echo_once(ec_live, b"before the revocation\n")
    echo_once(rsa_live, b"before the revocation\n")

    with open(crl_path, "w") as f:
        f.write(harness.read_text(issuing_crl_set(ctx, "revoked", revoked=[ec_serial])))
    r = mtlsctl(ctx, "reload")
    assert r.returncode == 0, r.stderr
    n = len(mtlsd.audit())
    probe = b"revoked since\n"
    res = peers.s_client(ctx, mtlsd.port, "client-ec", send=probe, expect=None)
    assert_not_relayed(res, probe)
    assert_audit_rejected(ctx, mtlsd.wait_audit(n + 1), "revoked", "client-ec")
    probe = b"not revoked\n"
    assert_echoed(peers.s_client(ctx, mtlsd.port, "client-rsa", send=probe, expect=probe), probe)
    assert_audit_ok(ctx, mtlsd.wait_audit(n + 2), "client-rsa", "partner")
    echo_once(ec_live, b"established connections are untouched by a reload\n")

    r = mtlsctl(ctx, "drop", "--serial", "00:" + ec_serial.lower())
    assert r.returncode == 0 and "dropped 1 " in r.stdout, r.stdout + r.stderr
    ec_live.settimeout(30)
    try:
        closed = ec_live.recv(100) == b""
    except (ssl.SSLError, OSError):
        closed = True
    assert closed, "the dropped connection still delivers data"
    dropped = wait_until("the drop in the audit log", lambda: mtlsd.audit_events("dropped"),
                         alive=mtlsd.check_alive)
    assert len(dropped) == 1 and dropped[0].get("partner") == "partner" and \
        "mtlsctl drop" in dropped[0].get("reason", ""), dropped
    echo_once(rsa_live, b"the other certificate keeps its connection\n")
    r = mtlsctl(ctx, "drop", "--serial", ec_serial, "--issuer", "CN=nobody")
    assert r.returncode == 0 and "dropped 0 " in r.stdout, r.stdout + r.stderr
    echo_once(rsa_live, b"still\n")
    assert len(mtlsd.audit_events("dropped")) == 1, "a drop that matched nothing was audited"

    # A serial with an odd number of hex digits (0x0BADC0FFEE): OpenSSL
    # prints it padded, an operator types it without the zero.
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.load_verify_locations(ctx.fx.path("pki", "root", "ca.crt"))
    cctx.load_cert_chain(*issue_client(ctx, "odd", "0x0BADC0FFEE"))
    odd = cctx.wrap_socket(socket.create_connection(("127.0.0.1", mtlsd.port), timeout=30),
                           server_hostname="localhost")
    echo_once(odd, b"odd serial\n")
    r = mtlsctl(ctx, "drop", "--serial", "badc0ffee", "--issuer", "CN=partner Issuing CA,O=partner")
    assert r.returncode == 0 and "dropped 1 " in r.stdout, r.stdout + r.stderr
    odd.settimeout(30)
    try:
        assert odd.recv(100) == b"", "the dropped connection still delivers data"
    except (ssl.SSLError, OSError):
        pass
    echo_once(rsa_live, b"still\n")
    rsa_live.close()


def still_open(sock, what):
    echo_once(sock, ("still open: %s\n" % what).encode())


def closed_by_mtlsd(sock):
    sock.settimeout(30)
    try:
        return sock.recv(100) == b""
    except (ssl.SSLError, OSError):
        return True


@case("drop_exit_codes_and_unmatched_issuer")
def drop_exit_codes_and_unmatched_issuer(ctx):
    """`mtlsctl drop` keeps its help's promises: a serial that is not hex is
    bad usage (2) and reaches no one; an --issuer that matches none of the
    live connections of that serial says so, names the issuer they have and
    fails (1), closing nothing; the issuer it names drops the connection
    (0); a serial no connection has drops none (0, "dropped 0")."""
    backend = ctx.backend()
    facts = leaf_facts(ctx, "client-ec")
    mtlsd = Mtlsd(ctx, with_control(standard_config(ctx, backend.addr), ctx))
    live = client_context(ctx, "client-ec").wrap_socket(
        socket.create_connection(("127.0.0.1", mtlsd.port), timeout=30), server_hostname="localhost")
    still_open(live, "before")
    for bad in ("zz", "4F:A2:GG"):
        r = mtlsctl(ctx, "drop", "--serial", bad)
        assert r.returncode == 2, "drop --serial %s: exit %d\n%s%s" % (bad, r.returncode, r.stdout,
                                                                       r.stderr)
        assert "--serial '%s': not a serial" % bad in r.stderr, r.stderr
    still_open(live, "after bad serials")
    r = mtlsctl(ctx, "drop", "--serial", facts["serial"], "--issuer", "CN=partner Policy CA,O=partner")
    assert r.returncode == 1, "exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr)
    m = re.search(r"matches none of the 1 live connection\(s\) of serial \S+, so none was dropped; "
                  r"their issuer is '([^']+)' \(issuer_id ([0-9A-Fa-f]+)\)", r.stderr)
    assert m, r.stderr
    still_open(live, "after an issuer that matches nothing")
    assert not mtlsd.audit_events("dropped"), "a drop that matched nothing was audited"
    r = mtlsctl(ctx, "drop", "--serial", "01:02:03:04")
    assert r.returncode == 0 and "dropped 0 " in r.stdout, r.stdout + r.stderr
    still_open(live, "after a serial nobody has")
    # The twin: the issuer as mtlsctl printed it drops the connection.
    r = mtlsctl(ctx, "drop", "--serial", facts["serial"], "--issuer", m.group(1))
    assert r.returncode == 0 and "dropped 1 " in r.stdout, r.stdout + r.stderr
    assert closed_by_mtlsd(live), "the dropped connection still delivers data"
    live.close()


def issue_client(ctx, name, serial):
    """A client certificate of partner pki/ with a chosen serial: (chain, key)."""
    fx = ctx.fx
    d = os.path.join(ctx.dir, "client-" + name)
    os.makedirs(d)
    key, csr, crt, ext = (os.path.join(d, n) for n in ("key.pem", "req.csr", "cert.pem", "ext.cnf"))
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n"
                "subjectAltName=URI:spiffe://partner.example/prod/%s\n" % name)
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-subj", "/CN=client-%s" % name, "-out", csr],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", fx.path("pki", "issuing", "ca.crt"),
                    "-CAkey", fx.path("pki", "issuing", "ca.key"), "-set_serial", serial, "-days", "7",
                    "-extfile", ext, "-out", crt], check=True, capture_output=True)
    chain = ctx.concat("client-%s-chain.pem" % name, crt, fx.path("pki", "issuing", "ca.crt"),
                       fx.path("pki", "intermediate", "ca.crt"))
    return chain, key


@case("drop_serial_is_a_der_integer")
def drop_serial_is_a_der_integer(ctx):
    """A positive serial whose high bit is set has a leading 00 octet in DER
    (0x96ED7BC9AB: 00:96:ED:7B:C9:AB). The audit line prints it so, and
    `mtlsctl drop` reaches it in that form, OpenSSL's (96ED7BC9AB) and with
    the issuer in either DN form. Twins: the negative serial with the same
    digits is another serial (dropped 0, the connection lives), and bad
    input is bad usage (exit 2). The dropped audit event, the drop's
    printout and mtlsd's log all spell the serial like the audit line."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, with_control(standard_config(ctx, backend.addr), ctx))
    leaf = certgen.issue_client(ctx, "high-bit", "/O=partner/CN=high-bit",
                                uris=("spiffe://partner.example/prod/high-bit",), serial="0x96ED7BC9AB")
    spelled = "00:96:ED:7B:C9:AB"
    live = client_context(ctx, leaf).wrap_socket(
        socket.create_connection(("127.0.0.1", mtlsd.port), timeout=30), server_hostname="localhost")
    echo_once(live, b"high bit\n")
    assert mtlsd.wait_audit(1).get("serial") == spelled, mtlsd.audit()

    for bad in (("--serial", "zz"), ("--serial", ":96"), ("--serial", spelled, "--issuer", "XX=partner")):
        r = mtlsctl(ctx, "drop", *bad)
        assert r.returncode == 2, (bad, r.returncode, r.stdout + r.stderr)
    r = mtlsctl(ctx, "drop", "--serial", "-96:ED:7B:C9:AB")
    assert r.returncode == 0 and "dropped 0 " in r.stdout, r.stdout + r.stderr
    # An issuer that matches none of the serial's live connections is said
    # (and is not success): the drop reached nothing.
    r = mtlsctl(ctx, "drop", "--serial", "96ED7BC9AB", "--issuer", "CN=partner Root CA,O=partner")
    assert r.returncode == 1 and "matches none of the 1 live connection(s) of serial " + spelled in r.stderr \
        and "CN=partner Issuing CA,O=partner" in r.stderr, (r.returncode, r.stdout + r.stderr)
    echo_once(live, b"still here\n")

    r = mtlsctl(ctx, "drop", "--serial", "96ed7bc9ab", "--issuer", "/O=partner/CN=partner Issuing CA")
    assert r.returncode == 0 and r.stdout.startswith("dropped 1 connection(s) of serial " + spelled), \
        r.stdout + r.stderr
    live.settimeout(30)
    try:
        assert live.recv(100) == b"", "the dropped connection still delivers data"
    except (ssl.SSLError, OSError):
        pass
    dropped = wait_until("the drop in the audit log", lambda: mtlsd.audit_events("dropped"),
                         alive=mtlsd.check_alive)
    assert len(dropped) == 1 and dropped[0].get("serial") == spelled and \
        dropped[0].get("issuer") == "CN=partner Issuing CA,O=partner", dropped
    assert "drop serial %s issuer" % spelled in mtlsd.log(), mtlsd.log()[-2000:]
    r = mtlsctl(ctx, "drop", "--serial", spelled)
    assert r.returncode == 0 and "dropped 0 " in r.stdout, r.stdout + r.stderr


@case("ticket_keys_shared_across_instances")
def ticket_keys_shared_across_instances(ctx):
    """Two mtlsd reading one ticket-key file resume each other's sessions;
    a previous key kept after the new one still opens old tickets, and once
    rotated out of the file (and reloaded) it no longer does."""
    backend = ctx.backend()
    key1, key2, key3 = os.urandom(80), os.urandom(80), os.urandom(80)
    keyfile = os.path.join(ctx.dir, "ticket.keys")

    def write_keys(*keys):
        with open(keyfile, "wb") as f:
            f.write(b"".join(keys))
        os.chmod(keyfile, 0o600)

    write_keys(key1)
    a = Mtlsd(ctx, standard_config(ctx, backend.addr).section(
        "mtlsd", control_socket=os.path.join(ctx.dir, "a.sock"), ticket_key_file=keyfile), name="mtlsd-a")
    b = Mtlsd(ctx, standard_config(ctx, backend.addr).section(
        "mtlsd", control_socket=os.path.join(ctx.dir, "b.sock"), ticket_key_file=keyfile), name="mtlsd-b")
    sess = os.path.join(ctx.dir, "session.pem")
    session_from(ctx, a, sess)

    resume(ctx, b, sess)
    line = b.wait_audit(1)
    assert line.get("resumed") is True, "B did not resume A's ticket: %r" % line
    assert_audit_ok(ctx, line, "client-ec", "partner")

    write_keys(key2, key1)  # rotation, step 1: new key first, old kept for decryption
    for sock in ("a.sock", "b.sock"):
        r = mtlsctl(ctx, "reload", sock=os.path.join(ctx.dir, sock))
        assert r.returncode == 0, r.stderr
    resume(ctx, b, sess)
    line = b.wait_audit(2)
    assert line.get("resumed") is True, "the previous key no longer opens its tickets: %r" % line

    write_keys(key3, key2)  # step 2: key1 rotated out
    r = mtlsctl(ctx, "reload", sock=os.path.join(ctx.dir, "b.sock"))
    assert r.returncode == 0, r.stderr
    resume(ctx, b, sess)
    line = b.wait_audit(3)
    assert line.get("resumed") is False, "a ticket under a rotated-out key resumed: %r" % line
    assert_audit_ok(ctx, line, "client-ec", "partner")


@case("sighup_reload_applies_and_refuses")
def sighup_reload_applies_and_refuses(ctx):
    """SIGHUP reloads like mtlsctl: a narrower allow-list applies to the next
    handshake; a broken file, or a start-up-only key changed, is refused
    with the file or key in the log and in `mtlsctl status`."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, with_control(standard_config(ctx, backend.addr), ctx))
    probe = b"before\n"
    assert_echoed(peers.s_client(ctx, mtlsd.port, "client-ec", send=probe, expect=probe), probe)

    rewrite(ctx, mtlsd, with_control(standard_config(
        ctx, backend.addr, allow_uri="spiffe://partner.example/prod/app2"), ctx))
    mtlsd.signal(signal.SIGHUP)
    mtlsd.proc.wait_line(r"reload \(SIGHUP\): generation 2 published")
    probe = b"after\n"
    assert_not_relayed(peers.s_client(ctx, mtlsd.port, "client-ec", send=probe, expect=None), probe)
    assert mtlsd.wait_audit(2).get("outcome") != "ok", mtlsd.audit()[-1]
    assert_echoed(peers.s_client(ctx, mtlsd.port, "client-rsa", send=probe, expect=probe), probe)

    missing = os.path.join(ctx.dir, "gone-ca.pem")
    rewrite(ctx, mtlsd, with_control(standard_config(ctx, backend.addr, ca=missing), ctx))
    mtlsd.signal(signal.SIGHUP)
    mtlsd.proc.wait_line(r"reload \(SIGHUP\) refused, generation 2 keeps serving: .*gone-ca\.pem")
    st = status(ctx)
    assert st["generation"] == "2" and st["reload.last_result"] == "refused", st
    assert "gone-ca.pem" in st["reload.last_error"], st

    rewrite(ctx, mtlsd, with_control(standard_config(ctx, backend.addr), ctx, workers="3"))
    r = mtlsctl(ctx, "reload")
    assert r.returncode == 1 and "'workers'" in r.stderr and "restart" in r.stderr, r.stderr
    assert status(ctx)["generation"] == "2"
    assert_echoed(peers.s_client(ctx, mtlsd.port, "client-rsa", send=probe, expect=probe), probe)


def cache_config(ctx, backend, mode, sock):
    return standard_config(ctx, backend.addr).section(
        "mtlsd", control_socket=os.path.join(ctx.dir, sock), session_cache=mode)


@case("session_cache_stateful_resumes_only_locally")
def session_cache_stateful_resumes_only_locally(ctx):
    """session_cache = stateful: the issuing instance resumes the session
    from its memory; another instance cannot and verifies in full."""
    backend = ctx.backend()
    a = Mtlsd(ctx, cache_config(ctx, backend, "stateful", "a.sock"), name="mtlsd-a")
    b = Mtlsd(ctx, cache_config(ctx, backend, "stateful", "b.sock"), name="mtlsd-b")
    assert "stateful" in status(ctx, sock=os.path.join(ctx.dir, "a.sock"))["session_cache"]
    sess = os.path.join(ctx.dir, "session.pem")
    session_from(ctx, a, sess)
    resume(ctx, a, sess)
    assert a.wait_audit(2).get("resumed") is True, a.audit()
    resume(ctx, b, sess)
    line = b.wait_audit(1)
    assert line.get("resumed") is False, line
    assert_audit_ok(ctx, line, "client-ec", "partner")


@case("session_cache_off_never_resumes")
def session_cache_off_never_resumes(ctx):
    """session_cache = off: no ticket is issued, so the next connection of
    the same client is a full handshake on the same instance."""
    backend = ctx.backend()
    a = Mtlsd(ctx, cache_config(ctx, backend, "off", "a.sock"), name="mtlsd-a")
    probe = b"no tickets\n"
    sess = os.path.join(ctx.dir, "session.pem")
    r = peers.s_client(ctx, a.port, "client-ec", send=probe, expect=probe, extra=["-sess_out", sess])
    assert_echoed(r, probe)
    if os.path.exists(sess) and os.path.getsize(sess) > 0:
        resume(ctx, a, sess)
        assert a.wait_audit(2).get("resumed") is False, a.audit()
    assert all(line.get("resumed") is False for line in a.audit()), a.audit()


def short_lived_server_cert(ctx, days):
    """A server certificate from the fixture's issuing CA valid `days` more
    days, with its chain, for `mtlsctl certs` to flag."""
    fx = ctx.fx
    d = os.path.join(ctx.dir, "short-%d" % days)
    os.makedirs(d)
    key, csr, crt = (os.path.join(d, n) for n in ("key.pem", "req.csr", "cert.pem"))
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
                "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-subj", "/CN=short-%d" % days, "-out", csr],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", fx.path("pki", "issuing", "ca.crt"),
                    "-CAkey", fx.path("pki", "issuing", "ca.key"), "-CAcreateserial", "-days", str(days),
                    "-extfile", ext, "-out", crt], check=True, capture_output=True)
    os.chmod(key, 0o600)
    chain = ctx.concat("short-%d-chain.pem" % days, crt, fx.path("pki", "issuing", "ca.crt"),
                       fx.path("pki", "intermediate", "ca.crt"))
    return chain, key


@case("certs_flags_expiry_with_exit_codes")
def certs_flags_expiry_with_exit_codes(ctx):
    """`mtlsctl certs` lists what the running generation loaded (server
    certificate, partner CAs, CRLs) with serial and SHA-256; nothing close
    to expiry exits 0, a server certificate with 20 days left exits 1
    (<=30d), one with 5 days exits 2 (<=7d), as does a stale CRL."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, with_control(standard_config(ctx, backend.addr), ctx))
    r = mtlsctl(ctx, "certs")
    assert r.returncode == 0, r.stdout + r.stderr
    server = leaf_facts(ctx, "server")
    assert server["sha256"] in r.stdout, r.stdout
    for kind in ("server ", "ca ", "intermediate ", "crl "):
        assert any(line.startswith(kind) for line in r.stdout.splitlines()), (kind, r.stdout)
    assert ", 0 flagged" in r.stdout, r.stdout

    for days, code, flag in ((20, 1, "<=30d"), (5, 2, "<=7d")):
        chain, key = short_lived_server_cert(ctx, days)
        config = with_control(standard_config(ctx, backend.addr), ctx)
        config.sections[0] = ("server_cert.ec", [("cert", chain), ("key", key)])
        rewrite(ctx, mtlsd, config)
        assert mtlsctl(ctx, "reload").returncode == 0
        r = mtlsctl(ctx, "certs")
        assert r.returncode == code, (days, r.returncode, r.stdout)
        line = next(l for l in r.stdout.splitlines() if l.startswith("server "))
        assert flag in line and "short-%d" % days in line, line

    stale = issuing_crl_set(ctx, "stale", seconds=1)
    time.sleep(2)
    rewrite(ctx, mtlsd, with_control(standard_config(ctx, backend.addr, crl=stale,
                                                     crl_expired="allow"), ctx))
    assert mtlsctl(ctx, "reload").returncode == 0
    r = mtlsctl(ctx, "certs")
    assert r.returncode == 2 and "STALE" in r.stdout, r.stdout


def crls_without_issuing(ctx):
    """pki/'s CRLs without the issuing CA's (a CA of the partner's ca)."""
    fx = ctx.fx
    return ctx.concat("crls-no-issuing.pem", fx.path("pki", "root", "crl.pem"),
                      fx.path("pki", "intermediate", "crl.pem"))


@case("reload_refuses_ca_without_crl")
def reload_refuses_ca_without_crl(ctx):
    """Removing a CA's CRL under crl_missing = fail would refuse every
    client under that CA: the reload is refused, naming the CA and the crl
    file, and the running generation keeps serving. The twin: the same
    change with that CA's (new) CRL reloads."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, with_control(standard_config(ctx, backend.addr), ctx))
    before = int(status(ctx)["generation"])
    missing = crls_without_issuing(ctx)
    rewrite(ctx, mtlsd, with_control(standard_config(ctx, backend.addr, crl=missing), ctx))
    r = mtlsctl(ctx, "reload")
    assert r.returncode == 1, "a reload that admits nobody under a CA was applied:\n" + r.stdout
    for needle in ("partner Issuing CA", missing, "crl_missing"):
        assert needle in r.stderr, "the refusal does not name %r:\n%s" % (needle, r.stderr)
    assert int(status(ctx)["generation"]) == before
    valid_client_works(ctx, mtlsd, backend, 1, 1)

    rewrite(ctx, mtlsd, with_control(standard_config(ctx, backend.addr,
                                                     crl=issuing_crl_set(ctx, "fresh")), ctx))
    r = mtlsctl(ctx, "reload")
    assert r.returncode == 0, r.stdout + r.stderr
    assert int(status(ctx)["generation"]) == before + 1
    valid_client_works(ctx, mtlsd, backend, 2, 2)


def per_cert_outcomes(text, cn):
    """{outcome: count} of mtlsd_handshakes_total for the certificate cn."""
    out = {}
    for line in text.splitlines():
        if line.startswith("mtlsd_handshakes_total{") and 'subject_cn="%s"' % cn in line:
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            out[outcome] = float(line.rsplit(" ", 1)[1])
    return out


@case("certs_flags_ca_without_crl")
def certs_flags_ca_without_crl(ctx):
    """Started (start-up only warns) with a CA of the partner lacking its
    CRL under crl_missing = fail: `mtlsctl certs` flags that CA (NOCRL,
    exit 2); its client is refused crl_unavailable, and the per-certificate
    counters say crl_unavailable, not other. The twin: with the CRL back
    nothing is flagged."""
    backend = ctx.backend()
    instance = "it-nocrl-%d" % os.getpid()
    ctx.stack.callback(shutil.rmtree, os.path.join("/run/mtlsd", instance), True)
    admin = harness.free_port()
    keys = dict(admin_listen="127.0.0.1:%d" % admin, accounting="off", instance=instance)
    mtlsd = Mtlsd(ctx, with_control(standard_config(ctx, backend.addr, crl=crls_without_issuing(ctx)),
                                    ctx, **keys))
    assert "no CRL for CA 'CN=partner Issuing CA,O=partner'" in mtlsd.log(), mtlsd.log()
    r = mtlsctl(ctx, "certs")
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    flagged = [l for l in r.stdout.splitlines() if "NOCRL" in l]
    assert len(flagged) == 1 and "CN=partner Issuing CA" in flagged[0], r.stdout

    probe = b"refused for want of a CRL\n"
    assert_not_relayed(peers.s_client(ctx, mtlsd.port, "client-ec", send=probe), probe)
    assert_audit_rejected(ctx, mtlsd.wait_audit(1), "crl_unavailable", "client-ec")
    url = "http://127.0.0.1:%d/metrics" % admin
    scrape = lambda: urllib.request.urlopen(url, timeout=10).read().decode()
    counts = wait_until("client-ec's refusal in /metrics",
                        lambda: per_cert_outcomes(scrape(), "client-ec"), alive=mtlsd.check_alive)
    assert counts == {"crl_unavailable": 1}, counts

    rewrite(ctx, mtlsd, with_control(standard_config(ctx, backend.addr), ctx, **keys))
    assert mtlsctl(ctx, "reload").returncode == 0
    r = mtlsctl(ctx, "certs")
    assert "NOCRL" not in r.stdout and r.returncode == 0, (r.returncode, r.stdout)


def as_nobody():
    os.setgid(65534)
    os.setgroups([])
    os.setuid(65534)


@case("control_socket_refuses_non_owner")
def control_socket_refuses_non_owner(ctx):
    """The socket is born 0600 in a 0750 directory; even if an operator
    opens its mode, a peer that is not root, mtlsd's user or in
    control_group is refused by its credentials. Root is served."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, with_control(standard_config(ctx, backend.addr), ctx))
    path = ctl_path(ctx)
    assert os.stat(path).st_mode & 0o777 == 0o600, oct(os.stat(path).st_mode)
    assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o750
    assert status(ctx)["generation"] == "1"
    os.chmod(ctx.dir, 0o755)
    os.chmod(os.path.dirname(path), 0o755)
    os.chmod(path, 0o666)  # the mistake the credential check is there for
    # The system python: the test's own may live under /root, out of nobody's reach.
    probe = ["/usr/bin/python3", "-c",
             "import socket,struct,sys\n"
             "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
             "b=b'cmd=reload\\n'\n"
             "try: s.sendall(b'MTC\\x01'+struct.pack('>I',len(b))+b)\n"
             "except BrokenPipeError: pass  # refused before it read anything\n"
             "sys.stdout.write(s.recv(4096).decode(errors='replace'))\n", path]
    r = subprocess.run(probe, capture_output=True, text=True, timeout=30, preexec_fn=as_nobody)
    assert "status=error" in r.stdout and "permission denied" in r.stdout, r
    wait_until("the refusal in mtlsd's log", lambda: "control: refused pid" in mtlsd.log())
    st = status(ctx)
    assert st["generation"] == "1" and st["reloads.applied"] == "0", st


@case("control_socket_garbage_gets_error")
def control_socket_garbage_gets_error(ctx):
    """Garbage, an oversized length, a malformed body, an unknown command
    and a silent client each get an error (or time out) and mtlsd goes on
    serving both the control socket and TLS."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, with_control(standard_config(ctx, backend.addr), ctx))
    path = ctl_path(ctx)
    cases = [
        (b"GET / HTTP/1.0\r\n\r\n", b"bad magic"),
        (b"MTC\x01\xff\xff\xff\xff", b"larger than 64 KiB"),
        (b"MTC\x02\x00\x00\x00\x00", b"unsupported control-protocol version"),
        (frame(b"cmd=status"), b"malformed body"),
        (frame(b"no equals sign\n"), b"malformed body"),
        (frame(b"cmd=selfdestruct\n"), b"unknown command"),
        (frame(b""), b"no cmd= field"),
    ]
    for data, expect in cases:
        reply = raw_request(path, data)
        assert reply.startswith(b"MTC\x01") and b"status=error" in reply and expect in reply, \
            (data, reply)
    # A client that connects and says nothing is cut off; others are served.
    with socket.socket(socket.AF_UNIX) as silent:
        silent.connect(path)
        st = status(ctx)
        assert st["generation"] == "1", st
    # The twin: a well-formed request is answered with status=ok.
    assert b"status=ok" in raw_request(path, frame(b"cmd=status\n"))
    probe = b"still serving\n"
    assert_echoed(peers.s_client(ctx, mtlsd.port, "client-ec", send=probe, expect=probe), probe)
    mtlsd.check_alive()


def dribble(path, stop, interval=0.5):
    """A control client that sends a status frame one byte per interval,
    reconnecting whenever mtlsd closes it. Returns how often it connected."""
    data, connections = frame(b"cmd=status\n" + b"x=" + b"y" * 60000 + b"\n"), 0
    while not stop.is_set():
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(path)
            except OSError:
                stop.wait(0.1)
                continue
            connections += 1
            try:
                for i in range(len(data)):
                    s.send(data[i:i + 1])
                    if stop.wait(interval):
                        break
            except OSError:
                pass  # cut off at the deadline
    return connections


@case("control_idle_clients_do_not_block_status")
def control_idle_clients_do_not_block_status(ctx):
    """Three clients connect to the control socket and send nothing, two
    send a request a byte every 0.5 s: after 5 s of that, `mtlsctl status`
    from another client still answers within 1 s, every time; the slow ones
    were cut off at the 2 s request deadline (they had to reconnect)."""
    backend = ctx.backend()
    Mtlsd(ctx, with_control(standard_config(ctx, backend.addr), ctx))
    path = ctl_path(ctx)
    stop = threading.Event()
    silent = []
    counts = []
    slow = [threading.Thread(target=lambda: counts.append(dribble(path, stop)), daemon=True)
            for _ in range(2)]
    try:
        for _ in range(3):
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            silent.append(s)
        for t in slow:
            t.start()
        time.sleep(5)
        times = []
        for _ in range(5):
            t0 = time.monotonic()
            st = status(ctx)
            times.append(time.monotonic() - t0)
            assert st["generation"] == "1", st
            time.sleep(0.3)
    finally:
        stop.set()
        for t in slow:
            t.join(10)
        for s in silent:
            s.close()
    print("FIGURE control_slow_clients: silent=3 dribbling=2 status_calls=%d slowest_s=%.3f "
          "dribbler_connections=%s" % (len(times), max(times), counts))
    assert max(times) < 1.0, "mtlsctl status took %.2fs beside idle clients: %r" % (max(times), times)
    assert min(counts) >= 2, "a dribbling client was never cut off: %r" % counts


@case("control_prompt_client_answered_silent_cut")
def control_prompt_client_answered_silent_cut(ctx):
    """The twin: a request sent in three pieces within the deadline is
    answered status=ok, and a client that sends nothing gets the timeout
    error once the 2 s deadline has passed, not before."""
    backend = ctx.backend()
    Mtlsd(ctx, with_control(standard_config(ctx, backend.addr), ctx))
    path = ctl_path(ctx)
    data = frame(b"cmd=status\n")
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        for piece in (data[:3], data[3:10], data[10:]):
            s.sendall(piece)
            time.sleep(0.3)
        reply = s.recv(65536)
    assert reply.startswith(b"MTC\x01") and b"status=ok" in reply, reply
    with socket.socket(socket.AF_UNIX) as silent:
        silent.settimeout(10)
        silent.connect(path)
        t0 = time.monotonic()
        reply = silent.recv(65536)
        waited = time.monotonic() - t0
    assert b"status=error" in reply and b"timed out" in reply, reply
    assert 1.5 <= waited < 6, "the silent client was answered after %.2fs (deadline 2s)" % waited


# ---- the audit log's reopen (logrotate) ----------------------------------

class HandshakeLoad:
    """Threads doing full handshakes (each one audit line) until stopped."""

    def __init__(self, ctx, port, threads=2):
        self.cctx = client_context(ctx, "client-ec")
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.done, self.errors = 0, []
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def run(self):
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), 20) as raw:
                    with self.cctx.wrap_socket(raw, server_hostname="localhost") as tls:
                        echo_once(tls, b"audited\n")
                with self.lock:
                    self.done += 1
            except Exception as e:  # every failure is kept
                with self.lock:
                    self.errors.append(repr(e)[:120])

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def handshake_ids(path):
    return [e["conn"] for e in harness.read_json_lines(path) if e.get("event") == "handshake"]


def rotate(path, suffix):
    """What logrotate does before its postrotate: rename the live file."""
    os.rename(path, path + suffix)
    return path + suffix


@case("audit_reopen_under_load_loses_nothing")
def audit_reopen_under_load_loses_nothing(ctx):
    """Handshakes run without pause while the audit log is renamed twice,
    once followed by `mtlsctl reopen`, once by SIGHUP (both what a
    postrotate may do). mtlsd writes to the new file after each reopen, and
    every handshake's line is in exactly one of the three files: the
    connection ids found are exactly 1..N for the N handshakes made."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, with_control(standard_config(ctx, backend.addr), ctx))
    live = mtlsd.audit_path
    load = HandshakeLoad(ctx, mtlsd.port)
    try:
        wait_until("audited handshakes", lambda: len(handshake_ids(live)) >= 20)
        first = rotate(live, ".1")
        r = mtlsctl(ctx, "reopen")
        assert r.returncode == 0 and "audit log reopened" in r.stdout, (r.stdout, r.stderr)
        wait_until("lines in the reopened file", lambda: len(handshake_ids(live)) >= 20)
        second = rotate(live, ".2")
        mtlsd.signal(signal.SIGHUP)
        wait_until("lines in the file reopened on SIGHUP", lambda: len(handshake_ids(live)) >= 20)
    finally:
        load.finish()
    n = load.done + len(load.errors)
    files = (first, second, live)
    wait_until("every handshake's line", lambda: sum(len(handshake_ids(f)) for f in files) >= n)
    ids = [handshake_ids(f) for f in files]
    found = sorted(i for per_file in ids for i in per_file)
    print("FIGURE audit_reopen: handshakes=%d errors=%d lines_per_file=%s" % (
        n, len(load.errors), "/".join(str(len(x)) for x in ids)))
    assert not load.errors, load.errors[:5]
    assert found == list(range(1, n + 1)), "ids missing or twice: %r" % sorted(
        set(range(1, n + 1)) ^ set(found))[:20]
    assert all(ids), "a file got no line: %r" % [len(x) for x in ids]
    assert "reload (SIGHUP): generation 2 published" in mtlsd.log(), "SIGHUP did not reload"


@case("audit_reopen_failure_keeps_old_file")
def audit_reopen_failure_keeps_old_file(ctx):
    """The twin: when the audit path cannot be opened again (a directory
    sits there), `mtlsctl reopen` exits 1 naming the path and the reason,
    and mtlsd keeps writing to the file it had: no line is lost. Once the
    path is usable again, reopen succeeds and lines go to the new file."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, with_control(standard_config(ctx, backend.addr), ctx))
    live = mtlsd.audit_path
    probe = b"audited\n"
    assert_echoed(peers.s_client(ctx, mtlsd.port, "client-ec", send=probe, expect=probe), probe)
    wait_until("the first line", lambda: handshake_ids(live) == [1])
    old = rotate(live, ".1")
    os.mkdir(live)
    r = mtlsctl(ctx, "reopen")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert live in r.stderr and "Is a directory" in r.stderr, r.stderr
    assert_echoed(peers.s_client(ctx, mtlsd.port, "client-ec", send=probe, expect=probe), probe)
    wait_until("the second line in the old file", lambda: handshake_ids(old) == [1, 2])
    os.rmdir(live)
    r = mtlsctl(ctx, "reopen")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert_echoed(peers.s_client(ctx, mtlsd.port, "client-ec", send=probe, expect=probe), probe)
    wait_until("the third line in the new file", lambda: handshake_ids(live) == [3])
    assert handshake_ids(old) == [1, 2]
    mtlsd.check_alive()


@case("logrotate_snippet_rotates_without_loss")
def logrotate_snippet_rotates_without_loss(ctx):
    """tuning/logrotate.d/mtlsd as shipped (paths, user and mtlsctl's
    socket adapted to the test) run twice by logrotate itself while
    handshakes go on: the rotated files (one compressed by then) and the
    live one together hold every handshake's line exactly once."""
    import gzip
    import pwd
    logrotate = next((p for p in ("/usr/sbin/logrotate", "/usr/bin/logrotate")
                      if os.access(p, os.X_OK)), None)
    if not logrotate:
        raise harness.Skip("logrotate missing (apt-get install logrotate; .ci/install-deps has it)")
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, with_control(standard_config(ctx, backend.addr), ctx))
    live = mtlsd.audit_path
    with open(os.path.join(ctx.srcdir, "tuning", "logrotate.d", "mtlsd")) as f:
        snippet = f.read()
    me = pwd.getpwuid(os.getuid()).pw_name
    for old, new in (("/var/log/mtlsd/audit.json", live),
                     ("/usr/bin/mtlsctl reopen", "%s reopen --socket %s" % (ctx.mtlsctl_bin,
                                                                          ctl_path(ctx))),
                     ("create 0640 mtlsd mtlsd", "create 0640 %s %s" % (me, me))):
        assert old in snippet, "tuning/logrotate.d/mtlsd no longer says %r" % old
        snippet = snippet.replace(old, new)
    conf = ctx.write("logrotate.conf", snippet)
    state = os.path.join(ctx.dir, "logrotate.state")
    load = HandshakeLoad(ctx, mtlsd.port)
    try:
        for rotation in (1, 2):
            wait_until("audited handshakes before rotation %d" % rotation,
                       lambda: len(handshake_ids(live)) >= 20)
            r = subprocess.run([logrotate, "--force", "--state", state, conf],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, "logrotate failed:\n%s%s" % (r.stdout, r.stderr)
        wait_until("lines after the second rotation", lambda: len(handshake_ids(live)) >= 20)
    finally:
        load.finish()
    n = load.done + len(load.errors)

    def all_ids():
        out = handshake_ids(live) + handshake_ids(live + ".1")
        if os.path.exists(live + ".2.gz"):
            with gzip.open(live + ".2.gz", "rt") as f:
                out += [json.loads(line)["conn"] for line in f
                        if line.strip() and json.loads(line).get("event") == "handshake"]
        return sorted(out)
    wait_until("every handshake's line", lambda: len(all_ids()) >= n)
    found = all_ids()
    print("FIGURE logrotate: handshakes=%d files=%s" % (n, sorted(
        f for f in os.listdir(ctx.dir) if f.startswith(os.path.basename(live)))))
    assert not load.errors, load.errors[:5]
    assert os.path.exists(live + ".2.gz"), os.listdir(ctx.dir)
    assert found == list(range(1, n + 1)), "ids missing or twice: %r" % sorted(
        set(range(1, n + 1)) ^ set(found))[:20]


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in harness.CASES:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(it.run(sys.argv[1]))
