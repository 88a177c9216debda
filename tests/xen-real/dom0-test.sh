#!/bin/sh
# Runs in dom0 after dom0-init.sh has the toolstack up: the cases of
# tests/xen-real in sequence on one Xen boot. Prints one "XR-CASE <name>
# PASS|FAIL <details>" line per case and a final "XR-RESULT PASS|FAIL ..."
# line that run.sh on the host turns into an exit code.
#
# Cases (XR_CASES in /xr/config; default: every guest of /xr/matrix):
#   <guest>  a matrix guest: boot it, serve its three virtio-blk devices as
#            the matrix says, let vd-verify run on all of them, check every
#            image here against the guest's record (see matrix.txt); its
#            rng and net device work meanwhile: the guest reads /dev/hwrng
#            and moves NET_KB KiB each way between itself and dom0
#   probe    no daemon: the guest finds LNRO0005 and virtio_mmio tries to probe
#   soak     SOAK_N boots of one guest (SOAK_GUEST=kernel:boot) with a short
#            verify each: how often the nested guest dies, and where
#   bench    virtiod's virtio-blk against xen-blkback's PV disk on one image
#            in one guest: IOPS and dom0 CPU per request (make bench-xen)
#
# A guest that dies before its userspace has met no virtio device (the
# drivers load in userspace): its case runs again, up to BOOT_RETRIES
# times, and at most RETRIES_MAX times in a run (a bound on the run time).
# A guest that dies later fails its case, with one exception, twice per run
# at most (POST_IO_RETRIES): a triple fault that Xen dumped for that domain (the
# nested-SVM signature) while neither the guest's verifier nor any of its
# virtiods had reported anything wrong. A case that failed on data, or on
# a device that needed reset, is never run again.
. /xr/config
VD=/usr/bin/virtiod
up() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(up)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "XR-D [$(up)] $*"; }
stage() { echo "XR-T case=$CASE stage=$1 secs=$2"; }
secs() { cut -d. -f1 /proc/uptime; }
GUEST_RESULT='XR-G \[[ 0-9.]*\] RESULT '

# ---------------------------------------------------------------- matrix
# guest_attr NAME -> ID KERNEL BOOT MODE END; dev_rows ID -> its dev lines
guest_row() { awk -v n="$1" '$1 == "guest" && $2 == n { print $3, $4, $5, $6, $7 }' /xr/matrix; }
dev_rows() { awk -v id="$1" '$1 == "dev" && $2 == id { print $3, $4, $5, $6, $7, $8 }' /xr/matrix; }
matrix_guests() { awk '$1 == "guest" { print $2 }' /xr/matrix; }
aux_row() { awk -v k="$1" -v id="$2" '$1 == k && $2 == id { print $3, $4 }' /xr/matrix; }

# slot N -> window base and IRQ from XR_DEVS ("BASE:IRQ ...")
slot_base() { echo "$XR_DEVS" | tr ' ' '\n' | sed -n "$(($1 + 1))p" | cut -d: -f1; }
slot_irq() { echo "$XR_DEVS" | tr ' ' '\n' | sed -n "$(($1 + 1))p" | cut -d: -f2; }
# libxl 4.17 devids of xvde, xvdf, xvdg: xvda..xvdd of an HVM guest would
# also be handed to QEMU as emulated IDE disks
slot_vdev() { echo "xvde xvdf xvdg xvdh" | cut -d' ' -f$(($1 + 1)); }
slot_devid() { echo $((51776 + 16 * $1)); }

# ---------------------------------------------------------------- helpers
# make_cfg NAME KERNEL BOOT [EXTRA_LINE] > /tmp/NAME.cfg
# disk: the guest boots from a small FAT image (syslinux, kernel, initrd)
# that QEMU serves as a virtio-blk PCI disk; SeaBIOS reads it by DMA.
# direct: xl kernel=/ramdisk=: QEMU loads them through fw_cfg port I/O
# (Xen's QEMU has no fw_cfg DMA), one ioreq per page and a per-byte loop in
# QEMU: the slow way, but what users of direct boot get.
# No emulated serial port: each byte would be an ioreq to QEMU.
make_cfg() {
	case $3 in
	disk) _bootcfg="boot = \"c\"
device_model_args_hvm = [ \"-drive\", \"file=/boot/guest-boot-$2.img,if=none,id=xrboot,format=raw,readonly=on\",
                          \"-device\", \"virtio-blk-pci,drive=xrboot,bootindex=0\" ]" ;;
	direct) _bootcfg="kernel = \"/boot/vmlinuz-$2\"
ramdisk = \"/boot/guest-initrd\"
extra = \"console=hvc0 loglevel=4\"" ;;
	esac
	# tsc_mode "native" (TSC_MODE, the default here): with Xen's default
	# the guest's RDTSC exits to Xen, and under QEMU TCG's nested SVM
	# such exits now and then triple-fault a running guest (in the
	# generic kernel's pvclock_clocksource_read); docs/testing-xen-real.md
	_tsc=
	[ -n "$TSC_MODE" ] && _tsc="tsc_mode = \"$TSC_MODE\""
	cat >/tmp/$1.cfg <<EOF
name = "$1"
type = "hvm"
device_model_version = "qemu-xen"
$_bootcfg
memory = $GUEST_MEM
vcpus = 1
vnc = 0
sdl = 0
nographic = 1
vga = "none"
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
$_tsc
$4
EOF
}

gcon() { echo /var/log/xen/console/guest-$1.log; }

# follow NAME: copy the guest console to our console, prefixed
follow() {
	_i=0
	while [ ! -e "$(gcon "$1")" ] && [ $_i -lt 50 ]; do sleep 0.1; _i=$((_i + 1)); done
	touch "$(gcon "$1")"
	rm -f /tmp/follow.fifo && mkfifo /tmp/follow.fifo
	sed "s/^/[guest $1] /" </tmp/follow.fifo &
	tail -n +1 -f "$(gcon "$1")" >/tmp/follow.fifo 2>/dev/null &
	FOLLOW=$!
}
unfollow() {
	# the sed ends when tail, its only writer, is gone
	[ -n "$FOLLOW" ] && kill "$FOLLOW" 2>/dev/null
	FOLLOW=
}

