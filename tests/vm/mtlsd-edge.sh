# shellcheck shell=sh disable=SC2154 # the variables of mtlsd-suite.sh, which sources this
# tests/vm/mtlsd-edge.sh: edge cases of the kTLS handoff in the real mtlsd,
# sourced by mtlsd-suite.sh (uses its start_mtlsd, transfer, before, after,
# metrics, ok, not_ok...). Small transfers (1 MiB): the point is the
# handoff, not the volume.

small_size=1048576

# counted NAME: snapshot (counted_before) and test (counted_since) that
# mtlsd counted a kTLS event: a /metrics series of an mtlsd_ktls_* family
# labelled NAME grew, or, when mtlsd exports no such series, a new log
# line names it. Sets counted_how.
counted_before() {
	metrics
	ev0=$(ktls_label_count "$1")
	lg0=$(grep -c "$1" "$mlog")
}
counted_since() {
	metrics
	ev=$(ktls_label_count "$1")
	lg=$(grep -c "$1" "$mlog")
	if [ "$ev" != absent ]; then
		counted_how="$(ktls_series "$1") $ev0->$ev"
		[ "$ev" -gt "$ev0" ]
	else
		counted_how="no mtlsd_ktls_* series labelled $1 on /metrics; log lines naming it $lg0->$lg"
		[ "$lg" -gt "$lg0" ]
	fi
}

# conn_close_reason N: why mtlsd closed its connection N (debug log).
conn_close_reason() {
	sed -n "s/.*conn $1: closing (\\([a-z_]*\\)).*/\\1/p" "$mlog" | tail -n1
}

# TLS 1.3 sends its session tickets in the application epoch, so the
# kernel's TX sequence must start after them: a download proves TX (the
# client decrypts the kernel's records), an upload RX. session_cache = off
# sends none, session_tickets = N (default 1) N; a resumed session gets what
# OpenSSL sends on resumption. The client counts the NewSessionTicket
# messages it received (s_client -msg).
edge_tickets() { # TAG MIN MAX [LABEL]
	name="TLS1.3, ${4:-session_cache = $1}"
	transfer "$name: download" "tickets-$1-down" openssl download 1.3 TLS_AES_128_GCM_SHA256 \
		"$small_size" -msg -msgfile "$work/msg" -sess_out "$work/sess-$1"
	got=$(grep -c '^<<< .*NewSessionTicket' "$work/msg")
	if [ "$got" -ge "$2" ] && [ "$got" -le "$3" ]; then
		ok "$name: the client received $got session ticket(s) before the data"
	else
		not_ok "$name: the client received $got session tickets (want $2..$3)"
	fi
	transfer "$name: upload" "tickets-$1-up" openssl upload 1.3 TLS_AES_128_GCM_SHA256 "$small_size"
}

edge_resumed() {
	name="TLS1.3 resumed session"
	[ -s "$work/sess-tickets" ] || { not_ok "$name: no session saved by the first connection"; return; }
	transfer "$name: download" resumed-down openssl download 1.3 TLS_AES_128_GCM_SHA256 \
		"$small_size" -sess_in "$work/sess-tickets" -msg -msgfile "$work/msg"
	got=$(grep -c '^<<< .*NewSessionTicket' "$work/msg")
	resumed=$(audit "$(audits)" resumed)
	if [ "$resumed" = true ]; then
		ok "$name: audit resumed=true, $got session ticket(s) before the data"
	else
		not_ok "$name: audit resumed=$resumed ($got session tickets)"
	fi
}

# The client's first records leave in the same write as its Finished (TLS
# 1.3), or right behind the server's Finished (TLS 1.2): mtlsd reads them
# with (or before) the end of the handshake, in user space, and must relay
# them once and in order before what the kernel decrypts.
edge_burst() { # VERSION CIPHER
	name="TLS$1 client data right behind its Finished"
	echo "upload burst-$1" >"$work/mode"
	before
	run_client timeout 300 "$py" "$here/vm_backend.py" burst --port "$mport" \
		--cert "$fx/client-chain.pem" --key "$fx/client-key.pem" --ca "$fx/root.pem" \
		--tls "$1" --cipher "$2" --data "$work/up.bin" >"$work/burst.out" 2>&1
	wait_result "burst-$1" 120
	got=$(result "burst-$1" sha256) bytes=$(result "burst-$1" bytes) end=$(result "burst-$1" end)
	wait_audit $((n_audit0 + 1))
	if [ "$got" = "$up_sha" ] && [ "$bytes" = "$small_size" ] && [ "$end" = eof ]; then
		ok "$name: $(cat "$work/burst.out"); backend got $bytes bytes once, in order (sha256 match)"
	else
		not_ok "$name: client rc=$client_rc $(cat "$work/burst.out"); backend: $(grep "^tag=burst-$1 " "$work/results")"
		tail -n 25 "$mlog" | sed 's/^/#   mtlsd: /'
	fi
	after "$name"
}

