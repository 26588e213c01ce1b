#!/usr/bin/env python3
"""/metrics end to end (issue 5): mtlsd with --admin-listen, a known mix of
handshakes and bytes for two partners, then one scrape that must pass
`promtool check metrics` and whose counters must equal the traffic sent.
Uses the integration harness (tests/integration); one meson test per case:

    python3 test_metrics.py metrics_match_traffic   (meson sets MTLSD, ...)
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

import harness  # noqa: E402
import it  # noqa: E402
import peers  # noqa: E402
from harness import Skip, case, free_port, wait_until  # noqa: E402
from daemon import Mtlsd, two_partner_config, with_control_socket  # noqa: E402

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def promtool():
    for path in ("/usr/bin/promtool", "/usr/local/bin/promtool"):
        if os.access(path, os.X_OK):
            return path
    raise Skip("promtool missing: apt-get install prometheus (.ci/install-deps has it)")


def parse(text):
    """{(name, frozenset(labels)): value} of every sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        key = (m.group(1), labels)
        assert key not in out, "duplicate series %r" % line
        out[key] = float(m.group(3))
    return out


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def scrape(port, path="/metrics"):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
        return r.read().decode()


def check_metrics(text):
    p = subprocess.run([promtool(), "check", "metrics"],
                       input=text if isinstance(text, bytes) else text.encode(),
                       capture_output=True, timeout=60, check=False)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def start(ctx):
    b1, b2 = ctx.backend("b1"), ctx.backend("b2")
    admin = free_port()
    mtlsd = Mtlsd(ctx, two_partner_config(ctx, b1.addr, b2.addr),
                  extra_flags=["--admin-listen", "127.0.0.1:%d" % admin])
    return mtlsd, admin


@case("metrics_match_traffic")
def metrics_match_traffic(ctx):
    promtool()
    mtlsd, admin = start(ctx)
    probe = b"metrics probe 0123456789\n"
    sent = 0
    for leaf, n in (("client-ec", 3), ("client-partner2", 2)):
        for _ in range(n):
            r = peers.s_client(ctx, mtlsd.port, leaf, send=probe, expect=probe)
            assert r.matched, r
            sent += len(probe)
    for leaf, n in (("client-expired", 2), (None, 1)):
        for _ in range(n):
            peers.s_client(ctx, mtlsd.port, leaf, send=probe, expect=None)
    mtlsd.wait_audit(8)

    def settled():
        s = parse(scrape(admin))
        return value(s, "mtlsd_connections_active") == 0 and s
    samples = wait_until("no connection left open", settled, alive=mtlsd.check_alive)
    text = scrape(admin)
    rc, why = check_metrics(text)
    assert rc == 0, "promtool check metrics failed:\n%s\n%s" % (why, text)
    samples = parse(text)

    want = {("partner", "ok"): 3, ("partner", "expired"): 2, ("partner2", "ok"): 2,
            ("-", "no_certificate"): 1}
    seen = {(dict(k[1])["partner"], dict(k[1])["outcome"]): v for k, v in samples.items()
            if k[0] == "mtlsd_partner_handshakes_total" and v}
    assert seen == want, "handshakes by partner: %r, sent %r" % (seen, want)
    # The configured partners have every outcome, zeros included.
    assert value(samples, "mtlsd_partner_handshakes_total", partner="partner2",
                 outcome="expired") == 0
    assert value(samples, "mtlsd_connections_accepted_total") == 8
    assert value(samples, "mtlsd_relayed_bytes_total", direction="client_to_backend") == sent
    assert value(samples, "mtlsd_relayed_bytes_total", direction="backend_to_client") == sent
    assert value(samples, "mtlsd_ktls_offloaded_connections_total", direction="rx") == 0
    assert value(samples, "mtlsd_reloads_total", result="applied") == 0
    assert value(samples, "mtlsd_last_reload_success") == 1
    closed = sum(v for k, v in samples.items() if k[0] == "mtlsd_connections_closed_total")
    assert closed == 8, closed
    # Every loaded certificate: the server's leaf, both partners' CAs.
    kinds = {}
    for k, v in samples.items():
        if k[0] == "mtlsd_certificate_expiry_seconds":
            labels = dict(k[1])
            kinds.setdefault((labels["kind"], labels["partner"]), []).append(v)
            assert v > 0, "a fixture certificate reported expired: %r %r" % (k, v)
    for need in (("server", ""), ("ca_anchor", "partner"), ("ca_anchor", "partner2")):
        assert need in kinds, "no %r in %r" % (need, sorted(kinds))
    crls = [k for k in samples if k[0] == "mtlsd_crl_next_update_seconds"]
    assert {dict(k[1])["partner"] for k in crls} == {"partner", "partner2"}, crls
    assert "ok" in scrape(admin, "/healthz")
    mtlsd.check_alive()


