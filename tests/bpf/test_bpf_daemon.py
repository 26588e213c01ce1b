#!/usr/bin/env python3
"""Handshake accounting through the real mtlsd: real TLS clients
(openssl s_client with the fixture certificates), the daemon's own USDT
probe, the BPF program it loads, the pinned maps, mtlsctl stats.

  1. handshakes with several client certificates, two of them from two
     issuers that share a serial, and known numbers of each failure: the
     per-certificate counts in `mtlsctl stats --json` and in a raw
     `bpftool map dump` grow by exactly what was sent;
  2. mtlsd restarted: the counts persist and keep growing;
  3. mtlsd without CAP_BPF / CAP_PERFMON / CAP_SYS_ADMIN (setpriv): the
     same handshakes are counted by the in-process fallback, labelled so.

mtlsd counts into the instance "default" (there is no per-test instance
option yet), so the test compares differences for the keys of its own
fixtures: every build dir generates its fixtures with fresh random serials
and CA keys, so nobody else's handshakes land on those keys. The
no-certificate key is shared by everyone and is checked as "at least".

Exit 77 when not root (saying so). An mtlsd without the
mtlsd:handshake_end USDT probe fails: the accounting depends on it.
"""
import contextlib
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402
import peers  # noqa: E402
from daemon import Mtlsd, two_partner_config  # noqa: E402

SKIP = 77
PIN_DIR = "/sys/fs/bpf/mtlsd/default"

# fixture leaf -> (outcome bucket, handshakes)
SENT = [
    ("client-ec", "ok", 3),
    ("client-partner2", "ok", 2),
    ("client-expired", "expired", 2),
    ("client-revoked", "revoked", 1),
    ("client-servereku", "bad_eku", 1),
    ("client-badsan", "policy_denied", 1),
]
# Not attributed to a partner: counted per outcome under the shared
# unattributed key, never under the certificate sent (an unknown CA's).
UNATTRIBUTED = [("client-unknownca", "unknown_ca", 1)]
NO_CERT = 2

failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what)
    if not cond:
        failures.append(what)


def has_probe(binary):
    notes = subprocess.run(["readelf", "-n", binary], capture_output=True, text=True).stdout
    return "stapsdt" in notes and "handshake_end" in notes


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


def stats(ctx, source, runtime_dir):
    p = subprocess.run([ctx.mtlsctl_bin, "stats", "--json", "--source", source,
                        "--runtime-dir", runtime_dir], capture_output=True, text=True)
    if p.returncode != 0:
        return {"source": None, "certificates": [], "error": p.stderr}
    return json.loads(p.stdout)


def counts(doc):
    """{(issuer id, serial) or "none": counts}"""
    out = {}
    for c in doc["certificates"]:
        key = "none" if c["no_certificate"] else (c["issuer_id"], c["serial"])
        out[key] = c["counts"]
    return out


def raw_counts():
    p = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", PIN_DIR + "/acct_stats"],
                       capture_output=True, text=True)
    buckets = ["ok", "no_certificate", "unknown_ca", "expired", "not_yet_valid", "revoked",
               "bad_eku", "policy_denied", "bad_signature", "protocol_error", "timeout", "other",
               "chain_too_deep", "weak_key", "crl_unavailable"]
    out = {}
    if p.returncode != 0:   # not pinned yet: every count is zero
        return out
    for e in json.loads(p.stdout):
        k, v = e["formatted"]["key"], e["formatted"]["value"]
        if k["serial_len"] == 0:
            key = "none"
        else:
            key = ("".join("%02x" % b for b in k["issuer_id"]),
                   ":".join("%02X" % b for b in k["serial"][:k["serial_len"]]))
        out[key] = dict(zip(buckets, v["outcome"]))
    return out


def run_handshakes(ctx, d):
    for leaf, outcome, n in SENT + UNATTRIBUTED:
        for _ in range(n):
            expect = b"ping\n" if outcome == "ok" else None
            peers.s_client(ctx, d.port, leaf=leaf, send=b"ping\n", expect=expect)
    for _ in range(NO_CERT):
        peers.s_client(ctx, d.port, leaf=None, send=b"ping\n")
    total = sum(n for _, _, n in SENT + UNATTRIBUTED) + NO_CERT
    d.wait_audit(total)


