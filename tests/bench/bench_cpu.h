/*
 * bench_cpu - CPU time of processes, for the benchmarks' CPU per request
 * columns. Thread safe (reads /proc and getrusage only).
 */
#ifndef PORTER_BENCH_CPU_H
#define PORTER_BENCH_CPU_H

#include <sys/types.h>

/* CPU seconds (user + system, from /proc/PID/stat) of every thread of
 * `pid`, plus with `reaped` those of its waited-for children; its parent
 * in `*ppid` when ppid is not NULL. 0 when unreadable. */
double bench_proc_cpu(pid_t pid, int reaped, pid_t *ppid);

/* CPU seconds (user + system) of this process, every thread. */
double bench_self_cpu(void);

#endif
