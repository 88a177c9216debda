#!/bin/sh
# /init of the busybox dom0 of tests/xen-real-arm64: brings up the Xen
# toolstack from the initramfs, runs dom0-test.sh (the cases), then reboots,
# which ends QEMU (-no-reboot). Everything goes to hvc0 -> Xen's console ->
# QEMU's serial port.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin:/usr/lib/xen-4.17/bin
export LD_LIBRARY_PATH=/lib/aarch64-linux-gnu
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts
mount -t tmpfs -o size=400m tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /run/xen /run/xenstored /var/run/xen /var/log/xen/console
up() { cut -d' ' -f1 /proc/uptime; }
echo "XA-T stage=dom0-userspace uptime=$(up)"
t0=$(up)
for m in xen-evtchn xen-privcmd xenfs xen-gntdev xen-gntalloc; do
	insmod /lib/modules/$m.ko || echo "XA-D insmod $m failed"
done
mount -t xenfs xenfs /proc/xen
xenstored --pid-file /run/xenstored.pid
i=0
while ! xenstore-read / >/dev/null 2>&1 && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
xen-init-dom0 >/tmp/xen-init-dom0.log 2>&1 || cat /tmp/xen-init-dom0.log
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console
echo "XA-D xl info: $(xl info | grep -E '^(xen_version|virt_caps)' | tr -s ' ' | tr '\n' ';')"
echo "XA-T stage=toolstack secs=$(awk -v a="$t0" -v b="$(up)" 'BEGIN{printf "%.1f", b-a}')"
/xa/dom0-test.sh
echo "XA-D dom0-test.sh exited rc=$? after $(up) s of dom0 uptime"
sync
reboot -f
