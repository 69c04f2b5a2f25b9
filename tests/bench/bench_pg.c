/* bench_pg - a throwaway PostgreSQL for the benchmarks; see bench_pg.h. */
#include "bench_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "thsys.h"

#define PG_SH PORTER_SOURCE_DIR "/tests/support/pg.sh"

int bench_pg_file(const char *state, const char *name, char *out, size_t cap)
{
	char path[1024];
	out[0] = '\0';
	snprintf(path, sizeof(path), "%s/%s", state, name);
	FILE *f = fopen(path, "r");
	int rc = f && fgets(out, (int)cap, f) ? 0 : -1;
	if (f)
		fclose(f);
	out[strcspn(out, "\n")] = 0;
	return rc;
}

int bench_pg_start(const char *state, char *conninfo, size_t cap)
{
	const char *const argv[] = {"sh", PG_SH, "start", state, NULL};
	if (th_run(argv, TH_ERR_KEEP, NULL, 0, NULL, 0, NULL) != 0)
		return -1;
	return bench_pg_file(state, "conninfo", conninfo, cap);
}

int bench_pg_stop(const char *state)
{
	const char *const argv[] = {"sh", PG_SH, "stop", state, NULL};
	/* As before: the directory's removal tells whether the stop worked. */
	th_run(argv, TH_ERR_KEEP, NULL, 0, NULL, 0, NULL);
	return rmdir(state) == 0 ? 0 : -1;
}
