#!/bin/bash
# bench/net.sh - virtio-net figures (`make bench-net`; never pass/fail).
#
# Packet rate, 64-byte frames, in a network namespace made and removed here:
#   tx  testpmd (virtio-user, txonly) -> virtiod -> tap        counted at the tap
#   rx  tap -> virtiod -> testpmd (virtio-user, rxonly)         counted by testpmd;
#       the frames come from a second testpmd writing into the tap (af_packet)
# and the same through the anchor DPDK itself offers for the job: one testpmd
# forwarding between net_vhost (the socket) and net_tap. For each: Mpps, CPU
# per packet of the backend (virtiod, or the forwarding testpmd), and the
# backend's CPU while a frontend is connected and nothing moves.
#
# Guest TCP: the guest of tests/guest (QEMU TCG, q35) moving NET_MB MiB each
# way over virtiod, then over QEMU's own -netdev tap (vhost=off), one run.
#
# Environment: BUILD, BENCH_NET_SECONDS (5), BENCH_NET_PARTS ("pps tcp"),
# BENCH_NET_ROUNDS (1), NET_MB (64), BENCH_NET_FCPU/BCPU (1/0). Only the processes started here are stopped, by pid.
set -u -o pipefail
BUILD=${BUILD:-build}
VIRTIOD=${VIRTIOD:-$BUILD/virtiod}
TESTPMD=${TESTPMD:-dpdk-testpmd}
SECS=${BENCH_NET_SECONDS:-5}
PARTS=${BENCH_NET_PARTS:-pps tcp}
ROUNDS=${BENCH_NET_ROUNDS:-1}
# awk: the median of a space-separated list of numbers
MEDIAN='function med(list,   a, n, i, j, t) {
	n = split(list, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n ? (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) : 0
}'

MB=${NET_MB:-64}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$BUILD/bench/net
NS=vt-bench-$$
DIR=$(mktemp -d /tmp/vt-bench.XXXXXX)
SOCK=$DIR/net.sock
HZ=$(getconf CLK_TCK)
# Two CPUs: the frontend polls on FCPU; the backend (virtiod, or DPDK's
# forwarding testpmd) gets BCPU, shared in the rx runs with the generator.
FCPU=${BENCH_NET_FCPU:-1}
BCPU=${BENCH_NET_BCPU:-0}
PIDS=()

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	ip netns del "$NS" 2>/dev/null
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$OUT"

