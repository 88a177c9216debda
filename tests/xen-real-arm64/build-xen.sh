#!/bin/bash
# Builds the arm64 hypervisor of tests/xen-real-arm64 once and caches it:
# Debian's own Xen 4.17 source package (apt-get source xen), Debian's arm64
# configuration (/boot/xen-4.17-arm64.config of xen-hypervisor-4.17-arm64)
# changed by xen.config, cross-compiled with gcc-aarch64-linux-gnu. Only the
# hypervisor is built (about a minute on 2 cores), not the tools.
#
# Usage: build-xen.sh CACHE   -> CACHE/xen/xen (the Image QEMU boots)
# Rebuilds only when the source version or xen.config changes.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=$(mkdir -p "$1" && cd "$1" && pwd)
OUT=$CACHE/xen
frag_sum=$(md5sum <"$HERE/xen.config" | cut -c1-12)

# The source versions apt knows, newest first. A security update's source
# may not be on the mirror while its binaries are: take the newest that
# downloads (any 4.17.x: the hypervisor/tools interfaces do not change within
# a stable branch).
versions=$(apt-cache showsrc xen 2>/dev/null | sed -n 's/^Version: //p' | sort -rV | uniq)
if [ -z "$versions" ]; then
	apt-get update -qq >/dev/null
	versions=$(apt-cache showsrc xen | sed -n 's/^Version: //p' | sort -rV | uniq)
fi
[ -n "$versions" ] || { echo "build-xen: apt knows no xen source (deb-src missing? VIRTIOD_DEPS=xen-arm64 scripts/deps.sh)" >&2; exit 1; }
# a cached build of any of them will do
for v in $versions; do
	if [ -s "$OUT/xen" ] && [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$v $frag_sum" ]; then
		echo "build-xen: cached hypervisor $v ($OUT/xen)"
		exit 0
	fi
done

T0=$(date +%s)
# The work tree stays out of the build directory: the Makefile includes every
# *.d file under it, and Xen's build leaves .*.o.d files.
W=$(mktemp -d "${TMPDIR:-/var/tmp}/virtiod-xen-build.XXXXXX")
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/src" "$W/hv"
got=
for v in $versions; do
	if (cd "$W/src" && apt-get source -q --download-only "xen=$v" >"$W/fetch.log" 2>&1); then
		got=$v
		break
	fi
	rm -f "$W"/src/*
done
[ -n "$got" ] || { cat "$W/fetch.log" >&2; echo "build-xen: no xen source could be fetched" >&2; exit 1; }
echo "build-xen: Xen source $got"
(cd "$W/src" && dpkg-source -q -x ./*.dsc xen >/dev/null)
# Debian's configuration, from the arm64 hypervisor package
(cd "$W/hv" && apt-get download -q xen-hypervisor-4.17-arm64:arm64 >/dev/null 2>&1)
dpkg-deb --fsys-tarfile "$W"/hv/*.deb | tar -x -C "$W/hv" ./boot/xen-4.17-arm64.config
X=$W/src/xen/xen
cp "$W/hv/boot/xen-4.17-arm64.config" "$X/.config"
# each line of xen.config replaces the option's line (set or unset)
grep -E '^(CONFIG_|# CONFIG_)' "$HERE/xen.config" | while IFS= read -r line; do
	opt=$(echo "$line" | sed -E 's/^(# )?(CONFIG_[A-Za-z0-9_]*).*/\2/')
	sed -i -E "/^(# )?$opt[= ]/d" "$X/.config"
	echo "$line" >>"$X/.config"
done
MK="make -C $X XEN_TARGET_ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-"
$MK olddefconfig >"$W/build.log" 2>&1
# every line of xen.config must have survived olddefconfig
grep -E '^(CONFIG_|# CONFIG_)' "$HERE/xen.config" | while IFS= read -r line; do
	grep -qxF "$line" "$X/.config" || { echo "build-xen: '$line' did not stick (see $X/.config)" >&2; exit 1; }
done
if ! $MK -j"${JOBS:-2}" >>"$W/build.log" 2>&1; then
	tail -n 30 "$W/build.log" >&2
	echo "build-xen: FAIL (log $W/build.log)" >&2
	exit 1
fi
mkdir -p "$OUT"
cp "$X/xen" "$OUT/xen"
cp "$X/.config" "$OUT/config"
echo "$got $frag_sum" >"$OUT/stamp"
echo "build-xen: built Xen $got for arm64 in $(($(date +%s) - T0)) s ($OUT/xen)"
