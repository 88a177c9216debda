#!/bin/sh
# A one-node Ceph cluster for the storage tests: one monitor, one OSD with
# the memstore object store (data in memory), auth none, msgr2 on 127.0.0.1
# only, every file under DIR. About 8 s to start.
#
#   tests/storage/ceph.sh start DIR   prints DIR/ceph.conf once the OSD is up
#                                     and pool "rbd" exists; pids in DIR/*.pid
#   tests/storage/ceph.sh stop DIR    stops the two daemons by their pids
#
# Only ever signals the pids it wrote. Needs ceph-mon, ceph-osd, ceph-common.
set -eu

cmd=${1:-} dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

stop() {
	for p in osd mon; do
		[ -f "$dir/$p.pid" ] || continue
		pid=$(cat "$dir/$p.pid")
		kill -CONT "$pid" 2>/dev/null || true # a test may have stopped it
		kill -TERM "$pid" 2>/dev/null || true
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
		kill -KILL "$pid" 2>/dev/null || true
		rm -f "$dir/$p.pid"
	done
}

if [ "$cmd" = stop ]; then
	stop
	exit 0
fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
for t in ceph-mon ceph-osd monmaptool ceph rbd; do
	command -v $t >/dev/null || { echo "ceph.sh: $t missing (scripts/deps.sh installs it)" >&2; exit 1; }
done

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
conf=$dir/ceph.conf
try=0
while :; do
	try=$((try + 1))
	rm -rf "$dir/mon" "$dir/osd" "$dir/run" "$dir/log"
	mkdir -p "$dir/mon" "$dir/osd" "$dir/run" "$dir/log"
	# a port nobody listens on (another run, another cluster)
	port=$(( (($$ + try * 7919) % 20000) + 40000 ))
	fsid=$(cat /proc/sys/kernel/random/uuid)
	cat >"$conf" <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$port
public addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
keyring = /dev/null
osd objectstore = memstore
memstore device bytes = 1073741824
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
run dir = $dir/run
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
mon data = $dir/mon
osd data = $dir/osd
CONF
	monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port]" "$dir/monmap" >/dev/null
	ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" >"$dir/log/mkfs.out" 2>&1
	ceph-mon -c "$conf" -i a -f >"$dir/log/mon.out" 2>&1 &
	echo $! >"$dir/mon.pid"
	if timeout 20 ceph -c "$conf" --connect-timeout 10 osd create >"$dir/log/osd-create.out" 2>&1; then
		break
	fi
	stop
	if [ $try -ge 3 ]; then
		echo "ceph.sh: the monitor did not come up (logs in $dir/log)" >&2
		tail -5 "$dir/log/mon.out" "$dir/log/osd-create.out" >&2 || true
		exit 1
	fi
done
ceph-osd -c "$conf" -i 0 --mkfs >"$dir/log/osd-mkfs.out" 2>&1
ceph-osd -c "$conf" -i 0 -f >"$dir/log/osd.out" 2>&1 &
echo $! >"$dir/osd.pid"
i=0
until timeout 10 ceph -c "$conf" --connect-timeout 5 osd stat 2>/dev/null | grep -q ' 1 up'; do
	i=$((i + 1))
	if [ $i -ge 80 ] || ! kill -0 "$(cat "$dir/osd.pid")" 2>/dev/null; then
		echo "ceph.sh: the OSD did not come up (logs in $dir/log)" >&2
		stop
		exit 1
	fi
	sleep 0.25
done
timeout 30 ceph -c "$conf" osd pool create rbd 8 >/dev/null 2>&1
timeout 30 rbd -c "$conf" pool init rbd
echo "$conf"
