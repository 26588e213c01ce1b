#!/usr/bin/env python3
"""Soak: mtlsd under mixed load for a long time, reporting RSS and open fds
over time and every error. Not part of `meson test`:

  tests/soak/soak.py --duration 1800        the 30-minute soak (docs/reliability.md)
  tests/soak/soak.py --duration 60          CI's short run (.ci/soak)

Needs the environment meson gives tests (MTLSD, MTLSCTL, MTLS_FIXTURES,
MTLS_SRCDIR); .ci/soak sets it from a build dir. What runs, all at once:
  - 2 threads of legitimate clients: full mTLS handshake, 64 KiB echoed
  - 1 thread of hostile clients: half ClientHellos left to time out,
    garbage, resets mid-handshake, clients of an unknown CA
  - a SIGHUP reload every 10 s
  - a sample every 5 s: RSS, fds, connections served, errors
Passes when no legitimate client failed, mtlsd is alive, its RSS after the
warm-up (first fifth) grew by less than 10% + 8 MiB, and its fd count at
the end is back to where it started (+/- 8 for clients still closing).
"""

import argparse
import contextlib
import os
import signal
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "hostile"))

import harness  # noqa: E402
from daemon import Mtlsd, standard_config  # noqa: E402
import peers  # noqa: E402
from hostile_util import fd_count, raise_nofile, rss_kib  # noqa: E402

PAYLOAD = 64 * 1024


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.legit_ok = self.legit_err = self.hostile = self.reloads = 0
        self.bytes = 0
        self.errors = []

    def add(self, **kv):
        with self.lock:
            for k, v in kv.items():
                setattr(self, k, getattr(self, k) + v)

    def error(self, what):
        with self.lock:
            self.legit_err += 1
            if len(self.errors) < 20:
                self.errors.append(what)


def legit_loop(ctx, port, stop, n):
    while not stop.is_set():
        try:
            c = peers.TlsClient(ctx, port, "client-ec", timeout=30)
            got = bytearray()
            data = os.urandom(PAYLOAD)
            c.exchange(data, PAYLOAD, got.extend)
            c.close()
            if bytes(got) != data:
                n.error("echo mismatch after %d bytes" % len(got))
            else:
                n.add(legit_ok=1, bytes=2 * PAYLOAD)
        except Exception as e:  # each failure is counted and reported
            n.error("%s: %s" % (type(e).__name__, str(e)[:100]))


def hostile_loop(ctx, port, stop, n):
    held = []
    kinds = ["stall", "garbage", "reset", "unknown_ca"]
    i = 0
    while not stop.is_set():
        kind = kinds[i % len(kinds)]
        i += 1
        with contextlib.suppress(Exception):
            if kind == "stall":
                s = socket.create_connection(("127.0.0.1", port), 5)
                s.sendall(peers.partial_client_hello())
                held.append(s)
                if len(held) > 200:
                    held.pop(0).close()
            elif kind == "garbage":
                with socket.create_connection(("127.0.0.1", port), 5) as s:
                    s.sendall(os.urandom(700))
                    s.settimeout(5)
                    peers.read_until_closed(s)
            elif kind == "reset":
                s = socket.create_connection(("127.0.0.1", port), 5)
                s.sendall(peers.partial_client_hello())
                peers.reset(s)
            else:
                peers.TlsClient(ctx, port, "client-unknownca", timeout=5).close()
        n.add(hostile=1)
        time.sleep(0.02)
    for s in held:
        s.close()


def soak(ctx, duration):
    raise_nofile(16384)
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr),
                  extra_flags=["--log-level", "info", "--handshake-timeout", "5s"])
    pid = mtlsd.proc.proc.pid
    fds_start = fd_count(pid)
    n, stop = Counters(), threading.Event()
    threads = [threading.Thread(target=legit_loop, args=(ctx, mtlsd.port, stop, n))
               for _ in range(2)]
    threads.append(threading.Thread(target=hostile_loop, args=(ctx, mtlsd.port, stop, n)))
    for t in threads:
        t.start()
    samples = []
    t0 = time.monotonic()
    next_reload = t0 + 10
    print("%7s %9s %5s %9s %7s %8s %7s" % ("t_s", "rss_kib", "fds", "legit_ok", "errors",
                                           "hostile", "reloads"), flush=True)
    try:
        while time.monotonic() - t0 < duration:
            time.sleep(5)
            mtlsd.check_alive()
            now = time.monotonic()
            if now >= next_reload:
                mtlsd.signal(signal.SIGHUP)
                n.add(reloads=1)
                next_reload = now + 10
            samples.append((now - t0, rss_kib(pid), fd_count(pid)))
            print("%7.0f %9d %5d %9d %7d %8d %7d" % (samples[-1] + (
                n.legit_ok, n.legit_err, n.hostile, n.reloads)), flush=True)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    # Let the held stalls time out and the last clients close.
    harness.wait_until("mtlsd's fds to settle", lambda: fd_count(pid) <= fds_start + 8,
                       timeout=30)
    fds_end = fd_count(pid)
    warm = samples[max(1, len(samples) // 5) - 1][1]
    peak_late = max(s[1] for s in samples[len(samples) // 5:])
    applied = mtlsd.log().count("reload (SIGHUP): generation")
    print("SOAK duration_s=%d legit_ok=%d legit_errors=%d bytes=%d hostile=%d reloads=%d "
          "rss_kib_warm=%d rss_kib_peak_after_warmup=%d rss_kib_end=%d fds_start=%d fds_end=%d"
          % (duration, n.legit_ok, n.legit_err, n.bytes, n.hostile, n.reloads, warm,
             peak_late, samples[-1][1], fds_start, fds_end), flush=True)
    assert n.legit_err == 0, "legitimate clients failed: %r" % n.errors
    assert n.legit_ok > 0 and n.hostile > 0 and applied > 0
    assert peak_late <= warm * 1.10 + 8192, \
        "RSS grew from %d KiB after warm-up to %d KiB" % (warm, peak_late)
    assert fds_end <= fds_start + 8, "fds %d at start, %d at end" % (fds_start, fds_end)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=1800, help="seconds (default 1800)")
    args = ap.parse_args()
    harness.CASES.clear()
    harness.case("soak")(lambda ctx: soak(ctx, args.duration))
    import it
    return it.run("soak")


if __name__ == "__main__":
    sys.exit(main())
