/* log - stderr logging; see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "porter.h"

static atomic_int level = LOG_LVL_INFO;
static int journal; /* set once in log_init, read-only afterwards */

void log_init(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	journal = js && js[0];
}

void log_set_level(enum log_level l)
{
	atomic_store(&level, (int)l);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load(&level);
}

int log_parse_level(const char *s, enum log_level *out)
{
	static const struct {
		const char *name;
		enum log_level level;
	} names[] = {
		{ "error", LOG_LVL_ERROR },
		{ "warn", LOG_LVL_WARN },
		{ "warning", LOG_LVL_WARN },
		{ "info", LOG_LVL_INFO },
		{ "debug", LOG_LVL_DEBUG },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i].name) == 0) {
			*out = names[i].level;
			return 0;
		}
	}
	return PORTER_E_INVAL;
}

static const char *level_name(enum log_level l)
{
	switch (l) {
	case LOG_LVL_ERROR:
		return "error";
	case LOG_LVL_WARN:
		return "warn";
	case LOG_LVL_INFO:
		return "info";
	default:
		return "debug";
	}
}

void log_msg(enum log_level l, const char *fmt, ...)
{
	if ((int)l > atomic_load(&level))
		return;

	char line[2048];
	size_t n;
	if (journal) {
		n = (size_t)snprintf(line, sizeof(line), "<%d>", (int)l);
	} else {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n += (size_t)snprintf(line + n, sizeof(line) - n,
				      ".%03ldZ porterd %s: ",
				      ts.tv_nsec / 1000000, level_name(l));
	}

	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += (size_t)m;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2; /* truncated message */
	line[n++] = '\n';

	/* One write per line; a short write to stderr is not worth a retry
	 * loop that could block the loop thread. */
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}
