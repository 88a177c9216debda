#!/bin/bash
# Builds what tests/xen-real-arm64 boots, into $OUT:
#   xen               the hypervisor (build-xen.sh: Debian's source, IOREQ server on)
#   dom0-vmlinuz      Debian's arm64 kernel (dom0, the driver domain, domain 1)
#   dom0-initrd.gz    busybox dom0: Debian's arm64 Xen tools and their libraries,
#                     virtiod, vd-count.so, the guests' kernels and initrds,
#                     docs/examples/* under /xa/examples, dom0-test.sh
#   guest-initrd.gz   busybox guest: guest-init.sh, vd-verify, the virtio modules of both kernels
#   Image-grant       the grant-DMA guest kernel (build-kernel.sh)
#   domU1.dtb domU2.dtb   the dom0less guests' partial device trees
#   host.dtb          QEMU's device tree plus Xen's /chosen (dom0, dom0less guests)
#   qemu-args         the QEMU options that load all of it
# Debian packages are fetched once with apt-get download into $CACHE/debs;
# the hypervisor and the grant kernel are built once into $CACHE.
#
# Env: BUILD (build), ARM64_BUILD ($BUILD-arm64: virtiod and its sysroot),
#      XA_CACHE (~/.cache/virtiod/xen-arm64: kept across clones, so that CI's
#      fresh clone does not build Xen and the kernel again), OUT
#      ($BUILD/xen-arm64), MEM, SMP,
#      XA_CASES, GUEST_TIMEOUT
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
EXAMPLES=$TOP/docs/examples
BUILD=${BUILD:-build}
ARM64_BUILD=${ARM64_BUILD:-$BUILD-arm64}
CACHE=${XA_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/virtiod/xen-arm64}
OUT=${OUT:-$BUILD/xen-arm64}
MEM=${MEM:-3072}
SMP=${SMP:-2}
mkdir -p "$CACHE/debs" "$OUT"
CACHE=$(cd "$CACHE" && pwd)
OUT=$(cd "$OUT" && pwd)
ARM64_BUILD=$(cd "$ARM64_BUILD" && pwd)
SYSROOT=$ARM64_BUILD/sysroot
VIRTIOD=$ARM64_BUILD/virtiod
# the guest verifier for arm64 (tests/verify: make verify-arm64)
VERIFY=${VERIFY:-$BUILD/arm64/vd-verify}
CC=aarch64-linux-gnu-gcc
[ -x "$VIRTIOD" ] || { echo "mkimages: no $VIRTIOD (make ARCH=arm64)" >&2; exit 1; }
[ -f "$SYSROOT/.stamp" ] || { echo "mkimages: no sysroot in $ARM64_BUILD" >&2; exit 1; }
[ -x "$VERIFY" ] || { echo "mkimages: no $VERIFY (make verify-arm64)" >&2; exit 1; }

# ------------------------------------------------------------ packages
T0=$(date +%s)
if [ -s "$CACHE/kernel-abi" ]; then
	KABI=$(cat "$CACHE/kernel-abi")
else
	KABI=$(apt-cache depends linux-image-arm64:arm64 2>/dev/null |
		sed -n 's/.*Depends: linux-image-\(.*\)-arm64.*/\1/p' | head -n 1)
	[ -n "$KABI" ] || { echo "mkimages: cannot resolve linux-image-arm64:arm64 (dpkg --add-architecture arm64; apt-get update)" >&2; exit 1; }
	echo "$KABI" >"$CACHE/kernel-abi"
fi
DEBS="xen-utils-4.17 xenstore-utils busybox-static linux-image-$KABI-arm64"
have_debs() { for p in $DEBS; do ls "$CACHE/debs/${p}_"*_arm64.deb >/dev/null 2>&1 || return 1; done; }
if ! have_debs; then
	echo "mkimages: apt-get download $DEBS (arm64)"
	# shellcheck disable=SC2046
	(cd "$CACHE/debs" && { apt-get download -q $(for p in $DEBS; do echo "$p:arm64"; done) >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null && apt-get download -q $(for p in $DEBS; do echo "$p:arm64"; done) >/dev/null; }; })
