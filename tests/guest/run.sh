#!/bin/bash
# tests/guest/run.sh - real-client tests: QEMU (vhost-user frontend) boots a
# Linux guest whose disk is served by virtiod over vhost-user-blk; the guest
# does I/O and checks it, the host checks the image file.  `make check-guest`.
#
#   tests/guest/run.sh [-l] [-k] [CASE...]     (default: every case)
#     -l  list the cases      -k  keep every case's directory (logs, image)
#
# One line per case (PASS/FAIL, wall time, detail), then "N passed, N failed".
# Exit status 0 only if every case passed.  See docs/testing-guest.md.
#
# Environment: BUILD (default build), GUEST_BACKEND=virtiod|qsd (qsd = QEMU's
# qemu-storage-daemon as a stand-in backend, to check the harness itself),
# VIRTIOD, QEMU, GUEST_MACHINE=q35|microvm, GUEST_TIMEOUT (s per guest run),
# GUEST_DEVICE_PROPS (extra QEMU device properties, e.g. packed=on),
# VIRTIOD_ARGS (extra daemon options, e.g. "--log-level debug"), VERIFY_MB
# (bytes the verify case reads+writes, MiB; 256), VD_VERIFY, NET_MB (MiB each
# way in the net cases; 64), NET_BACKEND=virtiod|qemu-tap (qemu-tap: net-q35
# on QEMU's own -netdev tap, for bench/net.sh).
set -u -o pipefail

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/net.sh"

ALL_CASES="1-queue 2-queues ext4 read-only kill-restart verify resize"
# virtio-net and virtio-rng (tests/guest/net.sh): virtiod only
NET_CASES="net-q35 net-microvm net-2-pairs rng-q35 rng-microvm"
[ "$VT_BACKEND" = virtiod ] && ALL_CASES="$ALL_CASES $NET_CASES"
CASES=$ALL_CASES
KEEP=0
while [ $# -gt 0 ]; do
	case "$1" in
	-l) echo "$CASES" | tr ' ' '\n'; exit 0 ;;
	-k) KEEP=1 ;;
	-h | --help) sed -n '2,18p' "$0"; exit 0 ;;
	-*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
	shift
done
[ $# -gt 0 ] && CASES="$*"
for c in $CASES; do
	case " $ALL_CASES " in
	*" $c "*) ;;
	*) echo "run.sh: unknown case '$c' (-l lists them)" >&2; exit 2 ;;
	esac
done

RUNDIR=""
on_exit() {
	trap '' PIPE # stdout may be a pipe whose reader is gone: clean up anyway
	vt_cleanup
	[ -n "$RUNDIR" ] && rm -rf "$RUNDIR"
}
trap on_exit EXIT
trap 'echo "guest: interrupted" >&2; exit 130' INT TERM

if ! miss=$(vt_check_tools); then
	echo "guest: missing host tools:$miss (run scripts/deps.sh as root)" >&2
	exit 1
fi
if [ "$VT_BACKEND" = virtiod ] && [ ! -x "$VIRTIOD" ]; then
	echo "guest: $VIRTIOD not built (make BUILD=${BUILD#"$VT_ROOT"/} first)" >&2
	exit 1
fi

secs() { local ms=$1; printf '%d.%d s' $((ms / 1000)) $(((ms % 1000) / 100)); }
T_ALL=$(vt_now_ms)
echo "guest: preparing kernel and initramfs in $VT_CACHE"
if ! vt_prepare; then
	echo "guest: cannot prepare the guest kernel/initramfs" >&2
	exit 1
fi
echo "guest: kernel $VT_KPKG ($(basename "$VT_KERNEL")), backend $VT_BACKEND, machine $VT_MACHINE," \
	"ready in $(secs $(($(vt_now_ms) - T_ALL)))"

# unix socket paths are limited to 108 bytes: keep them short, under /tmp
RUNDIR=$(mktemp -d /tmp/vt-guest.XXXXXX)
OUT=$BUILD/guest-tests
mkdir -p "$OUT"

PASSED=0 FAILED=0 FAILED_NAMES=""

