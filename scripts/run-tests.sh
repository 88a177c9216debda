#!/bin/sh
# Runs test binaries one after another; prints each one's output and a
# closing "N passed, N failed" line for the suite. Exits 1 if any failed.
# TEST_RUNNER, if set, is the command that runs each binary (qemu-user for
# a cross build).
set -u
suite=$1
shift
passed=0
failed=0
failed_names=""
for t in "$@"; do
	# shellcheck disable=SC2086
	if ${TEST_RUNNER:-} "$t"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failed_names="$failed_names $(basename "$t")"
	fi
done
[ -n "$failed_names" ] && echo "$suite: failed:$failed_names"
echo "$suite: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
