#!/bin/bash
# tests/verify/selftest.sh - vd-verify's own tests, on host files (make
# check-verify). Each case shows that vd-verify passes what is right AND
# fails what is wrong, naming the offset: a run + check on an O_DIRECT file,
# then one byte corrupted, a write dropped (an older generation left behind),
# the record damaged, truncated or not the announced one, faults injected
# into a run (dropped write, short completion, corrupt read), and O_DIRECT
# quietly dropped (tmpfs). Also the CLI, bench, the data format (a golden
# checksum) and, where built, the arm64 binary.
#
# Env: BUILD (build), VD_VERIFY ($BUILD/tests/vd-verify), VERIFY_ARM64
# (arm64 binary to check; empty: skipped), VERIFY_DIR (scratch directory on a
# file system with O_DIRECT; default $BUILD/verify-selftest).
set -u -o pipefail
BUILD=${BUILD:-build}
VV=${VD_VERIFY:-$BUILD/tests/vd-verify}
A64=${VERIFY_ARM64:-}
DIR=${VERIFY_DIR:-$BUILD/verify-selftest}
rm -rf "$DIR" && mkdir -p "$DIR"
IMG=$DIR/disk.img
PASSED=0 FAILED=0 FAILED_NAMES=""

ok() { PASSED=$((PASSED + 1)); printf 'verify: %-26s PASS  %s\n' "$1" "$2"; }
ko() {
	FAILED=$((FAILED + 1))
	FAILED_NAMES="$FAILED_NAMES $1"
	printf 'verify: %-26s FAIL  %s\n' "$1" "$2"
	[ -n "${3:-}" ] && [ -f "$3" ] && tail -n 6 "$3" | cut -c1-300 | sed 's/^/verify:   | /'
}
# field KEY FILE: value of KEY= on the last RESULT line of FILE
field() { grep -a 'VD-VERIFY RESULT' "$2" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$1=//p"; }
# flip_byte FILE OFFSET: xor one byte with 0x01 in place
flip_byte() {
	local b
	b=$(dd if="$1" bs=1 skip="$2" count=1 status=none | od -An -tu1 | tr -d ' ')
	printf "$(printf '\\%03o' $((b ^ 1)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# data_extent FILE MINGEN: "off len gen" of the first data extent (gen >=
# MINGEN) of at least 2 KiB in the record
data_extent() {
	"$VV" dump --image "$1" --extents |
		awk -v m="$2" '/VD-VERIFY EXTENT/ { split($3, o, "="); split($4, l, "="); split($5, g, "=");
			if (g[2] ~ /^[0-9]+$/ && g[2] + 0 >= m && l[2] + 0 >= 2048) { print o[2], l[2], g[2]; exit } }'
}

[ -x "$VV" ] || { echo "verify: $VV not built"; exit 1; }

# ------------------------------------------------------------ 1. run + check
truncate -s 80M "$IMG"
if "$VV" run --dev "$IMG" --bytes 48M --qd 1,32 --progress 0 >"$DIR/run.log" 2>&1 &&
	"$VV" check --image "$IMG" --console "$DIR/run.log" >"$DIR/check.log" 2>&1 &&
	grep -q 'VD-VERIFY CHECK PASS' "$DIR/check.log"; then
	# the run must really have mixed everything it claims
	bad=""
	for k in qd1 qd32 flushes discards zeroes vec_ops bufoff_ops checked_bytes; do
		v=$(field $k "$DIR/run.log")
		[ "${v:-0}" -gt 0 ] || bad="$bad $k=${v:-none}"
	done
	[ "$(field min_len "$DIR/run.log")" = 512 ] || bad="$bad min_len=$(field min_len "$DIR/run.log")"
	if [ -z "$bad" ]; then
		ok run-then-check "$(field ops "$DIR/run.log") ops, qd1=$(field qd1 "$DIR/run.log") qd32=$(field qd32 "$DIR/run.log"), $(grep -o 'data_bytes=[0-9]*' "$DIR/check.log") on the host"
	else
		ko run-then-check "the run did not exercise:$bad" "$DIR/run.log"
	fi
else
	ko run-then-check "run or check failed" "$DIR/check.log"
	cat "$DIR/run.log" | tail -n 3
fi
SUM=$(field record_sum "$DIR/run.log")
if "$VV" check --image "$IMG" --expect-sum "$SUM" >"$DIR/c.log" 2>&1; then
	ok check-expect-sum "record_sum=$SUM"
else
	ko check-expect-sum "check --expect-sum $SUM failed" "$DIR/c.log"
fi

# expect_fail NAME LOG PATTERN DETAIL: the last command failed (rc 1) and LOG
# matches PATTERN (extended regex)
expect_fail() {
	local rc=$1 name=$2 log=$3 pat=$4
	if [ "$rc" = 1 ] && grep -aqE "$pat" "$log"; then
		ok "$name" "$(grep -aE "$pat" "$log" | head -n 1 | cut -c1-150)"
	else
		ko "$name" "exit $rc; expected exit 1 and /$pat/" "$log"
	fi
}

# ------------------------------------------------------------ 2. one byte
read -r off _ gen <<<"$(data_extent "$IMG" 1)"
if [ -z "${off:-}" ]; then
	ko corrupt-one-byte "no data extent in the record"
else
	sec=$((off + 512))
	flip_byte "$IMG" $((sec + 100))
	"$VV" check --image "$IMG" --console "$DIR/run.log" >"$DIR/c.log" 2>&1
	expect_fail $? corrupt-one-byte "$DIR/c.log" "MISMATCH off=$sec len=512 expected=\"generation $gen\" found=\"a damaged sector.*\\+100"
	flip_byte "$IMG" $((sec + 100))
	"$VV" check --image "$IMG" --console "$DIR/run.log" >"$DIR/c.log" 2>&1 ||
		ko corrupt-one-byte-restored "check fails after the byte was restored" "$DIR/c.log"
fi

# ------------------------------------------------------------ 3. dropped write
# The image keeps the previous generation of a block: what a write that never
# reached the disk leaves behind.
read -r off _ gen <<<"$(data_extent "$IMG" 2)"
if [ -z "${off:-}" ]; then
	ko dropped-write-stale "no data extent of generation >= 2"
else
	seed=$(field seed "$DIR/run.log")
	"$VV" pattern --seed "$seed" --offset "$off" --len 1024 --gen $((gen - 1)) |
		dd of="$IMG" bs=512 seek=$((off / 512)) conv=notrunc status=none
	"$VV" check --image "$IMG" --console "$DIR/run.log" >"$DIR/c.log" 2>&1
	expect_fail $? dropped-write-stale "$DIR/c.log" "MISMATCH off=$off len=1024 expected=\"generation $gen\" found=\"older generation $((gen - 1))"
	"$VV" pattern --seed "$seed" --offset "$off" --len 1024 --gen "$gen" |
		dd of="$IMG" bs=512 seek=$((off / 512)) conv=notrunc status=none
	"$VV" check --image "$IMG" --console "$DIR/run.log" >"$DIR/c.log" 2>&1 ||
		ko dropped-write-restored "check fails after the block was restored" "$DIR/c.log"
fi

# ------------------------------------------------------------ 4. the record
anchor=$(( $(stat -c %s "$IMG") / 4096 * 4096 - 4096 ))
rec=$(field record_at "$DIR/run.log")
cp --sparse=always "$IMG" "$DIR/bad.img"
flip_byte "$DIR/bad.img" $((rec + 3))
"$VV" check --image "$DIR/bad.img" --console "$DIR/run.log" >"$DIR/c.log" 2>&1
expect_fail $? record-table-damaged "$DIR/c.log" 'record damaged: checksum'

cp --sparse=always "$IMG" "$DIR/bad.img"
dd if=/dev/zero of="$DIR/bad.img" bs=4096 seek=$((anchor / 4096)) count=1 conv=notrunc status=none
"$VV" check --image "$DIR/bad.img" --console "$DIR/run.log" >"$DIR/c.log" 2>&1
expect_fail $? record-header-zeroed "$DIR/c.log" "no record at offset $anchor"

cp --sparse=always "$IMG" "$DIR/bad.img"
truncate -s -4096 "$DIR/bad.img"
"$VV" check --image "$DIR/bad.img" --console "$DIR/run.log" >"$DIR/c.log" 2>&1
expect_fail $? image-truncated "$DIR/c.log" 'no record at offset'
# grown by 4 KiB: the record is still found where it was, but the image is
# not the disk the guest had
cp --sparse=always "$IMG" "$DIR/bad.img"
truncate -s +4096 "$DIR/bad.img"
"$VV" check --image "$DIR/bad.img" --console "$DIR/run.log" --record-at "$anchor" >"$DIR/c.log" 2>&1
expect_fail $? image-grown-record-at "$DIR/c.log" 'truncated, grown or not the same disk'

"$VV" check --image "$IMG" --expect-sum 0123456789abcdef >"$DIR/c.log" 2>&1
expect_fail $? wrong-expect-sum "$DIR/c.log" 'not this run.s record'

grep -v 'VD-VERIFY RESULT' "$DIR/run.log" >"$DIR/noresult.log"
"$VV" check --image "$IMG" --console "$DIR/noresult.log" >"$DIR/c.log" 2>&1
expect_fail $? console-without-result "$DIR/c.log" 'no "VD-VERIFY RESULT" line'

# a console whose (prefixed, CRLF) RESULT line says FAIL fails the check even
# when the image matches the record
sed 's/VD-VERIFY RESULT PASS/[guest x] VD-VERIFY RESULT FAIL/; s/$/\r/' "$DIR/run.log" >"$DIR/failres.log"
"$VV" check --image "$IMG" --console "$DIR/failres.log" >"$DIR/c.log" 2>&1
expect_fail $? console-says-fail "$DIR/c.log" 'image matches the record, but the guest reported a failure'

# ------------------------------------------------------------ 5. injected faults
truncate -s 0 "$DIR/inj.img" && truncate -s 80M "$DIR/inj.img"
"$VV" run --dev "$DIR/inj.img" --bytes 24M --progress 0 --seed 11 --inject drop-write:40 >"$DIR/i.log" 2>&1
expect_fail $? inject-drop-write "$DIR/i.log" 'ERROR read of [0-9]+ bytes at offset [0-9]+ .*expected generation 40, found'
# the host sees the same loss in the image, at the same offset
ioff=$(sed -n 's/.*first at offset \([0-9]*\): expected generation 40.*/\1/p' "$DIR/i.log" | head -n 1)
"$VV" check --image "$DIR/inj.img" --console "$DIR/i.log" >"$DIR/c.log" 2>&1
expect_fail $? inject-drop-write-host "$DIR/c.log" "MISMATCH off=${ioff:-none} .*expected=\"generation 40\""

"$VV" run --dev "$DIR/inj.img" --bytes 24M --progress 0 --inject short:30 >"$DIR/i.log" 2>&1
expect_fail $? inject-short-completion "$DIR/i.log" 'ERROR short (read|write) at offset [0-9]+: [0-9]+ of [0-9]+ bytes \(AIO completion res != length'

"$VV" run --dev "$DIR/inj.img" --bytes 24M --progress 0 --inject corrupt-read:25 >"$DIR/i.log" 2>&1
expect_fail $? inject-corrupt-read "$DIR/i.log" 'ERROR read of [0-9]+ bytes at offset [0-9]+ .*first at offset [0-9]+: expected (generation [0-9]+|zeroes), found'

# ------------------------------------------------------------ 6. O_DIRECT dropped
if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] && [ -w /dev/shm ]; then
	shm=/dev/shm/vd-verify-selftest.$$
	truncate -s 16M "$shm"
	"$VV" run --dev "$shm" --bytes 1M --progress 0 >"$DIR/t.log" 2>&1
	rc=$?
	# a kernel without tmpfs O_DIRECT refuses the open; a newer one accepts
	# the flag and ignores it: the probe must catch that
	expect_fail $rc tmpfs-direct-refused "$DIR/t.log" 'O_DIRECT is not in effect|refuses direct I/O'
	"$VV" bench --dev "$shm" --seconds 0.1 --workloads read:4k:1 >"$DIR/t.log" 2>&1
	expect_fail $? tmpfs-direct-refused-bench "$DIR/t.log" 'O_DIRECT is not in effect|refuses direct I/O'
	rm -f "$shm"
