#!/bin/bash
# scripts/demo.sh - `make demo`: virtiod serves a disk to a Linux guest under QEMU.
#
# Creates a sparse 1 GiB image in $BUILD/demo, starts $BUILD/virtiod on it
# (vhost-user-blk), boots a small Debian-kernel guest under QEMU (software
# emulation) that makes an ext4 filesystem on the disk, writes 64 MiB of
# files, reads them back and prints the throughput; then everything is shut
# down.  Builds nothing itself (make does: `make demo` = deps + virtiod).
#
# Environment: BUILD (default build), DEMO_MIB (default 64), DEMO_IMG_SIZE
# (default 1G), GUEST_MACHINE=q35|microvm, QEMU, VIRTIOD (see tests/guest/lib.sh);
# GUEST_BACKEND=qsd runs the demo against qemu-storage-daemon (checks the demo itself).
set -u -o pipefail

. "$(dirname "$0")/../tests/guest/lib.sh"

MIB=${DEMO_MIB:-64}
SIZE=${DEMO_IMG_SIZE:-1G}
DIR=$BUILD/demo
T0=$(vt_now_ms)

rel() { local p=$1; echo "${p//"$VT_ROOT"\//}"; } # paths as the user types them
step() { echo "[$1] $2"; }
say() { echo "      $*"; }
fail() {
	echo "virtiod demo: FAILED — $*" >&2
	exit 1
}

on_exit() {
	trap '' PIPE
	vt_cleanup
}
trap on_exit EXIT
trap 'echo; echo "virtiod demo: interrupted" >&2; exit 130' INT TERM

echo "virtiod demo: a Linux guest under QEMU gets its disk from virtiod over vhost-user-blk"

# ---------------------------------------------------------------- 0. what we need
if ! command -v "$QEMU" >/dev/null; then
	cat >&2 <<EOF
virtiod demo: cannot run — QEMU ($QEMU) is not installed.
  The demo needs QEMU as the vhost-user frontend (the program that runs the guest).
  On Debian/Ubuntu: apt-get install qemu-system-x86   (scripts/deps.sh does this as root).
  virtiod itself does not need QEMU: any vhost-user frontend (cloud-hypervisor, crosvm, ...)
  can use its socket.
EOF
	exit 1
fi
if ! "$QEMU" -device help 2>/dev/null | grep -q '"vhost-user-blk-pci"'; then
	echo "virtiod demo: cannot run — $QEMU has no vhost-user-blk-pci device (QEMU too old or built without vhost-user)" >&2
	exit 1
fi
if ! miss=$(vt_check_tools); then
	echo "virtiod demo: cannot run — missing host tools:$miss (run scripts/deps.sh as root)" >&2
	exit 1
fi
[ "$VT_BACKEND" = qsd ] || [ -x "$VIRTIOD" ] || fail "$(rel "$VIRTIOD") is not built (run: make demo)"

# ---------------------------------------------------------------- 1. guest
step 1/5 "guest kernel and initramfs (cached in $(rel "$VT_CACHE"))"
vt_get_kernel || fail "could not fetch Debian's cloud kernel (apt-get download linux-image-cloud-amd64; network?)"
vt_build_initrd || fail "could not build the initramfs"
say "kernel: $VT_KPKG ($(rel "$VT_KERNEL"))"
say "initramfs: busybox + virtio modules + mke2fs/e2fsck ($(($(stat -c %s "$VT_INITRD") / 1024)) KiB)"

# ---------------------------------------------------------------- 2. disk
step 2/5 "disk image"
mkdir -p "$DIR"
IMG=$DIR/disk.img
rm -f "$IMG"
truncate -s "$SIZE" "$IMG" || fail "cannot create $IMG"
say "$(rel "$IMG"): $SIZE, sparse (truncate -s $SIZE)"

