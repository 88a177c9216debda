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
# An rng or a net device that dom0 serves at the last two windows is
# checked while the disks verify (check_rng, check_net); dom0 judges the
# lines they print (it knows whether it served them).
#
# Machine-readable lines (all start with "XR-G"):
#   XR-G PHASE userspace|disks-up|busy-begin   dom0 reacts to some phases
#   XR-G DISK dev=vda serial=S sectors=N features=BITS irq=N
#   XR-G VERIFY-BEGIN dev=vda serial=S
#   XR-G V <serial>: <a line of vd-verify's output>
#   XR-G VERIFY-END dev=vda serial=S rc=N
#   XR-G RNG rng_current=virtio_rng.N bytes=N gzip=N ms=N | RNG FAIL why
#   XR-G NET eth0 mac=M features=BITS | NET ping ... | NET listening |
#   XR-G NET rx bytes=N md5=H | NET tx bytes=N md5=H | NET done | NET FAIL why
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
	# a stalled net device: dom0 reads virtiod's counters and the tap's
	# queues after our RESULT line, while they still serve
	[ -e /tmp/net.fail ] && sleep 15
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

# what the guest knows of its virtio devices when one of them stalls
virtio_state() {
	grep -E 'virtio' /proc/interrupts | tr -s ' ' | sed "s/^/XR-G $1 irq: /"
	for v in /sys/bus/virtio/devices/*; do
		echo "XR-G $1 $(basename "$v"): device=$(cat "$v/device") status=$(cat "$v/status")"
	done
}

# check_rng: /dev/hwrng is the virtio rng and gives RNG_KB KiB of entropy
rng_fail() {
	virtio_state RNG
	say "RNG FAIL $*"
	echo "$*" >/tmp/rng.fail
	exit 1
}
check_rng() {
	i=0
	while [ ! -e /dev/hwrng ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	cur=$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)
	case "$cur" in virtio_rng*) ;; *) rng_fail "rng_current is '$cur', not virtio_rng" ;; esac
	t=$(up)
	# bounded: a request the device never answers would block forever
	timeout "$XTRA_SECS" dd if=/dev/hwrng of=/tmp/rng.bin bs=1024 count="$RNG_KB" iflag=fullblock 2>/tmp/rng.err ||
		rng_fail "reading /dev/hwrng: $(cat /tmp/rng.err)"
	n=$(wc -c </tmp/rng.bin)
	[ "$n" = $((RNG_KB * 1024)) ] || rng_fail "read $n bytes from /dev/hwrng, expected $((RNG_KB * 1024))"
	# entropy, not a constant: the halves differ and gzip cannot shrink it
	h1=$(head -c $((n / 2)) /tmp/rng.bin | md5sum | cut -d' ' -f1)
	h2=$(tail -c $((n / 2)) /tmp/rng.bin | md5sum | cut -d' ' -f1)
	[ "$h1" != "$h2" ] || rng_fail "both halves of what /dev/hwrng gave are equal"
	z=$(gzip -c /tmp/rng.bin | wc -c)
	[ "$z" -ge "$n" ] || rng_fail "what /dev/hwrng gave compresses ($n -> $z bytes)"
	say "RNG rng_current=$cur bytes=$n gzip=$z secs=$(elapsed "$t" "$(up)")"
}

# check_net: eth0 up at NET_IP, ping dom0 (NET_PEER), then NET_KB KiB
# from dom0 (it sends once we say "listening") and NET_KB KiB to dom0
# (it listens from before the guest starts), md5s printed for dom0
NET_IP=10.77.0.2/24 NET_PEER=10.77.0.1
net_fail() {
	virtio_state NET
	grep -E 'eth0' /proc/net/dev | tr -s ' ' | sed 's/^/XR-G NET dev: /'
	say "NET queues: $(ls /sys/class/net/eth0/queues | tr '\n' ' ')"
	say "NET FAIL $*"
	echo "$*" >/tmp/net.fail
	exit 1
}
check_net() {
	i=0
	while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
	[ -e /sys/class/net/eth0 ] || net_fail "no virtio-net eth0 appeared within 20 s"
	say "NET eth0 mac=$(cat /sys/class/net/eth0/address) features=$(cat /sys/class/net/eth0/device/features)"
	ip link set lo up
	ip addr add "$NET_IP" dev eth0 || net_fail "ip addr add $NET_IP"
	ip link set eth0 up || net_fail "ip link set eth0 up"
	i=0
	while [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" != 1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	[ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" = 1 ] || net_fail "eth0 has no carrier"
	ping -c 3 -W 10 "$NET_PEER" >/tmp/ping 2>&1 || net_fail "ping $NET_PEER: $(tail -n 2 /tmp/ping | tr '\n' ' ')"
	say "NET ping $(grep -a 'packets transmitted' /tmp/ping)"
	# stdin a fifo nc holds open itself: it never half-closes early
	mkfifo /tmp/nethold
	t=$(up)
	timeout "$XTRA_SECS" nc -l -p 5002 <>/tmp/nethold >/tmp/net-rx.bin 2>/tmp/net-rx.err &
	sleep 0.5
	say "NET listening"
	wait $!
	rc=$?
	[ $rc = 0 ] || net_fail "receive: nc exit $rc (143: still receiving after $XTRA_SECS s) $(cat /tmp/net-rx.err)"
	say "NET rx bytes=$(wc -c </tmp/net-rx.bin) md5=$(md5sum </tmp/net-rx.bin | cut -d' ' -f1) secs=$(elapsed "$t" "$(up)")"
	dd if=/dev/urandom of=/tmp/net-tx.bin bs=1024 count="$NET_KB" 2>/dev/null
	say "NET tx bytes=$(wc -c </tmp/net-tx.bin) md5=$(md5sum </tmp/net-tx.bin | cut -d' ' -f1)"
	t=$(up)
	timeout "$XTRA_SECS" nc "${NET_PEER}" 5001 </tmp/net-tx.bin 2>/tmp/net-tx.err
	rc=$?
	[ $rc = 0 ] || net_fail "send: nc exit $rc (143: still sending after $XTRA_SECS s) $(cat /tmp/net-tx.err)"
	say "NET done tx secs=$(elapsed "$t" "$(up)")"
	rm -f /tmp/net-rx.bin /tmp/net-tx.bin
}

say "PHASE userspace kernel=$(uname -r)"
dmesg | grep -E 'Table Upgrade|LNRO' | sed 's/^/XR-G dmesg: /'
n=$(ls -d /sys/bus/acpi/devices/LNRO0005:* 2>/dev/null | grep -c .)
[ "$n" = "$XR_NDEVS" ] || fail "$n ACPI LNRO0005 devices, expected $XR_NDEVS (SSDT not installed from the initrd?)"

t0=$(up)
M=/lib/modules/$(uname -r)
for m in virtio_ring virtio virtio_mmio virtio_blk virtio-rng failover net_failover virtio_net; do
	insmod "$M/$m.ko" || say "insmod $m failed"
done
say "modules loaded in $(elapsed "$t0" "$(up)") s"

# a window nobody serves reads all-ones (dom0 serves only disks in some
# cases); none served at all is the probe case
sleep 0.5
if [ "$(dmesg | grep -c 'virtio-mmio LNRO0005:.*Wrong magic value')" = "$XR_NDEVS" ]; then
	dmesg | grep -iE 'virtio|LNRO' | sed 's/^/XR-G dmesg: /'
	say "RESULT PROBE attempted (no backend: the window reads all-ones)"
	end_guest
fi

i=0
while [ "$(ls /sys/block | grep -c '^vd')" -lt "$XR_NBLK" ] && [ $i -lt 600 ]; do
	sleep 0.2
	i=$((i + 1))
done
DISKS=$(ls /sys/block | grep '^vd')
[ "$(echo "$DISKS" | grep -c .)" = "$XR_NBLK" ] ||
	fail "disks: $(echo $DISKS) after 120 s, expected $XR_NBLK"
say "PHASE disks-up n=$XR_NBLK after $(elapsed "$t0" "$(up)") s"
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

# the rng and the net device (virtio device ids 4 and 1), if served, work
# while the disks verify: every device's queues and IRQ line busy at once
has_virtio() { grep -qx "$1" /sys/bus/virtio/devices/*/device 2>/dev/null; }
has_virtio 0x0004 && check_rng &
has_virtio 0x0001 && check_net &

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
for k in rng net; do
	[ -e /tmp/$k.fail ] && bad="$bad $k:$(cat /tmp/$k.fail)"
done
[ -z "$bad" ] || fail "vd-verify failed on$bad"
say "RESULT PASS"
end_guest
