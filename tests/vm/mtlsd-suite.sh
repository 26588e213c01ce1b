#!/bin/sh
# tests/vm/mtlsd-suite.sh: the kernel TLS suite with the real mtlsd.
#
#   mtlsd-suite.sh offload|userspace openssl|gnutls|edge [BYTES]
#
# Starts $MTLS_BUILDDIR/dataplane/mtlsd (one worker, ktls = auto, an admin
# listener for /metrics, one partner: the pki/ fixtures, PROXY v2) in front
# of tests/vm/vm_backend.py, and drives real clients through it that present
# the client-ec certificate: for TLS 1.3 x {AES-128-GCM, AES-256-GCM,
# ChaCha20-Poly1305} and TLS 1.2 x ECDHE-ECDSA with the same three ciphers
# (chosen by the client), an upload and a download of MTLS_KTLS_SIZE (or
# BYTES, default 64 MiB), SHA-256 compared end to end (client <-> backend),
# the version and cipher checked in mtlsd's audit line.
#
# "offload" (in the VM) also proves per transfer that the kernel did the
# record layer: /proc/net/tls_stat TlsTxSw and TlsRxSw grew (and
# TlsCurrTxSw/TlsCurrRxSw seen while the transfer ran) and mtlsd counted the
# handoff (mtlsd_ktls_offloaded_connections_total, rx and tx). "userspace"
# (a host without the tls ULP; exit 77 where /proc/net/tls_stat exists)
# requires the same data results and that mtlsd said it stayed in user
# space. "edge" is in mtlsd-edge.sh. The data rows start with a negative
# twin: a client without a certificate is refused and nothing reaches the
# backend or the kernel.
#
# Prints one "ok"/"not ok" line per check, with its numbers and the seconds
# the transfer took; exits 1 when any failed. MTLS_KTLS_ONLY=SUBSTRING runs
# the matching data rows only (debugging).
set -u

expect=$1
group=$2
if [ "$expect" = userspace ] && [ -e /proc/net/tls_stat ]; then
	echo "# this kernel has the tls ULP: the user-space fallback rows do not apply"
	exit 77
