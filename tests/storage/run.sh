#!/bin/sh
# tests/storage/run.sh - virtiod with network stores (`make check-storage`):
# starts a one-node Ceph cluster (tests/storage/ceph.sh) in a temp dir,
# runs build/tests/storage/storage-test (nbdkit is started per test) and
# the QEMU guest's rbd case (tests/guest/run.sh rbd: vd-verify on an RBD
# image), and stops the cluster by its pids whatever happened. Ends with
# the line "storage: N passed, N failed".
#
# Environment: BUILD (default build), VIRTIOD (default $BUILD/virtiod),
# ST_KEEP=1 keeps the cluster's directory (logs).
set -u
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-build}
VIRTIOD=${VIRTIOD:-$BUILD/virtiod}
BIN=$BUILD/tests/storage/storage-test
t0=$(date +%s)

for t in nbdkit nbdcopy ceph-mon ceph-osd rbd; do
	command -v $t >/dev/null || { echo "storage: $t missing (run scripts/deps.sh as root)" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "storage: $BIN not built (make $BIN)" >&2; exit 1; }

dir=$(mktemp -d /tmp/vd-storage.XXXXXX)
cleanup() {
	"$here/ceph.sh" stop "$dir/ceph" 2>/dev/null
	[ "${ST_KEEP:-0}" = 1 ] && echo "storage: kept $dir" >&2 || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "storage: starting a one-node Ceph cluster (monitor + memstore OSD, 127.0.0.1) in $dir/ceph"
if ! conf=$("$here/ceph.sh" start "$dir/ceph"); then
	echo "storage: the Ceph cluster did not start"
	echo "storage: 0 passed, 1 failed"
	exit 1
fi
echo "storage: cluster up in $(($(date +%s) - t0)) s"

out=$dir/storage-test.out
ST_CEPH_CONF=$conf ST_OSD_PID=$(cat "$dir/ceph/osd.pid") VIRTIOD=$VIRTIOD "$BIN" 2>&1 | tee "$out"
rc=$?
# cmocka prints "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s)..." per group
passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | awk '{s += $1} END {print s + 0}')
failed=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | awk '{s += $1} END {print s + 0}')
[ "$rc" != 0 ] && [ "$failed" = 0 ] && failed=1 # a crash before cmocka's summary

# A Linux guest in QEMU on an RBD image served by virtiod.
t1=$(date +%s)
if BUILD=$BUILD VIRTIOD=$VIRTIOD VT_CEPH_CONF=$conf "$here/../guest/run.sh" rbd; then
	passed=$((passed + 1))
else
	failed=$((failed + 1)) rc=1
fi
echo "storage: guest on RBD in $(($(date +%s) - t1)) s"
echo "storage: $passed passed, $failed failed ($(($(date +%s) - t0)) s in all)"
[ "$rc" = 0 ] && [ "$failed" = 0 ]
