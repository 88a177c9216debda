#!/bin/sh
# /init of the HVM guest of tests/xen-real (busybox). It drives I/O on the
# virtio-blk device that virtiod serves from dom0 and reports on hvc0, which
# xenconsoled in dom0 logs to a file that dom0-test.sh follows.
#
# Options come from the first sector of the disk, where dom0-test.sh writes
# "xr-options: ..." before the guest starts (the boot image, and so the
# kernel command line, is the same for every case); the kernel command line
# may carry them too:
#   xr.case=NAME   label only
#   xr.full=1      also measure throughput, make an ext2 filesystem, copy a file
#   xr.kill=SECS   write unique 4 MiB rounds for SECS seconds (dom0 kills and
#                  restarts virtiod meanwhile), then verify them
#   xr.end=poweroff|busy   busy: keep writing until the domain is destroyed
#   xr.tput=MB     size of the throughput runs (default 8, at most 16)
# Without a backend (the probe case) the guest reports the ACPI device and
# virtio_mmio's probe attempt and powers off.
#
# Machine-readable lines (all start with "XR-G"):
#   XR-G EXPECT off_mb=N len=BYTES md5=HEX   dom0 checks these in the image
#   XR-G FILE name=file.bin md5=HEX           dom0 checks it with debugfs
#   XR-G TPUT op=write|read mb=N secs=S kbps=K
#   XR-G PHASE name                           dom0 reacts to some phases
#   XR-G RESULT PASS | XR-G RESULT FAIL why | XR-G RESULT PROBE ...
#
# Disk layout (MiB): [0,32) ext2, [32,48) throughput, [48,64) kill-window
# rounds (4 slots of 4 MiB), [64,96) patterns at 64, 80 and 92.
PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp /mnt && mount -t tmpfs tmpfs /tmp

up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "XR-G [$(up)] $*"; }
fail() {
	say "RESULT FAIL $*"
	dmesg | tail -n 30 | sed 's/^/XR-G dmesg: /'
	end_guest
}
end_guest() {
	if [ "$END" = busy ]; then busy_loop; fi
	sync
	poweroff -f
	sleep 60
}

CASE=none FULL=0 KILL=0 END=poweroff TPUT=8 want=
parse_opts() {
	for kv in "$@"; do
		case $kv in
		xr.case=*) CASE=${kv#xr.case=} ;;
		xr.full=*) FULL=${kv#xr.full=} ;;
		xr.kill=*) KILL=${kv#xr.kill=} ;;
		xr.end=*) END=${kv#xr.end=} ;;
		xr.tput=*) TPUT=${kv#xr.tput=} ;;
		esac
	done
}
# shellcheck disable=SC2046
parse_opts $(cat /proc/cmdline)
say "PHASE userspace kernel=$(uname -r)"

# 4 MiB of data unique to round $1, written to /tmp/r.bin: a header line
# then random bytes made at boot, cut to 4 MiB.
round_data() {
	{ printf 'virtiod xen-real round %s case %s\n' "$1" "$CASE"; cat /tmp/pat.bin; } |
		head -c 4194304 >/tmp/r.bin
}
md5() { md5sum | cut -d' ' -f1; }
# secs between two uptime readings, and KiB/s for $1 MiB over them
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
kbps() { awk -v m="$1" -v s="$2" 'BEGIN { if (s <= 0) s = 0.01; printf "%d", m * 1024 / s }'; }
drop_caches() {
	blockdev --flushbufs /dev/vda 2>/dev/null
	echo 3 >/proc/sys/vm/drop_caches
}
# write /tmp/r.bin (4 MiB) at MiB offset $1, direct I/O
put4() { dd if=/tmp/r.bin of=/dev/vda bs=1M seek="$1" count=4 oflag=direct conv=notrunc 2>/dev/null; }
get4() { dd if=/dev/vda bs=1M skip="$1" count=4 iflag=direct 2>/dev/null | md5; }

busy_loop() {
	say "PHASE busy-begin"
	r=1000
	while :; do
		round_data $r
		put4 $((48 + 4 * (r % 4))) || say "busy: write error in round $r"
		say "busy round $r written"
		r=$((r + 1))
	done
}

dmesg | grep -E 'Table Upgrade|SSDT.*VIRTOD|LNRO' | sed 's/^/XR-G dmesg: /'
if [ -e /sys/bus/acpi/devices/LNRO0005:00 ]; then
	say "acpi device LNRO0005:00 path=$(cat /sys/bus/acpi/devices/LNRO0005:00/path)"
else
	fail "no ACPI device LNRO0005:00 (SSDT not installed from the initrd?)"
fi
grep -i LNRO /proc/iomem | sed 's/^/XR-G iomem: /'

t0=$(up)
for m in virtio_ring virtio virtio_mmio virtio_blk; do
	insmod /lib/modules/$m.ko || say "insmod $m failed"
