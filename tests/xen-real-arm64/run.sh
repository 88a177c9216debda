#!/bin/bash
# tests/xen-real-arm64: virtiod on real Xen for Arm (docs/testing-xen-real-arm64.md).
#
# Xen 4.17 (Debian's source, built with the IOREQ server) boots under
# qemu-system-aarch64 (TCG, virt, GICv3, EL2) with a busybox dom0 on Debian's
# arm64 kernel and two dom0less guests; dom0 runs dom0-test.sh: the dom0less
# guests served by `virtiod --config`, one with foreign mapping and one with
# grants, an xl guest with a 4.17 virtio disk served by `virtiod xen-watch`,
# and a guest served with grants from a driver domain.
#
# Env: BUILD (build), ARM64_BUILD ($BUILD-arm64, holds virtiod), TIMEOUT
# (whole QEMU run, s; 1500), XA_CASES ("dom0less xl driver-domain"),
# XA_QEMU_LOCK (a file to flock while QEMU runs), plus what mkimages.sh takes.
# Exit status: 0 PASS; 1 FAIL; 2 harness error or timeout; 75 every failed
# case failed before its guest reached user space (virtiod never involved:
# CI may run it again; a data failure is never 75).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export BUILD=${BUILD:-build}
export ARM64_BUILD=${ARM64_BUILD:-$BUILD-arm64}
OUT=$BUILD/xen-arm64
TIMEOUT=${TIMEOUT:-1500}
mkdir -p "$OUT"
rm -f "$OUT/exit-status"
exec 9>"$OUT/.lock"
flock -n 9 || { echo "xen-arm64: another run holds $OUT/.lock" >&2; exit 2; }
LOG=$OUT/run.log
RAW=$OUT/serial.raw
now() { date +%s; }
T0=$(now)
say() { printf '[%4ds] %s\n' $(($(now) - T0)) "$*"; }

for t in qemu-system-aarch64 qemu-aarch64-static aarch64-linux-gnu-gcc dtc cpio apt-get dpkg-source; do
	command -v $t >/dev/null || { say "xen-arm64: missing $t (run: VIRTIOD_DEPS=xen-arm64 scripts/deps.sh)"; exit 2; }
done
[ -x "$ARM64_BUILD/virtiod" ] || { say "xen-arm64: FAIL: no $ARM64_BUILD/virtiod (make ARCH=arm64)"; exit 1; }

say "xen-arm64: images (the first run on a machine builds Xen and the grant guest's kernel into ~/.cache/virtiod/xen-arm64)"
t=$(now)
if ! "$HERE/mkimages.sh" >"$OUT/mkimages.log" 2>&1; then
	tail -n 30 "$OUT/mkimages.log"
	say "xen-arm64: FAIL: image build"
	exit 2
fi
grep -E '^(build-|mkimages: )' "$OUT/mkimages.log" | sed 's/^/  /'
STAGES="images=$(($(now) - t))s"

QPID=
cleanup() {
	[ -n "$QPID" ] && kill -KILL "$QPID" 2>/dev/null
	QPID=
}
# the status, for CI's retry decision (make reports 2 whatever it was)
trap 'rc=$?; cleanup; echo $rc >"$OUT/exit-status"' EXIT
trap 'cleanup; exit 2' INT TERM
: >"$RAW"
: >"$LOG"
say "xen-arm64: booting Xen under qemu-system-aarch64 (TCG; timeout ${TIMEOUT}s)"
if [ -n "${XA_QEMU_LOCK:-}" ]; then
	# held until this script exits; QEMU stays our direct child, so that
	# a timeout or an interrupt can kill it
	exec 8>>"$XA_QEMU_LOCK"
	say "xen-arm64: waiting for $XA_QEMU_LOCK"
	flock 8
fi
tq=$(now)
# shellcheck disable=SC2046
qemu-system-aarch64 -accel tcg,thread=multi \
	$(cat "$OUT/qemu-args") -display none -monitor none -serial "file:$RAW" \
	-no-reboot -net none >"$OUT/qemu.log" 2>&1 &
QPID=$!

n=0
timed_out=0
show() {
	local total
	total=$(wc -l <"$RAW")
	[ "$total" -gt "$n" ] || return 0
	tail -n +$((n + 1)) "$RAW" | head -n $((total - n)) | tr -d '\r' |
		while IFS= read -r l; do printf '[%5ds] %s\n' $(($(now) - tq)) "$l"; done >"$LOG.new"
	n=$total
	cat "$LOG.new" >>"$LOG"
	grep -E 'XA-(T|CASE|RESULT)|XA-D .*(===|domain .* device model)|XA-G .*(PHASE|RESULT|FAIL|IO |verify: .*(PASS|FAIL))|XA-DD (READY|CHECK|COUNTS|DONE)|\(XEN\).*(Panic|FATAL|BUG)' "$LOG.new" | cut -c1-400 || true
	rm -f "$LOG.new"
}
while kill -0 "$QPID" 2>/dev/null; do
	sleep 2
	show
	if [ $(($(now) - tq)) -ge "$TIMEOUT" ]; then
		timed_out=1
		say "xen-arm64: timeout after ${TIMEOUT}s, killing QEMU"
		cleanup
		break
	fi
done
wait "$QPID" 2>/dev/null
QPID=
show
STAGES="$STAGES qemu-total=$(($(now) - tq))s"

# ------------------------------------------------------------ summary
first() { grep -m1 -E "$1" "$LOG" | sed 's/^\[ *\([0-9]*\)s\].*/\1/'; }
echo "==== xen-arm64 stage times (wall clock; boot stages in seconds since QEMU start)"
echo "  Xen banner at $(first '\(XEN\) Xen version')s, dom0 /init at $(first 'XA-T stage=dom0-userspace')s"
grep -oE 'XA-T .*' "$LOG" | sed 's/^XA-T /  /'
echo "  $STAGES total=$(($(now) - T0))s"
echo "==== cases"
grep -oE 'XA-CASE .*' "$LOG" | sed 's/^XA-CASE /  /'
res=$(grep -oE 'XA-RESULT .*' "$LOG" | tail -n 1)
echo "==== full log: $LOG"
if [ $timed_out = 1 ] || [ -z "$res" ]; then
	grep -E 'XEN|XA-' "$LOG" | tail -n 30
	echo "xen-arm64: FAIL (no result line: timeout or crash, see $LOG)"
	exit 2
fi
case $res in
"XA-RESULT PASS"*)
	echo "xen-arm64: PASS (${res#XA-RESULT PASS })"
	exit 0
	;;
esac
echo "xen-arm64: FAIL (${res#XA-RESULT })"
# retriable only if every failed case failed before its guest's user space
if ! grep -oE 'XA-CASE [^ ]+ FAIL .*' "$LOG" | grep -vq 'boot=no'; then
	echo "xen-arm64: every failure happened before a guest reached user space (exit 75: may be retried)"
	exit 75
fi
exit 1