@case("metrics_promtool_rejects_broken")
def metrics_promtool_rejects_broken(ctx):
    """The twin: promtool does fail on a bad exposition, so the check above
    can fail (a counter without _total, a sample with a bad value)."""
    promtool()
    mtlsd, admin = start(ctx)
    text = scrape(admin)
    assert check_metrics(text)[0] == 0
    broken = text + "# TYPE mtlsd_bogus counter\nmtlsd_bogus{a=\"1\"} not-a-number\n"
    rc, why = check_metrics(broken)
    assert rc != 0, "promtool accepted a broken exposition:\n%s" % why
    # And the exact-count check: before any traffic every counter is 0.
    samples = parse(text)
    assert value(samples, "mtlsd_partner_handshakes_total", partner="partner", outcome="ok") == 0
    assert value(samples, "mtlsd_connections_accepted_total") == 0


def reload_with(ctx, mtlsd, config, log_line):
    ctx.write(mtlsd.name + ".conf", with_control_socket(config, mtlsd.control_socket).render())
    mtlsd.signal(signal.SIGHUP)
    mtlsd.proc.wait_line(log_line)


@case("metrics_reloads_applied_and_refused")
def metrics_reloads_applied_and_refused(ctx):
    """mtlsd_reloads_total and mtlsd_last_reload_success (what the
    MtlsdReloadFailed alert reads) follow an applied and a refused reload,
    and an applied one clears the failure again."""
    b1, b2 = ctx.backend("b1"), ctx.backend("b2")
    admin = free_port()
    config = two_partner_config(ctx, b1.addr, b2.addr)
    mtlsd = Mtlsd(ctx, config, extra_flags=["--admin-listen", "127.0.0.1:%d" % admin])

    def reloads():
        s = parse(scrape(admin))
        return (value(s, "mtlsd_reloads_total", result="applied"),
                value(s, "mtlsd_reloads_total", result="refused"),
                value(s, "mtlsd_last_reload_success"), value(s, "mtlsd_generation"))
    assert reloads() == (0, 0, 1, 1), reloads()
    reload_with(ctx, mtlsd, config, r"reload \(SIGHUP\): generation 2 published")
    assert reloads() == (1, 0, 1, 2), reloads()
    broken = two_partner_config(ctx, b1.addr, b2.addr)
    broken.sections[1][1][0] = ("ca", os.path.join(ctx.dir, "gone-ca.pem"))
    reload_with(ctx, mtlsd, broken, r"reload \(SIGHUP\) refused")
    assert reloads() == (1, 1, 0, 2), reloads()
    text = scrape(admin)
    assert check_metrics(text)[0] == 0, text
    reload_with(ctx, mtlsd, config, r"reload \(SIGHUP\): generation 3 published")
    assert reloads() == (2, 1, 1, 3), reloads()


