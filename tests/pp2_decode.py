"""Independent PROXY protocol v2 decoder for mtlsd's tests (stdlib only).

Written from the spec (haproxy doc/proxy-protocol.txt) and
docs/proxy-protocol.md, not from dataplane/identity/proxy_v2.c, so that the encoder
is checked against a second reading of the format. The integration tests
import it for their test backend:

    from pp2_decode import decode, Incomplete
    header_len, hdr = decode(data)      # data: bytes received so far
    payload = data[header_len:]

decode() raises Incomplete when data does not yet hold the whole header and
ValueError when it is not a valid PROXY v2 header.
"""

import base64
import ipaddress
import struct

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"

COMMANDS = {0x0: "LOCAL", 0x1: "PROXY"}
FAMILIES = {0x00: "UNSPEC", 0x11: "TCP4", 0x12: "UDP4", 0x21: "TCP6", 0x22: "UDP6",
            0x31: "UNIX_STREAM", 0x32: "UNIX_DGRAM"}

PP2_TYPE_ALPN = 0x01
PP2_TYPE_AUTHORITY = 0x02
PP2_TYPE_CRC32C = 0x03
PP2_TYPE_NOOP = 0x04
PP2_TYPE_UNIQUE_ID = 0x05
PP2_TYPE_SSL = 0x20
PP2_TYPE_NETNS = 0x30

PP2_CLIENT_SSL = 0x01
PP2_CLIENT_CERT_CONN = 0x02
PP2_CLIENT_CERT_SESS = 0x04

SSL_SUBTYPES = {0x21: "version", 0x22: "cn", 0x23: "cipher", 0x24: "sig_alg",
                0x25: "key_alg", 0x28: "client_cert"}
APP_SUBTYPES = {0x01: "partner", 0x02: "serial", 0x03: "sha256", 0x04: "x5t_s256",
                0x05: "spiffe_id"}


