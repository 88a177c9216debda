#!/bin/sh
# Runs in dom0 after dom0-init.sh has the toolstack up: the cases of
# tests/xen-real, one HVM guest each, in sequence on the same Xen boot.
# Prints one "XR-CASE <name> PASS|FAIL <details>" line per case and a final
# "XR-RESULT PASS|FAIL ..." line that run.sh on the host turns into an exit code.
#
# Cases (XR_CASES in /xr/config):
#   probe     no daemon: the guest finds LNRO0005 and virtio_mmio tries to probe
#   explicit  virtiod blk --xen-domid ... : patterns, throughput, ext2, then
#             SIGKILL + restart of virtiod during guest I/O; image checked here
#   destroy   virtiod blk ... ; xl destroy while the guest writes: virtiod must
#             tear down and exit, the domain must vanish (no leaked mappings),
#             and Xen must log no error
#   xenstore  virtiod xen-watch, guest config with a specification=virtio disk:
#             xl create must see InitWait (state 2) within its 10 s, I/O works;
#             then xl destroy during guest I/O: the device process ends, the
#             watcher stays
. /xr/config
VD=/usr/bin/virtiod
up() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(up)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "XR-D [$(up)] $*"; }
stage() { echo "XR-T case=$CASE stage=$1 secs=$2"; }

# ---------------------------------------------------------------- helpers
# make_cfg NAME [DISK_LINE] > /tmp/NAME.cfg
# The guest boots from a small FAT image (syslinux, kernel, initrd) that
# QEMU serves as a virtio-blk PCI disk: SeaBIOS reads it by DMA. With
# kernel=/ramdisk= QEMU would load them through fw_cfg port I/O (Xen's QEMU
# has no fw_cfg DMA), a few bytes per microsecond: minutes per boot.
# No emulated serial port either: each byte would be an ioreq to QEMU.
make_cfg() {
	cat >/tmp/$1.cfg <<EOF
name = "$1"
type = "hvm"
device_model_version = "qemu-xen"
boot = "c"
device_model_args_hvm = [ "-drive", "file=/boot/guest-boot.img,if=none,id=xrboot,format=raw,readonly=on",
                          "-device", "virtio-blk-pci,drive=xrboot,bootindex=0" ]
memory = $GUEST_MEM
vcpus = 1
vnc = 0
sdl = 0
nographic = 1
vga = "none"
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
$2
EOF
}

# new_image PATH OPTIONS: 96 MiB of zeros, the guest's options in sector 0
new_image() {
	rm -f "$1"
	dd if=/dev/zero of="$1" bs=1M count=0 seek=$IMG_MB 2>/dev/null
	echo "xr-options: $2" | dd of="$1" conv=notrunc 2>/dev/null
}

# guest_console NAME: the xenconsoled log of the guest's hvc0
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
	_end=$(($(cut -d. -f1 /proc/uptime) + $3))
	while [ "$(cut -d. -f1 /proc/uptime)" -lt $_end ]; do
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
	_end=$(($(cut -d. -f1 /proc/uptime) + $2))
	while [ "$(cut -d. -f1 /proc/uptime)" -lt $_end ]; do
		xl domid "$1" >/dev/null 2>&1 || return 0
		sleep 0.3
	done
	return 1
}