def delta_ok(before, after, keys, times, label):
    ok = True
    for leaf, outcome, n in SENT:
        key = keys[leaf]
        b = before.get(key, {}).get(outcome, 0)
        a = after.get(key, {}).get(outcome, 0)
        if a - b != n * times:
            ok = False
            print("      %s %s: %d -> %d, expected +%d" % (leaf, outcome, b, a, n * times))
    nb = before.get("none", {}).get("no_certificate", 0)
    na = after.get("none", {}).get("no_certificate", 0)
    check(ok, "%s: every fixture certificate grew by exactly what was sent" % label)
    check(na - nb >= NO_CERT * times, "%s: no-certificate handshakes counted" % label)
    for leaf, outcome, n in UNATTRIBUTED:
        grew = after.get("none", {}).get(outcome, 0) - before.get("none", {}).get(outcome, 0)
        check(grew >= n * times and after.get(keys[leaf]) == before.get(keys[leaf]),
              "%s: %s counted as %s under the unattributed key, no record of its own"
              % (label, leaf, outcome))


class UnprivilegedMtlsd(Mtlsd):
    def argv(self, port):
        return (["setpriv", "--inh-caps=-all", "--ambient-caps=-all",
                 "--bounding-set=-bpf,-perfmon,-sys_admin", "--"] + super().argv(port))


def main():
    if os.geteuid() != 0:
        print("SKIP: loading BPF programs needs root (CI runs this as root)")
        return SKIP
    if not has_probe(os.environ["MTLSD"]):
        print("FAIL: %s has no mtlsd:handshake_end USDT probe (readelf -n shows no "
              "stapsdt note for it): the BPF accounting cannot attach" % os.environ["MTLSD"])
        return 1
    with contextlib.ExitStack() as stack:
        ctx = harness.Ctx("bpf-daemon", stack)
        stack.callback(ctx.remove)
        runtime = os.path.join(ctx.dir, "run")
        os.environ["RUNTIME_DIRECTORY"] = runtime
        keys = {leaf: identity(ctx.fx.path(leaf, "cert.pem")) for leaf, _, _ in SENT + UNATTRIBUTED}
        check(keys["client-ec"][1] == keys["client-partner2"][1] and
              keys["client-ec"][0] != keys["client-partner2"][0],
              "client-ec and client-partner2 share a serial under two issuers")
        b1, b2 = ctx.backend("backend1"), ctx.backend("backend2")
        config = two_partner_config(ctx, b1.addr, b2.addr)

        before = counts(stats(ctx, "bpf", runtime))
        raw_before = raw_counts()
        d = Mtlsd(ctx, config)
        check("BPF program attached" in d.log(), "mtlsd says it attached the BPF program")
        run_handshakes(ctx, d)
        doc = stats(ctx, "bpf", runtime)
        check(doc["source"] == "bpf", "mtlsctl reads the pinned maps")
        delta_ok(before, counts(doc), keys, 1, "BPF")
        delta_ok(raw_before, raw_counts(), keys, 1, "BPF, raw bpftool read")

        d.proc.stop()
        d = Mtlsd(ctx, config, name="mtlsd-restarted")
        run_handshakes(ctx, d)
        delta_ok(before, counts(stats(ctx, "bpf", runtime)), keys, 2, "BPF after restart")
        d.proc.stop()

        d = UnprivilegedMtlsd(ctx, config, name="mtlsd-nocaps")
        said = [l for l in d.log().splitlines() if "handshake accounting" in l]
        print("\n".join("      " + l for l in said))
        check(len(said) == 1 and "BPF unavailable" in said[0],
              "mtlsd without caps says BPF is unavailable, once")
        run_handshakes(ctx, d)
        # The fallback publishes at most once a second: wait for the snapshot
        # that holds every handshake (the daemon keeps running meanwhile).
        # The no-certificate handshakes run last, so wait for them too.
        total = sum(n for _, _, n in SENT + UNATTRIBUTED) + NO_CERT
        fixture_keys = set(keys.values()) | {"none"}
        harness.wait_until("the fallback snapshot to hold %d handshakes" % total,
                           lambda: sum(sum(c.values()) for k, c in
                                       counts(stats(ctx, "fallback", runtime)).items()
                                       if k in fixture_keys) >= total,
                           timeout=10, alive=d.check_alive)
        doc = stats(ctx, "auto", runtime)
        check(doc["source"] == "fallback" and "CAP_BPF" in doc.get("fallback_reason", ""),
              "mtlsctl shows the fallback (its default choice now) and why")
        delta_ok({}, counts(doc), keys, 1, "fallback")
        d.proc.stop()
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
