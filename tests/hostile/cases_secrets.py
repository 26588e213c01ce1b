"""Secrets: key files readable by group or others are refused unless the
operator says otherwise; nothing secret is ever logged (every log and
audit line of a busy mtlsd is searched for the key's bytes); the process
is locked against core dumps and ptrace-style reads."""

import base64
import os
import re
import shutil
import signal
import subprocess

from harness import Skip, case, read_text
from daemon import Mtlsd, Config, standard_config, with_control_socket
from expect import valid_client_works
import peers
from hostile_util import figure, legit_batch

NAMES = ["key_group_readable_refused", "key_group_readable_override_accepted",
         "logs_never_contain_key_bytes", "process_not_dumpable",
         "pin_never_shown_on_any_error_path"]


def config_with_key(ctx, backend, mode, override=False):
    key = os.path.join(ctx.dir, "server-key.pem")
    shutil.copy(ctx.fx.path("server", "key.pem"), key)
    os.chmod(key, mode)
    cfg = Config()
    if override:
        cfg.section("mtlsd", allow_insecure_key_permissions="yes")
    cfg.section("server_cert.ec", cert=ctx.fx.path("server", "chain.pem"), key=key)
    cfg.partner("partner", backend.addr, ctx.fx.path("pki", "ca-bundle.pem"),
                crl=ctx.fx.path("pki", "crls.pem"), allow_uri="spiffe://partner.example/prod/*")
    return cfg, key


