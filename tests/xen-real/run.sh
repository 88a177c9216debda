#!/bin/bash
# tests/xen-real: virtiod as the IOREQ server of an HVM guest on real Xen.
#
# Debian's Xen 4.17 boots under QEMU TCG (-cpu qemu64,+svm,+npt: Debian's
# Xen has no shadow paging, guests need HAP), a busybox dom0 brings up the
# toolstack and runs dom0-test.sh, which creates HVM guests (Debian kernel,
# busybox initrd with an ACPI SSDT describing a virtio-mmio device) and
# serves their disks with $BUILD/virtiod. See docs/testing-xen-real.md.
#
# Env: BUILD (build), TIMEOUT (whole QEMU run, s; 2400), XR_CASES
# ("explicit destroy xenstore"), XR_PROBE_ONLY=1 (no virtiod needed: boot
# path only), SMP (2), MEM (3072), plus what mkimages.sh takes.
# Exit status: 0 PASS, 1 FAIL, 2 harness error or timeout.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export BUILD=${BUILD:-build}
OUT=$BUILD/xen-real
TIMEOUT=${TIMEOUT:-2400}
SMP=${SMP:-2}
MEM=${MEM:-3072}
# QEMU's TCG and CPU model for the outer machine: SVM with nested paging
# (Debian's Xen has no shadow paging); see docs/testing-xen-real.md for
# how they bear on the nested guests' stability
ACCEL=${ACCEL:-tcg,thread=multi}
CPU=${CPU:-qemu64,+svm,+npt}
mkdir -p "$OUT"
# one run per build directory: the images and logs below are shared
exec 9>"$OUT/.lock"
flock -n 9 || { echo "xen-real: another run holds $OUT/.lock" >&2; exit 2; }
LOG=$OUT/run.log
RAW=$OUT/serial.raw
now() { date +%s; }
T0=$(now)
say() { printf '[%4ds] %s\n' $(($(now) - T0)) "$*"; }

for t in qemu-system-x86_64 iasl cpio busybox e2fsck debugfs; do
	command -v $t >/dev/null || { say "xen-real: missing $t (run: VIRTIOD_DEPS=xen scripts/deps.sh)"; exit 2; }
done
[ -x /usr/libexec/xen-qemu-system-i386 ] || { say "xen-real: missing qemu-system-xen"; exit 2; }
if [ ! -x "$BUILD/virtiod" ] && [ "${XR_PROBE_ONLY:-0}" != 1 ]; then
	say "xen-real: FAIL: no $BUILD/virtiod (XR_PROBE_ONLY=1 checks the boot path alone)"
	exit 1
fi
[ "${XR_PROBE_ONLY:-0}" = 1 ] && export VIRTIOD=/nonexistent

say "xen-real: building images (cache $BUILD/xen-real-cache)"
t=$(now)
if ! "$HERE/mkimages.sh" >"$OUT/mkimages.log" 2>&1; then
	cat "$OUT/mkimages.log"
	say "xen-real: FAIL: image build"
	exit 2
fi
tail -n 2 "$OUT/mkimages.log"
STAGES="images=$(($(now) - t))s"

QPID=
cleanup() {
	[ -n "$QPID" ] && kill -KILL "$QPID" 2>/dev/null
	QPID=
}
trap cleanup EXIT
trap 'cleanup; exit 2' INT TERM

XEN_CMDLINE="console=com1 com1=115200,8n1 dom0_mem=1280M,max:1280M dom0_max_vcpus=$SMP loglvl=all guest_loglvl=all"
# no commas here: QEMU splits -initrd at commas
DOM0_CMDLINE="console=hvc0 earlyprintk=xen loglevel=5"
: >"$RAW"
: >"$LOG"
say "xen-real: booting Xen under QEMU TCG (timeout ${TIMEOUT}s)"
tq=$(now)
qemu-system-x86_64 -machine pc -accel "$ACCEL" -cpu "$CPU" \
	-m "$MEM" -smp "$SMP" -display none -monitor none -serial "file:$RAW" \
	-no-reboot -net none -kernel "$OUT/xen" -append "$XEN_CMDLINE" \
	-initrd "$OUT/dom0-vmlinuz $DOM0_CMDLINE,$OUT/dom0-initrd.gz" \
	>"$OUT/qemu.log" 2>&1 &
QPID=$!

# follow the serial log: stamp lines with host seconds into $LOG, show the
# harness's own lines live
n=0
timed_out=0
show() {
	local total
	total=$(wc -l <"$RAW")
	[ "$total" -gt "$n" ] || return 0
	tail -n +$((n + 1)) "$RAW" | head -n $((total - n)) | tr -d '\r' |
		while IFS= read -r l; do printf '[%5ds] %s\n' $(($(now) - tq)) "$l"; done >>"$LOG.new"
	n=$total
	cat "$LOG.new" >>"$LOG"
	grep -E 'XR-(T|D|CASE|RETRY|RESULT|SOAK)|XR-G .*(PHASE|RESULT|TPUT|FAIL|verified|dmesg)|\(XEN\).*(Panic|FATAL|BUG)' "$LOG.new" || true
	rm -f "$LOG.new"
}
while kill -0 "$QPID" 2>/dev/null; do
	sleep 2
	show
	if [ $(($(now) - tq)) -ge "$TIMEOUT" ]; then
		timed_out=1
		say "xen-real: timeout after ${TIMEOUT}s, killing QEMU"
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
xen_s=$(first '\(XEN\) Xen version')
dom0_s=$(first 'XR-T stage=dom0-userspace')
echo "==== xen-real stage times (wall clock, seconds since QEMU start for boot stages)"
echo "  images: ${STAGES%% *}   Xen banner at ${xen_s:-?}s   dom0 /init at ${dom0_s:-?}s"
grep -oE 'XR-T .*' "$LOG" | sed 's/^XR-T /  /'
echo "  $STAGES"
echo "==== cases"
grep -oE 'XR-(CASE|RETRY|SOAK-SUMMARY) .*' "$LOG" | sed 's/^XR-CASE /  /; s/^XR-RETRY \([^ ]*\) /  \1 boot flake, retried: /; s/^XR-SOAK-SUMMARY /  soak /'
echo "  (QEMU -accel $ACCEL -cpu $CPU)"
res=$(grep -oE 'XR-RESULT .*' "$LOG" | tail -n 1)
echo "==== full log: $LOG"
if [ $timed_out = 1 ] || [ -z "$res" ]; then
	grep -E 'XEN|XR-' "$LOG" | tail -n 30
	echo "xen-real: FAIL (no result line: timeout or crash, see $LOG)"
	exit 2
fi
case $res in
"XR-RESULT PASS"*) echo "xen-real: PASS (${res#XR-RESULT PASS })"; exit 0 ;;
*) echo "xen-real: FAIL (${res#XR-RESULT })"; exit 1 ;;
esac
