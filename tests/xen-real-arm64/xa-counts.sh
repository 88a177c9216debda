#!/bin/sh
# xa-counts.sh FILE [DOMID]: the table vd-count.so kept (see vd-count.c), one
# line per domain with a non-zero counter, or the line of DOMID alone:
#   dom<N> fmap=<calls> fpages=<pages> res=<resource maps> gmap=<calls> gpages=<refs>
# Unmaps carry no domid and are summed on dom0's line (funmap=, gunmap=).
od -An -v -tu8 -w64 "$1" 2>/dev/null | awk -v want="${2:-}" '{
	d = NR - 1
	line = sprintf("dom%d fmap=%s fpages=%s res=%s gmap=%s gpages=%s", d, $1, $2, $3, $4, $5)
	if (d == 0) line = line sprintf(" gunmap=%s funmap=%s", $6, $7)
	if (want != "") { if (d == want) print line; next }
	if ($1 + $2 + $3 + $4 + $5 + $6 + $7 + $8 > 0) print line
}'
