#!/usr/bin/env python3
"""The backend the integration tests put behind mtlsd.

A python3-stdlib asyncio TCP server on 127.0.0.1 (port chosen by the kernel,
so parallel test runs never collide). It records every connection it gets,
as JSON lines in --record, so a test can assert how many connections
reached the backend (zero for every rejected handshake) and what identity
mtlsd claimed for each in its PROXY v2 header:

  {"event": "accept", "conn": 1, "peer": "127.0.0.1:41234"}
  {"event": "proxy",  "conn": 1, "header_len": 231, "header": {...}}
  {"event": "proxy_error", "conn": 1, "error": "..."}
  {"event": "close",  "conn": 1, "bytes_in": 5, "sha256_in": "..",
   "bytes_out": 5, "peer_eof": true}

The header is decoded by tests/pp2_decode.py (bytes values become lower-case
hex strings). Modes:
  echo          send back every byte; on EOF from mtlsd, shut the write side
  reply-at-eof  send nothing until EOF, then one line "bytes=N sha256=HEX"
                (the half-close test: the reply can only arrive after the
                client shut its write side)
  http-ok       read one HTTP request, answer 200 with a JSON body holding
                the decoded PROXY header, then close
  close-early   read the PROXY header, then close without reading more
  refuse        bind the port but never listen: connects get RST
                (ECONNREFUSED), and no other process can take the port

When ready it prints "backend ready: 127.0.0.1:PORT" (or "unix:PATH" with
--unix) on stdout.
"""

import argparse
import asyncio
import hashlib
import json
import os
import socket
import sys

PP2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
PP2_FIXED_LEN = 16
CHUNK = 65536


def load_decoder():
    """tests/pp2_decode.py, found relative to this file."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import pp2_decode  # noqa: E402  (path set just above)
    return pp2_decode.decode


def jsonable(value):
    """Decoded headers hold bytes (fingerprints, DER): record them as hex."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


class Recorder:
    """Appends one JSON line per event, flushed at once: a test may read the
    file while the backend runs."""

    def __init__(self, path):
        self.f = open(path, "a", buffering=1, encoding="utf-8")
        self.next_conn = 1

    def new_conn(self):
        n = self.next_conn
        self.next_conn += 1
        return n

    def write(self, **event):
        self.f.write(json.dumps(jsonable(event), sort_keys=True) + "\n")
        self.f.flush()


class Backend:
    def __init__(self, mode, proxy, recorder):
        self.mode = mode
        self.proxy = proxy
        self.rec = recorder
        self.decode = load_decoder() if proxy == "v2" else None

    async def read_proxy_header(self, conn, reader):
        """Read exactly one PROXY v2 header. Returns the decoded dict, or
        None after recording why the header was not acceptable."""
        try:
            fixed = await reader.readexactly(PP2_FIXED_LEN)
            if fixed[:12] != PP2_SIGNATURE:
                self.rec.write(event="proxy_error", conn=conn,
                               error="no PROXY v2 signature", first_bytes=fixed.hex())
                return None
            rest = await reader.readexactly(int.from_bytes(fixed[14:16], "big"))
        except asyncio.IncompleteReadError as e:
            self.rec.write(event="proxy_error", conn=conn,
                           error="connection closed inside the PROXY header",
                           first_bytes=e.partial.hex())
            return None
        header = fixed + rest
        try:
            header_len, decoded = self.decode(header)
        except Exception as e:  # the decoder's complaint is the finding
            self.rec.write(event="proxy_error", conn=conn, error=repr(e), first_bytes=header.hex())
            return None
        self.rec.write(event="proxy", conn=conn, header_len=header_len, header=decoded)
        return decoded

    async def handle(self, reader, writer):
        conn = self.rec.new_conn()
        peer = writer.get_extra_info("peername")
        peer = "%s:%d" % (peer[0], peer[1]) if isinstance(peer, tuple) else "unix"
        self.rec.write(event="accept", conn=conn, peer=peer)
        stats = {"bytes_in": 0, "bytes_out": 0, "peer_eof": False}
        digest = hashlib.sha256()
        try:
            identity = None
            if self.proxy == "v2":
                identity = await self.read_proxy_header(conn, reader)
                if identity is None:
                    return
            if self.mode == "close-early":
                return
            if self.mode == "http-ok":
                await self.serve_http(reader, writer, identity, stats, digest)
                return
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    stats["peer_eof"] = True
                    break
                stats["bytes_in"] += len(data)
                digest.update(data)
                if self.mode == "echo":
                    writer.write(data)
                    stats["bytes_out"] += len(data)
                    await writer.drain()
            if self.mode == "reply-at-eof":
                reply = b"bytes=%d sha256=%s\n" % (stats["bytes_in"], digest.hexdigest().encode())
                writer.write(reply)
                stats["bytes_out"] += len(reply)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError) as e:
            stats["error"] = repr(e)
        finally:
            self.rec.write(event="close", conn=conn, sha256_in=digest.hexdigest(), **stats)
            writer.close()

    async def serve_http(self, reader, writer, identity, stats, digest):
        try:
            request = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        stats["bytes_in"] += len(request)
        digest.update(request)
        body = json.dumps({"request_line": request.split(b"\r\n", 1)[0].decode("latin-1"),
                           "proxy": jsonable(identity)}, sort_keys=True).encode() + b"\n"
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
        writer.write(head + body)
        stats["bytes_out"] += len(head) + len(body)
        await writer.drain()


async def serve(args):
    rec = Recorder(args.record)
    if args.mode == "refuse":
        # Bound but not listening: the kernel answers SYNs with RST.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        print("backend ready: 127.0.0.1:%d" % sock.getsockname()[1], flush=True)
        await asyncio.Event().wait()
        return
    backend = Backend(args.mode, args.proxy, rec)
    if args.unix:
        server = await asyncio.start_unix_server(backend.handle, args.unix, limit=CHUNK * 4)
        print("backend ready: unix:%s" % args.unix, flush=True)
    else:
        server = await asyncio.start_server(backend.handle, "127.0.0.1", 0, limit=CHUNK * 4)
        port = server.sockets[0].getsockname()[1]
        print("backend ready: 127.0.0.1:%d" % port, flush=True)
    async with server:
        await server.serve_forever()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--mode", required=True,
                   choices=["echo", "reply-at-eof", "http-ok", "close-early", "refuse"])
    p.add_argument("--proxy", choices=["v2", "none"], default="v2")
    p.add_argument("--record", required=True, help="JSON-lines file of connections")
    p.add_argument("--unix", metavar="PATH", help="listen on this unix socket instead")
    args = p.parse_args()
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
