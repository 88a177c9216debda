#!/bin/busybox sh
# /init of the virtiod guest-test initramfs (busybox-static; no udev, no systemd).
# The host (tests/guest/lib.sh) copies this file into the cpio as /init.
# Parameters come from the kernel command line:
#   vt.test=io|mq|fs|ro|kill|check|demo|verify   what to run
#   vt.mb=N        MiB per data region (io, mq, ro, kill) or total MiB (demo,
#                  verify: bytes read+written by vd-verify)
#   vt.qd=LIST     verify: queue depths (vd-verify --qd), default 1,32
#   vt.dz=1        verify: discarded blocks must read as zeroes
#   vt.serial=S    expected virtio-blk serial (GET_ID); empty: not checked
#   vt.romd5=H     ro: md5 of the first vt.mb MiB that the host wrote
#   vt.secs=N      kill: at most this many seconds of I/O (the host types "stop" earlier)
#   vt.regions=OFF:LEN:MD5,...   check: regions to read back and compare
#   vt.sizes=S1,S2,...  resize: the sizes (512-byte sectors) the disk will
#                  take, in order; at each the new last MiB is written and read back
#   vt.test=net    eth0 (virtio-net): ping the host end, vt.mb MiB each way over
#                  TCP (busybox nc) in vt.streams streams, offloads (ethtool -k),
#                  per-queue counters (ethtool -S); vt.ip=A/N vt.peer=A
#                  vt.offloads=1: segmentation offloads must be on
#   vt.test=rng    /dev/hwrng (virtio-rng): rng_current, vt.kb KiB read
# Output, one line each, parsed by the host:
#   VT-INFO: ...                          progress / information
#   VT-DD: off=<bytes> len=<bytes> md5=<hex>   a region the host must find in the image
#   VT-MQ: ... | VT-FS: ... | VT-RO: ... | VT-IO: ... | VT-PERF: ...
#   VD-VERIFY ...                         vd-verify's own lines (verify)
#   VT-NET: ...                           net: progress the host acts on
#   VT-RESULT: PASS <detail> | VT-RESULT: FAIL <reason>
export PATH=/sbin:/bin LD_LIBRARY_PATH=/lib/x86_64-linux-gnu
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs -o size=400m tmp /tmp

