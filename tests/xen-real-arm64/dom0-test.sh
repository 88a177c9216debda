#!/bin/sh
# Runs in dom0 of tests/xen-real-arm64 once the toolstack is up: the cases,
# in sequence on one Xen boot. One "XA-CASE <name> PASS|FAIL <details>" line
# per case and a final "XA-RESULT PASS|FAIL ..." line, which run.sh on the
# host turns into its exit status. The configuration files are those of
# docs/examples, copied to /xa/examples unchanged.
#
#   dom0less        (d) Xen started domain 1 from its device tree; virtiod
#                   --config serves it by foreign mapping
#   dom0less-grant  (b) domain 2, also from the device tree, whose device is
#                   linked to xen,grant-dma: virtiod maps grant references
#                   and makes no foreign mapping (vd-count.so counts both)
#   xl              (a) xl create with a 4.17 virtio disk, virtiod xen-watch
#   driver-domain   (c) virtiod xen-watch in an unprivileged domU serves
#                   another domU with grants; dom0 only runs the toolstack
#
# A case whose guest never reached its userspace never met virtiod: it says
# so ("boot=no") and run.sh lets CI retry such a run; a data failure never.
. /xa/config
EX=/xa/examples
VD=/usr/bin/virtiod
PRELOAD=/usr/lib/vd-count.so
up() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(up)" 'BEGIN { printf "%.1f", b - a }'; }
now_s() { cut -d. -f1 /proc/uptime; }
log() { echo "XA-D [$(up)] $*"; }
stage() { echo "XA-T case=$CASE stage=$1 secs=$2"; }
dump() { [ -f "$1" ] && tail -n "${2:-40}" "$1" | sed "s|^|XA-D $(basename "$1"): |"; }
gcon() { echo "/var/log/xen/console/guest-$1.log"; }

# wait_grep FILE REGEX SECS: 0 once FILE has a matching line, 1 on timeout
wait_grep() {
	_end=$(($(now_s) + $3))
	while [ "$(now_s)" -lt $_end ]; do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		sleep 0.3
	done
	return 1
}
# wait_gone NAME|DOMID SECS
wait_gone() {
	_end=$(($(now_s) + $2))
	while [ "$(now_s)" -lt $_end ]; do
		xl list "$1" >/dev/null 2>&1 || return 0
		sleep 0.3
	done
	return 1
}
# wait_exit PID SECS: 0 once gone (status in WAITRC)
wait_exit() {
	_end=$(($(now_s) + $2))
	while [ "$(now_s)" -lt $_end ]; do
		if ! kill -0 "$1" 2>/dev/null; then
			wait "$1" 2>/dev/null
			WAITRC=$?
			return 0
		fi
		sleep 0.2
	done
	return 1
}
follow() { # NAME: the guest's console, prefixed, on ours (busybox sed has no -u)
	touch "$(gcon "$1")"
	tail -n +1 -f "$(gcon "$1")" 2>/dev/null | sed "s/^/[$1] /" &
}
new_image() { dd if=/dev/zero of="$1" bs=1M count=0 seek="$IMG_MB" 2>/dev/null; }
# result CASE NAME: the guest's RESULT line from a file
result() { grep -o "XA-G $2 RESULT .*" "$1" | head -n 1 | sed "s/XA-G $2 //" | tr -d '\r'; }
reached_userspace() { grep -q "XA-G $2 PHASE userspace" "$1" 2>/dev/null && echo yes || echo no; }
counts() { /usr/bin/xa-counts.sh "$1" "$2"; }
# record_sum CONSOLE CASE: the verifier's record sum the guest printed
record_sum() { grep -o "XA-G $2 SUM [0-9a-f]*" "$1" | tail -n 1 | sed 's/.* //'; }
# image_check IMG CONSOLE CASE: dom0's view of the image, checked by
# vd-verify against the record the guest announced; the verdict in IMGRES,
# 0 if it passed
image_check() {
	_sum=$(record_sum "$2" "$3")
	if [ -z "$_sum" ]; then
		IMGRES="no-record-sum"
		return 1
	fi
	/usr/bin/vd-verify check --image "$1" --expect-sum "$_sum" >/tmp/check-$3.log 2>&1
	_rc=$?
	sed "s/^/XA-D check $3: /" /tmp/check-$3.log | tail -n 12
	IMGRES="'$(grep -o 'VD-VERIFY CHECK [A-Z]*' /tmp/check-$3.log | tail -n 1) sum=$_sum'"
	return $_rc
}