# ------------------------------------------------------------------ helpers
# case_setup NAME IMG_MIB: per-case directory, sparse image, socket path
case_setup() {
	CASE=$1
	CDIR=$OUT/$CASE
	rm -rf "$CDIR" && mkdir -p "$CDIR"
	IMG=$CDIR/disk.img
	truncate -s "${2}M" "$IMG"
	SOCK=$RUNDIR/$CASE.sock
	CLOG=$CDIR/console.log
	BLOG=$CDIR/backend.log
	: >"$CLOG"
	: >"$BLOG"
	SERIAL_OPT=() SERIAL_APPEND=""
	if [ "$VT_BACKEND" = virtiod ]; then
		SERIAL_OPT=(--serial "vt-$CASE")
		SERIAL_APPEND="vt.serial=vt-$CASE"
	fi
	DETAIL=""
}

# virtiod options of every case (+ VIRTIOD_ARGS)
# shellcheck disable=SC2206
EXTRA_ARGS=(${VIRTIOD_ARGS:-})

start_backend() { # extra backend options...
	vt_backend_start "$IMG" "$SOCK" "$BLOG" "${SERIAL_OPT[@]}" "${EXTRA_ARGS[@]}" "$@"
}

# run_guest SMP NUMQ RECONNECT APPEND...: boot, wait for the result marker
# (RESULT holds it, or a harness reason), let QEMU power off.
run_guest() {
	vt_qemu_start "$CLOG" "$SOCK" "$@" || return 1
	wait_result
}

wait_result() {
	local rc
	vt_wait_for "$CLOG" '^VT-RESULT:' "$VT_TIMEOUT" "$VT_QEMU_PID"
	rc=$?
	RESULT=$(vt_result_line "$CLOG")
	case $rc in
	1) [ -n "$RESULT" ] || RESULT="QEMU exited without a result line" ;;
	2) RESULT="timeout: no result line within ${VT_TIMEOUT}s" ;;
	esac
	vt_qemu_finish
	[[ "$RESULT" == "VT-RESULT: PASS"* ]]
}

# the guest's failure reason without the prefix
why() { echo "${RESULT#VT-RESULT: FAIL }"; }

stop_backend() { # graceful: SIGTERM, the daemon must exit promptly
	local t0 rc
	t0=$(vt_now_ms)
	kill -TERM "$VT_BACKEND_PID" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$VT_BACKEND_PID" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$VT_BACKEND_PID" 2>/dev/null; then
		vt_stop "$VT_BACKEND_PID" KILL
		BACKEND_STOP="did not exit within 5 s of SIGTERM"
		return 1
	fi
	wait "$VT_BACKEND_PID" 2>/dev/null
	rc=$?
	BACKEND_STOP="exit $rc after SIGTERM in $(($(vt_now_ms) - t0)) ms"
	[ "$VT_BACKEND" = qsd ] && return 0
	[ $rc = 0 ]
}

# record one case: name, status, wall ms, detail
report() {
	local st=$1 ms=$2
	shift 2
	printf 'guest: %-13s %s  %7s  %s\n' "$CASE" "$st" "$(secs "$ms")" "$*"
	if [ "$st" = PASS ]; then
		PASSED=$((PASSED + 1))
		[ "$KEEP" = 1 ] || rm -f "$IMG"
	else
		FAILED=$((FAILED + 1))
		FAILED_NAMES="$FAILED_NAMES $CASE"
		echo "guest:   logs: $CLOG $BLOG" >&2
		grep -a -E '^VT-(INFO|DMESG|IO|DD)' "$CLOG" | tr -d '\r' | tail -n 12 | sed 's/^/guest:   | /' >&2
		# the console's other lines: shell errors, QEMU messages, a kernel panic
		grep -av -e '^VT-' -e '^### ' -e '^\[ *[0-9.]*\]  ' "$CLOG" | tr -d '\r' | tail -n 8 |
			sed 's/^/guest:   console| /' >&2
		tail -n 8 "$BLOG" | sed 's/^/guest:   backend| /' >&2
	fi
}