else
	ko tmpfs-direct-refused "no writable tmpfs at /dev/shm to test with"
fi

# ------------------------------------------------------------ 7. bench
if "$VV" bench --dev "$DIR/inj.img" --seconds 0.2 --workloads randread:4k:1,randwrite:4k:32,read:1m:4 \
	>"$DIR/b.log" 2>&1 && [ "$(grep -c '^VD-BENCH workload=.* iops=[1-9]' "$DIR/b.log")" = 3 ]; then
	ok bench "$(grep '^VD-BENCH workload=randwrite' "$DIR/b.log" | cut -d' ' -f2-8)"
else
	ko bench "expected 3 VD-BENCH lines with iops > 0" "$DIR/b.log"
fi

# ------------------------------------------------------------ 8. CLI, format
bad=""
"$VV" --help >"$DIR/h.log" 2>&1 || bad="$bad --help-exit"
for w in 'vd-verify run' 'vd-verify check' 'vd-verify dump' 'vd-verify bench' 'vd-verify pattern' \
	--area-offset --area-size --bytes --seconds --qd --mix --seed --discard-zeroes --progress \
	--timeout --inject --console --expect-sum --record-at --max-report --workloads 'Exit status'; do
	grep -q -- "$w" "$DIR/h.log" || bad="$bad help:$w"