# ---------------------------------------------------------------- 3. virtiod
step 3/5 "starting virtiod"
SOCK=$DIR/virtiod.sock
[ ${#SOCK} -lt 100 ] || SOCK=$(mktemp -u /tmp/virtiod-demo.XXXXXX.sock)
LOG=$DIR/virtiod.log
CLOG=$DIR/console.log
: >"$LOG"
: >"$CLOG"
rm -f "$SOCK"
vt_backend_start "$IMG" "$SOCK" "$LOG" || fail "virtiod did not start (log: $(rel "$LOG"))"
say "\$ $(rel "$VT_BACKEND_CMD")"
say "virtiod is listening on $(rel "$SOCK") (pid $VT_BACKEND_PID, log $(rel "$LOG"))"

# ---------------------------------------------------------------- 4. guest
prev=""
step 4/5 "booting the guest (QEMU, software emulation: about 5-20 s)"
vt_qemu_start "$CLOG" "$SOCK" 1 1 0 vt.test=demo vt.mb="$MIB" || fail "cannot start QEMU"
# show the command the way a user would type it, a few options per line
{
	printf '      $ %s' "$(rel "${VT_QEMU_CMD[0]}")"
	for a in "${VT_QEMU_CMD[@]:1}"; do
		case "$a" in
		-M | -object | -chardev | -device | -kernel | -initrd | -append | -nodefaults) printf ' \\\n          %s' "$a" ;;
		-*) printf ' %s' "$a" ;;
		*) case "$prev" in -append) printf " '%s'" "$a" ;; *) printf ' %s' "$(rel "$a")" ;; esac ;;
		esac
		prev=$a
	done
	echo
}
# follow the guest's progress lines while waiting for its result
shown=0 rc=2 deadline=$(($(date +%s) + VT_TIMEOUT))
while :; do
	n=$(grep -ac '' "$CLOG")
	if [ "$n" -gt "$shown" ]; then
		sed -n "$((shown + 1)),${n}p" "$CLOG" | tr -d '\r' | sed -n 's/^VT-INFO: /      guest: /p'
		shown=$n
	fi
	grep -aq '^VT-RESULT:' "$CLOG" && { rc=0; break; }
	kill -0 "$VT_QEMU_PID" 2>/dev/null || { rc=1; break; }
	[ "$(date +%s)" -ge "$deadline" ] && break
	sleep 0.1
done
sed -n "$((shown + 1)),\$p" "$CLOG" | tr -d '\r' | sed -n 's/^VT-INFO: /      guest: /p'
RESULT=$(vt_result_line "$CLOG")
vt_qemu_finish
if [[ "$RESULT" != "VT-RESULT: PASS"* ]]; then
	case $rc in
	2) why="no result from the guest within ${VT_TIMEOUT}s" ;;
	*) why=${RESULT:-QEMU exited without a result}
		why=${why#VT-RESULT: FAIL } ;;
	esac
	echo "      last console lines:" >&2
	grep -av '^###' "$CLOG" | tr -d '\r' | tail -n 12 | sed 's/^/      | /' >&2
	echo "      virtiod log ($(rel "$LOG")):" >&2
	tail -n 8 "$LOG" | sed 's/^/      | /' >&2
	fail "$why"
fi
say "guest powered off"

# ---------------------------------------------------------------- 5. shutdown, host check
step 5/5 "stopping virtiod and checking the image on the host"
kill -TERM "$VT_BACKEND_PID"
for _ in $(seq 100); do kill -0 "$VT_BACKEND_PID" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$VT_BACKEND_PID" 2>/dev/null; then
	vt_stop "$VT_BACKEND_PID" KILL
	fail "virtiod did not exit within 5 s of SIGTERM (log: $(rel "$LOG"))"
fi
wait "$VT_BACKEND_PID"
st=$?
[ $st = 0 ] || fail "virtiod exited with status $st after SIGTERM (log: $(rel "$LOG"))"
say "virtiod stopped (SIGTERM, exit 0)"
e2fsck -f -n "$IMG" >"$DIR/host-fsck.log" 2>&1 || fail "e2fsck on the host finds the image damaged ($(rel "$DIR/host-fsck.log"))"
nfiles=0
while read -r f want; do
	got=$(debugfs -R "cat $f" "$IMG" 2>/dev/null | md5sum | cut -d' ' -f1)
	[ "$got" = "$want" ] || fail "$f in the image on the host differs from what the guest wrote"
	nfiles=$((nfiles + 1))
done < <(vt_lines "$CLOG" 'VT-FS: file=' | sed 's/VT-FS: file=\([^ ]*\) md5=\([0-9a-f]*\)/\1 \2/')
[ $nfiles -gt 0 ] || fail "the guest reported no files"
say "host: e2fsck clean; the $nfiles files in the image (read with debugfs) match the guest's md5s"
say "image kept: $(rel "$IMG") ($(du -m "$IMG" | cut -f1) MiB allocated of $SIZE)"

perf=$(vt_lines "$CLOG" 'VT-PERF:')
wr=$(echo "$perf" | sed -n 's/.*write_mbs=\([0-9]*\).*/\1/p')
rd=$(echo "$perf" | sed -n 's/.*read_mbs=\([0-9]*\).*/\1/p')
secs=$((($(vt_now_ms) - T0) / 100))
echo "virtiod demo: OK — guest wrote and read back $MIB MiB through virtiod" \
	"(ext4; write $wr MB/s, read $rd MB/s under software emulation; $((secs / 10)).$((secs % 10)) s in all)"
