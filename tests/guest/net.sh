# shellcheck shell=bash
# tests/guest/net.sh - the virtio-net and virtio-rng cases of run.sh (sourced).
#
# net: virtiod runs inside a network namespace the case creates, where it
# creates its tap; the host end of the link (10.213.0.1) lives only in that
# namespace, the guest's (10.213.0.2) only in the guest, so nothing leaves the
# machine.  The guest (init.sh vt.test=net) pings the host end, receives
# NET_MB MiB from the host and sends NET_MB MiB back over TCP (busybox nc on
# both sides), in one stream per queue pair; both ends print md5s, the host
# compares them.  ethtool -k / -S in the guest show the offloads and that
# every queue carried packets.  The namespace, its tap and every process are
# removed by the case.
#
# rng: the guest reads 1 MiB from /dev/hwrng with rng_current = virtio_rng.

NET_MB=${NET_MB:-64}
NET_HOST=10.213.0.1
NET_GUEST=10.213.0.2

net_ns_up() {
	NS=vt-$$-$CASE
	ip netns add "$NS" || return 1
	NS_UP=1
	ip -n "$NS" link set lo up
}

net_ns_down() {
	[ "${NS_UP:-0}" = 1 ] || return 0
	ip netns del "$NS" 2>/dev/null
	NS_UP=0
}

# net_backend_start EXTRA...: virtiod net inside the namespace, its tap up
# with the host end's address.
net_backend_start() {
	local i
	echo "### $(date +%T.%N) starting: ip netns exec $NS $VIRTIOD net --socket-path $SOCK --tap vt0 $*" >>"$BLOG"
	ip netns exec "$NS" "$VIRTIOD" net --socket-path "$SOCK" --tap vt0 "${EXTRA_ARGS[@]}" "$@" \
		</dev/null >>"$BLOG" 2>&1 &
	VT_BACKEND_PID=$!
	vt_track "$VT_BACKEND_PID"
	# /proc/net/unix shows the sockets of the reader's namespace
	for i in $(seq 100); do
		[ -S "$SOCK" ] && ip netns exec "$NS" bash -c "$(declare -f vt_sock_listening); vt_sock_listening $SOCK" && break
		kill -0 "$VT_BACKEND_PID" 2>/dev/null || break
		sleep 0.1
	done
	[ -S "$SOCK" ] && kill -0 "$VT_BACKEND_PID" 2>/dev/null ||
		{ DETAIL="virtiod did not listen: $(tail -n 3 "$BLOG" | tr '\n' ' ')"; return 1; }
	ip -n "$NS" addr add "$NET_HOST/24" dev vt0 &&
		ip -n "$NS" link set vt0 up ||
		{ DETAIL="cannot configure tap vt0 in $NS"; return 1; }
}

# net_qemu_args PAIRS: the vhost-user netdev and the machine's virtio-net
net_qemu_args() {
	local pairs=$1 dev mq=""
	if [ "$VT_MACHINE" = microvm ]; then
		dev=virtio-net-device
	else
		dev=virtio-net-pci
		[ "$pairs" -gt 1 ] && mq=",mq=on"
		# QEMU 7.2 segfaults in vhost_net_start (msix_set_vector_notifiers)
		# when a guest with MSI-X negotiates CTRL_VQ, which QEMU's
		# virtio-net offers itself and no vhost-user backend can refuse
		# (docs/net.md): INTx instead of MSI-X
		mq="$mq,${NET_PCI_PROPS:-vectors=0}"
	fi
	VT_DEVICE_ARGS="-netdev vhost-user,id=n0,chardev=c0,queues=$pairs -device $dev,netdev=n0$mq"
}