fi
here=$(cd "$(dirname "$0")" && pwd)
mtlsd=${MTLS_MTLSD:-$MTLS_BUILDDIR/dataplane/mtlsd}
gnutls_peer=$MTLS_BUILDDIR/tests/vm/gnutls_peer
# Debian's python3: a pyenv shim on PATH would not run in the VM (HOME=/tmp).
py=/usr/bin/python3
[ -x "$py" ] || py=python3
size=${MTLS_KTLS_SIZE:-${3:-67108864}}
# One transfer may take minutes under TCG on a loaded machine.
client_timeout=${MTLS_KTLS_CLIENT_TIMEOUT:-1500}
work=$(mktemp -d "${TMPDIR:-/tmp}/mtlsd-suite.XXXXXX")
failures=0
mtlsd_pid=
backend_pid=
cleanup() {
	[ -n "$mtlsd_pid" ] && kill "$mtlsd_pid" 2>/dev/null
	[ -n "$backend_pid" ] && kill "$backend_pid" 2>/dev/null
	wait 2>/dev/null
	if [ -n "${MTLS_SUITE_KEEP:-}" ]; then echo "# kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; failures=$((failures + 1)); }

# ---- fixtures and binaries: copied once, so that a rebuild in the same
# tree (the fixtures target empties and rewrites its directory on every
# build; the linker rewrites mtlsd in place) cannot change them mid-run. A
# copy taken while they were being rewritten is caught (the chains must
# verify against the bundle, each key match its certificate) and retried.
fx=$work/fx
mkdir -p "$fx"
same_key() { # CERT KEY
	[ "$(openssl x509 -noout -pubkey -in "$1" 2>/dev/null)" = "$(openssl pkey -pubout -in "$2" 2>/dev/null)" ]
}
copy_fixtures() {
	cp "$MTLS_FIXTURES/server/chain.pem" "$fx/server-chain.pem" &&
		cp "$MTLS_FIXTURES/server/key.pem" "$fx/server-key.pem" &&
		cp "$MTLS_FIXTURES/pki/ca-bundle.pem" "$fx/ca-bundle.pem" &&
		cp "$MTLS_FIXTURES/pki/crls.pem" "$fx/crls.pem" &&
		cp "$MTLS_FIXTURES/pki/root/ca.crt" "$fx/root.pem" &&
		cp "$MTLS_FIXTURES/client-ec/cert.pem" "$fx/client.pem" &&
		cp "$MTLS_FIXTURES/client-ec/chain.pem" "$fx/client-chain.pem" &&
		cp "$MTLS_FIXTURES/client-ec/key.pem" "$fx/client-key.pem" &&
		cp "$mtlsd" "$work/mtlsd" &&
		{ [ "$group" != gnutls ] || cp "$gnutls_peer" "$work/gnutls_peer"; } || return 1
	chmod 600 "$fx/server-key.pem" "$fx/client-key.pem"
	# What s_client sends after the leaf (chain.pem without its first
	# certificate: s_client would otherwise send the leaf twice).
	awk 'n { print } /-----END CERTIFICATE-----/ { n = 1 }' "$fx/client-chain.pem" >"$fx/client-intermediates.pem"
	awk 'n { print } /-----END CERTIFICATE-----/ { n = 1 }' "$fx/server-chain.pem" >"$fx/server-intermediates.pem"
	openssl verify -CAfile "$fx/ca-bundle.pem" -untrusted "$fx/server-intermediates.pem" \
		"$fx/server-chain.pem" >/dev/null 2>&1 &&
		openssl verify -CAfile "$fx/ca-bundle.pem" -untrusted "$fx/client-intermediates.pem" \
			"$fx/client.pem" >/dev/null 2>&1 &&
		openssl verify -CAfile "$fx/root.pem" -untrusted "$fx/server-intermediates.pem" \
			"$fx/server-chain.pem" >/dev/null 2>&1 &&
		same_key "$fx/server-chain.pem" "$fx/server-key.pem" &&
		same_key "$fx/client.pem" "$fx/client-key.pem" &&
		"$work/mtlsd" --version >/dev/null 2>&1
}
i=0
until copy_fixtures 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 30 ] || { echo "Bail out! no consistent fixtures in $MTLS_FIXTURES"; copy_fixtures; exit 1; }
	sleep 2
done
[ $i -eq 0 ] || echo "# fixtures were being rewritten: copied on try $((i + 1))"
mtlsd=$work/mtlsd
gnutls_peer=$work/gnutls_peer

# ---- kernel counters ---------------------------------------------------
tls_stat() {
	awk -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print 0 }' \
		/proc/net/tls_stat 2>/dev/null || echo 0
}

