#!/usr/bin/env python3
"""mtlsd with its server key in a PKCS#11 token (SoftHSM2 through Debian's
libp11 engine), end to end.

  hsm.py NAME            run one test (meson runs each as its own test)
  hsm.py --list          print every test name

Each test makes its own token in its temp dir (SOFTHSM2_CONF points at a
per-test config; the system token directory is never touched), imports the
fixture `server` key as a private AND a public key object with the same id
(libp11 needs the public object to use an EC key for TLS), and runs the
real mtlsd with `key = pkcs11:token=mtlsd;object=server-key`. The accept and
reject rows reuse tests/integration's harness, daemon and expect modules:
the same peers, the same assertions, only the key is elsewhere.

Exit status: 0 pass, 1 fail, 77 skip (softhsm2, opensc or
libengine-pkcs11-openssl not installed).
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402
from harness import case, free_port  # noqa: E402
from daemon import Mtlsd, standard_config, with_control_socket  # noqa: E402
from expect import (assert_echoed, assert_audit_ok, assert_audit_rejected, assert_identity,  # noqa: E402
                    assert_not_relayed, valid_client_works)
from cases_reject import check_rejected  # noqa: E402
import peers  # noqa: E402

EXIT_SKIP = 77
PIN = "4711"
SO_PIN = "271828"
TOKEN = "mtlsd"
OBJECT = "server-key"
URI = "pkcs11:token=%s;object=%s;type=private" % (TOKEN, OBJECT)
SOFTHSM_MODULES = ["/usr/lib/softhsm/libsofthsm2.so",
                   "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"]
ENGINE_DIRS = ["/usr/lib/x86_64-linux-gnu/engines-3", "/usr/lib/engines-3"]


def softhsm_module():
    for m in SOFTHSM_MODULES:
        if os.path.exists(m):
            return m
    return None


def require_tools():
    missing = [t for t in ("softhsm2-util", "pkcs11-tool") if not shutil.which(t)]
    if not softhsm_module():
        missing.append("libsofthsm2.so")
    if not any(os.path.exists(os.path.join(d, "pkcs11.so")) for d in ENGINE_DIRS):
        missing.append("the pkcs11 engine")
    if missing:
        raise harness.Skip("missing %s: apt-get install softhsm2 opensc libengine-pkcs11-openssl"
                           % ", ".join(missing))


def run(argv, **kw):
    r = subprocess.run(argv, capture_output=True, timeout=60, **kw)
    assert r.returncode == 0, "%s failed: %s" % (argv[0], (r.stdout + r.stderr).decode())
    return r


class Token:
    """A fresh SoftHSM2 token in the test dir holding the server key."""

    def __init__(self, ctx, import_public=True):
        require_tools()
        self.module = softhsm_module()
        tokendir = os.path.join(ctx.dir, "tokens")
        os.mkdir(tokendir)
        conf = ctx.write("softhsm2.conf", "directories.tokendir = %s\nobjectstore.backend = file\n"
                         "log.level = ERROR\n" % tokendir)
        # mtlsd and every tool started from here inherit it.
        os.environ["SOFTHSM2_CONF"] = conf
        run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN,
             "--pin", PIN, "--so-pin", SO_PIN])
        key = ctx.fx.path("server", "key.pem")
        priv = os.path.join(ctx.dir, "key.der")
        pub = os.path.join(ctx.dir, "pub.der")
        run(["openssl", "pkey", "-in", key, "-outform", "DER", "-out", priv])
        run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER", "-out", pub])
        objects = [(priv, "privkey")] + ([(pub, "pubkey")] if import_public else [])
        for path, kind in objects:
            run(["pkcs11-tool", "--module", self.module, "--token-label", TOKEN, "--login",
                 "--pin", PIN, "--write-object", path, "--type", kind, "--id", "01",
                 "--label", OBJECT])
        # The key now lives in the token only.
        os.unlink(priv)
        self.pin_file = ctx.write("pin", PIN + "\n")


def hsm_keys(token, **override):
    keys = {"engine": "pkcs11", "engine_ctrl": "MODULE_PATH:" + token.module,
            "key_pin_file": token.pin_file}
    keys.update(override)
    return {k: v for k, v in keys.items() if v is not None}


def hsm_config(ctx, token, backend_addr, uri=URI, **override):
    """standard_config with the server key in the token."""
    c = standard_config(ctx, backend_addr)
    header, keys = c.sections[0]
    assert header == "server_cert.ec", c.sections
    c.sections[0] = (header, [(k, uri if k == "key" else v) for k, v in keys])
    c.sections.insert(0, ("mtlsd", list(hsm_keys(token, **override).items())))
    return c


def run_mtlsd(ctx, config, *flags):
    path = ctx.write("mtlsd.conf", config.render())
    argv = [ctx.mtlsd_bin, "--config", path, "--listen", "127.0.0.1:%d" % free_port()] + list(flags)
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("mtlsd did not exit: a key error must stop it at start")
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


def assert_refused(rc, out, *needles):
    assert rc == 1, "expected exit 1, got %d:\n%s" % (rc, out)
    for n in needles:
        assert n in out, "the message does not say %r:\n%s" % (n, out)


def served_by_token(ctx, mtlsd, backend, leaf="client-ec"):
    probe = b"signed in the token\n"
    r = peers.s_client(ctx, mtlsd.port, leaf, send=probe, expect=probe)
    assert_echoed(r, probe)
    assert_audit_ok(ctx, mtlsd.wait_audit(1), leaf, "partner")
    assert_identity(ctx, backend.identity(1), leaf, "partner")


# ---- accepted and rejected clients, key in the token ----------------------

@case("hsm_valid_ec_openssl")
def hsm_valid_ec_openssl(ctx):
    token = Token(ctx)
    backend = ctx.backend()
    served_by_token(ctx, Mtlsd(ctx, hsm_config(ctx, token, backend.addr)), backend)


@case("hsm_valid_rsa2048_openssl")
def hsm_valid_rsa2048_openssl(ctx):
    token = Token(ctx)
    backend = ctx.backend()
    served_by_token(ctx, Mtlsd(ctx, hsm_config(ctx, token, backend.addr)), backend, "client-rsa")


@case("hsm_reject_unknown_ca")
def hsm_reject_unknown_ca(ctx):
    token = Token(ctx)
    backend = ctx.backend()
    check_rejected(ctx, "client-unknownca", "unknown_ca", backend=backend,
                   config=hsm_config(ctx, token, backend.addr))


@case("hsm_reject_revoked")
def hsm_reject_revoked(ctx):
    token = Token(ctx)
    backend = ctx.backend()
    check_rejected(ctx, "client-revoked", "revoked", backend=backend,
                   config=hsm_config(ctx, token, backend.addr))


@case("hsm_reject_no_client_cert")
def hsm_reject_no_client_cert(ctx):
    token = Token(ctx)
    backend = ctx.backend()
    check_rejected(ctx, None, "no_certificate", backend=backend,
                   config=hsm_config(ctx, token, backend.addr))


@case("hsm_key_uri_on_command_line")
def hsm_key_uri_on_command_line(ctx):
    """--cert/--key replace the file's server certificate (a key file
    there): the URI works as a flag, kept as written, not made a path."""
    token = Token(ctx)
    backend = ctx.backend()
    c = standard_config(ctx, backend.addr)
    c.sections.insert(0, ("mtlsd", list(hsm_keys(token).items())))
    flags = ["--cert", ctx.fx.path("server", "chain.pem"), "--key", URI]
    served_by_token(ctx, Mtlsd(ctx, c, extra_flags=flags), backend)


@case("hsm_pin_from_environment")
def hsm_pin_from_environment(ctx):
    token = Token(ctx)
    backend = ctx.backend()
    os.environ["MTLSD_TEST_PIN"] = PIN
    config = hsm_config(ctx, token, backend.addr, key_pin_file=None, key_pin_env="MTLSD_TEST_PIN")
    served_by_token(ctx, Mtlsd(ctx, config), backend)


@case("hsm_pin_value_in_uri")
def hsm_pin_value_in_uri(ctx):
    token = Token(ctx)
    backend = ctx.backend()
    config = hsm_config(ctx, token, backend.addr, uri=URI + ";pin-value=" + PIN, key_pin_file=None)
    served_by_token(ctx, Mtlsd(ctx, config), backend)


@case("hsm_pin_source_in_uri")
def hsm_pin_source_in_uri(ctx):
    token = Token(ctx)
    backend = ctx.backend()
    config = hsm_config(ctx, token, backend.addr, uri=URI + "?pin-source=file:" + token.pin_file,
                        key_pin_file=None)
    served_by_token(ctx, Mtlsd(ctx, config), backend)


@case("hsm_pin_source_program_refused")
def hsm_pin_source_program_refused(ctx):
    token = Token(ctx)
    config = hsm_config(ctx, token, "127.0.0.1:9", uri=URI + "?pin-source=%7C/bin/echo", key_pin_file=None)
    rc, out = run_mtlsd(ctx, config)
    assert_refused(rc, out, "pin-source must be file:/ABSOLUTE/PATH")


# ---- what an operator gets wrong: refused at start, clearly ---------------

@case("hsm_wrong_pin_refused")
def hsm_wrong_pin_refused(ctx):
    token = Token(ctx)
    wrong = ctx.write("wrong-pin", "0000\n")
    rc, out = run_mtlsd(ctx, hsm_config(ctx, token, "127.0.0.1:9", key_pin_file=wrong))
    assert_refused(rc, out, "mtlsd.conf:", "refused the PIN", "key_pin_file")


@case("hsm_wrong_pin_value_not_shown")
def hsm_wrong_pin_value_not_shown(ctx):
    token = Token(ctx)
    config = hsm_config(ctx, token, "127.0.0.1:9", uri=URI + ";pin-value=98765", key_pin_file=None)
    rc, out = run_mtlsd(ctx, config)
    assert_refused(rc, out, "refused the PIN", "pin-value=***")
    assert "98765" not in out, "the PIN was printed:\n" + out


@case("hsm_missing_token_refused")
def hsm_missing_token_refused(ctx):
    token = Token(ctx)
    rc, out = run_mtlsd(ctx, hsm_config(ctx, token, "127.0.0.1:9",
                                        uri="pkcs11:token=nosuchtoken;object=server-key"))
    assert_refused(rc, out, "token=nosuchtoken", "found no private key", "token label")


@case("hsm_missing_object_refused")
def hsm_missing_object_refused(ctx):
    token = Token(ctx)
    rc, out = run_mtlsd(ctx, hsm_config(ctx, token, "127.0.0.1:9",
                                        uri="pkcs11:token=mtlsd;object=nosuchkey"))
    assert_refused(rc, out, "object=nosuchkey", "found no private key", "object label")


@case("hsm_ec_key_without_public_object")
def hsm_ec_key_without_public_object(ctx):
    """The brief's finding: libp11 builds an EC key handle from the public
    key object; a token holding only the private object does not serve."""
    token = Token(ctx, import_public=False)
    rc, out = run_mtlsd(ctx, hsm_config(ctx, token, "127.0.0.1:9"))
    assert_refused(rc, out, "mtlsd.conf:", "token's key does not match", "public key object with the same id")


@case("hsm_pin_file_readable_by_others_refused")
def hsm_pin_file_readable_by_others_refused(ctx):
    token = Token(ctx)
    os.chmod(token.pin_file, 0o644)
    rc, out = run_mtlsd(ctx, hsm_config(ctx, token, "127.0.0.1:9"))
    assert_refused(rc, out, token.pin_file, "chmod 600")


@case("hsm_no_engine_refused")
def hsm_no_engine_refused(ctx):
    """Without engine = pkcs11, OpenSSL 3.0 has no pkcs11: loader: say so."""
    token = Token(ctx)
    rc, out = run_mtlsd(ctx, hsm_config(ctx, token, "127.0.0.1:9", engine=None, engine_ctrl=None))
    assert_refused(rc, out, "no engine = configured")


@case("hsm_unknown_engine_refused")
def hsm_unknown_engine_refused(ctx):
    token = Token(ctx)
    rc, out = run_mtlsd(ctx, hsm_config(ctx, token, "127.0.0.1:9", engine="nosuchengine"))
    assert_refused(rc, out, "engine = nosuchengine", "no such engine")


# ---- the Debian way: no MODULE_PATH, p11-kit's registry of modules --------
#
# Without MODULE_PATH libp11 loads p11-kit-proxy.so, which loads every module
# registered in p11-kit's configuration directories (/etc/pkcs11/modules,
# /usr/share/p11-kit/modules; p11-kit ignores the user's for root). Debian's
# packages register theirs there, OpenSC's among them, and OpenSC's module
# starts a GLib thread when it is loaded: before mtlsd drops its privileges.
# The tests register SoftHSM in a module directory of their own, mounted over
# /usr/share/p11-kit/modules in a mount namespace only this mtlsd sees
# (unshare -m): nothing on the host changes, and nothing is left behind.

P11KIT_SYSTEM_MODULES = "/usr/share/p11-kit/modules"


def p11kit_registry(ctx, token, register_softhsm=True):
    """A p11-kit module directory: the system's registrations (OpenSC's,
    whose thread is the point) with SoftHSM registered by this test or not
    at all. Returns (directory, whether a module that starts a thread is in
    it)."""
    if not shutil.which("unshare") or not os.path.isdir(P11KIT_SYSTEM_MODULES):
        raise harness.Skip("needs unshare (util-linux) and p11-kit's %s" % P11KIT_SYSTEM_MODULES)
    if os.geteuid() != 0:
        raise harness.Skip("needs root for a private mount namespace")
    d = os.path.join(ctx.dir, "p11-kit-modules")
    os.mkdir(d)
    threads = False
    for name in sorted(os.listdir(P11KIT_SYSTEM_MODULES)):
        if name.startswith("softhsm"):
            continue  # Debian's own registration of SoftHSM: the test makes its own
        shutil.copy(os.path.join(P11KIT_SYSTEM_MODULES, name), d)
        threads = threads or name.startswith("opensc")
    if register_softhsm:
        with open(os.path.join(d, "mtlsd-test-softhsm.module"), "w") as f:
            f.write("# SoftHSM, registered by tests/hsm for this test only\nmodule: %s\n" % token.module)
    return d, threads


def in_registry(registry, argv):
    """argv run in a mount namespace of its own where p11-kit's module
    directory is registry. exec keeps the pid: it is mtlsd's."""
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
            'mount --bind "$0" %s && exec "$@"' % P11KIT_SYSTEM_MODULES, registry] + list(argv)


