#!/bin/sh
# Builds the arm64 sysroot that `make ARCH=arm64` compiles and links against:
# Debian's own arm64 -dev and library packages (libxen-dev, liburing-dev,
# libcmocka-dev and what they need), fetched with apt-get download and
# extracted, never installed (libxen-dev is not multi-arch co-installable:
# installing the arm64 one would remove the host's). libc and the kernel
# headers come from the cross toolchain (libc6-dev-arm64-cross).
#
# Usage: scripts/arm64-sysroot.sh DIR. Idempotent: does nothing when DIR was
# made from the same package list. Needs the arm64 architecture in dpkg
# (VIRTIOD_DEPS=arm64 scripts/deps.sh adds it).
set -eu
dir=$1
# The libraries of the build, then what the Xen tools of the dom0 image
# need at run time (tests/xen-real-arm64 copies their closure from here).
pkgs="libxen-dev libxenmisc4.17 libxencall1 libxendevicemodel1 libxenevtchn1
libxenforeignmemory1 libxengnttab1 libxenstore4 libxentoolcore1 libxentoollog1
libxenhypfs1 liburing-dev liburing2 libcmocka-dev libcmocka0 libyajl2 libfdt1
libext2fs2 liblzma5 libuuid1 libzstd1 zlib1g libcom-err2
libsystemd-dev libsystemd0 libcap2 libgcrypt20 libgpg-error0 liblz4-1
libseccomp-dev libseccomp2 libcap-ng-dev libcap-ng0"
stamp="v1 $(echo $pkgs)"
[ "$(cat "$dir/.stamp" 2>/dev/null)" = "$stamp" ] && exit 0

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	echo "arm64-sysroot: dpkg has no arm64 architecture; run: VIRTIOD_DEPS=arm64 scripts/deps.sh" >&2
	exit 1
fi
rm -rf "$dir"
mkdir -p "$dir/debs"
arm64=""
for p in $pkgs; do arm64="$arm64 $p:arm64"; done
echo "arm64-sysroot: apt-get download of $(echo $pkgs | wc -w) arm64 packages into $dir/debs" >&2
# shellcheck disable=SC2086
(cd "$dir/debs" && { apt-get download -q $arm64 >/dev/null 2>&1 ||
	{ apt-get update -qq >/dev/null && apt-get download -q $arm64 >/dev/null; }; })
for d in "$dir"/debs/*.deb; do
	# etc/ and usr/share/ are not needed (and *.d folders there would be
	# picked up by the Makefile's dependency include)
	dpkg-deb --fsys-tarfile "$d" | tar -x -C "$dir" --exclude=./etc --exclude=./usr/share
done
echo "$stamp" >"$dir/.stamp"