# The client ends with close_notify (s_client at the end of its input):
# mtlsd half-closes toward the backend, which sees every byte and EOF; on an
# offloaded socket the close_notify arrives as a control record and is
# counted.
edge_close_notify() {
	name="client close_notify"
	counted_before close_notify
	transfer "$name" close-notify openssl upload 1.2 ECDHE-ECDSA-CHACHA20-POLY1305 "$small_size" || return
	reason=$(conn_close_reason "$(audit "$(audits)" conn)")
	if [ "$expect" = userspace ]; then
		if [ "$reason" = complete ]; then
			ok "$name: orderly end in user space (mtlsd close reason $reason)"
		else
			not_ok "$name: mtlsd close reason $reason"
		fi
	elif counted_since close_notify; then
		ok "$name: counted ($counted_how), mtlsd close reason $reason"
	else
		not_ok "$name: not counted ($counted_how), mtlsd close reason $reason"
	fi
}

# s_client's "k" / "K" commands (a line by itself) send a KeyUpdate
# (update_not_requested / update_requested). Kernels before 6.14 cannot
# take a new RX key: mtlsd closes cleanly toward the client (close_notify),
# counts it, and closes the backend connection as an abort (close reason
# tls_error, not complete: the stream was cut, the backend got only what
# came before the KeyUpdate). In user space OpenSSL rekeys and
# the data after the KeyUpdate arrives too.
edge_key_update() { # k|K
	name="client KeyUpdate ($1)"
	kmaj=$(uname -r | cut -d. -f1) kmin=$(uname -r | cut -d. -f2)
	if [ "$expect" = userspace ] || [ "$kmaj" -gt 6 ] || { [ "$kmaj" -eq 6 ] && [ "$kmin" -ge 14 ]; }; then
		want_data='hello
after
' want_event=keyupdate
	else
		want_data='hello
' want_event=keyupdate_unsupported
	fi
	want_sha=$(printf '%s' "$want_data" | sha256sum | cut -d' ' -f1)
	echo "upload keyupdate-$1" >"$work/mode"
	counted_before "$want_event"
	before
	# Each line waits until the one before was surely read on its own:
	# s_client takes a command only when the line is alone in its read.
	{
		wait_audit $((n_audit0 + 1))
		sleep 2
		printf 'hello\n'
		sleep 2
		printf '%s\n' "$1"
		sleep 2
		printf 'after\n'
		sleep 3
	} | s_client 120 1.3 TLS_CHACHA20_POLY1305_SHA256 >"$work/client.out" 2>"$work/client.err"
	wait_result "keyupdate-$1" 60
	got=$(result "keyupdate-$1" sha256) bytes=$(result "keyupdate-$1" bytes) end=$(result "keyupdate-$1" end)
	reason=$(conn_close_reason "$(audit $((n_audit0 + 1)) conn)")
	if [ "$got" != "$want_sha" ] || [ "$end" != eof ]; then
		not_ok "$name: backend: $(grep "^tag=keyupdate-$1 " "$work/results") (want $(printf '%s' "$want_data" | wc -c) bytes sha256=$want_sha, EOF), mtlsd close reason $reason"
	elif [ "$expect" = userspace ]; then
		ok "$name: rekeyed by OpenSSL in user space, $bytes bytes before and after it, backend EOF"
	elif [ "$want_event" = keyupdate_unsupported ] && [ "$reason" != tls_error ]; then
		not_ok "$name: $want_event on $(uname -r): mtlsd close reason $reason (want tls_error: the stream was cut)"
	elif counted_since "$want_event"; then
		ok "$name: $want_event on $(uname -r): $bytes bytes before it relayed, backend EOF, counted ($counted_how), mtlsd close reason $reason"
	else
		not_ok "$name: $want_event on $(uname -r) not counted ($counted_how), backend got $bytes bytes, EOF, mtlsd close reason $reason"
	fi
	after "$name"
}