# ------------------------------------------------------------------ cases
# 1 queue: five 4 MiB regions (start, quarter+4K, middle+8K, 3/4+12K, end)
# written concurrently with 1M..4K requests, O_DIRECT, flushed, read back.
# Then a second guest (a new frontend connection to the same daemon, which
# must have reset the device and listened again) reads the regions back.
case_1_queue() {
	local regions
	case_setup 1-queue 256
	start_backend --num-queues 1 || return 1
	run_guest 1 1 0 vt.test=io vt.mb=4 $SERIAL_APPEND || { DETAIL=$(why); return 1; }
	DETAIL=$(vt_verify_regions "$CLOG" "$IMG") || return 1
	regions=$(vt_lines "$CLOG" 'VT-DD:' | sed 's/VT-DD: off=\([0-9]*\) len=\([0-9]*\) md5=\([0-9a-f]*\).*/\1:\2:\3/' | paste -sd, -)
	CLOG=$CDIR/console-2.log
	run_guest 1 1 0 vt.test=check vt.regions="$regions" $SERIAL_APPEND ||
		{ DETAIL="second connection: $(why)"; return 1; }
	stop_backend || { DETAIL="$DETAIL; backend $BACKEND_STOP"; return 1; }
	DETAIL="$(vt_lines "$CDIR/console.log" 'VT-INFO: regions' | sed 's/VT-INFO: //'); $DETAIL; a second guest read them back"
}

# 2 queues: 2 vCPUs, num-queues=2, writers pinned per CPU; the guest checks
# that each hardware queue dispatched requests and got completion interrupts.
case_2_queues() {
	case_setup 2-queues 256
	start_backend --num-queues 2 || return 1
	run_guest 2 2 0 vt.test=mq vt.mb=4 $SERIAL_APPEND || { DETAIL=$(why); return 1; }
	DETAIL=$(vt_verify_regions "$CLOG" "$IMG") || return 1
	stop_backend || { DETAIL="$DETAIL; backend $BACKEND_STOP"; return 1; }
	DETAIL="$(vt_lines "$CLOG" 'VT-MQ:' | sed 's/VT-MQ: //; s/ cpus=[^ ]*//' | paste -sd, -); $DETAIL"
}

# ext4: mkfs, a tree of files, sync, umount, fsck clean, remount, compare;
# then on the host: e2fsck -fn on the image and debugfs dumps of two files.
case_ext4() {
	local f want got
	case_setup ext4 256
	start_backend --num-queues 1 || return 1
	run_guest 1 1 0 vt.test=fs vt.mb=8 $SERIAL_APPEND || { DETAIL=$(why); return 1; }
	stop_backend || { DETAIL="backend $BACKEND_STOP"; return 1; }
	if ! e2fsck -f -n "$IMG" >"$CDIR/host-fsck.log" 2>&1; then
		DETAIL="host e2fsck -fn on the image: $(tail -n 3 "$CDIR/host-fsck.log" | tr '\n' ' ')"
		return 1
	fi
	while read -r f want; do
		got=$(debugfs -R "cat $f" "$IMG" 2>/dev/null | md5sum | cut -d' ' -f1)
		[ "$got" = "$want" ] || { DETAIL="host debugfs: $f is $got in the image, guest wrote $want"; return 1; }
	done < <(vt_lines "$CLOG" 'VT-FS: file=' | sed 's/VT-FS: file=\([^ ]*\) md5=\([0-9a-f]*\)/\1 \2/')
	DETAIL="$(vt_lines "$CLOG" 'VT-FS: files=' | sed 's/VT-FS: \(files=[0-9]*\).*/\1/') files verified in guest after remount;"
	DETAIL="$DETAIL guest+host e2fsck clean; 2 files match on host (debugfs)"
}