class MtlsdInRegistry(Mtlsd):
    def __init__(self, ctx, config, registry, **kw):
        self.registry = registry
        super().__init__(ctx, config, **kw)

    def argv(self, port):
        return in_registry(self.registry, super().argv(port))


def p11kit_config(ctx, token, backend_addr, user="nobody"):
    """Debian's defaults: engine = pkcs11 and no MODULE_PATH."""
    c = hsm_config(ctx, token, backend_addr, engine_ctrl=None)
    if user:
        c.sections[0][1].append(("user", user))
    return c


def thread_credentials(pid):
    """{tid: (comm, status fields)} for every thread of pid."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        base = "/proc/%d/task/%s/" % (pid, tid)
        fields = dict(l.split(":", 1) for l in harness.read_text(base + "status").splitlines() if ":" in l)
        out[int(tid)] = (harness.read_text(base + "comm").strip(), {k: v.strip() for k, v in fields.items()})
    return out


@case("hsm_p11kit_proxy_key_every_thread_dropped")
def hsm_p11kit_proxy_key_every_thread_dropped(ctx):
    """The key in a SoftHSM token found through p11-kit's proxy (no
    MODULE_PATH), user = nobody: mtlsd starts, serves with the token's key,
    and every one of its threads (the library's included) runs as nobody
    with no capability and no_new_privs, as the kernel shows them."""
    token = Token(ctx)
    registry, threads_expected = p11kit_registry(ctx, token)
    os.chmod(ctx.dir, 0o755)  # nobody signs with the token's objects after the drop
    for root, dirs, files in os.walk(os.path.join(ctx.dir, "tokens")):
        for n in dirs + files:
            os.chown(os.path.join(root, n), 65534, 65534)
    backend = ctx.backend()
    mtlsd = MtlsdInRegistry(ctx, p11kit_config(ctx, token, backend.addr), registry)
    served_by_token(ctx, mtlsd, backend)
    creds = thread_credentials(mtlsd.proc.proc.pid)
    for tid, (comm, f) in sorted(creds.items()):
        what = "thread %d (%s): %r" % (tid, comm, f)
        assert f["Uid"].split() == ["65534"] * 4, what
        assert f["Gid"].split() == ["65534"] * 4, what
        assert int(f["CapEff"], 16) == 0 and int(f["CapPrm"], 16) == 0, what
        assert int(f["CapAmb"], 16) == 0 and f["NoNewPrivs"] == "1", what
    library = sorted(comm for comm, _ in creds.values()
                     if comm != "mtlsd" and not comm.startswith("iou-"))  # io_uring's own workers
    print("threads: %d, started by a library: %s" % (len(creds), ", ".join(library) or "none"))
    if threads_expected:
        assert library, ("OpenSC's module is registered but no library thread runs: the test "
                         "no longer shows the drop reaching one (%r)" % creds)


@case("hsm_p11kit_module_not_registered_refused")
def hsm_p11kit_module_not_registered_refused(ctx):
    """The twin: the same token, but SoftHSM not registered with p11-kit:
    the proxy does not see the token, and mtlsd says what to check."""
    token = Token(ctx)
    registry, _ = p11kit_registry(ctx, token, register_softhsm=False)
    path = ctx.write("mtlsd.conf", p11kit_config(ctx, token, "127.0.0.1:9").render())
    argv = in_registry(registry, [ctx.mtlsd_bin, "--config", path, "--listen",
                                  "127.0.0.1:%d" % free_port()])
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert_refused(r.returncode, out, "token=mtlsd", "found no private key", "token label")


@case("hsm_p11kit_library_thread_without_user_refused")
def hsm_p11kit_library_thread_without_user_refused(ctx):
    """The other twin: without user = nothing changes the uids, so nothing
    can take the capabilities of the thread OpenSC's module started. mtlsd
    refuses to run with it, naming the thread and both ways out."""
    token = Token(ctx)
    registry, threads_expected = p11kit_registry(ctx, token)
    if not threads_expected:
        raise harness.Skip("OpenSC's PKCS#11 module (the one that starts a thread) is not "
                           "registered with p11-kit here")
    path = ctx.write("mtlsd.conf", p11kit_config(ctx, token, "127.0.0.1:9", user=None).render())
    argv = in_registry(registry, [ctx.mtlsd_bin, "--config", path, "--listen",
                                  "127.0.0.1:%d" % free_port()])
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert_refused(r.returncode, out, "started by a library before the privilege drop",
                   "set user =", "MODULE_PATH")
    assert re.search(r"thread \d+ \((gmain|gdbus)\)", out), out


# ---- mtlsctl doctor sees the engine and the token key ----------------------

def doctor(ctx, config):
    path = ctx.write("doctor.conf", config.render())
    r = subprocess.run([ctx.mtlsctl_bin, "doctor", "--config", path], capture_output=True,
                       timeout=60)
    return (r.stdout + r.stderr).decode(errors="replace")


@case("hsm_doctor_reports_token_key")
def hsm_doctor_reports_token_key(ctx):
    token = Token(ctx)
    out = doctor(ctx, hsm_config(ctx, token, "127.0.0.1:9"))
    assert re.search(r"pass\s+crypto-providers\s+providers: default; engine: pkcs11", out), out
    assert re.search(r"pass\s+token-key 1\s+pkcs11:token=mtlsd;object=server-key", out), out


@case("hsm_doctor_missing_object_fails")
def hsm_doctor_missing_object_fails(ctx):
    token = Token(ctx)
    out = doctor(ctx, hsm_config(ctx, token, "127.0.0.1:9", uri="pkcs11:token=mtlsd;object=nosuchkey"))
    assert re.search(r"fail\s+token-key 1\s+pkcs11:token=mtlsd;object=nosuchkey", out), out


# ---- providers: by name, and with parameters through openssl_conf ---------

PROVIDER_CONF = """openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
legacy = legacy_sect
[default_sect]
activate = 1
[legacy_sect]
activate = 1
"""


def provider_config(ctx, **mtlsd_keys):
    c = standard_config(ctx, "127.0.0.1:9")
    c.sections.insert(0, ("mtlsd", list(mtlsd_keys.items())))
    return c


@case("provider_by_name_loaded")
def provider_by_name_loaded(ctx):
    """provider = legacy: loaded, and default kept (TLS needs it)."""
    out = doctor(ctx, provider_config(ctx, provider="legacy"))
    assert re.search(r"pass\s+crypto-providers\s+providers: (legacy, default|default, legacy)", out), out


@case("provider_unknown_refused")
def provider_unknown_refused(ctx):
    out = doctor(ctx, provider_config(ctx, provider="nosuchprovider"))
    assert re.search(r"fail\s+crypto-providers\s+provider = nosuchprovider", out), out
    rc, out = run_mtlsd(ctx, provider_config(ctx, provider="nosuchprovider"))
    assert_refused(rc, out, "provider = nosuchprovider", "provider_path")


@case("provider_from_openssl_conf")
def provider_from_openssl_conf(ctx):
    conf = ctx.write("providers.cnf", PROVIDER_CONF)
    out = doctor(ctx, provider_config(ctx, openssl_conf=conf))
    assert re.search(r"pass\s+crypto-providers\s+providers: .*legacy", out), out


@case("provider_openssl_conf_not_root_owned_refused")
def provider_openssl_conf_not_root_owned_refused(ctx):
    """openssl_conf loads providers and engines, so it follows the config
    file's rule: started as root, a file another user owns is refused before
    OpenSSL reads it (provider_from_openssl_conf is the twin: root's file)."""
    if os.geteuid() != 0:
        raise harness.Skip("the owner rule applies when mtlsd runs as root")
    conf = ctx.write("providers.cnf", PROVIDER_CONF)
    os.chown(conf, 4321, 4321)
    rc, out = run_mtlsd(ctx, provider_config(ctx, openssl_conf=conf))
    assert_refused(rc, out, "openssl_conf = " + conf + ": owned by uid 4321", "chown root " + conf)


@case("provider_openssl_conf_broken_refused")
def provider_openssl_conf_broken_refused(ctx):
    conf = ctx.write("providers.cnf", PROVIDER_CONF.replace("legacy_sect]", "legacy_sect"))
    rc, out = run_mtlsd(ctx, provider_config(ctx, openssl_conf=conf))
    assert_refused(rc, out, "openssl_conf = " + conf, "could not apply it")


# ---- reload (SIGHUP): token keys reload; a failed reload keeps the old key --

def reload_and_wait(mtlsd, outcome):
    """SIGHUP, then wait for the reload's log line: 'published' or 'refused'."""
    before = mtlsd.log().count("reload (")
    mtlsd.signal(signal.SIGHUP)
    harness.wait_until("a reload log line", lambda: mtlsd.log().count("reload (") > before,
                       alive=mtlsd.check_alive)
    last = [l for l in mtlsd.log().splitlines() if "reload (" in l][-1]
    assert outcome in last, "expected a %s reload, got: %s" % (outcome, last)
    return last


def rewrite_config(ctx, mtlsd, config):
    """Replace the running mtlsd's config file, keeping what Mtlsd added
    (its own control socket, fixed at start-up)."""
    ctx.write(os.path.basename(mtlsd.conf_path),
              with_control_socket(config, mtlsd.control_socket).render())


def still_served(ctx, mtlsd, backend, audit_n, conn):
    probe = b"still signed in the token\n"
    r = peers.s_client(ctx, mtlsd.port, "client-ec", send=probe, expect=probe)
    assert_echoed(r, probe)
    assert_audit_ok(ctx, mtlsd.wait_audit(audit_n), "client-ec", "partner")
    assert_identity(ctx, backend.identity(conn), "client-ec", "partner")


@case("hsm_reload_with_token_key")
def hsm_reload_with_token_key(ctx):
    token = Token(ctx)
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, hsm_config(ctx, token, backend.addr))
    served_by_token(ctx, mtlsd, backend)
    reload_and_wait(mtlsd, "published")
    still_served(ctx, mtlsd, backend, 2, 2)


@case("hsm_reload_wrong_pin_keeps_old_key")
def hsm_reload_wrong_pin_keeps_old_key(ctx):
    token = Token(ctx)
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, hsm_config(ctx, token, backend.addr))
    served_by_token(ctx, mtlsd, backend)
    ctx.write("pin", "0000\n")
    line = reload_and_wait(mtlsd, "refused")
    assert "PIN differs" in line and "restart mtlsd" in line, line
    still_served(ctx, mtlsd, backend, 2, 2)
    ctx.write("pin", PIN + "\n")
    reload_and_wait(mtlsd, "published")
    still_served(ctx, mtlsd, backend, 3, 3)


