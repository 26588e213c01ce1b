#!/bin/bash
# mtlsd end to end on one machine: install what is needed, build, create a
# demo PKI with mtlsctl (our server CA, and partner "acme" with its own CA),
# start mtlsd in front of a small backend that reads the PROXY v2 header,
# send a real mTLS request through it, and show what came back, the identity
# the backend was given, and the audit line. Then a client without a
# certificate, refused. Everything runs on 127.0.0.1 and is removed at exit.
#
#   bash tests/demo.sh        (as root, or with sudo: it may apt-get install)
#
# With MTLSD and MTLSCTL set (as `meson test` does) it uses those binaries
# and skips the install and the build: the test suite runs this demo too.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=${MTLS_DEMO_BUILD:-$src/build-demo}
work=$(mktemp -d /tmp/mtlsd-demo.XXXXXX)
pids=()

cleanup() {
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

if [ -t 1 ]; then
	step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
	step() { printf '\n== %s\n' "$*"; }
fi

# Run a noisy command; show its output only if it fails.
quietly() {
	if ! "$@" >"$work/quiet.log" 2>&1; then
		cat "$work/quiet.log" >&2
		echo "demo: failed: $*" >&2
		return 1
	fi
}

# Wait (up to 30 s) for a line matching $2 in file $1, while process $3 lives.
wait_for_line() {
	local file=$1 pattern=$2 pid=$3
	for _ in $(seq 300); do
		if grep -q "$pattern" "$file" 2>/dev/null; then return 0; fi
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "demo: process $pid exited; its output:" >&2
			cat "$file" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "demo: timed out waiting for '$pattern' in $file" >&2
	return 1
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [ -n "${MTLSD:-}" ] && [ -n "${MTLSCTL:-}" ]; then
	step "1. using $MTLSD and $MTLSCTL"
	mtlsd=$MTLSD
	mtlsctl=$MTLSCTL
else
	step "1. install dependencies and build mtlsd + mtlsctl"
	bash "$src/.ci/install-deps"
	if [ ! -f "$build/build.ninja" ]; then
		quietly meson setup "$build" "$src" -Dtests=false
	fi
	quietly meson compile -C "$build" mtlsd mtlsctl
	mtlsd=$build/dataplane/mtlsd
	mtlsctl=$build/ctl/mtlsctl
fi

step "2. a demo PKI, made by mtlsctl"
# CA keys above the issuing tier are encrypted; the passphrase lives only in
# this process's environment.
DEMO_CA_PASS=$(openssl rand -hex 16)
export DEMO_CA_PASS
"$mtlsctl" pki init "$work/our-pki" --name "Example Corp" --passphrase-env DEMO_CA_PASS
"$mtlsctl" pki issue server localhost --dir "$work/our-pki" --dns localhost --ip 127.0.0.1
"$mtlsctl" pki init "$work/acme-pki" --name "Acme" --passphrase-env DEMO_CA_PASS
"$mtlsctl" pki issue client billing --dir "$work/acme-pki" \
	--uri spiffe://acme.example/prod/billing --dns billing.acme.example
server=$work/our-pki/issued/localhost
client=$work/acme-pki/issued/billing
echo "server certificate: $server/cert.pem"
echo "acme's client:      $(openssl x509 -in "$client/cert.pem" -noout -subject -serial | paste -sd ' ')"

step "3. the backend (answers each HTTP request with the PROXY v2 identity it was given)"
python3 "$src/tests/integration/backend.py" --mode http-ok --proxy v2 \
	--record "$work/backend.jsonl" >"$work/backend.log" 2>&1 &
pids+=($!)
wait_for_line "$work/backend.log" '^backend ready' "${pids[-1]}"
backend=$(sed -n 's/^backend ready: //p' "$work/backend.log")
echo "backend on $backend"

step "4. mtlsd in front of it"
write_config() {
	cat >"$work/mtlsd.conf" <<EOF
[mtlsd]
listen = 127.0.0.1:$1
audit_log = $work/audit.jsonl
# its own control socket: /run/mtlsd/control.sock may be another mtlsd's
control_socket = $work/control.sock

[server_cert.main]
cert = $server/chain.pem
key = $server/key.pem

# Partner acme: clients whose chain leads to acme's CA, with a SPIFFE ID
# under spiffe://acme.example/prod/, reach the backend.
[partner.acme]
ca = $work/acme-pki/ca-bundle.pem
crl = $work/acme-pki/crls.pem
backend = $backend
proxy_protocol = v2
allow_uri = spiffe://acme.example/prod/*
EOF
}
# A free port can be taken by another program before mtlsd binds it: then
# try another one.
for attempt in 1 2 3 4 5; do
	port=$(free_port)
	write_config "$port"
	"$mtlsd" --config "$work/mtlsd.conf" >"$work/mtlsd.log" 2>&1 &
	pids+=($!)
	if wait_for_line "$work/mtlsd.log" 'mtlsd ready' "${pids[-1]}" 2>"$work/wait.err"; then
		break
	fi
	if [ "$attempt" = 5 ] || ! grep -qi 'address already in use' "$work/mtlsd.log"; then
		cat "$work/wait.err" >&2
		exit 1
	fi
done
cat "$work/mtlsd.conf"
grep 'mtlsd ready' "$work/mtlsd.log"

step "5. acme's client sends a request with its certificate (curl)"
curl -sS --resolve "localhost:$port:127.0.0.1" --cacert "$work/our-pki/root/ca.crt" \
	--cert "$client/chain.pem" --key "$client/key.pem" \
	"https://localhost:$port/invoices/42" >"$work/reply.json"
echo "the backend's answer, relayed back through mtlsd: what it was told about the client"
python3 - "$work/reply.json" <<'PY'
import json, sys
reply = json.load(open(sys.argv[1]))
proxy = reply["proxy"]
ssl, app = proxy.get("ssl", {}), proxy.get("app", {})
for label, value in [
        ("request", reply["request_line"]),
        ("client address", "%s:%s" % (proxy["src_addr"], proxy["src_port"])),
        ("TLS", "%s %s" % (ssl.get("version"), ssl.get("cipher"))),
        ("certificate CN", ssl.get("cn")),
        ("partner", app.get("partner")),
        ("serial", app.get("serial")),
        ("SHA-256", app.get("sha256")),
        ("SPIFFE ID", app.get("spiffe_id"))]:
    print("  %-15s %s" % (label + ":", value))
# The demo checks what it shows: run as a test, a wrong identity fails it.
if app.get("partner") != "acme" or app.get("spiffe_id") != "spiffe://acme.example/prod/billing":
    sys.exit("demo: the backend was given the wrong identity")
PY

step "6. mtlsd's audit line for that handshake"
tail -n 1 "$work/audit.jsonl"

step "7. a client without a certificate is refused, and reaches nothing"
if curl -sS --resolve "localhost:$port:127.0.0.1" --cacert "$work/our-pki/root/ca.crt" \
	"https://localhost:$port/" >/dev/null 2>"$work/refused.err"; then
	echo "demo: a client without a certificate got through" >&2
	exit 1
fi
cat "$work/refused.err"
# The audit line is written when mtlsd ends the handshake, which may be a
# moment after curl gave up: wait for the second line.
for _ in $(seq 300); do
	[ "$(wc -l <"$work/audit.jsonl")" -ge 2 ] && break
	sleep 0.1
done
tail -n 1 "$work/audit.jsonl"
accepted=$(grep -c '"event": "accept"' "$work/backend.jsonl")
echo "connections the backend received in all: $accepted"
if [ "$accepted" -ne 1 ]; then
	echo "demo: the refused client reached the backend" >&2
	exit 1
fi

step "done: stopping mtlsd and the backend, removing $work"