# read-only: the host writes a pattern; with --readonly the guest sees a
# read-only disk, its writes fail, its reads return the pattern; the image
# is unchanged afterwards.
case_read_only() {
	local pmd5 before after
	case_setup read-only 64
	head -c 4194304 /dev/urandom >"$CDIR/pattern"
	dd if="$CDIR/pattern" of="$IMG" conv=notrunc status=none
	pmd5=$(md5sum <"$CDIR/pattern" | cut -d' ' -f1)
	before=$(md5sum <"$IMG" | cut -d' ' -f1)
	start_backend --readonly --num-queues 1 || return 1
	run_guest 1 1 0 vt.test=ro vt.mb=4 vt.romd5="$pmd5" $SERIAL_APPEND || { DETAIL=$(why); return 1; }
	stop_backend || { DETAIL="backend $BACKEND_STOP"; return 1; }
	after=$(md5sum <"$IMG" | cut -d' ' -f1)
	[ "$before" = "$after" ] || { DETAIL="the image changed on the host ($before -> $after)"; return 1; }
	DETAIL="$(vt_lines "$CLOG" 'VT-RO: direct' | sed 's/VT-RO: //'); reads ok; image unchanged"
}

# kill-restart: QEMU's chardev has reconnect=1.  While the guest writes (each
# 1 MiB chunk followed by a FLUSH) and reads concurrently, the backend gets
# SIGKILL - at a moment when one of its threads is in uninterruptible sleep,
# i.e. busy with a request taken off the ring (a write or an fdatasync) - and
# is restarted on the same socket.  The guest's I/O must resume and every
# region must hold exactly what was written last.  virtiod must also report
# resubmitting requests in flight (INFLIGHT_SHMFD) after at least one kill:
# the host kills again (up to MAX_KILLS) until it does.  Then the host types
# "stop" on the guest's console (QEMU's stdin) to end the I/O.
MIN_KILLS=2 MAX_KILLS=6