# wait_exit PID SECS: 0 once the process is gone (its status in WAITRC)
wait_exit() {
	_end=$(($(cut -d. -f1 /proc/uptime) + $2))
	while [ "$(cut -d. -f1 /proc/uptime)" -lt $_end ]; do
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

# start_vd LOG ARGS...: virtiod in the background; VDPID
start_vd() {
	_log=$1
	shift
	log "starting: virtiod $*"
	"$VD" "$@" >"$_log" 2>&1 &
	VDPID=$!
}

# vd_ready LOG SECS: wait for the daemon to say it serves (or fail)
vd_ready() {
	_end=$(($(cut -d. -f1 /proc/uptime) + $2))
	while [ "$(cut -d. -f1 /proc/uptime)" -lt $_end ]; do
		grep -qiE "$VD_READY_RE" "$1" 2>/dev/null && return 0
		kill -0 "$VDPID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# check_image IMG: every "EXPECT" and "FILE" line of the guest console must
# match the image; sets IMGSUM
check_image() {
	_img=$1 _n=0 _bad=0
	for kv in $(grep -o 'EXPECT off_mb=[0-9]* len=[0-9]* md5=[0-9a-f]*' "$(gcon "$CASE")" |
		sed 's/EXPECT //; s/ /,/g'); do
		_off=$(echo "$kv" | sed 's/.*off_mb=\([0-9]*\).*/\1/')
		_md5=$(echo "$kv" | sed 's/.*md5=\([0-9a-f]*\).*/\1/')
		_got=$(dd if="$_img" bs=1M skip="$_off" count=4 2>/dev/null | md5sum | cut -d' ' -f1)
		_n=$((_n + 1))
		if [ "$_got" != "$_md5" ]; then
			_bad=$((_bad + 1))
			log "image $_img at $_off MiB: $_got, guest wrote $_md5"
		fi
	done
	_fs=none
	_fmd5=$(grep -o 'FILE name=file.bin md5=[0-9a-f]*' "$(gcon "$CASE")" | tail -n 1 | sed 's/.*md5=//')
	if [ -n "$_fmd5" ]; then
		# the ext2 filesystem occupies the first 32 MiB of the image
		dd if="$_img" of=/tmp/fs.img bs=1M count=32 2>/dev/null
		if e2fsck -fn /tmp/fs.img >/tmp/e2fsck.log 2>&1; then
			_got=$(debugfs -R "cat /file.bin" /tmp/fs.img 2>/dev/null | md5sum | cut -d' ' -f1)
			if [ "$_got" = "$_fmd5" ]; then _fs=ok; else
				_fs=bad-file
				_bad=$((_bad + 1))
				log "file.bin in the image: $_got, guest wrote $_fmd5"
			fi
		else
			_fs=fsck-failed
			_bad=$((_bad + 1))
			sed 's/^/XR-D e2fsck: /' /tmp/e2fsck.log | tail -n 20
		fi
		rm -f /tmp/fs.img
	fi
	IMGSUM="regions=$_n bad=$_bad fs=$_fs"
	[ $_n -gt 0 ] && [ $_bad = 0 ]
}

# xen_errors: new Xen console lines (since the case began) that look like errors
xen_errors() {
	xl dmesg -c >/tmp/xl-dmesg-$CASE.log 2>&1
	# "(dN) ..." lines are the guest firmware's debug output, not Xen's
	grep -vE '^\(d[0-9]+\) ' /tmp/xl-dmesg-$CASE.log |
		grep -iE 'error|fail|bug|crash|fatal|assert|panic|leak|warn' >/tmp/xl-dmesg-$CASE.err
	# the Xen log of the case goes to the console, the count to the caller
	grep -vE '^\(d[0-9]+\) |HVM.* (save|restore):' /tmp/xl-dmesg-$CASE.log |
		sed 's/^/XR-D xl dmesg: /' | tail -n 40 >&2
	sed 's/^/XR-D xen error: /' /tmp/xl-dmesg-$CASE.err >&2
	grep -c . /tmp/xl-dmesg-$CASE.err
}

dump_vd() { [ -f "$1" ] && tail -n "${2:-40}" "$1" | sed "s|^|XR-D $(basename "$1"): |"; }

# tput_line: the guest's throughput figures, for the case line
tput() {
	_w=$(grep -o 'TPUT op=write .*kbps=[0-9]*' "$(gcon "$CASE")" | sed 's/.*kbps=//' | tail -n 1)
	_r=$(grep -o 'TPUT op=read .*kbps=[0-9]*' "$(gcon "$CASE")" | sed 's/.*kbps=//' | tail -n 1)
	[ -n "$_w$_r" ] && echo "write_kbps=${_w:-?} read_kbps=${_r:-?}"
}

# finish STATUS DETAILS: print the case line, clean up whatever is left.
# A guest that died before reaching its userspace never met virtiod: that is
# the boot path (once seen: a triple fault in SeaBIOS's virtio-blk code while
# syslinux loaded the kernel). Such a case is run again, once.
finish() {
	unfollow
	xl destroy "$CASE" 2>/dev/null
	for p in $VDPID $WATCHPID; do kill -KILL "$p" 2>/dev/null; done
	VDPID='' WATCHPID=''
	if [ "$1" != PASS ] && [ "$ATTEMPT" = 1 ] && [ -n "$DOMID" ] &&
		! grep -q 'PHASE userspace' "$(gcon "$CASE")" 2>/dev/null; then
		xl dmesg -c >/tmp/xl-dmesg-$CASE-attempt1.log 2>&1
		log "case $CASE: the guest died before its userspace ($(grep -c 'Triple fault' \
			/tmp/xl-dmesg-$CASE-attempt1.log) triple faults in the Xen log): boot flake, running the case again"
		echo "XR-RETRY $CASE $1 $2"
		RETRY=1
		return
	fi
	echo "XR-CASE $CASE $1 $2 secs=$(since "$CASE_T0")"
	[ "$1" = PASS ] || FAILED="$FAILED $CASE"
}

# wait_result SECS: wait for the guest's RESULT line; sets GRES
wait_result() {
	_t=$(up)
	wait_line "$CASE" 'PHASE userspace' "$1"
	stage unpause-to-guest-userspace "$(since "$_t")"
	wait_line "$CASE" 'RESULT ' "$1"
	GRES=$(grep -o 'RESULT .*' "$(gcon "$CASE")" | head -n 1 | tr -d '\r')
	stage unpause-to-guest-result "$(since "$_t")"
}

# ---------------------------------------------------------------- cases
case_probe() {
	make_cfg "$CASE"
	create "$CASE" || { finish FAIL "xl-create"; return; }
	follow "$CASE"
	xl unpause "$CASE"
	wait_result "$GUEST_TIMEOUT"
	wait_gone "$CASE" 60
	case "$GRES" in
	"RESULT PROBE attempted"*) finish PASS "guest found LNRO0005 and virtio_mmio probed it" ;;
	*) finish FAIL "guest: ${GRES:-no result}" ;;
	esac
}