TEST=io MB=4 SERIAL="" ROMD5="" SECS=8 BS=1048576 REGIONS="" QD=1,32 DZ=0 SIZES=
IP=10.213.0.2/24 PEER=10.213.0.1 STREAMS=1 OFFLOADS=0 KB=1024
for a in $(cat /proc/cmdline); do
	case "$a" in
	vt.test=*) TEST=${a#*=} ;;
	vt.mb=*) MB=${a#*=} ;;
	vt.serial=*) SERIAL=${a#*=} ;;
	vt.romd5=*) ROMD5=${a#*=} ;;
	vt.secs=*) SECS=${a#*=} ;;
	vt.regions=*) REGIONS=${a#*=} ;;
	vt.qd=*) QD=${a#*=} ;;
	vt.dz=*) DZ=${a#*=} ;;
	vt.sizes=*) SIZES=${a#*=} ;;
	vt.ip=*) IP=${a#*=} ;;
	vt.peer=*) PEER=${a#*=} ;;
	vt.streams=*) STREAMS=${a#*=} ;;
	vt.offloads=*) OFFLOADS=${a#*=} ;;
	vt.kb=*) KB=${a#*=} ;;
	esac
done

up() { cut -d' ' -f1 /proc/uptime; }
upcs() { # uptime in centiseconds
	u=$(cut -d' ' -f1 /proc/uptime)
	echo $((${u%.*} * 100 + 1${u#*.} - 100))
}
info() { echo "VT-INFO: $*"; }
finish() { # PASS|FAIL detail...
	st=$1
	shift
	[ "$st" = PASS ] || dmesg | sed -n '/Run \/init/,$p' | grep -v '^\[[ 0-9.]*\]  ' |
		tail -n 15 | sed 's/^/VT-DMESG: /'
	echo "VT-RESULT: $st $*"
	sync
	poweroff -f
	sleep 2
	reboot -f
}
fail() { finish FAIL "$*"; }

info "booted Linux $(uname -r) in $(up) s ($(nproc) CPU(s), test $TEST)"
for m in $(cat /lib/modules/order); do
	insmod /lib/modules/$m.ko || fail "insmod $m"
done

# ---------------------------------------------------------------- net / rng
# Ports: the guest sends stream k to PEER:5001+2k, receives it on 5002+2k.
do_net() {
	i=0
	while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 200 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ -e /sys/class/net/eth0 ] || fail "no virtio-net eth0 appeared within 20 s"
	info "eth0: mac $(cat /sys/class/net/eth0/address), features $(cat /sys/class/net/eth0/device/features)"
	ip link set lo up
	ip addr add "$IP" dev eth0 || fail "ip addr add $IP"
	ip link set eth0 up || fail "ip link set eth0 up"
	i=0
	while [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" != 1 ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" = 1 ] || fail "eth0 has no carrier"
	ping -c 3 -W 5 "$PEER" >/tmp/ping 2>&1 || { cat /tmp/ping; fail "ping $PEER"; }
	info "ping: $(grep -a 'packets transmitted' /tmp/ping)"
	ethtool -k eth0 >/tmp/k || fail "ethtool -k eth0"
	off=$(grep -E '^(rx-checksumming|tx-checksumming|tcp-segmentation-offload|generic-receive-offload|scatter-gather):' /tmp/k | tr -s ' ' | tr '\n' ' ')
	echo "VT-NET: offloads $off"
	if [ "$OFFLOADS" = 1 ]; then
		for k in tx-checksumming tcp-segmentation-offload rx-checksumming; do
			grep -q "^$k: on" /tmp/k || fail "ethtool -k: $k is not on"
		done
	fi
	per=$((MB / STREAMS))
	# receive: the host sends once we listen
	k=0
	while [ $k -lt "$STREAMS" ]; do
		# stdin a fifo nc holds open itself: never EOF, so it never
		# half-closes before the host has sent everything
		mkfifo /tmp/hold$k
		(taskset -c $((k % $(nproc))) nc -l -p $((5002 + 2 * k)) <>/tmp/hold$k >/tmp/rx$k 2>/tmp/rxerr$k) &
		k=$((k + 1))
	done
	sleep 0.5
	t0=$(upcs)
	echo "VT-NET: listening"
	wait
	t1=$(upcs)
	k=0
	while [ $k -lt "$STREAMS" ]; do
		echo "VT-NET: rx stream=$k bytes=$(wc -c </tmp/rx$k) md5=$(md5sum </tmp/rx$k | cut -d' ' -f1)"
		rm -f /tmp/rx$k
		k=$((k + 1))
	done
	echo "VT-PERF: rx $((MB * 100 / (t1 - t0 + 1))) MiB/s"
	# transmit: the host listens before the guest boots
	k=0
	while [ $k -lt "$STREAMS" ]; do
		dd if=/dev/urandom of=/tmp/tx$k bs=$BS count=$per 2>/dev/null
		echo "VT-NET: tx stream=$k bytes=$(wc -c </tmp/tx$k) md5=$(md5sum </tmp/tx$k | cut -d' ' -f1)"
		k=$((k + 1))
	done
	t0=$(upcs)
	k=0
	while [ $k -lt "$STREAMS" ]; do
		(taskset -c $((k % $(nproc))) nc "$PEER" $((5001 + 2 * k)) </tmp/tx$k ||
			echo "nc exit $?" >/tmp/txerr$k.fail) &
		k=$((k + 1))
	done
	wait
	t1=$(upcs)
	for f in /tmp/txerr*.fail; do
		[ -e "$f" ] && fail "send: $(cat "$f")"
	done
	echo "VT-PERF: tx $((MB * 100 / (t1 - t0 + 1))) MiB/s"
	ethtool -S eth0 | grep -E '(rx|tx)_queue_[0-9]+_packets' | tr -s ' ' |
		sed 's/^ *//' | tr '\n' ' ' | sed 's/^/VT-NET: queues /'
	echo
	echo "VT-NET: done"
}

do_rng() {
	i=0
	while [ ! -e /dev/hwrng ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	cur=$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)
	info "rng_current '$cur', available '$(cat /sys/class/misc/hw_random/rng_available 2>/dev/null)'"
	case "$cur" in virtio_rng*) ;; *) fail "rng_current is '$cur', not virtio_rng" ;; esac
	t0=$(upcs)
	dd if=/dev/hwrng of=/tmp/r bs=1024 count="$KB" iflag=fullblock 2>/tmp/rerr ||
		fail "reading /dev/hwrng: $(cat /tmp/rerr)"
	t1=$(upcs)
	n=$(wc -c </tmp/r)
	[ "$n" = $((KB * 1024)) ] || fail "read $n bytes from /dev/hwrng, expected $((KB * 1024))"
	# entropy, not a constant: the two halves differ and gzip cannot shrink it
	h1=$(head -c $((n / 2)) /tmp/r | md5sum | cut -d' ' -f1)
	h2=$(tail -c $((n / 2)) /tmp/r | md5sum | cut -d' ' -f1)
	[ "$h1" != "$h2" ] || fail "both halves of what /dev/hwrng gave are equal"
	z=$(gzip -c /tmp/r | wc -c)
	[ "$z" -ge "$n" ] || fail "what /dev/hwrng gave compresses ($n -> $z bytes)"
	echo "VT-RNG: bytes=$n gzip=$z in $((t1 - t0))0 ms"
}

case "$TEST" in
net) do_net; finish PASS "test=net uptime=$(up)s" ;;
rng) do_rng; finish PASS "test=rng uptime=$(up)s" ;;
esac

