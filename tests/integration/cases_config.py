"""Configuration errors: mtlsd refuses to start, exits 1 (2 for a usage
error), and its message names the file, and the line and key where there is
one, so the operator knows what to fix. Each has a twin that starts."""

import os
import shutil
import subprocess

from harness import case, free_port
from daemon import Config, standard_config

RUN_TIMEOUT = 30


def run_mtlsd(ctx, *args):
    """Run mtlsd to completion. A config error must make it exit, never
    start serving: a run that outlives RUN_TIMEOUT is a failure."""
    argv = [ctx.mtlsd_bin] + list(args)
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError("mtlsd %s did not exit within %ds" % (args, RUN_TIMEOUT))
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


def run_config(ctx, config, *flags):
    path = ctx.write("mtlsd.conf", config.render())
    rc, out = run_mtlsd(ctx, "--config", path, "--listen", "127.0.0.1:%d" % free_port(),
                        *flags)
    return path, rc, out


def assert_refused(rc, out, *needles, code=1):
    assert rc == code, "expected exit %d, got %d:\n%s" % (code, rc, out)
    for n in needles:
        assert n in out, "the message does not name %r:\n%s" % (n, out)


def at(path, config, key, section="server_cert.ec"):
    """"FILE:LINE" of key in the rendered config: where an error must point."""
    return "%s:%d" % (path, config.line_of(section, key))


def private_key_copy(ctx, leaf, mode):
    path = os.path.join(ctx.dir, "%s-key-%o.pem" % (leaf, mode))
    shutil.copyfile(ctx.fx.path(leaf, "key.pem"), path)
    os.chmod(path, mode)
    return path


def config_with_server_files(ctx, cert, key):
    c = Config().section("server_cert.ec", cert=cert, key=key)
    c.sections += standard_config(ctx, "127.0.0.1:9").sections[1:]
    return c


@case("config_file_missing")
def config_file_missing(ctx):
    path = os.path.join(ctx.dir, "absent.conf")
    rc, out = run_mtlsd(ctx, "--config", path)
    assert_refused(rc, out, path)


@case("config_cert_file_missing")
def config_cert_file_missing(ctx):
    cert = os.path.join(ctx.dir, "no-such-chain.pem")
    c = config_with_server_files(ctx, cert, ctx.fx.path("server", "key.pem"))
    path, rc, out = run_config(ctx, c)
    assert_refused(rc, out, cert, at(path, c, "cert"))


@case("config_key_does_not_match_cert")
def config_key_does_not_match_cert(ctx):
    key = private_key_copy(ctx, "client-ec", 0o600)
    c = config_with_server_files(ctx, ctx.fx.path("server", "chain.pem"), key)
    path, rc, out = run_config(ctx, c)
    assert_refused(rc, out, key, at(path, c, "key"))


@case("config_malformed_pem")
def config_malformed_pem(ctx):
    good = open(ctx.fx.path("server", "chain.pem"), encoding="ascii").read()
    lines = good.splitlines(keepends=True)
    # A certificate whose base64 body is cut short in the middle.
    broken = ctx.write("broken-chain.pem", "".join(lines[:4] + lines[-1:]), 0o644)
    c = config_with_server_files(ctx, broken, ctx.fx.path("server", "key.pem"))
    path, rc, out = run_config(ctx, c)
    assert_refused(rc, out, broken, at(path, c, "cert"))


@case("config_unknown_key")
def config_unknown_key(ctx):
    c = standard_config(ctx, "127.0.0.1:9", frobnicate="yes")
    path, rc, out = run_config(ctx, c)
    assert_refused(rc, out, at(path, c, "frobnicate", "partner.partner"), "'frobnicate'")


@case("config_bad_value")
def config_bad_value(ctx):
    c = standard_config(ctx, "127.0.0.1:9", verify_depth="0")
    path, rc, out = run_config(ctx, c)
    assert_refused(rc, out, at(path, c, "verify_depth", "partner.partner"), "'verify_depth'")


@case("check_config_good")
def check_config_good(ctx):
    """--check-config loads everything (certificates, keys, CAs, CRLs) and
    exits 0 without serving."""
    _, rc, out = run_config(ctx, standard_config(ctx, "127.0.0.1:9"), "--check-config")
    assert rc == 0, "a good config failed --check-config (exit %d):\n%s" % (rc, out)
    assert "mtlsd ready" not in out, out


@case("check_config_bad")
def check_config_bad(ctx):
    c = standard_config(ctx, "127.0.0.1:9", frobnicate="yes")
    path, rc, out = run_config(ctx, c, "--check-config")
    assert_refused(rc, out, path, "frobnicate")