# ---- the backend -------------------------------------------------------
start_backend() {
	: >"$work/results"
	echo "upload none" >"$work/mode"
	"$py" "$here/vm_backend.py" serve --port-file "$work/backend.port" \
		--mode-file "$work/mode" --results "$work/results" 2>"$work/backend.err" &
	backend_pid=$!
	i=0
	while [ ! -f "$work/backend.port" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
	bport=$(cat "$work/backend.port" 2>/dev/null)
	[ -n "$bport" ] || { echo "Bail out! the backend did not start: $(cat "$work/backend.err")"; exit 1; }
}

# result TAG FIELD: FIELD of the backend's line for connection TAG.
result() {
	sed -n "s/^tag=$1 .*\\b$2=\\([^ ]*\\).*/\\1/p" "$work/results" | tail -n1
}
# wait_result TAG [SECONDS]: until the backend finished connection TAG.
wait_result() {
	i=0
	while ! grep -q "^tag=$1 " "$work/results" && [ $i -lt $((${2:-120} * 10)) ]; do
		sleep 0.1
		i=$((i + 1))
	done
	grep -q "^tag=$1 " "$work/results"
}

# ---- mtlsd ---------------------------------------------------------------
# start_mtlsd NAME [LINES]: mtlsd with the suite's configuration, plus LINES
# ("key = value", one a line) in [mtlsd] and ktls = $mtlsd_ktls (default
# auto); sets mport (TLS), aport (admin), mlog, maudit. Ports are retried
# when another process took them first.
start_mtlsd() {
	mlog=$work/$1.log
	maudit=$work/$1-audit.jsonl
	for _ in 1 2 3 4 5; do
		ports=$("$py" "$here/vm_backend.py" ports 2)
		mport=$(echo "$ports" | sed -n 1p) aport=$(echo "$ports" | sed -n 2p)
		cat >"$work/$1.conf" <<-EOF
			[mtlsd]
			listen = 127.0.0.1:$mport
			workers = 1
			ktls = ${mtlsd_ktls:-auto}
			admin_listen = 127.0.0.1:$aport
			audit_log = $maudit
			control_socket = $work/$1.sock
			instance = mtlsd-suite-$$-$1
			accounting = off
			drain_timeout = 1s
			log_level = debug
			${2:-}

			[server_cert.ec]
			cert = $fx/server-chain.pem
			key = $fx/server-key.pem

			[partner.partner]
			ca = $fx/ca-bundle.pem
			crl = $fx/crls.pem
			backend = 127.0.0.1:$bport
			proxy_protocol = v2
			allow_uri = spiffe://partner.example/prod/*
		EOF
		"$mtlsd" --config "$work/$1.conf" >"$mlog" 2>&1 &
		mtlsd_pid=$!
		i=0
		while kill -0 "$mtlsd_pid" 2>/dev/null && ! grep -q "mtlsd ready: listening on" "$mlog" &&
			[ $i -lt 1200 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		grep -q "mtlsd ready: listening on" "$mlog" && return 0
		kill "$mtlsd_pid" 2>/dev/null
		wait "$mtlsd_pid" 2>/dev/null
		mtlsd_pid=
		grep -qi "address already in use" "$mlog" || return 1
	done
	return 1
}

stop_mtlsd() {
	[ -n "$mtlsd_pid" ] || return 0
	kill "$mtlsd_pid" 2>/dev/null
	wait "$mtlsd_pid" 2>/dev/null
	mtlsd_pid=
}

# metrics: /metrics now, into $work/metrics.
metrics() {
	curl -s --max-time 30 "http://127.0.0.1:$aport/metrics" >"$work/metrics" 2>/dev/null ||
		: >"$work/metrics"
}
# metric SERIES: its value in the last scrape, "absent" when not exported.
metric() {
	awk -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print "absent" }' "$work/metrics"
}
# ktls_label_count NAME: the sum of every mtlsd_ktls_* series carrying the
# label value NAME (a decision or an event, whatever the family is called),
# "absent" when no such series is exported.
ktls_label_count() {
	awk -v v="\"$1\"" 'index($1, "mtlsd_ktls_") == 1 && index($1, "=" v) { s += $2; found = 1 }
		END { if (found) print s; else print "absent" }' "$work/metrics"
}
# ktls_series NAME: the names of those series (for the messages).
ktls_series() {
	awk -v v="\"$1\"" 'index($1, "mtlsd_ktls_") == 1 && index($1, "=" v) { printf "%s%s", sep, $1; sep = "+" }' \
		"$work/metrics"
}
offloaded_rx() { metric 'mtlsd_ktls_offloaded_connections_total{direction="rx"}'; }
offloaded_tx() { metric 'mtlsd_ktls_offloaded_connections_total{direction="tx"}'; }
closed() { metric "mtlsd_connections_closed_total{reason=\"$1\"}"; }

# audit N FIELD: a string or literal field of mtlsd's N-th handshake line.
audit() {
	grep '"event":"handshake"' "$maudit" 2>/dev/null | sed -n "${1}p" |
		sed -n "s/.*\"$2\":\"\\{0,1\\}\\([^\",}]*\\).*/\\1/p"
}
audits() {
	n=$(grep -c '"event":"handshake"' "$maudit" 2>/dev/null)
	echo "${n:-0}"
}
# wait_audit N: until mtlsd wrote its N-th handshake line.
wait_audit() {
	i=0
	while [ "$(audits)" -lt "$1" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
	[ "$(audits)" -ge "$1" ]
}

# ---- counters around one connection --------------------------------------
# before: snapshot kernel and mtlsd counters; after NAME: compare them and
# print the offload (or user-space) line for NAME. Both modes also accept
# what an absent kernel counter file means.
before() {
	tx0=$(tls_stat TlsTxSw) rx0=$(tls_stat TlsRxSw)
	metrics
	orx0=$(offloaded_rx) otx0=$(offloaded_tx)
	noulp0=$(ktls_label_count no_tls_ulp)
	n_audit0=$(audits)
	live_tx=- live_rx=- client_secs=0 live_required=0
	t0=$(date +%s)
}

# run_client CMD...: runs the client in the background and samples
# TlsCurrTxSw/TlsCurrRxSw (the kernel's count of offloaded sockets open now)
# until it exits; sets client_rc, live_tx, live_rx, client_secs.
run_client() {
	live_tx=0 live_rx=0
	c_t0=$(date +%s)
	"$@" &
	cpid=$!
	while kill -0 "$cpid" 2>/dev/null; do
		if [ -r /proc/net/tls_stat ]; then
			while read -r k v; do
				case $k in
				TlsCurrTxSw) [ "$v" -gt "$live_tx" ] && live_tx=$v ;;
				TlsCurrRxSw) [ "$v" -gt "$live_rx" ] && live_rx=$v ;;
				*) ;;
				esac
			done </proc/net/tls_stat
		fi
		sleep 1
	done
	wait "$cpid"
	client_rc=$?
	client_secs=$(($(date +%s) - c_t0))
}

