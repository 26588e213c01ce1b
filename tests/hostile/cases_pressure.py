"""Pressure on the handshake slots (issue 14, item 7): stalled clients must
not lock partners out, and refusals must not flood the audit trail.

The attack the issue describes: 1,500 connections that send 11 bytes of a
ClientHello and then nothing, plus 200 of random bytes, while a partner's
client keeps handshaking. mtlsd makes room instead of refusing (evicting
the handshakes that made the least progress, shortening the timeout of
those without a ClientHello), limits handshakes per source, and caps the
audit lines of refusals per second with a summary line. Every positive
case has its twin below the limits: nothing is evicted or held back.

Attackers connect from 127.0.0.2 and up (all of 127/8 is loopback on
Linux), the partner's client from 127.0.0.1, so per-source counting sees
them as the different hosts they would be."""

import os
import select
import socket
import ssl
import threading
import time
import urllib.request

from harness import case, free_port, wait_until
from daemon import Mtlsd, standard_config
from expect import valid_client_works
import peers
from hostile_util import figure, raise_nofile

NAMES = ["stalled_hellos_evicted_partner_served", "slow_hello_below_limit_not_evicted",
         "per_source_limit_refuses_that_source_only", "per_source_below_limit_all_held",
         "refusal_audit_lines_rate_limited", "few_refusals_each_audited"]

PARTIAL = 1500
GARBAGE = 200
SOURCES = 100           # attacker addresses: 17 connections each, far below the per-source limit
HANDSHAKE_TIMEOUT = 10  # mtlsd's default, written out: the assertions are about it


def vmrss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/%d/status" % pid)


def eleven_bytes():
    """The first 11 bytes of a ClientHello: record header (5), handshake
    header (4), legacy version (2). A record of 512 bytes announced, never
    sent."""
    return bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03])


class Attack:
    """Connections opened from a range of loopback sources, each sending
    its bytes and then nothing. Remembers when each was opened and when
    mtlsd closed it (EOF or reset seen on our side)."""

    def __init__(self, port, payloads, first_source=2, sources=SOURCES):
        self.socks, self.opened, self.closed = [], [], {}
        for i, data in enumerate(payloads):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.%d" % (first_source + i % sources), 0))
            s.settimeout(10)
            s.connect(("127.0.0.1", port))
            try:
                s.sendall(data)
            except ConnectionError:
                pass  # already closed by mtlsd: seen by poll() below
            s.setblocking(False)
            self.socks.append(s)
            self.opened.append(time.monotonic())
        self.poller = select.poll()
        self.by_fd = {}
        for i, s in enumerate(self.socks):
            self.poller.register(s, select.POLLIN)
            self.by_fd[s.fileno()] = i

    def poll(self, timeout_s=0.0):
        """Note every socket mtlsd has closed since the last call."""
        for fd, _ in self.poller.poll(timeout_s * 1000):
            i = self.by_fd[fd]
            try:
                data = self.socks[i].recv(4096)
            except BlockingIOError:
                continue
            except ConnectionError:
                data = b""
            if data:
                continue  # an alert first: the close follows
            self.closed[i] = time.monotonic()
            self.poller.unregister(fd)
        return len(self.closed)

    def wait_all_closed(self, timeout_s):
        deadline = time.monotonic() + timeout_s
        while len(self.closed) < len(self.socks) and time.monotonic() < deadline:
            self.poll(0.1)
        return len(self.closed)

    def close(self):
        for s in self.socks:
            s.close()


class PartnerClient(threading.Thread):
    """The partner's client: full mTLS handshakes with an echo, one after
    the other from 127.0.0.1, until stopped. Every attempt counts."""

    def __init__(self, ctx, port):
        super().__init__(daemon=True)
        self.ctx, self.port = ctx, port
        self.stop = threading.Event()
        self.ok, self.errors = 0, []

    def run(self):
        payload = b"partner ping\n"
        while not self.stop.is_set():
            try:
                c = peers.TlsClient(self.ctx, self.port, "client-ec", timeout=20)
                got = bytearray()
                c.exchange(payload, len(payload), got.extend)
                c.close()
                if bytes(got) == payload:
                    self.ok += 1
                else:
                    self.errors.append("echo mismatch %r" % bytes(got[:40]))
            except Exception as e:  # a refused handshake is a data point
                self.errors.append(type(e).__name__ + ": " + str(e)[:100])

    def attempts(self):
        return self.ok + len(self.errors)


