#!/bin/bash
# Runs fuzz targets one after another: `smoke` (make fuzz-smoke: a few
# seconds each over the seed corpus, regression only) or `run` (make
# fuzz-run: a campaign of FUZZ_SECONDS each, the corpus kept in
# $BUILD/fuzz/corpus/<target> and seeded from tests/fuzz/corpus/<target>,
# progress at least every 30 s and a table at the end). Any finding fails
# the run; its input and stack are left in $BUILD/fuzz/artifacts/<target>/.
# usage: tests/fuzz/run.sh smoke|run BIN...
set -u
mode=$1
shift
BUILD=${BUILD:-build}
SECONDS_EACH=${FUZZ_SECONDS:-5}
JOBS=${FUZZ_JOBS:-1}
PROGRESS=${FUZZ_PROGRESS:-30}
out=$BUILD/fuzz
mkdir -p "$out"
table=()
failed=0

# The last libFuzzer status line of a log: "execs cov ft corpus".
status_of() {
	grep -aE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse|INITED|DONE|RELOAD)' "$1" 2>/dev/null |
		tail -1 | awk '{
			e=substr($1,2); c="-"; f="-"; k="-";
			for (i=2;i<=NF;i++) {
				if ($i=="cov:") c=$(i+1);
				if ($i=="ft:") f=$(i+1);
				if ($i=="corp:") { k=$(i+1); sub(/\/.*/,"",k) }
			}
			print e, c, f, k }'
}

for bin in "$@"; do
	t=$(basename "$bin")
	seeds=tests/fuzz/corpus/$t
	art=$out/artifacts/$t
	if [ "$t" = fuzz_net_hdr ] && [ "$(id -u)" != 0 ]; then
		echo "fuzz-$mode: $t SKIPPED: needs root (a tap in a network namespace of its own)"
		table+=("$(printf '%-18s %8s' "$t" skipped)")
		continue
	fi
	if [ "$mode" = smoke ]; then
		corpus=$out/smoke/$t
		rm -rf "$corpus"
	else
		corpus=$out/corpus/$t
	fi
	mkdir -p "$corpus" "$art"
	[ -d "$seeds" ] && cp -n "$seeds"/* "$corpus"/ 2>/dev/null
	log=$out/$t.$mode.log
	args=(-max_total_time="$SECONDS_EACH" -print_final_stats=1 -timeout=30
		-artifact_prefix="$art/" "$corpus")
	[ "$JOBS" -gt 1 ] && args=(-fork="$JOBS" "${args[@]}")
	echo "fuzz-$mode: $t for ${SECONDS_EACH}s (corpus $corpus)"
	start=$(date +%s)
	touch "$log.start"
	"$bin" "${args[@]}" >"$log" 2>&1 &
	pid=$!
	last=$start
	ticks=0
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1
		now=$(date +%s)
		# CPU of the target (utime + stime), sampled while it runs.
		ticks=$(awk '{print $14 + $15}' /proc/$pid/stat 2>/dev/null || echo "$ticks")
		if [ "$mode" = run ] && [ $((now - last)) -ge "$PROGRESS" ]; then
			read -r e c f k <<<"$(status_of "$log")"
			printf 'fuzz-run: %-18s %6ss  execs %-10s cov %-6s ft %-6s corpus %s\n' \
				"$t" $((now - start)) "${e:--}" "${c:--}" "${f:--}" "${k:--}"
			last=$now
		fi
	done
	wait "$pid"
	rc=$?
	secs=$(($(date +%s) - start))
	read -r e c f k <<<"$(status_of "$log")"
	execs=$(grep -a 'stat::number_of_executed_units' "$log" | awk '{s+=$2} END {print s+0}')
	[ "$execs" = 0 ] && execs=${e:-0}
	eps=$((secs > 0 ? execs / secs : execs))
	cpu=$((ticks / $(getconf CLK_TCK)))
	size=$(find "$corpus" -type f | wc -l)
	finds=$(find "$art" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
		-o -name 'oom-*' \) -newer "$log.start" 2>/dev/null | wc -l)
	if [ "$rc" != 0 ] && [ "$finds" = 0 ]; then
		finds=1 # died without an artifact (the log says why)
	fi
	if [ "$finds" != 0 ]; then
		# The stack beside the input.
		for a in $(find "$art" -type f -newer "$log.start" ! -name '*.txt'); do
			cp "$log" "$a.txt"
		done
		echo "fuzz-$mode: $t: FINDING (exit $rc); input and stack in $art/, log $log"
		tail -40 "$log"
		failed=1
	fi
	table+=("$(printf '%-18s %8s %8s %12s %8s %7s %7s %7s %8s' "$t" "$secs" "$cpu" "$execs" \
		"$eps" "${c:--}" "${f:--}" "$size" "$finds")")
done

if [ "$mode" = run ] || [ "$failed" != 0 ]; then
	printf '\n%-18s %8s %8s %12s %8s %7s %7s %7s %8s\n' target seconds cpu_s execs exec/s cov ft \
		corpus findings
	printf '%s\n' "${table[@]}"
fi
exit $failed