def crls_without_issuing(ctx):
    """pki/'s CRLs without the issuing CA's: that CA of the partner's ca
    has no CRL."""
    fx = ctx.fx
    return ctx.concat("crls-no-issuing.pem", fx.path("pki", "root", "crl.pem"),
                      fx.path("pki", "intermediate", "crl.pem"))


@case("check_config_refuses_ca_without_crl")
def check_config_refuses_ca_without_crl(ctx):
    """crl_missing = fail (the default) and a CA of the partner without its
    CRL: every client under that CA would be refused crl_unavailable.
    --check-config refuses it as a reload would, naming the CA and the crl
    line."""
    crl = crls_without_issuing(ctx)
    c = standard_config(ctx, "127.0.0.1:9", crl=crl)
    path, rc, out = run_config(ctx, c, "--check-config")
    assert_refused(rc, out, at(path, c, "crl", "partner.partner"), crl, "partner Issuing CA",
                   "crl_missing")
    assert "configuration OK" not in out, out


@case("check_config_ca_without_crl_allowed")
def check_config_ca_without_crl_allowed(ctx):
    """The twin: the same files with crl_missing = allow admit the CA's
    clients, so the configuration is fine (a warning says so)."""
    c = standard_config(ctx, "127.0.0.1:9", crl=crls_without_issuing(ctx), crl_missing="allow")
    _, rc, out = run_config(ctx, c, "--check-config")
    assert rc == 0 and "configuration OK" in out, "exit %d:\n%s" % (rc, out)
    assert "no CRL for CA 'CN=partner Issuing CA,O=partner'" in out, out


LOCAL_ISSUER = "unable to get local issuer certificate"


@case("check_config_warns_server_chain_incomplete")
def check_config_warns_server_chain_incomplete(ctx):
    """A cert file holding the server certificate without its
    intermediates loads, and would fail on every client: --check-config
    warns, naming the file and the missing issuer."""
    cert = ctx.fx.path("server", "cert.pem")
    c = config_with_server_files(ctx, cert, ctx.fx.path("server", "key.pem"))
    _, rc, out = run_config(ctx, c, "--check-config")
    assert rc == 0, "exit %d:\n%s" % (rc, out)
    warning = next((line for line in out.splitlines() if LOCAL_ISSUER in line), None)
    assert warning and "warning" in warning and cert in warning, out
    assert "issued by 'CN=partner Issuing CA,O=partner'" in warning, warning


@case("check_config_complete_server_chain_silent")
def check_config_complete_server_chain_silent(ctx):
    """The twins: the full chain (leaf, issuing, intermediate), and the
    same with the root at the end, give no such warning."""
    fx = ctx.fx
    with_root = ctx.concat("chain-with-root.pem", fx.path("server", "chain.pem"),
                           fx.path("pki", "root", "ca.crt"))
    for cert in (fx.path("server", "chain.pem"), with_root):
        c = config_with_server_files(ctx, cert, fx.path("server", "key.pem"))
        _, rc, out = run_config(ctx, c, "--check-config")
        assert rc == 0 and "configuration OK" in out, "exit %d:\n%s" % (rc, out)
        assert LOCAL_ISSUER not in out, "a complete chain got a warning:\n%s" % out


@case("key_file_mode_0644_refused")
def key_file_mode_0644_refused(ctx):
    key = private_key_copy(ctx, "server", 0o644)
    c = config_with_server_files(ctx, ctx.fx.path("server", "chain.pem"), key)
    path, rc, out = run_config(ctx, c, "--check-config")
    assert_refused(rc, out, key, at(path, c, "key"), "chmod 600 " + key)


@case("key_file_mode_0600_accepted")
def key_file_mode_0600_accepted(ctx):
    key = private_key_copy(ctx, "server", 0o600)
    c = config_with_server_files(ctx, ctx.fx.path("server", "chain.pem"), key)
    _, rc, out = run_config(ctx, c, "--check-config")
    assert rc == 0, "a 0600 key was refused (exit %d):\n%s" % (rc, out)


@case("usage_unknown_flag")
def usage_unknown_flag(ctx):
    rc, out = run_mtlsd(ctx, "--no-such-flag")
    assert_refused(rc, out, "--no-such-flag", code=2)


@case("config_ca_bundle_holds_a_leaf")
def config_ca_bundle_holds_a_leaf(ctx):
    """A partner's CA bundle must hold CAs only: a client certificate in it
    would be trusted as an anchor."""
    bundle = ctx.concat("bundle-with-leaf.pem", ctx.fx.path("pki", "ca-bundle.pem"),
                        ctx.fx.path("client-ec", "cert.pem"))
    c = standard_config(ctx, "127.0.0.1:9", ca=bundle)
    path, rc, out = run_config(ctx, c, "--check-config")
    # The certificate named as everywhere else: RFC 2253 (lib/cert_name.h).
    assert_refused(rc, out, bundle, at(path, c, "ca", "partner.partner"),
                   "('CN=client-ec,O=partner')")


