#!/usr/bin/env python3
"""Check pp2_encode (through tests/unit/pp2_print) with the independent
Python decoder tests/pp2_decode.py. Usage: test_pp2_decode.py PP2_PRINT.

The expected values below restate tests/unit/pp2_sample.h; the decoder
must find exactly them in the bytes the C encoder produced.
"""
import base64
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pp2_decode import Incomplete, _crc32c, decode  # noqa: E402

SHA = bytes(range(32))
EXPECTED = {
    "v4": {
        "family": "TCP4", "src_addr": "192.0.2.10", "src_port": 50412,
        "dst_addr": "198.51.100.1", "dst_port": 8443, "alpn": b"h2",
        "authority": "api.example",
        "ssl": {"client": 0x07, "verify": 0, "version": "TLSv1.3", "cn": "client-ec",
                "cipher": "TLS_AES_128_GCM_SHA256", "sig_alg": "ecdsa-with-SHA256",
                "key_alg": "EC256"},
        "app": {"type": 0xE0, "partner": "acme", "serial": "01:02", "sha256": SHA.hex(),
                "x5t_s256": base64.urlsafe_b64encode(SHA).rstrip(b"=").decode(),
                "spiffe_id": "spiffe://acme.example/prod/app1"},
    },
    "v6": {
        "family": "TCP6", "src_addr": "2001:db8::1", "src_port": 50412,
        "dst_addr": "2001:db8::2", "dst_port": 8443,
        "ssl": {"client": 0x05, "verify": 0, "version": "TLSv1.2",
                "cipher": "ECDHE-ECDSA-AES128-GCM-SHA256"},
        "absent": ["alpn", "authority", "app"], "ssl_absent": ["cn", "client_cert"],
    },
    "unix": {
        "family": "UNSPEC", "absent": ["src_addr", "alpn", "authority"],
        "ssl": {"client": 0x07, "client_cert": bytes.fromhex("3003020105")},
        "app": {"type": 0xEF, "partner": "acme"}, "app_absent": ["spiffe_id"],
    },
}

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)


def check_sample(name, raw, want):
    n, h = decode(raw)
    check(n == len(raw), "%s: header_len %d != %d bytes printed" % (name, n, len(raw)))
    check(h["command"] == "PROXY", "%s: command %s" % (name, h["command"]))
    for key in ("family", "src_addr", "src_port", "dst_addr", "dst_port", "alpn", "authority"):
        if key in want:
            check(h.get(key) == want[key], "%s: %s = %r, want %r" % (name, key, h.get(key), want[key]))
    for key in want.get("absent", []):
        check(key not in h, "%s: %s present" % (name, key))
    for key, val in want.get("ssl", {}).items():
        check(h["ssl"].get(key) == val, "%s: ssl.%s = %r, want %r" % (name, key, h["ssl"].get(key), val))
    for key in want.get("ssl_absent", []):
        check(key not in h["ssl"], "%s: ssl.%s present" % (name, key))
    for key, val in want.get("app", {}).items():
        check(h["app"].get(key) == val, "%s: app.%s = %r, want %r" % (name, key, h["app"].get(key), val))
    for key in want.get("app_absent", []):
        check(key not in h["app"], "%s: app.%s present" % (name, key))
    if "app" in h and "sha256" in h["app"]:
        check(h["app"]["x5t_s256"] == h["app"]["x5t_s256_computed"], "%s: x5t#S256 != sha256" % name)


def check_rejections(raw):
    """The decoder itself must be able to say no (so the checks above mean something)."""
    try:
        decode(raw[:-1])
        failures.append("truncated header accepted")
    except Incomplete as exc:
        check(exc.needed == len(raw), "Incomplete.needed %d != %d" % (exc.needed, len(raw)))
    bad = bytearray(raw)
    bad[3] ^= 0xFF
    try:
        decode(bytes(bad))
        failures.append("bad signature accepted")
    except Incomplete:
        failures.append("bad signature reported as incomplete")
    except ValueError:
        pass
    overrun = bytearray(raw)
    overrun[16 + 12 + 1] = 0xFF  # ALPN length now overruns the header
    try:
        decode(bytes(overrun))
        failures.append("TLV overrun accepted")
    except ValueError:
        pass
    # CRC32C (RFC 3720 check value), and a header carrying one: accepted
    # when right, refused when one bit is off.
    check(_crc32c(b"123456789") == 0xE3069283, "CRC32C check value")
    body = raw + b"\x03\x00\x04\0\0\0\0"
    body = body[:14] + struct.pack(">H", len(body) - 16) + body[16:]
    crc = _crc32c(body)
    check(decode(body[:-4] + struct.pack(">I", crc))[1].get("crc32c_ok") is True, "good CRC32C refused")
    try:
        decode(body[:-4] + struct.pack(">I", crc ^ 1))
        failures.append("bad CRC32C accepted")
    except ValueError:
        pass
    # A changed byte must show up as a changed field.
    serial_at = bytes(raw).find(b"01:02")
    tampered = bytearray(raw)
    tampered[serial_at] = ord("9")
    check(decode(bytes(tampered))[1]["app"]["serial"] == "91:02", "tampered serial not decoded")


def main():
    out = subprocess.run([sys.argv[1]], check=True, capture_output=True, text=True).stdout
    seen = set()
    for line in out.splitlines():
        name, hexdata = line.split()
        raw = bytes.fromhex(hexdata)
        check_sample(name, raw, EXPECTED[name])
        if name == "v4":
            check_rejections(raw)
        seen.add(name)
    check(seen == set(EXPECTED), "samples printed: %s" % sorted(seen))
    for f in failures:
        print("FAIL:", f)
    print("%d samples, %d failures" % (len(seen), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
