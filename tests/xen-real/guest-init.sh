#!/bin/sh
# /init of the HVM guests of tests/xen-real (busybox). It loads the virtio
# drivers of the running kernel, waits for the virtio-blk disks that
# virtiod serves from dom0, runs vd-verify on every disk at once and
# reports on hvc0, which xenconsoled in dom0 logs to a file that
# dom0-test.sh follows.
#
# What to do comes from each disk's virtio-blk serial, which dom0 sets
# (--serial): "xr.<case>.<slot>[.<flags>]". Flags: b = after verifying,
# keep writing to this disk until the domain is destroyed; x = benchmark
# this disk against the Xen PV disk (xen-blkfront) instead of verifying;
# e = dom0 kills or hands over this disk's virtiod during the verify, so
# verify for EVENT_SECS seconds (VERIFY_ARGS' byte count would let a fast
# run end before the event).
# The boot path (disk or direct, kernel flavour) is the same for every case.
#
# Machine-readable lines (all start with "XR-G"):
#   XR-G PHASE userspace|disks-up|busy-begin   dom0 reacts to some phases
#   XR-G DISK dev=vda serial=S sectors=N features=BITS irq=N
#   XR-G VERIFY-BEGIN dev=vda serial=S
#   XR-G V <serial>: <a line of vd-verify's output>
#   XR-G VERIFY-END dev=vda serial=S rc=N
#   XR-G RESULT PASS | XR-G RESULT FAIL why | XR-G RESULT PROBE ...
# A disk's last "VD-VERIFY RESULT" line carries the record_sum with which
# dom0 checks the image (vd-verify check).
PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp && mount -t tmpfs tmpfs /tmp
. /xr.conf

up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "XR-G [$(up)] $*"; }
BUSY= BENCH=
end_guest() {
	[ -n "$BUSY" ] && busy_loop "$BUSY"
	sync
	poweroff -f
	sleep 60
}
fail() {
	say "RESULT FAIL $*"
	dmesg | tail -n 30 | sed 's/^/XR-G dmesg: /'
	end_guest
}
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# destroy case: write without end until dom0 destroys the domain, in
# [BUSY_MB, BUSY_MB + 8) MiB, beyond the area that disk's verify used
BUSY_MB=32
busy_loop() {
	say "PHASE busy-begin dev=$1"
	head -c 1048576 /dev/urandom >/tmp/busy.bin
	r=1000
	while :; do
		dd if=/tmp/busy.bin of="/dev/$1" bs=1M seek=$((BUSY_MB + r % 8)) count=1 oflag=direct \
			conv=notrunc 2>/dev/null || say "busy: write error in round $r"
		say "busy round $r written"
		r=$((r + 1))
	done
}

# bench DISK: the same workloads on the virtio disk and on the PV disk,
# one after the other per workload; dom0 reads its CPU time at each
# BENCH-BEGIN and BENCH-END line
bench() {
	insmod "$M/xen-blkfront.ko" || fail "insmod xen-blkfront"
	i=0
	while ! ls /sys/block | grep -q '^xvd' && [ $i -lt 300 ]; do sleep 0.2; i=$((i + 1)); done
	pv=$(ls /sys/block | grep '^xvd' | head -n 1)
	[ -n "$pv" ] || fail "no Xen PV disk (xen-blkfront) after 60 s"
	say "PHASE bench virtio=$1 pv=$pv sectors=$(cat /sys/block/$1/size)/$(cat /sys/block/$pv/size)"
	for w in $BENCH_WORKLOADS; do
		for d in $1 $pv; do
			say "BENCH-BEGIN dev=$d workload=$w"
			vd-verify bench --dev /dev/$d --seconds "$BENCH_SECS" --workloads "$w" 2>&1 |
				sed "s/^/XR-G B $d: /"
			say "BENCH-END dev=$d workload=$w"
		done
	done
	say "RESULT PASS bench"
	end_guest
}

say "PHASE userspace kernel=$(uname -r)"
dmesg | grep -E 'Table Upgrade|LNRO' | sed 's/^/XR-G dmesg: /'
n=$(ls -d /sys/bus/acpi/devices/LNRO0005:* 2>/dev/null | grep -c .)
[ "$n" = "$XR_NDEVS" ] || fail "$n ACPI LNRO0005 devices, expected $XR_NDEVS (SSDT not installed from the initrd?)"

t0=$(up)
M=/lib/modules/$(uname -r)
for m in virtio_ring virtio virtio_mmio virtio_blk; do
	insmod "$M/$m.ko" || say "insmod $m failed"
done
say "modules loaded in $(elapsed "$t0" "$(up)") s"

if dmesg | grep -q 'virtio-mmio LNRO0005:.*Wrong magic value'; then
	dmesg | grep -iE 'virtio|LNRO' | sed 's/^/XR-G dmesg: /'
	say "RESULT PROBE attempted (no backend: the window reads all-ones)"
	end_guest
fi

i=0
while [ "$(ls /sys/block | grep -c '^vd')" -lt "$XR_NDEVS" ] && [ $i -lt 600 ]; do
	sleep 0.2
	i=$((i + 1))
done
DISKS=$(ls /sys/block | grep '^vd')
[ "$(echo "$DISKS" | grep -c .)" = "$XR_NDEVS" ] ||
	fail "disks: $(echo $DISKS) after 120 s, expected $XR_NDEVS"
say "PHASE disks-up n=$XR_NDEVS after $(elapsed "$t0" "$(up)") s"
for d in $DISKS; do
	s=$(cat /sys/block/$d/serial 2>/dev/null)
	v=$(basename "$(readlink /sys/block/$d/device)")
	say "DISK dev=$d serial=$s sectors=$(cat /sys/block/$d/size)" \
		"features=$(cat /sys/bus/virtio/devices/$v/features)" \
		"irq=$(grep " $v\$" /proc/interrupts | tr -s ' ' | cut -d' ' -f2-4)"
	case $s in
	xr.*.*.*b*) BUSY=$d ;;
	xr.*.*.*x*) BENCH=$d ;;
	esac
done
[ -n "$BENCH" ] && bench "$BENCH"

# every disk at once: the drivers, queues and IRQ lines of all devices
# are busy together, as in a guest with several disks
for d in $DISKS; do
	s=$(cat /sys/block/$d/serial)
	(
		a=$VERIFY_ARGS
		case $s in xr.*.*.*e*) a="$a --bytes 4G --seconds $EVENT_SECS" ;; esac
		# the busy writes after the verify stay out of its area
		case $s in xr.*.*.*b*) a="$a --area-size ${BUSY_MB}M" ;; esac
		say "VERIFY-BEGIN dev=$d serial=$s"
		# shellcheck disable=SC2086
		{ vd-verify run --dev /dev/$d $a 2>&1; echo $? >/tmp/$d.rc; } |
			sed "s/^/XR-G V $s: /"
		say "VERIFY-END dev=$d serial=$s rc=$(cat /tmp/$d.rc)"
	) &
done
wait
bad=
for d in $DISKS; do
	rc=$(cat /tmp/$d.rc 2>/dev/null)
	[ "$rc" = 0 ] || bad="$bad $d:rc=${rc:-none}"
done
[ -z "$bad" ] || fail "vd-verify failed on$bad"
say "RESULT PASS"
end_guest
