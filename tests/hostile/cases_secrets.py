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
from daemon import Mtlsd, Config, standard_config
from expect import valid_client_works
import peers
from hostile_util import figure, legit_batch

NAMES = ["key_group_readable_refused", "key_group_readable_override_accepted",
         "logs_never_contain_key_bytes", "process_not_dumpable"]


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
