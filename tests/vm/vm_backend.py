#!/usr/bin/python3
"""tests/vm/vm_backend.py: the backend and the scripted TLS clients of the
mtlsd kTLS suite (mtlsd-suite.sh). Standard library only; sized for QEMU
TCG, where every copy counts (1 MiB reads, hashing in C).

  vm_backend.py serve --port-file F --mode-file F --results F
      The backend behind mtlsd. Per connection it reads the mode file
      ("upload TAG" or "download BYTES TAG"), strips the PROXY v2 header
      (16 bytes + the length in bytes 14-15) and then
        upload:   reads to EOF, hashing what came;
        download: sends BYTES of pseudo-random data, hashing what it sent,
                  half-closes (SHUT_WR) and reads to EOF.
      When the connection is over it appends one line to the results file:
        tag=TAG mode=M bytes=N sha256=HEX end=eof|reset|error:... \
          received=N cn=CN partner=P version=V cipher=C secs=S
      (received: client bytes in download mode, which should be 0.)

  vm_backend.py ports N
      N free TCP ports on 127.0.0.1, one per line.

  vm_backend.py burst --port P --cert CHAIN --key KEY --ca ROOT \
          --tls 1.2|1.3 --cipher C --data FILE
      A client over memory BIOs that puts the first records of FILE in the
      same write(2) as its Finished (TLS 1.3) or right behind the server's
      Finished (TLS 1.2), then the rest, then close_notify; waits for the
      server to close. Prints "burst: first write N bytes, sent M".

  vm_backend.py corrupt --port P --cert CHAIN --key KEY --ca ROOT
      Handshake, wait, one good record ("good record\\n"), then one with a
      flipped ciphertext byte; waits for the server to drop the connection.
"""

import argparse
import hashlib
import os
import select
import socket
import ssl
import struct
import sys
import threading
import time

CHUNK = 1 << 20
PP2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"

try:  # the independent PROXY v2 decoder, for the identity fields
    sys.path.insert(0, os.path.join(os.environ.get(
        "MTLS_SRCDIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")),
        "tests"))
    from pp2_decode import decode as pp2_decode
except ImportError:  # pragma: no cover
    pp2_decode = None


def read_header(conn):
    """The PROXY v2 header and whatever client bytes came with it."""
    data = b""
    while len(data) < 16:
        chunk = conn.recv(CHUNK)
        if not chunk:
            raise ValueError("EOF inside the PROXY v2 header (%d bytes)" % len(data))
        data += chunk
    if data[:12] != PP2_SIGNATURE:
        raise ValueError("no PROXY v2 signature: %r" % data[:16])
    total = 16 + struct.unpack_from(">H", data, 14)[0]
    while len(data) < total:
        chunk = conn.recv(CHUNK)
        if not chunk:
            raise ValueError("EOF inside the PROXY v2 header")
        data += chunk
    ident = {}
    if pp2_decode:
        _, hdr = pp2_decode(data[:total])
        ssl_tlv, app = hdr.get("ssl", {}), hdr.get("app", {})
        ident = {"cn": ssl_tlv.get("cn"), "partner": app.get("partner"),
                 "version": ssl_tlv.get("version"), "cipher": ssl_tlv.get("cipher")}
    return data[total:], ident


def drain(conn, h=None):
    """Read to EOF; returns (bytes, end)."""
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    total = 0
    try:
        while True:
            n = conn.recv_into(buf)
            if n == 0:
                return total, "eof"
            if h is not None:
                h.update(view[:n])
            total += n
    except ConnectionResetError:
        return total, "reset"
    except OSError as e:
        return total, "error:%s" % (e.strerror or e).__str__().replace(" ", "_")


def send_stream(conn, size, h):
    """size bytes that never repeat at a record boundary, cheaply: 1 MiB
    slices of one random block at a moving offset, each opened by its
    index."""
    base = os.urandom(2 * CHUNK)
    sent, i = 0, 0
    while sent < size:
        n = min(CHUNK, size - sent)
        off = (i * 40503) % CHUNK
        chunk = struct.pack(">Q", i) + base[off + 8:off + n] if n > 8 else base[off:off + n]
        h.update(chunk)
        conn.sendall(chunk)
        sent += n
        i += 1
    return sent


