#!/bin/sh
# /init of the driver domain of tests/xen-real-arm64 (an unprivileged domU,
# Debian's kernel): serves the virtio disks that the toolstack assigns to it
# with `virtiod xen-watch`, then checks the guest's image here, where it
# lives. Reports on its console (hvc0, logged by xenconsoled in dom0) as
# "XA-DD ..." lines; dom0 destroys it when done.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export LD_LIBRARY_PATH=/lib/aarch64-linux-gnu
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o size=160m tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /srv /run/virtiod
mount -t tmpfs -o size=96m tmpfs /srv
say() { echo "XA-DD $*"; }
# Linux (6.1.y with the privcmd restriction fix, as Debian's) limits
# privcmd in a domU to the domain its xenstore key "target" names, read
# once when xenstore comes up; a driver domain learns its guests later, so
# privcmd has to be loaded unrestricted. Xen still allows dm_ops only on
# the guests this domain is the device model of.
insmod /lib/modules/xen-privcmd.ko unrestricted=1 || say "insmod xen-privcmd failed"
for m in xen-evtchn xen-gntdev xen-gntalloc; do
	insmod /lib/modules/$m.ko || say "insmod $m failed"
done
SELF=$(xenstore-read domid 2>/tmp/xs.err) || say "xenstore-read domid failed: $(cat /tmp/xs.err)"
IMG=/srv/xa-guest.img
dd if=/dev/zero of=$IMG bs=1M count=0 seek=64 2>/dev/null
# vd-count.so counts virtiod's foreign and grant mapping calls per guest
VD_COUNT_FILE=/tmp/vd-count LD_PRELOAD=/usr/lib/vd-count.so \
	virtiod xen-watch --backend-domid "$SELF" >/tmp/vd.log 2>&1 &
WATCH=$!
# virtiod's log, live on our console (dom0 logs it)
tail -n +1 -f /tmp/vd.log 2>/dev/null | sed 's/^/XA-DD virtiod: /' &
i=0
while ! grep -q watching /tmp/vd.log && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
say "READY domid=$SELF watcher=$(grep -c watching /tmp/vd.log)"
# the device process ends when the guest's nodes go (the guest is destroyed)
i=0
while ! grep -qE 'process [0-9]+ (ended|killed)' /tmp/vd.log && [ $i -lt 3000 ]; do sleep 0.2; i=$((i + 1)); done
child=$(grep -oE 'process [0-9]+ (ended \([0-9-]+\)|killed by.*)' /tmp/vd.log | tail -n 1 | sed 's/process [0-9]* //; s/ /-/g')
say "device-process=${child:-running}"
say "COUNTS $(/usr/bin/xa-counts.sh /tmp/vd-count | tr "\n" ";")"
# the guest's record sum, from dom0 (which follows the guest's console)
i=0
while ! sum=$(xenstore-read data/xa-sum 2>/dev/null) && [ $i -lt 600 ]; do sleep 0.2; i=$((i + 1)); done
/usr/bin/vd-verify check --image $IMG --expect-sum "$sum" >/tmp/check.log 2>&1
rc=$?
sed 's/^/XA-DD check: /' /tmp/check.log | tail -n 12
out="$(grep -o 'VD-VERIFY CHECK [A-Z]*' /tmp/check.log | tail -n 1) sum=$sum"
if [ $rc = 0 ]; then say "CHECK PASS $out"; else say "CHECK FAIL $out"; fi
say "DONE"
kill -TERM $WATCH 2>/dev/null
while :; do sleep 60; done
