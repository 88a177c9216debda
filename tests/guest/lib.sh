# shellcheck shell=bash
# tests/guest/lib.sh - shared by tests/guest/run.sh and scripts/demo.sh.
#
# Boots a throw-away Linux guest under QEMU (software emulation, TCG) whose
# only disk is a vhost-user-blk device served by a backend listening on a unix
# socket (build/virtiod, or qemu-storage-daemon as a stand-in to prove the
# harness itself).  The guest's /init (tests/guest/init.sh) runs one test and
# prints marker lines on the serial console:
#   VT-INFO: ...  VT-DD: off=N len=N md5=H  VT-FS: ...  VT-PERF: ...
#   VT-RESULT: PASS ... | VT-RESULT: FAIL reason
#
# Everything built or downloaded lives in $VT_CACHE ($BUILD/guest-cache): the
# kernel and modules extracted from Debian's linux-image-*-cloud-amd64 .deb
# (never installed), the PVH vmlinux and the initramfs.  Each is rebuilt only
# when its inputs change, so a warm run costs seconds.
#
# Environment (all optional):
#   BUILD           build directory (default build)
#   GUEST_BACKEND   virtiod (default) | qsd (qemu-storage-daemon stand-in)
#   VIRTIOD         daemon binary (default $BUILD/virtiod)
#   QEMU            qemu-system-x86_64 binary
#   GUEST_MACHINE   q35 (default, vhost-user-blk-pci) | microvm (virtio-mmio)
#   GUEST_TIMEOUT   seconds per guest run (default 240; TCG speed varies 2-3x)
#   GUEST_TSC_KHZ   host TSC kHz for microvm's tsc_early_khz= (default: cpuinfo)
#   GUEST_DEVICE_PROPS  extra vhost-user-blk device properties, e.g. packed=on,queue-size=256

VT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD=$VT_ROOT/$BUILD ;; esac
VT_CACHE=$BUILD/guest-cache
VT_BACKEND=${GUEST_BACKEND:-virtiod}
VIRTIOD=${VIRTIOD:-$BUILD/virtiod}
QEMU=${QEMU:-qemu-system-x86_64}
VT_MACHINE=${GUEST_MACHINE:-q35}
VT_TIMEOUT=${GUEST_TIMEOUT:-240}
VT_VERBOSE=${VT_VERBOSE:-0}
# the guest-side verifier (tests/verify), static; carried in the initramfs
# when built (the verify case needs it)
VD_VERIFY=${VD_VERIFY:-$BUILD/tests/vd-verify}
VT_MEM=512
# the kernel modules the initramfs carries, in insmod order (busybox insmod
# resolves no dependencies); ext4 and crc32c are built into the cloud kernel
# (virtio_net needs failover and net_failover; virtio-rng is its file name)
VT_MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_mmio virtio_blk
failover net_failover virtio_net virtio-rng"

VT_PIDS=()

vt_say() { echo "$*"; }
vt_note() { [ "$VT_VERBOSE" = 1 ] && echo "  $*" || true; }
vt_err() { echo "$*" >&2; }
vt_now_ms() { echo $(($(date +%s%N) / 1000000)); }

# ------------------------------------------------------------------ processes
# Every process started here is recorded in VT_PIDS; vt_cleanup (installed as
# an EXIT/INT/TERM trap by the callers) stops each one by its pid.
vt_track() { VT_PIDS+=("$1"); }

