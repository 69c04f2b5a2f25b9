/*
 * loopcpu - a test instrument: logs each turn of a worker's loop (or the
 * acceptor's) that used more than a given amount of the thread's CPU time.
 *
 * A client waits for porterd as long as the loop turn its request arrived
 * in: one turn that parses thousands of database rows, or derives a SCRAM
 * key, makes every other client of that worker wait that long. The CPU a
 * turn used is measured, not its wall time, so the figure does not depend
 * on how busy the machine is (a preempted turn uses no CPU meanwhile);
 * tests compare it against a bound.
 *
 * Off unless the environment variable PORTER_TEST_TURN_CPU_US=N (N >= 1)
 * is set at start-up: then every turn that used more than N microseconds
 * logs "worker W: a loop turn used U us of CPU" ("acceptor: ..." for the
 * acceptor's loop, which also runs malloc_trim) at info level. Each turn
 * costs a clock_gettime(CLOCK_THREAD_CPUTIME_ID) then, a system call, so
 * it stays off in production.
 *
 * Loop affinity: the watched loop's thread, except loopcpu_start (called
 * while the worker is set up, before its thread runs).
 */
#ifndef PORTER_LOOPCPU_H
#define PORTER_LOOPCPU_H

#include <uv.h>

typedef struct loopcpu loopcpu;

/* Starts watching `loop`'s turns when PORTER_TEST_TURN_CPU_US asks for it;
 * `worker_index` names it in the log, -1 for the acceptor. The handle does
 * not keep the loop alive. NULL when it does not (or out of memory: the
 * instrument is then off, which the log says). Owned by the caller, which
 * closes it with loopcpu_close. */
loopcpu *loopcpu_start(uv_loop_t *loop, int worker_index);

/* Stops watching and frees `lc` once its handle has closed. NULL accepted. */
void loopcpu_close(loopcpu *lc);

#endif
