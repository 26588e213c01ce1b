#!/usr/bin/env python3
"""mtlsd refuses to start without io_uring, and says why.

Runs mtlsd under tests/helpers/no_uring (a seccomp filter that makes
io_uring_setup fail with ENOSYS, then EPERM) and checks the exit code (1)
and the message. Its twin: the same command line without the filter gets
past the io_uring check (--check-config exits 0, and a real start prints
the ready line), so the failure is the filter's doing and nothing else.
"""
import os
import tempfile
import random
import signal
import socket
import subprocess
import sys
import time

no_uring, mtlsd = sys.argv[1], sys.argv[2]


def free_port():
    """A random high port that is free right now (config refuses port 0)."""
    for _ in range(50):
        port = random.randint(20000, 60000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise SystemExit("no free port")


fx = os.environ["MTLS_FIXTURES"]
args = [mtlsd, "--listen", f"127.0.0.1:{free_port()}", "--workers", "1",
        "--cert", f"{fx}/server/chain.pem", "--key", f"{fx}/server/key.pem",
        "--client-ca", f"{fx}/pki/ca-bundle.pem", "--crl", f"{fx}/pki/crls.pem",
        "--backend", "127.0.0.1:9",
        # Not the host's default control socket (another mtlsd may hold it).
        "--control-socket", os.path.join(tempfile.mkdtemp(prefix="mtlsd-nouring-"), "control.sock")]
failures = 0

for errno_name, text in (("ENOSYS", "Function not implemented"), ("EPERM", "Operation not permitted")):
    p = subprocess.run([no_uring, errno_name] + args, capture_output=True, text=True, timeout=30)
    if p.returncode == 77:
        print("seccomp unavailable: skip")
        sys.exit(77)
    want = f"mtlsd: error: io_uring is unavailable ({text}): check sysctl kernel.io_uring_disabled"
    if p.returncode != 1 or want not in p.stderr:
        print(f"FAIL {errno_name}: rc={p.returncode} stderr={p.stderr!r}")
        failures += 1
    else:
        print(f"ok {errno_name}: refused with the io_uring message")

# Twin: without the filter the same flags start and serve.
p = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
ready = False
deadline = time.time() + 20
while time.time() < deadline:
    line = p.stderr.readline()
    if not line:
        break
    if "io_uring is unavailable" in line:
        break
    if "mtlsd ready:" in line:
        ready = True
        break
p.send_signal(signal.SIGTERM)
rc = p.wait(timeout=30)
if not ready or rc != 0:
    print(f"FAIL twin: ready={ready} rc={rc}")
    failures += 1
else:
    print("ok twin: starts without the filter and stops with exit 0 on SIGTERM")
sys.exit(1 if failures else 0)
