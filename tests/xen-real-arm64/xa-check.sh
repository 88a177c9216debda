#!/bin/sh
# xa-check.sh IMAGE: the backend's view of a guest's disk image (dom0 or the
# driver domain): reads the record the guest left in the last MiB and checks
# every block it names. Prints "blocks=N bad=M"; exit 0 iff N > 0 and M = 0.
img=$1
size=$(stat -c %s "$img") || exit 1
mb=$((size / 1048576))
rec=/tmp/xa-check.$$
dd if="$img" bs=1M skip=$((mb - 1)) count=1 2>/dev/null | tr -d '\000' >$rec
n=0 bad=0
if head -n 1 $rec | grep -q '^xa-record v1' && grep -qx 'xa-record end' $rec; then
	for l in $(grep '^off_mb=' $rec | tr ' ' ','); do
		off=$(echo "$l" | sed 's/.*off_mb=\([0-9]*\).*/\1/')
		len=$(echo "$l" | sed 's/.*len_mb=\([0-9]*\).*/\1/')
		want=$(echo "$l" | sed 's/.*md5=\([0-9a-f]*\).*/\1/')
		got=$(dd if="$img" bs=1M skip="$off" count="$len" 2>/dev/null | md5sum | cut -d' ' -f1)
		n=$((n + 1))
		if [ "$got" != "$want" ]; then
			bad=$((bad + 1))
			echo "xa-check: $img at $off MiB: $got, the guest wrote $want"
		fi
	done
else
	echo "xa-check: $img has no whole record in its last MiB"
fi
rm -f $rec
echo "blocks=$n bad=$bad"
[ $n -gt 0 ] && [ $bad = 0 ]
