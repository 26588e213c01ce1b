#!/bin/busybox sh
# tests/vm/guest-init.sh: PID 1 of the kTLS test VM (packed as /init by
# prepare.sh).
#
# Loads the virtio/9p modules, mounts the host root read-only and the kernel
# package's modules, loads kernel TLS and the AEAD implementations, then runs
# the command run-in-vm.sh wrote into the writable output share (mtls.out=
# on the kernel command line) inside a chroot of the host root. Its output
# and exit code land in that share; the VM then powers off. Any failure
# before the command runs leaves no rc file, which the host reports with the
# console log.
/bin/busybox --install -s /bin
export PATH=/bin

say() { echo "vm-init: $*" >/dev/console; }
halt_now() { sync; poweroff -f; sleep 5; }
fail() { say "FAILED: $*"; halt_now; }

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev

for m in $(cat /modules/order); do
	insmod "/modules/$m.ko" || fail "insmod $m"
done

out=
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	mtls.out=*) out=${arg#mtls.out=} ;;
	*) ;;
	esac
done
[ -n "$out" ] || fail "no mtls.out= on the kernel command line"

# msize: 9p moves data in messages of at most this size; the default (8 KiB)
# makes loading binaries and libraries from the host slow.
p9="trans=virtio,version=9p2000.L,msize=524288"
mount -t 9p -o "$p9,ro,cache=loose" hostroot /newroot || fail "mount host root"
mkdir -p /lib/modules
mount -t 9p -o "$p9,ro" modules /lib/modules || fail "mount modules"

# Kernel TLS and the AEADs it uses, loaded here with busybox modprobe: the
# kernel's own module autoload runs the chroot's modprobe, which cannot see
# these modules.
for m in tls aesni_intel gcm chacha20poly1305 chacha_x86_64 poly1305_x86_64 \
	chacha_generic poly1305_generic; do
	modprobe "$m" 2>/dev/null || say "modprobe $m failed (continuing)"
done
ip link set lo up

mount -t proc proc /newroot/proc
mount -t sysfs sys /newroot/sys
mount -t devtmpfs dev /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm 2>/dev/null
mount -t devpts devpts /newroot/dev/pts 2>/dev/null
mount -t tmpfs tmp /newroot/dev/shm
for d in /tmp /run /var/tmp; do
	mount -t tmpfs tmp "/newroot$d" || fail "tmpfs on $d"
done
# The output directory is a host directory; under /tmp it is hidden by the
# tmpfs above, so make the mount point when it is missing.
mkdir -p "/newroot$out" 2>/dev/null
mount -t 9p -o "$p9" mtlsout "/newroot$out" || fail "mount output share on $out"

say "running $out/cmd.sh"
chroot /newroot /bin/sh "$out/cmd.sh" >"/newroot$out/output" 2>&1 </dev/null
rc=$?
echo "$rc" >"/newroot$out/rc.tmp" && mv "/newroot$out/rc.tmp" "/newroot$out/rc"
say "command exited with $rc"
umount "/newroot$out"
halt_now