# net_run PAIRS OFFLOADS(0|1): the whole net case
net_run() {
	local pairs=$1 offl=$2 k per=$((NET_MB / $1)) got want bad="" q
	net_ns_up || { DETAIL="ip netns add failed"; return 1; }
	# bench/net.sh: the same guest on QEMU's own -netdev tap
	[ "${NET_BACKEND:-virtiod}" = qemu-tap ] && { net_run_qemu_tap "$pairs" "$offl"; return; }
	local qargs=()
	[ "$pairs" -gt 1 ] && qargs=(--queue-pairs "$pairs")
	# QEMU's virtio-mmio offers QueueNumMax 1024 whatever the device's
	# queue size, and Linux takes the maximum
	[ "$VT_MACHINE" = microvm ] && qargs+=(--queue-size 1024)
	net_backend_start "${qargs[@]}" || return 1
	# the host receives what the guest sends (ports 5001, 5003, ...)
	for ((k = 0; k < pairs; k++)); do
		# stdin a fifo nc holds open itself: it must not half-close
		# before the guest has sent everything
		mkfifo "$CDIR/hold$k"
		ip netns exec "$NS" busybox nc -l -p $((5001 + 2 * k)) <>"$CDIR/hold$k" >"$CDIR/from-guest$k" 2>/dev/null &
		vt_track $!
		dd if=/dev/urandom of="$CDIR/to-guest$k" bs=1M count=$per status=none
	done
	net_qemu_args "$pairs"
	vt_qemu_start "$CLOG" "$SOCK" "$pairs" 1 0 vt.test=net vt.mb="$NET_MB" vt.streams="$pairs" \
		vt.ip="$NET_GUEST/24" vt.peer="$NET_HOST" vt.offloads="$offl" || return 1
	VT_DEVICE_ARGS=""
	vt_wait_for "$CLOG" '^VT-NET: listening|^VT-RESULT:' "$VT_TIMEOUT" "$VT_QEMU_PID"
	grep -aq '^VT-NET: listening' "$CLOG" || { wait_result; DETAIL=$(why); return 1; }
	for ((k = 0; k < pairs; k++)); do
		ip netns exec "$NS" busybox nc "$NET_GUEST" $((5002 + 2 * k)) <"$CDIR/to-guest$k" >/dev/null 2>&1 &
		vt_track $!
	done
	wait_result || { DETAIL=$(why); return 1; }
	# both directions, every stream: the md5 each end saw
	for ((k = 0; k < pairs; k++)); do
		want=$(md5sum <"$CDIR/to-guest$k" | cut -d' ' -f1)
		got=$(vt_lines "$CLOG" "VT-NET: rx stream=$k " | sed -n 's/.*md5=\([0-9a-f]*\).*/\1/p')
		[ "$got" = "$want" ] || bad="$bad; host->guest stream $k: guest md5 '$got', sent $want"
		want=$(vt_lines "$CLOG" "VT-NET: tx stream=$k " | sed -n 's/.*md5=\([0-9a-f]*\).*/\1/p')
		for _ in $(seq 50); do # the host's nc may still be writing its file
			got=$(md5sum <"$CDIR/from-guest$k" | cut -d' ' -f1)
			[ "$got" = "$want" ] && break
			sleep 0.1
		done
		[ "$got" = "$want" ] || bad="$bad; guest->host stream $k: host md5 $got, guest sent '$want'"
	done
	[ -z "$bad" ] || { DETAIL="data differ${bad}"; return 1; }
	# with several pairs, every queue carried packets
	q=$(vt_lines "$CLOG" 'VT-NET: queues' | sed 's/VT-NET: queues //')
	if [ "$pairs" -gt 1 ]; then
		for ((k = 0; k < pairs; k++)); do
			for d in rx tx; do
				echo "$q" | grep -qE "${d}_queue_${k}_packets: [1-9]" ||
					{ DETAIL="queue ${d}_queue_$k carried no packet ($q)"; return 1; }
			done
		done
	fi
	stop_backend || { DETAIL="backend $BACKEND_STOP"; return 1; }
	rm -f "$CDIR"/to-guest* "$CDIR"/from-guest* "$CDIR"/hold*
	DETAIL="ping ok; ${NET_MB} MiB each way in $pairs stream(s), md5s match;"
	DETAIL="$DETAIL $(vt_lines "$CLOG" 'VT-PERF: rx' | sed 's/VT-PERF: //'), $(vt_lines "$CLOG" 'VT-PERF: tx' | sed 's/VT-PERF: //')"
	DETAIL="$DETAIL; $(vt_lines "$CLOG" 'VT-NET: offloads' | sed 's/VT-NET: offloads //; s/: /=/g')"
	[ "$pairs" -gt 1 ] && DETAIL="$DETAIL; queues: $q"
	return 0
}

