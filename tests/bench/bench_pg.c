/* bench_pg - a throwaway PostgreSQL for the benchmarks; see bench_pg.h. */
#include "bench_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "sh %s/tests/support/pg.sh start %s >/dev/null",
		 PORTER_SOURCE_DIR, state);
	if (system(cmd) != 0)
		return -1;
	return bench_pg_file(state, "conninfo", conninfo, cap);
}

int bench_pg_stop(const char *state)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "sh %s/tests/support/pg.sh stop %s >/dev/null; rmdir %s",
		 PORTER_SOURCE_DIR, state, state);
	return system(cmd) == 0 ? 0 : -1;
}
