#!/bin/sh
# tests/vm/ktls-suite.sh: the kernel TLS functional suite.
#
#   ktls-suite.sh offload|userspace openssl|gnutls|edge [BYTES]
#
# Runs tests/vm/ktls_peer (dataplane/ktls/ktls.c around a minimal server) against
# real TLS clients: for TLS 1.2 and 1.3 x AES-128-GCM, AES-256-GCM and
# ChaCha20-Poly1305, an upload and a download of MTLS_KTLS_SIZE (or BYTES,
# default 64 MiB) whose SHA-256 is compared end to end (GnuTLS downloads
# go through tests/vm/gnutls_peer, see there why). "offload" (in the
# VM) also requires that the kernel holds both directions (getsockopt
# SOL_TLS) and that /proc/net/tls_stat TlsTxSw/TlsRxSw grew; "userspace" (a
# host without the tls ULP) requires the user-space fallback to pass the
# same rows. "edge": session tickets 0/2/4, client data right behind its
# Finished, close_notify, KeyUpdate, a corrupted record.
# Prints one "ok"/"not ok" line per check; exits 1 when any failed.
set -u

expect=$1
group=$2
# The user-space rows prove the fallback where the kernel has no tls ULP;
# /proc/net/tls_stat exists once the tls module is loaded.
if [ "$expect" = userspace ] && [ -e /proc/net/tls_stat ]; then
	echo "# this kernel has the tls ULP: the user-space fallback rows do not apply"
	exit 77
fi
peer=${KTLS_PEER:-$MTLS_BUILDDIR/tests/vm/ktls_peer}
gnutls_peer=$MTLS_BUILDDIR/tests/vm/gnutls_peer
fx=$MTLS_FIXTURES
size=${MTLS_KTLS_SIZE:-${3:-67108864}}
work=$(mktemp -d "${TMPDIR:-/tmp}/ktls-suite.XXXXXX")
failures=0
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"' EXIT

ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; failures=$((failures + 1)); }

tls_stat() {
	awk -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print 0 }' \
		/proc/net/tls_stat 2>/dev/null || echo 0
}

# start_server ARGS...: ktls_peer in the background, $port set.
start_server() {
	rm -f "$work/port" "$work/server.out"
	"$peer" server --cert "$fx/server/chain.pem" --key "$fx/server/key.pem" \
		--port-file "$work/port" "$@" >"$work/server.out" 2>"$work/server.err" &
	server_pid=$!
	i=0
	while [ ! -f "$work/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	port=$(cat "$work/port" 2>/dev/null)
}

wait_server() {
	timeout_s=${1:-300}
	i=0
	while kill -0 "$server_pid" 2>/dev/null && [ $i -lt $((timeout_s * 10)) ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill "$server_pid" 2>/dev/null
	wait "$server_pid"
	server_rc=$?
	server_pid=
}

# field N KEY: value of KEY= on the server's "conn N:" lines.
field() {
	sed -n "s/^conn $1: .*\\b$2=\\([^ ]*\\).*/\\1/p" "$work/server.out" | tail -n1
}
stat_of() {
	sed -n "s/^stats: .*\\b$1=\\([0-9]*\\).*/\\1/p" "$work/server.out"
}

# client PEER upload|download: the peer talks to $port.
client() {
	case "$1/$2" in
	openssl/upload)
		timeout 600 openssl s_client -connect "127.0.0.1:$port" -nocommands \
			<"$work/up.bin" >/dev/null 2>"$work/client.err" ;;
	openssl/download)
		# stdin open read-write on a fifo: never EOF, so the client
		# reads until the server's close_notify.
		timeout 600 openssl s_client -connect "127.0.0.1:$port" -quiet \
			0<>"$work/fifo" >"$work/down.bin" 2>"$work/client.err" ;;
	gnutls/upload)
		timeout 600 gnutls-cli --insecure --logfile=/dev/null -p "$port" 127.0.0.1 \
			<"$work/up.bin" >/dev/null 2>"$work/client.err" ;;
	gnutls/download)
		# gnutls-cli writes received data one byte per syscall: a GnuTLS
		# client of our own checksums the stream instead.
		timeout 600 "$gnutls_peer" "$port" >"$work/down.sum" 2>"$work/client.err" ;;
	*) return 2 ;;
	esac
}

