#!/bin/bash
# Builds what tests/xen-real boots, from Debian packages:
#   $OUT/xen             Xen 4.17 (plain multiboot ELF, for QEMU -kernel)
#   $OUT/dom0-vmlinuz    Debian's generic kernel (PV dom0)
#   $OUT/dom0-initrd.gz  busybox dom0: Xen toolstack, QEMU device model,
#                        hvmloader, SeaBIOS, virtiod and its ldd closure,
#                        vd-verify, mke2fs/e2fsck, the modules for ext4,
#                        loop and xen-blkback, and for the guests: both
#                        Debian kernel flavours (direct boot), one boot
#                        disk per flavour (syslinux), one initrd, /xr/*
# Packages are fetched with apt-get download into $CACHE/debs once and
# extracted there; later runs work offline.
#
# Env: BUILD (build), VIRTIOD ($BUILD/virtiod; left out when missing),
#      VERIFY ($BUILD/tests/vd-verify, required with VIRTIOD), XR_DEVS
#      ("BASE:IRQ ..." of the guests' virtio-mmio devices: the first
#      XR_NBLK disks, then the net and the rng device), XR_CASES,
#      XR_MATRIX (the matrix file), and the knobs written to /xr/config.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-build}
CACHE=${CACHE:-$BUILD/xen-real-cache}
OUT=${OUT:-$BUILD/xen-real}
VIRTIOD=${VIRTIOD:-$BUILD/virtiod}
VERIFY=${VERIFY:-$BUILD/tests/vd-verify}
# XR_NETRNG ("rng", "rng net"): the matrix guests also get those devices,
# at two more windows (docs/testing-xen-real.md); off by default
XR_NETRNG=${XR_NETRNG-}
if [ -n "$XR_NETRNG" ]; then
	XR_DEVS=${XR_DEVS:-0xfe000000:7 0xfe001000:6 0xfe002000:3 0xfe003000:4 0xfe004000:13}
else
	XR_DEVS=${XR_DEVS:-0xfe000000:7 0xfe001000:6 0xfe002000:3}
fi
XR_NBLK=${XR_NBLK:-3}
XR_MATRIX=${XR_MATRIX:-$HERE/matrix.txt}
BB=/bin/busybox
mkdir -p "$CACHE/debs" "$OUT"
CACHE=$(cd "$CACHE" && pwd)
OUT=$(cd "$OUT" && pwd)

# ------------------------------------------------------------ packages
XEN_DEBS="xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common libxenmisc4.17 libyajl2 xenstore-utils"
have_debs() { # every package name of $1 has a .deb in the cache
	for p in $1; do ls "$CACHE/debs/${p}_"*.deb >/dev/null 2>&1 || return 1; done
}
if [ -s "$CACHE/kernel-abi" ]; then
	KABI=$(cat "$CACHE/kernel-abi")