done
say "modules loaded in $(elapsed "$t0" "$(up)") s"

if dmesg | grep -q 'virtio-mmio LNRO0005:00: Wrong magic value'; then
	dmesg | grep -iE 'virtio|LNRO' | sed 's/^/XR-G dmesg: /'
	say "RESULT PROBE attempted (no backend: the window reads all-ones)"
	END=poweroff
	end_guest
fi

i=0
while [ ! -b /dev/vda ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i + 1)); done
[ -b /dev/vda ] || fail "no /dev/vda after 120 s"
SECTORS=$(cat /sys/block/vda/size)
opts=$(dd if=/dev/vda bs=512 count=1 iflag=direct 2>/dev/null | tr -d '\000' | head -n 1)
case $opts in
xr-options:*)
	# shellcheck disable=SC2086
	parse_opts ${opts#xr-options:}
	;;
esac
say "PHASE vda-up case=$CASE sectors=$SECTORS irq=$(grep -i virtio /proc/interrupts | tr -s ' ')"
say "options: full=$FULL kill=$KILL end=$END tput=$TPUT"
head -c 4194304 /dev/urandom >/tmp/pat.bin
[ "$SECTORS" -ge 196608 ] || fail "disk too small: $SECTORS sectors (need 96 MiB)"

# --- 1. patterns: write, flush, drop caches, read back -------------------
t0=$(up)
for off in 64 80 92; do
	round_data "pattern-$off"
	put4 $off || fail "pattern write at $off MiB"
	eval "want_$off=$(md5 </tmp/r.bin)"
done
t1=$(up)
drop_caches
for off in 64 80 92; do
	got=$(get4 $off)
	eval "want=\$want_$off"
	[ "$got" = "$want" ] || fail "pattern at $off MiB: read $got, wrote $want"
	say "EXPECT off_mb=$off len=4194304 md5=$want"
done
t2=$(up)
say "patterns verified (write 12 MiB $(elapsed "$t0" "$t1") s, read 12 MiB $(elapsed "$t1" "$t2") s)"

# --- 2. throughput, filesystem ---------------------------------------------
if [ "$FULL" = 1 ]; then
	t0=$(up)
	dd if=/dev/zero of=/dev/vda bs=1M seek=32 count="$TPUT" oflag=direct conv=notrunc 2>/dev/null ||
		fail "throughput write"
	t1=$(up)
	dd if=/dev/vda of=/dev/null bs=1M skip=32 count="$TPUT" iflag=direct 2>/dev/null ||
		fail "throughput read"
	t2=$(up)
	s=$(elapsed "$t0" "$t1"); say "TPUT op=write mb=$TPUT secs=$s kbps=$(kbps "$TPUT" "$s")"
	s=$(elapsed "$t1" "$t2"); say "TPUT op=read mb=$TPUT secs=$s kbps=$(kbps "$TPUT" "$s")"

	t0=$(up)
	mke2fs -q /dev/vda 32768 >/tmp/mkfs.log 2>&1 || { cat /tmp/mkfs.log; fail "mke2fs"; }
	mount -t ext2 /dev/vda /mnt || fail "mount ext2"
	round_data file
	cp /tmp/r.bin /mnt/file.bin || fail "copy into the filesystem"
	fmd5=$(md5 </tmp/r.bin)
	sync
	umount /mnt || fail "umount"
	drop_caches
	mount -t ext2 -o ro /dev/vda /mnt || fail "remount ext2"
	got=$(md5 </mnt/file.bin)
	umount /mnt
	[ "$got" = "$fmd5" ] || fail "file in the filesystem: read $got, wrote $fmd5"
	say "FILE name=file.bin md5=$fmd5"
	say "filesystem made, file copied and verified in $(elapsed "$t0" "$(up)") s"
fi

# --- 3. kill window: dom0 kills and restarts virtiod while this runs -------
if [ "$KILL" -gt 0 ]; then
	say "PHASE kill-window-begin secs=$KILL"
	t0=$(up)
	r=0
	while :; do
		round_data "kill-$r"
		slot=$((48 + 4 * (r % 4)))
		put4 $slot || fail "kill-window write round $r"
		eval "want_$slot=$(md5 </tmp/r.bin)"
		r=$((r + 1))
		[ $r -ge 4 ] && [ "$(elapsed "$t0" "$(up)" | cut -d. -f1)" -ge "$KILL" ] && break
	done
	say "PHASE kill-window-end rounds=$r in $(elapsed "$t0" "$(up)") s"
	drop_caches
	for slot in 48 52 56 60; do
		got=$(get4 $slot)
		eval "want=\$want_$slot"
		[ "$got" = "$want" ] || fail "kill window slot $slot MiB: read $got, wrote $want"
		say "EXPECT off_mb=$slot len=4194304 md5=$want"
	done
	say "kill-window data verified"
fi

say "RESULT PASS"
end_guest
