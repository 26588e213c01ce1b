#!/usr/bin/env python3
"""A stranger with 20,000 certificates cannot evict a partner from the
accounting, nor charge its failures to a partner (issue 14, item 3).

Against a running mtlsd (its own accounting instance, --admin-listen):
  1. the partners' clients first: client-ec (ok x3), client-partner2
     (ok x2) and, the twin of what follows, client-revoked: a legitimate
     partner's failing client, which IS charged to partner (its own record,
     revoked=1, partner's revoked series);
  2. then 20,000 distinct certificates made in process by
     tests/helpers/client_flood: 15,000 self-signed ones, and 5,000 forged
     ones whose issuer name and key identifier are copied from partner's
     issuing CA (what anyone can make of a public CA certificate);
  3. every partner record is still in the accounting, with exactly the
     counts of step 1; nothing was evicted; the strangers are counted per
     outcome under the one unattributed record (unknown_ca 15,000,
     bad_signature 5,000) and on no partner's series;
  4. `mtlsctl stats --prometheus` and /metrics pass `promtool check
     metrics`.

    test_bpf_flood.py bpf        the BPF maps (and a raw bpftool dump)
    test_bpf_flood.py fallback   the in-process fallback (mtlsd run without
                                 CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)

The bpf case exits 77 only when BPF cannot be loaded on this machine at
all (not root, no bpffs); as root an mtlsd that does not attach its
program fails it. The fallback case runs everywhere. Environment: MTLSD, MTLSCTL, MTLS_FIXTURES, CLIENT_FLOOD, BPFTOOL.
"""
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402
import peers  # noqa: E402
from daemon import Mtlsd, two_partner_config  # noqa: E402

SKIP = 77
SELF_SIGNED = 15_000
FORGED = 5_000
PARTNERS_SENT = [  # fixture leaf, bucket, handshakes, partner
    ("client-ec", "ok", 3, "partner"),
    ("client-partner2", "ok", 2, "partner2"),
    ("client-revoked", "revoked", 1, "partner"),
]
BUCKETS = ["ok", "no_certificate", "unknown_ca", "expired", "not_yet_valid", "revoked",
           "bad_eku", "policy_denied", "bad_signature", "protocol_error", "timeout", "other"]

failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what)
    if not cond:
        failures.append(what)


def bpf_loadable():
    """Why BPF cannot be loaded here at all, or None."""
    if os.geteuid() != 0:
        return "loading BPF programs needs root (CI runs this as root)"
    if not os.path.ismount("/sys/fs/bpf"):
        p = subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], capture_output=True)
        if p.returncode != 0:
            return "bpffs is not mounted on /sys/fs/bpf and cannot be"
    return None


def promtool():
    for path in ("/usr/bin/promtool", "/usr/local/bin/promtool"):
        if os.access(path, os.X_OK):
            return path
    raise AssertionError("promtool missing: apt-get install prometheus (.ci/install-deps)")