else
	KABI=$(apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/.*Depends: linux-image-\(.*\)-amd64$/\1/p' | head -n 1)
	if [ -z "$KABI" ]; then
		apt-get update -qq >/dev/null
		KABI=$(apt-cache depends linux-image-amd64 |
			sed -n 's/.*Depends: linux-image-\(.*\)-amd64$/\1/p' | head -n 1)
	fi
	[ -n "$KABI" ] || { echo "mkimages: cannot resolve linux-image-amd64" >&2; exit 1; }
	echo "$KABI" >"$CACHE/kernel-abi"
fi
KDEBS="linux-image-$KABI-amd64 linux-image-$KABI-cloud-amd64"
# to make the guests' boot disks: run from the cache, not installed
BOOT_DEBS="syslinux mtools dosfstools"
ALL_DEBS="$XEN_DEBS $KDEBS $BOOT_DEBS"
if ! have_debs "$ALL_DEBS"; then
	echo "mkimages: apt-get download $ALL_DEBS"
	# shellcheck disable=SC2086
	(cd "$CACHE/debs" && { apt-get download $ALL_DEBS 2>/dev/null ||
		{ apt-get update -qq >/dev/null && apt-get download $ALL_DEBS; }; })
fi
# The kernels' boot/ and the modules the test loads: in the guests virtio
# (blk, net with its failover helpers, rng) and xen-blkfront, in dom0 the
# Xen drivers, loop, ext4, xen-blkback and tun (the net device's tap).
# (The cloud flavour has ext4 built in.)
KMODS="./boot ./lib/modules/*/kernel/drivers/xen ./lib/modules/*/kernel/drivers/virtio
./lib/modules/*/kernel/drivers/block ./lib/modules/*/kernel/drivers/net/virtio_net.ko
./lib/modules/*/kernel/drivers/net/net_failover.ko ./lib/modules/*/kernel/net/core/failover.ko
./lib/modules/*/kernel/drivers/char/hw_random/virtio-rng.ko ./lib/modules/*/kernel/drivers/net/tun.ko"
KMODS_DOM0="./lib/modules/*/kernel/fs/ext4 ./lib/modules/*/kernel/fs/jbd2
./lib/modules/*/kernel/fs/mbcache.ko ./lib/modules/*/kernel/lib/crc16.ko
./lib/modules/*/kernel/crypto/crc32c_generic.ko"
extract() { # $1 dir, rest: package names
	local d=$1 stamp
	shift
	stamp="v4 $(cd "$CACHE/debs" && for p in "$@"; do ls "${p}_"*.deb; done | tr '\n' ' ')"
	if [ "$(cat "$CACHE/$d.stamp" 2>/dev/null)" != "$stamp" ]; then
		rm -rf "${CACHE:?}/$d"
		mkdir -p "$CACHE/$d"
		# etc/ and usr/share/ are not needed, and their *.d folders
		# would confuse the Makefile's `find $(BUILD) -name '*.d'`
		for p in "$@"; do
			case $p in
			# shellcheck disable=SC2086
			linux-image-*-cloud-amd64) set -f; set -- $KMODS; set +f ;;
			linux-image-*) set -f; set -- $KMODS $KMODS_DOM0; set +f ;;
			*) set -- . ;;
			esac
			dpkg-deb --fsys-tarfile "$CACHE/debs/${p}_"*.deb |
				tar -x -C "$CACHE/$d" --wildcards --exclude=./etc --exclude=./usr/share "$@"
		done
		echo "$stamp" >"$CACHE/$d.stamp"
	fi
}
extract x $XEN_DEBS "linux-image-$KABI-amd64"
extract xc "linux-image-$KABI-cloud-amd64"
extract bt $BOOT_DEBS
BT=$CACHE/bt
X=$CACHE/x
KVER=$(ls "$X/lib/modules")
CKVER=$(ls "$CACHE/xc/lib/modules")

zcat "$X/boot/xen-4.17-amd64.gz" >"$OUT/xen"
cp "$X/boot/vmlinuz-$KVER" "$OUT/dom0-vmlinuz"

bb_tree() { # $1 = root dir
	mkdir -p "$1"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,root,mnt,var/log,var/lib,var/run}
	cp "$BB" "$1/bin/busybox"
	for a in $("$BB" --list); do [ -e "$1/bin/$a" ] || ln -s busybox "$1/bin/$a"; done
}

# ------------------------------------------------------------ guest initrd
W=$OUT/work
rm -rf "$W" && mkdir -p "$W"
devs=
i=0
for d in $XR_DEVS; do
	devs="$devs        Device (VIO$i)
        {
            Name (_HID, \"LNRO0005\")
            Name (_UID, $i)
            Name (_CRS, ResourceTemplate ()
            {
                Memory32Fixed (ReadWrite, ${d%%:*}, 0x00000200)
                IRQNoFlags () {${d##*:}}
            })
        }
"
	i=$((i + 1))
done
NDEVS=$i
awk -v devs="$devs" '/@DEVICES@/ { printf "%s", devs; next } { print }' \
	"$HERE/ssdt-virtio.asl" >"$W/ssdt-virtio.asl"
iasl -p "$W/ssdt-virtio" "$W/ssdt-virtio.asl" >"$W/iasl.log" 2>&1 || { cat "$W/iasl.log"; exit 1; }
mkdir -p "$W/acpi/kernel/firmware/acpi"
cp "$W/ssdt-virtio.aml" "$W/acpi/kernel/firmware/acpi/"
# the table upgrade cpio must be uncompressed and come first
(cd "$W/acpi" && find kernel | cpio -o -H newc --quiet) >"$W/guest-initrd"
G=$W/guest
bb_tree "$G"
# one initrd for both flavours: /init loads the modules of `uname -r`
for k in "$X:$KVER" "$CACHE/xc:$CKVER"; do
	mkdir -p "$G/lib/modules/${k##*:}"
	for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_mmio \
		drivers/block/virtio_blk drivers/block/xen-blkfront drivers/char/hw_random/virtio-rng \
		net/core/failover drivers/net/net_failover drivers/net/virtio_net; do
		cp "${k%%:*}/lib/modules/${k##*:}/kernel/$m.ko" "$G/lib/modules/${k##*:}/"
	done
done
if [ -x "$VIRTIOD" ]; then
	[ -x "$VERIFY" ] || { echo "mkimages: no $VERIFY (make tests builds it)" >&2; exit 1; }
	cp "$VERIFY" "$G/bin/vd-verify"
fi
cp "$HERE/guest-init.sh" "$G/init"
chmod +x "$G/init"
cat >"$G/xr.conf" <<EOF
XR_NDEVS=$NDEVS
XR_NBLK=$XR_NBLK
RNG_KB=${RNG_KB:-32}
NET_KB=${NET_KB:-2048}
XTRA_SECS=${XTRA_SECS:-300}
VERIFY_ARGS="${VERIFY_ARGS:---bytes 8M --seconds 40 --progress 5}"
EVENT_SECS=${EVENT_SECS:-20}
BENCH_SECS=${BENCH_SECS:-10}
BENCH_WORKLOADS="${BENCH_WORKLOADS:-randread:4k:1 randread:4k:32 randwrite:4k:1 randwrite:4k:32 read:1m:8 write:1m:8}"
EOF
# Direct boot (kernel=/ramdisk=) brings every byte of kernel and initrd
# through fw_cfg port I/O, one ioreq round trip to dom0 per page and a
# per-byte loop in QEMU: keep the initrd small.
(cd "$G" && find . | cpio -o -H newc --quiet | gzip -9) >>"$W/guest-initrd"

# One boot disk per flavour: a FAT image that QEMU serves as a virtio-blk
# PCI disk, which SeaBIOS reads by DMA (see make_cfg in dom0-test.sh).
export MTOOLS_SKIP_CHECK=1
boot_disk() { # $1 flavour, $2 kernel image
	local img=$W/guest-boot-$1.img kb
	kb=$((($(stat -c %s "$2") + $(stat -c %s "$W/guest-initrd")) / 1024 + 2048))
	rm -f "$img"
	"$BT/sbin/mkfs.fat" -C "$img" $kb >/dev/null
	printf 'DEFAULT linux\nLABEL linux\n  KERNEL vmlinuz\n  INITRD initrd\n  APPEND console=hvc0 loglevel=4\n' \
		>"$W/syslinux.cfg"
	"$BT/usr/bin/mcopy" -i "$img" "$2" ::vmlinuz
	"$BT/usr/bin/mcopy" -i "$img" "$W/guest-initrd" ::initrd
	"$BT/usr/bin/mcopy" -i "$img" "$W/syslinux.cfg" ::syslinux.cfg
	PATH=$BT/usr/bin:$PATH "$BT/usr/bin/syslinux" --install "$img"
}
boot_disk generic "$X/boot/vmlinuz-$KVER"
boot_disk cloud "$CACHE/xc/boot/vmlinuz-$CKVER"

# ------------------------------------------------------------ dom0 initrd
R=$W/dom0
bb_tree "$R"
mkdir -p "$R"/usr/lib/xen-4.17/{bin,boot} "$R/usr/libexec" "$R/usr/share/seabios" \
	"$R/usr/share/qemu/keymaps" "$R/lib/x86_64-linux-gnu" "$R/lib64" "$R/lib/modules" \
	"$R/etc/xen/scripts" "$R/var/lib/xen" "$R/var/lib/xenstored" "$R/var/log/xen/console" "$R/boot" "$R/xr"
BINS=""
for b in xl xenstored xenconsoled xen-init-dom0 libxl-save-helper; do
	cp "$X/usr/lib/xen-4.17/bin/$b" "$R/usr/lib/xen-4.17/bin/"
	BINS="$BINS $X/usr/lib/xen-4.17/bin/$b"
done
cp "$X/usr/bin/xenstore" "$R/usr/bin/"
for a in read write ls list exists rm chmod watch; do ln -sf xenstore "$R/usr/bin/xenstore-$a"; done
BINS="$BINS $X/usr/bin/xenstore"
# HVM: hvmloader, the SeaBIOS image libxl hands it, the device model
# (qemu-system-xen, at the path libxl has compiled in) and its ROMs for
# direct kernel boot; QEMU loads the keymap even for -vnc none
cp "$X/usr/lib/xen-4.17/boot/hvmloader" "$R/usr/lib/xen-4.17/boot/"
cp -L /usr/share/seabios/bios-256k.bin "$R/usr/share/seabios/"
cp /usr/libexec/xen-qemu-system-i386 "$R/usr/libexec/"
for f in linuxboot_dma.bin linuxboot.bin multiboot_dma.bin multiboot.bin kvmvapic.bin; do
	cp -L "/usr/share/qemu/$f" "$R/usr/share/qemu/"
done
cp /usr/share/qemu/keymaps/en-us "$R/usr/share/qemu/keymaps/"
BINS="$BINS /usr/libexec/xen-qemu-system-i386"
# image checks and the ext4 store in dom0
for b in e2fsck debugfs mke2fs; do cp "$(command -v $b)" "$R/usr/sbin/"; BINS="$BINS $(command -v $b)"; done
if [ -x "$VIRTIOD" ]; then
	cp "$VIRTIOD" "$R/usr/bin/virtiod"
	cp "$VERIFY" "$R/usr/bin/vd-verify"
	BINS="$BINS $VIRTIOD"
	echo "mkimages: virtiod from $VIRTIOD, vd-verify from $VERIFY"
else
	echo "mkimages: no $VIRTIOD: dom0 runs the probe case only"
fi
LDP=$X/usr/lib/x86_64-linux-gnu:$X/usr/lib/xen-4.17/lib/x86_64-linux-gnu
# shellcheck disable=SC2086
for lib in $(LD_LIBRARY_PATH=$LDP ldd $BINS | awk '/=>/ { print $3 }' | sort -u); do
	cp -L "$lib" "$R/lib/x86_64-linux-gnu/"
done
cp -L /lib64/ld-linux-x86-64.so.2 "$R/lib64/"
# xl dlopen()s libgcc_s at exit (pthread_cancel); ldd does not list it
cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$R/lib/x86_64-linux-gnu/"
ln -s ../lib/x86_64-linux-gnu "$R/usr/lib/x86_64-linux-gnu"
# dom0-init.sh loads these in this order (dependencies first)
KM=$X/lib/modules/$KVER/kernel
for m in drivers/xen/xen-evtchn drivers/xen/xen-privcmd drivers/xen/xenfs/xenfs \
	drivers/xen/xen-gntdev drivers/xen/xen-gntalloc lib/crc16 fs/mbcache fs/jbd2/jbd2 \
	crypto/crc32c_generic fs/ext4/ext4 drivers/block/loop drivers/block/xen-blkback/xen-blkback \
	drivers/net/tun; do
	cp "$KM/$m.ko" "$R/lib/modules/"
	echo "${m##*/}" >>"$R/lib/modules/order"