# kill_busy PID: SIGKILL, preferably while a thread of PID is in state D
# (polled for up to 3 s).  Sets KILL_BUSY=1 if it caught one.
kill_busy() {
	local pid=$1 t s end
	end=$((${EPOCHREALTIME/./} + 3000000))
	KILL_BUSY=0
	while [ "${EPOCHREALTIME/./}" -lt $end ]; do
		for t in /proc/"$pid"/task/*/stat; do
			read -r s <"$t" 2>/dev/null || continue
			s=${s##*) }
			if [ "${s%% *}" = D ]; then
				KILL_BUSY=1
				break 2
			fi
		done
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

case_kill_restart() {
	local k=0 lines t_kill resumed busy=0 resub=0 ctl
	case_setup kill-restart 256
	mkfifo "$CDIR/console-in"
	exec {ctl}<>"$CDIR/console-in"
	start_backend --num-queues 1 || return 1
	VT_QEMU_STDIN=$CDIR/console-in vt_qemu_start "$CLOG" "$SOCK" 1 1 1 \
		vt.test=kill vt.mb=8 vt.secs=150 $SERIAL_APPEND || return 1
	if ! vt_wait_for "$CLOG" '^VT-IO: start' "$VT_TIMEOUT" "$VT_QEMU_PID"; then
		wait_result
		DETAIL="guest I/O never started: $(why)"
		return 1
	fi
	sleep 1
	while [ $k -lt $MAX_KILLS ]; do
		k=$((k + 1))
		lines=$(grep -ac '' "$CLOG")
		t_kill=$(vt_now_ms)
		kill_busy "$VT_BACKEND_PID"
		busy=$((busy + KILL_BUSY))
		echo "### $(date +%T.%N) SIGKILL #$k sent (busy=$KILL_BUSY, console at line $lines)" >>"$BLOG"
		sleep 0.2
		start_backend --num-queues 1 || { DETAIL="restart #$k failed: $(tail -n 2 "$BLOG" | tr '\n' ' ')"; return 1; }
		# the guest's writers must make progress again after the restart
		resumed=1
		for _ in $(seq 600); do
			if tail -n +$((lines + 1)) "$CLOG" | grep -aqE '^VT-(IO: pass|RESULT)'; then
				resumed=0
				break
			fi
			kill -0 "$VT_QEMU_PID" 2>/dev/null || break
			sleep 0.1
		done
		if [ $resumed != 0 ] || grep -aq '^VT-RESULT' "$CLOG"; then
			wait_result
			DETAIL="guest I/O did not resume within 60 s after kill #$k and restart ($(why))"
			return 1
		fi
		echo "### $(date +%T.%N) guest I/O resumed $(($(vt_now_ms) - t_kill)) ms after kill #$k" >>"$BLOG"
		resub=$(grep -c 'resubmitting [1-9][0-9]* request' "$BLOG")
		[ $k -ge $MIN_KILLS ] && { [ "$VT_BACKEND" != virtiod ] || [ "$resub" -gt 0 ]; } && break
		sleep 0.$((RANDOM % 5 + 3))
	done
	echo stop >&"$ctl"
	wait_result
	exec {ctl}>&-
	[[ "$RESULT" == "VT-RESULT: PASS"* ]] || { DETAIL=$(why); return 1; }
	DETAIL=$(vt_verify_regions "$CLOG" "$IMG") || return 1
	if [ "$VT_BACKEND" = virtiod ] && [ "$resub" = 0 ]; then
		DETAIL="$k kills ($busy while the daemon was busy), never a 'resubmitting N requests' log line; $DETAIL"
		return 1
	fi
	stop_backend || { DETAIL="$DETAIL; backend $BACKEND_STOP"; return 1; }
	DETAIL="$k SIGKILL+restart during I/O ($busy busy, $resub resubmitted), $(vt_lines "$CLOG" 'VT-IO: done' | sed 's/.*\(reader_passes=[0-9]*\)/\1/'); $DETAIL"
}

# verify: vd-verify (tests/verify) in the guest: O_DIRECT native-AIO reads,
# writes, flushes, discards and write-zeroes at queue depths 1 and 32, 512 B
# to 1 MiB, buffers at in-page offsets, every read checked in the guest.
# virtiod punches a hole for a discard on a file, so there discarded blocks
# must read as zeroes (--discard-zeroes); qsd ignores discards by default.
# Then the host checks every byte of the image the guest's record vouches
# for (`vd-verify check --console`), and that one flipped byte is caught.
case_verify() {
	local rl cl off len sec dz=""
	case_setup verify 128
	[ "$VT_BACKEND" = virtiod ] && dz=vt.dz=1
	[ -x "$VD_VERIFY" ] || { DETAIL="$VD_VERIFY not built"; return 1; }
	start_backend --num-queues 1 || return 1
	run_guest 1 1 0 vt.test=verify vt.mb="${VERIFY_MB:-256}" vt.qd=1,32 $dz $SERIAL_APPEND || {
		DETAIL="$(why); $(vt_lines "$CLOG" 'VD-VERIFY ERROR' | head -n 1 | cut -c1-400)"
		return 1
	}
	stop_backend || { DETAIL="backend $BACKEND_STOP"; return 1; }
	rl=$(vt_lines "$CLOG" 'VD-VERIFY RESULT')
	if ! "$VD_VERIFY" check --image "$IMG" --console "$CLOG" >"$CDIR/check.log" 2>&1; then
		DETAIL="host: $(grep -E 'MISMATCH|CHECK FAIL' "$CDIR/check.log" | head -n 3 | tr '\n' ' ')"
		return 1
	fi
	cl=$(grep 'CHECK PASS' "$CDIR/check.log")
	# negative control on this very image: one flipped byte must be named
	read -r off len _ < <("$VD_VERIFY" dump --image "$IMG" --extents |
		awk '/EXTENT/ && $5 ~ /gen=[0-9]+$/ { sub("off=", "", $3); sub("len=", "", $4); sub("gen=", "", $5); print $3, $4, $5; exit }')
	[ -n "${off:-}" ] || { DETAIL="host: the record has no data extent"; return 1; }
	sec=$((off + len / 1024 * 512))
	vt_flip_byte "$IMG" $((sec + 7))
	if "$VD_VERIFY" check --image "$IMG" --console "$CLOG" >"$CDIR/check-flip.log" 2>&1 ||
		! grep -q "MISMATCH off=$sec len=512 " "$CDIR/check-flip.log"; then
		DETAIL="host: a byte flipped at $((sec + 7)) was not reported"
		return 1
	fi
	vfield() { echo "$rl" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
	DETAIL="guest: $(vfield ops) ops (qd1 $(vfield qd1), qd32 $(vfield qd32)), w $(($(vfield bytes_w) >> 20)) MiB, r $(($(vfield bytes_r) >> 20)) MiB, $(vfield flushes) flushes, $(vfield discards) discards${dz:+ (zeroes)}, $(vfield zeroes) write-zeroes, $(vfield secs) s;"
	DETAIL="$DETAIL host: $(echo "$cl" | sed 's/.*\(data_bytes=[0-9]*\).*/\1/') match the record; flipped byte at $((sec + 7)) caught"
}

