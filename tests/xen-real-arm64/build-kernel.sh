#!/bin/bash
# Builds, once, the guest kernel that tests/xen-real-arm64 uses for grant-based
# DMA: Debian's linux-source-6.1 (the same source as Debian's kernels),
# `make allnoconfig` plus guest-kernel.config, cross-compiled for arm64.
# Debian's arm64 kernels lack CONFIG_XEN_VIRTIO (grant DMA for virtio).
#
# Usage: build-kernel.sh CACHE -> CACHE/kernel/{Image,modules/*.ko,release}
# Rebuilds only when the source version or guest-kernel.config changes.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=$(mkdir -p "$1" && cd "$1" && pwd)
OUT=$CACHE/kernel
frag_sum=$(md5sum <"$HERE/guest-kernel.config" | cut -c1-12)
ver=$(apt-cache policy linux-source-6.1 2>/dev/null | sed -n 's/^ *Candidate: //p')
if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
	apt-get update -qq >/dev/null
	ver=$(apt-cache policy linux-source-6.1 | sed -n 's/^ *Candidate: //p')
fi
if [ -s "$OUT/Image" ] && [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$ver $frag_sum" ]; then
	echo "build-kernel: cached guest kernel $(cat "$OUT/release") ($OUT/Image)"
	exit 0
fi
T0=$(date +%s)
# The work tree stays out of the build directory (the Makefile includes
# every *.d file under it).
W=$(mktemp -d "${TMPDIR:-/var/tmp}/virtiod-kernel-build.XXXXXX")
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/deb" "$W/obj"
(cd "$W/deb" && apt-get download -q "linux-source-6.1=$ver" >/dev/null 2>&1) ||
	{ echo "build-kernel: cannot download linux-source-6.1=$ver" >&2; exit 1; }
# Documentation/ is not needed (only its Kconfig is sourced)
dpkg-deb --fsys-tarfile "$W"/deb/*.deb | tar -xO ./usr/src/linux-source-6.1.tar.xz |
	xz -dc -T2 | tar -x -C "$W" --exclude='linux-source-6.1/Documentation/[!K]*' \
	--exclude='linux-source-6.1/tools/testing/*'
rm -rf "$W/deb"
S=$W/linux-source-6.1
MK="make -s -C $S ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- O=$W/obj"
$MK allnoconfig >"$W/build.log" 2>&1
"$S/scripts/kconfig/merge_config.sh" -m -O "$W/obj" "$W/obj/.config" "$HERE/guest-kernel.config" >>"$W/build.log" 2>&1
$MK olddefconfig >>"$W/build.log" 2>&1
for o in XEN XEN_VIRTIO HVC_XEN DEVMEM; do
	grep -qx "CONFIG_$o=y" "$W/obj/.config" || { echo "build-kernel: CONFIG_$o did not stick" >&2; exit 1; }
done
echo "build-kernel: building Linux $ver for the grant-DMA guest (a few minutes, once)"
if ! $MK -j"${JOBS:-2}" Image modules >>"$W/build.log" 2>&1; then
	tail -n 30 "$W/build.log" >&2
	echo "build-kernel: FAIL (log $W/build.log)" >&2
	exit 1
fi
rm -rf "$OUT" && mkdir -p "$OUT/modules"
cp "$W/obj/arch/arm64/boot/Image" "$OUT/Image"
cp "$W/obj/.config" "$OUT/config"
find "$W/obj" -name '*.ko' -exec cp {} "$OUT/modules/" \;
$MK -s kernelrelease >"$OUT/release"
echo "$ver $frag_sum" >"$OUT/stamp"
echo "build-kernel: built $(cat "$OUT/release") in $(($(date +%s) - T0)) s ($OUT/Image)"