# wait_line NAME REGEX SECS: 0 once the guest console has a matching line;
# 1 on timeout; 2 if the domain went away first
wait_line() {
	_end=$(($(secs) + $3))
	while [ "$(secs)" -lt $_end ]; do
		grep -qE "$2" "$(gcon "$1")" 2>/dev/null && return 0
		xl domid "$1" >/dev/null 2>&1 || {
			sleep 1
			grep -qE "$2" "$(gcon "$1")" 2>/dev/null && return 0
			return 2
		}
		sleep 0.3
	done
	return 1
}

# wait_gone NAME SECS: 0 once no domain of that name is left
wait_gone() {
	_end=$(($(secs) + $2))
	while [ "$(secs)" -lt $_end ]; do
		xl domid "$1" >/dev/null 2>&1 || return 0
		sleep 0.3
	done
	return 1
}

# wait_exit PID SECS: 0 once the process is gone (its status in WAITRC)
wait_exit() {
	_end=$(($(secs) + $2))
	while [ "$(secs)" -lt $_end ]; do
		if ! kill -0 "$1" 2>/dev/null; then
			wait "$1" 2>/dev/null
			WAITRC=$?
			return 0
		fi
		sleep 0.2
	done
	return 1
}

# zombies: domains that are dying but not gone (the list shows "(null)"),
# which is what leaked foreign mappings look like
zombies() { xl list 2>/dev/null | awk 'NR > 1 && $1 != "Domain-0"' | grep -c .; }

# create NAME: xl create -p; sets DOMID; 0 on success
create() {
	_t=$(up)
	rm -f "$(gcon "$1")"
	if ! xl -vvv create -p /tmp/$1.cfg >/tmp/xl-create-$1.log 2>&1; then
		log "xl create $1 failed:"
		tail -n 40 /tmp/xl-create-$1.log | sed 's/^/XR-D xl: /'
		tail -n 20 /var/log/xen/qemu-dm-$1.log 2>/dev/null | sed 's/^/XR-D qemu-dm: /'
		return 1
	fi
	DOMID=$(xl domid "$1")
	stage xl-create "$(since "$_t")"
	log "domain $1 is $DOMID (paused)"
}

# vd_ready LOG PID SECS [COUNT]: wait until the log says COUNT (1) devices
# serve, or the process is gone
vd_ready() {
	_end=$(($(secs) + $3))
	while [ "$(secs)" -lt $_end ]; do
		[ "$(grep -cE 'serving domain|watching' "$1" 2>/dev/null)" -ge "${4:-1}" ] && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# xen_errors: new Xen console lines (since the case began) that look like
# errors; the count on stdout, the lines on the console. It empties Xen's
# ring, so what it read stays in /tmp/xl-dmesg-$CASE.log for finish.
xen_errors() {
	xl dmesg -c >>/tmp/xl-dmesg-$CASE.log 2>&1
	# "(dN) ..." lines are the guest firmware's debug output, not Xen's
	grep -vE '^\(d[0-9]+\) ' /tmp/xl-dmesg-$CASE.log |
		grep -iE 'error|fail|bug|crash|fatal|assert|panic|leak|warn|triple' >/tmp/xl-dmesg-$CASE.err
	sed 's/^/XR-D xen error: /' /tmp/xl-dmesg-$CASE.err >&2
	grep -c . /tmp/xl-dmesg-$CASE.err
}

# xen_log: this case's Xen console so far (what xen_errors took and the rest)
xen_log() { cat /tmp/xl-dmesg-$CASE.log 2>/dev/null; xl dmesg 2>/dev/null; }

dump_log() { [ -f "$1" ] && tail -n "${2:-40}" "$1" | sed "s|^|XR-D $(basename "$1"): |"; }

# ---------------------------------------------------------------- devices
# The image store: tmpfs is dom0's /tmp; ext4 a filesystem in a loop file
# (also on tmpfs: what matters is the filesystem virtiod writes through).
setup_ext4() {
	[ -d /ext4/lost+found ] && return 0
	truncate -s 400M /tmp/ext4.fs
	/usr/sbin/mke2fs -q -t ext4 -F /tmp/ext4.fs >/tmp/mke2fs.log 2>&1 || { cat /tmp/mke2fs.log; return 1; }
	mkdir -p /ext4
	mount -t ext4 -o loop /tmp/ext4.fs /ext4 || return 1
	log "ext4 store: $(grep ' /ext4 ' /proc/mounts)"
}

img_path() { # STORE ID SLOT
	case $1 in
	tmpfs) echo /tmp/img-$2$3.img ;;
	ext4) echo /ext4/img-$2$3.img ;;
	esac
}

# vd_args ENGINE RING CACHE: the device options of a matrix slot, for the
# command line (--) or the watcher's mapping file (no --)
vd_opts() {
	_o="io-engine=$1 serial=$4"
	[ "$2" = split ] && _o="$_o no-packed"
	[ "$3" = nocache ] && _o="$_o map-cache-size=0"
	echo "$_o"
}
cli_words() { for w in "$@"; do echo "--$w"; done | sed 's/=/ /' | tr '\n' ' '; }
cli_opts() { cli_words $(vd_opts "$@"); }

# start_explicit SLOT LOG: one virtiod for slot SLOT of the current case
start_explicit() {
	eval "_a=\$ARGS_$1"
	log "starting: virtiod blk $_a"
	# shellcheck disable=SC2086
	$VD blk $_a >>"$2" 2>&1 &
	eval "PID_$1=$!"
}

