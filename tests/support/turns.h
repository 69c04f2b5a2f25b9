/*
 * turns - what tests of porterd's loop turns share (issue 16): the turns
 * porterd logged as over PORTER_TEST_TURN_CPU_US (daemon/loopcpu.h), and a
 * bystander thread that pings all along, its latencies printed, not
 * asserted (they depend on the machine's load).
 *
 * Check asserts: the test process only. One bystander at a time.
 */
#ifndef PORTER_TURNS_H
#define PORTER_TURNS_H

#include "harness.h"

/* The size of d's log now: where a test's part of it starts. */
long th_log_size(const th_daemon *d);

/* The turns d logged as over the bound since `from` (a th_log_size);
 * prints the first ten, and puts their largest figure in `*max_us`. */
int th_long_turns(const th_daemon *d, long from, long *max_us);

/* Starts a thread that pings porterd (PORTER_SOCKET) every 0.2 ms until
 * th_bystander_stop. */
void th_bystander_start(void);

/* Stops the bystander and prints its latencies, headed `what`; asserts
 * it pinged at least once and every ping succeeded. */
void th_bystander_stop(const char *what);

#endif
