"""mtlsd's PROXY v2 header read by the two real consumers a backend is
likely to run: HAProxy (`accept-proxy`) and nginx (`listen ... proxy_protocol`).
Each answers an HTTP request with the client address it parsed from the
header, which must be the address of the TLS client in front of mtlsd. The
twin: with proxy_protocol = off the same consumer refuses the connection,
so the consumer really parses what mtlsd sends."""

import os
import shutil
import socket

from harness import Skip, case, free_port, wait_until
from daemon import Mtlsd, standard_config
import peers

REQUEST = b"GET /whoami HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n"


def find_server(name):
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if not path:
        raise Skip("%s is not installed (.ci/install-deps installs it)" % name)
    return path


def listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def start_consumer(ctx, name, argv_for_port):
    """Start a server on a free port; ready once it accepts connections
    (neither prints a readiness line). A port taken meanwhile is retried."""
    for attempt in range(5):
        port = free_port()
        proc = ctx.spawn("%s-%d" % (name, attempt), argv_for_port(port))
        wait_until("%s to listen on %d or exit" % (name, port),
                   lambda: listening(port) or proc.exited())
        if not proc.exited():
            return port
        if "in use" not in proc.output():
            proc.check_alive()
    raise AssertionError("%s: no free port after 5 tries" % name)


def haproxy(ctx):
    binary = find_server("haproxy")

    def argv(port):
        conf = ctx.write("haproxy.cfg", "\n".join([
            "defaults",
            "    mode http",
            "    timeout connect 10s",
            "    timeout client 30s",
            "    timeout server 30s",
            "frontend whoami",
            "    bind 127.0.0.1:%d accept-proxy" % port,
            '    http-request return status 200 content-type text/plain '
            'lf-string "src=%[src] src_port=%[src_port] dst_port=%[dst_port]\\n"',
            ""]))
        return [binary, "-db", "-f", conf]
    return start_consumer(ctx, "haproxy", argv)


def nginx(ctx):
    binary = find_server("nginx")

    def argv(port):
        d = ctx.dir
        conf = ctx.write("nginx.conf", """
daemon off;
master_process off;
pid %(d)s/nginx.pid;
error_log %(d)s/nginx-error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %(d)s/nginx-body;
    proxy_temp_path %(d)s/nginx-proxy;
    fastcgi_temp_path %(d)s/nginx-fastcgi;
    uwsgi_temp_path %(d)s/nginx-uwsgi;
    scgi_temp_path %(d)s/nginx-scgi;
    server {
        listen 127.0.0.1:%(port)d proxy_protocol;
        location / {
            default_type text/plain;
            return 200 "src=$proxy_protocol_addr src_port=$proxy_protocol_port dst_port=$proxy_protocol_server_port\\n";
        }
    }
}
""" % {"d": d, "port": port})
        return [binary, "-p", d, "-e", os.path.join(d, "nginx-error.log"), "-c", conf]
    return start_consumer(ctx, "nginx", argv)


def ask_through_mtlsd(ctx, consumer_port, proxy_protocol):
    """One HTTP request from a TLS client through mtlsd to the consumer.
    Returns (reply bytes, the client's local port, mtlsd's port)."""
    config = standard_config(ctx, "127.0.0.1:%d" % consumer_port, proxy_protocol=proxy_protocol)
    mtlsd = Mtlsd(ctx, config)
    client = peers.TlsClient(ctx, mtlsd.port, "client-ec")
    reply = bytearray()
    try:
        client.exchange(REQUEST, 0, reply.extend)
        client.recv_until_close(reply.extend, eof_ok=True)
    finally:
        client.close()
    return bytes(reply), client.local_port, mtlsd.port


def check_consumer(ctx, start):
    port = start(ctx)
    reply, client_port, mtlsd_port = ask_through_mtlsd(ctx, port, "v2")
    assert reply.startswith(b"HTTP/1.1 200"), reply
    want = b"src=127.0.0.1 src_port=%d dst_port=%d\n" % (client_port, mtlsd_port)
    assert reply.endswith(want), "consumer parsed %r, want %r" % (reply, want)


def check_consumer_refuses_no_header(ctx, start):
    port = start(ctx)
    reply, _, _ = ask_through_mtlsd(ctx, port, "off")
    assert not reply.startswith(b"HTTP/1.1 200"), "answered without a PROXY header: %r" % reply


@case("proxy_v2_read_by_haproxy")
def proxy_v2_read_by_haproxy(ctx):
    check_consumer(ctx, haproxy)


@case("proxy_v2_read_by_nginx")
def proxy_v2_read_by_nginx(ctx):
    check_consumer(ctx, nginx)


@case("haproxy_refuses_missing_proxy_header")
def haproxy_refuses_missing_proxy_header(ctx):
    check_consumer_refuses_no_header(ctx, haproxy)


@case("nginx_refuses_missing_proxy_header")
def nginx_refuses_missing_proxy_header(ctx):
    check_consumer_refuses_no_header(ctx, nginx)