# ---------------------------------------------------------------- rng and net
# The rng and net device of a matrix guest, at the windows after the disks.
# Explicit guests get `virtiod rng|net --xen-domid`, watch guests one
# `virtiod --config FILE` for both (libxl 4.17 has no nodes for them).
# XR_NETRNG says which of the two the guests get (default none; "rng",
# or "rng net" as make check-xen-netrng sets it).
NET_TAP=xrnet0 NET_DOM0=10.77.0.1 NET_GUEST=10.77.0.2
# want rng|net: XR_NETRNG names it and the matrix has a line for this guest
want() {
	case " $XR_NETRNG " in *" $1 "*) ;; *) return 1 ;; esac
	[ -n "$(aux_row "$1" "$G_ID")" ]
}
start_netrng() {
	set -- $(aux_row net "$G_ID")
	NET_RING=${1:-packed} NET_PAIRS=${2:-1}
	set -- $(aux_row rng "$G_ID")
	RNG_RATE=${1:--}
	_nb=$(slot_base "$XR_NBLK") _ni=$(slot_irq "$XR_NBLK")
	_rb=$(slot_base $((XR_NBLK + 1))) _ri=$(slot_irq $((XR_NBLK + 1)))
	# the device options as the config file words; the command line
	# takes them with -- and a space for the =
	_rng= _net="tap=$NET_TAP queue-pairs=$NET_PAIRS"
	[ "$RNG_RATE" = - ] || _rng="rate=$RNG_RATE"
	[ "$NET_RING" = split ] && _net="$_net no-packed"
	RNGLOG=/tmp/vd-$CASE-rng.log NETLOG=/tmp/vd-$CASE-net.log NRPIDS=
	: >"$RNGLOG"
	: >"$NETLOG"
	: >/tmp/$CASE-netrng.conf
	if want rng; then
		log "case $CASE: rng rate=$RNG_RATE at $_rb irq $_ri"
		echo "rng domid=$DOMID base=$_rb irq=$_ri $_rng" >>/tmp/$CASE-netrng.conf
	fi
	if want net; then
		log "case $CASE: net $NET_RING pairs=$NET_PAIRS tap $NET_TAP at $_nb irq $_ni"
		echo "net domid=$DOMID base=$_nb irq=$_ni $_net" >>/tmp/$CASE-netrng.conf
	fi
	_n=$(grep -c . /tmp/$CASE-netrng.conf)
	[ "$_n" = 0 ] && return 0
	if [ "$G_MODE" = explicit ]; then
		while read -r _type _dom _base _irq _opts; do
			_l=$RNGLOG
			[ "$_type" = net ] && _l=$NETLOG
			# shellcheck disable=SC2086
			$VD "$_type" --xen-domid "$DOMID" --mmio-base "${_base#base=}" --irq "${_irq#irq=}" \
				$(cli_words $_opts) --control /tmp/vd-$CASE-$_type.ctl $VD_ARGS >>"$_l" 2>&1 &
			NRPIDS="$NRPIDS $!"
			vd_ready "$_l" $! 30 || return 1
		done </tmp/$CASE-netrng.conf
	else
		NETLOG=$RNGLOG
		sed 's/^/XR-D netrng.conf: /' /tmp/$CASE-netrng.conf
		rm -rf /tmp/vd-$CASE-ctl && mkdir -p /tmp/vd-$CASE-ctl
		# shellcheck disable=SC2086
		$VD --config /tmp/$CASE-netrng.conf --control /tmp/vd-$CASE-ctl $VD_ARGS >>"$RNGLOG" 2>&1 &
		NRPIDS=$!
		vd_ready "$RNGLOG" "$NRPIDS" 30 "$_n" || return 1
	fi
	ALLPIDS="$ALLPIDS $NRPIDS"
	want net || return 0
	# dom0's end of the link: the tap virtiod made, and the peer's nc
	_i=0
	while [ ! -e /sys/class/net/$NET_TAP ] && [ $_i -lt 50 ]; do sleep 0.1; _i=$((_i + 1)); done
	ip addr add $NET_DOM0/24 dev $NET_TAP && ip link set $NET_TAP up || return 1
	rm -f /tmp/net-hold /tmp/net-from-guest.bin
	mkfifo /tmp/net-hold
	# stdin a fifo nc holds open itself: it never half-closes early
	nc -l -p 5001 <>/tmp/net-hold >/tmp/net-from-guest.bin 2>/dev/null &
	NETRX=$!
	head -c $((NET_KB * 1024)) /dev/urandom >/tmp/net-to-guest.bin
	(wait_line "$CASE" 'XR-G .* NET listening' 900 && nc $NET_GUEST 5002 </tmp/net-to-guest.bin) &
	NETTX=$!
	ALLPIDS="$ALLPIDS $NETRX $NETTX"
}

# check_netrng: what the guest and dom0 saw of the rng and the net device;
# sets NR_OK (1/0) and NR_DET
check_netrng() {
	_con=$(gcon "$CASE")
	NR_OK=1 NR_DET=
	# every process ends by itself once the guest is gone, with status 0
	# (and has logged its counters)
	_nrx=
	for _p in $NRPIDS; do
		_rc=none
		wait_exit "$_p" "$VD_EXIT_SECS" && _rc=$WAITRC
		_nrx="$_nrx $_rc"
		[ "$_rc" = 0 ] || NR_OK=0
	done
	if want rng; then
		_r=$(grep -oE 'XR-G [^ ]* RNG .*' "$_con" | tail -n 1 | sed 's/^XR-G [^ ]* RNG //' | tr -d '\r')
		case $_r in
		rng_current=virtio_rng*" bytes=$((RNG_KB * 1024)) "*) NR_DET="rng: $_r" ;;
		*) NR_OK=0 NR_DET="rng: '${_r:-no line}'" ;;
		esac
	fi
	if want net; then
		_l() { grep -oE "XR-G [^ ]* NET $1.*" "$_con" | tail -n 1 | sed "s/^XR-G [^ ]* NET //" | tr -d '\r'; }
		_want=$(md5sum </tmp/net-to-guest.bin | cut -d' ' -f1)
		_rx=$(_l rx | sed -n 's/.*md5=\([0-9a-f]*\).*/\1/p')
		_tx=$(_l tx | sed -n 's/.*md5=\([0-9a-f]*\).*/\1/p')
		_got=
		for _ in 1 2 3 4 5 6 7 8 9 10; do # dom0's nc may still be writing
			_got=$(md5sum </tmp/net-from-guest.bin | cut -d' ' -f1)
			[ "$_got" = "$_tx" ] && break
			sleep 0.5
		done
		_fail=$(_l FAIL)
		_net="net $NET_RING/pairs=$NET_PAIRS: $(_l eth0 | cut -d' ' -f1) $(_l ping | grep -oE '[0-9]+ packets received')"
		# the control queue (the last, after the pairs) answered the
		# guest's commands (RX mode and MAC table as eth0 came up,
		# VQ_PAIRS_SET with two pairs): its count when it stopped
		_ctrl=$(grep -oE "q$((2 * NET_PAIRS))\]: control: [0-9]+ commands done, [0-9]+ refused" "$NETLOG" |
			tail -n 1 | sed 's/.*control: \([0-9]*\) commands done, \([0-9]*\) refused/\1 \2/')
		set -- $_ctrl
		if [ "${1:-0}" -gt 0 ] && [ "${2:-1}" = 0 ]; then
			_net="$_net control-commands=$1"
		else
			NR_OK=0 _net="$_net control-queue:'${_ctrl:-no line}'"
		fi
		if [ -n "$_fail" ]; then
			NR_OK=0 _net="$_net FAIL '$_fail'"
		elif [ "$_rx" != "$_want" ] || [ "$_tx" != "$_got" ] || [ -z "$_tx" ]; then
			NR_OK=0 _net="$_net md5 dom0->guest sent=$_want guest-got=${_rx:-none} guest->dom0 sent=${_tx:-none} dom0-got=$_got"
		else
			_net="$_net $NET_KB KiB each way, md5s match ($(_l rx | grep -o 'secs=[0-9.]*')/$(_l done | grep -o 'secs=[0-9.]*'))"
		fi
		NR_DET="${NR_DET:+$NR_DET; }$_net"
	fi
	if grep -q 'device needs reset' "$RNGLOG" "$NETLOG"; then
		NR_OK=0 NR_DET="$NR_DET; a device needed reset"
	fi
	[ -n "$NRPIDS" ] && NR_DET="$NR_DET; exits=[$(echo $_nrx)]"
	rm -f /tmp/net-to-guest.bin /tmp/net-from-guest.bin /tmp/net-hold
}

