#!/usr/bin/python3
"""bench/hsprobe.py: handshake rate (or relay MB/s) and server CPU use, servers side by side.

The quick check behind docs/benchmarks.md's "what did not pay" notes: the
same servers, certificates, echo backend and pinning as bench/compare.py,
but only the handshake runs (full and/or resumed), several rounds with the
servers taking turns, and per run the wall-clock rate, the server's CPU use
(cores), the load generator's own CPU use, rate per server core and the
handshake latency p50/p99. Prints one line per run and the medians.

usage: bench/hsprobe.py BUILDDIR [--servers mtlsd,nginx] [--rounds 3]
           [--duration 10] [--modes handshake,resume,bulk-up,bulk-down] [--mtlsd-bin PATH]
           [--loadgen PATH] [--mtlsd-arg=--flag ...]
A server may be given as mtlsd@/path/to/binary to compare two builds.
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


def cpu_busy():
    """Per-CPU (busy, total) jiffies from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                v = [int(x) for x in line.split()[1:]]
                idle = v[3] + v[4]
                out[int(line[3:line.index(" ")])] = (sum(v) - idle, sum(v))
    return out


def run_once(a, build, fx, srv, mode):
    argv = ["taskset", "-c", str(a.client_cpu), a.loadgen or os.path.join(build, "bench/loadgen"),
            "--connect", f"127.0.0.1:{srv.port}",
            "--cert", f"{fx}/client-ec/chain.pem", "--key", f"{fx}/client-ec/key.pem",
            "--ca", f"{fx}/pki/ca-bundle.pem", "--tls", a.tls, "--mode", mode,
            "--concurrency", str(a.bulk_concurrency if mode.startswith("bulk") else a.concurrency),
            "--duration", str(a.duration),
            "--warmup", str(a.warmup)]
    cpu0, t0, b0 = servers.cpu_seconds(srv.pid), time.monotonic(), cpu_busy()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=a.duration + a.warmup + 120)
    cpu1, t1, b1 = servers.cpu_seconds(srv.pid), time.monotonic(), cpu_busy()
    if r.returncode != 0 or not r.stdout.strip():
        raise RuntimeError(f"loadgen against {srv.name} failed: {r.stderr.strip()}")
    out = json.loads(r.stdout)
    util = (cpu1 - cpu0) / (t1 - t0)
    # bulk modes: the rate is MB/s through the relay (both directions summed)
    rate = out["mb_per_s_up"] + out["mb_per_s_down"] if mode.startswith("bulk") else out["handshakes_per_s"]
    lat = out.get("handshake_latency_us") or out.get("latency_us") or {}
    cc = out.get("client_cpu_s", {})
    client = (cc.get("user", 0) + cc.get("sys", 0)) / (t1 - t0)
    busy = {k: (b1[k][0] - b0[k][0]) / max(b1[k][1] - b0[k][1], 1) for k in b1 if k in b0}
    return dict(server=srv.name, mode=mode, rate=rate, util=util, per_core=rate / max(util, 1e-9),
                p50=lat.get("p50"), p99=lat.get("p99"), client=client, busy=busy, errors=out.get("errors_total", 0),
                resumed=out.get("resumed", 0) / max(out.get("handshakes", 1), 1), raw=out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("builddir")
    p.add_argument("--servers", default="mtlsd,nginx")
    p.add_argument("--modes", default="handshake")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--bulk-concurrency", type=int, default=4)
    p.add_argument("--tls", default="1.3")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--mtlsd-bin", help="another mtlsd binary (A/B against the build's)")
    p.add_argument("--loadgen", help="another loadgen binary")
    p.add_argument("--mtlsd-arg", action="append", default=[], help="extra mtlsd flag (repeatable)")
    p.add_argument("--json", help="write every run here")
    a = p.parse_args()

    build = os.path.realpath(a.builddir)
    work = tempfile.mkdtemp(prefix="mtlsd-hsprobe.")
    shutil.copytree(os.path.join(build, "tests/fixtures"), os.path.join(work, "fixtures"))
    fx = os.path.join(work, "fixtures")
    echo = subprocess.Popen(["taskset", "-c", str(a.client_cpu), os.path.join(build, "bench/loadgen"),
                             "--serve-echo", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    running, runs = [], []
    try:
        port = int(echo.stdout.readline().split(":")[-1])
        for n in a.servers.split(","):
            # "mtlsd@/path/to/mtlsd" runs that binary under the name
            # "mtlsd@<file name>", next to the build's own.
            if n.startswith("mtlsd@"):
                binary = n.split("@", 1)[1]
                srv = servers.start_mtlsd(build, fx, port, a.server_cpu, work, binary=binary,
                                          extra=a.mtlsd_arg, name="mtlsd@" + os.path.basename(binary))
            elif n == "mtlsd" and (a.mtlsd_bin or a.mtlsd_arg):
                srv = servers.start_mtlsd(build, fx, port, a.server_cpu, work,
                                          binary=a.mtlsd_bin, extra=a.mtlsd_arg)
            else:
                srv = servers.STARTERS[n](build, fx, port, a.server_cpu, work)
            running.append(srv)
        print(f"load average {os.getloadavg()}", file=sys.stderr)
        for r in range(a.rounds):
            order = running[r % len(running):] + running[:r % len(running)]
            for srv in order:
                for mode in a.modes.split(","):
                    res = run_once(a, build, fx, srv, mode)
                    runs.append(res)
                    print(f"round {r + 1} {srv.name:14s} {mode:9s} {res['rate']:7.0f}/s util {res['util']:.2f} "
                          f"per-core {res['per_core']:6.0f} p50 {res['p50']} p99 {res['p99']} "
                          f"loadgen-cpu {res['client']:.2f} cpu-busy {' '.join('%.2f' % v for v in res['busy'].values())} "
                          f"errors {res['errors']} resumed {res['resumed']:.2f}",
                          flush=True)
    finally:
        for s in running:
            s.stop()
        echo.terminate()
        echo.wait()
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average after {os.getloadavg()}", file=sys.stderr)
    print("medians:")
    for srv in running:
        for mode in a.modes.split(","):
            rs = [x for x in runs if x["server"] == srv.name and x["mode"] == mode]
            med = {k: statistics.median([x[k] for x in rs]) for k in ("rate", "util", "per_core")}
            print(f"  {srv.name:14s} {mode:9s} {med['rate']:7.0f}/s util {med['util']:.2f} "
                  f"per-core {med['per_core']:6.0f}  (per-core runs: "
                  f"{', '.join('%.0f' % x['per_core'] for x in rs)})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(runs, f, indent=1)


if __name__ == "__main__":
    main()
