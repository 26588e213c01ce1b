# tests/vm/ktls-edge.sh: edge cases of the kTLS handoff, sourced by
# ktls-suite.sh (uses its start_server, field, ok, not_ok...). Each case uses
# a small transfer: the point is the handoff, not the volume.

small_upload() { # CLIENT-ARGS...: openssl s_client sending small.bin
	timeout 120 openssl s_client -connect "127.0.0.1:$port" -nocommands "$@" \
		<"$work/small.bin" >/dev/null 2>"$work/client.err"
}

check_small_upload() { # NAME CONN
	got=$(field "$2" sha256) ev=$(field "$2" event)
	[ "$got" = "$small_sha" ] && [ "$ev" = close_notify ] ||
		{ not_ok "$1: sha256=$got want $small_sha event=$ev"; return 1; }
	return 0
}

# TLS 1.3 sends its session tickets in the application epoch: the kernel's
# TX sequence must start after them.
edge_tickets() {
	for t in 0 2 4; do
		start_server --tls 1.3 --cipher TLS_AES_128_GCM_SHA256 --tickets $t --upload
		small_upload
		wait_server 60
		name="TLS1.3 with $t session tickets"
		check_conn "$name" 1 && check_small_upload "$name" 1 || continue
		[ "$(field 1 tx_seq)" = "$t" ] && ok "$name: TX sequence starts at $t, data intact" ||
			not_ok "$name: tx_seq=$(field 1 tx_seq)"
	done
}

# The client's first records arrive in the same reads as its Finished: the
# server waits until 64 KiB are queued behind the Finished, then reads in
# 4 KiB pieces, so whole and partial records are in user space at the
# handoff and must reach the application once, in order.
edge_early_data() {
	start_server --tls 1.3 --cipher TLS_AES_256_GCM_SHA384 --wait-bytes 65536 --upload
	small_upload
	wait_server 60
	name="client data right behind its Finished"
	check_conn "$name" 1 && check_small_upload "$name" 1 || return
	early=$(field 1 early)
	if [ "$expect" = offload ] && [ "${early:-0}" -eq 0 ]; then
		not_ok "$name: no data was in user space at the handoff (early=0)"
	else
		ok "$name: $early bytes decrypted in user space before the handoff, data intact"
	fi
}

edge_close_notify() {
	start_server --tls 1.2 --cipher ECDHE-ECDSA-CHACHA20-POLY1305 --upload
	small_upload
	wait_server 60
	name="client close_notify"
	check_conn "$name" 1 && check_small_upload "$name" 1 || return
	if [ "$expect" = offload ] && [ "$(stat_of close_notify)" != 1 ]; then
		not_ok "$name: ktls close_notify counter $(stat_of close_notify)"
	else
		ok "$name: orderly shutdown"
	fi
}

# s_client's "k" command sends a KeyUpdate. Kernels before 6.14 cannot take
# a new RX key: mtlsd closes cleanly and counts it.
edge_key_update() {
	start_server --tls 1.3 --cipher TLS_CHACHA20_POLY1305_SHA256 --upload
	(sleep 2; printf 'k\n'; sleep 3) |
		timeout 60 openssl s_client -connect "127.0.0.1:$port" >/dev/null 2>"$work/client.err"
	wait_server 60
	name="client KeyUpdate"
	check_conn "$name" 1 || return
	ev=$(field 1 event)
	if [ "$expect" = userspace ]; then
		[ "$ev" = close_notify ] && ok "$name: handled by OpenSSL" || not_ok "$name: event=$ev"
		return
	fi
	kmaj=$(uname -r | cut -d. -f1) kmin=$(uname -r | cut -d. -f2)
	if [ "$kmaj" -gt 6 ] || { [ "$kmaj" -eq 6 ] && [ "$kmin" -ge 14 ]; }; then
		want=keyupdate
	else
		want=keyupdate_unsupported
	fi
	[ "$ev" = "$want" ] && [ "$(stat_of "$want")" = 1 ] &&
		ok "$name: $want on $(uname -r), closed cleanly and counted" ||
		not_ok "$name: event=$ev counter=$(stat_of "$want") (want $want)"
}

# A record that fails authentication kills that connection only.
edge_corrupt_record() {
	err0=$(tls_stat TlsDecryptError)
	start_server --tls 1.3 --cipher TLS_AES_128_GCM_SHA256 --upload --connections 2
	timeout 60 "$peer" corrupt-client --port "$port" >"$work/corrupt.out" 2>&1
	small_upload
	wait_server 60
	name="corrupted record"
	ev=$(field 1 event)
	if [ "$expect" = offload ]; then
		want=decrypt_error
		[ "$(tls_stat TlsDecryptError)" -gt "$err0" ] ||
			{ not_ok "$name: TlsDecryptError did not grow"; return; }
		[ "$(stat_of decrypt_error)" = 1 ] || { not_ok "$name: not counted"; return; }
	else
		want=ssl_error
	fi
	[ "$ev" = "$want" ] || { not_ok "$name: first connection event=$ev (want $want)"; return; }
	check_conn "$name, next connection" 2 && check_small_upload "$name, next connection" 2 &&
		ok "$name: connection aborted ($want), counted, the next one served"
}

# ktls = on where the kernel has no tls ULP: refuse to start, say why.
edge_mode_on_without_ulp() {
	[ "$expect" = userspace ] || return 0
	start_server --ktls on --upload
	wait_server 10
	name="ktls = on without the tls ULP"
	[ "$server_rc" -ne 0 ] && grep -q "modprobe tls" "$work/server.err" &&
		ok "$name: refused to start: $(head -c 120 "$work/server.err")" ||
		not_ok "$name: rc=$server_rc, stderr: $(cat "$work/server.err")"
}

edge_cases() {
	head -c 1048576 /dev/urandom >"$work/small.bin"
	small_sha=$(sha256sum <"$work/small.bin" | cut -d' ' -f1)
	edge_tickets
	edge_early_data
	edge_close_notify
	edge_key_update
	edge_corrupt_record
	edge_mode_on_without_ulp
}