# the only virtio disk is the device under test
i=0
while [ ! -e /sys/block/vda ] && [ $i -lt 200 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ -e /sys/block/vda ] || fail "no virtio-blk disk appeared within 20 s"
DEV=/dev/vda
SZ=$(blockdev --getsize64 $DEV)
SER=$(cat /sys/block/vda/serial 2>/dev/null)
info "found $DEV: $((SZ / BS)) MiB, serial '$SER', $(ls /sys/block/vda/mq | wc -l) queue(s), read-only=$(cat /sys/block/vda/ro)"
[ -z "$SERIAL" ] || [ "$SER" = "$SERIAL" ] || fail "serial is '$SER', expected '$SERIAL'"

md5() { md5sum | cut -d' ' -f1; }

# read LEN bytes at byte offset OFF with O_DIRECT, print their md5
# (1 MiB requests when both are MiB-aligned, else 4 KiB ones)
rd() { # off len
	if [ $(($1 % BS)) = 0 ] && [ $(($2 % BS)) = 0 ]; then
		dd if=$DEV bs=$BS iflag=direct skip=$(($1 / BS)) count=$(($2 / BS)) 2>/tmp/rderr | md5
	else
		rd4k "$@"
	fi
}
rd4k() { # off len: 4 KiB O_DIRECT reads
	dd if=$DEV bs=4096 iflag=direct,skip_bytes skip=$1 count=$(($2 / 4096)) 2>/tmp/rderr | md5
}

# ---------------------------------------------------------------- io / mq
# NR regions spread over the disk (4 KiB-aligned, not MiB-aligned), each with
# its own random data, written concurrently with O_DIRECT and different
# request sizes, flushed (conv=fsync sends VIRTIO_BLK_T_FLUSH), page cache
# dropped, then read back concurrently with O_DIRECT and compared.  With
# CPUS>1 the writers are pinned round-robin to the CPUs, so that blk-mq maps
# them onto different hardware queues (= virtqueues).
regions() { # prints "idx offset bs" lines
	need=$((MB * BS))
	echo "0 0 1048576"
	echo "1 $(((SZ / 4 / BS) * BS + 4096)) 262144"
	echo "2 $(((SZ / 2 / BS) * BS + 8192)) 65536"
	echo "3 $(((SZ * 3 / 4 / BS) * BS + 12288)) 16384"
	echo "4 $((SZ - need)) 4096"
}

pin() { # cpu command...: run pinned to one CPU when there is more than one
	c=$1
	shift
	if [ "$(nproc)" -gt 1 ]; then taskset -c "$c" "$@"; else "$@"; fi
}