def metrics(admin_port):
    """{series: value} of mtlsd's /metrics (series as printed)."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin_port, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, v = line.rpartition(" ")
            out[name] = float(v)
    return out


def with_admin(extra=()):
    admin = free_port()
    return admin, ["--admin-listen", "127.0.0.1:%d" % admin, "--log-level", "info"] + list(extra)


def evicted(m):
    return (m.get('mtlsd_handshakes_evicted_total{cause="limit"}', 0),
            m.get('mtlsd_handshakes_evicted_total{cause="reduced_timeout"}', 0))


@case("stalled_hellos_evicted_partner_served")
def stalled_hellos_evicted_partner_served(ctx):
    """The issue's attack at mtlsd's default limits (max_handshakes 1000,
    handshake_timeout 10s), two workers: 1,500 eleven-byte ClientHellos and
    200 random payloads from 100 addresses while the partner's client
    handshakes in a loop; then the same wave again. The partner's success
    rate must be >= 99%; every attacking socket must be closed by mtlsd,
    each well before the 10 s timeout; and mtlsd's RSS must be bounded by
    its limits, not by the attack: the second wave adds less than half of
    what the first did, and the total stays within the budget of
    docs/architecture.md (16 MiB of receive buffers per worker, under
    96 KiB per handshake slot with what the allocator keeps)."""
    raise_nofile(4 * (PARTIAL + GARBAGE) + 4096)
    workers, max_handshakes = 2, 1000
    backend = ctx.backend()
    admin, flags = with_admin(["--workers", str(workers)])
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr), extra_flags=flags)
    pid = mtlsd.proc.proc.pid
    partner = PartnerClient(ctx, mtlsd.port)
    partner.start()
    wait_until("the partner's first handshakes", lambda: partner.ok >= 3, alive=mtlsd.check_alive)
    rss = [vmrss_kib(pid)]
    waves = []
    try:
        for _ in range(2):
            payloads = [eleven_bytes()] * PARTIAL + [os.urandom(64) for _ in range(GARBAGE)]
            attack = Attack(mtlsd.port, payloads)
            waves.append(attack)
            # Until every attacking socket is closed or, with margin, the
            # handshake timeout would have closed them anyway.
            attack.wait_all_closed(HANDSHAKE_TIMEOUT + 5)
            rss.append(vmrss_kib(pid))
        # The partner keeps going a little after the attack is gone.
        time.sleep(1)
        partner.stop.set()
        partner.join(30)
        m = metrics(admin)
    finally:
        for attack in waves:
            attack.close()
    mtlsd.check_alive()
    at_limit, reduced = evicted(m)
    rate = partner.ok / max(partner.attempts(), 1)
    closed = [len(a.closed) for a in waves]
    held = [max([a.closed[i] - a.opened[i] for i in a.closed] or [float("nan")]) for a in waves]
    figure("stalled_evicted", stalled=PARTIAL, garbage=GARBAGE, sources=SOURCES, waves=len(waves),
           closed_by_mtlsd="/".join(map(str, closed)),
           longest_held_s="/".join("%.1f" % h for h in held), evicted_limit=int(at_limit),
           evicted_reduced_timeout=int(reduced), partner_attempts=partner.attempts(),
           partner_ok=partner.ok, success_rate="%.4f" % rate,
           rss_kib="/".join(map(str, rss)))
    assert partner.attempts() >= 20, "only %d partner handshakes were tried" % partner.attempts()
    assert rate >= 0.99, "partner success %.4f < 0.99; errors: %r" % (rate, partner.errors[:10])
    for n, a in enumerate(waves, 1):
        assert len(a.closed) == len(a.socks), "wave %d: mtlsd left %d attacking connections " \
            "open after %ds" % (n, len(a.socks) - len(a.closed), HANDSHAKE_TIMEOUT + 5)
        assert held[n - 1] < HANDSHAKE_TIMEOUT / 2, "wave %d: an attacking connection was held " \
            "%.1fs (timeout %ds): not shed under pressure" % (n, held[n - 1], HANDSHAKE_TIMEOUT)
    assert at_limit + reduced >= 2 * PARTIAL, "only %d evictions counted for %d stalled" % (
        at_limit + reduced, 2 * PARTIAL)
    assert at_limit > 0 and reduced > 0, (at_limit, reduced)
    assert mtlsd.audit_events("evicted"), "no eviction in the audit trail"
    first, second = rss[1] - rss[0], rss[2] - rss[1]
    assert second < first / 2, "RSS grew %d KiB in the first wave and %d KiB in the same " \
        "second one: it follows the attack, not the limits" % (first, second)
    budget = workers * 16 * 1024 + max_handshakes * 96
    assert rss[2] - rss[0] < budget, "mtlsd grew by %d KiB, budget %d KiB" % (rss[2] - rss[0], budget)


@case("slow_hello_below_limit_not_evicted")
def slow_hello_below_limit_not_evicted(ctx):
    """The twin: 50 stalled ClientHellos (5% of max_handshakes) and a
    partner's client that waits 3 s after connecting before it sends its
    ClientHello. Below the pressure threshold nothing is evicted or cut
    short: the slow handshake completes and the 50 are still open."""
    backend = ctx.backend()
    admin, flags = with_admin()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr), extra_flags=flags)
    attack = Attack(mtlsd.port, [eleven_bytes()] * 50, sources=5)
    try:
        fx = ctx.fx
        cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        cctx.load_verify_locations(fx.path("pki", "root", "ca.crt"))
        cctx.load_cert_chain(fx.path("client-ec", "chain.pem"), fx.path("client-ec", "key.pem"))
        raw = socket.create_connection(("127.0.0.1", mtlsd.port), 20)
        time.sleep(3)  # slow, but well within handshake_timeout
        with cctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"slow but legitimate\n")
            got = b""
            while len(got) < 20:
                chunk = tls.recv(100)
                if not chunk:
                    break
                got += chunk
        still_open = len(attack.socks) - attack.poll()
        m = metrics(admin)
    finally:
        attack.close()
    figure("slow_hello_below_limit", stalled=50, slow_client_echoed=got == b"slow but legitimate\n",
           stalled_still_open=still_open, evicted=sum(evicted(m)))
    assert got == b"slow but legitimate\n", got
    assert still_open == 50, "%d stalled connections were closed below the limit" % (50 - still_open)
    assert evicted(m) == (0, 0), evicted(m)
    assert not mtlsd.audit_events("evicted")


def per_source_case(ctx, n, limit):
    backend = ctx.backend()
    admin, flags = with_admin(["--max-handshakes-per-source", str(limit)])
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr), extra_flags=flags)
    attack = Attack(mtlsd.port, [eleven_bytes()] * n, sources=1)
    try:
        refused = wait_until("the refusals beyond the limit to be counted", lambda: (
            lambda m: m if m["mtlsd_connections_refused_per_source_total"] >= n - limit else None)(
                metrics(admin)), timeout=30)["mtlsd_connections_refused_per_source_total"]
        # A partner's client from another address is served meanwhile.
        valid_client_works(ctx, mtlsd, backend, audit_n=1, conn=1)
        closed = attack.wait_all_closed(2) if n > limit else attack.poll(0.5)
        m = metrics(admin)
    finally:
        attack.close()
    lines = mtlsd.audit_events("limit")
    figure("per_source", source="127.0.0.2", limit=limit, opened=n, refused=int(refused),
           closed_by_mtlsd=closed, still_open=n - closed, refused_lines=len(lines))
    return refused, closed, lines, m


@case("per_source_limit_refuses_that_source_only")
def per_source_limit_refuses_that_source_only(ctx):
    """--max-handshakes-per-source 50: 120 stalled ClientHellos from one
    address. The 70 beyond the limit are refused at accept (closed at once,
    audited naming the setting and the source, counted), the 50 within it
    are held, and a partner's client from another address is served."""
    refused, closed, lines, m = per_source_case(ctx, 120, 50)
    assert refused == 70, refused
    assert m["mtlsd_connections_refused_per_source_total"] == 70, m
    assert len(lines) == 70, len(lines)
    assert "max_handshakes_per_source (50) reached for 127.0.0.2" in lines[0]["reason"], lines[0]
    # The refused ones are closed; the 50 within the limit stay open.
    assert closed == 70, "%d closed, expected the 70 refused" % closed