# The comparison point of bench/net.sh: QEMU's userspace tap backend
# (vhost=off: no vhost-net under TCG) on a tap made here, QEMU inside the
# namespace; the guest runs the same test.
net_run_qemu_tap() {
	local pairs=$1 offl=$2 k per=$((NET_MB / $1)) wrap=$CDIR/qemu-in-ns
	[ "$pairs" = 1 ] && [ "$VT_MACHINE" = q35 ] ||
		{ DETAIL="NET_BACKEND=qemu-tap runs net-q35 only (one pair, PCI)"; return 1; }
	ip netns exec "$NS" ip tuntap add dev vt0 mode tap vnet_hdr || { DETAIL="ip tuntap add"; return 1; }
	ip -n "$NS" addr add "$NET_HOST/24" dev vt0 && ip -n "$NS" link set vt0 up
	for ((k = 0; k < pairs; k++)); do
		mkfifo "$CDIR/hold$k"
		ip netns exec "$NS" busybox nc -l -p $((5001 + 2 * k)) <>"$CDIR/hold$k" >"$CDIR/from-guest$k" 2>/dev/null &
		vt_track $!
		dd if=/dev/urandom of="$CDIR/to-guest$k" bs=1M count=$per status=none
	done
	printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "$NS" "$(command -v "$QEMU")" >"$wrap"
	chmod +x "$wrap"
	VT_DEVICE_ARGS="-netdev tap,id=n0,ifname=vt0,script=no,downscript=no,vhost=off -device virtio-net-pci,netdev=n0,vectors=0"
	QEMU=$wrap VT_NO_CHARDEV=1 vt_qemu_start "$CLOG" "$SOCK" "$pairs" 1 0 vt.test=net vt.mb="$NET_MB" \
		vt.streams="$pairs" vt.ip="$NET_GUEST/24" vt.peer="$NET_HOST" vt.offloads="$offl" || return 1
	VT_DEVICE_ARGS=""
	vt_wait_for "$CLOG" '^VT-NET: listening|^VT-RESULT:' "$VT_TIMEOUT" "$VT_QEMU_PID"
	for ((k = 0; k < pairs; k++)); do
		ip netns exec "$NS" busybox nc "$NET_GUEST" $((5002 + 2 * k)) <"$CDIR/to-guest$k" >/dev/null 2>&1 &
		vt_track $!
	done
	wait_result || { DETAIL=$(why); return 1; }
	DETAIL="$(vt_lines "$CLOG" 'VT-PERF: rx' | sed 's/VT-PERF: //'), $(vt_lines "$CLOG" 'VT-PERF: tx' | sed 's/VT-PERF: //')"
}

net_case() { # name pairs offloads
	local rc
	case_setup "$1" 1
	rm -f "$IMG"
	net_run "$2" "$3"
	rc=$?
	net_ns_down
	return $rc
}

case_net_q35() { VT_MACHINE=q35 net_case net-q35 1 1; }
case_net_microvm() { VT_MACHINE=microvm net_case net-microvm 1 1; }
case_net_2_pairs() { VT_MACHINE=q35 net_case net-2-pairs 2 1; }

# ------------------------------------------------------------------ rng
rng_case() { # name machine
	local dev VT_MACHINE=$2
	case_setup "$1" 1
	rm -f "$IMG"
	dev=vhost-user-rng-pci
	[ "$VT_MACHINE" = microvm ] && dev=vhost-user-rng
	echo "### $(date +%T.%N) starting: $VIRTIOD rng --socket-path $SOCK" >>"$BLOG"
	"$VIRTIOD" rng --socket-path "$SOCK" "${EXTRA_ARGS[@]}" </dev/null >>"$BLOG" 2>&1 &
	VT_BACKEND_PID=$!
	vt_track "$VT_BACKEND_PID"
	for _ in $(seq 100); do
		vt_sock_listening "$SOCK" && break
		sleep 0.1
	done
	VT_DEVICE_ARGS="-device $dev,chardev=c0"
	vt_qemu_start "$CLOG" "$SOCK" 1 1 0 vt.test=rng vt.kb=1024
	VT_DEVICE_ARGS=""
	wait_result || { DETAIL=$(why); return 1; }
	stop_backend || { DETAIL="backend $BACKEND_STOP"; return 1; }
	DETAIL="$(vt_lines "$CLOG" 'VT-INFO: rng_current' | sed 's/VT-INFO: //'); $(vt_lines "$CLOG" 'VT-RNG:' | sed 's/VT-RNG: //')"
}

case_rng_q35() { rng_case rng-q35 q35; }
case_rng_microvm() { rng_case rng-microvm microvm; }
