#!/usr/bin/env python3
"""Integration tests of the real mtlsd binary against real TLS peers.

  it.py NAME            run one test (meson runs each as its own test)
  it.py --list          print every test name
  it.py --catalog N...  check that meson registers exactly these names

Exit status: 0 pass, 1 fail, 77 skip (meson's convention). Each test runs
in its own temp dir, kept (and printed) when the test fails, removed when
it passes. Environment (set by tests/meson.build): MTLSD, MTLSCTL,
MTLS_FIXTURES, MTLS_SRCDIR, MTLS_BUILDDIR.
"""

import contextlib
import glob
import os
import sys
import traceback

import harness
# Importing a cases module registers its cases (harness.case).
import cases_accept
import cases_config
import cases_identity
import cases_instances
import cases_interop
import cases_lifecycle
import cases_partner
import cases_reject
import cases_relay
import cases_resources
import cases_robust
import cases_runbooks
import cases_server
import cases_sessions

CASE_MODULES = (cases_accept, cases_config, cases_identity, cases_instances, cases_interop,
                cases_lifecycle, cases_partner, cases_reject, cases_relay, cases_resources,
                cases_robust, cases_runbooks, cases_server, cases_sessions)

EXIT_SKIP = 77


def run(name):
    fn = harness.CASES.get(name)
    if fn is None:
        print("unknown integration test %r; --list shows them" % name, file=sys.stderr)
        return 2
    ctx = None
    try:
        with contextlib.ExitStack() as stack:
            ctx = harness.Ctx(name, stack)
            fn(ctx)
    except harness.Skip as e:
        print("SKIP %s: %s" % (name, e))
        return EXIT_SKIP
    except Exception:
        traceback.print_exc()
        if ctx:
            dump(ctx)
            print("FAIL %s: logs kept in %s" % (name, ctx.dir))
        return 1
    ctx.remove()
    print("PASS %s" % name)
    return 0


def dump(ctx):
    """The tail of every log of the failed test, so the meson log alone
    explains the failure."""
    for path in sorted(glob.glob(os.path.join(ctx.dir, "*.log")) +
                       glob.glob(os.path.join(ctx.dir, "*.jsonl"))):
        print("----- %s" % os.path.basename(path))
        print(harness.tail(harness.read_text(path)))


def catalog(names):
    registered, listed = set(harness.CASES), set(names)
    if registered == listed:
        print("%d integration tests registered" % len(listed))
        return 0
    for n in sorted(registered - listed):
        print("not in tests/integration/meson.build: %s" % n)
    for n in sorted(listed - registered):
        print("in meson.build but not defined: %s" % n)
    return 1


def main(argv):
    if len(argv) == 2 and argv[1] == "--list":
        print("\n".join(sorted(harness.CASES)))
        return 0
    if len(argv) >= 2 and argv[1] == "--catalog":
        return catalog(argv[2:])
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    return run(argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