done
"$VV" run --dev "$IMG" --qd 0 >/dev/null 2>&1; [ $? = 2 ] || bad="$bad qd0-not-usage"
"$VV" run --dev "$IMG" --mix f=1 >/dev/null 2>&1; [ $? = 2 ] || bad="$bad mix-without-rw"
"$VV" check --image "$IMG" >/dev/null 2>&1; [ $? = 2 ] || bad="$bad check-without-sum"
"$VV" frobnicate >/dev/null 2>&1; [ $? = 2 ] || bad="$bad unknown-mode"
if [ -z "$bad" ]; then ok cli "help names every mode and option; usage errors exit 2"; else ko cli "$bad"; fi

# The data format is part of the record's contract (docs/verify.md): pin it.
p=$("$VV" pattern --seed 1 --offset 4096 --len 1024 --gen 3 | md5sum | cut -d' ' -f1)
hdr=$("$VV" pattern --seed 1 --offset 4096 --len 512 --gen 3 | head -c 32 | od -An -tx1 | tr -d ' \n')
want_hdr=5644564552494659010000000000000000100000000000000300000000000000
want_md5=0d9651f6d694b8cd91e750cb3706719c
if [ "$hdr" = "$want_hdr" ] && [ "$p" = "$want_md5" ]; then
	ok data-format "sector header VDVERIFY|seed|offset|gen, golden md5 $p"