def promtool_ok(text, label):
    p = subprocess.run([promtool(), "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=120)
    why = (p.stdout + p.stderr).decode(errors="replace")
    check(p.returncode == 0, "%s passes promtool check metrics%s" % (label, "" if p.returncode == 0
                                                                        else ":\n" + why[-2000:]))


def identity(pem):
    """(issuer key id hex, "AA:BB.." serial) as the openssl CLI reads them."""
    def x509(*args):
        return subprocess.run(["openssl", "x509", "-in", pem, "-noout"] + list(args),
                              capture_output=True, text=True, check=True).stdout
    serial = x509("-serial").strip().split("=", 1)[1]
    serial = ("0" + serial) if len(serial) % 2 else serial
    akid = x509("-ext", "authorityKeyIdentifier").splitlines()[1].strip()
    akid = akid.replace("keyid:", "").replace(":", "").lower()
    return akid, ":".join(serial[i:i + 2] for i in range(0, len(serial), 2)).upper()


def audit_lines(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def stats(ctx, instance, runtime, source, *extra):
    p = subprocess.run([ctx.mtlsctl_bin, "stats", "--instance", instance, "--source", source,
                        "--runtime-dir", runtime] + list(extra),
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError("mtlsctl stats failed: " + p.stderr)
    return p.stdout


def flood(ctx, port, count, *extra):
    argv = [os.environ["CLIENT_FLOOD"], "--connect", "127.0.0.1:%d" % port,
            "--count", str(count), "--threads", "4"] + list(extra)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    print("$ %s\n%s%s" % (" ".join(argv), p.stdout, p.stderr[-2000:]), end="")
    check(p.returncode == 0, "client_flood %s: every connection made and ended" % " ".join(extra))
    doc = json.loads(p.stdout.splitlines()[-1]) if p.stdout else {}
    check(doc.get("refused") == count, "client_flood: all %d stranger certificates refused" % count)


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=30) as r:
        return r.read().decode()


def partner_series(text):
    """{(partner, outcome): n} of mtlsd_partner_handshakes_total."""
    out = {}
    for m in re.finditer(r'^mtlsd_partner_handshakes_total\{partner="([^"]*)",outcome="([^"]*)"\} '
                         r'(\d+)$', text, re.M):
        out[(m.group(1), m.group(2))] = int(m.group(3))
    return out


def bpftool_keys(pin_dir):
    p = subprocess.run([os.environ["BPFTOOL"], "-j", "map", "dump", "pinned",
                        pin_dir + "/acct_stats"], capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, "bpftool map dump of the pinned acct_stats works")
    keys = set()
    for e in json.loads(p.stdout or "[]"):
        k = e["formatted"]["key"]
        n = k["serial_len"]
        keys.add("none" if n == 0 else ("".join("%02x" % b for b in k["issuer_id"]),
                                         ":".join("%02X" % b for b in k["serial"][:n])))
    return keys


class UnprivilegedMtlsd(Mtlsd):
    def argv(self, port):
        return (["setpriv", "--inh-caps=-all", "--ambient-caps=-all",
                 "--bounding-set=-bpf,-perfmon,-sys_admin", "--"] + super().argv(port))


def run(ctx, source):
    fx = ctx.fx
    instance = "flood-%s-%d" % (source, os.getpid())
    pin_dir = "/sys/fs/bpf/mtlsd/" + instance
    runtime = os.path.join(ctx.dir, "run")
    os.environ["RUNTIME_DIRECTORY"] = runtime
    ctx.stack.callback(shutil.rmtree, pin_dir, True)
    b1, b2 = ctx.backend("b1"), ctx.backend("b2")
    admin = harness.free_port()
    # Not root: mtlsd cannot load BPF anyway (and setpriv cannot drop).
    cls = UnprivilegedMtlsd if source == "fallback" and os.geteuid() == 0 else Mtlsd
    d = cls(ctx, two_partner_config(ctx, b1.addr, b2.addr),
            extra_flags=["--instance", instance, "--admin-listen", "127.0.0.1:%d" % admin,
                         "--log-level", "info"])
    if source == "bpf":
        check("BPF program attached" in d.log(), "mtlsd attached its BPF program")
    else:
        check("BPF unavailable" in d.log(), "mtlsd without capabilities counts in process")

    keys = {leaf: identity(fx.path(leaf, "cert.pem")) for leaf, _, _, _ in PARTNERS_SENT}
    for leaf, bucket, n, _ in PARTNERS_SENT:
        for _ in range(n):
            expect = b"ping\n" if bucket == "ok" else None
            r = peers.s_client(ctx, d.port, leaf=leaf, send=b"ping\n", expect=expect)
            if expect:
                check(r.matched, "%s relayed" % leaf)
    sent = sum(n for _, _, n, _ in PARTNERS_SENT)
    harness.wait_until("%d audit lines" % sent, lambda: audit_lines(d.audit_path) >= sent,
                       alive=d.check_alive)

    flood(ctx, d.port, SELF_SIGNED)
    flood(ctx, d.port, FORGED, "--claim", fx.path("pki", "issuing", "ca.crt"))
    total = sent + SELF_SIGNED + FORGED
    harness.wait_until("%d audit lines" % total, lambda: audit_lines(d.audit_path) >= total,
                       timeout=120, alive=d.check_alive)
    if source == "fallback":
        # Published at most once a second: wait for the snapshot with all.
        harness.wait_until("the fallback snapshot to count %d handshakes" % total,
                           lambda: json.loads(stats(ctx, instance, runtime, source, "--json"))
                           ["events"] >= total, timeout=30, alive=d.check_alive)

    doc = json.loads(stats(ctx, instance, runtime, source, "--json"))
    check(doc["source"] == source, "mtlsctl stats reads the %s source" % source)
    got = {}
    for c in doc["certificates"]:
        got["none" if c["no_certificate"] else (c["issuer_id"], c["serial"])] = c
    for leaf, bucket, n, partner in PARTNERS_SENT:
        c = got.get(keys[leaf])
        check(c is not None and c["counts"][bucket] == n and c["total"] == n and
              c["partner"] == partner,
              "%s: still there after the flood, %s=%d, partner %s" % (leaf, bucket, n, partner))
    none = got.get("none", {"counts": {}})
    check(none["counts"].get("unknown_ca") == SELF_SIGNED and
          none["counts"].get("bad_signature") == FORGED,
          "the strangers: one unattributed record, unknown_ca=%d bad_signature=%d (got %r)"
          % (SELF_SIGNED, FORGED, none["counts"]))
    check(len(got) == len(keys) + 1 and doc["evicted"] == 0,
          "%d records (the partners' and the unattributed one), none evicted "
          "(present %d, new_keys %d, evicted %d)"
          % (len(keys) + 1, doc["certificates_present"], doc["new_keys"], doc["evicted"]))
    check(doc["events"] == total, "every handshake counted (%d of %d)" % (doc["events"], total))
    if source == "bpf":
        check(bpftool_keys(pin_dir) == set(keys.values()) | {"none"},
              "bpftool: the pinned map holds exactly those keys")

    text = scrape(admin)
    promtool_ok(text, "/metrics after the flood")
    series = partner_series(text)
    check(series.get(("partner", "revoked")) == 1,
          "the twin: partner's own revoked client is on partner's series")
    check(series.get(("partner", "bad_signature")) == 0 and
          series.get(("partner", "unknown_ca")) == 0,
          "the forged certificates are not on partner's series")
    check(series.get(("-", "unknown_ca")) == SELF_SIGNED and
          series.get(("-", "bad_signature")) == FORGED,
          "the strangers are on the unattributed series")
    check(re.search(r"^mtlsd_accounting_evictions_total 0$", text, re.M) is not None,
          "/metrics: mtlsd_accounting_evictions_total 0")
    promtool_ok(stats(ctx, instance, runtime, source, "--prometheus"),
                "mtlsctl stats --prometheus")
    d.check_alive()


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("bpf", "fallback"):
        print(__doc__, file=sys.stderr)
        return 2
    why = bpf_loadable()
    if why and sys.argv[1] == "bpf":
        print("SKIP: " + why)
        return SKIP
    with contextlib.ExitStack() as stack:
        ctx = harness.Ctx("bpf-flood-" + sys.argv[1], stack)
        run(ctx, sys.argv[1])
        if not failures:
            ctx.remove()
        else:
            print("logs kept in " + ctx.dir)
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