@case("key_group_readable_refused")
def key_group_readable_refused(ctx):
    """A 0640 key (group-readable: the case 0644 of tests/integration does
    not cover) stops start-up with the file named and the fix said."""
    backend = ctx.backend()
    cfg, key = config_with_key(ctx, backend, 0o640)
    conf = ctx.write("mtlsd.conf", cfg.render())
    r = subprocess.run([ctx.mtlsd_bin, "--config", conf, "--listen", "127.0.0.1:1"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, "mtlsd started with a group-readable key: %r" % r
    assert key in r.stderr and "chmod 600" in r.stderr, r.stderr
    figure("key_perms", mode="0640", result="refused")


@case("key_group_readable_override_accepted")
def key_group_readable_override_accepted(ctx):
    """The twin: allow_insecure_key_permissions = yes is the explicit
    override; mtlsd starts (and says so) and serves."""
    backend = ctx.backend()
    cfg, key = config_with_key(ctx, backend, 0o640, override=True)
    mtlsd = Mtlsd(ctx, cfg)
    valid_client_works(ctx, mtlsd, backend, audit_n=1, conn=1)
    figure("key_perms", mode="0640", override="yes", result="served")


def secret_needles(key_path):
    """What must never appear in a log: each base64 line of the key's PEM,
    the private scalar in hex (as openssl prints it, colon-free), and the
    DER bytes in base64 and hex, cut in 24-character windows."""
    pem = read_text(key_path)
    needles = {line for line in pem.splitlines()
               if line and not line.startswith("-----") and len(line) >= 16}
    text = subprocess.run(["openssl", "pkey", "-in", key_path, "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    m = re.search(r"priv:\s*\n((?:\s+[0-9a-f:]+\n)+)", text)
    assert m, "no private scalar in openssl's output:\n" + text
    priv = re.sub(r"[\s:]", "", m.group(1))
    der = base64.b64decode("".join(l for l in pem.splitlines() if not l.startswith("-----")))
    for blob in (priv, der.hex(), base64.b64encode(der).decode()):
        for i in range(0, max(1, len(blob) - 24), 12):
            needles.add(blob[i:i + 24])
    return needles


@case("logs_never_contain_key_bytes")
def logs_never_contain_key_bytes(ctx):
    """mtlsd at debug level through: accepted and rejected handshakes, a
    reload, a refused reload whose key does not match its certificate, and
    shutdown. No log or audit line holds any piece of the server key, the
    client keys or the partner CA keys that the test knows."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr))
    ok, errors = legit_batch(ctx, mtlsd.port, 20)
    assert ok == 20, errors
    peers.s_client(ctx, mtlsd.port, "client-revoked", send=b"x\n")
    peers.s_client(ctx, mtlsd.port, None, send=b"x\n")
    mtlsd.signal(signal.SIGHUP)
    mtlsd.proc.wait_line(r"reload \(SIGHUP\): generation 2 published")
    # A broken reload: the server key replaced by a client's key.
    good_conf = read_text(mtlsd.conf_path)
    ctx.write(os.path.basename(mtlsd.conf_path), good_conf.replace(
        ctx.fx.path("server", "key.pem"), ctx.fx.path("client-ec", "key.pem")))
    mtlsd.signal(signal.SIGHUP)
    mtlsd.proc.wait_line(r"reload \(SIGHUP\) refused")
    mtlsd.signal(signal.SIGTERM)
    mtlsd.wait_exit()
    keys = [ctx.fx.path(n, "key.pem") for n in ("server", "client-ec", "client-revoked")]
    keys = [k for k in keys if os.path.exists(k)]
    texts = {p: read_text(p) for p in [mtlsd.proc.log, mtlsd.audit_path]}
    scanned = sum(len(t) for t in texts.values())
    found = []
    needles = 0
    for k in keys:
        for needle in secret_needles(k):
            needles += 1
            for p, t in texts.items():
                if needle in t:
                    found.append((k, p, needle))
    figure("secrets_in_logs", keys=len(keys), needles=needles, log_bytes=scanned,
           found=len(found))
    assert scanned > 1000, "the logs are nearly empty: nothing was tested"
    # The search can fail: a log line quoting the key PEM would be caught.
    leaked = "mtlsd: debug: " + read_text(keys[0])
    assert all(any(n in leaked for n in secret_needles(k)) for k in keys[:1]), \
        "the needles do not match the key's own PEM: the search proves nothing"
    assert not found, "key material in logs: %r" % found[:5]


@case("process_not_dumpable")
def process_not_dumpable(ctx):
    """mtlsd locks itself down after start-up (service.c: PR_SET_NO_NEW_PRIVS
    and PR_SET_DUMPABLE 0 after the privilege drop), so a crash leaves no
    core with keys in it and no process of its uid can read its memory.
    The kernel shows both: NoNewPrivs in /proc/PID/status, and a
    non-dumpable process's /proc/PID files belong to root instead of its
    own uid. So mtlsd runs as `nobody` here, and its /proc entry must be
    root's while its threads run as nobody."""
    import pwd
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        raise Skip("no user nobody to drop to")
    backend = ctx.backend()
    cfg = standard_config(ctx, backend.addr)
    cfg.sections.insert(0, ("mtlsd", [("user", "nobody")]))
    mtlsd = Mtlsd(ctx, cfg)
    pid = mtlsd.proc.proc.pid
    status = read_text("/proc/%d/status" % pid)
    uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
    owner = os.stat("/proc/%d/status" % pid).st_uid
    figure("lockdown", running_uid=uid, proc_owner=owner,
           no_new_privs=re.search(r"^NoNewPrivs:\s+(\d)", status, re.M).group(1))
    assert uid == nobody.pw_uid, "mtlsd did not drop to nobody: Uid %d" % uid
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M), status
    assert owner == 0, ("/proc/%d belongs to uid %d: mtlsd is dumpable (a core or a "
                        "same-uid reader would see its keys)" % (pid, owner))
    valid_client_works(ctx, mtlsd, backend, audit_n=1, conn=1)


# ---- a PIN in a key URI is never shown ------------------------------------

PIN = "86420975"
TOKEN_URI = "pkcs11:token=pin-test;object=server-key"


def pin_config(ctx, key, cert=True, mtlsd_keys=()):
    """The standard config with key = key (a URI); without cert = when
    cert is False. No engine: the URI goes to OSSL_STORE, which has no
    pkcs11: loader, so every key load fails: no token is needed."""
    c = standard_config(ctx, "127.0.0.1:9")
    header, keys = c.sections[0]
    keys = [(k, key if k == "key" else v) for k, v in keys if cert or k != "cert"]
    c.sections[0] = (header, keys)
    if mtlsd_keys:
        c.sections.insert(0, ("mtlsd", list(mtlsd_keys)))
    return c


def run_out(argv, env=None):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=60, env=env)
    return r.returncode, r.stdout + r.stderr


@case("pin_never_shown_on_any_error_path")
def pin_never_shown_on_any_error_path(ctx):
    """Every error path that names a key reference, at start (mtlsd and
    --check-config, the config file and the flags, mtlsctl doctor in text
    and JSON) and at reload (mtlsctl reload, SIGHUP, mtlsctl status's
    reload.last_error, mtlsd's log, the audit trail), with a pin-value in
    the URI (in the path, in the query, in capitals) and a PIN engine_ctrl.
    Each output must name the reference with the PIN hidden, which proves
    the path was taken, and must not contain the PIN."""
    listen = ["--listen", "127.0.0.1:1"]
    chain = ctx.fx.path("server", "chain.pem")
    outputs = []  # (what, text, the redacted form it must show)

    def start_paths(what, conf, shown, *flags):
        path = ctx.write(what + ".conf", conf.render())
        for mode in (["--check-config"], []):
            rc, out = run_out([ctx.mtlsd_bin, "--config", path] + listen + list(flags) + mode)
            assert rc == 1, "%s %s: exit %d:\n%s" % (what, mode, rc, out)
            outputs.append(("mtlsd %s %s" % (what, " ".join(mode)), out, shown))
        return path

    uri = TOKEN_URI + ";pin-value=" + PIN
    # 1. key without cert: the whole-config check.
    p1 = start_paths("key-without-cert", pin_config(ctx, uri, cert=False), "pin-value=***")
    # 2. the same from flags, and a key URI given with --cert: the key load.
    base = [ctx.mtlsd_bin, "--client-ca", ctx.fx.path("pki", "ca-bundle.pem"),
            "--backend", "127.0.0.1:9"] + listen
    for what, flags in (("flag-key-without-cert", ["--key", uri]),
                        ("flag-key-load", ["--cert", chain, "--key", uri])):
        rc, out = run_out(base + flags + ["--check-config"])
        assert rc == 1, "%s: exit %d:\n%s" % (what, rc, out)
        outputs.append((what, out, "pin-value=***"))
    # 3. the key load from the file: path attribute, query attribute, capitals.
    p3 = start_paths("key-load", pin_config(ctx, uri), "pin-value=***")
    start_paths("key-load-query", pin_config(ctx, TOKEN_URI + "?pin-value=" + PIN),
                "?pin-value=***")
    start_paths("key-load-capitals", pin_config(ctx, TOKEN_URI + ";PIN-VALUE=" + PIN),
                "PIN-VALUE=***")
    # 4. a PIN engine_ctrl the engine refuses.
    start_paths("engine-ctrl-pin", pin_config(ctx, ctx.fx.path("server", "key.pem"),
                                              mtlsd_keys=[("engine", "dynamic"),
                                                          ("engine_ctrl", "PIN:" + PIN)]),
                "engine_ctrl = PIN:***")
    # 5. mtlsctl doctor on those files, text and JSON.
    for path in (p1, p3):
        for fmt in ([], ["--json"]):
            rc, out = run_out([ctx.mtlsctl_bin, "doctor", "--config", path] + fmt)
            outputs.append(("doctor %s %s" % (os.path.basename(path), " ".join(fmt)), out,
                            "pin-value=***" if path == p3 else None))

    # 6. reloads of a running mtlsd: refused, with the reason in every output.
    backend = ctx.backend()
    good = standard_config(ctx, backend.addr)
    mtlsd = Mtlsd(ctx, good)
    ctl = ["--socket", mtlsd.control_socket]
    for what, broken in (("reload-key-without-cert", pin_config(ctx, uri, cert=False)),
                         ("reload-key-load", pin_config(ctx, uri))):
        broken.sections[1] = good.sections[1]  # the same partner and backend
        ctx.write(os.path.basename(mtlsd.conf_path),
                  with_control_socket(broken, mtlsd.control_socket).render())
        rc, out = run_out([ctx.mtlsctl_bin, "reload"] + ctl)
        assert rc == 1, "%s: mtlsctl reload exit %d:\n%s" % (what, rc, out)
        outputs.append(("mtlsctl reload " + what, out, "pin-value=***"))
        rc, out = run_out([ctx.mtlsctl_bin, "status"] + ctl)
        assert rc == 0, out
        outputs.append(("mtlsctl status after " + what, out, "pin-value=***"))
        before = mtlsd.log().count("reload (SIGHUP) refused")
        mtlsd.signal(signal.SIGHUP)
        from harness import wait_until
        wait_until("the SIGHUP reload's refusal",
                   lambda: mtlsd.log().count("reload (SIGHUP) refused") > before,
                   alive=mtlsd.check_alive)
    valid_client_works(ctx, mtlsd, backend, audit_n=1, conn=1)
    mtlsd.signal(signal.SIGTERM)
    mtlsd.wait_exit()
    outputs.append(("mtlsd's log", mtlsd.log(), "pin-value=***"))
    outputs.append(("the audit trail", read_text(mtlsd.audit_path), None))

    leaks = [what for what, text, _ in outputs if PIN in text]
    unproven = [what for what, text, shown in outputs if shown and shown not in text]
    figure("pin_redaction", outputs=len(outputs), bytes=sum(len(t) for _, t, _ in outputs),
           leaks=len(leaks))
    assert not leaks, "the PIN %s is printed by: %s\n\n%s" % (
        PIN, ", ".join(leaks), "\n\n".join("== %s\n%s" % (w, t) for w, t, _ in outputs
                                          if w in leaks))
    assert not unproven, "these outputs do not name the key reference, so the path was not " \
        "taken: %s\n\n%s" % (", ".join(unproven), "\n\n".join(
            "== %s\n%s" % (w, t) for w, t, _ in outputs if w in unproven))