@case("metrics_partner_counts_follow_names_across_reload")
def metrics_partner_counts_follow_names_across_reload(ctx):
    """Per-partner counters belong to the partner's name, not its place in
    the config: a reload that swaps the two partners must not move
    partner's handshakes to partner2. The twin is the count before the
    reload (the same numbers under the same names)."""
    b1, b2 = ctx.backend("b1"), ctx.backend("b2")
    admin = free_port()
    config = two_partner_config(ctx, b1.addr, b2.addr)
    mtlsd = Mtlsd(ctx, config, extra_flags=["--admin-listen", "127.0.0.1:%d" % admin])
    probe = b"partner names\n"
    for leaf, n in (("client-ec", 3), ("client-partner2", 1)):
        for _ in range(n):
            assert peers.s_client(ctx, mtlsd.port, leaf, send=probe, expect=probe).matched

    def ok_counts():
        s = parse(scrape(admin))
        return (value(s, "mtlsd_partner_handshakes_total", partner="partner", outcome="ok"),
                value(s, "mtlsd_partner_handshakes_total", partner="partner2", outcome="ok"))
    mtlsd.wait_audit(4)
    assert ok_counts() == (3, 1), ok_counts()
    swapped = two_partner_config(ctx, b1.addr, b2.addr)
    # sections: [mtlsd], server_cert, partner.partner, partner.partner2
    heads = [i for i, (h, _) in enumerate(swapped.sections) if h.startswith("partner.")]
    a, b = heads
    swapped.sections[a], swapped.sections[b] = swapped.sections[b], swapped.sections[a]
    reload_with(ctx, mtlsd, swapped, r"reload \(SIGHUP\): generation 2 published")
    assert ok_counts() == (3, 1), "after swapping the partners: %r" % (ok_counts(),)
    assert peers.s_client(ctx, mtlsd.port, "client-partner2", send=probe, expect=probe).matched
    mtlsd.wait_audit(5)
    assert ok_counts() == (3, 2), "a partner2 handshake after the swap: %r" % (ok_counts(),)
    text = scrape(admin)
    assert check_metrics(text)[0] == 0, text


# Subject CNs a partner's CA issued (a partner's CSR chooses them): what a
# label, a fixed-size record field and a terminal must survive, and the
# twin, plain UTF-8, shown as is. (CN given to client_flood, \xNN decoded;
# the label value /metrics must carry; the table cell mtlsctl prints.)
HOSTILE_CNS = [
    # 62 bytes, then a two-byte character across the 63 bytes the record keeps
    ("a" * 62 + "\\xc3\\xa9", "a" * 62, "a" * 32),
    ("c1\\xc2\\x85\\xc2\\x9b" "31m", "c1??31m", "c1\\C2\\85\\C2\\9B31m"),
    ('q"uo\\\\te\\x0anl', 'q\\"uo\\\\te\\nnl', "q\"uo\\te\\0Anl"),
    ("\\x1b[2J\\x1b]0;pwned\\x07", "?[2J?]0;pwned?", "\\1B[2J\\1B]0;pwned\\07"),
    ("Z\\xc3\\xbcrich", "Z\u00fcrich", "Z\u00fcrich"),
]