@case("hsm_reload_missing_object_keeps_old_key")
def hsm_reload_missing_object_keeps_old_key(ctx):
    token = Token(ctx)
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, hsm_config(ctx, token, backend.addr))
    served_by_token(ctx, mtlsd, backend)
    broken = hsm_config(ctx, token, backend.addr, uri="pkcs11:token=mtlsd;object=nosuchkey")
    rewrite_config(ctx, mtlsd, broken)
    line = reload_and_wait(mtlsd, "refused")
    assert "found no private key" in line and "object=nosuchkey" in line, line
    still_served(ctx, mtlsd, backend, 2, 2)


@case("hsm_reload_engine_change_needs_restart")
def hsm_reload_engine_change_needs_restart(ctx):
    """Providers and engines stay loaded for the process: a reload that
    changes them says they apply at the next restart, and still reloads."""
    token = Token(ctx)
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, hsm_config(ctx, token, backend.addr))
    served_by_token(ctx, mtlsd, backend)
    changed = hsm_config(ctx, token, backend.addr, provider="default")
    rewrite_config(ctx, mtlsd, changed)
    reload_and_wait(mtlsd, "published")
    assert "take effect when mtlsd restarts" in mtlsd.log(), mtlsd.log()
    still_served(ctx, mtlsd, backend, 2, 2)


