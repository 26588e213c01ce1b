"""mtlsd as the tests run it: a config file written per test, the process
started until its readiness line, its audit trail read as JSON lines.

The standard setup is one partner named "partner" (the `pki/` fixture
hierarchy with its CRLs, allow_uri spiffe://partner.example/prod/*, PROXY
v2) in front of one backend, and the ECDSA server certificate.
"""

import copy
import os
import re
import subprocess

from harness import (READY_TIMEOUT, EVENT_TIMEOUT, bracket, read_json_lines, free_port,
                     wait_until)

READY_LINE = r"mtlsd ready: listening on"
PORT_RETRIES = 5


class Config:
    """An mtlsd INI file built section by section. Keeps the line number of
    every key it writes so config-error tests can assert the message points
    at the right line."""

    def __init__(self):
        self.sections = []  # (header, [(key, value)])

    def section(self, header, **keys):
        self.sections.append((header, list(keys.items())))
        return self

    def server_cert(self, fx, name="ec", leaf="server"):
        return self.section("server_cert." + name, cert=fx.path(leaf, "chain.pem"),
                            key=fx.path(leaf, "key.pem"))

    def partner(self, name, backend, ca, crl=None, **policy):
        keys = {"ca": ca}
        if crl:
            keys["crl"] = crl
        keys["backend"] = backend
        keys["proxy_protocol"] = "v2"
        keys.update(policy)
        return self.section("partner." + name, **keys)

    def render(self):
        lines, self.where = [], {}
        for header, keys in self.sections:
            lines.append("[%s]" % header)
            for k, v in keys:
                lines.append("%s = %s" % (k, v))
                self.where[(header, k)] = len(lines)
            lines.append("")
        return "\n".join(lines)

    def line_of(self, header, key):
        """1-based line of key in section header (after render())."""
        return self.where[(header, key)]


def standard_config(ctx, backend_addr, ca=None, crl=None, **policy):
    """The one-partner config most tests use; ca/crl replace the partner's
    trust bundle and CRL file, policy adds or replaces partner keys. Unless
    policy gives an allow-list of its own, the partner allows
    spiffe://partner.example/prod/* only."""
    fx = ctx.fx
    if not any(key.startswith("allow_") for key in policy):
        policy["allow_uri"] = "spiffe://partner.example/prod/*"
    return (Config().server_cert(fx)
            .partner("partner", backend_addr, ca or fx.path("pki", "ca-bundle.pem"),
                     crl=crl or fx.path("pki", "crls.pem"), **policy))


def two_partner_config(ctx, backend1_addr, backend2_addr):
    """Partner "partner" (pki/) and partner "partner2" (partner2-pki/), each
    with its own backend."""
    fx = ctx.fx
    return (standard_config(ctx, backend1_addr)
            .partner("partner2", backend2_addr, fx.path("partner2-pki", "ca-bundle.pem"),
                     crl=fx.path("partner2-pki", "crls.pem"),
                     allow_uri="spiffe://partner2.example/svc/*"))


def with_control_socket(config, path):
    """A copy of config whose [mtlsd] section names a control socket of
    this instance's own (unless it names one already): the default
    /run/mtlsd/control.sock would be shared by every mtlsd the tests run at
    once, and left on the host."""
    config = copy.deepcopy(config)
    for header, keys in config.sections:
        if header == "mtlsd":
            if all(key != "control_socket" for key, _ in keys):
                keys.append(("control_socket", path))
            return config
    config.sections.insert(0, ("mtlsd", [("control_socket", path)]))
    return config


class Mtlsd:
    """One running mtlsd. Listens on 127.0.0.1:port; audit lines go to
    NAME-audit.jsonl in the test dir. config None: flags only."""

    def __init__(self, ctx, config, extra_flags=(), name="mtlsd", host="127.0.0.1"):
        self.ctx = ctx
        self.name = name
        self.host = host
        self.control_socket = os.path.join(ctx.dir, name + ".sock")
        self.conf_path = config and ctx.write(
            name + ".conf", with_control_socket(config, self.control_socket).render())
        self.audit_path = os.path.join(ctx.dir, name + "-audit.jsonl")
        self.extra_flags = list(extra_flags)
        self.proc = None
        self.port = None
        self._start()

    def argv(self, port):
        config = ["--config", self.conf_path] if self.conf_path else []
        return [self.ctx.mtlsd_bin] + config + [
            "--listen", "%s:%d" % (bracket(self.host), port), "--audit-log", self.audit_path,
            "--log-level", "debug"] + self.extra_flags

    def _start(self):
        """Start on a free port; a port taken between free_port() and bind
        (a parallel test) is retried, any other early exit is a failure."""
        for attempt in range(PORT_RETRIES):
            port = free_port(self.host)
            proc = self.ctx.spawn("%s-%d" % (self.name, attempt), self.argv(port))
            rx = re.compile(READY_LINE)
            wait_until("%s to print '%s' or exit" % (self.name, READY_LINE),
                       lambda: rx.search(proc.output()) or proc.exited(),
                       timeout=READY_TIMEOUT)
            if rx.search(proc.output()):
                self.proc, self.port = proc, port
                return
            # "Address already in use" (bind) or "address already in use by
            # pid N" (listener.c): a parallel test took the port. Not just
            # "in use": "stay in user space" is in every log.
            if not re.search(r"[Aa]ddress already in use", proc.output()):
                proc.check_alive()
        raise AssertionError("%s: no free port after %d tries" % (self.name, PORT_RETRIES))

    def check_alive(self):
        self.proc.check_alive()

    def audit(self):
        """Every handshake audit line so far."""
        return [e for e in read_json_lines(self.audit_path) if e.get("event") == "handshake"]

    def audit_events(self, event):
        return [e for e in read_json_lines(self.audit_path) if e.get("event") == event]

    def wait_audit(self, n, timeout=EVENT_TIMEOUT):
        """The n-th (1-based) handshake audit line, waiting for it."""
        lines = wait_until("audit line %d in %s" % (n, self.audit_path),
                           lambda: len(self.audit()) >= n and self.audit(),
                           timeout, self.check_alive)
        return lines[n - 1]

    def log(self):
        return self.proc.output()

    def signal(self, signo):
        self.proc.proc.send_signal(signo)

    def wait_exit(self, timeout=EVENT_TIMEOUT):
        """mtlsd's exit code; fails if it is still running after timeout."""
        try:
            return self.proc.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s still running after %ds:\n%s"
                                 % (self.name, timeout, self.log()))