# after NAME: the offload facts of the connection(s) since before().
after() {
	tx=$(tls_stat TlsTxSw) rx=$(tls_stat TlsRxSw)
	metrics
	orx=$(offloaded_rx) otx=$(offloaded_tx)
	if [ "$expect" = offload ]; then
		facts="TlsTxSw $tx0->$tx TlsRxSw $rx0->$rx, mtlsd_ktls_offloaded_connections_total rx $orx0->$orx tx $otx0->$otx"
		# A data row (8 MiB or more) whose client ran 5 s or more was
		# sampled several times while the data moved: the kernel must
		# have shown the socket as offloaded meanwhile. (A small transfer
		# is over before the first sample; its client's time is mostly
		# start-up and handshake.)
		live_ok=1
		if [ "$live_tx" != - ]; then
			facts="$facts, live TlsCurrTxSw=$live_tx TlsCurrRxSw=$live_rx during ${client_secs}s"
			[ "$live_required" = 0 ] || [ "$client_secs" -lt 5 ] ||
				{ [ "$live_tx" -ge 1 ] && [ "$live_rx" -ge 1 ]; } || live_ok=0
		fi
		if [ "$tx" -gt "$tx0" ] && [ "$rx" -gt "$rx0" ] && [ $live_ok = 1 ] &&
			[ "$orx" != absent ] && [ "$otx" != absent ] &&
			[ "$orx" -gt "$orx0" ] && [ "$otx" -gt "$otx0" ]; then
			ok "$1 offloaded: $facts"
		else
			why=
			[ "$orx" = absent ] || [ "$orx" -gt "$orx0" ] ||
				why=" (mtlsd kept the session in user space: $(awk 'index($1, "mtlsd_ktls_declined") == 1 && $2 > 0 { printf "%s %s; ", $1, $2 }' "$work/metrics")log: $(grep -o 'ktls: [^(]*' "$mlog" | sort -u | sed 's/ *$//' | tr '\n' ';'))"
			not_ok "$1 offloaded: $facts$why"
		fi
	else
		noulp=$(ktls_label_count no_tls_ulp)
		said=$(grep -o 'ktls: the kernel has no tls ULP[^(]*' "$mlog" | head -n1 | sed 's/ *$//')
		facts="mtlsd_ktls_offloaded_connections_total rx $orx0->$orx tx $otx0->$otx"
		[ "$noulp" = absent ] || facts="$facts, $(ktls_series no_tls_ulp) $noulp0->$noulp"
		if [ -n "$said" ] && [ "$orx" = "$orx0" ] && [ "$otx" = "$otx0" ] &&
			{ [ "$noulp" = absent ] || [ "$noulp" -gt "$noulp0" ]; }; then
			ok "$1 stayed in user space: mtlsd said '$said', $facts"
		else
			not_ok "$1 stayed in user space: log '${said:-nothing}', $facts"
		fi
	fi
}