stop() { # pid: SIGINT, SIGKILL after 10 s
	kill -INT "$1" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime
tap_stat() { ip netns exec "$NS" cat "/sys/class/net/$1/statistics/$2"; }
# testpmd's cumulative port-0 counter (RX-packets / TX-packets) so far
pmd_count() { grep -a "$2-packets:" "$1" | tail -n 1 | awk -v k="$2-packets:" '{for (i = 1; i < NF; i++) if ($i == k) print $(i + 1)}'; }

# pmd NAME CPU ARGS...: testpmd in the namespace, its main and forwarding
# lcores both on CPU, stats every second
pmd() {
	local name=$1 cpu=$2 log=$OUT/testpmd-$1.log
	shift 2
	ip netns exec "$NS" "$TESTPMD" --lcores "(0,1)@$cpu" --no-huge -m 256 --no-pci --file-prefix "vb$$$name" "$@" \
		--stats-period=1 --auto-start >"$log" 2>&1 </dev/null &
	LAST=$!
	PIDS+=("$LAST")
	for _ in $(seq 200); do
		grep -aq 'NIC statistics' "$log" && return 0
		kill -0 "$LAST" 2>/dev/null || break
		sleep 0.1
	done
	echo "bench-net: testpmd $name did not start:" >&2
	tail -n 8 "$log" >&2
	return 1
}

virtiod_up() {
	rm -f "$SOCK"
	ip netns exec "$NS" taskset -c "$BCPU" "$VIRTIOD" net --socket-path "$SOCK" --tap vt0 >"$OUT/virtiod.log" 2>&1 </dev/null &
	VPID=$!
	PIDS+=("$VPID")
	for _ in $(seq 100); do
		[ -S "$SOCK" ] && break
		sleep 0.1
	done
	ip netns exec "$NS" sysctl -qw net.ipv6.conf.vt0.disable_ipv6=1
	ip -n "$NS" link set vt0 up
}

# The anchor: net_vhost (server on SOCK) <-> net_tap (dtap0), io forwarding.
anchor_up() {
	rm -f "$SOCK"
	pmd anchor "$BCPU" --vdev "net_vhost0,iface=$SOCK,queues=1" --vdev net_tap0,iface=dtap0 -- \
		--total-num-mbufs=16384 --forward-mode=io || return 1
	APID=$LAST
	for _ in $(seq 100); do
		[ -S "$SOCK" ] && break
		sleep 0.1
	done
	ip netns exec "$NS" sysctl -qw net.ipv6.conf.dtap0.disable_ipv6=1
	ip -n "$NS" link set dtap0 up
}

frontend() { # mode: testpmd virtio-user on SOCK
	pmd "front-$1" "$FCPU" --vdev "net_virtio_user0,path=$SOCK,queues=1" -- \
		--total-num-mbufs=16384 --forward-mode="$1" --txpkts=64 --burst=32
}

generator() { # iface: 64-byte frames into the tap through AF_PACKET
	pmd gen "$BCPU" --vdev "net_af_packet0,iface=$1" -- \
		--total-num-mbufs=16384 --forward-mode=txonly --txpkts=64 --burst=32
}

# row ROUND BACKEND PATH MPPS NS/PKT CPU
row() { printf '%-6s %-9s %-30s %8s %11s %12s\n' "$@" | tee -a "$OUT/pps.txt"; }

# measure ROUND BACKEND PATH BACKEND_PID COUNT_FN: rate over SECS after a
# second of warm-up
measure() {
	local bpid=$4 fn=$5 c0 c1 t0 t1 n
	sleep 1
	c0=$($fn) t0=$(ticks "$bpid")
	sleep "$SECS"
	c1=$($fn) t1=$(ticks "$bpid")
	n=$((${c1:-0} - ${c0:-0}))
	row "$1" "$2" "$3" "$(awk -v n=$n -v s="$SECS" 'BEGIN { printf "%.3f", n / s / 1e6 }')" \
		"$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n=$n 'BEGIN { if (n > 0) printf "%.0f", t / hz * 1e9 / n; else print "-" }')" \
		"$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v s="$SECS" 'BEGIN { printf "%.0f%%", t / hz / s * 100 }')"
}

idle() { # ROUND BACKEND PID: its CPU over 3 s, a frontend connected, no traffic
	local t0 t1
	sleep 1
	t0=$(ticks "$3")
	sleep 3
	t1=$(ticks "$3")
	row "$1" "$2" "idle, frontend connected" - - "$(awk -v t=$((t1 - t0)) -v hz="$HZ" 'BEGIN { printf "%.0f%%", t / hz / 3 * 100 }')"
}

# pps_run ROUND BACKEND(virtiod|dpdk): tx, idle and rx through one backend
pps_run() {
	local r=$1 b=$2 bpid tap
	if [ "$b" = virtiod ]; then
		virtiod_up || return 1
		bpid=$VPID tap=vt0
	else
		anchor_up || return 1
		bpid=$APID tap=dtap0
	fi
	frontend txonly && measure "$r" "$b" "tx: testpmd -> $b -> tap" "$bpid" "tap_stat $tap rx_packets"
	stop_all_pmd "$bpid"
	frontend rxonly && FLOG=$OUT/testpmd-front-rxonly.log && idle "$r" "$b" "$bpid"
	generator "$tap" && measure "$r" "$b" "rx: tap -> $b -> testpmd" "$bpid" "pmd_count $FLOG RX"
	stop_all_pmd
	if [ "$b" = virtiod ]; then stop "$VPID"; fi
	return 0
}

pps() {
	local r
	ip netns add "$NS" || return 1
	ip -n "$NS" link set lo up
	: >"$OUT/pps.txt"
	echo "bench-net: 64-byte frames, $SECS s per figure, $ROUNDS round(s), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
	echo "(dpdk: testpmd forwarding between net_vhost and net_tap; CPU: the backend's, per packet and share of a CPU)"
	row round backend path Mpps "CPU ns/pkt" "backend CPU"
	# alternate who goes first, so that drift favours neither
	for ((r = 1; r <= ROUNDS; r++)); do
		if [ $((r % 2)) = 1 ]; then
			pps_run "$r" virtiod && pps_run "$r" dpdk
		else
			pps_run "$r" dpdk && pps_run "$r" virtiod
		fi || break
	done
	awk "$MEDIAN"'
	$1 ~ /^[0-9]+$/ && $3 ~ /^(tx|rx):$/ { v[$2 " " $3] = v[$2 " " $3] " " $(NF - 2) }
	function r(d,   x, y) { x = med(v["virtiod " d]); y = med(v["dpdk " d]); return y > 0 ? sprintf("%.2f", x / y) : "-" }
	END { printf "virtiod/DPDK vhost+tap Mpps ratio (medians): tx %s, rx %s\n", r("tx:"), r("rx:") }' "$OUT/pps.txt" | tee -a "$OUT/pps.txt"
	ip netns del "$NS"
}

stop_all_pmd() { # [PID to spare]
	local p
	for p in "${PIDS[@]}"; do
		[ "$p" = "${1:-}" ] && continue
		[ "$p" = "${VPID:-}" ] && continue
		kill -0 "$p" 2>/dev/null && stop "$p"
	done
}

# tcp_once BACKEND: "RX TX" in MiB/s from one run of the guest test
tcp_once() {
	local line
	line=$(BUILD=$BUILD NET_MB=$MB NET_BACKEND=$1 "$ROOT/tests/guest/run.sh" net-q35 2>&1 | grep -a 'net-q35 ')
	cp "$BUILD/guest-tests/net-q35/console.log" "$OUT/guest-$1.log" 2>/dev/null
	echo "$line" | sed -n 's/.*rx \([0-9]*\) MiB\/s, tx \([0-9]*\) MiB\/s.*/\1 \2/p'
}

tcp_row() { # round backend "RX TX"
	local rx tx
	read -r rx tx <<<"$3"
	printf '%-6s %-9s %12s %12s\n' "$1" "$2" "${rx:--}" "${tx:--}" | tee -a "$OUT/tcp.txt"
}

tcp() {
	local r v q first
	echo "bench-net: guest TCP, $MB MiB each way, QEMU TCG q35 (1 vCPU, INTx), same guest, $ROUNDS round(s)"
	: >"$OUT/tcp.txt"
	printf '%-6s %-9s %12s %12s\n' round backend "rx MiB/s" "tx MiB/s" | tee -a "$OUT/tcp.txt"
	# alternate who goes first, so that drift favours neither
	for ((r = 1; r <= ROUNDS; r++)); do
		first=$((r % 2))
		[ "$first" = 0 ] && q=$(tcp_once qemu-tap)
		v=$(tcp_once virtiod)
		[ "$first" = 1 ] && q=$(tcp_once qemu-tap)
		tcp_row "$r" virtiod "$v"
		tcp_row "$r" qemu-tap "$q"
	done
	# medians over rounds, and virtiod / QEMU
	awk "$MEDIAN"'
	$1 ~ /^[0-9]+$/ && $3 != "-" { rx[$2] = rx[$2] " " $3; tx[$2] = tx[$2] " " $4 }
	END {
		if (!("virtiod" in rx) || !("qemu-tap" in rx)) { print "virtiod/QEMU -netdev tap: no result"; exit }
		printf "virtiod/QEMU -netdev tap guest TCP ratio (medians): rx %.2f, tx %.2f\n",
			med(rx["virtiod"]) / med(rx["qemu-tap"]), med(tx["virtiod"]) / med(tx["qemu-tap"])
	}' "$OUT/tcp.txt" | tee -a "$OUT/tcp.txt"
}

for p in $PARTS; do
	case $p in
	pps) pps ;;
	tcp) tcp ;;
	*) echo "bench-net: unknown part $p (pps, tcp)" >&2 ;;
	esac
done
