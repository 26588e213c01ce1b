"""The relay: every byte arrives, in order, both ways, and a client's
half-close reaches the backend while the reply still comes back."""

import collections
import concurrent.futures
import hashlib
import os

from harness import case, wait_until
from daemon import Mtlsd, standard_config
from expect import pp2_view
import peers

BIG = 32 * 1024 * 1024


@case("relay_32mib_each_way")
def relay_32mib_each_way(ctx):
    """32 MiB of random bytes to an echo backend and back: the checksums
    the client sent, the backend received and the client got back agree."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr))
    payload = os.urandom(BIG)
    sent_sum = hashlib.sha256(payload).hexdigest()
    back = hashlib.sha256()
    client = peers.TlsClient(ctx, mtlsd.port, "client-ec", timeout=240)
    try:
        n = client.exchange(payload, BIG, back.update)
        client.shutdown_write()
        client.recv_until_close(back.update)
    finally:
        client.close()
    assert n == BIG, "got %d of %d bytes back" % (n, BIG)
    assert back.hexdigest() == sent_sum, "the echoed bytes differ from those sent"
    closed = backend.closed(1)
    assert closed["bytes_in"] == BIG and closed["sha256_in"] == sent_sum, closed


@case("relay_half_close")
def relay_half_close(ctx):
    """The client sends, then half-closes (close_notify + FIN). The backend
    answers only once it sees EOF, so the reply can only arrive if mtlsd
    propagated the half-close and kept the other direction open."""
    backend = ctx.backend(mode="reply-at-eof")
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr))
    payload = os.urandom(100 * 1000)
    reply = bytearray()
    client = peers.TlsClient(ctx, mtlsd.port, "client-ec")
    try:
        client.send(payload)
        client.shutdown_write()
        client.recv_until_close(reply.extend)
    finally:
        client.close()
    want = b"bytes=%d sha256=%s\n" % (len(payload), hashlib.sha256(payload).hexdigest().encode())
    assert bytes(reply) == want, "reply after half-close: %r, want %r" % (bytes(reply), want)
    assert backend.closed(1)["peer_eof"], backend.events()


def relay_one(ctx, port, leaf, size):
    """One client: size random bytes echoed back intact, then a clean
    close. Returns the number of bytes that came back."""
    payload = os.urandom(size)
    back = hashlib.sha256()
    client = peers.TlsClient(ctx, port, leaf, timeout=120)
    try:
        n = client.exchange(payload, size, back.update)
        client.shutdown_write()
        client.recv_until_close(back.update)
    finally:
        client.close()
    assert back.hexdigest() == hashlib.sha256(payload).hexdigest(), \
        "%s: the echoed bytes differ" % leaf
    return n


def refused_one(ctx, port, leaf):
    """One client mtlsd must refuse: not a byte comes back."""
    back = bytearray()
    try:
        client = peers.TlsClient(ctx, port, leaf, timeout=120)
    except peers.TlsError:
        return 0  # refused inside the handshake
    try:
        client.exchange(b"refused client data\n", 1, back.extend)
    except peers.TlsError:
        pass  # the alert that refuses it
    finally:
        client.close()
    return len(back)


@case("concurrent_clients_mixed")
def concurrent_clients_mixed(ctx):
    """Valid and revoked clients at once, on every worker: each valid one
    gets its own bytes back, each refused one nothing, and the backend sees
    exactly the valid ones, each with its own identity."""
    backend = ctx.backend()
    mtlsd = Mtlsd(ctx, standard_config(ctx, backend.addr))
    good = ["client-ec", "client-rsa"] * 12
    bad = ["client-revoked", "client-badsan"] * 4
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        goods = [pool.submit(relay_one, ctx, mtlsd.port, leaf, 256 * 1024) for leaf in good]
        bads = [pool.submit(refused_one, ctx, mtlsd.port, leaf) for leaf in bad]
        assert [f.result() for f in goods] == [256 * 1024] * len(good)
        assert [f.result() for f in bads] == [0] * len(bad)
    lines = wait_until("an audit line per client",
                       lambda: len(mtlsd.audit()) >= len(good) + len(bad) and mtlsd.audit())
    outcomes = collections.Counter(line["outcome"] for line in lines)
    assert outcomes == {"ok": len(good), "revoked": 4, "policy_denied": 4}, outcomes
    assert backend.connections() == len(good), backend.events("accept")
    seen = collections.Counter(pp2_view(backend.identity(i + 1))["cn"]
                               for i in range(len(good)))
    assert seen == {"client-ec": 12, "client-rsa": 12}, seen