@case("config_partner_without_backend")
def config_partner_without_backend(ctx):
    c = Config().server_cert(ctx.fx).section(
        "partner.partner", ca=ctx.fx.path("pki", "ca-bundle.pem"))
    path, rc, out = run_config(ctx, c, "--check-config")
    assert_refused(rc, out, "[partner.partner]", "backend")


@case("config_crl_of_another_partner")
def config_crl_of_another_partner(ctx):
    """A CRL not signed by any of the partner's CAs is a mix-up (and would
    silently revoke nothing): refused, naming the file."""
    crl = ctx.fx.path("partner2-pki", "crls.pem")
    c = standard_config(ctx, "127.0.0.1:9", crl=crl)
    path, rc, out = run_config(ctx, c, "--check-config")
    assert_refused(rc, out, crl, at(path, c, "crl", "partner.partner"))


@case("config_world_writable_refused")
def config_world_writable_refused(ctx):
    """Whoever can write the config can redirect partners' traffic."""
    path = ctx.write("mtlsd.conf", standard_config(ctx, "127.0.0.1:9").render(), 0o666)
    rc, out = run_mtlsd(ctx, "--config", path, "--check-config")
    assert_refused(rc, out, path, "chmod")


def require_root():
    from harness import Skip
    if os.geteuid() != 0:
        raise Skip("the owner and group rules apply when mtlsd runs as root")


@case("config_group_writable_refused_as_root")
def config_group_writable_refused_as_root(ctx):
    """Started as root, a file its group may write is refused: a line in it
    can load code as root (engine, provider, openssl_conf)."""
    require_root()
    path = ctx.write("mtlsd.conf", standard_config(ctx, "127.0.0.1:9").render(), 0o664)
    rc, out = run_mtlsd(ctx, "--config", path, "--listen", "127.0.0.1:1", "--check-config")
    assert_refused(rc, out, path, "writable by its group (mode 0664, owner uid 0 (root))",
                   "chmod 0640 " + path)


@case("config_not_owned_by_root_refused_as_root")
def config_not_owned_by_root_refused_as_root(ctx):
    """Owned by another user, even mode 0600 (the owner can chmod it): refused,
    naming the owner and the chown."""
    require_root()
    path = ctx.write("mtlsd.conf", standard_config(ctx, "127.0.0.1:9").render(), 0o600)
    os.chown(path, 4321, 4321)
    rc, out = run_mtlsd(ctx, "--config", path, "--listen", "127.0.0.1:1", "--check-config")
    assert_refused(rc, out, path, "owned by uid 4321 (mode 0600)", "chown root " + path)


@case("config_root_owned_group_readable_accepted")
def config_root_owned_group_readable_accepted(ctx):
    """The twin: root's file, mode 0640 (the service user's group reads it
    for reloads), is accepted."""
    require_root()
    path = ctx.write("mtlsd.conf", standard_config(ctx, "127.0.0.1:9").render(), 0o640)
    rc, out = run_mtlsd(ctx, "--config", path, "--listen", "127.0.0.1:%d" % free_port(),
                        "--check-config")
    assert rc == 0 and "configuration OK" in out, out


@case("config_duplicate_section")
def config_duplicate_section(ctx):
    c = standard_config(ctx, "127.0.0.1:9")
    c.sections.append(c.sections[-1])
    path, rc, out = run_config(ctx, c, "--check-config")
    assert_refused(rc, out, "[partner.partner]", path)


@case("config_allow_uri_spiffe_rules")
def config_allow_uri_spiffe_rules(ctx):
    """allow_uri patterns of the spiffe scheme follow the SPIFFE ID rules,
    scheme typos included: a pattern that could never match a valid SPIFFE
    ID is refused at load, naming the line, the pattern and the rule. Its
    lower-case twin loads."""
    for pattern, rule in (("spiffe://Acme.Example/prod/*", "the trust domain must be lower case"),
                          ("spifee://acme.example/prod/*", "the scheme is not 'spiffe'"),
                          ("spiffe://acme.example/prod/", "no trailing '/'"),
                          ("spiffe://acme.example/prod/a%20b", "percent-encoding")):
        c = standard_config(ctx, "127.0.0.1:9", allow_uri=pattern)
        path, rc, out = run_config(ctx, c, "--check-config")
        assert_refused(rc, out, at(path, c, "allow_uri", "partner.partner"), pattern, rule)
    c = standard_config(ctx, "127.0.0.1:9", allow_uri="spiffe://acme.example/prod/*")
    _, rc, out = run_config(ctx, c, "--check-config")
    assert rc == 0, "a valid SPIFFE pattern was refused (exit %d):\n%s" % (rc, out)
