#!/bin/sh
# virtiod against qemu-storage-daemon under the same vhost-user-blk load
# (`make bench`), and with --selftest the load generator's own correctness
# check for `make check`. Only ever kills the daemons it started.
# BENCH_STORAGE: tmpfs, disk (an image file), nbd (nbdkit's memory plugin
# over a unix socket), rbd (an image in a one-node Ceph cluster started by
# tests/storage/ceph.sh): both daemons are served the same store.
set -eu

BUILD=${BUILD:-build}
VIRTIOD=${VIRTIOD:-$BUILD/virtiod}
LOADGEN=${LOADGEN:-$BUILD/bench/vd-loadgen}
QSD=${QSD:-qemu-storage-daemon}
SECS=${BENCH_SECONDS:-5}
IMAGE_MB=${BENCH_IMAGE_MB:-1024}
# nbd and rbd stores (rbd: in the test cluster's 1 GiB memstore OSD)
NET_MB=${BENCH_NET_MB:-256}
STORAGE=${BENCH_STORAGE:-tmpfs disk}
DISK_DIR=${BENCH_DISK_DIR:-$BUILD}
QSD_AIO=${BENCH_QSD_AIO:-}
ROUNDS=${BENCH_ROUNDS:-1}
RESULTS=${BENCH_RESULTS:-$BUILD/bench/results.txt}

# name: loadgen arguments. 4 KiB random read/write at iodepth 1 and 32 on
# 1 and 2 queues, and 128 KiB sequential read.
ALL_JOBS="4k-randread-qd1-q1:--bs 4k --rwmix 100 --iodepth 1 --queues 1
4k-randread-qd32-q1:--bs 4k --rwmix 100 --iodepth 32 --queues 1
4k-randread-qd1-q2:--bs 4k --rwmix 100 --iodepth 1 --queues 2
4k-randread-qd32-q2:--bs 4k --rwmix 100 --iodepth 32 --queues 2
4k-randwrite-qd1-q1:--bs 4k --rwmix 0 --iodepth 1 --queues 1
4k-randwrite-qd32-q1:--bs 4k --rwmix 0 --iodepth 32 --queues 1
4k-randwrite-qd1-q2:--bs 4k --rwmix 0 --iodepth 1 --queues 2
4k-randwrite-qd32-q2:--bs 4k --rwmix 0 --iodepth 32 --queues 2
128k-seqread-qd8-q1:--bs 128k --rwmix 100 --access seq --iodepth 8 --queues 1"
JOBS=${BENCH_JOBS:-}

say() { echo "bench: $*" >&2; }
die() { say "$*"; exit 2; }

pids=""
tmp=""
ceph_dir=""
cleanup() {
	[ -n "$ceph_dir" ] && "$(dirname "$0")/../tests/storage/ceph.sh" stop "$ceph_dir"
	ceph_dir=""
	for p in $pids; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	pids=""
	[ -n "$tmp" ] && rm -rf "$tmp"
	tmp=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_daemon NAME SOCK LOG CMD...: runs CMD in the background, waits for
# its socket; its pid goes to $bpid (not printed: a $(...) subshell would
# make it a grandchild we cannot wait for).
start_daemon() {
	name=$1 sock=$2 log=$3
	shift 3
	rm -f "$sock"
	"$@" >"$log" 2>&1 &
	p=$!
	pids="$pids $p"
	i=0
	while [ ! -S "$sock" ]; do
		if ! kill -0 "$p" 2>/dev/null || [ $i -ge 100 ]; then
			say "$name did not come up; its log ($log):"
			cat "$log" >&2
			return 1
		fi
		sleep 0.05
		i=$((i + 1))
	done
	bpid=$p
}

stop_daemon() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	np=""
	for p in $pids; do [ "$p" = "$1" ] || np="$np $p"; done
	pids=$np
}

# start_backend KIND IMAGE DIRECT(0|1) SOCK LOG: sets $bpid. IMAGE is
# virtiod's --disk; qsd takes $QSD_BLOCKDEV where set (a network store).
# Queues: $NQ (default 2).
start_backend() {
	case $1 in
	virtiod)
		d=""
		[ "$3" = 1 ] && d=--direct
		start_daemon virtiod "$4" "$5" "$VIRTIOD" blk --socket-path "$4" \
			--disk "$2" --num-queues "${NQ:-2}" $d
		;;
	qsd)
		c=off
		[ "$3" = 1 ] && c=on
		aio=""
		[ -n "$QSD_AIO" ] && aio=",aio=$QSD_AIO"
		# locking=off: virtiod has the same image open.
		start_daemon qemu-storage-daemon "$4" "$5" "$QSD" \
			--blockdev "${QSD_BLOCKDEV:-driver=file,node-name=disk0,filename=$2,cache.direct=$c,locking=off$aio}" \
			--export "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=$4,writable=on,num-queues=${NQ:-2}"
		;;
	esac
}

