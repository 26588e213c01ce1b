"""What the hostile and fault cases share: process figures read from /proc
(RSS, open fds, CPU time), a raised fd limit, a batch of legitimate
clients, and the FIGURE line docs/reliability.md quotes."""

import os
import resource

import peers

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open("/proc/%d/statm" % pid) as f:
        return int(f.read().split()[1]) * PAGE // 1024


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def cpu_seconds(pid):
    """utime + stime of every thread of pid."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def raise_nofile(want):
    """Raise this process's fd limit (children inherit it). Root may raise
    the hard limit too; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            want = hard
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def legit_batch(ctx, port, n, leaf="client-ec", payload=b"legitimate ping\n"):
    """n full mTLS handshakes, each echoing payload through the relay.
    Returns (ok, errors): errors is a list of short reasons."""
    ok, errors = 0, []
    for _ in range(n):
        try:
            c = peers.TlsClient(ctx, port, leaf, timeout=20)
            got = bytearray()
            c.exchange(payload, len(payload), got.extend)
            c.close()
            if bytes(got) == payload:
                ok += 1
            else:
                errors.append("echo mismatch %r" % bytes(got[:40]))
        except Exception as e:  # every failure is a data point, not a crash
            errors.append(type(e).__name__ + ": " + str(e)[:80])
    return ok, errors


def figure(name, **values):
    print("FIGURE %s: %s" % (name, " ".join("%s=%s" % kv for kv in values.items())),
          flush=True)
