/*
 * bench_pg - a throwaway PostgreSQL for the benchmarks and profile_load,
 * through tests/support/pg.sh. Call from the main thread only.
 */
#ifndef PORTER_BENCH_PG_H
#define PORTER_BENCH_PG_H

#include <stddef.h>

/* Starts PostgreSQL with its state in the existing directory `state` and
 * copies its conninfo (NUL-terminated, at most cap bytes) to `conninfo`.
 * 0, or -1 when it did not start. */
int bench_pg_start(const char *state, char *conninfo, size_t cap);

/* The first line of file `name` ("conninfo", "conninfo_tcp",
 * "conninfo_pw") that pg.sh wrote in `state`, without its newline, into
 * `out` (`cap` bytes). 0, or -1 when it cannot be read. */
int bench_pg_file(const char *state, const char *name, char *out, size_t cap);

/* Stops it and removes `state`. 0, or -1 when that failed. */
int bench_pg_stop(const char *state);

#endif