# ---------------------------------------------------------------- the guest's verdict
# check_slot SLOT: what the guest, virtiod and the image say about one
# device; sets SLOT_OK (1/0) and SLOT_DET
check_slot() {
	eval "_eng=\$ENG_$1 _ring=\$RING_$1 _cache=\$CACHE_$1 _img=\$IMG_$1 _ser=\$SER_$1 _log=\$LOG_$1"
	SLOT_OK=1 SLOT_DET=
	_con=$(gcon "$CASE")
	# the guest negotiated what the matrix asked for (virtio 1.2: bit 34
	# RING_PACKED, 28 INDIRECT_DESC, 29 EVENT_IDX; Linux prints bit 0 first)
	_feat=$(grep -o "DISK dev=[a-z]* serial=$_ser .*features=[01]*" "$_con" | tail -n 1 | sed 's/.*features=//')
	_p=$(echo "$_feat" | cut -c35)
	_ie=$(echo "$_feat" | cut -c29-30)
	_want=0; [ "$_ring" = packed ] && _want=1
	if [ "$_p" != "$_want" ] || [ "$_ie" != 11 ]; then
		SLOT_OK=0
		SLOT_DET="$SLOT_DET features=${_feat:-none}(want-packed=$_want)"
	fi
	# the engine the queue really ran (no silent fallback)
	eval "_tag=\$TAG_$1"
	_engs=$(grep -F "$_tag q" "$_log" | grep -o 'started, [a-z]* engine' |
		sort -u | sed 's/started, //; s/ engine//' | tr '\n' ' ')
	[ "$_engs" = "$_eng " ] || { SLOT_OK=0; SLOT_DET="$SLOT_DET engines=${_engs:-none}"; }
	# the mapping cache did (or did not) do the work
	_mem=$(grep -F "$_tag]: guest memory: " "$_log" | grep -o 'guest memory: .*' | tail -n 1)
	_maps=$(echo "$_mem" | sed -n 's/guest memory: \([0-9]*\) foreign map calls.*/\1/p')
	_hits=$(echo "$_mem" | sed -n 's/.* \([0-9]*\) hits.*/\1/p')
	case $_cache in
	cache) [ -n "$_maps" ] && [ "${_hits:-0}" -gt "$_maps" ] || { SLOT_OK=0; SLOT_DET="$SLOT_DET cache-unused"; } ;;
	# (without a cache the rings, pinned while in use, can still hit)
	nocache) [ -n "$_maps" ] && [ "$_maps" -ge 100 ] && [ $((${_hits:-0} * 10)) -lt "$_maps" ] ||
		{ SLOT_OK=0; SLOT_DET="$SLOT_DET cache-not-off"; } ;;
	esac
	# the guest's verdict and record
	_res=$(grep "XR-G V $_ser: " "$_con" | grep -o 'VD-VERIFY RESULT .*' | tail -n 1)
	_sum=$(echo "$_res" | grep -o 'record_sum=[0-9a-fx]*' | cut -d= -f2)
	case $_res in
	"VD-VERIFY RESULT PASS"*) ;;
	*) SLOT_OK=0; SLOT_DET="$SLOT_DET guest='${_res:-no result}'" ;;
	esac
	# dom0's view of the image against the guest's record
	if [ -n "$_sum" ] && vd-verify check --image "$_img" --expect-sum "$_sum" >/tmp/check-$1.log 2>&1; then
		_chk=ok
	else
		_chk=FAIL
		SLOT_OK=0
		sed "s/^/XR-D check $_ser: /" /tmp/check-$1.log | tail -n 15
	fi
	_ops=$(echo "$_res" | grep -oE ' (ops|bytes_w|bytes_r|flushes|discards|qd1|qd32)=[0-9]*' | tr -d '\n')
	SLOT_DET="$_ser:$_eng/$_ring/$_cache/$(eval echo \$STORE_$1) image=$_chk maps=${_maps:-?} hits=${_hits:-?}${_ops}$SLOT_DET"
}