@case("hsm_reload_same_engine_no_warning")
def hsm_reload_same_engine_no_warning(ctx):
    token = Token(ctx)
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, hsm_config(ctx, token, backend.addr))
    served_by_token(ctx, mtlsd, backend)
    reload_and_wait(mtlsd, "published")
    assert "take effect when mtlsd restarts" not in mtlsd.log(), mtlsd.log()


# ---- key files owned by the service user (lib/pemutil.c) ---------------------

@case("keyowner_service_user_key_starts_and_reloads")
def keyowner_service_user_key_starts_and_reloads(ctx):
    """user = nobody, key file owned by nobody (mode 0600): accepted at start
    as root and again on reload, after the drop to nobody."""
    if os.geteuid() != 0:
        raise harness.Skip("needs root to start as root and drop to nobody")
    os.chmod(ctx.dir, 0o755)  # nobody reads the config and key here on reload
    key = os.path.join(ctx.dir, "server-key.pem")
    shutil.copyfile(ctx.fx.path("server", "key.pem"), key)
    os.chmod(key, 0o600)
    os.chown(key, 65534, 65534)
    backend = ctx.backend()
    c = standard_config(ctx, backend.addr)
    header, keys = c.sections[0]
    c.sections[0] = (header, [(k, key if k == "key" else v) for k, v in keys])
    c.sections.insert(0, ("mtlsd", [("user", "nobody"), ("group", "nogroup")]))
    mtlsd = Mtlsd(ctx, c)
    os.chmod(mtlsd.conf_path, 0o644)
    served_by_token(ctx, mtlsd, backend)
    reload_and_wait(mtlsd, "published")
    still_served(ctx, mtlsd, backend, 2, 2)