fi
X=$CACHE/x
stamp="v1 $(cd "$CACHE/debs" && ls ./*.deb | tr '\n' ' ')"
if [ "$(cat "$CACHE/x.stamp" 2>/dev/null)" != "$stamp" ]; then
	rm -rf "$X" && mkdir -p "$X"
	for p in $DEBS; do
		case $p in
		# the kernel: the image and the few modules the images use
		linux-image-*) set -- ./boot './lib/modules/*/kernel/drivers/xen' \
			'./lib/modules/*/kernel/drivers/virtio' './lib/modules/*/kernel/drivers/block/virtio_blk.ko' ;;
		*) set -- . ;;
		esac
		# etc/ and usr/share/ are not needed, and their *.d folders would
		# be picked up by the Makefile's dependency include
		dpkg-deb --fsys-tarfile "$CACHE/debs/${p}_"*_arm64.deb |
			tar -x -C "$X" --wildcards --exclude=./etc --exclude=./usr/share "$@"
	done
	echo "$stamp" >"$CACHE/x.stamp"
fi
KVER=$(ls "$X/lib/modules")
T1=$(date +%s)

# ------------------------------------------------------------ hypervisor, grant kernel
"$HERE/build-xen.sh" "$CACHE"
T2=$(date +%s)
"$HERE/build-kernel.sh" "$CACHE"
T3=$(date +%s)
GVER=$(cat "$CACHE/kernel/release")
cp "$CACHE/xen/xen" "$OUT/xen"
cp "$X/boot/vmlinuz-$KVER" "$OUT/dom0-vmlinuz"
cp "$CACHE/kernel/Image" "$OUT/Image-grant"

# ------------------------------------------------------------ small arm64 programs
W=$OUT/work
rm -rf "$W" && mkdir -p "$W"
SYSINC="-I$SYSROOT/usr/include"
SYSLIB="-L$SYSROOT/usr/lib/aarch64-linux-gnu -Wl,-rpath-link,$SYSROOT/usr/lib/aarch64-linux-gnu -Wl,-rpath-link,$SYSROOT/lib/aarch64-linux-gnu"
$CC -O2 -Wall -Wextra -shared -fPIC -o "$W/vd-count.so" "$HERE/vd-count.c" -ldl
# shellcheck disable=SC2086
$CC -O2 -Wall -Wextra $SYSINC -o "$W/xa-set-target" "$HERE/xa-set-target.c" $SYSLIB -lxenctrl