# finish STATUS DETAILS: print the case line, clean up whatever is left.
finish() {
	unfollow
	xl destroy "$CASE" 2>/dev/null
	for p in $ALLPIDS; do kill -KILL "$p" 2>/dev/null; done
	ALLPIDS=
	# a guest that died before its userspace never met virtiod
	if [ "$1" != PASS ] && [ "$ATTEMPT" -le "$BOOT_RETRIES" ] && [ "$RETRIES" -lt "$RETRIES_MAX" ] &&
		[ -n "$DOMID" ] &&
		! grep -q 'PHASE userspace' "$(gcon "$CASE")" 2>/dev/null; then
		xen_log >/tmp/xl-dmesg-$CASE-attempt$ATTEMPT.log
		xl dmesg -c >/dev/null 2>&1
		_tf=$(grep -c 'Triple fault' /tmp/xl-dmesg-$CASE-attempt$ATTEMPT.log)
		log "case $CASE: the guest died before its userspace ($_tf triple faults in the Xen log): boot flake, running the case again"
		echo "XR-RETRY $CASE attempt=$ATTEMPT triple_faults=$_tf $2"
		RETRY=1
		RETRIES=$((RETRIES + 1))
		return
	fi
	if [ "$1" != PASS ] && [ "$POST_IO_RETRIES" -gt 0 ] && [ -n "$DOMID" ] &&
		[ -n "$(guest_row "$CASE")" ] &&
		xen_log | grep -q "d${DOMID}v[0-9]* Triple fault" &&
		! grep -qE 'VD-VERIFY (ERROR|MISMATCH|RESULT FAIL)|RESULT FAIL' "$(gcon "$CASE")" 2>/dev/null &&
		! cat /tmp/vd-"$CASE"-*.log 2>/dev/null | grep -q 'device needs reset'; then
		xen_log >/tmp/xl-dmesg-$CASE-attempt$ATTEMPT.log
		xl dmesg -c >/dev/null 2>&1
		# (also a boot death once BOOT_RETRIES are spent)
		_u=no
		grep -q 'PHASE userspace' "$(gcon "$CASE")" 2>/dev/null && _u=yes
		log "case $CASE: the guest triple-faulted (userspace reached: $_u) with no data error and no device error reported: nested-SVM flake, running the case again (at most twice per run)"
		echo "XR-RETRY $CASE attempt=$ATTEMPT clean_triple_fault=1 userspace=$_u $2"
		RETRY=1
		POST_IO_RETRIES=$((POST_IO_RETRIES - 1))
		return
	fi
	echo "XR-CASE $CASE $1 $2 secs=$(since "$CASE_T0")"
	[ "$1" = PASS ] || FAILED="$FAILED $CASE"
}