@case("keyowner_other_user_key_refused")
def keyowner_other_user_key_refused(ctx):
    """The twin: a key owned by another user than root, mtlsd's or the
    configured one is refused at start, naming the chown to run."""
    if os.geteuid() != 0:
        raise harness.Skip("needs root to chown")
    key = os.path.join(ctx.dir, "server-key.pem")
    shutil.copyfile(ctx.fx.path("server", "key.pem"), key)
    os.chmod(key, 0o600)
    os.chown(key, 4321, 4321)
    c = standard_config(ctx, "127.0.0.1:9")
    header, keys = c.sections[0]
    c.sections[0] = (header, [(k, key if k == "key" else v) for k, v in keys])
    c.sections.insert(0, ("mtlsd", [("user", "nobody"), ("group", "nogroup")]))
    rc, out = run_mtlsd(ctx, c)
    assert_refused(rc, out, "owned by uid 4321", "chown 65534")


# ---- asynchronous engines: SSL_ERROR_WANT_ASYNC through io_uring -----------

def async_engine_path(ctx):
    path = os.path.join(os.environ["MTLS_BUILDDIR"], "tests", "hsm", "mtlsd_async_engine.so")
    assert os.path.exists(path), "build the test engine first: ninja mtlsd_async_engine.so"
    return path


