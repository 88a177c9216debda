#!/bin/sh
# Installs what virtiod needs to build, test and demo on Debian 12. Idempotent;
# silent when everything is present. Set VIRTIOD_DEPS=build|check|xen|arm64|xen-arm64|deb
# to choose a set (deb: what make deb needs). The arm64 sets also add the arm64 architecture to dpkg, so
# that apt-get download can fetch Debian's arm64 packages (nothing of arm64 is
# installed: see scripts/arm64-sysroot.sh).
set -eu

build_pkgs="gcc make pkg-config libc6-dev linux-libc-dev liburing-dev libxen-dev libsystemd-dev libnbd-dev librbd-dev libseccomp-dev libcap-ng-dev"
check_pkgs="libcmocka-dev clang libclang-rt-14-dev clang-format qemu-system-x86
qemu-system-common qemu-utils busybox-static cpio e2fsprogs lz4 xz-utils kmod util-linux
python3 systemd libvirt-clients man-db iproute2 ethtool dpdk librte-net-virtio23
librte-net-vhost23 librte-net-tap23 librte-net-af-packet23
nbdkit libnbd-bin ceph-mon ceph-osd ceph-base ceph-common qemu-block-extra"
xen_pkgs="qemu-system-xen acpica-tools"
# make deb: dpkg-buildpackage with debhelper, lintian
deb_pkgs="debhelper dpkg-dev lintian git"
# cross build and unit tests under qemu-user (part of make check)
arm64_pkgs="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static"
# make check-xen-arm64: QEMU, the hypervisor's build (Debian's source
# package: dpkg-source, flex, bison, python3) and the guest kernel's (bc,
# libssl-dev for its host tools), device-tree tools
xen_arm64_pkgs="qemu-system-arm dpkg-dev flex bison python3 bc libssl-dev device-tree-compiler
xz-utils"

# make lint
lint_pkgs="cppcheck clang-tidy"

set_name=${VIRTIOD_DEPS:-check}
case "$set_name" in
build) want="$build_pkgs" ;;
check) want="$build_pkgs $check_pkgs $arm64_pkgs" ;;
xen) want="$build_pkgs $check_pkgs $xen_pkgs" ;;
arm64) want="$build_pkgs $arm64_pkgs" ;;
xen-arm64) want="$build_pkgs $check_pkgs $arm64_pkgs $xen_arm64_pkgs" ;;
deb) want="$build_pkgs $deb_pkgs" ;;
lint) want="$build_pkgs $lint_pkgs" ;;
*) echo "deps.sh: VIRTIOD_DEPS=$set_name: expected build, check, xen, arm64, xen-arm64, deb or lint" >&2; exit 2 ;;
esac

# arm64 packages are fetched (apt-get download) for the cross build and the
# arm64 images; check-xen-arm64 builds Xen from Debian's source package,
# which needs a deb-src entry.
need_arch=0 need_src=0
case "$set_name" in check | arm64 | xen-arm64) need_arch=1 ;; esac
[ "$set_name" = xen-arm64 ] && need_src=1
if [ $need_arch = 1 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
	[ "$(id -u)" = 0 ] || { echo "deps.sh: run as root: dpkg --add-architecture arm64" >&2; exit 1; }
	echo "deps.sh: adding the arm64 architecture to dpkg (for apt-get download)" >&2
	dpkg --add-architecture arm64
	apt_updated=0
else
	apt_updated=1
fi
src_list=/etc/apt/sources.list.d/virtiod-deb-src.sources
if [ $need_src = 1 ] && ! grep -rqsE '^(deb-src|Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	[ "$(id -u)" = 0 ] || { echo "deps.sh: run as root: a deb-src entry is needed" >&2; exit 1; }
	echo "deps.sh: adding deb-src entries ($src_list) for apt-get source xen" >&2
	# the same archives as the binary entries of this machine
	uris=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -i debian | sort -u)
	[ -n "$uris" ] || uris=$(sed -n 's/^deb  *\(\[[^]]*\] *\)\{0,1\}\(http[^ ]*\) .*/\2/p' /etc/apt/sources.list 2>/dev/null | grep -i debian | sort -u)
	[ -n "$uris" ] || uris="http://deb.debian.org/debian http://deb.debian.org/debian-security"
	: >"$src_list"
	for u in $uris; do
		case $u in
		*security*) suites="bookworm-security" ;;
		*) suites="bookworm bookworm-updates" ;;
		esac
		printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n' \
			"$u" "$suites" >>"$src_list"
	done
	apt_updated=0
fi

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
if [ -z "$missing" ]; then
	[ $apt_updated = 1 ] || apt-get update -qq >/dev/null
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing packages:$missing; run as root or install them with apt-get" >&2
	exit 1
fi
echo "deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends $missing >/dev/null