else
	ko data-format "header $hdr (want $want_hdr), md5 $p (want $want_md5)"
fi

# ------------------------------------------------------------ 9. arm64
if [ -n "$A64" ]; then
	m=$(readelf -h "$A64" 2>/dev/null | sed -n 's/.*Machine: *//p')
	if [ "$m" = AArch64 ] && ! readelf -l "$A64" | grep -q INTERP; then
		d="static AArch64 executable ($(stat -c %s "$A64") bytes)"
		# qemu-user has no native AIO (io_setup is ENOSYS), so only the
		# modes without it run here: the same data format, and the
		# host-side check of the x86 run's image
		if command -v qemu-aarch64-static >/dev/null; then
			if [ "$(qemu-aarch64-static "$A64" pattern --seed 1 --offset 4096 --len 1024 --gen 3 | md5sum | cut -d' ' -f1)" = "$want_md5" ] &&
				qemu-aarch64-static "$A64" check --image "$IMG" --console "$DIR/run.log" >"$DIR/a.log" 2>&1; then
				d="$d; under qemu-aarch64: same pattern bytes, check of the x86 run's image passes"
			else
				ko arm64 "arm64 pattern or check differs from x86" "$DIR/a.log"
				d=""
			fi
		fi
		[ -n "$d" ] && ok arm64 "$d"
	else
		ko arm64 "$A64: machine '$m', or not static"
	fi
fi

rm -f "$DIR/bad.img" "$DIR/inj.img"
[ "$FAILED" = 0 ] && rm -rf "$DIR"
[ -n "$FAILED_NAMES" ] && echo "verify: failed:$FAILED_NAMES"
echo "verify: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