case_explicit() {
	IMG=/tmp/$CASE.img
	new_image $IMG "xr.case=$CASE xr.full=1 xr.kill=$KILL_SECS xr.tput=$TPUT_MB"
	make_cfg "$CASE"
	create "$CASE" || { finish FAIL "xl-create"; return; }
	follow "$CASE"
	_t=$(up)
	start_vd /tmp/vd-$CASE-1.log blk --xen-domid "$DOMID" --mmio-base "$BASE" --irq "$IRQ" --disk $IMG $VD_ARGS
	if ! vd_ready /tmp/vd-$CASE-1.log 30; then
		dump_vd /tmp/vd-$CASE-1.log
		finish FAIL "virtiod did not become ready"
		return
	fi
	stage virtiod-ready "$(since "$_t")"
	xl unpause "$CASE"
	_t=$(up)
	wait_line "$CASE" 'PHASE userspace' "$GUEST_TIMEOUT"
	stage unpause-to-guest-userspace "$(since "$_t")"
	wait_line "$CASE" 'PHASE vda-up' 120
	stage guest-userspace-to-vda "$(since "$_t")"
	if ! wait_line "$CASE" 'PHASE kill-window-begin' "$GUEST_TIMEOUT"; then
		dump_vd /tmp/vd-$CASE-1.log
		finish FAIL "guest never reached the kill window: $(grep -o 'RESULT .*' "$(gcon "$CASE")" | head -n 1)"
		return
	fi
	stage vda-to-kill-window "$(since "$_t")"
	sleep "$KILL_AFTER"
	_busy=$(grep -c 'kill-window' "$(gcon "$CASE")")
	log "SIGKILL virtiod (pid $VDPID) during guest I/O"
	kill -KILL "$VDPID"
	wait "$VDPID" 2>/dev/null
	dump_vd /tmp/vd-$CASE-1.log 15
	sleep 1
	_t=$(up)
	start_vd /tmp/vd-$CASE-2.log blk --xen-domid "$DOMID" --mmio-base "$BASE" --irq "$IRQ" --disk $IMG $VD_ARGS
	if ! vd_ready /tmp/vd-$CASE-2.log 30; then
		dump_vd /tmp/vd-$CASE-2.log
		finish FAIL "restarted virtiod did not become ready"
		return
	fi
	stage virtiod-restart-ready "$(since "$_t")"
	wait_line "$CASE" 'RESULT ' "$GUEST_TIMEOUT"
	GRES=$(grep -o 'RESULT .*' "$(gcon "$CASE")" | head -n 1 | tr -d '\r')
	stage kill-to-guest-result "$(since "$_t")"
	if ! wait_gone "$CASE" 120; then
		dump_vd /tmp/vd-$CASE-2.log
		finish FAIL "guest did not power off (${GRES:-no result})"
		return
	fi
	# on poweroff the daemon sees the guest go away and exits by itself
	_vdexit="virtiod-exit=none"
	if wait_exit "$VDPID" 30; then _vdexit="virtiod-exit=$WAITRC"; fi
	dump_vd /tmp/vd-$CASE-2.log
	_z=$(zombies)
	_xe=$(xen_errors)
	check_image $IMG
	_img=$?
	# what the restart did, and how long the guest wrote around the kill
	_take=no
	grep -q 'took over IOREQ server' /tmp/vd-$CASE-2.log && _take=yes
	_win=$(grep -o 'kill-window-end rounds=[0-9]* in [0-9.]* s' "$(gcon "$CASE")" | tail -n 1 |
		sed 's/kill-window-end //; s/ in /,/; s/ s$/s/')
	_det="guest='$GRES' image:$IMGSUM kill-window=${_win:-?} takeover=$_take $_vdexit zombies=$_z xen_errors=$_xe $(tput)"
	if [ "$GRES" = "RESULT PASS" ] && [ $_img = 0 ] && [ "$_z" = 0 ] && [ "$_xe" = 0 ] &&
		[ "$_vdexit" = virtiod-exit=0 ]; then
		finish PASS "$_det"
	else
		finish FAIL "$_det"
	fi
	rm -f $IMG
}

