#!/usr/bin/env bash
# bench/baseline.sh: a first handshake-rate baseline of mtlsd against nginx.
#
# Same machine, same run, same certificates (the test fixtures made by
# mtlsctl), same backend, same pinning: the server gets CPU 0 and one worker,
# the client (openssl s_time, full handshakes, TLS 1.3 mTLS) gets CPU 1.
# Each server is measured ROUNDS times alternately; the median is reported
# with the spread. s_time is single-threaded and synchronous, so this is a
# latency-bound rate, not a saturation rate: issue 7's load generator makes
# it rigorous. Usage: bench/baseline.sh BUILDDIR [SECONDS] [ROUNDS]
set -euo pipefail
build=$(realpath "${1:?usage: bench/baseline.sh BUILDDIR [SECONDS] [ROUNDS]}")
secs=${2:-10}
rounds=${3:-3}
fx=$build/tests/fixtures
[ -f "$fx/server/chain.pem" ] || { echo "no fixtures in $fx: run ninja -C $build first" >&2; exit 2; }
work=$(mktemp -d /tmp/mtlsd-baseline.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

backend_port=$(free_port)
python3 - "$backend_port" <<'PY' &
import asyncio, sys
async def h(r, w):
    try:
        while (d := await r.read(65536)):
            w.write(d); await w.drain()
    except Exception:
        pass
    w.close()
async def main():
    s = await asyncio.start_server(h, '127.0.0.1', int(sys.argv[1]), backlog=4096)
    await s.serve_forever()
asyncio.run(main())
PY
pids+=($!)
wait_port "$backend_port"

mtlsd_port=$(free_port)
taskset -c 0 "$build/dataplane/mtlsd" --listen 127.0.0.1:$mtlsd_port --workers 1 \
  --cert "$fx/server/chain.pem" --key "$fx/server/key.pem" \
  --client-ca "$fx/pki/ca-bundle.pem" --backend 127.0.0.1:$backend_port \
  --audit-log "$work/audit.log" 2>"$work/mtlsd.err" &
pids+=($!)

nginx_port=$(free_port)
mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<NGX
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
worker_cpu_affinity 01;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 8192; }
stream {
  server {
    listen 127.0.0.1:$nginx_port ssl;
    ssl_certificate $fx/server/chain.pem;
    ssl_certificate_key $fx/server/key.pem;
    ssl_client_certificate $fx/pki/ca-bundle.pem;
    ssl_verify_client on;
    ssl_verify_depth 3;
    ssl_protocols TLSv1.2 TLSv1.3;
    proxy_pass 127.0.0.1:$backend_port;
  }
}
NGX
nginx -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" &
pids+=($!)
wait_port "$mtlsd_port"; wait_port "$nginx_port"

rate() { # port -> connections per second
  taskset -c 1 openssl s_time -connect 127.0.0.1:$1 -new -tls1_3 -time "$secs" \
    -cert "$fx/client-ec/cert.pem" -key "$fx/client-ec/key.pem" -CAfile "$fx/pki/ca-bundle.pem" 2>/dev/null |
    awk '/connections in .* real seconds/ { for (i=1;i<=NF;i++) if ($i ~ /connections\/user/) {} } /connections in/ && /real/ {print $1/$4; exit}'
}
m=(); n=()
for r in $(seq "$rounds"); do
  m+=("$(rate "$mtlsd_port")"); n+=("$(rate "$nginx_port")")
done
python3 - "${m[*]}" "${n[*]}" "$secs" "$rounds" <<'PY'
import statistics, sys
m = [float(x) for x in sys.argv[1].split()]; n = [float(x) for x in sys.argv[2].split()]
def row(name, v): return f"| {name} | {statistics.median(v):.0f} | {min(v):.0f}..{max(v):.0f} |"
print(f"full TLS 1.3 mTLS handshakes/s (openssl s_time, {sys.argv[3]} s x {sys.argv[4]} rounds, server CPU 0, client CPU 1)")
print("| server | median | min..max |\n|---|---|---|")
print(row("mtlsd (1 worker)", m)); print(row("nginx stream (1 worker)", n))
print(f"ratio mtlsd/nginx: {statistics.median(m)/statistics.median(n):.2f}")
PY
