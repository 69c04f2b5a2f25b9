/* confsafe - who may change the config file; see confsafe.h. */
#include "confsafe.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clients.h"
#include "pathwalk.h"

static int trusted(uid_t u)
{
	return u == 0 || u == clients_self();
}

/* Whether entry `e` on the way to the config file is out of every other
 * uid's reach: -1 with the reason in `why` if not (pathwalk_fn). The file
 * itself is judged on its descriptor (confsafe_open). */
static int entry_ok(void *ctx, const pathwalk_entry *e, char *why, size_t cap)
{
	(void)ctx;
	mode_t dmode = e->dir->st_mode;
	/* Who may make or replace this name: the directory's owner (judged
	 * as an entry before), and anyone when others may write the
	 * directory, unless it is sticky and the name is trusted's. */
	if ((dmode & (S_IWGRP | S_IWOTH)) && !(dmode & S_ISVTX)) {
		snprintf(why, cap,
			 "others may write the directory of %s (mode %04o) and replace it", e->at,
			 (unsigned)(dmode & 07777));
		return -1;
	}
	if ((dmode & (S_IWGRP | S_IWOTH)) && !trusted(e->sb->st_uid)) {
		snprintf(why, cap,
			 "%s belongs to uid %u, in a directory others may write (mode %04o): "
			 "anyone could have made it",
			 e->at, (unsigned)e->sb->st_uid, (unsigned)(dmode & 07777));
		return -1;
	}
	if (S_ISLNK(e->sb->st_mode) || e->last)
		return 0;
	if (!S_ISDIR(e->sb->st_mode)) {
		snprintf(why, cap, "%s is not a directory", e->at);
		return -1;
	}
	if (!trusted(e->sb->st_uid)) {
		snprintf(why, cap,
			 "its directory %s belongs to uid %u, who could replace what is in it: "
			 "only root or porterd's uid (%u) may own every directory on the way",
			 e->at, (unsigned)e->sb->st_uid, (unsigned)clients_self());
		return -1;
	}
	return 0;
}

FILE *confsafe_open(const char *path, FILE *err)
{
	/* The path first: once every entry on it is out of other uids'
	 * reach, the open below resolves it the same way. */
	char why[PATH_MAX + 256];
	struct stat walked;
	if (pathwalk(path, entry_ok, NULL, &walked, why, sizeof(why)) < 0) {
		fprintf(err, "porterd: %s: %s\n", path, why);
		return NULL;
	}
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		fprintf(err, "porterd: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	struct stat sb;
	const char *what = NULL;
	if (fstat(fd, &sb) < 0)
		what = strerror(errno);
	else if (!S_ISREG(sb.st_mode))
		what = "not a regular file";
	else if (sb.st_dev != walked.st_dev || sb.st_ino != walked.st_ino)
		what = "it changed while it was checked";
	if (what) {
		fprintf(err, "porterd: %s: %s\n", path, what);
		goto fail;
	}
	if (!trusted(sb.st_uid)) {
		fprintf(err,
			"porterd: %s: belongs to uid %u, who could change who may use porterd: "
			"only root or porterd's uid (%u) may own it\n",
			path, (unsigned)sb.st_uid, (unsigned)clients_self());
		goto fail;
	}
	if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
		fprintf(err,
			"porterd: %s: group or others may write it (mode %04o), and porterd's "
			"clients share its group: chmod go-w\n",
			path, (unsigned)(sb.st_mode & 07777));
		goto fail;
	}
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