done
cp "$W/guest-initrd" "$R/boot/guest-initrd"
cp "$X/boot/vmlinuz-$KVER" "$R/boot/vmlinuz-generic"
cp "$CACHE/xc/boot/vmlinuz-$CKVER" "$R/boot/vmlinuz-cloud"
cp "$W/guest-boot-generic.img" "$W/guest-boot-cloud.img" "$R/boot/"
touch "$R/etc/xen/xl.conf" # else every xl command warns
cp "$HERE/dom0-init.sh" "$R/init"
cp "$HERE/dom0-test.sh" "$R/xr/dom0-test.sh"
cp "$HERE/block-phy.sh" "$R/etc/xen/scripts/block-phy"
grep -vE '^[[:space:]]*(#|$)' "$XR_MATRIX" >"$R/xr/matrix"
chmod +x "$R/init" "$R/xr/dom0-test.sh" "$R/etc/xen/scripts/block-phy"
cat >"$R/xr/config" <<EOF
XR_DEVS="$XR_DEVS"
XR_NBLK=$XR_NBLK
XR_NETRNG="$XR_NETRNG"
NET_KB=${NET_KB:-2048}
RNG_KB=${RNG_KB:-32}
XR_CASES="${XR_CASES:-}"
KERNEL_generic=$KVER
KERNEL_cloud=$CKVER
GUEST_MEM=${GUEST_MEM:-256}
IMG_MB=${IMG_MB:-64}
KILL_AFTER=${KILL_AFTER:-2}
GUEST_TIMEOUT=${GUEST_TIMEOUT:-900}
VD_EXIT_SECS=${VD_EXIT_SECS:-60}
BOOT_RETRIES=${BOOT_RETRIES:-3}
RETRIES_MAX=${RETRIES_MAX:-4}
SOAK_N=${SOAK_N:-20}
TSC_MODE=${TSC_MODE-native}
SOAK_GUEST=${SOAK_GUEST:-cloud:disk}
VD_ARGS="${VD_ARGS:-}"
EOF
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) >"$OUT/dom0-initrd.gz"
echo "mkimages: $(du -h "$OUT/dom0-initrd.gz" | cut -f1) dom0 initrd, guest kernels $KVER and $CKVER, dom0 kernel $KVER, $NDEVS virtio-mmio windows"