# ---- clients ---------------------------------------------------------------
# OpenSSL cipher names as GnuTLS priority strings (the client chooses).
gnutls_priority() { # VERSION CIPHER
	case $2 in
	*AES_128_GCM* | *AES128-GCM*) gp_c=AES-128-GCM ;;
	*AES_256_GCM* | *AES256-GCM*) gp_c=AES-256-GCM ;;
	*CHACHA20*) gp_c=CHACHA20-POLY1305 ;;
	*) gp_c=$2 ;;
	esac
	if [ "$1" = 1.3 ]; then
		echo "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+$gp_c"
	else
		echo "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+$gp_c:-KX-ALL:+ECDHE-ECDSA"
	fi
}

# s_client TIMEOUT VERSION CIPHER [ARGS...]: openssl s_client as the
# partner's client (client-ec and its intermediates), the cipher chosen
# here.
s_client() {
	sc_to=$1 sc_v=$2 sc_c=$3
	shift 3
	if [ "$sc_v" = 1.3 ]; then
		set -- -tls1_3 -ciphersuites "$sc_c" "$@"
	else
		set -- -tls1_2 -cipher "$sc_c" "$@"
	fi
	timeout "$sc_to" openssl s_client -connect "127.0.0.1:$mport" -CAfile "$fx/root.pem" \
		-verify_return_error -servername localhost -cert "$fx/client.pem" \
		-key "$fx/client-key.pem" -cert_chain "$fx/client-intermediates.pem" "$@"
}

# client PEER upload|download VERSION CIPHER [S_CLIENT ARGS]
client() {
	c_peer=$1 c_dir=$2
	shift 2
	case "$c_peer/$c_dir" in
	openssl/upload)
		s_client "$client_timeout" "$@" -nocommands \
			<"$work/up.bin" >"$work/client.out" 2>"$work/client.err" ;;
	openssl/download)
		# stdin open read-write on a fifo: never EOF, so the client
		# reads until mtlsd's close_notify.
		s_client "$client_timeout" "$@" -quiet \
			0<>"$work/fifo" >"$work/down.bin" 2>"$work/client.err" ;;
	gnutls/upload)
		timeout "$client_timeout" gnutls-cli --logfile=/dev/null \
			--x509cafile "$fx/root.pem" --x509certfile "$fx/client-chain.pem" \
			--x509keyfile "$fx/client-key.pem" --sni-hostname localhost \
			--priority "$(gnutls_priority "$1" "$2")" -p "$mport" 127.0.0.1 \
			<"$work/up.bin" >"$work/client.out" 2>"$work/client.err" ;;
	gnutls/download)
		# gnutls-cli writes received data one byte per syscall: a GnuTLS
		# client of our own checksums the stream instead.
		timeout "$client_timeout" "$gnutls_peer" --cert "$fx/client-chain.pem" \
			--key "$fx/client-key.pem" --ca "$fx/root.pem" "$mport" \
			"$(gnutls_priority "$1" "$2")" >"$work/down.sum" 2>"$work/client.err" ;;
	*) return 2 ;;
	esac
}