field() { echo "$1" | sed -n "s/.* $2=\([0-9]*\).*/\1/p"; }

case_line() { # NAME PASS|FAIL DETAILS
	echo "XA-CASE $1 $2 $3 secs=$(since "$CASE_T0")"
	[ "$2" = PASS ] || FAILED="$FAILED $1"
}

# -------------------------------------------------------------- dom0less
# Both guests started with Xen; each polls its window until virtiod claims it.
case_dom0less() {
	CASE=dom0less
	new_image /tmp/xa-dom0less.img
	new_image /tmp/xa-dom0less-grant.img
	log "domains at start: $(xl list | awk 'NR > 1 { printf "%s(%s) ", $1, $2 }')"
	_t=$(up)
	VD_COUNT_FILE=/tmp/count-dom0less LD_PRELOAD=$PRELOAD \
		$VD --config $EX/xen-arm64-dom0less.conf >/tmp/vd-dom0less.log 2>&1 &
	_pid=$!
	wait_grep /tmp/vd-dom0less.log 'serving domain 2' 30 && wait_grep /tmp/vd-dom0less.log 'serving domain 1' 5
	stage virtiod-serving "$(since "$_t")"
	# the guests print on their emulated PL011, which Xen logs as "DOMn: ..."
	_end=$(($(now_s) + GUEST_TIMEOUT))
	while [ "$(now_s)" -lt $_end ]; do
		xl dmesg >/tmp/xl-dmesg.log 2>&1
		[ "$(grep -cE 'DOM[12]: XA-G dom0less(-grant)? RESULT' /tmp/xl-dmesg.log)" -ge 2 ] && break
		sleep 1
	done
	stage guests-result "$(since "$_t")"
	grep -E 'DOM[12]: XA-G' /tmp/xl-dmesg.log | sed 's/^/XA-D guest: /'
	# they powered off: their device processes see it and end, then --config
	_vdexit=none
	wait_exit $_pid 60 && _vdexit=$WAITRC
	dump /tmp/vd-dom0less.log 30
	for d in 1 2; do xl destroy $d >/dev/null 2>&1; done
	for pair in "1 dom0less /tmp/xa-dom0less.img foreign" "2 dom0less-grant /tmp/xa-dom0less-grant.img grant"; do
		set -- $pair
		CASE_T0=$DL_T0
		_res=$(result /tmp/xl-dmesg.log "$2")
		_ud=$(reached_userspace /tmp/xl-dmesg.log "$2")
		grep "DOM$1: " /tmp/xl-dmesg.log | sed "s/.*DOM$1: //" >/tmp/console-$2.log
		image_check "$3" /tmp/console-$2.log "$2"
		_ok=$?
		_img=$IMGRES
		_c=$(counts /tmp/count-dom0less "$1")
		_fm=$(field "$_c" fmap) _gm=$(field "$_c" gmap)
		_dt=$(grep -o 'dt=[^ ]* iommus=[a-z]*' /tmp/console-$2.log | head -n 1)
		_det="dom=$1 boot=$_ud $_dt guest='${_res:-none}' image:$_img virtiod-exit=$_vdexit counts:'$_c'"
		# grants: the partial device tree links the device to xen,grant-dma
		if [ "$4" = grant ]; then
			_mem_ok=$([ "${_gm:-0}" -gt 0 ] && [ "${_fm:-1}" = 0 ] && [ "${_dt#* }" = iommus=yes ] && echo yes)
		else
			_mem_ok=$([ "${_fm:-0}" -gt 0 ] && [ "${_gm:-1}" = 0 ] && [ "${_dt#* }" = iommus=no ] && echo yes)
		fi
		if [ "$_res" = "RESULT PASS" ] && [ $_ok = 0 ] && [ "$_vdexit" = 0 ] && [ "$_mem_ok" = yes ]; then
			case_line "$2" PASS "$_det"
		else
			case_line "$2" FAIL "$_det mapping-as-expected=${_mem_ok:-no}"
		fi
	done
}

