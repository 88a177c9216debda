#!/bin/sh
# make lint: cppcheck over the whole tree, clang-tidy over the daemon's own
# sources (src/, shims/), with the checks chosen in .cppcheck-suppressions and
# .clang-tidy. Any finding fails. LINT_JOBS sets clang-tidy's parallelism.
set -eu
cd "$(dirname "$0")/.."
jobs=${LINT_JOBS:-2}
t0=$(date +%s)

echo "lint: cppcheck (src shims include tests bench)"
cppcheck --quiet --std=c11 -D_GNU_SOURCE -D__linux__ -Iinclude \
	--enable=warning,performance,portability --inline-suppr \
	--suppressions-list=.cppcheck-suppressions --error-exitcode=1 -j"$jobs" \
	--template='{file}:{line}: {severity} ({id}): {message}' \
	src shims include tests bench

# The same flags the Makefile compiles with; Xen's headers need GNU C.
pkg=$(pkg-config --cflags liburing xendevicemodel xenforeignmemory xengnttab \
	xenevtchn xenstore xentoolcore xencontrol 2>/dev/null || true)
files=$(git ls-files 'src/*.c' 'shims/*.c')
n=$(echo "$files" | wc -l)
echo "lint: clang-tidy ($n files of src shims, $jobs at a time)"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# shellcheck disable=SC2086
echo "$files" | xargs -P "$jobs" -I{} sh -c '
	f=$1; shift
	std=-std=c11 inc=
	case $f in
	shims/xen/*) std=-std=gnu11 inc=-Ishims/xen ;;
	shims/*) inc=-I$(dirname "$f") ;;
	esac
	clang-tidy --quiet "$f" -- $std -D_GNU_SOURCE -DVIRTIOD_VERSION=\"lint\" \
		-Iinclude $inc "$@" 2>/dev/null || { echo "FAIL $f"; exit 0; }
' sh {} $pkg >"$out"
if grep -q . "$out"; then
	cat "$out"
	echo "lint: clang-tidy found problems (above)" >&2
	exit 1
fi
echo "lint: clean ($(($(date +%s) - t0)) s)"
