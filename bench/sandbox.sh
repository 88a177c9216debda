#!/bin/sh
# The sandbox's cost on the hot path (`make bench-sandbox`, figures only):
# virtiod under vd-loadgen with --sandbox=seccomp and --sandbox=none, in
# alternating rounds on the same tmpfs image. Every system call a queue
# thread makes (io_uring_enter, eventfd writes, preadv2/pwritev2 on the
# sync engine) goes through the filter. Only ever kills what it started.
set -eu

BUILD=${BUILD:-build}
VIRTIOD=${VIRTIOD:-$BUILD/virtiod}
LOADGEN=${LOADGEN:-$BUILD/bench/vd-loadgen}
SECS=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
# name:engine:loadgen arguments
JOBS=${BENCH_SANDBOX_JOBS:-"4k-randread-qd1:uring:--bs 4k --rwmix 100 --iodepth 1
4k-randread-qd32:uring:--bs 4k --rwmix 100 --iodepth 32
4k-randwrite-qd1:uring:--bs 4k --rwmix 0 --iodepth 1
4k-randread-qd1-sync:sync:--bs 4k --rwmix 100 --iodepth 1
4k-randread-qd32-sync:sync:--bs 4k --rwmix 100 --iodepth 32"}

say() { echo "bench-sandbox: $*" >&2; }
pid=""
tmp=""
cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	[ -n "$tmp" ] && rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$LOADGEN" ] && [ -x "$VIRTIOD" ] || { say "build $VIRTIOD and $LOADGEN first"; exit 2; }
base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
tmp=$(mktemp -d "$base/vd-bench-sandbox.XXXXXX")
"$LOADGEN" --make-image "$tmp/img" --size 256M >/dev/null

run() { # run MODE ENGINE ARGS: prints loadgen's result line
	mode=$1 engine=$2
	shift 2
	rm -f "$tmp/sock"
	"$VIRTIOD" blk --socket-path "$tmp/sock" --disk "$tmp/img" \
		--io-engine "$engine" --sandbox "$mode" --log-level warn \
		>"$tmp/log" 2>&1 &
	pid=$!
	# shellcheck disable=SC2086
	"$LOADGEN" --socket "$tmp/sock" --backend-pid "$pid" --seconds "$SECS" \
		--label "$mode" $* | tail -1
	kill "$pid"
	wait "$pid" || true
	pid=""
}

echo "$JOBS" | while IFS=: read -r name engine args; do
	[ -n "$name" ] || continue
	r=1
	while [ $r -le "$ROUNDS" ]; do
		for mode in seccomp none; do
			printf '%s round %d %s: ' "$name" "$r" "$mode"
			run "$mode" "$engine" "$args"
		done
		r=$((r + 1))
	done
done
