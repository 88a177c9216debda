#!/bin/sh
# /init of every guest of tests/xen-real-arm64 (xl guests and dom0less ones,
# Debian's kernel or the grant-DMA one): loads virtio_mmio and virtio_blk,
# runs vd-verify on /dev/vda, prints "XA-G <case> ..." lines on its console
# and powers off. The backend checks the image afterwards against the record
# vd-verify leaves at the end of the disk (the sum on the SUM line).
# Kernel options: xa.case=NAME, xa.wait=1 (dom0less: the backend starts
# after us), xa.base=ADDR (the virtio-mmio window; 0x2000000), xa.secs=S
# (the verifier's time limit; 20).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
CASE=guest WAIT=0 BASE=0x2000000 SECS=20
for kv in $(cat /proc/cmdline); do
	case $kv in
	xa.case=*) CASE=${kv#xa.case=} ;;
	xa.secs=*) SECS=${kv#xa.secs=} ;;
	xa.wait=*) WAIT=${kv#xa.wait=} ;;
	xa.base=*) BASE=${kv#xa.base=} ;;
	esac
done
say() { echo "XA-G $CASE $*"; }
fail() {
	say "RESULT FAIL $*"
	dmesg | tail -n 30 | sed "s/^/XA-G $CASE dmesg: /"
	for f in /sys/bus/virtio/devices/virtio0/status /sys/bus/virtio/devices/virtio0/features; do
		[ -f $f ] && say "$f: $(cat $f)"
	done
	grep virtio /proc/interrupts | sed "s/^/XA-G $CASE irq: /"
	poweroff -f
}
say "PHASE userspace uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r)"

if [ "$WAIT" = 1 ]; then
	# A dom0less guest starts with dom0, before its backend: on Arm an
	# access to a window no IOREQ server claims is a data abort. From user
	# space that only kills the reading process, so poll with devmem until
	# the device answers with the virtio magic ("virt"), then probe.
	i=0 v=
	while [ $i -lt 900 ]; do
		v=$(devmem "$BASE" 32 2>/dev/null)
		[ "$v" = 0x74726976 ] && break
		i=$((i + 1))
		sleep 0.3
	done
	[ "$v" = 0x74726976 ] || fail "no virtio-mmio device answered at $BASE"
	say "backend answered after $i polls"
fi

M=/lib/modules/$(uname -r)
# in dependency order (Debian builds virtio and virtio_ring in)
for m in virtio_ring virtio virtio_mmio; do
	[ -f "$M/$m.ko" ] && { insmod "$M/$m.ko" || fail "insmod $m"; }
done
# virtio_blk's probe reads the partition table: if the device never
# completes a request, insmod never returns. Say so instead of hanging.
insmod "$M/virtio_blk.ko" &
i=0
while [ ! -b /dev/vda ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
[ -b /dev/vda ] || fail "no /dev/vda after 30 s"
wait
V=/sys/bus/virtio/devices/virtio0
# features: one character per bit from bit 0; bit 33 is ACCESS_PLATFORM
f=$(cat $V/features 2>/dev/null)
# the device-tree node the toolstack (or the dom0less partial tree) wrote,
# and whether it links the device to xen,grant-dma
dt=$(cd /proc/device-tree && ls -d virtio@* passthrough/virtio@* 2>/dev/null | head -n 1)
iommus=no
[ -n "$dt" ] && [ -e "/proc/device-tree/$dt/iommus" ] && iommus=yes
say "PHASE vda-up size_sectors=$(cat /sys/block/vda/size) access_platform=$(echo "$f" | cut -c34) irq='$(grep virtio /proc/interrupts | tr -s ' ')'"
say "DT dt=$dt iommus=$iommus" # short: Xen's PL011 emulation cuts lines at 128

# -------------------------------------------------------------- the I/O
# the guest verifier (tests/verify): O_DIRECT reads, writes, flushes,
# discards and write-zeroes of 512 B..1 MiB at in-page offsets, qd 1 and 32,
# every read checked, then its record at the end of the disk for the backend
[ -x /bin/vd-verify ] || fail "no /bin/vd-verify in the initrd"
/bin/vd-verify run --dev /dev/vda --seconds "$SECS" --progress 0 >/tmp/verify.log 2>&1
rc=$?
sed "s/^/XA-G $CASE verify: /" /tmp/verify.log | tail -n 30
# the record sum alone on a short line: a dom0less guest's console (Xen's
# PL011 emulation) cuts long lines
say "SUM $(grep -o 'VD-VERIFY RESULT .*' /tmp/verify.log | tail -n 1 | sed -n 's/.*record_sum=\([0-9a-f]*\).*/\1/p')"
[ $rc = 0 ] || fail "vd-verify exited $rc"
say "IO $(grep -o 'VD-VERIFY RESULT [A-Z]*' /tmp/verify.log | tail -n 1)"
say "interrupts after I/O: $(grep virtio /proc/interrupts | tr -s ' ')"
say "RESULT PASS"
sync
poweroff -f