# check_conn NAME N: the mode-dependent facts of connection N.
check_conn() {
	d=$(field "$2" decision) k=$(field "$2" kernel) rc=$(field "$2" rc) inst=$(field "$2" install)
	if [ "$expect" = offload ]; then
		[ "$d" = offloaded ] && [ "$k" = tx+rx ] ||
			{ not_ok "$1: decision=$d install=$inst kernel=$k (want offloaded, tx+rx)"; return 1; }
	else
		[ "$d" = no_tls_ulp ] && [ "$k" = none ] ||
			{ not_ok "$1: decision=$d kernel=$k (want no_tls_ulp, none)"; return 1; }
	fi
	[ "$rc" = 0 ] || { not_ok "$1: server rc=$rc"; cat "$work/server.err"; return 1; }
	return 0
}

# check_counters NAME TX0 RX0: the kernel counted new offloaded sockets.
check_counters() {
	[ "$expect" = offload ] || return 0
	tx=$(tls_stat TlsTxSw) rx=$(tls_stat TlsRxSw)
	[ "$tx" -gt "$2" ] && [ "$rx" -gt "$3" ] ||
		{ not_ok "$1: /proc/net/tls_stat TlsTxSw $2->$tx TlsRxSw $3->$rx"; return 1; }
	return 0
}

row() { # PEER VERSION SERVER_CIPHER
	name="$1 TLS$2 $3"
	tx0=$(tls_stat TlsTxSw) rx0=$(tls_stat TlsRxSw)
	start_server --tls "$2" --cipher "$3" --upload
	client "$1" upload
	wait_server
	want=$(sha256sum <"$work/up.bin" | cut -d' ' -f1)
	if check_conn "$name upload" 1 && check_counters "$name upload" "$tx0" "$rx0"; then
		got=$(field 1 sha256) bytes=$(field 1 bytes) ev=$(field 1 event)
		[ "$got" = "$want" ] && [ "$bytes" = "$size" ] && [ "$ev" = close_notify ] &&
			ok "$name upload $bytes bytes, sha256 match, close_notify" ||
			not_ok "$name upload: bytes=$bytes sha256=$got want $want event=$ev"
	fi

	tx0=$(tls_stat TlsTxSw) rx0=$(tls_stat TlsRxSw)
	start_server --tls "$2" --cipher "$3" --download "$size"
	client "$1" download
	wait_server
	if check_conn "$name download" 1 && check_counters "$name download" "$tx0" "$rx0"; then
		if [ "$1" = gnutls ]; then
			got=$(sed -n 's/.*sha256=\([0-9a-f]*\).*/\1/p' "$work/down.sum")
			bytes=$(sed -n 's/^bytes=\([0-9]*\).*/\1/p' "$work/down.sum")
		else
			got=$(sha256sum <"$work/down.bin" | cut -d' ' -f1)
			bytes=$(wc -c <"$work/down.bin")
		fi
		want=$(field 1 sha256)
		[ "$got" = "$want" ] && [ "$bytes" -eq "$size" ] &&
			ok "$name download $bytes bytes, sha256 match" ||
			{ not_ok "$name download: got $bytes bytes sha256=$got want $want"; cat "$work/client.err"; }
	fi
}

data_rows() {
	for v in 1.3 1.2; do
		if [ $v = 1.3 ]; then
			ciphers="TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256"
		else
			ciphers="ECDHE-ECDSA-AES128-GCM-SHA256 ECDHE-ECDSA-AES256-GCM-SHA384 ECDHE-ECDSA-CHACHA20-POLY1305"
		fi
		for c in $ciphers; do
			# MTLS_KTLS_ONLY=SUBSTRING runs the matching rows only (debugging).
			case "$v $c" in *"${MTLS_KTLS_ONLY:-}"*) row "$1" $v "$c" ;; *) ;; esac
		done
	done
}

. "$(dirname "$0")/ktls-edge.sh"

mkfifo "$work/fifo"
case "$group" in
openssl | gnutls)
	head -c "$size" /dev/urandom >"$work/up.bin"
	data_rows "$group" ;;
edge) edge_cases ;;
*) echo "unknown group $group" >&2; exit 2 ;;
esac
echo "# $group ($expect): $failures failed"
[ $failures -eq 0 ]
