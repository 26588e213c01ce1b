"""The relay: every byte arrives, in order, both ways, and a client's
half-close reaches the backend while the reply still comes back."""

import hashlib
import os

from harness import case
from daemon import Mtlsd, standard_config
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