kv() { # kv KEY LINE
	echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

have_qsd() { command -v "$QSD" >/dev/null 2>&1; }

# ------------------------------------------------------------ selftest
# expect RC DESCRIPTION CMD...: the step passes if CMD exits RC.
expect() {
	want=$1 what=$2
	shift 2
	if "$@" >"$tmp/out" 2>&1; then rc=0; else rc=$?; fi
	if [ "$rc" = "$want" ]; then
		passed=$((passed + 1))
		echo "selftest $b: ok: $what"
	else
		failed=$((failed + 1))
		echo "selftest $b: FAILED: $what (exit $rc, want $want)"
		sed 's/^/    /' "$tmp/out"
	fi
}
lg() { "$LOADGEN" --socket "$sock" --backend-pid "$pid" "$@"; }

selftest() {
	[ -x "$LOADGEN" ] || die "$LOADGEN not built (make BUILD=$BUILD)"
	[ -x "$VIRTIOD" ] || die "$VIRTIOD not built"
	base=/dev/shm
	[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
	tmp=$(mktemp -d "$base/vd-selftest.XXXXXX")
	passed=0 failed=0
	backends=virtiod
	have_qsd && backends="$backends qsd"
	for b in $backends; do
		img=$tmp/$b.img sock=$tmp/$b.sock
		truncate -s 64M "$img"
		start_backend "$b" "$img" 0 "$sock" "$tmp/$b.log" || {
			failed=$((failed + 1))
			continue
		}
		pid=$bpid
		expect 0 "pattern written through the backend, 2 queues" \
			lg --once --access seq --rwmix 0 --bs 64k --iodepth 8 --queues 2
		expect 0 "image file holds the pattern at the right offsets" \
			"$LOADGEN" --check-image "$img"
		expect 0 "every 4 KiB block reads back right, 2 queues" \
			lg --once --access seq --rwmix 100 --verify 1 --iodepth 16 --queues 2
		expect 0 "random 50/50 read/write, every read checked" \
			lg --seconds 1 --rwmix 50 --verify 1 --iodepth 16 --queues 2
		expect 0 "16 KiB random 70/30 without EVENT_IDX" \
			lg --seconds 1 --rwmix 70 --verify 1 --bs 16k --iodepth 4 --no-event-idx
		# One wrong sector in the file must be caught through the backend.
		printf 'corrupt!' | dd of="$img" bs=1 seek=$((33 * 1048576 + 520)) \
			conv=notrunc status=none
		expect 1 "a corrupted sector is reported" \
			lg --once --access seq --rwmix 100 --verify 1 --iodepth 8
		stop_daemon "$pid"
	done
	echo "selftest: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}

# ------------------------------------------------------------ benchmark
# For each storage/job/backend, the round with the median IOPS (rows kept
# whole so a row's latency and CPU belong to the same run), in run order.
median_rows() {
	sort -s -k1,3 -k5,5n "$RESULTS" | awk '
	function flush() { if (cnt) print rows[int((cnt - 1) / 2)]; cnt = 0 }
	{ key = $1 " " $2 " " $3; if (key != last) { flush(); last = key }
	  rows[cnt++] = $0 }
	END { flush() }' | awk 'NR == FNR { m[$1 " " $2 " " $3] = $0; next }
	{ k = $1 " " $2 " " $3; if (k in m) { print m[k]; delete m[k] } }' - "$RESULTS"
}

# "storage job ratio" for each pair: the median over rounds of virtiod's
# IOPS over qsd's in the same round. The two runs of a round are adjacent
# in time, so the pairing cancels most of the drift a shared machine has.
paired_ratios() {
	awk '
	{ k = $1 " " $2; if (!(k in seen)) { seen[k] = 1; order[n++] = k }
	  iops[k, $3, $4] = $5; if ($4 > maxr[k]) maxr[k] = $4 }
	END {
		for (i = 0; i < n; i++) {
			k = order[i]; m = 0
			for (r = 1; r <= maxr[k]; r++)
				if (iops[k, "virtiod", r] > 0 && iops[k, "qsd", r] > 0) {
					v = iops[k, "virtiod", r] / iops[k, "qsd", r]
					for (j = m; j > 0 && q[j - 1] > v; j--) q[j] = q[j - 1]
					q[j] = v; m++
				}
			if (m) printf "%s %.2f\n", k, q[int((m - 1) / 2)]
			else printf "%s NA\n", k
		}
	}' "$RESULTS"
}

# The table from $RESULTS; its last line is the 4k-randread-qd32 ratio.
print_table() {
	rounds=$(awk '$4 > m { m = $4 } END { print m + 0 }' "$RESULTS")
	echo
	echo "virtiod vs qemu-storage-daemon: ${SECS} s per job, median of $rounds round(s)"
	echo "(IOPS; latency in us; backend CPU in us per request; ratio: median over rounds of virtiod/qsd IOPS in the same round)"
	median_rows >"$RESULTS.median"
	paired_ratios >"$RESULTS.ratios"
	awk '
	NR == FNR { ratio[$1 " " $2] = $3; next }
	{ key = $1 " " $2; if (!(key in seen)) { seen[key] = 1; order[n++] = key }
	  v[key, $3] = $5 " " $6 " " $7 " " $9 }
	END {
		printf "%-6s %-21s %9s %8s %8s %7s  %9s %8s %8s %7s  %6s\n",
			"store", "job", "vd IOPS", "vd p50", "vd p99", "vd CPU",
			"qsd IOPS", "qsd p50", "qsd p99", "qsd CPU", "ratio"
		for (i = 0; i < n; i++) {
			split(order[i], k, " ")
			split(v[order[i], "virtiod"], a, " ")
			split(v[order[i], "qsd"], b, " ")
			r = order[i] in ratio ? ratio[order[i]] : "NA"
			printf "%-6s %-21s %9d %8.1f %8.1f %7s  %9d %8.1f %8.1f %7s  %6s\n",
				k[1], k[2], a[1], a[2], a[3], a[4], b[1], b[2], b[3], b[4], r
		}
	}' "$RESULTS.ratios" "$RESULTS.median"
	# The target is defined on tmpfs; fall back to the first storage run.
	ref=tmpfs
	grep -q "^tmpfs 4k-randread-qd32-q1 " "$RESULTS" || ref=$(awk '{ print $1; exit }' "$RESULTS")
	ratio=$(awk -v s="$ref" '$1 == s && $2 == "4k-randread-qd32-q1" { print $3 }' "$RESULTS.ratios")
	echo "virtiod/qsd 4k-randread-qd32 IOPS ratio: ${ratio:-NA}"
}

bench() {
	[ -x "$LOADGEN" ] || die "$LOADGEN not built"
	[ -x "$VIRTIOD" ] || die "$VIRTIOD not built"
	have_qsd || die "$QSD not found (Debian package qemu-system-common)"
	mkdir -p "$(dirname "$RESULTS")"
	: >"$RESULTS"
	tmp=$(mktemp -d /dev/shm/vd-bench.XXXXXX)
	fails=0
	jobs_list=$ALL_JOBS
	if [ -n "$JOBS" ]; then
		jobs_list=$(echo "$ALL_JOBS" | while IFS= read -r l; do
			for j in $JOBS; do
				if [ "${l%%:*}" = "$j" ]; then echo "$l"; fi
			done
		done)
		[ -n "$jobs_list" ] || die "BENCH_JOBS: no job named $JOBS"
	fi
	say "$(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
	for st in $STORAGE; do
		direct=0 NQ=2 QSD_BLOCKDEV="" mk=1
		case $st in
		nbd)
			# multi-conn: virtiod's two queues are two connections
			start_daemon nbdkit "$tmp/nbd.sock" "$tmp/nbdkit.log" \
				nbdkit -f -U "$tmp/nbd.sock" memory "size=${NET_MB}M" || exit 2
			nbdpid=$bpid
			img="nbd+unix:///?socket=$tmp/nbd.sock" mk=0
			QSD_BLOCKDEV="driver=nbd,node-name=disk0,server.type=unix,server.path=$tmp/nbd.sock"
			;;
		rbd)
			# one queue: virtiod serves a writable RBD image with one
			ceph_dir=$tmp/ceph
			conf=$("$(dirname "$0")/../tests/storage/ceph.sh" start "$ceph_dir") || die "the Ceph cluster did not start"
			rbd -c "$conf" create --size "${NET_MB}M" rbd/bench || die "rbd create failed"
			img="rbd:rbd/bench:conf=$conf" mk=0 NQ=1
			QSD_BLOCKDEV="driver=rbd,node-name=disk0,pool=rbd,image=bench,conf=$conf"
			;;
		tmpfs) img=$tmp/disk.img ;;
		disk)
			mkdir -p "$DISK_DIR"
			img=$DISK_DIR/vd-bench-disk.img
			[ "$(stat -f -c %T "$DISK_DIR")" = tmpfs ] &&
				say "warning: $DISK_DIR is tmpfs; set BENCH_DISK_DIR to a real disk"
			if dd if=/dev/zero of="$img" bs=4096 count=1 oflag=direct status=none 2>/dev/null; then
				direct=1
			else
				say "O_DIRECT not available in $DISK_DIR; disk run uses the page cache"
			fi
			;;
		*) die "BENCH_STORAGE: unknown '$st' (tmpfs, disk, nbd, rbd)" ;;
		esac
		say "$st: store $img, O_DIRECT=$direct, $NQ queue(s)"
		[ "$mk" = 0 ] || "$LOADGEN" --make-image "$img" --size "${IMAGE_MB}M" || die "cannot create $img"
		[ "$direct" = 1 ] && sync
		start_backend virtiod "$img" $direct "$tmp/v.sock" "$tmp/virtiod-$st.log" || exit 2
		vpid=$bpid
		# A network store gets the pattern the reads check through virtiod.
		if [ "$mk" = 0 ] && ! "$LOADGEN" --socket "$tmp/v.sock" --backend-pid "$vpid" --once \
			--access seq --rwmix 0 --bs 128k --iodepth 8 --queues 1 >"$tmp/fill.log" 2>&1; then
			sed 's/^/    /' "$tmp/fill.log" >&2
			die "$st: filling the store failed"
		fi
		start_backend qsd "$img" $direct "$tmp/q.sock" "$tmp/qsd-$st.log" || exit 2
		qpid=$bpid
		n=0
		round=1
		while [ "$round" -le "$ROUNDS" ]; do
		while IFS= read -r line; do
			name=${line%%:*} args=${line#*:}
			case "$NQ $args" in "1 "*"--queues 2"*) continue ;; esac
			# Alternate who goes first so drift (thermal, neighbours)
			# does not always favour the same backend.
			order="virtiod qsd"
			[ $((n % 2)) = 1 ] && order="qsd virtiod"
			n=$((n + 1))
			for b in $order; do
				if [ "$b" = virtiod ]; then p=$vpid s=$tmp/v.sock; else p=$qpid s=$tmp/q.sock; fi
				# shellcheck disable=SC2086
				if out=$("$LOADGEN" --socket "$s" --backend-pid "$p" --seconds "$SECS" \
					--label "$name" $args 2>"$tmp/err"); then :; else
					say "$st $name $b: loadgen failed:"
					sed 's/^/    /' "$tmp/err" >&2
					fails=$((fails + 1))
				fi
				k=$(echo "$out" | grep '^job=' || true)
				if [ -z "$k" ]; then
					echo "$st $name $b $round 0 0 0 0 NA" >>"$RESULTS"
					continue
				fi
				say "$st $b $(echo "$out" | head -1)"
				echo "$st $name $b $round $(kv iops "$k") $(kv lat_p50_us "$k") $(kv lat_p99_us "$k") $(kv lat_p999_us "$k") $(kv backend_cpu_us_per_req "$k")" >>"$RESULTS"
			done
		done <<EOF
$jobs_list
EOF
		round=$((round + 1))
		done
		stop_daemon "$vpid"
		stop_daemon "$qpid"
		[ "$st" = disk ] && rm -f "$img"
		[ "$st" = nbd ] && stop_daemon "$nbdpid"
		if [ "$st" = rbd ]; then
			"$(dirname "$0")/../tests/storage/ceph.sh" stop "$ceph_dir"
			ceph_dir=""
		fi
	done

	[ "$fails" -eq 0 ] || say "$fails runs failed"
	print_table
	[ "$fails" -eq 0 ]
}

case "${1:-}" in
--selftest) selftest ;;
--table)
	# Reprint the table of an earlier run: --table [RESULTS-FILE]
	[ $# -ge 2 ] && RESULTS=$2
	[ -f "$RESULTS" ] || die "$RESULTS: no results"
	print_table
	;;
"") bench ;;
*) die "usage: scripts/bench.sh [--selftest | --table [RESULTS]]  (env: BUILD BENCH_SECONDS BENCH_IMAGE_MB BENCH_STORAGE BENCH_DISK_DIR BENCH_JOBS BENCH_QSD_AIO)" ;;
esac