@case("metrics_hostile_names_parse")
def metrics_hostile_names_parse(ctx):
    """A partner's clients whose CNs hold a multi-byte character at the cut,
    C1 controls, quotes, backslashes, newlines, terminal escapes: /metrics
    and `mtlsctl stats --prometheus` still pass promtool, every label is
    valid UTF-8 and says what it should; `mtlsctl stats` prints them escaped
    (no control byte reaches the terminal) and `--json` carries them exactly
    as stored. The twin: "Zürich" goes through as is everywhere."""
    promtool()
    instance = "metrics-hostile-%d" % os.getpid()
    runtime = os.path.join(ctx.dir, "run")
    os.environ["RUNTIME_DIRECTORY"] = runtime
    ctx.stack.callback(shutil.rmtree, "/sys/fs/bpf/mtlsd/" + instance, True)
    b1, b2 = ctx.backend("b1"), ctx.backend("b2")
    admin = free_port()
    mtlsd = Mtlsd(ctx, two_partner_config(ctx, b1.addr, b2.addr),
                  extra_flags=["--admin-listen", "127.0.0.1:%d" % admin, "--instance", instance])
    fx = ctx.fx
    argv = [os.environ["CLIENT_FLOOD"], "--connect", "127.0.0.1:%d" % mtlsd.port,
            "--count", str(len(HOSTILE_CNS)), "--threads", "1",
            "--issuer", fx.path("pki", "issuing", "ca.crt"),
            "--issuer-key", fx.path("pki", "issuing", "ca.key"),
            "--uri", "spiffe://partner.example/prod/hostile%d"]
    for cn, _, _ in HOSTILE_CNS:
        argv += ["--cn", cn]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and '"accepted":%d' % len(HOSTILE_CNS) in p.stdout, p

    def ctl_stats(*args):
        r = subprocess.run([ctx.mtlsctl_bin, "stats", "--instance", instance,
                            "--runtime-dir", runtime] + list(args), capture_output=True,
                           timeout=60)
        assert r.returncode == 0, r
        return r.stdout

    def scrape_bytes():
        return urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin, timeout=10).read()

    def counted():
        text = scrape_bytes().decode(errors="replace")
        return re.search(r'^mtlsd_partner_handshakes_total\{partner="partner",outcome="ok"\} %d$'
                         % len(HOSTILE_CNS), text, re.M)
    wait_until("every hostile client counted", counted, alive=mtlsd.check_alive)
    raw = scrape_bytes()
    rc, why = check_metrics(raw)  # the bytes as served
    assert rc == 0, "promtool check metrics failed after hostile CNs:\n%s" % why
    text = raw.decode("utf-8")  # raises on a byte that is not UTF-8
    labels = set(re.findall(r'^mtlsd_handshakes_total\{.*subject_cn="((?:[^"\\]|\\.)*)"', text,
                            re.M))
    for _, label, _ in HOSTILE_CNS:
        assert label in labels, "label %r not in %r" % (label, labels)
    prom = ctl_stats("--prometheus")
    rc, why = check_metrics(prom)
    assert rc == 0, "mtlsctl stats --prometheus failed promtool:\n%s" % why
    prom = prom.decode("utf-8")
    for text_ in (text, prom):
        assert "\x1b" not in text_ and "\u0085" not in text_ and "\u009b" not in text_

    stored = ("a" * 62, "c1\u0085\u009b31m", 'q"uo\\te\nnl', "\x1b[2J\x1b]0;pwned\x07",
              "Z\u00fcrich")
    # The fallback (not root) publishes its snapshot once a second.
    doc = wait_until("mtlsctl stats to show every hostile CN", lambda: (lambda d: all(
        cn in {c["subject_cn"] for c in d["certificates"]} for cn in stored) and d)(
        json.loads(ctl_stats("--json").decode("utf-8"))), alive=mtlsd.check_alive)
    assert doc["evicted"] == 0, doc
    table = ctl_stats().decode("utf-8")
    for ch in table:
        assert ch == "\n" or not (ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f), \
            "control character %r in the stats table:\n%s" % (ch, table)
    for _, _, cell in HOSTILE_CNS:
        assert cell in table, "%r not in the stats table:\n%s" % (cell, table)


def referenced_metrics(srcdir):
    """Every mtlsd_* name the alert rules and the dashboard query."""
    names = set()
    for rel in (("tuning", "prometheus", "mtlsd-alerts.yml"),
                ("tuning", "grafana", "mtlsd-dashboard.json")):
        with open(os.path.join(srcdir, *rel), encoding="utf-8") as f:
            names |= set(re.findall(r"\b(mtlsd_[a-z0-9_]+)", f.read()))
    return names


def unexported(names, samples):
    families = {k[0] for k in samples}
    return sorted(n for n in names if n not in families)


@case("shipped_files_use_exported_metrics")
def shipped_files_use_exported_metrics(ctx):
    """The alert rules and the dashboard query only series mtlsd exports
    (a renamed family would silently never fire)."""
    mtlsd, admin = start(ctx)
    # One handshake, so the histogram's _bucket series exist.
    assert peers.s_client(ctx, mtlsd.port, "client-ec", send=b"x\n", expect=b"x\n").matched
    mtlsd.wait_audit(1)
    samples = parse(scrape(admin))
    names = referenced_metrics(ctx.srcdir)
    assert len(names) >= 8, names
    missing = unexported(names, samples)
    assert not missing, "queried but not exported: %r" % missing
    # The twin: a name mtlsd does not export is caught.
    assert unexported(names | {"mtlsd_not_a_family"}, samples) == ["mtlsd_not_a_family"]


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in harness.CASES:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(it.run(sys.argv[1]))
