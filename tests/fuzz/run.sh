#!/bin/sh
# Build and run mtlsd's libFuzzer targets with clang (ASan + UBSan).
#   tests/fuzz/run.sh [seconds-per-target]      (default 60)
# Targets: fuzz_pp2 (PROXY v2 encoder), fuzz_allowlist (pattern compile +
# match properties), fuzz_cert_policy (certificate
# identity, allow-list policy, JSON escaping; seeded with the fixture
# certificates when MTLS_FIXTURES is set). Crashes land in $OUT.
set -eu
SECS=${1:-60}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/mtlsd-fuzz.XXXXXX)}
CFLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I$SRC -I$SRC/lib -I$SRC/dataplane"

clang $CFLAGS -o "$OUT/fuzz_pp2" "$SRC/tests/fuzz/fuzz_pp2.c" "$SRC/dataplane/proxy_v2.c"
clang $CFLAGS -o "$OUT/fuzz_allowlist" "$SRC/tests/fuzz/fuzz_allowlist.c" \
	"$SRC/dataplane/verify_policy.c" -lssl -lcrypto
clang $CFLAGS -o "$OUT/fuzz_cert_policy" "$SRC/tests/fuzz/fuzz_cert_policy.c" \
	"$SRC/lib/certinfo.c" "$SRC/lib/outcome.c" "$SRC/dataplane/verify_policy.c" \
	"$SRC/dataplane/audit.c" -lssl -lcrypto

mkdir -p "$OUT/corpus_pp2" "$OUT/corpus_cert" "$OUT/corpus_allow"
printf 'spiffe://td/prod/*\0spiffe://td/prod/a' > "$OUT/corpus_allow/uri"
printf 'spiffe://td/prod/**\0spiffe://td/prod/a/b' > "$OUT/corpus_allow/uri2"
printf '*.a.example\0x.a.example' > "$OUT/corpus_allow/dns"
if [ -n "${MTLS_FIXTURES:-}" ]; then
	for c in "$MTLS_FIXTURES"/*/cert.pem; do
		openssl x509 -in "$c" -outform DER -out "$OUT/corpus_cert/$(basename "$(dirname "$c")").der"
	done
fi
cd "$OUT"
./fuzz_pp2 -max_total_time="$SECS" -print_final_stats=1 corpus_pp2
./fuzz_allowlist -max_total_time="$SECS" -print_final_stats=1 corpus_allow
./fuzz_cert_policy -max_total_time="$SECS" -print_final_stats=1 corpus_cert
echo "fuzz: no crash in ${SECS}s per target ($OUT)"
