#!/usr/bin/python3
"""bench/scaling.py: mtlsd's handshakes per server core as its workers grow.

For N = 1, 2, ... up to --max-workers (default: half the CPUs, at least 1):
mtlsd with N workers pinned to CPUs 0..N-1, the load generator with N
threads on the other CPUs (on a host with fewer than 2N CPUs it shares
them, and the report says so), full and resumed TLS 1.3 mTLS handshakes,
--rounds rounds each. Per core = handshakes/s divided by mtlsd's measured
CPU use, so contention between workers (OpenSSL's shared library context,
the session cache lock) shows as a per-core figure that falls with N.
Runs unchanged on a 64-core host.

usage: bench/scaling.py BUILDDIR [--max-workers N] [--rounds 3] [--duration 10]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers  # noqa: E402


def cpus(lo, hi):
    return ",".join(str(c) for c in range(lo, hi))


def main():
    ncpu = os.cpu_count() or 1
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("builddir")
    p.add_argument("--max-workers", type=int, default=max(1, ncpu // 2))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--concurrency", type=int, default=32, help="handshakes in flight per loadgen thread")
    a = p.parse_args()
    build = os.path.realpath(a.builddir)
    loadgen = os.path.join(build, "bench/loadgen")
    work = tempfile.mkdtemp(prefix="mtlsd-scaling.")
    fx = os.path.join(work, "fixtures")
    shutil.copytree(os.path.join(build, "tests/fixtures"), fx)
    echo = subprocess.Popen([loadgen, "--serve-echo", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    backend = int(echo.stdout.readline().split(":")[-1])
    rows = []
    try:
        for n in range(1, a.max_workers + 1):
            server_cpus = cpus(0, n)
            client_lo = n if 2 * n <= ncpu else 0
            client_cpus = cpus(client_lo, min(ncpu, client_lo + n)) if 2 * n <= ncpu else cpus(0, ncpu)
            port = servers.free_port()
            argv = ["taskset", "-c", server_cpus, os.path.join(build, "dataplane/mtlsd"),
                    "--listen", f"127.0.0.1:{port}", "--workers", str(n),
                    "--cert", f"{fx}/server/chain.pem", "--key", f"{fx}/server/key.pem",
                    "--client-ca", f"{fx}/pki/ca-bundle.pem", "--backend", f"127.0.0.1:{backend}",
                    "--proxy-protocol", "v2", "--control-socket", os.path.join(work, f"ctl-{n}.sock"),
                    "--audit-log", os.path.join(work, f"audit-{n}.log")]
            srv = servers.Server(f"mtlsd-{n}w", f"mtlsd, {n} workers", argv, port, work)
            try:
                for mode in ("handshake", "resume"):
                    per_core = []
                    for _ in range(a.rounds):
                        lg = ["taskset", "-c", client_cpus, loadgen, "--connect", f"127.0.0.1:{port}",
                              "--cert", f"{fx}/client-ec/chain.pem", "--key", f"{fx}/client-ec/key.pem",
                              "--ca", f"{fx}/pki/ca-bundle.pem", "--mode", mode, "--threads", str(n),
                              "--concurrency", str(a.concurrency * n), "--duration", str(a.duration),
                              "--warmup", "2"]
                        c0, t0 = servers.cpu_seconds(srv.pid), time.monotonic()
                        r = subprocess.run(lg, capture_output=True, text=True, timeout=a.duration + 120)
                        c1, t1 = servers.cpu_seconds(srv.pid), time.monotonic()
                        out = json.loads(r.stdout)
                        util = (c1 - c0) / (t1 - t0)
                        per_core.append(out["handshakes_per_s"] / max(util, 1e-9))
                    rows.append(dict(workers=n, mode=mode, median=statistics.median(per_core),
                                     lo=min(per_core), hi=max(per_core), shared=2 * n > ncpu))
                    print(f"{n} worker(s) {mode}: {rows[-1]['median']:.0f} per core "
                          f"[{rows[-1]['lo']:.0f}..{rows[-1]['hi']:.0f}]", file=sys.stderr)
            finally:
                srv.stop()
    finally:
        echo.terminate()
        echo.wait()
        shutil.rmtree(work, ignore_errors=True)
    print("| workers | handshakes | per server core, median [min..max] | client shares the server's CPUs |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['mode']} | {r['median']:.0f} [{r['lo']:.0f}..{r['hi']:.0f}] | "
              f"{'yes' if r['shared'] else 'no'} |")


if __name__ == "__main__":
    main()