# A record that fails authentication kills that connection only: the
# backend gets the good record before it and nothing after; the next
# connection is served.
edge_corrupt_record() {
	name="corrupted record"
	err0=$(tls_stat TlsDecryptError)
	counted_before decrypt_error
	tls0=$(closed tls_error)
	echo "upload corrupt" >"$work/mode"
	before
	run_client timeout 120 "$py" "$here/vm_backend.py" corrupt --port "$mport" \
		--cert "$fx/client-chain.pem" --key "$fx/client-key.pem" --ca "$fx/root.pem" \
		--tls 1.3 >"$work/corrupt.out" 2>&1
	wait_result corrupt 60
	want=$(printf 'good record\n' | sha256sum | cut -d' ' -f1)
	got=$(result corrupt sha256) bytes=$(result corrupt bytes)
	reason=$(conn_close_reason "$(audit $((n_audit0 + 1)) conn)")
	metrics
	tls=$(closed tls_error)
	facts="backend got $bytes bytes ($(result corrupt end)), mtlsd close reason $reason, mtlsd_connections_closed_total{reason=\"tls_error\"} $tls0->$tls"
	if [ "$got" != "$want" ]; then
		not_ok "$name: $facts (want the 12 bytes of the good record only); client: $(cat "$work/corrupt.out")"
	elif [ "$expect" = offload ]; then
		err=$(tls_stat TlsDecryptError)
		if [ "$err" -gt "$err0" ] && counted_since decrypt_error; then
			ok "$name: aborted, TlsDecryptError $err0->$err, counted ($counted_how), $facts"
		else
			not_ok "$name: TlsDecryptError $err0->$err, counted: $counted_how, $facts"
		fi
	else
		if [ "$tls" != absent ] && [ "$tls" -gt "$tls0" ]; then
			ok "$name: aborted by OpenSSL in user space, $facts"
		else
			not_ok "$name: $facts"
		fi
	fi
	after "$name"
	transfer "$name: the next connection" after-corrupt openssl upload 1.3 TLS_AES_128_GCM_SHA256 "$small_size"
}

# ktls = on: without the tls ULP mtlsd refuses to start and says what to
# do; with it (the VM) it starts and offloads.
edge_ktls_on() {
	name="ktls = on"
	if [ "$expect" = userspace ]; then
		mtlsd_ktls=on start_mtlsd ktls-on
		rc=$?
		if [ $rc -ne 0 ] && grep -q "modprobe tls" "$mlog"; then
			ok "$name without the tls ULP: refused to start: $(grep -m1 'modprobe tls' "$mlog")"
		else
			not_ok "$name without the tls ULP: start rc=$rc, log: $(head -c 300 "$mlog")"
		fi
		stop_mtlsd
		return
	fi
	mtlsd_ktls=on start_mtlsd ktls-on "session_cache = off" ||
		{ not_ok "$name: mtlsd did not start: $(cat "$mlog")"; return; }
	ok "$name with the tls ULP: mtlsd started ($(grep -o 'ktls: [^(]*([^)]*)' "$mlog" | head -n1))"
}

mtlsd_edge_cases() {
	head -c "$small_size" /dev/urandom >"$work/up.bin"
	up_sha=$(sha256sum <"$work/up.bin" | cut -d' ' -f1)

	# session_cache = off: no tickets (in the VM under ktls = on).
	edge_ktls_on
	if [ -z "$mtlsd_pid" ]; then
		start_mtlsd nocache "session_cache = off" ||
			{ echo "Bail out! mtlsd did not start:"; cat "$mlog"; exit 1; }
	fi
	edge_tickets off 0 0
	stop_mtlsd

	start_mtlsd main || { echo "Bail out! mtlsd did not start:"; cat "$mlog"; exit 1; }
	grep -o 'ktls: [^(]*([^)]*)' "$mlog" | sed 's/^/# mtlsd: /'
	refused_without_certificate
	edge_tickets tickets 1 1 "session_tickets = 1 (the default)"
	edge_resumed
	edge_burst 1.3 ""
	edge_burst 1.2 ECDHE-ECDSA-AES256-GCM-SHA384
	edge_close_notify
	edge_key_update k
	edge_key_update K
	edge_corrupt_record
	stop_mtlsd
	for n in 2 4; do
		start_mtlsd "tickets$n" "session_tickets = $n" ||
			{ not_ok "session_tickets = $n: mtlsd did not start: $(cat "$mlog")"; continue; }
		edge_tickets "tickets$n" "$n" "$n" "session_tickets = $n"
		stop_mtlsd
	done
	stop_mtlsd
}
