#!/bin/sh
# Build and run mtlsd's libFuzzer targets with clang (ASan + UBSan + LSan),
# coverage-guided inside the code under test:
#   tests/fuzz/run.sh [seconds-per-target] [target...]     (default 60, all)
#
# The targets are the ones meson builds (tests/fuzz/meson.build), in
# $BUILD (default build-fuzz in the source tree), a build of the whole tree
# with clang, -fsanitize=fuzzer-no-link (coverage) and
# -Db_sanitize=address,undefined, so the fuzzer sees every branch of lib/
# and dataplane/, not only the target's own file. Targets:
#   fuzz_config       the config parser (lib/config*.c), every error has a message
#   fuzz_allowlist    allow-list pattern compile + match properties
#   fuzz_cert_policy  certificate identity, allow-list policy, JSON escaping
#   fuzz_pp2          PROXY v2 encoder, round trip through a separate decoder
#   fuzz_ctlproto     the control-socket protocol codec
#   fuzz_handshake    the server handshake through mtlsd's SSL_CTX
# Each runs through tests/fuzz/run_one.sh (the runner of the meson `fuzz`
# suite too), its work directory $OUT/<target>. MTLS_FIXTURES: the
# fixtures of another build (.ci/fuzz: the main CI build's); unset, this
# build's own are made.
# A longer run of one target: tests/fuzz/run.sh 3600 fuzz_handshake
set -eu
SECS=${1:-60}
[ $# -gt 0 ] && shift
TARGETS=${*:-fuzz_config fuzz_allowlist fuzz_cert_policy fuzz_pp2 fuzz_ctlproto fuzz_handshake}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$SRC/build-fuzz}
OUT=${OUT:-$(mktemp -d /tmp/mtlsd-fuzz.XXXXXX)}
mkdir -p "$OUT"

if [ ! -f "$BUILD/build.ninja" ]; then
	CC=clang meson setup "$BUILD" "$SRC" -Dfuzz=enabled -Db_sanitize=address,undefined \
		-Db_lundef=false -Dc_args=-fsanitize=fuzzer-no-link >"$OUT/meson-setup.log"
else
	meson configure "$BUILD" -Dfuzz=enabled >"$OUT/meson-setup.log"
fi
build_targets=
for t in $TARGETS; do build_targets="$build_targets tests/fuzz/$t"; done
if [ -z "${MTLS_FIXTURES:-}" ]; then
	build_targets="$build_targets tests/fixtures.stamp"
	export MTLS_FIXTURES="$BUILD/tests/fixtures"
	export MTLS_FIXTURE_PASS=${MTLS_FIXTURE_PASS:-fixture-passphrase}
fi
# shellcheck disable=SC2086 # a word list
ninja -C "$BUILD" $build_targets >"$OUT/ninja.log" || { tail -40 "$OUT/ninja.log"; exit 1; }

status=0
for t in $TARGETS; do
	sh "$SRC/tests/fuzz/run_one.sh" "$BUILD/tests/fuzz/$t" "$SECS" "$OUT/$t" || status=1
done
[ $status -eq 0 ] && echo "fuzz: no crash, leak or timeout in ${SECS}s per target ($OUT)"
exit $status