# ldd for arm64 binaries: their NEEDED libraries, recursively, from the
# sysroot, the extracted packages and the cross toolchain's libc
LIBDIRS="$X/usr/lib/aarch64-linux-gnu $SYSROOT/usr/lib/aarch64-linux-gnu $SYSROOT/lib/aarch64-linux-gnu /usr/aarch64-linux-gnu/lib"
declare -A SEEN
closure() {
	local f n d p
	for f in "$@"; do
		for n in $(aarch64-linux-gnu-readelf -d "$f" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p'); do
			[ -n "${SEEN[$n]:-}" ] && continue
			p=
			for d in $LIBDIRS; do [ -e "$d/$n" ] && { p=$d/$n; break; }; done
			[ -n "$p" ] || { echo "mkimages: $n (needed by $f) not found" >&2; exit 1; }
			SEEN[$n]=$p
			closure "$p"
		done
	done
}
copy_libs() { # ROOT: the libraries found by closure()
	mkdir -p "$1/lib/aarch64-linux-gnu"
	for n in "${!SEEN[@]}"; do cp -L "${SEEN[$n]}" "$1/lib/aarch64-linux-gnu/"; done
	mv "$1/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1" "$1/lib/"
	# xl dlopen()s libgcc_s at exit (pthread_cancel); readelf does not list it
	cp -L /usr/aarch64-linux-gnu/lib/libgcc_s.so.1 "$1/lib/aarch64-linux-gnu/"
	ln -sfn ../lib/aarch64-linux-gnu "$1/usr/lib/aarch64-linux-gnu"
}
bb_tree() { # ROOT
	mkdir -p "$1"/{bin,sbin,usr/bin,usr/sbin,usr/lib,proc,sys,dev,tmp,run,etc,root,mnt,srv,var/log,var/lib,var/run,lib/modules}
	cp "$X/bin/busybox" "$1/bin/busybox"
	for a in $(sed -n 's/^\(.*\)$/\1/p' "$W/busybox.list"); do
		[ -e "$1/bin/$a" ] || ln -s busybox "$1/bin/$a"
	done
}
qemu-aarch64-static "$X/bin/busybox" --list >"$W/busybox.list"

# ------------------------------------------------------------ guest initrd
# One initrd for every guest: the virtio modules of Debian's kernel and of
# the grant kernel, under their own release; /init picks by uname -r.
G=$W/guest
bb_tree "$G"
mkdir -p "$G/lib/modules/$KVER" "$G/lib/modules/$GVER"
for m in virtio/virtio_mmio block/virtio_blk; do
	cp "$X/lib/modules/$KVER/kernel/drivers/$m.ko" "$G/lib/modules/$KVER/"
done
for m in virtio virtio_ring virtio_mmio virtio_blk; do
	cp "$CACHE/kernel/modules/$m.ko" "$G/lib/modules/$GVER/"
done
cp "$HERE/guest-init.sh" "$G/init"
cp "$VERIFY" "$G/bin/vd-verify"
(cd "$G" && find . | cpio -o -H newc --quiet | gzip -6) >"$OUT/guest-initrd.gz"

# ------------------------------------------------------------ driver domain initrd
D=$W/domd
bb_tree "$D"
cp "$VIRTIOD" "$D/usr/bin/virtiod"
cp "$X/usr/bin/xenstore" "$D/usr/bin/"
for a in read write ls list; do ln -sf xenstore "$D/usr/bin/xenstore-$a"; done
cp "$W/vd-count.so" "$D/usr/lib/"
cp "$HERE/xa-counts.sh" "$D/usr/bin/"
cp "$VERIFY" "$D/usr/bin/vd-verify"
for m in xen-evtchn xen-privcmd xen-gntdev xen-gntalloc; do
	cp "$X/lib/modules/$KVER/kernel/drivers/xen/$m.ko" "$D/lib/modules/"
done
SEEN=()
closure "$VIRTIOD" "$X/usr/bin/xenstore" "$W/vd-count.so"
copy_libs "$D"
cp "$HERE/domd-init.sh" "$D/init"
(cd "$D" && find . | cpio -o -H newc --quiet | gzip -6) >"$W/domd-initrd.gz"

# ------------------------------------------------------------ dom0 initrd
R=$W/dom0
bb_tree "$R"
mkdir -p "$R"/usr/lib/xen-4.17/bin "$R/etc/xen" "$R/var/lib/xen" "$R/var/lib/xenstored" \
	"$R/var/log/xen/console" "$R/xa/boot" "$R/xa/examples"
BINS=""
for b in xl xenstored xenconsoled xen-init-dom0 libxl-save-helper; do
	cp "$X/usr/lib/xen-4.17/bin/$b" "$R/usr/lib/xen-4.17/bin/"
	BINS="$BINS $X/usr/lib/xen-4.17/bin/$b"
done
cp "$X/usr/bin/xenstore" "$R/usr/bin/"
for a in read write ls list exists rm chmod watch; do ln -sf xenstore "$R/usr/bin/xenstore-$a"; done
cp "$VIRTIOD" "$R/usr/bin/virtiod"
cp "$W/vd-count.so" "$R/usr/lib/"
cp "$W/xa-set-target" "$HERE/xa-counts.sh" "$R/usr/bin/"
cp "$VERIFY" "$R/usr/bin/vd-verify"
SEEN=()
# shellcheck disable=SC2086
closure $BINS "$X/usr/bin/xenstore" "$VIRTIOD" "$W/vd-count.so" "$W/xa-set-target"
copy_libs "$R"
for m in xen-evtchn xen-privcmd xenfs/xenfs xen-gntdev xen-gntalloc; do
	cp "$X/lib/modules/$KVER/kernel/drivers/xen/$m.ko" "$R/lib/modules/"
done
# the xl guests' kernels and initrds, at the paths the example configs name
cp "$X/boot/vmlinuz-$KVER" "$R/xa/boot/vmlinuz"
cp "$CACHE/kernel/Image" "$R/xa/boot/Image-grant"
cp "$OUT/guest-initrd.gz" "$R/xa/boot/guest-initrd.gz"
cp "$W/domd-initrd.gz" "$R/xa/boot/domd-initrd.gz"
cp "$EXAMPLES"/xen-arm64-* "$R/xa/examples/"
touch "$R/etc/xen/xl.conf" # else every xl command warns
cp "$HERE/dom0-init.sh" "$R/init"
cp "$HERE/dom0-test.sh" "$R/xa/dom0-test.sh"
chmod +x "$R/init" "$R/xa/dom0-test.sh"
cat >"$R/xa/config" <<EOF
XA_CASES="${XA_CASES:-dom0less xl driver-domain}"
GUEST_TIMEOUT=${GUEST_TIMEOUT:-600}
IMG_MB=64
EOF
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) >"$OUT/dom0-initrd.gz"

