#!/bin/bash
# Builds what tests/xen-real boots, from Debian packages:
#   $OUT/xen             Xen 4.17 (plain multiboot ELF, for QEMU -kernel)
#   $OUT/dom0-vmlinuz    Debian's generic kernel (PV dom0)
#   $OUT/dom0-initrd.gz  busybox dom0: Xen toolstack, QEMU device model,
#                        hvmloader, SeaBIOS, virtiod and its ldd closure,
#                        e2fsck/debugfs, the guest's boot disk (syslinux,
#                        kernel, initrd), /xr/*
# Packages are fetched with apt-get download into $CACHE/debs once and
# extracted there; later runs work offline.
#
# Env: BUILD (build), VIRTIOD ($BUILD/virtiod; left out when missing),
#      GUEST_FLAVOUR (cloud: LZ4 bzImage, fast to decompress in the nested
#      guest; or generic), BASE (0xfe000000), IRQ (7), XR_CASES, KILL_SECS,
#      KILL_AFTER, TPUT_MB, VD_ARGS, WATCH_ARGS, VD_READY_RE
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-build}
CACHE=${CACHE:-$BUILD/xen-real-cache}
OUT=${OUT:-$BUILD/xen-real}
VIRTIOD=${VIRTIOD:-$BUILD/virtiod}
GUEST_FLAVOUR=${GUEST_FLAVOUR:-cloud}
BASE=${BASE:-0xfe000000}
IRQ=${IRQ:-7}
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
# to make the guest's boot disk: run from the cache, not installed
BOOT_DEBS="syslinux mtools dosfstools"
ALL_DEBS="$XEN_DEBS $KDEBS $BOOT_DEBS"
if ! have_debs "$ALL_DEBS"; then
	echo "mkimages: apt-get download $ALL_DEBS"
	# shellcheck disable=SC2086
	(cd "$CACHE/debs" && { apt-get download $ALL_DEBS 2>/dev/null ||
		{ apt-get update -qq >/dev/null && apt-get download $ALL_DEBS; }; })
fi
# x/: Xen + tools + generic kernel; xc/: cloud kernel
extract() { # $1 dir, rest: package names (of the kernels: boot/ and a few modules)
	local d=$1 stamp
	shift
	stamp="v2 $(cd "$CACHE/debs" && for p in "$@"; do ls "${p}_"*.deb; done | tr '\n' ' ')"
	if [ "$(cat "$CACHE/$d.stamp" 2>/dev/null)" != "$stamp" ]; then
		rm -rf "${CACHE:?}/$d"
		mkdir -p "$CACHE/$d"
		# etc/ and usr/share/ are not needed, and their *.d folders
		# would confuse the Makefile's `find $(BUILD) -name '*.d'`
		for p in "$@"; do
			case $p in
			linux-image-*) set -- ./boot './lib/modules/*/kernel/drivers/xen' \
				'./lib/modules/*/kernel/drivers/virtio' './lib/modules/*/kernel/drivers/block' ;;
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
case $GUEST_FLAVOUR in
cloud) GK=$CACHE/xc ;;
generic) GK=$CACHE/x ;;
*) echo "mkimages: GUEST_FLAVOUR=$GUEST_FLAVOUR: cloud or generic" >&2; exit 2 ;;
esac
KVER=$(ls "$X/lib/modules")
GKVER=$(ls "$GK/lib/modules")

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
sed -e "s/@BASE@/$BASE/" -e "s/@IRQ@/$IRQ/" "$HERE/ssdt-virtio.asl" >"$W/ssdt-virtio.asl"
iasl -p "$W/ssdt-virtio" "$W/ssdt-virtio.asl" >"$W/iasl.log" 2>&1 || { cat "$W/iasl.log"; exit 1; }
mkdir -p "$W/acpi/kernel/firmware/acpi"
cp "$W/ssdt-virtio.aml" "$W/acpi/kernel/firmware/acpi/"
# the table upgrade cpio must be uncompressed and come first
(cd "$W/acpi" && find kernel | cpio -o -H newc --quiet) >"$W/guest-initrd"
G=$W/guest
bb_tree "$G"
mkdir -p "$G/lib/modules"
for m in virtio/virtio_ring virtio/virtio virtio/virtio_mmio block/virtio_blk; do
	cp "$GK/lib/modules/$GKVER/kernel/drivers/$m.ko" "$G/lib/modules/"
