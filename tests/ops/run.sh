#!/bin/bash
# tests/ops/run.sh - what an operator runs, checked (`make check-ops`):
#   install      `make install` lays out the binary, man page, units, the
#                vhost-user descriptor and its program, the docs; nothing
#                left unsubstituted
#   units        `systemd-analyze verify` of the installed units (their man
#                page found in the install tree)
#   man          every option of `virtiod --help`, `xen-watch --help` and
#                `virtiod stat` is in virtiod(8), and the man page names no
#                option the program lacks
#   descriptor   the vhost-user JSON descriptor agrees with
#                --print-capabilities and names the installed program
#   libvirt      docs/libvirt.md's domain XML passes virt-xml-validate
#   stat-load    `virtiod stat` (table, --json, --prometheus, --watch)
#                against a daemon under load from vd-loadgen: counters grow
#                while it runs, and agree with what the load generator did
#   activation   socket activation (LISTEN_FDS through systemd-socket-
#                activate) serves I/O; READY=1 reaches NOTIFY_SOCKET only
#                once the socket answers
#
#   tests/ops/run.sh [CASE...]    one line per case, then "ops: N passed, N failed"
set -u -o pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
VIRTIOD=$BUILD/virtiod
LOADGEN=$BUILD/bench/vd-loadgen
ALL="install units man descriptor libvirt stat-load activation"
CASES=${*:-$ALL}
T=$(mktemp -d /tmp/vd-ops.XXXXXX)
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
PASSED=0 FAILED=0
now_ms() { echo $(($(date +%s%N) / 1000000)); }
py() { python3 -c "$@"; }

# stop PID: SIGTERM, and it must go within 5 s with status 0
stop() {
	local i
	kill -TERM "$1" 2>/dev/null
	for i in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
	kill -0 "$1" 2>/dev/null && { kill -KILL "$1"; wait "$1" 2>/dev/null; return 1; }
	wait "$1"
}