do_regions() {
	need=$((MB * BS))
	ncpu=$(nproc)
	regions >/tmp/regions
	while read -r i off bs; do
		dd if=/dev/urandom of=/tmp/pat$i bs=$BS count=$MB 2>/dev/null
		md5sum </tmp/pat$i | cut -d' ' -f1 >/tmp/want$i
	done </tmp/regions
	t0=$(upcs)
	while read -r i off bs; do
		(pin $((i % ncpu)) dd if=/tmp/pat$i of=$DEV bs=$bs oflag=direct,seek_bytes seek=$off \
			conv=notrunc,fsync 2>/tmp/werr$i || echo "dd exit $?" >>/tmp/werr$i.fail) &
	done </tmp/regions
	wait
	for f in /tmp/werr*.fail; do
		[ -e "$f" ] && fail "write ${f#/tmp/werr}: $(cat ${f%.fail})"
	done
	t1=$(upcs)
	blockdev --flushbufs $DEV
	echo 3 >/proc/sys/vm/drop_caches
	while read -r i off bs; do
		(pin $((i % ncpu)) dd if=$DEV of=/tmp/got$i bs=$bs iflag=direct,skip_bytes,count_bytes \
			skip=$off count=$need 2>/tmp/rerr$i || echo "dd exit $?" >>/tmp/rerr$i.fail) &
	done </tmp/regions
	wait
	for f in /tmp/rerr*.fail; do
		[ -e "$f" ] && fail "read ${f#/tmp/rerr}: $(cat ${f%.fail})"
	done
	t2=$(upcs)
	while read -r i off bs; do
		got=$(md5 </tmp/got$i)
		echo "VT-DD: off=$off len=$need md5=$got bs=$bs"
		[ "$got" = "$(cat /tmp/want$i)" ] || fail "region $i off=$off: read back $got, wrote $(cat /tmp/want$i)"
		rm -f /tmp/got$i
	done </tmp/regions
	info "regions=$(wc -l </tmp/regions) x ${MB} MiB written in $((t1 - t0))0 ms, read in $((t2 - t1))0 ms"
}

# interrupts per virtqueue: "req.N count" (MSI-X vector per queue on virtio-pci)
vq_irqs() {
	awk '/virtio[0-9]*-req\./ { n = 0; for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+$/) n += $i;
		sub(/.*-/, "", $NF); print $NF, n }' /proc/interrupts
}

do_mq() {
	nq=$(ls /sys/block/vda/mq | wc -l)
	[ "$nq" -ge 2 ] || fail "guest sees $nq hardware queue(s), expected 2"
	mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	vq_irqs >/tmp/irq0
	do_regions
	vq_irqs >/tmp/irq1
	bad=""
	for h in /sys/block/vda/mq/*; do
		q=${h##*/}
		cpus=$(cat $h/cpu_list)
		# "run": how often blk-mq ran this hardware queue (dispatched requests to it)
		runs=$(cat /sys/kernel/debug/block/vda/hctx$q/run 2>/dev/null)
		i0=$(awk -v q=req.$q '$1 == q { print $2 }' /tmp/irq0)
		i1=$(awk -v q=req.$q '$1 == q { print $2 }' /tmp/irq1)
		[ "${runs:-0}" -gt 0 ] || bad="$bad queue $q was never run;"
		if [ -s /tmp/irq1 ]; then # an MSI-X vector per queue (virtio-pci)
			irqs=$((${i1:-0} - ${i0:-0}))
			[ $irqs -gt 0 ] || bad="$bad queue $q got no completion interrupt;"
		else
			irqs=n/a # virtio-mmio: one interrupt line for all queues
		fi
		echo "VT-MQ: queue=$q cpus=$cpus runs=$runs irqs=$irqs"
	done
	[ -z "$bad" ] || fail "$bad"
}