case_destroy() {
	IMG=/tmp/$CASE.img
	new_image $IMG "xr.case=$CASE xr.end=busy"
	make_cfg "$CASE"
	create "$CASE" || { finish FAIL "xl-create"; return; }
	follow "$CASE"
	start_vd /tmp/vd-$CASE.log blk --xen-domid "$DOMID" --mmio-base "$BASE" --irq "$IRQ" --disk $IMG $VD_ARGS
	if ! vd_ready /tmp/vd-$CASE.log 30; then
		dump_vd /tmp/vd-$CASE.log
		finish FAIL "virtiod did not become ready"
		return
	fi
	xl unpause "$CASE"
	_t=$(up)
	if ! wait_line "$CASE" 'busy round 1001 written' "$GUEST_TIMEOUT"; then
		dump_vd /tmp/vd-$CASE.log
		finish FAIL "guest never got busy: $(grep -o 'RESULT .*' "$(gcon "$CASE")" | head -n 1)"
		return
	fi
	stage unpause-to-busy "$(since "$_t")"
	sleep 1
	log "xl destroy $CASE during guest I/O"
	_t=$(up)
	xl destroy "$CASE"
	_drc=$?
	_vdexit="virtiod-exit=none"
	if wait_exit "$VDPID" "$VD_EXIT_SECS"; then _vdexit="virtiod-exit=$WAITRC"; fi
	stage destroy-to-virtiod-exit "$(since "$_t")"
	dump_vd /tmp/vd-$CASE.log
	wait_gone "$CASE" 30
	sleep 2
	_z=$(zombies)
	[ "$_z" = 0 ] || xl list | sed 's/^/XR-D xl list: /'
	_xe=$(xen_errors)
	_det="xl-destroy-rc=$_drc $_vdexit zombies=$_z xen_errors=$_xe"
	if [ $_drc = 0 ] && [ "$_vdexit" = virtiod-exit=0 ] && [ "$_z" = 0 ] && [ "$_xe" = 0 ]; then
		finish PASS "$_det"
	else
		finish FAIL "$_det"
	fi
	rm -f $IMG
}