@case("per_source_below_limit_all_held")
def per_source_below_limit_all_held(ctx):
    """The twin: 50 from one address at --max-handshakes-per-source 50:
    none refused, all 50 held, the partner served."""
    refused, closed, lines, m = per_source_case(ctx, 50, 50)
    assert refused == 0 and not lines, (refused, lines[:3])
    assert closed == 0, "%d of the 50 were closed" % closed


def refusal_accounting(mtlsd, admin):
    """(refusal lines, summed-up refusals, summaries, refused per /metrics)."""
    lines = mtlsd.audit_events("limit")
    summaries = mtlsd.audit_events("refusals_suppressed")
    held = sum(s["by_event"].get("limit", 0) for s in summaries)
    return lines, held, summaries, metrics(admin)["mtlsd_connections_refused_total"]


def refusal_flood(ctx, n):
    """A partner's client holds the only connection slot (--max-connections
    1), then n connections arrive: with nothing to evict (the slot is an
    established connection), every one is refused at accept."""
    raise_nofile(2 * n + 1024)
    backend = ctx.backend()
    admin, flags = with_admin(["--max-connections", "1", "--max-handshakes", "1"])
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr), extra_flags=flags)
    holder = peers.TlsClient(ctx, mtlsd.port, "client-ec")
    got = bytearray()
    holder.exchange(b"holding the slot\n", 17, got.extend)
    t0 = time.monotonic()
    attack = Attack(mtlsd.port, [eleven_bytes()] * n, sources=1)
    took = time.monotonic() - t0
    try:
        # Every refusal is a line or part of a summary: wait until the last
        # second's summary is out (at most about a second later).
        wait_until("every refusal to be in the audit trail", lambda: (
            lambda a: len(a[0]) + a[1] == a[3] == n)(refusal_accounting(mtlsd, admin)),
            alive=mtlsd.check_alive)
        lines, held, summaries, refused = refusal_accounting(mtlsd, admin)
    finally:
        attack.close()
        holder.close()
    per_second = {}
    for e in lines:
        per_second[e["ts"][:19]] = per_second.get(e["ts"][:19], 0) + 1
    figure("refusal_audit", refusals=n, opened_in_s="%.1f" % took, lines=len(lines),
           summed_up=held, summary_lines=len(summaries),
           most_lines_in_a_second=max(per_second.values() or [0]))
    return lines, held, summaries, per_second


@case("refusal_audit_lines_rate_limited")
def refusal_audit_lines_rate_limited(ctx):
    """1,500 refusals in a burst: at most 100 refusal lines are written per
    second (a wall-clock second can hold two of mtlsd's monotonic ones: 200),
    the rest are summed up in "N more refused in the last second" lines, and
    lines plus summaries account for every refusal exactly."""
    lines, held, summaries, per_second = refusal_flood(ctx, 1500)
    assert max(per_second.values()) <= 200, per_second
    assert summaries, "no summary line for %d refusals" % (len(lines) + held)
    assert held > 0 and len(lines) < 1500, (len(lines), held)
    s = summaries[0]
    assert s["suppressed"] == s["by_event"]["limit"], s
    assert "more refused in the last second" in s["reason"], s


@case("few_refusals_each_audited")
def few_refusals_each_audited(ctx):
    """The twin: 20 refusals stay far below the cap: each gets its own
    line, and no summary is written."""
    lines, held, summaries, _ = refusal_flood(ctx, 20)
    assert len(lines) == 20 and held == 0 and not summaries, (len(lines), held, summaries)
