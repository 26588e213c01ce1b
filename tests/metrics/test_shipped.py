#!/usr/bin/env python3
"""What operators plug in (issue 5): tuning/prometheus/mtlsd-alerts.yml
passes `promtool check rules` and its unit tests (mtlsd-alerts.test.yml,
`promtool test rules`), tuning/grafana/mtlsd-dashboard.json is valid
JSON (`python3 -m json.tool`). Each check has its twin: a broken copy must
fail it, so the check itself can fail.

    python3 test_shipped.py rules|dashboard     (meson sets MTLS_SRCDIR)
Exit 0 pass, 1 fail, 77 skip (no promtool).
"""

import os
import subprocess
import sys
import tempfile

SRC = os.environ.get("MTLS_SRCDIR") or os.path.join(os.path.dirname(__file__), "..", "..")
RULES = os.path.join(SRC, "tuning", "prometheus", "mtlsd-alerts.yml")
RULE_TESTS = os.path.join(SRC, "tests", "metrics", "mtlsd-alerts.test.yml")
DASHBOARD = os.path.join(SRC, "tuning", "grafana", "mtlsd-dashboard.json")


def run(argv):
    p = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def broken_copy(path, transform, suffix):
    with open(path, encoding="utf-8") as f:
        text = transform(f.read())
    fd, tmp = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return tmp


def check(argv_for, path, transform, suffix):
    rc, out = run(argv_for(path))
    if rc != 0:
        print("FAIL: %s\n%s" % (" ".join(argv_for(path)), out))
        return 1
    tmp = broken_copy(path, transform, suffix)
    try:
        rc_bad, out_bad = run(argv_for(tmp))
    finally:
        os.unlink(tmp)
    if rc_bad == 0:
        print("FAIL: a broken copy of %s passed: %s" % (path, out_bad))
        return 1
    print("PASS %s (and a broken copy fails)\n%s" % (path, out))
    return 0


def rules():
    promtool = "/usr/bin/promtool"
    if not os.access(promtool, os.X_OK):
        print("SKIP: promtool missing: apt-get install prometheus")
        return 77
    # The twin: an expression that is not PromQL.
    if check(lambda p: [promtool, "check", "rules", p], RULES,
             lambda t: t.replace("expr: mtlsd_last_reload_success == 0",
                                 "expr: mtlsd_last_reload_success == == 0", 1), ".yml"):
        return 1
    # Each alert fires on its trigger and stays silent on a healthy twin
    # (exp_alerts: [] and the exact alert lists are assertions too).
    rc, out = run([promtool, "test", "rules", RULE_TESTS])
    print("%s test rules %s:\n%s" % ("PASS" if rc == 0 else "FAIL", RULE_TESTS, out))
    return 0 if rc == 0 else 1


def dashboard():
    return check(lambda p: [sys.executable, "-m", "json.tool", p], DASHBOARD,
                 lambda t: t[: len(t) // 2], ".json")


if __name__ == "__main__":
    cases = {"rules": rules, "dashboard": dashboard}
    if len(sys.argv) != 2 or sys.argv[1] not in cases:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(cases[sys.argv[1]]())
