#!/bin/sh
# Run one libFuzzer target for a bounded time over its seeds:
#   tests/fuzz/run_one.sh TARGET-BINARY SECONDS [WORKDIR]
# The one runner of both the meson `fuzz` suite (a few seconds per target)
# and tests/fuzz/run.sh (.ci/fuzz: 60 s; longer by hand).
#
# Seeds: tests/fuzz/corpus/<target>/ and, for fuzz_cert_policy, every
# fixture certificate as DER (from MTLS_FIXTURES, which fuzz_handshake
# needs too); dictionary: tests/fuzz/<target>.dict. The seed directories
# are only read: what the fuzzer finds goes to WORKDIR/corpus. A crash,
# leak (-detect_leaks), timeout (-timeout, seconds per input) or
# out-of-memory fails the run; the log and the input stay in WORKDIR (a
# fresh directory under /tmp when none is given, removed after a clean
# run). Prints "fuzz: <target> executions=N" for the CI log.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 TARGET-BINARY SECONDS [WORKDIR]" >&2; exit 2; }
BIN=$(realpath "$1")
SECS=$2
T=$(basename "$BIN")
SRC=$(cd "$(dirname "$0")/../.." && pwd)
if [ $# -ge 3 ]; then
	WORK=$3
	KEEP=1
	mkdir -p "$WORK"
else
	WORK=$(mktemp -d "/tmp/mtlsd-$T.XXXXXX")
	KEEP=0
fi
mkdir -p "$WORK/corpus" "$WORK/seeds"

if [ "$T" = fuzz_cert_policy ] || [ "$T" = fuzz_handshake ]; then
	if [ ! -d "${MTLS_FIXTURES:-}/pki" ]; then
		echo "fuzz: $T FAILED: MTLS_FIXTURES (${MTLS_FIXTURES:-unset}) holds no fixtures;" \
			"build the fixtures target first" >&2
		exit 1
	fi
fi
if [ "$T" = fuzz_cert_policy ]; then
	for c in "$MTLS_FIXTURES"/*/cert.pem; do
		openssl x509 -in "$c" -outform DER -out "$WORK/seeds/$(basename "$(dirname "$c")").der"
	done
fi
seeds="$WORK/seeds"
[ -d "$SRC/tests/fuzz/corpus/$T" ] && seeds="$seeds $SRC/tests/fuzz/corpus/$T"
dict=
[ -f "$SRC/tests/fuzz/$T.dict" ] && dict="-dict=$SRC/tests/fuzz/$T.dict"

set +e
# shellcheck disable=SC2086 # dict is one word or none, seeds a list of directories
(cd "$WORK" && "$BIN" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
	-detect_leaks=1 -print_final_stats=1 $dict corpus $seeds) >"$WORK/$T.log" 2>&1
rc=$?
set -e
# libFuzzer reports a crash or a leak with exit 77 (-error_exitcode's
# default), which meson would read as SKIP: every failure exits 1 here.
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$WORK/$T.log" | tail -1)
if [ $rc -ne 0 ]; then
	echo "fuzz: $T FAILED (exit $rc) after ${execs:-?} executions; log and input in $WORK:"
	tail -40 "$WORK/$T.log"
	exit 1
fi
echo "fuzz: $T executions=${execs:-?} in ${SECS}s, corpus $(find "$WORK/corpus" -type f | wc -l) inputs"
[ $KEEP -eq 1 ] || rm -rf "$WORK"
