#!/usr/bin/env python3
"""Benchmark row for docs/hardware.md: full TLS 1.3 mTLS handshakes per
second through mtlsd (one worker) with the server key in a file and with it
in a SoftHSM2 token through libp11. Not a test: it asserts no speed.

  MTLSD=... MTLSCTL=... MTLS_FIXTURES=... MTLS_SRCDIR=... MTLS_BUILDDIR=... \\
      python3 tests/hsm/bench_hsm.py [SECONDS]
"""

import contextlib
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hsm  # noqa: E402
import harness  # noqa: E402
from daemon import Mtlsd, standard_config  # noqa: E402


def run_loadgen(ctx, port, seconds):
    fx = ctx.fx
    lg = os.path.join(os.environ["MTLS_BUILDDIR"], "bench", "loadgen")
    r = subprocess.run([lg, "--connect", "127.0.0.1:%d" % port,
                        "--cert", fx.path("client-ec", "chain.pem"), "--key", fx.path("client-ec", "key.pem"),
                        "--ca", fx.path("pki", "ca-bundle.pem"), "--mode", "handshake",
                        "--concurrency", "1", "--duration", str(seconds), "--warmup", "1"],
                       capture_output=True, timeout=seconds + 60)
    out = r.stdout.decode()
    try:
        return json.loads(out)
    except ValueError:
        return {"raw": out + r.stderr.decode()}


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5
    rows = []
    with contextlib.ExitStack() as stack:
        ctx = harness.Ctx("bench_hsm", stack)
        # loadgen's own echo backend: the recording test backend would be
        # the bottleneck.
        port = harness.free_port()
        lg = os.path.join(os.environ["MTLS_BUILDDIR"], "bench", "loadgen")
        ctx.spawn("echo", [lg, "--serve-echo", "127.0.0.1:%d" % port])
        addr = "127.0.0.1:%d" % port
        token = hsm.Token(ctx)
        for label, config in (("key in a file", standard_config(ctx, addr)),
                              ("key in SoftHSM2 (libp11)", hsm.hsm_config(ctx, token, addr))):
            mtlsd = Mtlsd(ctx, config, extra_flags=["--workers", "1", "--log-level", "info"],
                          name="mtlsd-%d" % len(rows))
            res = run_loadgen(ctx, mtlsd.port, seconds)
            mtlsd.proc.stop()
            rows.append((label, res))
    for label, res in rows:
        print("%-28s %s handshakes/s, p50 %.1f ms" % (label, res.get("handshakes_per_s", res),
                                                      res.get("handshake_latency_us", {}).get("p50", 0) / 1000))


if __name__ == "__main__":
    main()
