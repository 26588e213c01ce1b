#!/usr/bin/env python3
"""Hostile-client, fault and secrets tests of the real mtlsd (issue 10).

  hostile.py NAME      run one case (meson runs each as its own test)
  hostile.py --list    print every case name

The same harness as tests/integration (temp dir per case, processes killed
at the end, polling waits, logs printed on failure): this file only adds
the cases. Each case prints one "FIGURE name: k=v ..." line that
docs/reliability.md quotes. Exit status: 0 pass, 1 fail, 77 skip.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)


import it  # noqa: E402  (its run() and, on import, the integration cases)
import cases_hostile  # noqa: E402,F401
import cases_fault  # noqa: E402,F401
import cases_secrets  # noqa: E402,F401
import cases_pressure  # noqa: E402,F401

MINE = cases_hostile.NAMES + cases_fault.NAMES + cases_secrets.NAMES + cases_pressure.NAMES


def main(argv):
    if len(argv) == 2 and argv[1] == "--list":
        print("\n".join(MINE))
        return 0
    if len(argv) != 2 or argv[1] not in MINE:
        print(__doc__, file=sys.stderr)
        return 2
    return it.run(argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