# check_audit NAME N VERSION CIPHER: mtlsd accepted handshake N with them.
check_audit() {
	wait_audit "$2"
	a_o=$(audit "$2" outcome) a_v=$(audit "$2" tls_version) a_c=$(audit "$2" cipher)
	[ "$a_o" = ok ] && [ "$a_v" = "TLSv$3" ] && [ "$a_c" = "$4" ] && return 0
	not_ok "$1: audit line $2: outcome=$a_o tls_version=$a_v cipher=$a_c (want ok TLSv$3 $4)"
	return 1
}

# identity_ok TAG: the backend read mtlsd's PROXY v2 header and it
# named client-ec of partner "partner".
identity_ok() {
	[ "$(result "$1" cn)" = client-ec ] && [ "$(result "$1" partner)" = partner ]
}

# transfer NAME TAG PEER upload|download VERSION CIPHER BYTES [S_CLIENT ARGS]:
# one connection moving BYTES (upload: $work/up.bin, whose SHA-256 is
# $up_sha) through mtlsd, checked end to end: the audit line (version,
# cipher), the backend's view (PROXY v2 identity, bytes, SHA-256, EOF) and
# the client's; then the offload facts (after()). Extra arguments go to
# openssl s_client. Returns 1 when the data check failed.
transfer() {
	t_name=$1 t_tag=$2 t_peer=$3 t_dir=$4 t_v=$5 t_c=$6 t_size=$7
	shift 7
	if [ "$t_dir" = upload ]; then
		echo "upload $t_tag" >"$work/mode"
	else
		echo "download $t_size $t_tag" >"$work/mode"
	fi
	before
	[ "$t_size" -lt 8388608 ] || live_required=1
	run_client client "$t_peer" "$t_dir" "$t_v" "$t_c" "$@"
	wait_result "$t_tag" 120
	secs=$(($(date +%s) - t0))
	t_ok=1
	if check_audit "$t_name" $((n_audit0 + 1)) "$t_v" "$t_c"; then
		line=$(grep "^tag=$t_tag " "$work/results")
		end=$(result "$t_tag" end)
		if [ "$t_dir" = upload ]; then
			got=$(result "$t_tag" sha256) bytes=$(result "$t_tag" bytes)
			if [ "$got" = "$up_sha" ] && [ "$bytes" = "$t_size" ] && [ "$end" = eof ] && identity_ok "$t_tag"; then
				ok "$t_name: $bytes bytes, sha256 match, backend saw EOF, PROXY v2 cn=client-ec partner=partner (${secs}s)"
				t_ok=0
			else
				not_ok "$t_name: client rc=$client_rc, backend: ${line:-nothing} (want $t_size bytes sha256=$up_sha) (${secs}s)"
				tail -n 5 "$work/client.err"
			fi
		else
			if [ "$t_peer" = gnutls ]; then
				got=$(sed -n 's/.*sha256=\([0-9a-f]*\).*/\1/p' "$work/down.sum")
				bytes=$(sed -n 's/^bytes=\([0-9]*\).*/\1/p' "$work/down.sum")
				closed_by="close_notify"
			else
				got=$(sha256sum <"$work/down.bin" | cut -d' ' -f1)
				bytes=$(wc -c <"$work/down.bin")
				# s_client 3.0 reports an EOF without close_notify
				# ("unexpected eof while reading").
				closed_by="close_notify"
				grep -q "unexpected eof" "$work/client.err" && closed_by="EOF without close_notify"
			fi
			want=$(result "$t_tag" sha256)
			if [ -n "$want" ] && [ "$got" = "$want" ] && [ "${bytes:-0}" -eq "$t_size" ] &&
				[ "$end" = eof ] && [ "$closed_by" = close_notify ] && identity_ok "$t_tag"; then
				ok "$t_name: $bytes bytes, sha256 match, client saw close_notify (${secs}s)"
				t_ok=0
			else
				not_ok "$t_name: client rc=$client_rc got ${bytes:-0} bytes sha256=$got ($closed_by), backend: ${line:-nothing} (${secs}s)"
				tail -n 5 "$work/client.err"
			fi
			rm -f "$work/down.bin"
		fi
	fi
	after "$t_name"
	return $t_ok
}

