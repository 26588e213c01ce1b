#!/bin/sh
# tests/vm/doctor-vm.sh MTLSCTL: inside the kTLS VM (Debian's kernel, which
# offers the tls ULP), `mtlsctl doctor --json` reports the ULP available.
# The host twin is test_doctor's gather test, which holds doctor to what
# the host kernel lists in tcp_available_ulp (no tls there).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mtlsctl=$(realpath "$1")
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# doctor's own exit code is 1 or 2 when anything else warns or fails in the
# guest (limits, clock): record it in the output instead of stopping here.
set +e
"$here/run-in-vm.sh" -t 300 sh -c "'$mtlsctl' doctor; '$mtlsctl' doctor --json; echo \"doctor-exit=\$?\"" >"$out"
rc=$?
set -e
cat "$out"
[ $rc -eq 0 ] || exit $rc
python3 - "$out" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
doc = json.loads(next(l for l in lines if l.startswith('{"checks"')))
ulp = next(c for c in doc["checks"] if c["name"] == "tls-ulp")
if ulp["status"] != "pass" or "kernel TLS available" not in ulp["detail"]:
    sys.exit("tls-ulp in the VM: %s: %s" % (ulp["status"], ulp["detail"]))
uring = next(c for c in doc["checks"] if c["name"] == "io_uring")
if uring["status"] != "pass":
    sys.exit("io_uring in the VM: %s: %s" % (uring["status"], uring["detail"]))
print("vm-doctor: tls ULP available, io_uring usable")
PY
