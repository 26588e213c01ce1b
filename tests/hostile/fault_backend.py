#!/usr/bin/env python3
"""A backend that misbehaves on purpose, for the fault and backpressure
cases. Reads the PROXY v2 header mtlsd sends, then:

  flood   writes to the client as fast as the socket takes it, forever
  hang    never reads another byte and never answers
  reset   reads --after bytes of payload, then resets the connection (RST)

Records JSON lines in --record: accept, eof, reset, and for flood a
"sent" line with the running byte count whenever it has grown by a MiB, so
a test sees where backpressure stopped it. Prints "backend ready: ADDR".
"""

import argparse
import json
import socket
import struct
import threading
import time

MIB = 1 << 20


class Recorder:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def write(self, **event):
        event["t"] = round(time.monotonic(), 3)
        with self.lock:
            self.f.write(json.dumps(event) + "\n")


def read_exactly(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def serve(s, conn, args, rec):
    rec.write(event="accept", conn=conn)
    try:
        fixed = read_exactly(s, 16)
        read_exactly(s, int.from_bytes(fixed[14:16], "big"))
        if args.mode == "flood":
            block, sent, mark = b"f" * 65536, 0, 0
            while True:
                sent += s.send(block)
                if sent - mark >= MIB:
                    mark = sent
                    rec.write(event="sent", conn=conn, bytes=sent)
        elif args.mode == "hang":
            while True:
                time.sleep(3600)
        elif args.mode == "reset":
            read_exactly(s, args.after)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
            rec.write(event="reset", conn=conn)
            return
    except (EOFError, ConnectionError, OSError) as e:
        rec.write(event="eof", conn=conn, why=type(e).__name__)
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["flood", "hang", "reset"], required=True)
    ap.add_argument("--after", type=int, default=65536)
    ap.add_argument("--record", required=True)
    args = ap.parse_args()
    rec = Recorder(args.record)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1024)
    print("backend ready: 127.0.0.1:%d" % ls.getsockname()[1], flush=True)
    conn = 0
    while True:
        s, _ = ls.accept()
        conn += 1
        threading.Thread(target=serve, args=(s, conn, args, rec), daemon=True).start()


if __name__ == "__main__":
    main()
