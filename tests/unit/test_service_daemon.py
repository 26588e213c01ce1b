#!/usr/bin/env python3
"""test_service_daemon.py MTLSD: mtlsd under a fake service manager.

A unix datagram socket stands in for systemd's NOTIFY_SOCKET. Checks, on
the real binary:
  - READY=1 arrives only once the listener accepts (a TCP connect made the
    moment READY=1 is read must succeed), and not before: nothing but
    STATUS= lines may come first;
  - after READY=1, /proc/PID/status shows the configured user (nobody) in
    all four uid slots, no capability left (keep_capabilities = none),
    NoNewPrivs 1;
  - SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1 again;
  - SIGTERM: STOPPING=1, then a clean exit 0.
Needs root (to start as root and drop); exit 77 otherwise, saying so.
"""
import os
import pwd
import signal
import socket
import subprocess
import sys
import tempfile
import time

MTLSD = os.path.realpath(sys.argv[1])
FIX = os.environ["MTLS_FIXTURES"]


def fail(msg, proc=None):
    if proc is not None and proc.poll() is None:
        proc.kill()
    if proc is not None:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        msg += "\n--- mtlsd stderr ---\n" + err[-3000:]
    sys.exit("FAIL: " + msg)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def recv_until(sock, want, proc, timeout=20.0):
    """Datagrams until one contains `want`; returns (that one, those before)."""
    before = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            break
        if want in msg.split("\n"):
            return msg, before
        before.append(msg)
    fail("no %r from mtlsd within %.0fs (got %r)" % (want, timeout, before), proc)


def proc_status(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return fields


def main():
    if os.geteuid() != 0:
        print("SKIP: not root: starting as root and dropping to nobody needs root")
        return 77
    nobody = pwd.getpwnam("nobody")
    tmp = tempfile.mkdtemp(prefix="mtlsd-svc-")
    notify_path = os.path.join(tmp, "notify")
    mgr = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    mgr.bind(notify_path)
    port = free_port()
    conf = os.path.join(tmp, "mtlsd.conf")
    with open(conf, "w") as f:
        f.write(f"""[mtlsd]
listen = 127.0.0.1:{port}
workers = 1
control_socket = {tmp}/control.sock
user = nobody
keep_capabilities = none
drain_timeout = 1s

[server_cert.main]
cert = {FIX}/server/chain.pem
key = {FIX}/server/key.pem

[partner.p]
ca = {FIX}/pki/ca-bundle.pem
backend = 127.0.0.1:{free_port()}
""")
    os.chmod(conf, 0o600)
    env = dict(os.environ, NOTIFY_SOCKET=notify_path)
    proc = subprocess.Popen([MTLSD, "--config", conf], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    ready, before = recv_until(mgr, "READY=1", proc)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError as e:
        fail("READY=1 sent but 127.0.0.1:%d does not accept: %s" % (port, e), proc)
    for m in before:
        if any(not l.startswith("STATUS=") for l in m.split("\n") if l):
            fail("before READY=1 mtlsd sent %r" % m, proc)
    print("ok: READY=1 after the listener accepts (%r)" % ready)

    st = proc_status(proc.pid)
    uid = str(nobody.pw_uid)
    if st["Uid"].split() != [uid] * 4 or st["Gid"].split() != [str(nobody.pw_gid)] * 4:
        fail("after the drop: Uid %r Gid %r, want nobody" % (st["Uid"], st["Gid"]), proc)
    for k in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
        if int(st[k], 16) != 0:
            fail("after the drop %s = %s, want none" % (k, st[k]), proc)
    if st.get("NoNewPrivs") != "1":
        fail("NoNewPrivs = %r" % st.get("NoNewPrivs"), proc)
    print("ok: running as %s, no capabilities, NoNewPrivs" % st["Uid"])

    t0 = time.clock_gettime(time.CLOCK_MONOTONIC)
    proc.send_signal(signal.SIGHUP)
    rel, _ = recv_until(mgr, "RELOADING=1", proc)
    usec = [l for l in rel.split("\n") if l.startswith("MONOTONIC_USEC=")]
    if not usec or int(usec[0].split("=")[1]) < int(t0 * 1e6):
        fail("RELOADING=1 without a current MONOTONIC_USEC: %r" % rel, proc)
    recv_until(mgr, "READY=1", proc)
    print("ok: SIGHUP -> RELOADING=1 + MONOTONIC_USEC, then READY=1")

    proc.send_signal(signal.SIGTERM)
    recv_until(mgr, "STOPPING=1", proc)
    try:
        rc = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        fail("mtlsd did not exit after SIGTERM", proc)
    if rc != 0:
        fail("mtlsd exit code %d after SIGTERM" % rc, proc)
    print("ok: SIGTERM -> STOPPING=1, exit 0")
    mgr.close()
    os.unlink(notify_path)
    os.unlink(conf)
    # Bound as root, so mtlsd (nobody by then) could not remove it at exit.
    if os.path.exists(os.path.join(tmp, "control.sock")):
        os.unlink(os.path.join(tmp, "control.sock"))
    os.rmdir(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