class Backend:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()

    def record(self, line):
        with self.lock, open(self.args.results, "a", encoding="ascii") as f:
            f.write(line + "\n")

    def handle(self, conn):
        t0 = time.monotonic()
        try:
            with open(self.args.mode_file, encoding="ascii") as f:
                words = f.read().split()
        except OSError:
            words = ["upload", "none"]
        mode, tag = words[0], words[-1]
        h = hashlib.sha256()
        nbytes, received, end, ident = 0, 0, "eof", {}
        try:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            rest, ident = read_header(conn)
            if mode == "upload":
                h.update(rest)
                n, end = drain(conn, h)
                nbytes = len(rest) + n
            else:
                received = len(rest)
                nbytes = send_stream(conn, int(words[1]), h)
                conn.shutdown(socket.SHUT_WR)
                n, end = drain(conn)
                received += n
        except (OSError, ValueError) as e:
            end = "error:" + str(e).replace(" ", "_")[:80]
        finally:
            conn.close()
        self.record("tag=%s mode=%s bytes=%d sha256=%s end=%s received=%d cn=%s partner=%s "
                    "version=%s cipher=%s secs=%.1f"
                    % (tag, mode, nbytes, h.hexdigest(), end, received, ident.get("cn"),
                       ident.get("partner"), ident.get("version"), ident.get("cipher"),
                       time.monotonic() - t0))

    def serve(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", 0))
        ls.listen(64)
        tmp = self.args.port_file + ".tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write("%d\n" % ls.getsockname()[1])
        os.rename(tmp, self.args.port_file)
        while True:
            conn, _ = ls.accept()
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()


def cmd_ports(args):
    socks = []
    for _ in range(args.n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    for s in socks:
        print(s.getsockname()[1])
    for s in socks:
        s.close()


class MemClient:
    """TLS over memory BIOs: the caller decides what goes into each send."""

    def __init__(self, args):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(args.ca)
        ctx.load_cert_chain(args.cert, args.key)
        version = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[args.tls]
        ctx.minimum_version = ctx.maximum_version = version
        if args.cipher and args.tls == "1.2":
            ctx.set_ciphers(args.cipher)
        # TLS 1.3 suites cannot be narrowed from Python's ssl; the
        # server's choice is checked in its audit line instead.
        self.deadline = time.monotonic() + args.timeout
        self.sock = socket.create_connection(("127.0.0.1", args.port), args.timeout)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")

    def pending_out(self):
        return self.out.read()

    def send(self, data):
        if data:
            self.sock.sendall(data)

    def recv_some(self):
        """Feed what the server sent to the TLS object; False at EOF."""
        self.sock.settimeout(max(0.1, self.deadline - time.monotonic()))
        try:
            data = self.sock.recv(CHUNK)
        except ConnectionResetError:
            data = b""
        if not data:
            self.inc.write_eof()
            return False
        self.inc.write(data)
        return True

    def handshake(self):
        while True:
            try:
                self.tls.do_handshake()
                return
            except ssl.SSLWantReadError:
                self.send(self.pending_out())
                if not self.recv_some():
                    raise ConnectionError("server closed during the handshake")

    def read_until_closed(self):
        """Server bytes until its close_notify or EOF: (plaintext bytes, how)."""
        got = 0
        while True:
            try:
                got += len(self.tls.read(CHUNK))
                continue
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                return got, "close_notify"
            except ssl.SSLError as e:
                return got, ("ssl_error:" + e.reason) if e.reason else "ssl_error"
            self.send(self.pending_out())
            if not self.recv_some():
                return got, "eof"


def cmd_burst(args):
    c = MemClient(args)
    with open(args.data, "rb") as f:
        data = f.read()
    c.handshake()
    # TLS 1.3: the Finished is still in the memory BIO; the first records
    # join it in one send. TLS 1.2: the client's Finished went before the
    # server's, so the records follow the server's Finished immediately.
    first = min(len(data), args.first)
    c.tls.write(data[:first])
    wire = c.pending_out()
    c.send(wire)
    for off in range(first, len(data), 256 * 1024):
        c.tls.write(data[off:off + 256 * 1024])
        c.send(c.pending_out())
    try:
        c.tls.unwrap()
    except ssl.SSLWantReadError:
        pass
    c.send(c.pending_out())
    got, how = c.read_until_closed()
    print("burst: %s %s, first write %d bytes, sent %d, server sent %d then %s"
          % (c.tls.version(), c.tls.cipher()[0], len(wire), len(data), got, how))


def cmd_corrupt(args):
    c = MemClient(args)
    c.handshake()
    c.send(c.pending_out())
    # Give mtlsd time to verify, connect the backend and hand the session
    # to the kernel: records arriving before that are (rightly) judged by
    # OpenSSL in user space instead.
    time.sleep(args.wait)
    c.tls.write(b"good record\n")
    c.send(c.pending_out())
    c.tls.write(b"bad record\n")
    rec = bytearray(c.pending_out())
    if len(rec) < 30:
        sys.exit("corrupt: no record to corrupt")
    rec[-20] ^= 0x40
    c.send(bytes(rec))
    c.sock.settimeout(args.timeout)
    n = 0
    try:
        while True:
            d = c.sock.recv(CHUNK)
            if not d:
                break
            n += len(d)
    except OSError as e:
        print("corrupt: %s" % e)
    print("corrupt: %s %s, server closed the connection after %d more bytes"
          % (c.tls.version(), c.tls.cipher()[0], n))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port-file", required=True)
    s.add_argument("--mode-file", required=True)
    s.add_argument("--results", required=True)
    s = sub.add_parser("ports")
    s.add_argument("n", type=int)
    for name in ("burst", "corrupt"):
        s = sub.add_parser(name)
        s.add_argument("--port", type=int, required=True)
        s.add_argument("--cert", required=True)
        s.add_argument("--key", required=True)
        s.add_argument("--ca", required=True)
        s.add_argument("--tls", default="1.3", choices=("1.2", "1.3"))
        s.add_argument("--cipher")
        s.add_argument("--timeout", type=float, default=120)
        if name == "burst":
            s.add_argument("--data", required=True)
            s.add_argument("--first", type=int, default=65536)
        else:
            s.add_argument("--wait", type=float, default=2)
    args = p.parse_args()
    if args.cmd == "serve":
        Backend(args).serve()
    elif args.cmd == "ports":
        cmd_ports(args)
    elif args.cmd == "burst":
        cmd_burst(args)
    else:
        cmd_corrupt(args)


if __name__ == "__main__":
    main()
