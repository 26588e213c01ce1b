#!/bin/sh
# tests/vm/prepare.sh: make a Debian kernel with kernel TLS bootable under QEMU.
#
# The host mtlsd is built and tested on has no kTLS, so the kTLS suite runs in
# a VM that boots Debian's packaged kernel (the one linux-image-amd64 depends
# on) with the host's root file system shared read-only over 9p. This script
# fetches and unpacks that kernel and builds a small busybox initramfs; it is
# idempotent and caches everything under $MTLS_VM_CACHE (default
# /var/cache/mtlsd-vm). run-in-vm.sh calls it, so calling it by hand is only
# useful to warm the cache (CI: `tests/vm/prepare.sh` after apt-get install).
#
# Output: prints the cache directory holding vmlinuz, initramfs.cpio.gz and
# the unpacked package root (modules share) on stdout. Exit 77 (skip) when a
# tool is missing and MTLS_VM_REQUIRED is not set; 1 on any other failure.
set -eu

cache=${MTLS_VM_CACHE:-/var/cache/mtlsd-vm}
# Modules the initramfs loads, in dependency order, to reach the 9p shares.
boot_modules="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p"

die() { echo "prepare.sh: $*" >&2; exit 1; }
skip() {
	echo "prepare.sh: $*" >&2
	[ -n "${MTLS_VM_REQUIRED:-}" ] && exit 1
	exit 77
}

for tool in qemu-system-x86_64 busybox cpio depmod dpkg apt-get apt-cache gzip flock; do
	command -v "$tool" >/dev/null 2>&1 ||
		skip "'$tool' is missing: apt-get install qemu-system-x86 busybox-static cpio kmod"
done
busybox_bin=$(command -v busybox)
file -L "$busybox_bin" 2>/dev/null | grep -q 'dynamically linked' &&
	skip "$busybox_bin is not static: apt-get install busybox-static"

mkdir -p "$cache" || die "cannot create cache directory $cache (set MTLS_VM_CACHE)"
cd "$cache"
# Parallel callers (meson runs tests concurrently) wait for one another.
exec 9>"$cache/.lock"
flock 9

# The versioned package behind the metapackage, e.g. linux-image-6.1.0-56-amd64.
# A pinned name can be given to reproduce a run (MTLS_VM_KERNEL_PKG).
pkg=${MTLS_VM_KERNEL_PKG:-$(apt-cache depends linux-image-amd64 2>/dev/null |
	sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1)}
[ -n "$pkg" ] || die "apt-cache knows no linux-image-amd64 dependency: run apt-get update"
kver=${pkg#linux-image-}
ready="$cache/$kver.ready"

if [ ! -f "$ready" ]; then
	rm -rf "$cache/$kver" "$cache/$kver.tmp"
	mkdir -p "$cache/$kver.tmp/dl"
	# apt-get download runs as _apt when it can; a root-owned dir makes it
	# warn, so let it write there.
	chmod 0777 "$cache/$kver.tmp/dl"
	(cd "$cache/$kver.tmp/dl" && apt-get download -q "$pkg" >&2) ||
		die "apt-get download $pkg failed (network to the Debian mirror?)"
	deb=$(ls "$cache/$kver.tmp/dl"/*.deb)
	dpkg -x "$deb" "$cache/$kver.tmp/root" || die "dpkg -x $deb failed"
	rm -f "$deb"
	depmod -b "$cache/$kver.tmp/root" "$kver" || die "depmod for $kver failed"

	# The initramfs: static busybox, the 9p modules, and init.
	ird="$cache/$kver.tmp/initramfs"
	mkdir -p "$ird/bin" "$ird/modules" "$ird/proc" "$ird/sys" "$ird/dev" "$ird/newroot"
	cp "$busybox_bin" "$ird/bin/busybox"
	for m in $boot_modules; do
		ko=$(find "$cache/$kver.tmp/root/lib/modules/$kver" -name "$m.ko" | head -n1)
		[ -n "$ko" ] || die "module $m.ko not found in $pkg"
		cp "$ko" "$ird/modules/"
	done
	echo "$boot_modules" >"$ird/modules/order"
	cp "$cache/$kver.tmp/root/boot/vmlinuz-$kver" "$cache/$kver.tmp/vmlinuz"

	mv "$cache/$kver.tmp" "$cache/$kver"
	touch "$ready"
fi

# The guest's init comes from the source tree and may change without the
# kernel changing: repack the initramfs when it differs from the cached one.
src_init="$(cd "$(dirname "$0")" && pwd)/guest-init.sh"
if ! cmp -s "$src_init" "$cache/$kver/initramfs/init"; then
	cp "$src_init" "$cache/$kver/initramfs/init.new"
	chmod 0755 "$cache/$kver/initramfs/init.new"
	mv "$cache/$kver/initramfs/init.new" "$cache/$kver/initramfs/init"
	(cd "$cache/$kver/initramfs" && find . | cpio -o -H newc --quiet | gzip -1) \
		>"$cache/$kver/initramfs.cpio.gz.new"
	mv "$cache/$kver/initramfs.cpio.gz.new" "$cache/$kver/initramfs.cpio.gz"
fi

echo "$cache/$kver"
