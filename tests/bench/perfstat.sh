#!/bin/sh
# perfstat.sh - CPU, context switches and system calls per request of
# porterd, its clients and (db) the PostgreSQL backends serving it, counted
# by the kernel (`perf stat`: software events and syscall tracepoints) over
# a window of a running load, at full speed. profile.sh counts instructions
# and, under strace, system calls; strace slows every call to about a
# millisecond, which changes how many requests one loop turn gathers (and
# so the system calls per request). Here nothing slows down.
#
#   tests/bench/perfstat.sh [BUILD_DIR]      (default: build)
#
# PERFSTAT_KIND (ping, db or http; default db), PERFSTAT_THREADS (client
# threads, default 8), PERFSTAT_SECONDS (the window, default 4),
# PERFSTAT_N (requests per thread, default 400000 / threads: enough for
# the window to fall inside the load on this machine), PERFSTAT_RECORD=1 also samples porterd's stacks
# in the window (perf record -e cpu-clock -g) and prints its time by
# object (kernel, libc, libpq, porterd...). PORTER_DAEMON_ARGS and
# PORTER_DAEMON_WRAP reach porterd as in the benchmarks (compare
# `--workers 1`, `--busy-poll 0`, or another build's porterd).
# PERFSTAT_CLIENT_LIB, a directory holding another build's libporter.so,
# runs the client with that library against this build's porterd (it goes
# first in LD_LIBRARY_PATH; the test binaries' RUNPATH yields to it).
#
# Per request means per read() porterd made from its clients in the
# window: profile_load's threads each wait for their reply, so porterd
# reads each request in one read of its own. Needs perf (Debian's
# linux-perf) with tracepoints (it runs as root here).
set -eu

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build="$src/$build" ;; esac
kind=${PERFSTAT_KIND:-db}
threads=${PERFSTAT_THREADS:-8}
secs=${PERFSTAT_SECONDS:-4}
n=${PERFSTAT_N:-$((400000 / threads))}
command -v perf >/dev/null || { echo "perfstat.sh: perf not found (apt-get install linux-perf)" >&2; exit 1; }
cmake --build "$build" --target porterd profile_load >/dev/null
out=$(mktemp -d /tmp/porter-perfstat.XXXXXX)
trap 'rm -rf "$out"' EXIT
touch "$out/mark"

if [ -n "${PERFSTAT_CLIENT_LIB:-}" ]; then
	LD_LIBRARY_PATH="$PERFSTAT_CLIENT_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	export LD_LIBRARY_PATH
fi
"$build/tests/bench/profile_load" "$kind" "$threads" "$n" >"$out/load.log" 2>&1 &
load=$!
pd=
i=0
while [ -z "$pd" ] && [ $i -lt 600 ] && kill -0 $load 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
	pd=$(pgrep -P $load -x porterd || true)
done
[ -n "$pd" ] || { echo "perfstat.sh: porterd did not start" >&2; cat "$out/load.log" >&2; exit 1; }
# Past the warm-up: connections, pools and caches are made.
sleep 3
ev=task-clock,context-switches,cpu-migrations,raw_syscalls:sys_enter
for s in read write recvfrom sendto recvmsg sendmsg poll epoll_wait pread64 sched_yield setsockopt fcntl; do
	ev="$ev,syscalls:sys_enter_$s"
done
pids="porterd:$pd client:$load"
if [ "$kind" = db ]; then
	# The PostgreSQL profile_load started (after the mark): its backends.
	st=$(find /tmp -maxdepth 1 -name 'porter-profile-pg.*' -newer "$out/mark" | head -1)
	dir=$(sed -n 's/^DIR=//p' "$st/env" 2>/dev/null || true)
	pm=$(head -1 "$dir/data/postmaster.pid" 2>/dev/null || true)
	be=$(pgrep -P "${pm:-0}" -f 'postgres: .*(local|127)' | tr '\n' ',' | sed 's/,$//' || true)
	[ -z "$be" ] || pids="$pids postgres:$be"
fi
tools=
for p in $pids; do
	perf stat -e "$ev" -x, -p "${p#*:}" -o "$out/${p%%:*}.csv" -- sleep "$secs" &
	tools="$tools $!"
done
if [ "${PERFSTAT_RECORD:-0}" = 1 ]; then
	perf record -q -e cpu-clock -g -p "$pd" -o "$out/pd.data" -- sleep "$secs" >/dev/null 2>&1 &
	tools="$tools $!"
fi
for t in $tools; do wait "$t" || true; done
reads=$(awk -F, '$3 == "syscalls:sys_enter_read" && $1 ~ /^[0-9]+$/ { print $1 }' "$out/porterd.csv")
if [ -z "$reads" ] || [ "$reads" = 0 ]; then
	echo "perfstat.sh: the load was over before the window ended; raise PERFSTAT_N" >&2
	exit 1
fi
echo "perfstat: $kind, $threads client threads, ${secs} s window; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "per request ($reads porterd reads in the window):"
for p in $pids; do
	awk -F, -v who="${p%%:*}" -v n="$reads" '
		$1 ~ /^[0-9.]+$/ {
			name = $3; sub(/^syscalls:sys_enter_/, "", name)
			if (name == "raw_syscalls:sys_enter") name = "syscalls"
			if (name == "task-clock") { line = sprintf("cpu %.2f us", $1 * 1000 / n) }
			else if ($1 / n >= 0.005) { rest = rest sprintf("  %s %.2f", name, $1 / n) }
		}
		END { printf "  %-9s %s%s\n", who, line, rest }' "$out/${p%%:*}.csv"
done
if [ "${PERFSTAT_RECORD:-0}" = 1 ]; then
	echo "porterd's samples by object:"
	perf report -i "$out/pd.data" --no-children --sort dso 2>/dev/null | grep -E '^ +[0-9]' | head -8
fi
wait $load || { echo "perfstat.sh: profile_load failed:" >&2; tail -5 "$out/load.log" >&2; exit 1; }
