/* confsafe - who may change the config file; see confsafe.h. */
#include "confsafe.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int trusted(uid_t u)
{
	return u == 0 || u == geteuid();
}

/* Checks the directory holding `file` (a copy is cut up). 0, or -1 after
 * printing why, naming `path`. */
static int dir_ok(const char *path, const char *file, FILE *err)
{
	char copy[PATH_MAX];
	snprintf(copy, sizeof(copy), "%s", file);
	const char *dir = dirname(copy);
	struct stat sb;
	if (stat(dir, &sb) < 0) {
		fprintf(err, "porterd: %s: cannot check its directory %s: %s\n", path, dir,
			strerror(errno));
		return -1;
	}
	if (!trusted(sb.st_uid)) {
		fprintf(err,
			"porterd: %s: its directory %s belongs to uid %u, who could replace "
			"it: only root or porterd's uid (%u) may own it\n",
			path, dir, (unsigned)sb.st_uid, (unsigned)geteuid());
		return -1;
	}
	if ((sb.st_mode & (S_IWGRP | S_IWOTH)) && !(sb.st_mode & S_ISVTX)) {
		fprintf(err,
			"porterd: %s: others may write its directory %s (mode %04o) and "
			"replace it\n",
			path, dir, (unsigned)(sb.st_mode & 07777));
		return -1;
	}
	return 0;
}

FILE *confsafe_open(const char *path, FILE *err)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		fprintf(err, "porterd: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	struct stat sb;
	char real[PATH_MAX];
	const char *why = NULL;
	if (fstat(fd, &sb) < 0)
		why = strerror(errno);
	else if (!S_ISREG(sb.st_mode))
		why = "not a regular file";
	if (why) {
		fprintf(err, "porterd: %s: %s\n", path, why);
		goto fail;
	}
	if (!trusted(sb.st_uid)) {
		fprintf(err,
			"porterd: %s: belongs to uid %u, who could change who may use porterd: "
			"only root or porterd's uid (%u) may own it\n",
			path, (unsigned)sb.st_uid, (unsigned)geteuid());
		goto fail;
	}
	if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
		fprintf(err,
			"porterd: %s: group or others may write it (mode %04o), and porterd's "
			"clients share its group: chmod go-w\n",
			path, (unsigned)(sb.st_mode & 07777));
		goto fail;
	}
	if (dir_ok(path, path, err) < 0)
		goto fail;
	if (!realpath(path, real)) {
		fprintf(err, "porterd: %s: %s\n", path, strerror(errno));
		goto fail;
	}
	if (strcmp(real, path) != 0 && dir_ok(path, real, err) < 0)
		goto fail;
	/* Regular file: blocking reads from here on are ordinary. */
	if (fcntl(fd, F_SETFL, 0) < 0) {
		fprintf(err, "porterd: %s: %s\n", path, strerror(errno));
		goto fail;
	}
	FILE *f = fdopen(fd, "r");
	if (!f) {
		fprintf(err, "porterd: %s: %s\n", path, strerror(errno));
		goto fail;
	}
	return f;
fail:
	close(fd);
	return NULL;
}