# -------------------------------------------------------------- xl
case_xl() {
	CASE=xl
	_name=xa-virtio
	new_image /tmp/xa-xl.img
	_t=$(up)
	VD_COUNT_FILE=/tmp/count-xl LD_PRELOAD=$PRELOAD $VD xen-watch >/tmp/vd-xl.log 2>&1 &
	_watch=$!
	wait_grep /tmp/vd-xl.log watching 30 || { dump /tmp/vd-xl.log; case_line xl FAIL "watcher did not start"; return; }
	_t=$(up)
	if ! xl -vvv create -p $EX/xen-arm64-virtio-disk.cfg >/tmp/xl-create-xl.log 2>&1; then
		dump /tmp/xl-create-xl.log 40
		dump /tmp/vd-xl.log
		case_line xl FAIL "boot=no xl create failed (backend not in InitWait within 10 s?)"
		kill $_watch
		return
	fi
	stage xl-create "$(since "$_t")"
	_dom=$(xl domid $_name)
	_be=/local/domain/0/backend/virtio_disk/$_dom
	_dev=$(xenstore-list "$_be" | head -n 1)
	xenstore-ls -f "$_be" | sed 's/^/XA-D xenstore: /'
	_base=$(xenstore-read "$_be/$_dev/base") _irq=$(xenstore-read "$_be/$_dev/irq")
	_state=$(xenstore-read "$_be/$_dev/state")
	follow $_name
	_t=$(up)
	xl unpause $_name
	wait_grep "$(gcon $_name)" 'XA-G xl RESULT' "$GUEST_TIMEOUT"
	stage unpause-to-result "$(since "$_t")"
	wait_gone $_name 60
	# the watcher stops the device process once the nodes are gone
	wait_grep /tmp/vd-xl.log 'process [0-9]+ (ended|killed)' 60
	_child=$(grep -oE 'process [0-9]+ (ended \([0-9-]+\)|killed by.*)' /tmp/vd-xl.log | tail -n 1 |
		sed 's/process [0-9]* //; s/ /-/g')
	dump /tmp/vd-xl.log 20
	kill -TERM $_watch 2>/dev/null
	_res=$(result "$(gcon $_name)" xl)
	_irqline=$(grep -o "XA-G xl interrupts after I/O: .*" "$(gcon $_name)" | tr -d '\r' | sed 's/.*I\/O: //')
	_dt=$(grep -o 'XA-G xl DT dt=[^ ]* iommus=[a-z]*' "$(gcon $_name)" | sed 's/.* dt=/dt=/')
	image_check /tmp/xa-xl.img "$(gcon $_name)" xl
	_ok=$?
	_img=$IMGRES
	_c=$(counts /tmp/count-xl "$_dom")
	_fm=$(field "$_c" fmap) _gm=$(field "$_c" gmap)
	_det="dom=$_dom boot=$(reached_userspace "$(gcon $_name)" xl) base=$_base irq=$_irq initwait=$_state $_dt guest='${_res:-none}' image:$_img device-process=${_child:-running} guest-irq='$_irqline' counts:'$_c'"
	# 4.17 writes base and irq in decimal: 0x2000000 = 33554432, SPI 33
	if [ "$_res" = "RESULT PASS" ] && [ $_ok = 0 ] && [ "$_state" = 2 ] && [ "$_base" = 33554432 ] &&
		[ "$_irq" = 33 ] && [ "$_dt" = "dt=virtio@2000000 iommus=no" ] &&
		[ "$_child" = "ended-(0)" ] && [ "${_fm:-0}" -gt 0 ] && [ "${_gm:-1}" = 0 ] &&
		echo "$_irqline" | grep -q ' 33 Edge '; then
		case_line xl PASS "$_det"
	else
		case_line xl FAIL "$_det"
	fi
	rm -f /tmp/xa-xl.img
}