# resize: the guest runs while its disk changes size three times - grown by
# `virtiod resize` on the control socket, grown behind the daemon's back
# (truncate on the image: the daemon looks at it once a second), shrunk by
# `virtiod resize` - and must see each size in /sys/block/vda/size (the
# backend channel's config-change message, QEMU's config interrupt). At each
# size the guest writes the new last MiB and reads it back; the host finds it
# in the image before the next step, and the image ends at the last size.
case_resize() {
	local ctl sizes="" s step=0 off len md5 host
	local -a steps=("resize 96M" "truncate 128M" "resize 32M")
	case_setup resize 64
	if [ "$VT_BACKEND" != virtiod ]; then
		DETAIL="skipped: needs GUEST_BACKEND=virtiod (the control socket)"
		return 0
	fi
	ctl=$RUNDIR/resize.ctl
	for s in 96 128 32; do sizes="$sizes${sizes:+,}$((s * 2048))"; done
	start_backend --num-queues 1 --control "$ctl" || return 1
	vt_qemu_start "$CLOG" "$SOCK" 1 1 0 vt.test=resize vt.sizes="$sizes" $SERIAL_APPEND || return 1
	if ! vt_wait_for "$CLOG" '^VT-RESIZE: size=131072' "$VT_TIMEOUT" "$VT_QEMU_PID"; then
		wait_result
		DETAIL="the guest never reported its first size: $(why)"
		return 1
	fi
	for s in "${steps[@]}"; do
		step=$((step + 1))
		case $s in
		resize*) "$VIRTIOD" resize "$ctl" "${s#resize }" >>"$BLOG" 2>&1 ||
			{ DETAIL="step $step: virtiod resize ${s#resize } failed: $(tail -n 1 "$BLOG")"; wait_result; return 1; } ;;
		truncate*) truncate -s "${s#truncate }" "$IMG" ;;
		esac
		if ! vt_wait_for "$CLOG" "^VT-RESIZE: size=$(echo "$sizes" | cut -d, -f$step)" "$VT_TIMEOUT" "$VT_QEMU_PID"; then
			wait_result
			DETAIL="step $step ($s): the guest did not see it: $(why)"
			return 1
		fi
		read -r off len md5 < <(vt_lines "$CLOG" 'VT-DD:' | tail -n 1 | sed 's/^VT-DD: off=\([0-9]*\) len=\([0-9]*\) md5=\([0-9a-f]*\).*/\1 \2 \3/')
		host=$(dd if="$IMG" bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$len" 2>/dev/null | md5sum | cut -d' ' -f1)
		[ "$host" = "$md5" ] || { DETAIL="step $step ($s): the guest's last MiB is not in the image"; wait_result; return 1; }
	done
	wait_result || { DETAIL=$(why); return 1; }
	stop_backend || { DETAIL="backend $BACKEND_STOP"; return 1; }
	s=$(stat -c %s "$IMG")
	[ "$s" = $((32 << 20)) ] || { DETAIL="the image has $s bytes, expected 32 MiB"; return 1; }
	DETAIL="64M -> resize 96M -> truncate 128M -> resize 32M: each seen in /sys/block/vda/size, last MiB written and found in the image each time"
}

# ------------------------------------------------------------------ main
for c in $CASES; do
	fn=case_${c//-/_}
	t0=$(vt_now_ms)
	if $fn; then st=PASS; else st=FAIL; fi
	vt_cleanup # nothing of this case survives it
	report $st $(($(vt_now_ms) - t0)) "$DETAIL"
done
echo "guest: $PASSED passed, $FAILED failed (backend $VT_BACKEND, total $(secs $(($(vt_now_ms) - T_ALL))))"
[ $FAILED = 0 ]
