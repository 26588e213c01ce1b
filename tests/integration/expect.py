"""What the tests expect to see: the facts of a fixture certificate (read
with the openssl CLI, independent of mtlsd's code), and assertions on the
audit line, the PROXY v2 identity and the relayed bytes."""

import functools
import re
import subprocess

import peers


@functools.lru_cache(maxsize=None)
def cert_facts(path):
    """serial (upper-case hex, no separators, no leading zeros), cn,
    spiffe (first spiffe:// URI SAN or None), sha256 and der (lower-case
    hex)."""
    out = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-serial",
                          "-subject", "-nameopt", "RFC2253", "-fingerprint", "-sha256",
                          "-ext", "subjectAltName"],
                         capture_output=True, text=True, check=True).stdout
    serial = re.search(r"^serial=([0-9A-F]+)$", out, re.M).group(1)
    subject = re.search(r"^subject=(.*)$", out, re.M).group(1)
    cn = re.search(r"(?:^|,)CN=([^,]+)", subject)
    fp = re.search(r"Fingerprint=([0-9A-F:]+)$", out, re.M).group(1)
    spiffe = re.search(r"URI:(spiffe://[^,\s]+)", out)
    der = subprocess.run(["openssl", "x509", "-in", path, "-outform", "DER"],
                         capture_output=True, check=True).stdout
    return {"serial": normalize_serial(serial), "cn": cn.group(1) if cn else None,
            "subject": subject, "sha256": fp.replace(":", "").lower(),
            "spiffe": spiffe.group(1) if spiffe else None, "der": der.hex()}


def normalize_serial(text):
    """'00:4F:A2' / '4fa2' -> '4FA2': serials compare as numbers."""
    return re.sub(r"[^0-9A-F]", "", text.upper()).lstrip("0") or "0"


def leaf_facts(ctx, leaf):
    return cert_facts(ctx.fx.path(leaf, "cert.pem"))


def assert_echoed(result, probe):
    assert result.matched, ("the probe %r did not come back through mtlsd: %r"
                            % (probe, result))


def assert_not_relayed(result, probe):
    assert probe not in result.stdout, ("a rejected client got bytes relayed: %r" % result)


def assert_audit_ok(ctx, line, leaf, partner):
    facts = leaf_facts(ctx, leaf)
    assert line.get("outcome") == "ok", "expected outcome ok, audit line: %r" % line
    assert line.get("partner") == partner, "expected partner %r: %r" % (partner, line)
    assert normalize_serial(line.get("serial", "")) == facts["serial"], (facts, line)
    assert "CN=%s" % facts["cn"] in line.get("subject", ""), (facts, line)


def assert_audit_rejected(ctx, line, outcome, leaf=None):
    """The audit line of a rejected handshake: the outcome names the reason,
    a reason text is given, and the presented certificate (if any, and if
    it reached the server) is identified."""
    assert line.get("outcome") == outcome, ("expected outcome %r, audit line: %r"
                                            % (outcome, line))
    assert line.get("reason"), "a rejection must say why: %r" % line
    if leaf:
        facts = leaf_facts(ctx, leaf)
        assert normalize_serial(line.get("serial", "")) == facts["serial"], (facts, line)


def pp2_view(header):
    """The parts of a PROXY v2 header decoded by tests/pp2_decode.py (as
    backend.py records it) that the tests assert on."""
    ssl_tlv = header.get("ssl") or {}
    app = header.get("app") or {}
    return {
        "src": (header.get("src_addr"), header.get("src_port")),
        "dst": (header.get("dst_addr"), header.get("dst_port")),
        "cn": ssl_tlv.get("cn"),
        "sig_alg": ssl_tlv.get("sig_alg"),
        "key_alg": ssl_tlv.get("key_alg"),
        "cert_der": ssl_tlv.get("client_cert"),
        "client_ssl": ssl_tlv.get("client_ssl"),
        "cert_conn": ssl_tlv.get("cert_conn"),
        "cert_sess": ssl_tlv.get("cert_sess"),
        "verify": ssl_tlv.get("verify"),
        "partner": app.get("partner"),
        "serial": app.get("serial"),
        "sha256": app.get("sha256"),
        "x5t_s256": app.get("x5t_s256"),
        "x5t_s256_computed": app.get("x5t_s256_computed"),
        "spiffe": app.get("spiffe_id"),
    }


def assert_identity(ctx, header, leaf, partner, resumed=False, send_cert=False,
                    server_algs=("ecdsa-with-SHA256", "EC256")):
    """The backend was told, in the PROXY v2 header, exactly who the client
    is: a verified TLS client (SSL TLV flags, verify 0), the CN, partner,
    serial, SHA-256 (and its x5t#S256 form) and SPIFFE ID of the leaf.
    A resumed session presented its certificate in the session, not on
    this connection: CERT_SESS without CERT_CONN, as the PROXY spec says."""
    facts = leaf_facts(ctx, leaf)
    view = pp2_view(header)
    assert view["client_ssl"] and view["cert_sess"] and view["verify"] == 0, \
        ("PROXY SSL TLV flags", header)
    assert view["cert_conn"] == (not resumed), ("PROXY CERT_CONN flag", resumed, header)
    assert view["cn"] == facts["cn"], ("PROXY CN", facts, header)
    # The spec's SIG_ALG/KEY_ALG: the certificate mtlsd presented (by
    # default the suite's ECDSA P-256 server certificate under an ECDSA CA),
    # whatever the client's own key (client-rsa must still read EC256).
    assert (view["sig_alg"], view["key_alg"]) == tuple(server_algs), \
        ("PROXY SIG_ALG/KEY_ALG describe mtlsd's certificate", server_algs, header)
    assert view["partner"] == partner, ("PROXY partner", partner, header)
    assert normalize_serial(view["serial"] or "") == facts["serial"], ("PROXY serial", facts, header)
    assert view["sha256"] == facts["sha256"], ("PROXY sha256", facts, header)
    assert view["x5t_s256"] == view["x5t_s256_computed"], ("PROXY x5t#S256", header)
    assert view["spiffe"] == facts["spiffe"], ("PROXY SPIFFE ID", facts, header)
    if send_cert:
        assert view["cert_der"] == facts["der"], ("PROXY client certificate", facts, header)
    else:
        assert view["cert_der"] is None, ("certificate sent without proxy_send_cert", header)


def valid_client_works(ctx, mtlsd, backend, audit_n, conn, leaf="client-ec", partner="partner"):
    """After whatever the test did, mtlsd still serves a valid client: its
    bytes come back, the audit line is ok and the backend's connection
    number `conn` carries its identity."""
    probe = b"still serving %s\n" % leaf.encode()
    r = peers.s_client(ctx, mtlsd.port, leaf, send=probe, expect=probe)
    assert_echoed(r, probe)
    assert_audit_ok(ctx, mtlsd.wait_audit(audit_n), leaf, partner)
    assert_identity(ctx, backend.identity(conn), leaf, partner)