# ---------------------------------------------------------------- fs
# ext4 made by the real mke2fs, a tree of files (sizes around block and page
# boundaries, a few MiB-sized, many small ones), sync, umount, e2fsck -f clean,
# remount, every file compared; the host checks the image with e2fsck and
# debugfs afterwards.
do_fs() {
	/sbin/mke2fs -q -F -t ext4 -L vtfs $DEV 2>/tmp/err || fail "mke2fs: $(cat /tmp/err)"
	mount -t ext4 $DEV /mnt 2>/tmp/err || fail "mount: $(cat /tmp/err)"
	mkdir -p /tmp/src/d1/d2/d3
	n=0
	for s in 0 1 511 4095 4096 4097 65536 131073 1048576 3145851; do
		dd if=/dev/urandom of=/tmp/src/f$s bs=$s count=1 2>/dev/null
		n=$((n + 1))
	done
	dd if=/dev/urandom of=/tmp/src/d1/big bs=$BS count=$MB 2>/dev/null
	for i in $(seq 1 200); do
		echo "file $i $(head -c 48 /dev/urandom | md5sum)" >/tmp/src/d1/d2/d3/s$i
	done
	(cd /tmp/src && find . -type f | sort | xargs md5sum) >/tmp/manifest
	cp -a /tmp/src/. /mnt/ || fail "cp to ext4"
	sync
	umount /mnt || fail "umount"
	/sbin/e2fsck -f -n $DEV >/tmp/fsck 2>&1
	rc=$?
	[ $rc = 0 ] || fail "e2fsck -fn exit $rc: $(tail -n 5 /tmp/fsck | tr '\n' ' ')"
	info "fsck: $(tail -n 1 /tmp/fsck)"
	echo 3 >/proc/sys/vm/drop_caches
	mount -t ext4 -o ro $DEV /mnt || fail "remount"
	(cd /mnt && md5sum -c /tmp/manifest >/tmp/check 2>&1) ||
		fail "file contents differ after remount: $(grep -v ': OK' /tmp/check | head -n 3 | tr '\n' ' ')"
	echo "VT-FS: files=$(wc -l </tmp/manifest) manifest=$(md5 </tmp/manifest)"
	echo "VT-FS: file=/d1/big md5=$(md5 </mnt/d1/big)"
	echo "VT-FS: file=/f3145851 md5=$(md5 </mnt/f3145851)"
	umount /mnt
}

# ---------------------------------------------------------------- ro
do_ro() {
	need=$((MB * BS))
	[ "$(cat /sys/block/vda/ro)" = 1 ] || fail "device is not read-only in the guest (/sys/block/vda/ro=0)"
	got=$(rd 0 $need)
	[ "$got" = "$ROMD5" ] || fail "read of the host's pattern: got $got, expected $ROMD5"
	head -c 65536 /dev/urandom >/tmp/pat
	if dd if=/tmp/pat of=$DEV bs=65536 count=1 oflag=direct conv=notrunc 2>/tmp/err; then
		fail "O_DIRECT write to the read-only device succeeded"
	fi
	echo "VT-RO: direct write refused: $(grep -v records /tmp/err | head -n 1)"
	if dd if=/tmp/pat of=$DEV bs=65536 count=1 seek=8 conv=notrunc,fsync 2>/tmp/err; then
		fail "buffered write + fsync to the read-only device succeeded"
	fi
	echo "VT-RO: buffered write refused: $(grep -v records /tmp/err | head -n 1)"
	if mount -t ext4 $DEV /mnt 2>/dev/null; then umount /mnt; fi
	echo 3 >/proc/sys/vm/drop_caches
	got=$(rd 0 $need)
	[ "$got" = "$ROMD5" ] || fail "second read: got $got, expected $ROMD5"
	echo "VT-RO: reads ok md5=$got"
}