wait_socket() { # path: until it accepts (5 s)
	local i
	for i in $(seq 100); do
		py "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# ------------------------------------------------------------------ install
INST=$T/inst
EXPECT_FILES="usr/bin/virtiod
usr/lib/systemd/system/virtiod-blk@.service
usr/lib/systemd/system/virtiod-blk@.socket
usr/lib/systemd/system/virtiod-xen-watch.service
usr/libexec/virtiod/vhost-user-blk
usr/share/man/man8/virtiod.8
usr/share/qemu/vhost-user/50-virtiod-blk.json"
installed() {
	[ -x "$INST/usr/bin/virtiod" ] && return 0
	make -s -C "$ROOT" BUILD="$BUILD" install DESTDIR="$INST" PREFIX=/usr >"$T/install.log" 2>&1
}
case_install() {
	local f missing="" docs
	installed || { DETAIL="make install failed: $(tail -n 3 "$T/install.log")"; return 1; }
	for f in $EXPECT_FILES; do [ -f "$INST/$f" ] || missing="$missing $f"; done
	[ -z "$missing" ] || { DETAIL="missing:$missing"; return 1; }
	for f in README.md cli.md operations.md libvirt.md xen.md examples/xen-x86-virtio-disk.cfg \
		examples/xen-x86-devices.conf examples/xen-arm64-virtio-disk.cfg; do
		[ -f "$INST/usr/share/doc/virtiod/$f" ] || missing="$missing doc/$f"
	done
	[ -z "$missing" ] || { DETAIL="missing:$missing"; return 1; }
	if grep -rl '@[A-Z]*DIR@' "$INST" >"$T/subst" 2>/dev/null; then
		DETAIL="unsubstituted @...@ in $(tr '\n' ' ' <"$T/subst")"
		return 1
	fi
	[ "$(stat -c %a "$INST/usr/bin/virtiod")" = 755 ] && [ "$(stat -c %a "$INST/usr/libexec/virtiod/vhost-user-blk")" = 755 ] ||
		{ DETAIL="programs not mode 755"; return 1; }
	grep -q '^exec "/usr/bin/virtiod" blk "\$@"$' "$INST/usr/libexec/virtiod/vhost-user-blk" ||
		{ DETAIL="vhost-user-blk does not exec /usr/bin/virtiod blk"; return 1; }
	grep -q 'ExecStart=/usr/bin/virtiod blk --fd 3 ' "$INST/usr/lib/systemd/system/virtiod-blk@.service" ||
		{ DETAIL="the blk unit does not run /usr/bin/virtiod"; return 1; }
	"$INST/usr/bin/virtiod" --version | grep -q '^virtiod ' || { DETAIL="installed binary does not run"; return 1; }
	docs=$(find "$INST/usr/share/doc/virtiod" -type f | wc -l)
	DETAIL="$(echo "$EXPECT_FILES" | wc -l) files + $docs docs under PREFIX=/usr, paths substituted"
}

# ------------------------------------------------------------------ units
case_units() {
	local d=$T/units out
	installed || { DETAIL="make install failed"; return 1; }
	command -v systemd-analyze >/dev/null || { DETAIL="systemd-analyze missing (scripts/deps.sh)"; return 1; }
	mkdir -p "$d"
	# instances of the templates; ExecStart's binary must exist: the one
	# installed; Xen's own units are stand-ins (xen-utils ships them)
	for u in virtiod-blk@.service virtiod-blk@.socket; do
		sed "s|/usr/bin/virtiod|$INST/usr/bin/virtiod|" "$INST/usr/lib/systemd/system/$u" >"$d/${u/@/@vm1}"
	done
	sed "s|/usr/bin/virtiod|$INST/usr/bin/virtiod|" "$INST/usr/lib/systemd/system/virtiod-xen-watch.service" >"$d/virtiod-xen-watch.service"
	for u in xenstored.service xen-init-dom0.service; do
		printf '[Unit]\nDescription=stand-in for the Xen package unit\n[Service]\nExecStart=/bin/true\n' >"$d/$u"
	done
	if ! out=$(cd "$d" && MANPATH="$INST/usr/share/man" SYSTEMD_LOG_LEVEL=notice \
		systemd-analyze verify ./virtiod-blk@vm1.socket ./virtiod-blk@vm1.service ./virtiod-xen-watch.service 2>&1) ||
		[ -n "$out" ]; then
		DETAIL="systemd-analyze verify: $(echo "$out" | head -n 3 | tr '\n' ' ')"
		return 1
	fi
	grep -q '^Type=notify' "$d/virtiod-blk@vm1.service" && grep -q '^Type=notify' "$d/virtiod-xen-watch.service" ||
		{ DETAIL="units are not Type=notify"; return 1; }
	DETAIL="systemd-analyze verify clean: virtiod-blk@vm1.socket/.service, virtiod-xen-watch.service (man page found)"
}

# ------------------------------------------------------------------ man
case_man() {
	local prog man miss extra
	{
		"$VIRTIOD" --help
		"$VIRTIOD" xen-watch --help
		echo "--control --json --prometheus --watch" # xen-watch's --control, stat's own
	} | grep -o -- '--[a-z][a-z0-9-]*' | sort -u >"$T/prog-opts"
	# the options the page describes (its examples run other programs too)
	sed -n '1,/^\.SH EXAMPLES/p' "$ROOT/man/virtiod.8" | sed 's/\\-/-/g' | grep -o -- '--[a-z][a-z0-9-]*' | sort -u >"$T/man-opts"
	miss=$(comm -23 "$T/prog-opts" "$T/man-opts" | tr '\n' ' ')
	extra=$(comm -13 "$T/prog-opts" "$T/man-opts" | tr '\n' ' ')
	[ -z "$miss" ] || { DETAIL="options missing in man/virtiod.8: $miss"; return 1; }
	[ -z "$extra" ] || { DETAIL="man/virtiod.8 names options the program lacks: $extra"; return 1; }
	MANWIDTH=80 man --warnings -l "$ROOT/man/virtiod.8" >/dev/null 2>"$T/man-warn"
	[ ! -s "$T/man-warn" ] || { DETAIL="man warnings: $(head -n 2 "$T/man-warn" | tr '\n' ' ')"; return 1; }
	for t in $("$VIRTIOD" --help | sed -n 's/^TYPE \([a-z0-9]*\):.*/\1/p'); do
		grep -qi "^\.SH $t OPTIONS" "$ROOT/man/virtiod.8" || { DETAIL="no section for device type $t"; return 1; }
	done
	DETAIL="$(wc -l <"$T/prog-opts") options, each in the man page and none extra; man renders without warnings"
}

# ------------------------------------------------------------------ descriptor
case_descriptor() {
	local j
	installed || { DETAIL="make install failed"; return 1; }
	j=$INST/usr/share/qemu/vhost-user/50-virtiod-blk.json
	"$VIRTIOD" blk --print-capabilities >"$T/caps.json" || { DETAIL="--print-capabilities failed"; return 1; }
	if ! DETAIL=$(py '
import json, sys, os
d = json.load(open(sys.argv[1])); c = json.load(open(sys.argv[2])); inst = sys.argv[3]
assert set(d) >= {"description", "type", "binary"}, "descriptor lacks description/type/binary"
assert d["type"] == c["type"], "descriptor type %s, --print-capabilities %s" % (d["type"], c["type"])
assert d["binary"] == "/usr/libexec/virtiod/vhost-user-blk", "binary " + d["binary"]
assert os.access(inst + d["binary"], os.X_OK), "the binary is not installed"
assert "blk-file" in c["features"], "features " + str(c["features"])
print("type %s, binary %s, features %s" % (d["type"], d["binary"], ",".join(c["features"])))
' "$j" "$T/caps.json" "$INST" 2>&1); then
		DETAIL=$(echo "$DETAIL" | tail -n 1)
		return 1
	fi
	# the program serves the conventions' own options
	"$VIRTIOD" blk --blk-file /dev/null --read-only --socket-path "$T/x.sock" --help >/dev/null ||
		{ DETAIL="--blk-file/--read-only refused"; return 1; }
}

# ------------------------------------------------------------------ libvirt
case_libvirt() {
	local n=0 f
	command -v virt-xml-validate >/dev/null || { DETAIL="virt-xml-validate missing (libvirt-clients; scripts/deps.sh)"; return 1; }
	awk '/^```xml/ {n++; f=sprintf("'"$T"'/domain-%d.xml", n); next} /^```/ {f=""} f {print > f}' "$ROOT/docs/libvirt.md"
	for f in "$T"/domain-*.xml; do
		[ -f "$f" ] || break
		virt-xml-validate "$f" domain >"$T/vxv.log" 2>&1 || { DETAIL="$(basename "$f"): $(tail -n 2 "$T/vxv.log" | tr '\n' ' ')"; return 1; }
		grep -q "type='vhostuser'" "$f" || { DETAIL="$(basename "$f") has no vhostuser disk"; return 1; }
		n=$((n + 1))
	done
	[ $n -gt 0 ] || { DETAIL="no xml block in docs/libvirt.md"; return 1; }
	# a broken one must be refused (the validator is not a no-op)
	sed "s/type='vhostuser'/type='vhostusr'/" "$T/domain-1.xml" >"$T/bad.xml"
	virt-xml-validate "$T/bad.xml" domain >/dev/null 2>&1 && { DETAIL="virt-xml-validate accepted a bad disk type"; return 1; }
	DETAIL="$n domain XML(s) from docs/libvirt.md valid (virt-xml-validate), a broken one refused"
}

# ------------------------------------------------------------------ stat-load
case_stat_load() {
	local d=$T/stat pid lg s1 s2 ops nq=2 qd=8 n
	mkdir -p "$d"
	[ -x "$LOADGEN" ] || { DETAIL="$LOADGEN not built"; return 1; }
	"$LOADGEN" --make-image "$d/img" --size 64M >/dev/null || { DETAIL="--make-image failed"; return 1; }
	"$VIRTIOD" blk --socket-path "$d/vu.sock" --disk "$d/img" --num-queues $nq --control "$d/ctl" 2>"$d/daemon.log" &
	pid=$!
	PIDS+=("$pid")
	wait_socket "$d/vu.sock" || { DETAIL="daemon did not listen: $(tail -n 2 "$d/daemon.log")"; return 1; }
	# a second daemon never takes a live control socket (the first keeps
	# answering below)
	cp --sparse=always "$d/img" "$d/img2"
	timeout 10 "$VIRTIOD" blk --socket-path "$d/vu2.sock" --disk "$d/img2" --control "$d/ctl" 2>"$d/second.log"
	n=$?
	[ $n = 1 ] && grep -q -- "--control $d/ctl: in use" "$d/second.log" ||
		{ DETAIL="a second daemon on a live --control: exit $n, $(tail -n 1 "$d/second.log")"; return 1; }
	"$LOADGEN" --socket "$d/vu.sock" --queues $nq --iodepth $qd --seconds 3 --rwmix 70 >"$d/lg.txt" 2>&1 &
	lg=$!
	PIDS+=("$lg")
	sleep 1
	"$VIRTIOD" stat "$d/ctl" --json >"$d/s1.json" || { DETAIL="stat --json failed"; return 1; }
	sleep 0.5
	"$VIRTIOD" stat "$d/ctl" --json >"$d/s2.json" || { DETAIL="stat --json failed"; return 1; }
	"$VIRTIOD" stat "$d/ctl" >"$d/table.txt" || { DETAIL="stat failed"; return 1; }
	timeout -s INT 2.5 "$VIRTIOD" stat "$d/ctl" --watch 1 >"$d/watch.txt"
	wait "$lg" || { DETAIL="vd-loadgen failed: $(tail -n 2 "$d/lg.txt")"; return 1; }
	"$VIRTIOD" stat "$d/ctl" --json >"$d/s3.json" || { DETAIL="stat --json failed"; return 1; }
	"$VIRTIOD" stat "$d/ctl" --prometheus >"$d/prom.txt" || { DETAIL="stat --prometheus failed"; return 1; }
	ops=$(sed -n 's/.* ops=\([0-9]*\) .*/\1/p' "$d/lg.txt")
	reads=$(sed -n 's/.* reads=\([0-9]*\) .*/\1/p' "$d/lg.txt")
	[ -n "$ops" ] || { DETAIL="no ops= in the load generator's output"; return 1; }
	if ! DETAIL=$(py '
import json, sys, re
s1, s2, s3 = (json.load(open(f)) for f in sys.argv[1:4])
ops, reads, nq, qd = (int(x) for x in sys.argv[4:8])
prom, table, watch = (open(f).read() for f in sys.argv[8:11])
def qs(s):
    assert len(s["devices"]) == 1, "devices: %d" % len(s["devices"])
    q = s["devices"][0]["queues"]
    assert len(q) == nq, "queues: %d" % len(q)
    return q
def tot(s, k): return sum(q[k] for q in qs(s))
# under load: every queue worked, and every counter moved between two looks
for q in qs(s1): assert q["requests"] > 0, "queue %d idle under load" % q["index"]
for k in ("requests", "completions", "bytes_in", "bytes_out", "kicks", "notify_sent"):
    assert tot(s2, k) > tot(s1, k), "%s did not grow under load (%d, %d)" % (k, tot(s1, k), tot(s2, k))
# afterwards: all completed, none failed, nothing in flight
R, C = tot(s3, "requests"), tot(s3, "completions")
assert R == C, "requests %d != completions %d" % (R, C)
assert tot(s3, "inflight") == 0 and tot(s3, "errors") == 0, "inflight/errors not 0"
# the load generator counts what completed before its deadline; the
# requests in flight then are drained uncounted (at most queues x iodepth)
assert ops <= R <= ops + nq * qd, "daemon saw %d requests, vd-loadgen did %d" % (R, ops)
# reads carry 4096 data bytes and a status byte to the driver, writes a status byte
out = tot(s3, "bytes_out")
assert reads * 4097 + (ops - reads) <= out <= (reads + nq * qd) * 4097 + (ops - reads) + nq * qd, "bytes_out %d for %d reads" % (out, reads)
# every completion was published: the histogram holds each once
assert sum(sum(q["latency_hist"]) for q in qs(s3)) == C, "histogram does not sum to the completions"
assert tot(s3, "notify_sent") + tot(s3, "notify_suppressed") > 0
# Prometheus agrees with the JSON
pr = sum(int(v) for v in re.findall(r"^virtiod_requests_total\{[^}]*\} (\d+)$", prom, re.M))
assert pr == R, "prometheus requests %d, json %d" % (pr, R)
cnt = sum(int(v) for v in re.findall(r"^virtiod_request_latency_seconds_count\{[^}]*\} (\d+)$", prom, re.M))
assert cnt == C, "prometheus histogram count %d" % cnt
assert re.search(r"^virtiod_request_latency_seconds_bucket\{device=\"blk0\",queue=\"0\",le=\"\+Inf\"\}", prom, re.M)
assert table.count("blk0") == nq and "REQUESTS" in table, "table: " + table[:200]
assert watch.count("REQUESTS") >= 2, "--watch 1 printed %d tables in 2.5 s" % watch.count("REQUESTS")
print("%d requests (vd-loadgen: %d ops), %d bytes out, %d kicks, %d notified, %d suppressed; json, table, prometheus and --watch agree" %
      (R, ops, out, tot(s3, "kicks"), tot(s3, "notify_sent"), tot(s3, "notify_suppressed")))
' "$d/s1.json" "$d/s2.json" "$d/s3.json" "$ops" "$reads" $nq $qd "$d/prom.txt" "$d/table.txt" "$d/watch.txt" 2>&1); then
		DETAIL=$(echo "$DETAIL" | tail -n 1)
		return 1
	fi
	# bad requests are refused, by the client and by the daemon
	"$VIRTIOD" resize "$d/ctl" 1000 >"$d/r.txt" 2>&1 && { DETAIL="resize to 1000 bytes accepted"; return 1; }
	grep -q "512-byte blocks" "$d/r.txt" || { DETAIL="resize 1000: $(cat "$d/r.txt")"; return 1; }
	"$VIRTIOD" stat "$d/nonexistent" >"$d/r.txt" 2>&1; n=$?
	[ $n = 1 ] && grep -q "control socket of a running virtiod" "$d/r.txt" || { DETAIL="stat on a missing socket: exit $n"; return 1; }
	"$VIRTIOD" stat >/dev/null 2>&1; n=$?
	[ $n = 2 ] || { DETAIL="stat without SOCKET: exit $n, want 2"; return 1; }
	stop "$pid" || { DETAIL="$DETAIL; daemon did not stop cleanly"; return 1; }
	[ ! -e "$d/ctl" ] || { DETAIL="the control socket was left behind"; return 1; }
}

# ------------------------------------------------------------------ activation
case_activation() {
	local d=$T/act pid
	mkdir -p "$d"
	command -v systemd-socket-activate >/dev/null || { DETAIL="systemd-socket-activate missing"; return 1; }
	"$LOADGEN" --make-image "$d/img" --size 16M >/dev/null || { DETAIL="--make-image failed"; return 1; }
	# a NOTIFY_SOCKET listener: records each message with whether the
	# vhost-user socket answered when it came
	py '
import socket, sys, os, time
n = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); n.bind(sys.argv[1])
open(sys.argv[1] + ".up", "w").close()
n.settimeout(15)
msg = n.recv(4096).decode()
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[2]); up = "listening"
except OSError as e:
    up = "not-listening"
with open(sys.argv[3], "w") as f: f.write(msg.replace("\n", " ") + " | " + up + "\n")
' "$d/notify" "$d/vu.sock" "$d/notify.txt" &
	PIDS+=("$!")
	for _ in $(seq 100); do [ -e "$d/notify.up" ] && break; sleep 0.05; done
	# systemd-socket-activate listens and starts virtiod at once (-E: the
	# notify socket); virtiod names no socket: LISTEN_FDS serves
	NOTIFY_SOCKET=$d/notify systemd-socket-activate -l "$d/vu.sock" -E NOTIFY_SOCKET \
		"$VIRTIOD" blk --disk "$d/img" --control "$d/ctl" >"$d/daemon.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	wait_socket "$d/vu.sock" || { DETAIL="no socket"; return 1; }
	"$LOADGEN" --socket "$d/vu.sock" --iodepth 4 --seconds 1 --rwmix 50 >"$d/lg.txt" 2>&1 ||
		{ DETAIL="I/O through the activated socket failed: $(tail -n 2 "$d/lg.txt"; tail -n 2 "$d/daemon.log")"; return 1; }
	grep -q "listening on the socket passed by --fd" "$d/daemon.log" ||
		{ DETAIL="the daemon did not serve the passed socket: $(tail -n 3 "$d/daemon.log" | tr '\n' ' ')"; return 1; }
	for _ in $(seq 100); do [ -s "$d/notify.txt" ] && break; sleep 0.05; done
	grep -q '^READY=1 STATUS=listening | listening' "$d/notify.txt" ||
		{ DETAIL="notify socket got: $(cat "$d/notify.txt" 2>/dev/null)"; return 1; }
	stop "$pid" || { DETAIL="the daemon did not stop cleanly"; return 1; }
	DETAIL="LISTEN_FDS served as --fd 3 ($(sed -n 's/.* ops=\([0-9]*\) .*/\1/p' "$d/lg.txt") requests), READY=1 sent once the socket answered"
}

for c in $CASES; do
	case " $ALL " in *" $c "*) ;; *) echo "ops: unknown case $c (cases: $ALL)" >&2; exit 2 ;; esac
	DETAIL=""
	t0=$(now_ms)
	if "case_${c//-/_}"; then st=PASS PASSED=$((PASSED + 1)); else st=FAIL FAILED=$((FAILED + 1)); fi
	printf 'ops: %-11s %s %6d ms  %s\n' "$c" "$st" $(($(now_ms) - t0)) "$DETAIL"
done
echo "ops: $PASSED passed, $FAILED failed"
[ $FAILED = 0 ]