# ---------------------------------------------------------------- a matrix guest
case_matrix() {
	set -- $(guest_row "$CASE")
	G_ID=$1 G_KERNEL=$2 G_BOOT=$3 G_MODE=$4 G_END=$5
	SLOTS=
	_disks=
	_map=/tmp/$CASE.conf
	: >"$_map"
	ALLPIDS=
	while read -r _slot _eng _ring _cache _store _event; do
		_img=$(img_path "$_store" "$G_ID" "$_slot")
		rm -f "$_img"
		truncate -s "${IMG_MB}M" "$_img"
		# flags for the guest (guest-init.sh): b busy at the end, e an event
		_fl=
		[ "$G_END" = destroy ] && [ "$_slot" = 0 ] && _fl=b
		[ "$_event" != - ] && _fl=${_fl}e
		_ser=xr.$G_ID.$_slot${_fl:+.$_fl}
		_base=$(slot_base "$_slot") _irq=$(slot_irq "$_slot")
		eval "ENG_$_slot=$_eng RING_$_slot=$_ring CACHE_$_slot=$_cache STORE_$_slot=$_store"
		eval "EVENT_$_slot=$_event IMG_$_slot=$_img SER_$_slot=$_ser LOG_$_slot=/tmp/vd-$CASE-$_slot.log"
		# how the shim names the device in the log
		eval "TAG_$_slot=blk0"
		[ "$G_MODE" = watch ] && eval "TAG_$_slot=dev$(slot_devid "$_slot")"
		: >/tmp/vd-$CASE-$_slot.log
		if [ "$G_MODE" = explicit ]; then
			eval "ARGS_$_slot=\"--xen-domid @DOMID@ --mmio-base $_base --irq $_irq --disk $_img $(cli_opts "$_eng" "$_ring" "$_cache" "$_ser") $VD_ARGS\""
		else
			echo "blk domain=$CASE devid=$(slot_devid "$_slot") base=$_base irq=$_irq $(vd_opts "$_eng" "$_ring" "$_cache" "$_ser")" >>"$_map"
			_disks="$_disks${_disks:+, }'vdev=$(slot_vdev "$_slot"), format=raw, specification=virtio, target=$_img'"
		fi
		SLOTS="$SLOTS $_slot"
	done <<EOF
$(dev_rows "$G_ID")
EOF
	log "case $CASE: kernel=$G_KERNEL boot=$G_BOOT mode=$G_MODE end=$G_END slots:$(for s in $SLOTS; do eval echo -n "\" \$SER_$s=\$ENG_$s/\$RING_$s/\$CACHE_$s/\$STORE_$s/\$EVENT_$s\""; done)"

	if [ "$G_MODE" = watch ]; then
		sed 's/^/XR-D mapping: /' "$_map"
		_wlog=/tmp/vd-$CASE-watch.log
		: >"$_wlog"
		log "starting: virtiod xen-watch --config $_map"
		$VD xen-watch --config "$_map" $VD_ARGS >"$_wlog" 2>&1 &
		WATCHPID=$!
		ALLPIDS=$WATCHPID
		for s in $SLOTS; do eval "LOG_$s=$_wlog"; done
		if ! vd_ready "$_wlog" "$WATCHPID" 30; then
			dump_log "$_wlog"
			finish FAIL "virtiod xen-watch did not become ready"
			return
		fi
		make_cfg "$CASE" "$G_KERNEL" "$G_BOOT" "disk = [ $_disks ]"
	else
		make_cfg "$CASE" "$G_KERNEL" "$G_BOOT"
	fi
	if ! create "$CASE"; then
		[ -n "$WATCHPID" ] && dump_log "$_wlog"
		finish FAIL "xl-create"
		return
	fi
	follow "$CASE"
	_t=$(up)
	if ! start_netrng; then
		dump_log "$RNGLOG"
		[ "$NETLOG" != "$RNGLOG" ] && dump_log "$NETLOG"
		finish FAIL "the rng and net devices did not start"
		return
	fi
	if [ "$G_MODE" = explicit ]; then
		for s in $SLOTS; do
			eval "ARGS_$s=\$(echo \"\$ARGS_$s\" | sed s/@DOMID@/$DOMID/)"
			eval "_l=\$LOG_$s"
			start_explicit "$s" "$_l"
			eval "ALLPIDS=\"\$ALLPIDS \$PID_$s\""
		done
		for s in $SLOTS; do
			eval "_l=\$LOG_$s _p=\$PID_$s"
			if ! vd_ready "$_l" "$_p" 30; then
				dump_log "$_l"
				finish FAIL "virtiod for slot $s did not become ready"
				return
			fi
		done
	else
		# libxl 4.17 waited for InitWait; every node must say so
		_be=/local/domain/0/backend/virtio_disk/$DOMID
		_st=
		for s in $SLOTS; do _st="$_st$(xenstore-read "$_be/$(slot_devid "$s")/state" 2>/dev/null)"; done
		log "backend states: $_st"
		if [ "$_st" != "$(for s in $SLOTS; do printf 2; done)" ]; then
			xenstore-ls -f "$_be" 2>/dev/null | sed 's/^/XR-D xenstore: /'
			finish FAIL "backend states '$_st', expected InitWait (2) for each"
			return
		fi
	fi
	stage devices-ready "$(since "$_t")"
	xl unpause "$CASE"
	_t=$(up)
	wait_line "$CASE" 'PHASE userspace' "$GUEST_TIMEOUT"
	case $? in
	0) stage unpause-to-guest-userspace "$(since "$_t")" ;;
	2) finish FAIL "the guest died before its userspace"; return ;;
	*) finish FAIL "no guest userspace after ${GUEST_TIMEOUT}s"; return ;;
	esac
	if ! wait_line "$CASE" 'PHASE disks-up' 300; then
		for s in $SLOTS; do eval "dump_log \$LOG_$s 20"; done
		finish FAIL "guest: disks did not come up: $(grep -o 'RESULT .*' "$(gcon "$CASE")" | head -n 1)"
		return
	fi
	stage userspace-to-disks "$(since "$_t")"

	# events during the verify: kill or hand over, then a new daemon
	# (explicit: dom0 starts it; watch: the watcher restarts its crashed
	# device process); either way it must take the IOREQ server over
	for s in $SLOTS; do
		eval "_ev=\$EVENT_$s _ser=\$SER_$s _l=\$LOG_$s _p=\$PID_$s _tag=\$TAG_$s"
		[ "$_ev" = - ] && continue
		if ! wait_line "$CASE" "VERIFY-BEGIN dev=[a-z]* serial=${_ser}([[:space:]]|\$)" 120; then
			finish FAIL "slot $s: the guest never began verifying"
			return
		fi
		sleep "$KILL_AFTER"
		# the event must meet the verify running, or it proves nothing
		if grep -q "XR-G V $_ser: VD-VERIFY RESULT" "$(gcon "$CASE")"; then
			finish FAIL "slot $s: vd-verify ended before the $_ev"
			return
		fi
		[ "$G_MODE" = watch ] &&
			_p=$(grep -oE "$_tag: serving in process [0-9]+" "$_l" | tail -n 1 | sed 's/.* //')
		_took=$(grep -c "$_tag\]: took over IOREQ server" "$_l")
		case $_ev in
		kill) log "SIGKILL virtiod (pid $_p) of $_ser during vd-verify"; kill -KILL "$_p" ;;
		handover) log "SIGUSR1 virtiod (pid $_p) of $_ser during vd-verify: hand over"; kill -USR1 "$_p" ;;
		esac
		_tk=$(up)
		if [ "$G_MODE" = explicit ]; then
			wait_exit "$_p" 30
			log "old virtiod of $_ser ended with status $WAITRC"
			start_explicit "$s" "$_l"
			eval "_p=\$PID_$s"
			ALLPIDS="$ALLPIDS $_p"
		fi
		_end=$(($(secs) + 30))
		while [ "$(grep -c "$_tag\]: took over IOREQ server" "$_l")" -le "$_took" ] && [ "$(secs)" -lt $_end ]; do
			sleep 0.2
		done
		if [ "$(grep -c "$_tag\]: took over IOREQ server" "$_l")" -le "$_took" ]; then
			dump_log "$_l"
			finish FAIL "slot $s: no new virtiod took the IOREQ server over after $_ev"
			return
		fi
		stage "$_ev-to-serving" "$(since "$_tk")"
	done

	# the guest's own verdict, not one of vd-verify's lines
	wait_line "$CASE" "$GUEST_RESULT" "$GUEST_TIMEOUT"
	GRES=$(grep -oE "$GUEST_RESULT.*" "$(gcon "$CASE")" | head -n 1 | sed 's/.*RESULT/RESULT/' | tr -d '\r')
	stage disks-to-guest-result "$(since "$_t")"
	# the rng's and net's queue counters while they still serve (shown
	# if they fail: a stalled queue shows kicks without notifications)
	{
		for _c in /tmp/vd-$CASE-rng.ctl /tmp/vd-$CASE-net.ctl /tmp/vd-$CASE-ctl/*; do
			[ -S "$_c" ] && $VD stat "$_c" 2>&1 | sed "s|^|$(basename "$_c"): |"
		done
		# the tap's queues attached (one per real queue) and its counters
		if [ -d /sys/class/net/$NET_TAP ]; then
			echo "$NET_TAP queues: $(ls /sys/class/net/$NET_TAP/queues | tr '\n' ' ')"
			ip -s link show dev $NET_TAP 2>&1 | sed "s|^|$NET_TAP: |"
		fi
	} >/tmp/vd-$CASE-netrng.stat

	_end_det=
	if [ "$G_END" = destroy ]; then
		if ! wait_line "$CASE" 'busy round 1003 written' 300; then
			finish FAIL "guest: ${GRES:-no result}, never got busy"
			return
		fi
		log "xl destroy $CASE during guest I/O"
		_t=$(up)
		xl destroy "$CASE"
		_end_det="xl-destroy-rc=$?"
	fi
	if ! wait_gone "$CASE" 300; then
		finish FAIL "guest did not go away (${GRES:-no result})"
		return
	fi
	# every device process ends by itself once the guest is gone
	_exits=
	if [ "$G_MODE" = explicit ]; then
		for s in $SLOTS; do
			eval "_p=\$PID_$s"
			_rc=none
			wait_exit "$_p" "$VD_EXIT_SECS" && _rc=$WAITRC
			_exits="$_exits $_rc"
		done
	else
		# every device process ends by itself; the only ones a signal
		# ended are those the matrix killed
		_n=$(echo $SLOTS | wc -w)
		_end=$(($(secs) + VD_EXIT_SECS))
		while [ "$(grep -cE 'process [0-9]+ ended' "$_wlog")" -lt "$_n" ] && [ "$(secs)" -lt $_end ]; do
			sleep 0.2
		done
		_exits=$(grep -oE 'process [0-9]+ ended \([0-9-]+\)' "$_wlog" | sed 's/.*(\(.*\))/\1/' | tr '\n' ' ')
		_killed=$(grep -c 'process [0-9]* killed by' "$_wlog")
		_kills=0
		for s in $SLOTS; do eval "[ \"\$EVENT_$s\" = kill ]" && _kills=$((_kills + 1)); done
		_end_det="$_end_det crashes=$_killed/$_kills"
		[ "$_killed" = "$_kills" ] || _end_det="$_end_det UNEXPECTED-CRASH"
		kill -0 "$WATCHPID" 2>/dev/null && _end_det="$_end_det watcher-alive" || _end_det="$_end_det watcher-DEAD"
	fi
	stage guest-gone-to-daemons-exit "$(since "$_t")"
	check_netrng
	log "rng and net: $NR_DET"
	sleep 1
	_z=$(zombies)
	[ "$_z" = 0 ] || xl list | sed 's/^/XR-D xl list: /'
	_xe=$(xen_errors)
	_ok=1
	[ "$GRES" = "RESULT PASS" ] || _ok=0
	for e in $_exits; do [ "$e" = 0 ] || _ok=0; done
	[ "$(echo $_exits | wc -w)" = "$(echo $SLOTS | wc -w)" ] || _ok=0
	[ "$_z" = 0 ] && [ "$_xe" = 0 ] || _ok=0
	echo "$_end_det" | grep -qE 'DEAD|UNEXPECTED' && _ok=0
	[ "$NR_OK" = 1 ] || {
		_ok=0
		dump_log "$RNGLOG" 30
		[ "$NETLOG" != "$RNGLOG" ] && dump_log "$NETLOG" 30
		dump_log /tmp/vd-$CASE-netrng.stat
	}
	_det=
	for s in $SLOTS; do
		check_slot "$s"
		[ $SLOT_OK = 1 ] || _ok=0
		log "slot $s: $SLOT_DET"
		_det="$_det [$SLOT_DET]"
	done
	if [ $_ok = 0 ]; then
		for s in $SLOTS; do eval "dump_log \$LOG_$s 30"; done
	fi
	_det="kernel=$G_KERNEL boot=$G_BOOT mode=$G_MODE guest='$GRES' exits=[$(echo $_exits)] $_end_det zombies=$_z xen_errors=$_xe$_det [$NR_DET]"
	# the first of them in the case line, which is what CI shows
	[ "$_xe" = 0 ] || _det="$_det xen:'$(head -n 1 /tmp/xl-dmesg-$CASE.err | tr -d "\r'" | cut -c1-100)'"
	[ -n "$WATCHPID" ] && kill -TERM "$WATCHPID" 2>/dev/null
	if [ $_ok = 1 ]; then finish PASS "$_det"; else finish FAIL "$_det"; fi
	for s in $SLOTS; do eval "rm -f \$IMG_$s"; done
}

# ---------------------------------------------------------------- probe
case_probe() {
	make_cfg "$CASE" cloud disk
	create "$CASE" || { finish FAIL "xl-create"; return; }
	follow "$CASE"
	xl unpause "$CASE"
	wait_line "$CASE" "$GUEST_RESULT" "$GUEST_TIMEOUT"
	GRES=$(grep -oE "$GUEST_RESULT.*" "$(gcon "$CASE")" | head -n 1 | sed 's/.*RESULT/RESULT/' | tr -d '\r')
	wait_gone "$CASE" 60
	case "$GRES" in
	"RESULT PROBE attempted"*) finish PASS "guest found LNRO0005 and virtio_mmio probed it" ;;
	*) finish FAIL "guest: ${GRES:-no result}" ;;
	esac
}

# ---------------------------------------------------------------- soak
# SOAK_N boots of SOAK_GUEST with default devices and a short verify:
# where and how often the nested guest dies. A data failure fails the case.
case_soak() {
	_k=${SOAK_GUEST%%:*} _b=${SOAK_GUEST##*:}
	_n=0 _user=0 _done=0 _tf_before=0 _tf_after=0 _died=0 _bad=0
	while [ $_n -lt "$SOAK_N" ]; do
		_n=$((_n + 1))
		_name=soak$_n
		make_cfg "$_name" "$_k" "$_b"
		rm -f "$(gcon "$_name")"
		xl create -p /tmp/$_name.cfg >/tmp/xl-create-soak.log 2>&1 || { log "soak $_n: xl create failed"; _bad=$((_bad + 1)); continue; }
		_dom=$(xl domid "$_name")
		_pids=
		for s in 0 1 2; do
			truncate -s "${IMG_MB}M" /tmp/soak-$s.img
			# slot 1 maps per request: the most mapping churn in dom0
			_mc=; [ $s = 1 ] && _mc="--map-cache-size 0"
			$VD blk --xen-domid "$_dom" --mmio-base "$(slot_base $s)" --irq "$(slot_irq $s)" \
				--disk /tmp/soak-$s.img --serial "xr.S.$s" $_mc >/tmp/vd-soak-$s.log 2>&1 &
			_pids="$_pids $!"
		done
		sleep 1
		_t=$(up)
		xl unpause "$_name"
		wait_line "$_name" "$GUEST_RESULT" "$GUEST_TIMEOUT"
		_r=$?
		_u=no
		grep -q 'PHASE userspace' "$(gcon "$_name")" && _u=yes && _user=$((_user + 1))
		_res=$(grep -oE "$GUEST_RESULT[A-Z]*" "$(gcon "$_name")" | head -n 1 | sed 's/.*RESULT/RESULT/')
		xl destroy "$_name" 2>/dev/null
		for p in $_pids; do wait_exit "$p" 30 || kill -KILL "$p"; done
		xl dmesg -c >/tmp/xl-dmesg-soak.log 2>&1
		_tf=$(grep -c 'Triple fault' /tmp/xl-dmesg-soak.log)
		if [ "$_res" = "RESULT PASS" ]; then
			_done=$((_done + 1))
		else
			_died=$((_died + 1))
			[ $_u = yes ] && _tf_after=$((_tf_after + _tf)) || _tf_before=$((_tf_before + _tf))
			[ $_u = yes ] && [ $_r = 0 ] && _bad=$((_bad + 1))
		fi
		echo "XR-SOAK boot=$_n guest=$_k:$_b userspace=$_u result=${_res:-none} triple_faults=$_tf secs=$(since "$_t")"
		rm -f /tmp/soak-*.img
	done
	_det="boots=$_n passed=$_done died=$_died triple_faults_before_userspace=$_tf_before triple_faults_after=$_tf_after data_failures=$_bad"
	echo "XR-SOAK-SUMMARY $SOAK_GUEST $_det"
	if [ $_bad = 0 ]; then finish PASS "$_det"; else finish FAIL "$_det"; fi
}

# ---------------------------------------------------------------- bench
# virtiod's virtio-blk against Xen's own PV disk (xen-blkback in dom0,
# xen-blkfront in the guest) on the same image, in the same guest, one
# workload after the other. Not a pass/fail test of speed: it prints
# XR-BENCH lines (IOPS, MB/s, dom0 CPU per request) for bench/RESULTS.md.
# dom0 CPU: busy time from /proc/stat (everything dom0 spent: the backend,
# interrupts, event channels), read when the guest announces a workload.
dom0_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
case_bench() {
	_img=/tmp/bench.img
	rm -f "$_img"
	truncate -s 256M "$_img"
	_loop=$(losetup -f)
	losetup "$_loop" "$_img" || { finish FAIL "losetup $_loop $_img"; return; }
	make_cfg "$CASE" cloud disk "disk = [ 'vdev=xvdh, format=raw, script=block-phy, target=$_loop' ]"
	create "$CASE" || { losetup -d "$_loop"; finish FAIL "xl-create"; return; }
	follow "$CASE"
	ALLPIDS=
	for s in 0 1 2; do
		_d=$_img _ser=xr.X.$s.x
		if [ $s != 0 ]; then
			_d=/tmp/bench-idle-$s.img _ser=xr.X.$s
			truncate -s 8M "$_d"
		fi
		$VD blk --xen-domid "$DOMID" --mmio-base "$(slot_base $s)" --irq "$(slot_irq $s)" \
			--disk "$_d" --serial "$_ser" $VD_ARGS >/tmp/vd-bench-$s.log 2>&1 &
		ALLPIDS="$ALLPIDS $!"
		[ $s = 0 ] && BENCHPID=$!
	done
	for p in $ALLPIDS; do vd_ready /tmp/vd-bench-0.log "$p" 30 || true; done
	sleep 1
	xl unpause "$CASE"
	_hz=100
	_cpu0=0
	rm -f /tmp/bench.fifo && mkfifo /tmp/bench.fifo
	tail -n +1 -f "$(gcon "$CASE")" >/tmp/bench.fifo 2>/dev/null &
	_tail=$!
	# the reader below ends when tail does: when the domain is gone
	(while xl domid "$CASE" >/dev/null 2>&1; do sleep 2; done; sleep 2; kill "$_tail") 2>/dev/null &
	tr -d '\r' </tmp/bench.fifo | while read -r _l; do
		case $_l in
		*BENCH-BEGIN*) _cpu0=$(dom0_busy) _vd0=$(awk '{ print $14 + $15 }' /proc/$BENCHPID/stat) ;;
		*"XR-G B "*VD-BENCH*) _res=${_l#*VD-BENCH } ;;
		*BENCH-END*)
			_cpu1=$(dom0_busy) _vd1=$(awk '{ print $14 + $15 }' /proc/$BENCHPID/stat)
			_dev=$(echo "$_l" | sed 's/.*dev=\([a-z]*\).*/\1/')
			_iops=$(echo "$_res" | sed -n 's/.*iops=\([0-9.]*\).*/\1/p')
			_secs=$(echo "$_res" | sed -n 's/.*secs=\([0-9.]*\).*/\1/p')
			_kind=virtio-blk/virtiod; case $_dev in xvd*) _kind=xen-pv/blkback ;; esac
			awk -v k="$_kind" -v r="$_res" -v c=$((_cpu1 - _cpu0)) -v v=$((_vd1 - _vd0)) -v hz=$_hz \
				-v iops="${_iops:-0}" -v s="${_secs:-$BENCH_SECS}" 'BEGIN {
				n = iops * s; if (n < 1) n = 1
				printf "XR-BENCH %s %s dom0_cpu_s=%.2f dom0_us_per_req=%.1f virtiod_us_per_req=%.1f\n",
					k, r, c / hz, c / hz / n * 1e6, v / hz / n * 1e6 }'
			;;
		*"RESULT "*) break ;;
		esac
		xl domid "$CASE" >/dev/null 2>&1 || break
	done
	kill "$_tail" 2>/dev/null
	wait_gone "$CASE" 120
	for p in $ALLPIDS; do wait_exit "$p" 30 || kill -KILL "$p"; done
	losetup -d "$_loop"
	_n=$(grep -c 'VD-BENCH' "$(gcon "$CASE")")
	if grep -qE "${GUEST_RESULT}PASS bench" "$(gcon "$CASE")"; then
		finish PASS "workloads=$_n (XR-BENCH lines above)"
	else
		finish FAIL "guest: $(grep -oE "${GUEST_RESULT}.*" "$(gcon "$CASE")" | head -n 1)"
	fi
	rm -f /tmp/bench*.img
}

