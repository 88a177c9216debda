#!/bin/sh
# `make deb`: the Debian package from the tracked files (debian/), built
# with dpkg-buildpackage in $BUILD/deb (no network: everything it needs is
# a Build-Depends that scripts/deps.sh installs), then checked: lintian
# reports no error, and the .deb holds what an operator needs (the daemon
# running at the package's version, man page, units, descriptor, docs).
# Ends with "deb: N passed, N failed".
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
version=$(dpkg-parsechangelog -l debian/changelog -S Version)
arch=$(dpkg --print-architecture)
out=$BUILD/deb
src=$out/virtiod-$version
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "deb: ok: $*"; }
bad() { failed=$((failed + 1)); echo "deb: FAILED: $*"; }

rm -rf "$out"
mkdir -p "$src"
# the tracked files as they are in the work tree (not build/, not caches)
git ls-files -z | xargs -0 cp -P --parents -t "$src"
echo "deb: dpkg-buildpackage in $src (log: $out/build.log)"
if ! (cd "$src" && dpkg-buildpackage -us -uc -b -j2) >"$out/build.log" 2>&1; then
	tail -n 30 "$out/build.log"
	echo "deb: 0 passed, 1 failed"
	exit 1
fi
deb=$out/virtiod_${version}_$arch.deb
[ -f "$deb" ] && ok "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)" || bad "no $deb"

# lintian: no error (warnings and notes are printed, not fatal)
if lintian --fail-on error --display-info "$out/virtiod_${version}_$arch.changes" >"$out/lintian.log" 2>&1; then
	ok "lintian: no error ($(grep -c '^[WIP]:' "$out/lintian.log" || true) warnings/notes, $out/lintian.log)"
else
	bad "lintian: $(grep '^E:' "$out/lintian.log" | head -n 5 | tr '\n' ' ')"
fi
sed 's/^/deb:   lintian| /' "$out/lintian.log" | head -n 20

# contents
dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's|^\./|/|' >"$out/contents"
for f in /usr/bin/virtiod /usr/share/man/man8/virtiod.8.gz \
	/lib/systemd/system/virtiod-blk@.service /lib/systemd/system/virtiod-blk@.socket \
	/lib/systemd/system/virtiod-xen-watch.service \
	/usr/share/qemu/vhost-user/50-virtiod-blk.json /usr/libexec/virtiod/vhost-user-blk \
	/usr/share/doc/virtiod/copyright /usr/share/doc/virtiod/operations.md.gz \
	/usr/share/doc/virtiod/examples/xen-x86-devices.conf; do
	grep -qx "$f" "$out/contents" || bad "the package lacks $f"
done
grep -q '^/usr/local\|^/build\|\.o$' "$out/contents" && bad "stray files: $(grep '^/usr/local\|^/build\|\.o$' "$out/contents" | head -n 3)"
ok "contents: $(grep -vc '/$' "$out/contents") files, the expected ones among them"
rm -rf "$out/x" && dpkg-deb -x "$deb" "$out/x"
v=$("$out/x/usr/bin/virtiod" --version 2>&1 || true)
[ "$v" = "virtiod $version" ] && ok "the packaged daemon runs: $v" || bad "the packaged daemon says '$v', want 'virtiod $version'"
grep -q 'ExecStart=/usr/bin/virtiod blk --fd 3' "$out/x/lib/systemd/system/virtiod-blk@.service" &&
	ok "units run /usr/bin/virtiod" || bad "the units do not run /usr/bin/virtiod"
grep -q '"binary": "/usr/libexec/virtiod/vhost-user-blk"' "$out/x/usr/share/qemu/vhost-user/50-virtiod-blk.json" &&
	ok "the descriptor names /usr/libexec/virtiod/vhost-user-blk" || bad "descriptor binary path"
dpkg-deb -f "$deb" Depends | grep -q libsystemd0 && ok "Depends: $(dpkg-deb -f "$deb" Depends)" || bad "Depends lacks libsystemd0"
echo "deb: $passed passed, $failed failed"
[ "$failed" = 0 ]