# ---------------------------------------------------------------- kill
# NW writers, each cycling over its own region in 1 MiB O_DIRECT chunks, each
# chunk followed by fsync (a FLUSH, which keeps the daemon busy in fdatasync);
# pass p writes chunk c with pattern chunk (c+p) mod n, so a lost or stale write
# shows up.  One reader checks a static region over and over with 4 KiB reads.
# They run until the host types "stop" on the serial console (or SECS pass);
# meanwhile the host SIGKILLs and restarts the backend (QEMU reconnect=1).
do_kill() {
	NW=3
	n=$MB
	need=$((n * BS))
	# reader's static region at the end of the disk
	roff=$(((SZ / BS - n) * BS))
	dd if=/dev/urandom of=/tmp/stat bs=$BS count=$n 2>/dev/null
	dd if=/tmp/stat of=$DEV bs=$BS oflag=direct,seek_bytes seek=$roff conv=notrunc,fsync 2>/dev/null ||
		fail "writing static region"
	swant=$(md5 </tmp/stat)
	for w in $(seq 0 $((NW - 1))); do
		dd if=/dev/urandom of=/tmp/pat$w bs=$BS count=$n 2>/dev/null
	done
	# the host's "stop" line arrives on the console (QEMU's stdin)
	(
		while read -r l </dev/console; do
			case "$l" in *stop*) break ;; esac
		done
		touch /tmp/stop
	) &
	ctl=$!
	workers=""
	end=$(($(upcs) + SECS * 100))
	echo "VT-IO: start uptime=$(up)"
	for w in $(seq 0 $((NW - 1))); do
		(
			base=$((w * n * 2)) # region of writer w, in MiB
			p=0
			while [ ! -e /tmp/stop ] && [ "$(upcs)" -lt $end ]; do
				c=0
				while [ $c -lt $n ]; do
					dd if=/tmp/pat$w of=$DEV bs=$BS count=1 skip=$(((c + p) % n)) seek=$((base + c)) \
						oflag=direct conv=notrunc,fsync 2>/tmp/kerr$w ||
						{ echo "writer $w pass $p chunk $c: $(cat /tmp/kerr$w)" >/tmp/kfail$w; exit 1; }
					c=$((c + 1))
				done
				[ $w = 0 ] && echo "VT-IO: pass=$p uptime=$(up)"
				p=$((p + 1))
			done
			echo $((p - 1)) >/tmp/last$w
		) &
		workers="$workers $!"
	done
	(
		r=0
		while [ ! -e /tmp/stop ] && [ "$(upcs)" -lt $end ]; do
			got=$(rd4k $roff $need)
			[ "$got" = "$swant" ] || { echo "reader pass $r: $got != $swant" >/tmp/kfailr; exit 1; }
			r=$((r + 1))
		done
		echo $r >/tmp/rpasses
	) &
	workers="$workers $!"
	wait $workers # not the console reader, which may still be reading
	kill $ctl 2>/dev/null
	for f in /tmp/kfail*; do [ -e "$f" ] && fail "$(cat $f)"; done
	[ -s /tmp/last0 ] || fail "writer 0 did not finish a pass"
	echo "VT-IO: done uptime=$(up) reader_passes=$(cat /tmp/rpasses)"
	echo 3 >/proc/sys/vm/drop_caches
	for w in $(seq 0 $((NW - 1))); do
		p=$(cat /tmp/last$w)
		: >/tmp/exp
		for c in $(seq 0 $((n - 1))); do
			dd if=/tmp/pat$w bs=$BS count=1 skip=$(((c + p) % n)) 2>/dev/null >>/tmp/exp
		done
		off=$((w * n * 2 * BS))
		want=$(md5 </tmp/exp)
		got=$(rd $off $need)
		echo "VT-DD: off=$off len=$need md5=$got writer=$w passes=$((p + 1))"
		[ "$got" = "$want" ] || fail "writer $w region after $((p + 1)) passes: read $got, expected $want"
	done
	got=$(rd $roff $need)
	echo "VT-DD: off=$roff len=$need md5=$got static"
	[ "$got" = "$swant" ] || fail "static region changed: $got != $swant"
}