done
cp "$HERE/guest-init.sh" "$G/init"
chmod +x "$G/init"
# Every byte of kernel and initrd reaches the guest through SeaBIOS's
# linuxboot.bin reading QEMU's fw_cfg port (Xen's QEMU has no fw_cfg DMA):
# one ioreq round trip to dom0 per page. Keep them small.
(cd "$G" && find . | cpio -o -H newc --quiet | gzip -9) >>"$W/guest-initrd"
# The guest boots from this FAT image, served by the device model as a
# virtio-blk PCI disk (SeaBIOS reads it by DMA; see make_cfg in dom0-test.sh)
ksize=$(stat -c %s "$GK/boot/vmlinuz-$GKVER")
isize=$(stat -c %s "$W/guest-initrd")
mkfs_kb=$(((ksize + isize) / 1024 + 2048))
export MTOOLS_SKIP_CHECK=1
rm -f "$W/guest-boot.img"
"$BT/sbin/mkfs.fat" -C "$W/guest-boot.img" $mkfs_kb >/dev/null
printf 'DEFAULT linux\nLABEL linux\n  KERNEL vmlinuz\n  INITRD initrd\n  APPEND console=hvc0 loglevel=4\n' \
	>"$W/syslinux.cfg"
"$BT/usr/bin/mcopy" -i "$W/guest-boot.img" "$GK/boot/vmlinuz-$GKVER" ::vmlinuz
"$BT/usr/bin/mcopy" -i "$W/guest-boot.img" "$W/guest-initrd" ::initrd
"$BT/usr/bin/mcopy" -i "$W/guest-boot.img" "$W/syslinux.cfg" ::syslinux.cfg
PATH=$BT/usr/bin:$PATH "$BT/usr/bin/syslinux" --install "$W/guest-boot.img"

# ------------------------------------------------------------ dom0 initrd
R=$W/dom0
bb_tree "$R"
mkdir -p "$R"/usr/lib/xen-4.17/{bin,boot} "$R/usr/libexec" "$R/usr/share/seabios" \
	"$R/usr/share/qemu/keymaps" "$R/lib/x86_64-linux-gnu" "$R/lib64" "$R/lib/modules" \
	"$R/etc/xen" "$R/var/lib/xen" "$R/var/lib/xenstored" "$R/var/log/xen/console" "$R/boot" "$R/xr"
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
# image checks in dom0
for b in e2fsck debugfs; do cp "$(command -v $b)" "$R/usr/sbin/"; BINS="$BINS $(command -v $b)"; done
if [ -x "$VIRTIOD" ]; then
	cp "$VIRTIOD" "$R/usr/bin/virtiod"
	BINS="$BINS $VIRTIOD"
	echo "mkimages: virtiod from $VIRTIOD"
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
for m in xen-evtchn xen-privcmd xenfs/xenfs xen-gntdev xen-gntalloc; do
	cp "$X/lib/modules/$KVER/kernel/drivers/xen/$m.ko" "$R/lib/modules/"
done
cp "$W/guest-boot.img" "$R/boot/guest-boot.img"
touch "$R/etc/xen/xl.conf" # else every xl command warns
cp "$HERE/dom0-init.sh" "$R/init"
cp "$HERE/dom0-test.sh" "$R/xr/dom0-test.sh"
chmod +x "$R/init" "$R/xr/dom0-test.sh"
cat >"$R/xr/config" <<EOF
BASE=$BASE
IRQ=$IRQ
XR_CASES="${XR_CASES:-explicit destroy xenstore}"
GUEST_MEM=${GUEST_MEM:-256}
IMG_MB=96
KILL_SECS=${KILL_SECS:-12}
KILL_AFTER=${KILL_AFTER:-3}
TPUT_MB=${TPUT_MB:-16}
GUEST_TIMEOUT=${GUEST_TIMEOUT:-900}
VD_EXIT_SECS=${VD_EXIT_SECS:-60}
VD_ARGS="${VD_ARGS:-}"
WATCH_ARGS="${WATCH_ARGS:---config /xr/xen-devices.conf}"
VD_READY_RE="${VD_READY_RE:-ready|serving|watching}"
EOF
# x86: the toolstack gives the watcher no window and no IRQ; this mapping
# does. devid 51776 is libxl's number for vdev=xvde: xvda..xvdd of an HVM
# guest are also handed to QEMU as emulated IDE disks, even with
# specification=virtio, so the guest would see the image twice (and SeaBIOS
# would try to boot it).
echo "blk domain=xenstore devid=${XS_DEVID:-51776} base=$BASE irq=$IRQ" >"$R/xr/xen-devices.conf"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) >"$OUT/dom0-initrd.gz"
echo "mkimages: $(du -h "$OUT/dom0-initrd.gz" | cut -f1) dom0 initrd, guest kernel $GKVER ($GUEST_FLAVOUR), dom0 kernel $KVER"
