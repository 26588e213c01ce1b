#!/bin/sh
# tests/vm/run-in-vm.sh: run one command inside a QEMU VM with kernel TLS.
#
#   run-in-vm.sh [-C DIR] [-e NAME=VALUE]... [-t SECONDS] CMD [ARG]...
#
# Boots the Debian kernel prepared by prepare.sh under TCG, with the host's
# root file system shared read-only, and runs CMD as root in a chroot of it:
# working directory DIR (default: the current one), environment PATH, every
# MTLS_* variable of the caller, plus each -e. /tmp, /run and /var/tmp are
# empty tmpfs in the guest. CMD's output is printed here when the VM is
# done; the exit code of this script is CMD's. When the VM fails to run the
# command (boot failure, timeout after SECONDS, default 600), it prints the
# console log and exits 1. Exit 77 when qemu or the kernel is unavailable
# outside CI (MTLS_VM_REQUIRED unset).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
workdir=$(pwd)
timeout_s=${MTLS_VM_TIMEOUT:-600}
extra_env=
# Quote one word for sh: the guest runs a generated script.
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
while getopts C:e:t: opt; do
	case "$opt" in
	C) workdir=$OPTARG ;;
	e) extra_env="$extra_env
export ${OPTARG%%=*}=$(quote "${OPTARG#*=}")" ;;
	t) timeout_s=$OPTARG ;;
	*) echo "usage: $0 [-C DIR] [-e NAME=VALUE]... [-t SECONDS] CMD [ARG]..." >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "usage: $0 [-C DIR] [-e NAME=VALUE]... [-t SECONDS] CMD [ARG]..." >&2; exit 2; }

set +e
kdir=$(MTLS_SRCDIR=${MTLS_SRCDIR:-$here/../..} "$here/prepare.sh")
rc=$?
set -e
[ $rc -eq 0 ] || exit $rc

run=$(mktemp -d "${TMPDIR:-/tmp}/mtlsd-vm.XXXXXX")
qemu_pid=
cleanup() {
	[ -n "$qemu_pid" ] && kill -9 "$qemu_pid" 2>/dev/null
	if [ -n "${MTLS_VM_KEEP:-}" ]; then
		echo "run-in-vm.sh: kept $run" >&2
	else
		rm -rf "$run"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

{
	echo "cd $(quote "$workdir") || exit 125"
	echo "export HOME=/tmp PATH=$(quote "$PATH")"
	env | sed -n 's/^\(MTLS_[A-Za-z0-9_]*\)=.*/\1/p' | while read -r name; do
		eval "value=\${$name}"
		echo "export $name=$(quote "$value")"
	done
	printf '%s\n' "$extra_env"
	printf 'exec'
	for arg in "$@"; do printf ' %s' "$(quote "$arg")"; done
	echo
} >"$run/cmd.sh"

# TCG: nested KVM hangs on the machines this runs on. Two vCPUs let a peer
# and mtlsd run side by side; the memory holds /tmp (test data) as tmpfs.
timeout -k 5 "$timeout_s" qemu-system-x86_64 \
	-accel tcg,thread=multi -cpu "${MTLS_VM_CPU:-max}" -smp "${MTLS_VM_CPUS:-2}" -m "${MTLS_VM_MEM:-1536}" \
	-display none -monitor none -serial "file:$run/console.log" -no-reboot -nic none \
	-kernel "$kdir/vmlinuz" -initrd "$kdir/initramfs.cpio.gz" \
	-append "console=ttyS0 panic=-1 loglevel=4 mtls.out=$run" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	-virtfs "local,path=$kdir/root/lib/modules,mount_tag=modules,security_model=none,readonly=on" \
	-virtfs "local,path=$run,mount_tag=mtlsout,security_model=none" \
	</dev/null >"$run/qemu.log" 2>&1 &
qemu_pid=$!
set +e
wait "$qemu_pid"
qemu_rc=$?
set -e
qemu_pid=

[ -f "$run/output" ] && cat "$run/output"
if [ ! -f "$run/rc" ]; then
	if [ $qemu_rc -eq 124 ]; then
		echo "run-in-vm.sh: VM timed out after ${timeout_s}s" >&2
	else
		echo "run-in-vm.sh: the VM did not run the command (qemu exit $qemu_rc)" >&2
	fi
	echo "--- qemu:" >&2
	cat "$run/qemu.log" >&2
	echo "--- console (last 60 lines):" >&2
	tail -n 60 "$run/console.log" >&2
	exit 1
fi
exit "$(cat "$run/rc")"