# -------------------------------------------------------------- driver domain
case_driver_domain() {
	CASE=driver-domain
	_t=$(up)
	if ! xl create $EX/xen-arm64-driver-domain.cfg >/tmp/xl-create-domd.log 2>&1; then
		dump /tmp/xl-create-domd.log
		case_line driver-domain FAIL "boot=no cannot create the driver domain"
		return
	fi
	_dd=$(xl domid xa-domd)
	follow xa-domd
	if ! wait_grep "$(gcon xa-domd)" 'XA-DD READY' "$GUEST_TIMEOUT"; then
		case_line driver-domain FAIL "boot=no the driver domain never got virtiod ready"
		xl destroy xa-domd
		return
	fi
	stage driver-domain-ready "$(since "$_t")"
	# Xen 4.17 lets only dom0 or the guest's target (its device model) use
	# dm_ops on a guest; xl makes no target but for stub domains. Make the
	# driver domain the guest's target as soon as the guest exists, before
	# libxl adds its disk (and the watcher in the driver domain reacts).
	_known=$(xenstore-list /local/domain | tr '\n' ' ')
	(
		i=0
		while [ $i -lt 600 ]; do
			for d in $(xenstore-list /local/domain); do
				case " $_known " in *" $d "*) continue ;; esac
				if [ "$(xenstore-read /local/domain/$d/name 2>/dev/null)" = xa-guest ]; then
					/usr/bin/xa-set-target "$_dd" "$d" && echo "XA-D [$(up)] domain $_dd is now the device model of $d"
					exit 0
				fi
			done
			sleep 0.05
			i=$((i + 1))
		done
		echo "XA-D no xa-guest domain appeared"
	) &
	_setter=$!
	_t=$(up)
	if ! xl -vvv create -p $EX/xen-arm64-guest-of-driver-domain.cfg >/tmp/xl-create-guest.log 2>&1; then
		dump /tmp/xl-create-guest.log 40
		wait $_setter
		sleep 2
		dump "$(gcon xa-domd)" 60
		xl destroy xa-domd
		case_line driver-domain FAIL "boot=no xl create of the guest failed (backend not in InitWait within 10 s?)"
		return
	fi
	wait $_setter
	stage xl-create "$(since "$_t")"
	_dom=$(xl domid xa-guest)
	_be=/local/domain/$_dd/backend/virtio_disk/$_dom
	_dev=$(xenstore-list "$_be" | head -n 1)
	xenstore-ls -f "$_be" | sed 's/^/XA-D xenstore: /'
	_state=$(xenstore-read "$_be/$_dev/state")
	follow xa-guest
	_t=$(up)
	xl unpause xa-guest
	wait_grep "$(gcon xa-guest)" 'XA-G driver-domain RESULT' "$GUEST_TIMEOUT"
	stage unpause-to-result "$(since "$_t")"
	wait_gone xa-guest 60
	# the image is the driver domain's: tell it the record sum to check
	_sum=$(record_sum "$(gcon xa-guest)" driver-domain)
	xenstore-write /local/domain/$_dd/data/xa-sum "${_sum:-none}"
	wait_grep "$(gcon xa-domd)" 'XA-DD DONE' 120
	_res=$(result "$(gcon xa-guest)" driver-domain)
	_ap=$(grep -o 'access_platform=[0-9]' "$(gcon xa-guest)" | head -n 1)
	_dt=$(grep -o 'dt=[^ ]* iommus=[a-z]*' "$(gcon xa-guest)" | head -n 1)
	_chk=$(grep -o 'XA-DD CHECK .*' "$(gcon xa-domd)" | tr -d '\r' | sed 's/XA-DD //')
	_c=$(grep -o 'XA-DD COUNTS .*' "$(gcon xa-domd)" | tr -d '\r' | tr ';' '\n' | grep "dom$_dom ")
	_child=$(grep -o 'XA-DD device-process=.*' "$(gcon xa-domd)" | tr -d '\r' | sed 's/.*=//')
	_fm=$(field " $_c" fmap) _gm=$(field " $_c" gmap)
	_det="domd=$_dd dom=$_dom boot=$(reached_userspace "$(gcon xa-guest)" driver-domain) initwait=$_state $_dt guest='${_res:-none}' $_ap backend-check='$_chk' device-process=$_child counts:'$_c'"
	xl destroy xa-domd
	# libxl linked the node to xen,grant-dma (backend not dom0)
	if [ "$_res" = "RESULT PASS" ] && [ "$_state" = 2 ] && [ "$_dt" = "dt=virtio@2000000 iommus=yes" ] &&
		echo "$_chk" | grep -q '^CHECK PASS' && [ "${_gm:-0}" -gt 0 ] && [ "${_fm:-1}" = 0 ]; then
		case_line driver-domain PASS "$_det"
	else
		case_line driver-domain FAIL "$_det"
	fi
}

# -------------------------------------------------------------- main
FAILED=
T0=$(up)
DL_T0=$T0
for c in $XA_CASES; do
	CASE_T0=$(up)
	[ "$c" = dom0less ] && DL_T0=$CASE_T0
	log "=== case $c"
	case $c in
	dom0less) case_dom0less ;;
	xl) case_xl ;;
	driver-domain) case_driver_domain ;;
	*) case_line "$c" FAIL "unknown case" ;;
	esac
done
xl dmesg | grep -vE '^\(d[0-9]+\) ' | grep -iE 'error|fail|bug|crash|fatal|assert|panic|leak|warn' |
	sed 's/^/XA-D xen says: /' | tail -n 20
if [ -z "$FAILED" ]; then
	echo "XA-RESULT PASS cases='$XA_CASES' secs=$(since "$T0")"
else
	echo "XA-RESULT FAIL failed='${FAILED# }' cases='$XA_CASES' secs=$(since "$T0")"
fi
[ -z "$FAILED" ]