# ------------------------------------------------------------ device trees
dtc -q -I dts -O dtb -o "$OUT/domU1.dtb" "$EXAMPLES/xen-arm64-dom0less-virtio.dts"
dtc -q -I dts -O dtb -o "$OUT/domU2.dtb" "$EXAMPLES/xen-arm64-dom0less-virtio-grant.dts"
# QEMU's own device tree for this very machine, then Xen's /chosen
MACHINE="virt,virtualization=on,gic-version=3"
qemu-system-aarch64 -M "$MACHINE,dumpdtb=$W/virt.dtb" -cpu cortex-a57 -smp "$SMP" -m "$MEM" \
	-display none >/dev/null 2>&1
dtc -q -I dtb -O dts -o "$W/virt.dts" "$W/virt.dtb"
# Modules go from 0x48000000 up, 2 MiB aligned, above where QEMU puts Xen
# (0x40200000) and the device tree (0x48000000 - its first MiB is left free).
next=$((0x48200000))
LOADERS=""
SED=""
place() { # NAME FILE: sets NAME_ADDR / NAME_REG substitutions and a loader
	local size addr
	size=$(stat -c %s "$2")
	addr=$next
	next=$(((addr + size + 0x1fffff) & ~0x1fffff))
	SED="$SED -e s/@$1_ADDR@/$(printf '%x' $addr)/g -e s/@$1_REG@/0x0\\x20$(printf '0x%x' $addr)\\x200x0\\x20$(printf '0x%x' "$size")/g"
	LOADERS="$LOADERS -device loader,file=$2,addr=$(printf '0x%x' $addr),force-raw=on"
}
place DOM0_KERNEL "$OUT/dom0-vmlinuz"
place DOM0_RAMDISK "$OUT/dom0-initrd.gz"
place DOMU1_KERNEL "$OUT/dom0-vmlinuz"
place DOMU1_RAMDISK "$OUT/guest-initrd.gz"
place DOMU1_DTB "$OUT/domU1.dtb"
place DOMU2_KERNEL "$OUT/Image-grant"
place DOMU2_RAMDISK "$OUT/guest-initrd.gz"
place DOMU2_DTB "$OUT/domU2.dtb"
ram_end=$((0x40000000 + MEM * 1024 * 1024))
[ $next -lt $((ram_end - 0x40000000)) ] || { echo "mkimages: the modules do not fit in ${MEM} MiB" >&2; exit 1; }
XEN_CMDLINE="console=dtuart dom0_mem=768M,max:768M dom0_max_vcpus=$SMP loglvl=all guest_loglvl=all conring_size=1M"
DOM0_CMDLINE="console=hvc0 earlycon=xen loglevel=4"
# shellcheck disable=SC2086
sed $SED -e "s/@XEN_CMDLINE@/$XEN_CMDLINE/" -e "s/@DOM0_CMDLINE@/$DOM0_CMDLINE/" \
	"$EXAMPLES/xen-arm64-dom0less-chosen.dtsi" >"$W/chosen.dtsi"
if grep -q '@[A-Z0-9_]*@' "$W/chosen.dtsi"; then
	echo "mkimages: unfilled fields in chosen.dtsi: $(grep -o '@[A-Z0-9_]*@' "$W/chosen.dtsi" | sort -u | tr '\n' ' ')" >&2
	exit 1
fi
cat "$W/virt.dts" "$W/chosen.dtsi" >"$W/host.dts"
dtc -q -I dts -O dtb -o "$OUT/host.dtb" "$W/host.dts"
cat >"$OUT/qemu-args" <<EOF
-M $MACHINE -cpu cortex-a57 -smp $SMP -m $MEM -kernel $OUT/xen -dtb $OUT/host.dtb $LOADERS
EOF
T4=$(date +%s)
echo "mkimages: dom0 initrd $(du -h "$OUT/dom0-initrd.gz" | cut -f1), Debian kernel $KVER, grant kernel $GVER"
echo "mkimages: times debs=$((T1 - T0))s xen=$((T2 - T1))s kernel=$((T3 - T2))s images=$((T4 - T3))s"
