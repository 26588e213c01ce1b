#!/usr/bin/python3
"""test_loadgen.py: smoke test of bench/loadgen against a real mtlsd.

Every mode runs for about a second through mtlsd to the echo backend and
must produce its counts with no errors; the rejecting twins must count the
failure under the right name (the server refusing an unknown CA, the
client refusing an untrusted server or a wrong name). Counts are only
checked to be non-zero: speed is never a test result on a shared machine.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

FX = os.environ["MTLS_FIXTURES"]
LOADGEN = os.environ["LOADGEN"]
MTLSD = os.environ["MTLSD"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc):
    for _ in range(200):
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def start(tmp):
    echo = subprocess.Popen([LOADGEN, "--serve-echo", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    backend = int(echo.stdout.readline().split(":")[-1])
    for _ in range(5):  # another test may take the port between probe and bind
        port = free_port()
        d = subprocess.Popen([MTLSD, "--listen", f"127.0.0.1:{port}", "--workers", "1",
                              "--cert", f"{FX}/server/chain.pem", "--key", f"{FX}/server/key.pem",
                              "--client-ca", f"{FX}/pki/ca-bundle.pem", "--backend", f"127.0.0.1:{backend}",
                              "--audit-log", os.path.join(tmp, "audit.log"),
                              "--control-socket", os.path.join(tmp, "control.sock")],
                             stderr=open(os.path.join(tmp, "mtlsd.log"), "ab"))
        if wait_port(port, d):
            return echo, d, port
        d.kill()
        d.wait()
    raise SystemExit("mtlsd never listened")


def run(port, mode, *extra, client="client-ec", ca=f"{FX}/pki/ca-bundle.pem"):
    argv = [LOADGEN, "--connect", f"127.0.0.1:{port}", "--cert", f"{FX}/{client}/chain.pem",
            "--key", f"{FX}/{client}/key.pem", "--ca", ca, "--mode", mode,
            "--duration", "1", "--warmup", "0.2", "--timeout", "20", *extra]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{mode} {extra}: exit {r.returncode}: {r.stderr}"
    return json.loads(r.stdout)


def check(name, cond, d):
    status = "ok" if cond else "FAIL"
    print(f"{status} - {name}")
    if not cond:
        print(json.dumps(d, indent=1), file=sys.stderr)
    return cond


def main():
    tmp = tempfile.mkdtemp(prefix="loadgen-smoke.")
    echo, mtlsd, port = start(tmp)
    ok = True
    try:
        d = run(port, "handshake", "--concurrency", "4")
        ok &= check("handshake: full TLS 1.3 handshakes counted, none resumed, no errors",
                    d["handshakes"] > 0 and d["resumed"] == 0 and d["errors_total"] == 0
                    and d["handshake_latency_us"]["p50"] > 0, d)
        d = run(port, "handshake", "--tls", "1.2", "--concurrency", "4")
        ok &= check("handshake: TLS 1.2", d["handshakes"] > 0 and d["errors_total"] == 0, d)
        d = run(port, "resume", "--concurrency", "4")
        ok &= check("resume: the server resumed sessions", d["resumed"] > 0 and d["errors_total"] == 0, d)
        d = run(port, "handshake", "--concurrency", "8", "--rate", "40")
        ok &= check("handshake: open loop, connections started at an offered rate",
                    d["handshakes"] > 0 and d["offered_rate"] == 40 and d["errors_total"] == 0
                    and d["handshake_latency_us"]["p99"] > 0, d)
        d = run(port, "resume", "--concurrency", "8", "--rate", "40")
        ok &= check("resume: open loop, the server resumed sessions",
                    d["resumed"] > 0 and d["errors_total"] == 0, d)
        d = run(port, "rr", "--concurrency", "4", "--rate", "200", "--size", "300")
        ok &= check("rr: requests echoed at an offered rate", d["requests"] > 0 and d["errors_total"] == 0
                    and d["latency_us"]["p99"] > 0, d)
        d = run(port, "rr", "--concurrency", "4", "--threads", "2", "--size", "40000")
        ok &= check("rr: closed loop, multi-record requests, two threads",
                    d["requests"] > 0 and d["threads"] == 2 and d["errors_total"] == 0, d)
        d = run(port, "bulk-up", "--concurrency", "2")
        ok &= check("bulk-up: bytes sent", d["bytes_up"] > 0 and d["errors_total"] == 0, d)
        d = run(port, "bulk-down", "--concurrency", "2")
        ok &= check("bulk-down: bytes received", d["bytes_down"] > 0 and d["errors_total"] == 0, d)
        d = run(port, "idle", "--connections", "40", "--concurrency", "8", "--hold", "0.2")
        ok &= check("idle: all connections established and held", d["established"] == 40
                    and d["errors_total"] == 0, d)
        # Rejecting twins.
        d = run(port, "handshake", "--concurrency", "2", client="client-unknownca")
        ok &= check("handshake: a client of an unknown CA is refused and counted as such",
                    d["handshakes"] == 0 and d["errors"]["handshake"] > 0, d)
        d = run(port, "handshake", "--concurrency", "2", ca=f"{FX}/unknown-pki/ca-bundle.pem")
        ok &= check("handshake: an untrusted server chain fails verification",
                    d["handshakes"] == 0 and d["errors"]["verify"] > 0, d)
        d = run(port, "handshake", "--concurrency", "2", "--servername", "other.example")
        ok &= check("handshake: a server certificate without the expected name fails verification",
                    d["handshakes"] == 0 and d["errors"]["verify"] > 0, d)
        d = run(port, "idle", "--connections", "10", "--hold", "0.2", client="client-expired")
        ok &= check("idle: refused clients establish nothing", d["established"] == 0
                    and d["errors"]["handshake"] > 0, d)
    finally:
        mtlsd.terminate()
        echo.terminate()
        mtlsd.wait(timeout=30)
        echo.wait(timeout=30)
    if ok:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"mtlsd's log and audit trail are in {tmp}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