row() { # PEER VERSION CIPHER
	r_tag=$(echo "$1-$2-$3" | tr -c 'A-Za-z0-9.\n-' _)
	transfer "$1 TLS$2 $3 upload" "$r_tag-up" "$1" upload "$2" "$3" "$size"
	transfer "$1 TLS$2 $3 download" "$r_tag-down" "$1" download "$2" "$3" "$size"
}

# A client without a certificate: refused in the handshake, nothing reaches
# the backend, and nothing is handed to the kernel.
refused_without_certificate() {
	echo "upload refused" >"$work/mode"
	before
	echo "must not arrive" | timeout 120 openssl s_client -connect "127.0.0.1:$mport" \
		-CAfile "$fx/root.pem" -servername localhost -quiet >/dev/null 2>"$work/client.err"
	wait_audit $((n_audit0 + 1))
	sleep 1
	o=$(audit $((n_audit0 + 1)) outcome)
	tx=$(tls_stat TlsTxSw) rx=$(tls_stat TlsRxSw)
	metrics
	orx=$(offloaded_rx)
	if [ "$o" = no_certificate ] && ! grep -q "^tag=refused " "$work/results" &&
		[ "$tx" = "$tx0" ] && [ "$rx" = "$rx0" ] && [ "$orx" = "$orx0" ]; then
		ok "client without a certificate refused: outcome $o, backend saw nothing, TlsTxSw $tx0->$tx TlsRxSw $rx0->$rx, offloaded rx $orx0->$orx"
	else
		not_ok "client without a certificate: outcome=$o backend: $(grep "^tag=refused " "$work/results"), TlsTxSw $tx0->$tx TlsRxSw $rx0->$rx, offloaded rx $orx0->$orx"
	fi
}

data_rows() {
	for dr_v in 1.3 1.2; do
		if [ $dr_v = 1.3 ]; then
			ciphers="TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256"
		else
			ciphers="ECDHE-ECDSA-AES128-GCM-SHA256 ECDHE-ECDSA-AES256-GCM-SHA384 ECDHE-ECDSA-CHACHA20-POLY1305"
		fi
		for dr_c in $ciphers; do
			case "$dr_v $dr_c" in
			*"${MTLS_KTLS_ONLY:-}"*) row "$1" $dr_v "$dr_c" ;;
			*) ;;
			esac
		done
	done
}

mkfifo "$work/fifo"
start_backend
[ "$group" = edge ] && size=1048576
echo "# mtlsd-suite $expect $group on $(uname -r), $size bytes per transfer"
case "$group" in
openssl | gnutls)
	start_mtlsd main || { echo "Bail out! mtlsd did not start:"; cat "$mlog"; exit 1; }
	grep -o 'ktls: [^(]*([^)]*)' "$mlog" | sed 's/^/# mtlsd: /'
	head -c "$size" /dev/urandom >"$work/up.bin"
	up_sha=$(sha256sum <"$work/up.bin" | cut -d' ' -f1)
	refused_without_certificate
	data_rows "$group"
	stop_mtlsd ;;
edge)
	# shellcheck source=tests/vm/mtlsd-edge.sh
	. "$here/mtlsd-edge.sh"
	mtlsd_edge_cases ;;
*) echo "unknown group $group" >&2; exit 2 ;;
esac
echo "# $group ($expect): $failures failed"
[ $failures -eq 0 ]
