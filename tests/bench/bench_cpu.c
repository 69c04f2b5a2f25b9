/* bench_cpu - CPU time of processes for the benchmarks; see bench_cpu.h. */
#include "bench_cpu.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* CPU seconds of `pid`: its threads, and with `reaped` its waited-for
 * children too; its parent in `*ppid`. 0 when unreadable. */
double bench_proc_cpu(pid_t pid, int reaped, pid_t *ppid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	/* After the name: state ppid ... utime(14) stime(15) cutime cstime. */
	unsigned long long v[16] = {0};
	char state;
	if (sscanf(p + 2, "%c %llu %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu %llu %llu", &state,
		   &v[0], &v[1], &v[2], &v[3], &v[4]) != 6)
		return 0;
	if (ppid)
		*ppid = (pid_t)v[0];
	double ticks = (double)(v[1] + v[2] + (reaped ? v[3] + v[4] : 0));
	return ticks / (double)sysconf(_SC_CLK_TCK);
}

double bench_self_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}
