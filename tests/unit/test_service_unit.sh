#!/bin/sh
# test_service_unit.sh MTLSD MTLSCTL: `systemd-analyze verify` accepts
# tuning/systemd/mtlsd.service with its drop-ins and says nothing at all
# (systemd only warns, exit 0, about unknown keys or values, so any output
# is a failure). The twin: the same unit with one misspelled key must make
# it speak, or this test could not fail. The binaries' paths are replaced
# by the built ones so verify can check they exist.
set -eu
mtlsd=$(realpath "$1")   # meson passes paths relative to the build dir
mtlsctl=$(realpath "$2")
src=${MTLS_SRCDIR:?}/tuning/systemd
command -v systemd-analyze >/dev/null || { echo "systemd-analyze missing (apt-get install systemd)"; exit 77; }

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/mtlsd.service.d"
sed -e "s|/usr/sbin/mtlsd|$mtlsd|g" -e "s|/usr/bin/mtlsctl|$mtlsctl|g" \
	"$src/mtlsd.service" >"$dir/mtlsd.service"
cp "$src"/mtlsd.service.d/*.conf "$dir/mtlsd.service.d/"

verify() {
	SYSTEMD_UNIT_PATH="$dir:" systemd-analyze verify "$dir/mtlsd.service" >"$dir/out" 2>&1
}
if ! verify || [ -s "$dir/out" ]; then
	echo "FAIL: systemd-analyze verify on mtlsd.service:"; cat "$dir/out"; exit 1
fi
echo "ok: mtlsd.service and its drop-ins verify cleanly"

sed -i 's/^ProtectSystem=strict/ProtectSystm=strict/' "$dir/mtlsd.service"
verify || true
if ! grep -q "ProtectSystm" "$dir/out"; then
	echo "FAIL: a misspelled key went unnoticed:"; cat "$dir/out"; exit 1
fi
echo "ok: a misspelled key is reported"