# ---------------------------------------------------------------- main
FAILED=
RETRIES=0
POST_IO_RETRIES=${POST_IO_RETRIES:-2}
CASES=${XR_CASES:-$(matrix_guests | tr '\n' ' ')}
if [ ! -x "$VD" ]; then
	log "no virtiod in this dom0 image: running the probe case only"
	CASES=probe
fi
setup_ext4 || { echo "XR-RESULT FAIL cannot make the ext4 store"; exit 1; }
xl dmesg -c >/tmp/xl-dmesg-boot.log 2>&1
T0=$(up)
for CASE in $CASES; do
	ATTEMPT=1
	while :; do
		CASE_T0=$(up)
		ALLPIDS='' WATCHPID='' FOLLOW='' DOMID='' RETRY=0
		rm -f /tmp/xl-dmesg-$CASE.log
		log "=== case $CASE (attempt $ATTEMPT)"
		case $CASE in
		probe | soak | bench) case_$CASE ;;
		*)
			if [ -z "$(guest_row "$CASE")" ]; then
				finish FAIL "no such case"
			else
				case_matrix
			fi
			;;
		esac
		[ $RETRY = 1 ] || break
		ATTEMPT=$((ATTEMPT + 1))
		sleep 2
	done
	sleep 1
done
if [ -z "$FAILED" ]; then
	echo "XR-RESULT PASS cases='$CASES' secs=$(since "$T0")"
else
	echo "XR-RESULT FAIL failed='${FAILED# }' cases='$CASES' secs=$(since "$T0")"
fi
[ -z "$FAILED" ]
