#!/bin/sh
# Installs what virtiod needs to build, test and demo on Debian 12. Idempotent;
# silent when everything is present. Set VIRTIOD_DEPS=build|check|xen to choose a set.
set -eu

build_pkgs="gcc make pkg-config libc6-dev linux-libc-dev liburing-dev libxen-dev"
check_pkgs="libcmocka-dev clang libclang-rt-14-dev clang-format qemu-system-x86
qemu-system-common qemu-utils busybox-static cpio e2fsprogs lz4 xz-utils kmod util-linux"
xen_pkgs="qemu-system-xen acpica-tools"

set_name=${VIRTIOD_DEPS:-check}
case "$set_name" in
build) want="$build_pkgs" ;;
check) want="$build_pkgs $check_pkgs" ;;
xen) want="$build_pkgs $check_pkgs $xen_pkgs" ;;
*) echo "deps.sh: VIRTIOD_DEPS=$set_name: expected build, check or xen" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing packages:$missing; run as root or install them with apt-get" >&2
	exit 1
fi
echo "deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends $missing >/dev/null