def async_config(ctx, backend_addr, ssl_async):
    """The fixture server key in a file, signed through the pausing engine."""
    c = standard_config(ctx, backend_addr)
    header, keys = c.sections[0]
    uri = "asynctest:" + ctx.fx.path("server", "key.pem")
    c.sections[0] = (header, [(k, uri if k == "key" else v) for k, v in keys])
    c.sections.insert(0, ("mtlsd", [("engine", "dynamic"),
                                    ("engine_ctrl", "SO_PATH:" + async_engine_path(ctx)),
                                    ("engine_ctrl", "LOAD"),
                                    ("ssl_async", "yes" if ssl_async else "no")]))
    return c


def engine_events(path):
    return harness.read_text(path).split()


def asan_logs_to_stderr():
    """OpenSSL runs an async job on a stack of its own (swapcontext); ASan
    warns once when a job pauses (google/sanitizers#189, a known false
    positive) and .ci/sanitize fails on any report file. Under ASan, let
    this mtlsd report to its own log instead: a real error still halts it
    and fails the test."""
    opts = os.environ.get("ASAN_OPTIONS")
    if opts:
        kept = [o for o in opts.split(":") if not o.startswith("log_path=")]
        os.environ["ASAN_OPTIONS"] = ":".join(kept + ["log_path=stderr"])


