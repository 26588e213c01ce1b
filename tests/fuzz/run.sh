#!/bin/sh
# Build and run mtlsd's libFuzzer targets with clang (ASan + UBSan + LSan).
#   tests/fuzz/run.sh [seconds-per-target] [target...]     (default 60, all)
#
# The code under test is mtlsd's own lib/ and dataplane/ libraries, built by
# meson with clang and -fsanitize=fuzzer-no-link (coverage-guided) in
# $BUILD (default build-fuzz in the source tree); each target is linked
# against them. Targets:
#   fuzz_config       the config parser (lib/config*.c), every error has a message
#   fuzz_allowlist    allow-list pattern compile + match properties
#   fuzz_cert_policy  certificate identity, allow-list policy, JSON escaping
#   fuzz_pp2          PROXY v2 encoder, round trip through a separate decoder
#   fuzz_ctlproto     the control-socket protocol codec
#   fuzz_handshake    the server handshake through mtlsd's SSL_CTX (needs
#                     MTLS_FIXTURES: the build's tests/fixtures directory)
# Seeds: tests/fuzz/corpus/<target>/, dictionary: <target>.dict (read only: new inputs go to
# $OUT/corpus_<target>). A crash, leak (-detect_leaks), timeout (-timeout,
# seconds per input) or out-of-memory fails the run, its input kept in $OUT.
# Prints "fuzz: <target> executions=N" per target, for the CI log.
# A longer run of one target: tests/fuzz/run.sh 3600 fuzz_handshake
set -eu
SECS=${1:-60}
[ $# -gt 0 ] && shift
TARGETS=${*:-fuzz_config fuzz_allowlist fuzz_cert_policy fuzz_pp2 fuzz_ctlproto fuzz_handshake}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$SRC/build-fuzz}
OUT=${OUT:-$(mktemp -d /tmp/mtlsd-fuzz.XXXXXX)}
FUZZ_FLAGS="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-g -O1 $FUZZ_FLAGS -D_GNU_SOURCE -I$SRC -I$SRC/lib -I$BUILD"
for d in . engine tls ktls policy identity acct control; do CFLAGS="$CFLAGS -I$SRC/dataplane/$d"; done

if [ ! -f "$BUILD/build.ninja" ]; then
	CC=clang meson setup "$BUILD" "$SRC" -Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args=-fsanitize=fuzzer-no-link >"$OUT/meson-setup.log"
fi
DP_LIBS=""
for d in engine tls ktls policy identity acct control; do DP_LIBS="$DP_LIBS dataplane/$d/libmtlsd-$d.a"; done
ninja -C "$BUILD" lib/libmtls_common.a bpf/libmtls_acct.a $DP_LIBS >"$OUT/ninja.log"
LIBS="-Wl,--start-group $(for l in $DP_LIBS; do printf '%s ' "$BUILD/$l"; done)$BUILD/bpf/libmtls_acct.a $BUILD/lib/libmtls_common.a -Wl,--end-group \
$(pkg-config --libs libssl libcrypto liburing inih libbpf) -lpthread"

# Seeds that need the build: the fixture certificates (DER) for the
# certificate policy target.
mkdir -p "$OUT/seeds_fuzz_cert_policy"
if [ -n "${MTLS_FIXTURES:-}" ]; then
	for c in "$MTLS_FIXTURES"/*/cert.pem; do
		openssl x509 -in "$c" -outform DER \
			-out "$OUT/seeds_fuzz_cert_policy/$(basename "$(dirname "$c")").der"
	done
fi

status=0
for t in $TARGETS; do
	# shellcheck disable=SC2086 # LIBS is a word list
	clang $CFLAGS -o "$OUT/$t" "$SRC/tests/fuzz/$t.c" $LIBS
	mkdir -p "$OUT/corpus_$t"
	seeds=
	for d in "$SRC/tests/fuzz/corpus/$t" "$OUT/seeds_$t"; do
		[ -d "$d" ] && seeds="$seeds $d"
	done
	dict=
	[ -f "$SRC/tests/fuzz/$t.dict" ] && dict="-dict=$SRC/tests/fuzz/$t.dict"
	set +e
	# shellcheck disable=SC2086 # dict is one word or none, seeds a list of directories
	(cd "$OUT" && ./"$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
		-detect_leaks=1 -print_final_stats=1 $dict "corpus_$t" $seeds) >"$OUT/$t.log" 2>&1
	rc=$?
	set -e
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/$t.log" | tail -1)
	if [ $rc -ne 0 ]; then
		echo "fuzz: $t FAILED (exit $rc) after ${execs:-?} executions; log and input in $OUT:"
		tail -40 "$OUT/$t.log"
		status=1
	else
		echo "fuzz: $t executions=${execs:-?} in ${SECS}s, corpus $(find "$OUT/corpus_$t" -type f | wc -l) inputs"
	fi
done
[ $status -eq 0 ] && echo "fuzz: no crash, leak or timeout in ${SECS}s per target ($OUT)"
exit $status
