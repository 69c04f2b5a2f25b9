#!/bin/sh
# profile.sh - where the CPU of one request goes, by layer, in instructions
# (callgrind) and system calls (strace), for the ping, DB (SELECT 1) and
# HTTP GET 1 KiB paths. Instruction counts do not depend on the machine's
# load, so a run on a busy machine counts the same work as one on an idle
# one (wall-clock figures would not).
#
#   tests/bench/profile.sh [BUILD_DIR]      (default: build)
#
# PROFILE_N requests per thread (default 1000), PROFILE_THREADS (default
# "1 8"), PROFILE_KINDS (default "ping db http"), PROFILE_BASELINES (default
# "pgdirect curldirect": libpq and libcurl without porterd), PROFILE_TOP (functions
# listed, default 12 for porterd and 8 for the client), PROFILE_KEEP=1 keeps the
# callgrind files (their directory is printed), PROFILE_HTTP_URL the URL of a
# 1 KiB body on a server already running (default: the loopback test server,
# started once here). Needs valgrind and strace.
#
# Method, per kind and thread count:
#  - porterd runs under callgrind (PORTER_DAEMON_WRAP) twice: once with N
#    measured requests per thread and once with none (same warm-up). The
#    difference divided by the measured requests is porterd's instructions
#    per request, startup and shutdown cancelled out. --busy-poll 0: busy
#    polling spins for as long as the wall clock says, which callgrind
#    would count as work; its cost is the CPU column of make bench.
#  - the client (profile_load) runs under callgrind in the first run with
#    collection only inside run_requests(), the measured loop.
#  - `strace -f -c` is attached to porterd the same two ways, for its system
#    calls per request (the kernel's share; callgrind does not see inside
#    the kernel, and `perf` has no hardware counters on this machine).
# callgrind serialises threads, so 8 threads count the same instructions as
# 8 threads would on real cores, without their contention.
set -eu

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build="$src/$build" ;; esac
N=${PROFILE_N:-1000}
THREADS=${PROFILE_THREADS:-1 8}
KINDS=${PROFILE_KINDS:-ping db http}
for tool in valgrind strace python3; do
	command -v "$tool" >/dev/null || {
		echo "profile.sh: $tool not found (apt-get install $tool)" >&2
		exit 1
	}
done
cmake --build "$build" --target porterd profile_load >/dev/null
load="$build/tests/bench/profile_load"
out=$(mktemp -d /tmp/porter-profile.XXXXXX)
# One HTTP server for every run (profile_load would start one per run,
# which can take longer than its 10 s bound on a busy machine).
srv_pid=
if [ -z "${PROFILE_HTTP_URL:-}" ]; then
	case "$KINDS ${PROFILE_BASELINES-pgdirect curldirect}" in *http* | *curldirect*)
		python3 "$src/tests/support/http_server.py" --port-file "$out/port" --lifetime 3600 &
		srv_pid=$!
		i=0
		while [ ! -s "$out/port" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
		[ -s "$out/port" ] || { echo "profile.sh: the HTTP server did not start" >&2; exit 1; }
		export PROFILE_HTTP_URL="http://127.0.0.1:$(cat "$out/port")/bin/1024"
		;;
	esac
fi
cleanup() {
	[ -z "$srv_pid" ] || kill "$srv_pid" 2>/dev/null || true
	[ "${PROFILE_KEEP:-0}" = 1 ] || rm -rf "$out"
}
trap cleanup EXIT
cg="valgrind --tool=callgrind --quiet"
export PORTER_DAEMON_ARGS="--busy-poll 0"
# porterd starts and stops slowly under valgrind on a busy machine.
export PORTER_TEST_WAIT_MS="${PORTER_TEST_WAIT_MS:-120000}"

# Runs profile_load once: $1 kind, $2 threads, $3 requests per thread, $4
# porterd's wrapper, $5 the client's wrapper, $6 a tool attached to porterd
# (each may be empty).
run() {
	# shellcheck disable=SC2086 # $5 is words
	PORTER_DAEMON_WRAP="$4" PROFILE_ATTACH="${6:-}" $5 "$load" "$1" "$2" "$3" >>"$out/log" 2>&1 || {
		echo "profile.sh: profile_load $1 $2 $3 failed:" >&2
		tail -20 "$out/log" >&2
		exit 1
	}
}

# System calls per request, in all and of each kind (at least 0.05 per
# request), from two `strace -c` summaries: $1 with and $2 without the
# measured requests, $3 their number. Summary rows: % time, seconds,
# usecs/call, calls, [errors,] name.
syscalls() {
	awk -v n="$3" 'FNR == 1 { f++ } $4 ~ /^[0-9]+$/ { c[$NF] += (f == 1 ? $4 : -$4) }
		END {
			printf "  system calls per request (strace -f -c): %.2f (", c["total"] / n
			for (k in c) if (k != "total" && c[k] / n >= 0.05) printf " %s %.2f", k, c[k] / n
			print " )"
		}' "$1" "$2"
}

echo "Instructions per request by layer (callgrind, self cost), N=$N requests per thread."
for kind in $KINDS; do
	for t in $THREADS; do
		p="$out/$kind-$t"
		run "$kind" "$t" "$N" "$cg --callgrind-out-file=$p.pd" \
			"$cg --toggle-collect=run_requests --callgrind-out-file=$p.cli"
		run "$kind" "$t" 0 "$cg --callgrind-out-file=$p.pd0" ""
		run "$kind" "$t" "$N" "" "" "strace -f -c -o $p.st -p"
		run "$kind" "$t" 0 "" "" "strace -f -c -o $p.st0 -p"
		reqs=$((N * t))
		echo
		echo "== $kind, $t thread(s): porterd"
		python3 "$src/tests/bench/cg_layers.py" "$p.pd" "$p.pd0" --requests "$reqs" \
			--top "${PROFILE_TOP:-12}" --binary "$build/daemon/porterd"
		syscalls "$p.st" "$p.st0" "$reqs"
		echo "== $kind, $t thread(s): client (profile_load, libporter)"
		python3 "$src/tests/bench/cg_layers.py" "$p.cli" --requests "$reqs" \
			--top "${PROFILE_TOP:-8}" --binary "$build/client/libporter.so"
	done
done
# The baselines without porterd: the instructions a direct libpq query and a
# direct libcurl GET (one easy handle reused) cost the client itself.
for kind in ${PROFILE_BASELINES-pgdirect curldirect}; do
	for t in $THREADS; do
		p="$out/$kind-$t"
		run "$kind" "$t" "$N" "" "$cg --toggle-collect=run_requests --callgrind-out-file=$p.cli"
		echo
		echo "== $kind, $t thread(s): the client alone (baseline, no porterd)"
		python3 "$src/tests/bench/cg_layers.py" "$p.cli" --requests "$((N * t))" \
			--top "${PROFILE_TOP:-8}"
	done
done
[ "${PROFILE_KEEP:-0}" = 1 ] && echo "callgrind and strace files kept in $out"
exit 0