vt_stop() { # pid [signal]: stop one process we started, escalate to SIGKILL
	local pid=$1 sig=${2:-TERM} i
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
	kill -"$sig" "$pid" 2>/dev/null
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

vt_cleanup() {
	local p
	for p in "${VT_PIDS[@]}"; do
		kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
	done
	for p in "${VT_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	VT_PIDS=()
}

# ------------------------------------------------------------------ host tools
vt_check_tools() { # prints what is missing; returns 1 if anything is
	local miss="" t
	command -v "$QEMU" >/dev/null || miss="$miss $QEMU(qemu-system-x86)"
	[ -x /bin/busybox ] || miss="$miss busybox(busybox-static)"
	for t in cpio gzip dpkg-deb apt-get lz4 mke2fs e2fsck debugfs md5sum $VT_TOOLS; do
		command -v $t >/dev/null || miss="$miss $t"
	done
	if [ "$VT_BACKEND" = qsd ]; then
		command -v qemu-storage-daemon >/dev/null || miss="$miss qemu-storage-daemon(qemu-system-common)"
	fi
	[ -z "$miss" ] && return 0
	echo "$miss"
	return 1
}

# ------------------------------------------------------------------ kernel
# Resolve the package the meta package depends on (e.g.
# linux-image-6.1.0-56-cloud-amd64).  Empty apt lists: apt-get update once.
VT_APT_UPDATED=0
vt_apt_update() {
	[ "$VT_APT_UPDATED" = 1 ] && return 1
	VT_APT_UPDATED=1
	vt_say "  apt lists are missing or stale: running apt-get update"
	apt-get update -qq >/dev/null 2>&1
}

vt_resolve_kernel_pkg() {
	apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}

# Sets VT_KERNEL (PVH vmlinux, or the bzImage if extraction failed),
# VT_KDIR (the cached kernel directory: vmlinux or vmlinuz, config, modules/*.ko).
vt_get_kernel() {
	local pkg cur="" tmp deb m f elf off
	mkdir -p "$VT_CACHE"
	[ -f "$VT_CACHE/kernel/pkg" ] && cur=$(cat "$VT_CACHE/kernel/pkg")
	pkg=$(vt_resolve_kernel_pkg)
	if [ -z "$pkg" ] && [ -z "$cur" ]; then
		vt_apt_update
		pkg=$(vt_resolve_kernel_pkg)
	fi
	[ -z "$pkg" ] && pkg=$cur # offline and cached: use what we have
	if [ -z "$pkg" ]; then
		vt_err "cannot resolve linux-image-cloud-amd64 (apt-get update failed?)"
		return 1
	fi
	VT_KDIR=$VT_CACHE/kernel
	# the cache holds the modules of one VT_MODULES list
	if [ "$pkg" != "$cur" ] || [ ! -f "$VT_KDIR/.done" ] ||
		[ "$(cat "$VT_KDIR/modlist" 2>/dev/null)" != "$(echo $VT_MODULES)" ]; then
		tmp=$VT_CACHE/kernel.tmp
		rm -rf "$tmp" && mkdir -p "$tmp/deb"
		vt_say "  downloading Debian kernel $pkg (about 27 MB, once; cached in $VT_CACHE)"
		# -o APT::Sandbox::User=root: _apt cannot write into the build tree
		if ! (cd "$tmp/deb" && apt-get download -o APT::Sandbox::User=root "$pkg" 2>&1 | vt_progress); then
			vt_apt_update &&
				(cd "$tmp/deb" && apt-get download -o APT::Sandbox::User=root "$pkg" 2>&1 | vt_progress)
		fi
		deb=$(ls "$tmp"/deb/*.deb 2>/dev/null | head -1)
		if [ -z "$deb" ]; then
			vt_err "apt-get download $pkg failed"
			rm -rf "$tmp"
			return 1
		fi
		vt_say "  extracting kernel and virtio modules from $(basename "$deb")"
		mkdir -p "$tmp/x" "$tmp/out/modules"
		dpkg-deb --fsys-tarfile "$deb" |
			tar -x -C "$tmp/x" --wildcards './boot/vmlinuz-*' './boot/config-*' '*/virtio*.ko' \
				'*/failover.ko' '*/net_failover.ko' ||
			{ vt_err "cannot unpack $deb"; rm -rf "$tmp"; return 1; }
		cp "$tmp"/x/boot/vmlinuz-* "$tmp/out/vmlinuz"
		cp "$tmp"/x/boot/config-* "$tmp/out/config"
		for m in $VT_MODULES; do
			f=$(find "$tmp/x/lib" "$tmp/x/usr/lib" -name "$m.ko" 2>/dev/null | head -1)
			[ -n "$f" ] || { vt_err "module $m.ko not in $pkg"; rm -rf "$tmp"; return 1; }
			cp "$f" "$tmp/out/modules/"
		done
		# PVH boot of the ELF vmlinux skips the in-guest LZ4 decompressor
		# (about 0.3 s under TCG).  The LZ4 legacy frame starts with
		# 02 21 4c 18; trailing bytes after the stream make lz4 exit non-zero.
		elf=$tmp/out/vmlinux
		if grep -q '^CONFIG_PVH=y' "$tmp/out/config" && grep -q '^CONFIG_KERNEL_LZ4=y' "$tmp/out/config"; then
			off=$(LC_ALL=C grep -obUaP '\x02\x21\x4c\x18' "$tmp/out/vmlinuz" | head -1 | cut -d: -f1)
			[ -n "$off" ] && tail -c +$((off + 1)) "$tmp/out/vmlinuz" | lz4 -dc >"$elf" 2>/dev/null
			[ "$(head -c4 "$elf" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] || rm -f "$elf"
		fi
		if [ -s "$elf" ]; then
			rm -f "$tmp/out/vmlinuz" # 14 MB the PVH boot does not need
		else
			vt_say "  note: could not extract the PVH vmlinux; booting the bzImage"
		fi
		echo "$pkg" >"$tmp/out/pkg"
		echo $VT_MODULES >"$tmp/out/modlist"
		touch "$tmp/out/.done"
		rm -rf "$VT_KDIR" && mv "$tmp/out" "$VT_KDIR" && rm -rf "$tmp"
	fi
	VT_KPKG=$pkg
	VT_KERNEL=$VT_KDIR/vmlinux
	[ -s "$VT_KERNEL" ] || VT_KERNEL=$VT_KDIR/vmlinuz
	return 0
}

# apt-get download progress: keep its "Get:"/"Fetched" lines, drop the noise
vt_progress() {
	local ok=1 l
	while IFS= read -r l; do
		case "$l" in
		Get:* | Fetched*) echo "    $l" ;;
		E:* | Err:*) echo "    $l" >&2; ok=0 ;;
		esac
	done
	[ $ok = 1 ]
}

# ------------------------------------------------------------------ initramfs
# busybox-static + the virtio modules + /init, plus mke2fs/e2fsck from the
# host's e2fsprogs with their shared-library closure: busybox only makes ext2
# and has no fsck at all, and ext4 (journal, flushes) is what users run.
VT_E2FS="/sbin/mke2fs /sbin/e2fsck"
# ethtool for the net cases (the offloads and per-queue counters the guest
# driver reports); busybox has none
VT_TOOLS="/usr/sbin/ethtool"

vt_lib_closure() { # binaries... -> every shared object they load (resolved)
	ldd "$@" 2>/dev/null | awk '/=>/ && $3 ~ /^\// {print $3} /^\t\/[^ ]*ld-linux/ {print $1}' | sort -u
}

vt_build_initrd() {
	local key out r a m libs l
	libs=$(vt_lib_closure $VT_E2FS $VT_TOOLS)
	local verify=""
	[ -x "$VD_VERIFY" ] && verify=$VD_VERIFY
	key=$( (cat "$VT_ROOT/tests/guest/init.sh" /bin/busybox "$VT_KDIR"/modules/*.ko \
		/etc/mke2fs.conf $VT_E2FS $VT_TOOLS $libs $verify; echo "$VT_MODULES") 2>/dev/null | md5sum | cut -c1-12)
	out=$VT_CACHE/initrd-$key.cpio.gz
	if [ ! -s "$out" ]; then
		vt_note "building initramfs $out"
		r=$VT_CACHE/rootfs.tmp
		rm -rf "$r" && mkdir -p "$r"/{bin,sbin,proc,sys,dev,tmp,mnt,etc,lib/modules}
		cp /bin/busybox "$r/bin/"
		for a in $(/bin/busybox --list); do
			case "$a" in busybox | mke2fs | mkfs.ext2) continue ;; esac
			ln -s busybox "$r/bin/$a"
		done
		cp "$VT_KDIR"/modules/*.ko "$r/lib/modules/"
		echo "$VT_MODULES" >"$r/lib/modules/order"
		for m in $VT_E2FS $VT_TOOLS; do cp -L "$m" "$r/sbin/"; done
		for l in $libs; do
			mkdir -p "$r$(dirname "$l")"
			cp -L "$l" "$r$l"
		done
		cp /etc/mke2fs.conf "$r/etc/"
		[ -n "$verify" ] && cp "$verify" "$r/bin/vd-verify"
		cp "$VT_ROOT/tests/guest/init.sh" "$r/init"
		chmod 755 "$r/init"
		(cd "$r" && find . | cpio -o -H newc --quiet | gzip -1 >"$out.tmp") && mv "$out.tmp" "$out" ||
			{ vt_err "cannot build $out"; return 1; }
		rm -rf "$r"
		find "$VT_CACHE" -maxdepth 1 -name 'initrd-*.cpio.gz' ! -path "$out" -delete
	fi
	VT_INITRD=$out
}

vt_prepare() { # kernel + initramfs, cached
	vt_get_kernel && vt_build_initrd
}

# ------------------------------------------------------------------ backend
# vt_backend_start IMG SOCK LOG [virtiod options...]
# Starts the backend listening on SOCK and waits for the socket.  Sets
# VT_BACKEND_PID and VT_BACKEND_CMD (the command line, for the record).
vt_backend_start() {
	local img=$1 sock=$2 log=$3 i
	shift 3
	local cmd
	if [ "$VT_BACKEND" = qsd ]; then
		# map the virtiod options the tests use onto qemu-storage-daemon's
		local writable=on nq=1 ro=off
		while [ $# -gt 0 ]; do
			case "$1" in
			--readonly) writable=off ro=on ;;
			--num-queues) nq=$2; shift ;;
			--num-queues=*) nq=${1#*=} ;;
			--serial | --log-level | --queue-size | --io-engine) shift ;;
			esac
			shift
		done
		cmd=(qemu-storage-daemon
			--blockdev "driver=file,node-name=disk0,filename=$img,cache.direct=off,read-only=$ro"
			--export "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=$sock,writable=$writable,num-queues=$nq")
	else
		cmd=("$VIRTIOD" blk --socket-path "$sock" --disk "$img" "$@")
		# QEMU's virtio-mmio reports QueueNumMax 1024 whatever the device's
		# queue-size, and Linux uses the maximum: allow 1024-entry rings
		[ "$VT_MACHINE" = microvm ] && [[ " $* " != *" --queue-size "* ]] && cmd+=(--queue-size 1024)
	fi
	VT_BACKEND_CMD="${cmd[*]}"
	echo "### $(date +%T.%N) starting: $VT_BACKEND_CMD" >>"$log"
	"${cmd[@]}" </dev/null >>"$log" 2>&1 &
	VT_BACKEND_PID=$!
	vt_track "$VT_BACKEND_PID"
	for i in $(seq 100); do
		[ -S "$sock" ] && vt_sock_listening "$sock" && return 0
		kill -0 "$VT_BACKEND_PID" 2>/dev/null || break
		sleep 0.1
	done
	vt_err "backend did not start listening on $sock; log $log:"
	tail -n 15 "$log" >&2
	return 1
}

# true when something accepts connections on the unix socket path (after a
# SIGKILL the stale socket file stays behind: its mere existence proves
# nothing).  /proc/net/unix flags 00010000 = __SO_ACCEPTCON, i.e. listening.
vt_sock_listening() {
	awk -v p="$1" '$4 == "00010000" && $NF == p { found = 1 } END { exit !found }' /proc/net/unix
}

# ------------------------------------------------------------------ QEMU
# vt_qemu_start LOG SOCK SMP NUMQ RECONNECT(0|1) APPEND...
# Starts QEMU in the background with the serial console appended to LOG and
# its input from VT_QEMU_STDIN (default /dev/null).
# Sets VT_QEMU_PID and VT_QEMU_CMD.
vt_qemu_start() {
	local log=$1 sock=$2 smp=$3 numq=$4 reconnect=$5
	shift 5
	local append="console=ttyS0 reboot=t panic=-1 quiet loglevel=1 mitigations=off"
	# boot-time trimming for a throw-away guest (crypto self-tests and
	# LSM/audit init are what costs under TCG)
	append="$append cryptomgr.notests apparmor=0 security=none audit=0 no_timer_check"
	append="$append i8042.noaux i8042.nokbd i8042.nopnp $*"
	local chr="socket,id=c0,path=$sock"
	[ "$reconnect" = 1 ] && chr="$chr,reconnect=1"
	local margs dev
	case "$VT_MACHINE" in
	q35)
		margs=(-M q35,memory-backend=mem)
		dev=vhost-user-blk-pci
		;;
	microvm)
		# virtio-mmio is legacy (v1) by default, which vhost-user backends
		# refuse; microvm has no HPET/PM timer, so a failed PIT calibration
		# on a busy host hangs the boot unless the TSC rate is given
		margs=(-M microvm,memory-backend=mem -global virtio-mmio.force-legacy=false)
		dev=vhost-user-blk
		# virtio-mmio offers the guest 1024-entry rings whatever queue-size
		# says, and QEMU sizes the inflight area by queue-size: make them agree
		[[ "${GUEST_DEVICE_PROPS:-}" == *queue-size=* ]] || dev="$dev,queue-size=1024"
		local khz=${GUEST_TSC_KHZ:-$(awk -F: '/^cpu MHz/ {printf "%d", $2*1000; exit}' /proc/cpuinfo)}
		append="$append pci=off${khz:+ tsc_early_khz=$khz}"
		;;
	*) vt_err "GUEST_MACHINE=$VT_MACHINE: expected q35 or microvm"; return 1 ;;
	esac
	# num-queues must be explicit: the -pci device defaults to one queue per
	# vCPU and refuses a backend that offers fewer
	local devargs=(-device "$dev,chardev=c0,num-queues=$numq${GUEST_DEVICE_PROPS:+,$GUEST_DEVICE_PROPS}")
	# another device on chardev c0 (tests/guest/net.sh sets its arguments),
	# or with VT_NO_CHARDEV=1 one of QEMU's own (bench/net.sh: -netdev tap)
	[ -n "${VT_DEVICE_ARGS:-}" ] && read -r -a devargs <<<"$VT_DEVICE_ARGS"
	local chrargs=(-chardev "$chr")
	[ "${VT_NO_CHARDEV:-0}" = 1 ] && chrargs=()
	VT_QEMU_CMD=("$QEMU" "${margs[@]}" -accel tcg -cpu max -smp "$smp" -m "${VT_MEM}M"
		-object "memory-backend-memfd,id=mem,size=${VT_MEM}M,share=on"
		"${chrargs[@]}" "${devargs[@]}"
		-kernel "$VT_KERNEL" -initrd "$VT_INITRD" -append "$append"
		-nodefaults -no-user-config -display none -serial stdio -no-reboot)
	echo "### $(date +%T.%N) starting: ${VT_QEMU_CMD[*]}" >>"$log"
	"${VT_QEMU_CMD[@]}" <"${VT_QEMU_STDIN:-/dev/null}" >>"$log" 2>&1 &
	VT_QEMU_PID=$!
	vt_track "$VT_QEMU_PID"
}

# vt_wait_for LOG PATTERN TIMEOUT_S [PID]: wait until an (extended) regex
# matches a console line.  0 = seen, 1 = PID exited first, 2 = timeout.
vt_wait_for() {
	local log=$1 pat=$2 deadline=$(($(date +%s) + $3)) pid=${4:-}
	while :; do
		grep -aqE "$pat" "$log" 2>/dev/null && return 0
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			grep -aqE "$pat" "$log" 2>/dev/null && return 0
			return 1
		fi
		[ "$(date +%s)" -ge "$deadline" ] && return 2
		sleep 0.05
	done
}

# After the result marker the guest powers off; give QEMU a few seconds.
vt_qemu_finish() {
	local i
	for i in $(seq 100); do
		kill -0 "$VT_QEMU_PID" 2>/dev/null || break
		sleep 0.05
	done
	vt_stop "$VT_QEMU_PID"
}

vt_result_line() { grep -a -m1 '^VT-RESULT:' "$1" | tr -d '\r'; }
vt_lines() { grep -a "^$2" "$1" | tr -d '\r'; }

# vt_verify_regions LOG IMG: each "VT-DD: off=O len=L md5=H" line the guest
# printed must match the bytes at that offset of the image on the host.
vt_verify_regions() {
	local log=$1 img=$2 off len md5 host n=0
	while read -r off len md5; do
		host=$(dd if="$img" bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$len" 2>/dev/null |
			md5sum | cut -d' ' -f1)
		if [ "$host" != "$md5" ]; then
			echo "host image differs at off=$off len=$len: guest $md5, image $host"
			return 1
		fi
		n=$((n + 1))
	done < <(vt_lines "$log" 'VT-DD:' | sed -n 's/^VT-DD: off=\([0-9]*\) len=\([0-9]*\) md5=\([0-9a-f]*\).*/\1 \2 \3/p')
	[ $n -gt 0 ] || { echo "no VT-DD lines to verify"; return 1; }
	echo "$n regions match the image"
}

# vt_flip_byte FILE OFFSET: xor one byte of FILE with 0x01, in place
vt_flip_byte() {
	local b
	b=$(dd if="$1" bs=1 skip="$2" count=1 status=none | od -An -tu1 | tr -d ' ')
	printf "$(printf '\\%03o' $((b ^ 1)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