# ---------------------------------------------------------------- check
# read back regions an earlier guest wrote (a new frontend connection)
do_check() {
	[ -n "$REGIONS" ] || fail "vt.regions is empty"
	n=0
	for r in $(echo "$REGIONS" | tr ',' ' '); do
		off=${r%%:*} rest=${r#*:}
		len=${rest%%:*} want=${rest#*:}
		got=$(rd "$off" "$len")
		[ "$got" = "$want" ] || fail "region off=$off: read $got, an earlier guest wrote $want"
		n=$((n + 1))
	done
	echo "VT-CHECK: $n regions intact"
}

# ---------------------------------------------------------------- demo
# ext4 on the disk, MB MiB of files written (timed, with fsync), unmounted,
# caches dropped, read back (timed) and compared.
do_demo() {
	nf=4
	per=$((MB / nf))
	/sbin/mke2fs -q -F -t ext4 -L demo $DEV 2>/tmp/err || fail "mke2fs: $(cat /tmp/err)"
	mount -t ext4 $DEV /mnt || fail "mount"
	info "made an ext4 filesystem on $DEV and mounted it"
	for i in $(seq 1 $nf); do
		dd if=/dev/urandom of=/tmp/f$i bs=$BS count=$per 2>/dev/null
	done
	(cd /tmp && md5sum f*) >/tmp/manifest
	t0=$(upcs)
	for i in $(seq 1 $nf); do
		dd if=/tmp/f$i of=/mnt/f$i bs=$BS conv=fsync 2>/tmp/err || fail "write /mnt/f$i: $(cat /tmp/err)"
	done
	t1=$(upcs)
	w=$((t1 - t0))
	[ $w -gt 0 ] || w=1
	info "wrote $MB MiB ($nf files of $per MiB, fsync each) in ${w}0 ms: $((MB * 100 / w)) MB/s"
	umount /mnt || fail "umount"
	echo 3 >/proc/sys/vm/drop_caches
	mount -t ext4 -o ro $DEV /mnt || fail "remount"
	t2=$(upcs)
	for i in $(seq 1 $nf); do cat /mnt/f$i >/dev/null; done
	t3=$(upcs)
	r=$((t3 - t2))
	[ $r -gt 0 ] || r=1
	info "unmounted, dropped caches, remounted, read $MB MiB back in ${r}0 ms: $((MB * 100 / r)) MB/s"
	(cd /mnt && md5sum -c /tmp/manifest >/tmp/check 2>&1) || fail "read-back differs: $(grep -v ': OK' /tmp/check | head -n 2)"
	info "all $nf files read back identical (md5)"
	while read -r h f; do echo "VT-FS: file=/$f md5=$h"; done </tmp/manifest
	umount /mnt
	/sbin/e2fsck -f -n $DEV >/tmp/fsck 2>&1 || fail "e2fsck: $(tail -n 3 /tmp/fsck | tr '\n' ' ')"
	info "e2fsck: filesystem clean ($(tail -n 1 /tmp/fsck | sed 's/.*: //'))"
	echo "VT-PERF: mib=$MB write_mbs=$((MB * 100 / w)) read_mbs=$((MB * 100 / r))"
}

# ---------------------------------------------------------------- verify
# vd-verify (tests/verify, static): O_DIRECT native-AIO reads, writes,
# flushes, discards and write-zeroes at each queue depth of vt.qd, every read
# checked here; it leaves its record at the end of the disk and prints
# "VD-VERIFY RESULT ... record_sum=...", which the host hands to
# `vd-verify check --console`.
do_verify() {
	[ -x /bin/vd-verify ] || fail "no /bin/vd-verify in the initramfs (build it: make build/tests/vd-verify)"
	dz=""
	[ "$DZ" = 1 ] && dz=--discard-zeroes
	/bin/vd-verify run --dev $DEV --bytes ${MB}M --qd "$QD" --progress 3 $dz
	rc=$?
	[ $rc = 0 ] || fail "vd-verify run exit $rc"
}

# ---------------------------------------------------------------- resize
# The host changes the disk's size while the guest runs (virtiod resize, or
# the image file grown behind the daemon's back); the guest must see each
# size in /sys/block/vda/size (the config change interrupt, nothing else),
# and its last MiB must take a write and give it back.
do_resize() {
	echo "VT-RESIZE: size=$(cat /sys/block/vda/size)"
	for want in $(echo "$SIZES" | tr ',' ' '); do
		i=0
		while [ "$(cat /sys/block/vda/size)" != "$want" ] && [ $i -lt 600 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		got=$(cat /sys/block/vda/size)
		[ "$got" = "$want" ] || fail "/sys/block/vda/size stayed $got, expected $want within 60 s"
		off=$((want * 512 - BS))
		dd if=/dev/urandom of=/tmp/last bs=$BS count=1 2>/dev/null
		dd if=/tmp/last of=$DEV bs=$BS seek=$((off / BS)) count=1 oflag=direct conv=fsync 2>/tmp/err ||
			fail "write of the last MiB at $want sectors: $(cat /tmp/err)"
		h=$(md5 </tmp/last)
		[ "$(rd $off $BS)" = "$h" ] || fail "the last MiB at $want sectors reads back differently"
		echo "VT-DD: off=$off len=$BS md5=$h"
		echo "VT-RESIZE: size=$want"
	done
}

case "$TEST" in
io) do_regions ;;
mq) do_mq ;;
fs) do_fs ;;
ro) do_ro ;;
kill) do_kill ;;
check) do_check ;;
demo) do_demo ;;
verify) do_verify ;;
resize) do_resize ;;
*) fail "unknown vt.test=$TEST" ;;
esac
finish PASS "test=$TEST uptime=$(up)s"