@case("async_engine_handshake_pauses_and_resumes")
def async_engine_handshake_pauses_and_resumes(ctx):
    """ssl_async = yes: the signature pauses the job, mtlsd polls the wait
    fd through io_uring, resumes, and the client gets through."""
    log = os.path.join(ctx.dir, "engine-events")
    os.environ["MTLSD_ASYNC_ENGINE_LOG"] = log
    asan_logs_to_stderr()
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, async_config(ctx, backend.addr, ssl_async=True))
    served_by_token(ctx, mtlsd, backend)
    events = engine_events(log)
    assert "paused" in events and "resumed" in events, events
    assert events.count("paused") == events.count("resumed"), events


@case("async_engine_without_ssl_async_signs_at_once")
def async_engine_without_ssl_async_signs_at_once(ctx):
    """The twin: without ssl_async no job exists and nothing pauses."""
    log = os.path.join(ctx.dir, "engine-events")
    os.environ["MTLSD_ASYNC_ENGINE_LOG"] = log
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, async_config(ctx, backend.addr, ssl_async=False))
    served_by_token(ctx, mtlsd, backend)
    events = engine_events(log)
    assert "sync" in events and "paused" not in events, events


@case("async_engine_stalled_job_times_out")
def async_engine_stalled_job_times_out(ctx):
    """A hung accelerator: the paused job's fd never becomes readable. The
    handshake timeout closes that connection (its poll cancelled, its SSL
    freed with the job still paused) and mtlsd serves the next client once
    the hardware answers again."""
    log = os.path.join(ctx.dir, "engine-events")
    stall = os.path.join(ctx.dir, "stall")
    os.environ["MTLSD_ASYNC_ENGINE_LOG"] = log
    os.environ["MTLSD_ASYNC_ENGINE_STALL"] = stall
    asan_logs_to_stderr()
    open(stall, "w").close()
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, async_config(ctx, backend.addr, ssl_async=True),
                  extra_flags=["--handshake-timeout", "2s"])
    probe = b"must never reach the backend\n"
    r = peers.s_client(ctx, mtlsd.port, "client-ec", send=probe, expect=None)
    assert_not_relayed(r, probe)
    assert_audit_rejected(ctx, mtlsd.wait_audit(1), "timeout")
    assert "paused" in engine_events(log), engine_events(log)
    os.unlink(stall)
    valid_client_works(ctx, mtlsd, backend, audit_n=2, conn=1)
    assert backend.connections() == 1, backend.events()


def main(argv):
    if argv[1:] == ["--list"]:
        print("\n".join(n for n in sorted(harness.CASES) if n.startswith(("hsm_", "async_", "provider_", "keyowner_"))))
        return 0
    if len(argv) != 2 or argv[1] not in harness.CASES:
        print("usage: hsm.py NAME | --list", file=sys.stderr)
        return 2
    name = argv[1]
    ctx = None
    try:
        with contextlib.ExitStack() as stack:
            ctx = harness.Ctx(name, stack)
            harness.CASES[name](ctx)
    except harness.Skip as e:
        print("SKIP %s: %s" % (name, e))
        return EXIT_SKIP
    except Exception:
        traceback.print_exc()
        if ctx:
            for f in sorted(os.listdir(ctx.dir)):
                if f.endswith(".log"):
                    print("----- %s\n%s" % (f, harness.tail(harness.read_text(os.path.join(ctx.dir, f)))))
            print("FAIL %s: logs kept in %s" % (name, ctx.dir))
        return 1
    ctx.remove()
    print("PASS %s" % name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