case_xenstore() {
	IMG=/tmp/$CASE.img
	new_image $IMG "xr.case=$CASE xr.full=1 xr.tput=$TPUT_MB xr.end=busy"
	make_cfg "$CASE" "disk = [ 'vdev=xvde, format=raw, specification=virtio, target=$IMG' ]"
	_t=$(up)
	log "starting: virtiod xen-watch $WATCH_ARGS"
	"$VD" xen-watch $WATCH_ARGS >/tmp/vd-$CASE.log 2>&1 &
	WATCHPID=$!
	VDPID=$WATCHPID
	if ! vd_ready /tmp/vd-$CASE.log 30; then
		dump_vd /tmp/vd-$CASE.log
		finish FAIL "virtiod xen-watch did not become ready"
		return
	fi
	stage watcher-ready "$(since "$_t")"
	if ! create "$CASE"; then
		dump_vd /tmp/vd-$CASE.log
		finish FAIL "xl-create (backend did not reach InitWait within 10 s?)"
		return
	fi
	_be=/local/domain/0/backend/virtio_disk/$DOMID
	_dev=$(xenstore-list "$_be" 2>/dev/null | head -n 1)
	_state=$(xenstore-read "$_be/$_dev/state" 2>/dev/null)
	xenstore-ls -f "$_be" 2>/dev/null | sed 's/^/XR-D xenstore: /'
	xenstore-ls -f /local/domain/$DOMID/device 2>/dev/null | sed 's/^/XR-D xenstore: /'
	log "backend $_be/$_dev state=$_state"
	follow "$CASE"
	xl unpause "$CASE"
	wait_result "$GUEST_TIMEOUT"
	if ! wait_line "$CASE" 'busy round 1001 written' 300; then
		dump_vd /tmp/vd-$CASE.log
		finish FAIL "guest: ${GRES:-no result}, never got busy"
		return
	fi
	# destroy while the guest writes: the device process must tear down
	# and end, the watcher must stay for the next guest
	log "xl destroy $CASE during guest I/O"
	_t=$(up)
	xl destroy "$CASE"
	_drc=$?
	_end=$(($(cut -d. -f1 /proc/uptime) + VD_EXIT_SECS))
	while ! grep -qE 'process [0-9]+ ended|killed by' /tmp/vd-$CASE.log &&
		[ "$(cut -d. -f1 /proc/uptime)" -lt $_end ]; do sleep 0.2; done
	_child=$(grep -oE 'process [0-9]+ (ended \([0-9-]+\)|killed by.*)' /tmp/vd-$CASE.log | tail -n 1 |
		sed 's/process [0-9]* //; s/ /-/g')
	stage destroy-to-device-process-end "$(since "$_t")"
	wait_gone "$CASE" 30
	sleep 2
	_alive=no
	kill -0 "$WATCHPID" 2>/dev/null && _alive=yes
	dump_vd /tmp/vd-$CASE.log 60
	_z=$(zombies)
	[ "$_z" = 0 ] || xl list | sed 's/^/XR-D xl list: /'
	_left=$(xenstore-list /local/domain/0/backend/virtio_disk/$DOMID 2>/dev/null | grep -c .)
	_xe=$(xen_errors)
	check_image $IMG
	_img=$?
	_det="guest='$GRES' initwait-state=$_state image:$IMGSUM xl-destroy-rc=$_drc device-process=${_child:-running} watcher-alive=$_alive backend-nodes-left=$_left zombies=$_z xen_errors=$_xe $(tput)"
	if [ "$GRES" = "RESULT PASS" ] && [ "$_state" = 2 ] && [ $_img = 0 ] && [ $_drc = 0 ] &&
		[ "$_child" = "ended-(0)" ] && [ $_alive = yes ] && [ "$_z" = 0 ] && [ "$_xe" = 0 ]; then
		finish PASS "$_det"
	else
		finish FAIL "$_det"
	fi
	kill -TERM "$WATCHPID" 2>/dev/null
	rm -f $IMG
}

# ---------------------------------------------------------------- main
FAILED=
CASES=$XR_CASES
if [ ! -x "$VD" ]; then
	log "no virtiod in this dom0 image: running the probe case only"
	CASES=probe
fi
xl dmesg -c >/tmp/xl-dmesg-boot.log 2>&1
T0=$(up)
for CASE in $CASES; do
	CASE_T0=$(up)
	VDPID='' WATCHPID='' FOLLOW='' DOMID='' RETRY=0 ATTEMPT=1
	log "=== case $CASE"
	case_$CASE
	if [ $RETRY = 1 ]; then
		sleep 2
		CASE_T0=$(up)
		VDPID='' WATCHPID='' FOLLOW='' DOMID='' RETRY=0 ATTEMPT=2
		log "=== case $CASE (again)"
		case_$CASE
	fi
	sleep 1
done
if [ -z "$FAILED" ]; then
	echo "XR-RESULT PASS cases='$CASES' secs=$(since "$T0")"
else
	echo "XR-RESULT FAIL failed='${FAILED# }' cases='$CASES' secs=$(since "$T0")"
fi
[ -z "$FAILED" ]
