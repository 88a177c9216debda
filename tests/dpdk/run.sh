#!/bin/bash
# tests/dpdk/run.sh - DPDK's testpmd as a second vhost-user frontend of
# virtio-net (`make check-dpdk`, part of make check).  testpmd's virtio-user
# PMD drives virtiod over its socket without hugepages; virtiod's tap lives in
# a network namespace this script creates and removes.
#   macswap  frames.py sends 2000 frames of 60..1514 bytes into the tap in
#            bursts of 64; virtiod hands them to testpmd, testpmd swaps the
#            MACs and sends them back: every frame must return byte for byte.
#   txonly   testpmd sends 64-byte frames for 2 s: the tap must have
#            received exactly what testpmd says it sent.
# Every process is stopped by its pid, the namespace is deleted.
set -u -o pipefail
BUILD=${BUILD:-build}
VIRTIOD=${VIRTIOD:-$BUILD/virtiod}
TESTPMD=${TESTPMD:-dpdk-testpmd}
HERE=$(cd "$(dirname "$0")" && pwd)
NS=vt-dpdk-$$
DIR=$(mktemp -d /tmp/vt-dpdk.XXXXXX)
SOCK=$DIR/net.sock
PEER_MAC=02:00:00:00:00:02
PIDS=()
PASSED=0 FAILED=0

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	ip netns del "$NS" 2>/dev/null
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v "$TESTPMD" >/dev/null || { echo "dpdk: $TESTPMD missing (package dpdk; scripts/deps.sh)"; exit 1; }
[ -x "$VIRTIOD" ] || { echo "dpdk: $VIRTIOD not built"; exit 1; }

stop() { # pid: SIGINT, then SIGKILL after 10 s
	local i
	kill -INT "$1" 2>/dev/null
	for i in $(seq 100); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

result() { # name ok detail
	if [ "$2" = 1 ]; then
		PASSED=$((PASSED + 1))
		echo "dpdk: $1 PASS  $3"
	else
		FAILED=$((FAILED + 1))
		echo "dpdk: $1 FAIL  $3"
		echo "dpdk:   logs in $OUT"
	fi
}

OUT=$BUILD/dpdk-tests
rm -rf "$OUT" && mkdir -p "$OUT"
ip netns add "$NS" || { echo "dpdk: ip netns add failed"; exit 1; }
ip -n "$NS" link set lo up
ip netns exec "$NS" "$VIRTIOD" net --socket-path "$SOCK" --tap vt0 >"$OUT/virtiod.log" 2>&1 </dev/null &
VPID=$!
PIDS+=("$VPID")
for _ in $(seq 100); do
	[ -S "$SOCK" ] && break
	sleep 0.1
done
[ -S "$SOCK" ] || { echo "dpdk: virtiod did not listen"; cat "$OUT/virtiod.log"; exit 1; }
# no IPv6 chatter (router solicitations) among the frames counted
ip netns exec "$NS" sysctl -qw net.ipv6.conf.vt0.disable_ipv6=1
ip -n "$NS" link set vt0 up

# testpmd MODE ARGS...: in the background, stats every second until SIGINT
testpmd() {
	local mode=$1 log=$OUT/testpmd-$1.log
	shift
	"$TESTPMD" -l 0-1 --no-huge -m 256 --no-pci --file-prefix "vt$$" \
		--vdev "net_virtio_user0,path=$SOCK,queues=1,mac=$PEER_MAC" -- \
		--total-num-mbufs=16384 --forward-mode="$mode" --auto-start --stats-period=1 "$@" \
		>"$log" 2>&1 </dev/null &
	TPID=$!
	PIDS+=("$TPID")
	for _ in $(seq 200); do
		grep -q 'Port statistics' "$log" && return 0
		kill -0 "$TPID" 2>/dev/null || break
		sleep 0.1
	done
	echo "dpdk: testpmd ($mode) did not start:"
	tail -n 15 "$log"
	return 1
}

# the last "Forward statistics for port 0" block's TX-packets / RX-packets
fwd_stat() { # log RX|TX
	awk -v k="$2-packets:" '/Forward statistics for port 0/ { f = 1 }
		f { for (i = 1; i < NF; i++) if ($i == k) v = $(i + 1) } END { print v + 0 }' "$1"
}
tap_stat() { ip netns exec "$NS" cat "/sys/class/net/vt0/statistics/$1"; }

# ---------------------------------------------------------------- macswap
if testpmd macswap; then
	detail=$(ip netns exec "$NS" python3 "$HERE/frames.py" vt0 "$PEER_MAC" 2000 64 2>&1)
	ok=$?
	stop "$TPID"
	result macswap $((ok == 0)) "$detail; testpmd rx $(fwd_stat "$OUT/testpmd-macswap.log" RX) tx $(fwd_stat "$OUT/testpmd-macswap.log" TX)"
else
	result macswap 0 "testpmd did not start"
fi

# ---------------------------------------------------------------- txonly
if testpmd txonly --txpkts=64 --burst=32; then
	before=$(tap_stat rx_packets)
	sleep 2
	stop "$TPID"
	sleep 0.5
	got=$(($(tap_stat rx_packets) - before))
	sent=$(fwd_stat "$OUT/testpmd-txonly.log" TX)
	# the tap counted from after testpmd's first stats line: at most what
	# testpmd sent, and most of it
	ok=0
	[ "$sent" -gt 1000 ] && [ "$got" -gt 0 ] && [ "$got" -le "$sent" ] && ok=1
	result txonly $ok "testpmd sent $sent frames of 64 bytes, the tap received $got of them in the window"
else
	result txonly 0 "testpmd did not start"
fi

kill -TERM "$VPID" 2>/dev/null
wait "$VPID" 2>/dev/null
echo "dpdk: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