def _crc32c(data):
    """CRC-32C (Castagnoli), reflected, as PP2_TYPE_CRC32C uses."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


class Incomplete(ValueError):
    """More bytes are needed; .needed is the total header length when known."""

    def __init__(self, needed):
        super().__init__("incomplete PROXY v2 header, need %d bytes" % needed)
        self.needed = needed


def _tlvs(data, what, width=2):
    """Split data into (type, value) pairs: 1-byte type, big-endian length."""
    out = []
    i = 0
    while i < len(data):
        if i + 1 + width > len(data):
            raise ValueError("%s: truncated TLV header at offset %d" % (what, i))
        t = data[i]
        (n,) = struct.unpack_from(">H", data, i + 1)
        start = i + 1 + width
        if start + n > len(data):
            raise ValueError("%s: TLV 0x%02x of %d bytes overruns its container" % (what, t, n))
        out.append((t, bytes(data[start:start + n])))
        i = start + n
    return out


def _text(value, what):
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("%s is not UTF-8: %r" % (what, value)) from exc


def _decode_ssl(value):
    if len(value) < 5:
        raise ValueError("PP2_TYPE_SSL shorter than its 5 fixed bytes")
    client = value[0]
    (verify,) = struct.unpack_from(">I", value, 1)
    ssl = {"client": client, "verify": verify,
           "client_ssl": bool(client & PP2_CLIENT_SSL),
           "cert_conn": bool(client & PP2_CLIENT_CERT_CONN),
           "cert_sess": bool(client & PP2_CLIENT_CERT_SESS),
           "subtlvs": _tlvs(value[5:], "PP2_TYPE_SSL")}
    for t, v in ssl["subtlvs"]:
        name = SSL_SUBTYPES.get(t)
        if name == "client_cert":
            ssl[name] = v
        elif name:
            ssl[name] = _text(v, "SSL sub-TLV %s" % name)
    return ssl


def _decode_app(t, value):
    app = {"type": t, "subtlvs": _tlvs(value, "application TLV 0x%02x" % t)}
    for st, v in app["subtlvs"]:
        name = APP_SUBTYPES.get(st)
        if name == "sha256":
            if len(v) != 32:
                raise ValueError("application sha256 is %d bytes, not 32" % len(v))
            app["sha256"] = v.hex()
            app["x5t_s256_computed"] = base64.urlsafe_b64encode(v).rstrip(b"=").decode()
        elif name:
            app[name] = _text(v, "application sub-TLV %s" % name)
    return app


def _decode_addresses(fam, block, hdr):
    if fam in (0x11, 0x12):
        if len(block) < 12:
            raise ValueError("IPv4 address block shorter than 12 bytes")
        hdr["src_addr"] = str(ipaddress.IPv4Address(block[0:4]))
        hdr["dst_addr"] = str(ipaddress.IPv4Address(block[4:8]))
        hdr["src_port"], hdr["dst_port"] = struct.unpack_from(">HH", block, 8)
        return 12
    if fam in (0x21, 0x22):
        if len(block) < 36:
            raise ValueError("IPv6 address block shorter than 36 bytes")
        hdr["src_addr"] = str(ipaddress.IPv6Address(block[0:16]))
        hdr["dst_addr"] = str(ipaddress.IPv6Address(block[16:32]))
        hdr["src_port"], hdr["dst_port"] = struct.unpack_from(">HH", block, 32)
        return 36
    if fam in (0x31, 0x32):
        if len(block) < 216:
            raise ValueError("unix address block shorter than 216 bytes")
        hdr["src_addr"] = block[0:108].split(b"\0", 1)[0].decode("utf-8", "replace")
        hdr["dst_addr"] = block[108:216].split(b"\0", 1)[0].decode("utf-8", "replace")
        return 216
    return 0  # UNSPEC: the receiver ignores any address bytes


def _check_crc32c(header, value):
    """The checksum covers the whole header with its own value zeroed."""
    if len(value) != 4:
        raise ValueError("PP2_TYPE_CRC32C is %d bytes, not 4" % len(value))
    at = header.find(b"\x03\x00\x04" + value, 16)
    zeroed = header[:at + 3] + b"\0\0\0\0" + header[at + 7:]
    if struct.unpack(">I", value)[0] != _crc32c(zeroed):
        raise ValueError("PP2_TYPE_CRC32C does not match the header")
    return True


def decode(data, app_tlv_type=None):
    """Decode one PROXY v2 header at the start of data.

    Returns (header_len, dict). The dict holds: version, command, family,
    src_addr/src_port/dst_addr/dst_port (when the family has addresses),
    tlvs (every (type, raw value) pair in order), and decoded views:
    alpn (bytes), authority (str), crc32c_ok (checked when the TLV is
    present; a mismatch raises ValueError), ssl (client flags, verify, version, cn,
    cipher, sig_alg, key_alg, client_cert DER, subtlvs), unique_id, and
    app: mtlsd's application TLV (partner, serial, sha256 hex, x5t_s256,
    spiffe_id, and x5t_s256_computed from sha256 for cross-checking).
    app_tlv_type picks the application TLV type; by default the first TLV
    in 0xE0..0xEF is taken.
    """
    data = bytes(data)
    if len(data) < 16:
        if not SIGNATURE.startswith(data[:12]):
            raise ValueError("not a PROXY v2 signature")
        raise Incomplete(16)
    if data[:12] != SIGNATURE:
        raise ValueError("not a PROXY v2 signature")
    ver_cmd, fam, length = data[12], data[13], struct.unpack_from(">H", data, 14)[0]
    if ver_cmd >> 4 != 2:
        raise ValueError("PROXY protocol version %d, expected 2" % (ver_cmd >> 4))
    if ver_cmd & 0x0F not in COMMANDS:
        raise ValueError("unknown command 0x%x" % (ver_cmd & 0x0F))
    if fam not in FAMILIES:
        raise ValueError("unknown address family 0x%02x" % fam)
    total = 16 + length
    if len(data) < total:
        raise Incomplete(total)

    hdr = {"version": 2, "command": COMMANDS[ver_cmd & 0x0F], "family": FAMILIES[fam]}
    body = data[16:total]
    used = _decode_addresses(fam, body, hdr)
    hdr["tlvs"] = _tlvs(body[used:], "header")
    for t, v in hdr["tlvs"]:
        if t == PP2_TYPE_ALPN:
            hdr["alpn"] = v
        elif t == PP2_TYPE_AUTHORITY:
            hdr["authority"] = _text(v, "AUTHORITY")
        elif t == PP2_TYPE_UNIQUE_ID:
            hdr["unique_id"] = v
        elif t == PP2_TYPE_CRC32C:
            hdr["crc32c_ok"] = _check_crc32c(data[:total], v)
        elif t == PP2_TYPE_SSL:
            hdr["ssl"] = _decode_ssl(v)
        elif 0xE0 <= t <= 0xEF and "app" not in hdr and app_tlv_type in (None, t):
            hdr["app"] = _decode_app(t, v)
    return total, hdr


if __name__ == "__main__":
    import json
    import sys

    raw = bytes.fromhex("".join(sys.stdin.read().split()))
    n, h = decode(raw)

    def plain(o):
        if isinstance(o, (bytes, bytearray)):
            return o.hex()
        if isinstance(o, dict):
            return {k: plain(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [plain(v) for v in o]
        return o

    print(json.dumps({"header_len": n, "header": plain(h)}, indent=1))
